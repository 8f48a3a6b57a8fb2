//! `gemini`: Google's Gemini CLI, `gemini -p <prompt> -o stream-json --approval-mode yolo`.

use serde_json::Value;

use crate::registry::{Adapter, env_pairs};
use crate::stream::{self, Tools};
use crate::{AdapterError, ExecutorReport, Invocation, InvocationRequest, Outcome};

/// Gemini CLI, with its settings (API-key auth, no telemetry, no auto-update) in
/// `<config home>/.gemini/settings.json`. (`GEMINI_CLI_SYSTEM_SETTINGS_PATH` would avoid the
/// subdirectory, but gemini skips a system settings file under a world-writable parent.)
#[derive(Debug)]
pub(crate) struct Gemini;

const SETTINGS: &str = ".gemini/settings.json";

impl Adapter for Gemini {
    fn name(&self) -> &'static str {
        "gemini"
    }

    fn binary(&self) -> &'static str {
        "gemini"
    }

    fn install_hint(&self) -> &'static str {
        "npm install -g @google/gemini-cli (or scripts/install-executors.sh)"
    }

    fn config_home_env(&self) -> Option<&'static str> {
        Some("GEMINI_CLI_HOME")
    }

    fn invocation(&self, req: &InvocationRequest<'_>) -> Result<Invocation, AdapterError> {
        let mut argv = req.argv(
            self.binary(),
            &[
                "-p",
                req.prompt,
                "-o",
                "stream-json",
                "--approval-mode",
                "yolo",
            ],
        );
        if let Some(model) = req.model {
            argv.extend(["-m".to_string(), model.to_string()]);
        }
        let home = req.home();
        let settings = req.config_home.join(SETTINGS);
        let mut env = env_pairs(&[
            ("GEMINI_CLI_HOME", &home),
            ("HOME", &home),
            ("GEMINI_CLI_TRUST_WORKSPACE", "true"),
        ]);
        if let Some(url) = req.model_base_url {
            env.extend(env_pairs(&[(
                "GOOGLE_GEMINI_BASE_URL",
                url.trim_end_matches('/'),
            )]));
        }
        let files = vec![(settings, SETTINGS_JSON.as_bytes().to_vec())];
        Ok(Invocation { argv, env, files })
    }

    fn parse(&self, stdout: &[u8]) -> ExecutorReport {
        parse_gemini(stdout)
    }
}

/// Without `selectedType` a headless run fails with "Invalid auth method selected".
const SETTINGS_JSON: &str = "{\"security\":{\"auth\":{\"selectedType\":\"gemini-api-key\"}},\
\"privacy\":{\"usageStatisticsEnabled\":false},\"general\":{\"disableAutoUpdate\":true}}\n";

/// Tools whose `file_path` argument is a file written.
const WRITE_TOOLS: &[&str] = &["write_file", "replace", "edit"];

fn parse_gemini(stdout: &[u8]) -> ExecutorReport {
    let lines = stream::json_lines(stdout);
    let mut report = ExecutorReport::unreported();
    let mut tools = Tools::default();
    // The summary is the last assistant message: the deltas since the last tool event.
    let mut message = String::new();
    let mut message_closed = false;
    let mut result: Option<&Value> = None;
    for event in &lines.events {
        match event.get("type").and_then(Value::as_str) {
            Some("init") => {
                report.session_id = stream::str_at(event, "/session_id").map(str::to_string);
            }
            Some("message") if stream::str_at(event, "/role") == Some("assistant") => {
                if message_closed {
                    message.clear();
                    message_closed = false;
                }
                message.push_str(stream::str_at(event, "/content").unwrap_or(""));
            }
            Some("tool_use") => {
                message_closed = true;
                let name = stream::str_at(event, "/tool_name").unwrap_or("?");
                let args = event.get("parameters").unwrap_or(&Value::Null);
                tools.call(stream::str_at(event, "/tool_id"), name, args);
                if WRITE_TOOLS.contains(&name) {
                    let path = stream::str_at(args, "/file_path")
                        .or_else(|| stream::str_at(args, "/absolute_path"));
                    stream::note_file(&mut report.files_reported, path);
                }
            }
            Some("tool_result") => {
                message_closed = true;
                if let Some(id) = stream::str_at(event, "/tool_id") {
                    tools.result(id, stream::str_at(event, "/status") == Some("success"));
                }
            }
            Some("result") => result = Some(event),
            _ => {}
        }
    }
    report.tool_calls = tools.into_calls();
    if !message.is_empty() {
        report.summary = Some(message);
    }
    let Some(result) = result else {
        let error = stream::incomplete(&lines, "gemini", "result");
        return stream::executor_error(report, error);
    };
    report.usage = stream::usage(
        stream::u64_at(result, "/stats/input_tokens"),
        stream::u64_at(result, "/stats/output_tokens"),
        None,
    );
    let error_type = stream::str_at(result, "/error/type").unwrap_or("");
    let error_message = stream::str_at(result, "/error/message").map(str::to_string);
    report.outcome = match stream::str_at(result, "/status") {
        Some("success") => Outcome::Success,
        _ if error_type == "FatalTurnLimitedError" => Outcome::MaxTurns,
        _ if error_message
            .as_deref()
            .is_some_and(stream::looks_like_api_error) =>
        {
            Outcome::ApiError
        }
        _ => Outcome::Failure,
    };
    if report.outcome != Outcome::Success {
        report.error = Some(error_message.unwrap_or_else(|| {
            format!(
                "result status `{}`",
                stream::str_at(result, "/status").unwrap_or("missing")
            )
        }));
    }
    report
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::registry::sample_request;

    #[test]
    fn invocation_snapshot() {
        let inv = Gemini.invocation(&sample_request()).unwrap();
        assert_eq!(
            inv,
            Invocation {
                argv: vec![
                    "/opt/bin/exe".into(),
                    "-p".into(),
                    "# Task\n\nFix it.\n".into(),
                    "-o".into(),
                    "stream-json".into(),
                    "--approval-mode".into(),
                    "yolo".into(),
                    "-m".into(),
                    "mock-model".into(),
                ],
                env: vec![
                    ("GEMINI_CLI_HOME".into(), "/home/codencer".into()),
                    ("HOME".into(), "/home/codencer".into()),
                    ("GEMINI_CLI_TRUST_WORKSPACE".into(), "true".into()),
                    (
                        "GOOGLE_GEMINI_BASE_URL".into(),
                        "http://127.0.0.1:9000".into()
                    ),
                ],
                files: vec![(
                    PathBuf::from("/home/codencer/.gemini/settings.json"),
                    SETTINGS_JSON.as_bytes().to_vec()
                )],
            }
        );
    }
}
