//! `claude-code`: Anthropic's Claude Code CLI in print mode with `stream-json` output.
//! The parser is shared with `qwen`, whose stream has the same shape.

use serde_json::Value;

use crate::registry::{Adapter, env_pairs};
use crate::stream::{self, Tools};
use crate::{AdapterError, ExecutorReport, Invocation, InvocationRequest, Outcome};

/// Claude Code: `claude -p <prompt> --output-format stream-json --verbose`.
#[derive(Debug)]
pub(crate) struct ClaudeCode;

/// The tools allowed without a prompt; `acceptEdits` covers the edit tools.
const ALLOWED_TOOLS: &str = "Bash,Edit,Write,Read,Glob,Grep";

impl Adapter for ClaudeCode {
    fn name(&self) -> &'static str {
        "claude-code"
    }

    fn binary(&self) -> &'static str {
        "claude"
    }

    fn install_hint(&self) -> &'static str {
        "npm install -g @anthropic-ai/claude-code (or scripts/install-executors.sh)"
    }

    fn config_home_env(&self) -> Option<&'static str> {
        Some("CLAUDE_CONFIG_DIR")
    }

    fn invocation(&self, req: &InvocationRequest<'_>) -> Result<Invocation, AdapterError> {
        let mut argv = req.argv(
            self.binary(),
            &[
                "-p",
                req.prompt,
                "--output-format",
                "stream-json",
                "--verbose",
                "--permission-mode",
                "acceptEdits",
                "--allowedTools",
                ALLOWED_TOOLS,
            ],
        );
        if let Some(model) = req.model {
            argv.extend(["--model".to_string(), model.to_string()]);
        }
        let home = req.home();
        let mut env = env_pairs(&[
            ("CLAUDE_CONFIG_DIR", &home),
            ("HOME", &home),
            ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
            ("DISABLE_AUTOUPDATER", "1"),
        ]);
        if let Some(url) = req.model_base_url {
            env.extend(env_pairs(&[(
                "ANTHROPIC_BASE_URL",
                url.trim_end_matches('/'),
            )]));
        }
        Ok(Invocation {
            argv,
            env,
            files: Vec::new(),
        })
    }

    fn parse(&self, stdout: &[u8]) -> ExecutorReport {
        parse_claude_style(
            stdout,
            "claude-code",
            &["Write", "Edit", "MultiEdit", "NotebookEdit"],
        )
    }
}

/// Parses a Claude-style stream: `system/init`, `assistant` and `user` messages, and a
/// final `result`. `write_tools` name the tools whose `file_path` argument is a file the
/// executor reports having written.
pub(crate) fn parse_claude_style(
    stdout: &[u8],
    executor: &str,
    write_tools: &[&str],
) -> ExecutorReport {
    let lines = stream::json_lines(stdout);
    let mut report = ExecutorReport::unreported();
    let mut tools = Tools::default();
    let mut last_text: Option<String> = None;
    let mut result: Option<&Value> = None;
    for event in &lines.events {
        if report.session_id.is_none() {
            report.session_id = stream::str_at(event, "/session_id").map(str::to_string);
        }
        match event.get("type").and_then(Value::as_str) {
            Some("assistant") => {
                for block in content_blocks(event) {
                    match block.get("type").and_then(Value::as_str) {
                        Some("text") => {
                            last_text = block
                                .get("text")
                                .and_then(Value::as_str)
                                .map(str::to_string)
                        }
                        Some("tool_use") => {
                            let name = block.get("name").and_then(Value::as_str).unwrap_or("?");
                            let input = block.get("input").unwrap_or(&Value::Null);
                            tools.call(block.get("id").and_then(Value::as_str), name, input);
                            if write_tools.contains(&name) {
                                let path = stream::str_at(input, "/file_path")
                                    .or_else(|| stream::str_at(input, "/notebook_path"));
                                stream::note_file(&mut report.files_reported, path);
                            }
                        }
                        _ => {}
                    }
                }
            }
            Some("user") => {
                for block in content_blocks(event) {
                    if block.get("type").and_then(Value::as_str) == Some("tool_result")
                        && let Some(id) = block.get("tool_use_id").and_then(Value::as_str)
                    {
                        let failed = block.get("is_error").and_then(Value::as_bool) == Some(true);
                        tools.result(id, !failed);
                    }
                }
            }
            Some("result") => result = Some(event),
            _ => {}
        }
    }
    report.tool_calls = tools.into_calls();
    let Some(result) = result else {
        report.summary = last_text;
        let error = stream::incomplete(&lines, executor, "result");
        return stream::executor_error(report, error);
    };
    judge_result(report, result, last_text)
}

fn judge_result(
    mut report: ExecutorReport,
    result: &Value,
    last_text: Option<String>,
) -> ExecutorReport {
    let input = stream::add(
        stream::add(
            stream::u64_at(result, "/usage/input_tokens"),
            stream::u64_at(result, "/usage/cache_creation_input_tokens"),
        ),
        stream::u64_at(result, "/usage/cache_read_input_tokens"),
    );
    let output = stream::u64_at(result, "/usage/output_tokens");
    let cost = result.get("total_cost_usd").and_then(Value::as_f64);
    report.usage = stream::usage(input, output, cost);
    if let Some(id) = stream::str_at(result, "/session_id") {
        report.session_id = Some(id.to_string());
    }
    let result_text = result
        .get("result")
        .and_then(Value::as_str)
        .map(str::to_string);
    let subtype = result.get("subtype").and_then(Value::as_str).unwrap_or("");
    let is_error = result
        .get("is_error")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let error_text = error_text(result).or_else(|| result_text.clone());
    let api_error = result.get("api_error_status").is_some_and(|s| !s.is_null())
        || stream::str_at(result, "/terminal_reason") == Some("api_error")
        || error_text
            .as_deref()
            .is_some_and(stream::looks_like_api_error);
    report.outcome = if subtype == "error_max_turns" {
        Outcome::MaxTurns
    } else if !is_error && subtype == "success" {
        Outcome::Success
    } else if api_error {
        Outcome::ApiError
    } else {
        Outcome::Failure
    };
    report.summary = match report.outcome {
        Outcome::Success => result_text.or(last_text),
        _ => last_text.or(result_text),
    };
    if report.outcome != Outcome::Success {
        report.error = Some(error_text.unwrap_or_else(|| format!("result subtype `{subtype}`")));
    }
    report
}

/// The error message of a failed `result`: `errors` (Claude) or `error.message` (Qwen).
fn error_text(result: &Value) -> Option<String> {
    if let Some(errors) = result.get("errors").and_then(Value::as_array) {
        let texts: Vec<&str> = errors.iter().filter_map(Value::as_str).collect();
        if !texts.is_empty() {
            return Some(texts.join("; "));
        }
    }
    stream::str_at(result, "/error/message").map(str::to_string)
}

fn content_blocks(event: &Value) -> impl Iterator<Item = &Value> {
    event
        .pointer("/message/content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::sample_request;

    #[test]
    fn invocation_snapshot() {
        let inv = ClaudeCode.invocation(&sample_request()).unwrap();
        assert_eq!(
            inv,
            Invocation {
                argv: vec![
                    "/opt/bin/exe".into(),
                    "-p".into(),
                    "# Task\n\nFix it.\n".into(),
                    "--output-format".into(),
                    "stream-json".into(),
                    "--verbose".into(),
                    "--permission-mode".into(),
                    "acceptEdits".into(),
                    "--allowedTools".into(),
                    "Bash,Edit,Write,Read,Glob,Grep".into(),
                    "--model".into(),
                    "mock-model".into(),
                ],
                env: vec![
                    ("CLAUDE_CONFIG_DIR".into(), "/home/codencer".into()),
                    ("HOME".into(), "/home/codencer".into()),
                    (
                        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC".into(),
                        "1".into()
                    ),
                    ("DISABLE_AUTOUPDATER".into(), "1".into()),
                    ("ANTHROPIC_BASE_URL".into(), "http://127.0.0.1:9000".into()),
                ],
                files: vec![],
            }
        );
    }
}
