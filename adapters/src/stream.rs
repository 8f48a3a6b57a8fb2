//! Helpers shared by the parsers: NDJSON lines, argument digests, tool-call bookkeeping.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::{ExecutorReport, Outcome, ToolCall, Usage};

/// The JSON objects of an NDJSON stream, in order. Lines that are not JSON objects (stray
/// text some CLIs print on stdout, or a line cut short by truncation) are skipped; the
/// first of them is remembered so a stream without a final event can say what went wrong.
#[derive(Debug, Default)]
pub(crate) struct Lines {
    pub(crate) events: Vec<Value>,
    pub(crate) first_bad: Option<(usize, String)>,
}

pub(crate) fn json_lines(stdout: &[u8]) -> Lines {
    let text = String::from_utf8_lossy(stdout);
    let mut lines = Lines::default();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(line) {
            Ok(value) if value.is_object() => lines.events.push(value),
            _ => {
                if lines.first_bad.is_none() {
                    lines.first_bad = Some((index + 1, preview(line)));
                }
            }
        }
    }
    lines
}

/// The report for a stream that ended without its final event.
pub(crate) fn incomplete(lines: &Lines, executor: &str, final_event: &str) -> String {
    let mut msg = format!(
        "{executor} output ended without a final `{final_event}` event ({} events read): \
         truncated, or the executor was killed",
        lines.events.len()
    );
    if let Some((line, text)) = &lines.first_bad {
        msg.push_str(&format!("; line {line} is not a JSON object: {text}"));
    }
    msg
}

fn preview(line: &str) -> String {
    const MAX: usize = 120;
    if line.chars().count() <= MAX {
        return line.to_string();
    }
    let cut: String = line.chars().take(MAX).collect();
    format!("{cut}...")
}

/// SHA-256 (hex) of the arguments' JSON text: `serde_json`'s compact form, keys sorted,
/// so the digest does not depend on how the executor spaced or ordered its JSON. Arguments
/// that are a JSON string holding JSON (OpenAI style) are decoded first.
pub(crate) fn args_digest(args: &Value) -> String {
    let decoded;
    let args = match args {
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(v) if v.is_object() => {
                decoded = v;
                &decoded
            }
            _ => args,
        },
        other => other,
    };
    let text = serde_json::to_string(args).unwrap_or_default();
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Tool calls in the order they were made, matched to their results by id.
#[derive(Debug, Default)]
pub(crate) struct Tools {
    calls: Vec<(Option<String>, ToolCall)>,
}

impl Tools {
    pub(crate) fn call(&mut self, id: Option<&str>, name: &str, args: &Value) {
        if let Some(id) = id
            && self
                .calls
                .iter()
                .any(|(known, _)| known.as_deref() == Some(id))
        {
            return;
        }
        self.calls.push((
            id.map(str::to_string),
            ToolCall {
                name: name.to_string(),
                args_digest: args_digest(args),
                ok: None,
            },
        ));
    }

    /// Records a result; returns false when no call has this id.
    pub(crate) fn result(&mut self, id: &str, ok: bool) -> bool {
        match self
            .calls
            .iter_mut()
            .rev()
            .find(|(known, _)| known.as_deref() == Some(id))
        {
            Some((_, call)) => {
                call.ok = Some(ok);
                true
            }
            None => false,
        }
    }

    pub(crate) fn into_calls(self) -> Vec<ToolCall> {
        self.calls.into_iter().map(|(_, call)| call).collect()
    }
}

/// Remembers reported files once each, in order.
pub(crate) fn note_file(files: &mut Vec<String>, path: Option<&str>) {
    if let Some(path) = path.filter(|p| !p.is_empty())
        && !files.iter().any(|f| f == path)
    {
        files.push(path.to_string());
    }
}

pub(crate) fn u64_at(value: &Value, pointer: &str) -> Option<u64> {
    value.pointer(pointer).and_then(Value::as_u64)
}

pub(crate) fn str_at<'v>(value: &'v Value, pointer: &str) -> Option<&'v str> {
    value.pointer(pointer).and_then(Value::as_str)
}

/// Adds two optional counters; `None` only when both are.
pub(crate) fn add(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
    }
}

/// Usage, or `None` when nothing was reported.
pub(crate) fn usage(input: Option<u64>, output: Option<u64>, cost: Option<f64>) -> Option<Usage> {
    if input.is_none() && output.is_none() && cost.is_none() {
        return None;
    }
    Some(Usage {
        input_tokens: input,
        output_tokens: output,
        cost_usd: cost,
    })
}

/// A report whose outcome is [`Outcome::ExecutorError`], keeping what was parsed so far.
pub(crate) fn executor_error(mut report: ExecutorReport, error: String) -> ExecutorReport {
    report.outcome = Outcome::ExecutorError;
    report.error = Some(error);
    report
}

/// Whether an error message is the CLI relaying an error from the model API.
pub(crate) fn looks_like_api_error(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    lower.contains("api error") || lower.contains("apierror") || lower.contains("status code")
}
