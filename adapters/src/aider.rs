//! `aider`: Aider, driven by a task file. Its output is text only, so the report is read
//! from the lines aider prints around the model's answer.

use crate::registry::{Adapter, env_pairs};
use crate::stream;
use crate::{AdapterError, ExecutorReport, Invocation, InvocationRequest, Outcome};

/// Aider with auto-commits off (the prompt says not to commit; Codencer records the diff)
/// and without touching `.gitignore`.
#[derive(Debug)]
pub(crate) struct Aider;

const TASK_FILE: &str = "task.md";

impl Adapter for Aider {
    fn name(&self) -> &'static str {
        "aider"
    }

    fn binary(&self) -> &'static str {
        "aider"
    }

    fn install_hint(&self) -> &'static str {
        "pip install aider-chat (or scripts/install-executors.sh --with-aider)"
    }

    fn config_home_env(&self) -> Option<&'static str> {
        Some("HOME")
    }

    fn invocation(&self, req: &InvocationRequest<'_>) -> Result<Invocation, AdapterError> {
        let task = req.config_home.join(TASK_FILE);
        let mut argv = req.argv(
            self.binary(),
            &[
                "--message-file",
                &task.display().to_string(),
                "--yes-always",
                "--no-pretty",
                "--no-stream",
                "--no-check-update",
                "--analytics-disable",
                "--no-show-model-warnings",
                "--no-auto-commits",
                "--no-dirty-commits",
                "--no-gitignore",
            ],
        );
        let base = req.openai_base();
        let model = match base {
            Some(_) => Some(format!("openai/{}", req.model_for_base_url("aider")?)),
            None => req.model.map(str::to_string),
        };
        if let Some(model) = model {
            argv.extend(["--model".to_string(), model]);
        }
        let home = req.home();
        let mut env = env_pairs(&[("HOME", &home)]);
        if let Some(base) = base {
            env.extend(env_pairs(&[("OPENAI_API_BASE", &base)]));
        }
        Ok(Invocation {
            argv,
            env,
            files: vec![(task, req.prompt.as_bytes().to_vec())],
        })
    }

    fn parse(&self, stdout: &[u8]) -> ExecutorReport {
        parse_aider(&String::from_utf8_lossy(stdout))
    }
}

fn parse_aider(text: &str) -> ExecutorReport {
    let mut report = ExecutorReport::unreported();
    let (mut sent, mut received, mut cost) = (None, None, None);
    let mut api_error: Option<String> = None;
    let mut answer: Vec<&str> = Vec::new();
    let mut summary: Option<String> = None;
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix("Tokens: ") {
            let (s, r, c) = tokens_line(rest);
            sent = stream::add(sent, s);
            received = stream::add(received, r);
            cost = c.or(cost);
            if summary.is_none() {
                summary = last_paragraph(&answer);
            }
            answer.clear();
        } else if let Some(path) = trimmed.strip_prefix("Applied edit to ") {
            stream::note_file(&mut report.files_reported, Some(path));
        } else if trimmed.starts_with("litellm.") && trimmed.contains("Error") {
            api_error = Some(trimmed.to_string());
        } else {
            answer.push(trimmed);
        }
    }
    report.usage = stream::usage(sent, received, cost);
    report.summary = summary;
    if let Some(error) = api_error {
        report.outcome = Outcome::ApiError;
        report.error = Some(error);
    } else if sent.is_none() {
        return stream::executor_error(
            report,
            "aider output has no `Tokens:` line: truncated, or aider never got an answer \
             from the model"
                .to_string(),
        );
    } else {
        report.outcome = Outcome::Success;
    }
    report
}

/// `1.2k sent, 30 received. Cost: $0.01 message, $0.02 session.`
fn tokens_line(rest: &str) -> (Option<u64>, Option<u64>, Option<f64>) {
    let mut sent = None;
    let mut received = None;
    let mut cost = None;
    let (tokens, costs) = rest.split_once("Cost:").unwrap_or((rest, ""));
    for piece in tokens.split(',') {
        let mut words = piece.split_whitespace();
        if let (Some(n), Some(what)) = (words.next(), words.next()) {
            let n = count(n);
            if what.starts_with("sent") {
                sent = stream::add(sent, n);
            } else if what.starts_with("received") {
                received = stream::add(received, n);
            }
        }
    }
    for piece in costs.split(',') {
        let piece = piece.trim().trim_end_matches('.');
        if let Some(amount) = piece.strip_suffix("session") {
            cost = amount.trim().trim_start_matches('$').parse::<f64>().ok();
        }
    }
    (sent, received, cost)
}

/// `1,234`, `1.2k`, `3M` as a count.
fn count(n: &str) -> Option<u64> {
    let n = n.replace(',', "");
    let (digits, factor) = match n.chars().last() {
        Some('k') => (&n[..n.len() - 1], 1_000.0),
        Some('M') => (&n[..n.len() - 1], 1_000_000.0),
        _ => (n.as_str(), 1.0),
    };
    digits
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(|v| (v * factor).round() as u64)
}

/// The last paragraph of prose (not a code fence) of the model's answer.
fn last_paragraph(lines: &[&str]) -> Option<String> {
    let mut paragraphs: Vec<Vec<&str>> = vec![Vec::new()];
    let mut in_fence = false;
    for line in lines {
        if line.starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        if line.is_empty() {
            paragraphs.push(Vec::new());
        } else if let Some(last) = paragraphs.last_mut() {
            last.push(line);
        }
    }
    paragraphs
        .into_iter()
        .rev()
        .find(|p| !p.is_empty())
        .map(|p| p.join("\n"))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::registry::sample_request;

    #[test]
    fn invocation_snapshot() {
        let inv = Aider.invocation(&sample_request()).unwrap();
        assert_eq!(
            inv,
            Invocation {
                argv: vec![
                    "/opt/bin/exe".into(),
                    "--message-file".into(),
                    "/home/codencer/task.md".into(),
                    "--yes-always".into(),
                    "--no-pretty".into(),
                    "--no-stream".into(),
                    "--no-check-update".into(),
                    "--analytics-disable".into(),
                    "--no-show-model-warnings".into(),
                    "--no-auto-commits".into(),
                    "--no-dirty-commits".into(),
                    "--no-gitignore".into(),
                    "--model".into(),
                    "openai/mock-model".into(),
                ],
                env: vec![
                    ("HOME".into(), "/home/codencer".into()),
                    ("OPENAI_API_BASE".into(), "http://127.0.0.1:9000/v1".into()),
                ],
                files: vec![(
                    PathBuf::from("/home/codencer/task.md"),
                    b"# Task\n\nFix it.\n".to_vec()
                )],
            }
        );
    }

    #[test]
    fn tokens_and_cost_lines() {
        assert_eq!(
            tokens_line("1.2k sent, 30 received. Cost: $0.01 message, $0.02 session."),
            (Some(1200), Some(30), Some(0.02))
        );
        assert_eq!(
            tokens_line("120 sent, 30 received."),
            (Some(120), Some(30), None)
        );
    }

    #[test]
    fn model_is_passed_as_is_without_a_base_url() {
        let req = InvocationRequest {
            model_base_url: None,
            ..sample_request()
        };
        let inv = Aider.invocation(&req).unwrap();
        assert_eq!(&inv.argv[inv.argv.len() - 2..], ["--model", "mock-model"]);
        assert_eq!(
            inv.env,
            [("HOME".to_string(), "/home/codencer".to_string())]
        );
    }

    #[test]
    fn base_url_without_model_is_refused() {
        let req = InvocationRequest {
            model: None,
            ..sample_request()
        };
        assert_eq!(
            Aider.invocation(&req).unwrap_err().to_string(),
            "executor `aider` needs `model`: name the model served at the model base URL"
        );
    }
}
