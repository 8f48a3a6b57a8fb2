//! `openclaw`: OpenClaw's isolated headless run, `openclaw agent exec --json`. Checked
//! against openclaw 2026.9.6 (on Node 24.21, see docs/executors.md) driven against the mock
//! model server: the fixtures in tests/fixtures/executors/openclaw are its real output.
//!
//! `agent exec` (not `agent --local`): it works in `--cwd` (`agent --local` works in the
//! agent workspace under `~/.openclaw`, continues the main session, and syncs memory with
//! the vendor), runs on a temporary state directory it removes, reads exactly the config
//! given with `--config` (it ignores `OPENCLAW_CONFIG_PATH`), and prints one stable JSON
//! envelope.

use serde_json::{Value, json};

use crate::registry::{Adapter, env_pairs};
use crate::stream;
use crate::{AdapterError, ExecutorReport, Invocation, InvocationRequest, Outcome};

/// OpenClaw, its configuration (when a model server is given) in the private home.
#[derive(Debug)]
pub(crate) struct OpenClaw;

const TASK_FILE: &str = "task.md";
const CONFIG_FILE: &str = "openclaw.json";
const PROVIDER: &str = "codencer";

impl Adapter for OpenClaw {
    fn name(&self) -> &'static str {
        "openclaw"
    }

    fn binary(&self) -> &'static str {
        "openclaw"
    }

    fn install_hint(&self) -> &'static str {
        "npm install -g openclaw (needs Node >= 24.16; scripts/install-executors.sh --only \
         openclaw brings its own Node)"
    }

    fn config_home_env(&self) -> Option<&'static str> {
        Some("HOME")
    }

    fn invocation(&self, req: &InvocationRequest<'_>) -> Result<Invocation, AdapterError> {
        let task = req.config_home.join(TASK_FILE);
        let mut argv = req.argv(
            self.binary(),
            &[
                "agent",
                "exec",
                "--message-file",
                &task.display().to_string(),
                "--json",
                "--cwd",
                &req.worktree.display().to_string(),
                // No deadline of its own (600 s by default): the supervisor's attempt timeout
                // governs, as for the other executors.
                "--timeout",
                "0",
            ],
        );
        let home = req.home();
        let env = env_pairs(&[("HOME", &home)]);
        let mut files = vec![(task, req.prompt.as_bytes().to_vec())];
        if let Some(base) = req.openai_base() {
            let model = req.model_for_base_url("openclaw")?;
            let config = json!({
                "models": { "providers": { PROVIDER: {
                    "baseUrl": base,
                    "apiKey": "${OPENAI_API_KEY}",
                    "api": "openai-completions",
                    "models": [{ "id": model, "name": model }],
                }}},
                "agents": { "defaults": { "model": { "primary": format!("{PROVIDER}/{model}") } } },
            });
            let path = req.config_home.join(CONFIG_FILE);
            argv.push("--config".to_string());
            argv.push(path.display().to_string());
            files.push((path, format!("{config}\n").into_bytes()));
        } else if let Some(model) = req.model {
            argv.push("--model".to_string());
            argv.push(model.to_string());
        }
        Ok(Invocation { argv, env, files })
    }

    fn parse(&self, stdout: &[u8]) -> ExecutorReport {
        parse_openclaw(stdout)
    }
}

/// The `agent exec --json` envelope, one (pretty-printed) JSON document: `{"ok", "status":
/// "ok"|"error"|"timeout", "final", "payloads": [{"text", "isError"?}], "usage": {"input",
/// "output", ...}?, "costUsd"?, "toolSummary": {"calls", "tools", "failures"}?, "sessionId",
/// "error": {"message", "kind"}?}`. It names the tools used but not each call, so
/// `tool_calls` stays empty.
fn parse_openclaw(stdout: &[u8]) -> ExecutorReport {
    let mut report = ExecutorReport::unreported();
    let text = String::from_utf8_lossy(stdout);
    // Tolerate stray lines before the document: it starts at the first line opening `{`.
    let start = text
        .lines()
        .scan(0usize, |offset, line| {
            let here = *offset;
            *offset += line.len() + 1;
            Some((here, line))
        })
        .find(|(_, line)| line.starts_with('{'))
        .map(|(offset, _)| offset);
    let doc = start.and_then(|s| serde_json::from_str::<Value>(text.get(s..)?.trim()).ok());
    let Some(doc) = doc.filter(Value::is_object) else {
        return stream::executor_error(
            report,
            "openclaw output is not one JSON document: truncated, or not run with --json"
                .to_string(),
        );
    };
    let Some(status) = stream::str_at(&doc, "/status").map(str::to_string) else {
        let message = stream::str_at(&doc, "/error/message")
            .map(|m| format!("openclaw failed: {m}"))
            .unwrap_or_else(|| {
                "openclaw output has no `status`: not the `agent exec --json` envelope".to_string()
            });
        // The CLI's own error envelope (`{"ok": false, "error": {"type": "cli_error"}}`).
        if doc.get("ok").and_then(Value::as_bool) == Some(false) {
            report.outcome = Outcome::Failure;
            report.error = Some(message);
            return report;
        }
        return stream::executor_error(report, message);
    };
    let final_text = stream::str_at(&doc, "/final").filter(|t| !t.trim().is_empty());
    report.summary = match final_text {
        Some(t) => Some(t.to_string()),
        None => {
            let texts: Vec<&str> = doc
                .get("payloads")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|p| p.get("isError").and_then(Value::as_bool) != Some(true))
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .filter(|t| !t.trim().is_empty())
                .collect();
            (!texts.is_empty()).then(|| texts.join("\n"))
        }
    };
    report.session_id = stream::str_at(&doc, "/sessionId")
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    report.usage = stream::usage(
        stream::u64_at(&doc, "/usage/input"),
        stream::u64_at(&doc, "/usage/output"),
        doc.get("costUsd").and_then(Value::as_f64),
    );
    let message = stream::str_at(&doc, "/error/message").map(str::to_string);
    let kind = stream::str_at(&doc, "/error/kind").unwrap_or("");
    report.outcome = match status.as_str() {
        "ok" if doc.get("ok").and_then(Value::as_bool) != Some(false) => Outcome::Success,
        "error" if is_api_error(kind, message.as_deref().unwrap_or("")) => Outcome::ApiError,
        "error" | "timeout" | "ok" => Outcome::Failure,
        other => {
            return stream::executor_error(
                report,
                format!("openclaw reported an unknown status `{other}`"),
            );
        }
    };
    if report.outcome != Outcome::Success {
        let message = message.unwrap_or_else(|| format!("openclaw run ended with `{status}`"));
        report.error = Some(if kind.is_empty() {
            message
        } else {
            format!("{message} ({kind})")
        });
    }
    report
}

/// Model API failures: OpenClaw words them "LLM request failed...", and a run whose every
/// model candidate failed is `fallback_exhausted`. The provider's own message is not
/// relayed (a scripted HTTP 400 becomes "provider rejected the request schema or tool
/// payload").
fn is_api_error(kind: &str, message: &str) -> bool {
    kind == "fallback_exhausted"
        || message.starts_with("LLM request failed")
        || stream::looks_like_api_error(message)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::registry::sample_request;

    #[test]
    fn invocation_snapshot() {
        let inv = OpenClaw.invocation(&sample_request()).unwrap();
        let config = "{\"agents\":{\"defaults\":{\"model\":{\"primary\":\"codencer/mock-model\"}}},\
            \"models\":{\"providers\":{\"codencer\":{\"api\":\"openai-completions\",\
            \"apiKey\":\"${OPENAI_API_KEY}\",\"baseUrl\":\"http://127.0.0.1:9000/v1\",\
            \"models\":[{\"id\":\"mock-model\",\"name\":\"mock-model\"}]}}}}\n";
        assert_eq!(
            inv,
            Invocation {
                argv: vec![
                    "/opt/bin/exe".into(),
                    "agent".into(),
                    "exec".into(),
                    "--message-file".into(),
                    "/home/codencer/task.md".into(),
                    "--json".into(),
                    "--cwd".into(),
                    "/wt".into(),
                    "--timeout".into(),
                    "0".into(),
                    "--config".into(),
                    "/home/codencer/openclaw.json".into(),
                ],
                env: vec![("HOME".into(), "/home/codencer".into())],
                files: vec![
                    (
                        PathBuf::from("/home/codencer/task.md"),
                        b"# Task\n\nFix it.\n".to_vec()
                    ),
                    (
                        PathBuf::from("/home/codencer/openclaw.json"),
                        config.as_bytes().to_vec()
                    ),
                ],
            }
        );
    }

    #[test]
    fn without_a_model_server_no_config_is_written() {
        let req = InvocationRequest {
            model_base_url: None,
            ..sample_request()
        };
        let inv = OpenClaw.invocation(&req).unwrap();
        assert_eq!(&inv.argv[inv.argv.len() - 2..], ["--model", "mock-model"]);
        assert!(!inv.argv.iter().any(|a| a == "--config"));
        assert_eq!(inv.files.len(), 1);
        let req = InvocationRequest {
            model: None,
            ..sample_request()
        };
        assert_eq!(
            OpenClaw.invocation(&req).unwrap_err().to_string(),
            "executor `openclaw` needs `model`: name the model served at the model base URL"
        );
    }

    #[test]
    fn cli_error_envelope_is_a_failure() {
        let report = parse_openclaw(
            b"{\"ok\": false, \"error\": {\"type\": \"cli_error\", \"message\": \"bad flag\"}}\n",
        );
        assert_eq!(report.outcome, Outcome::Failure);
        assert_eq!(report.error.as_deref(), Some("openclaw failed: bad flag"));
        let report = parse_openclaw(b"{\"payloads\": [], \"meta\": {}}\n");
        assert_eq!(report.outcome, Outcome::ExecutorError);
    }
}
