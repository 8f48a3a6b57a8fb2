//! `opencode`: OpenCode, `opencode run --format json --auto`. Without `--auto` every
//! permission request is rejected in a headless run.

use serde_json::{Value, json};

use crate::registry::{Adapter, env_pairs};
use crate::stream::{self, Tools};
use crate::{AdapterError, ExecutorReport, Invocation, InvocationRequest, Outcome};

/// OpenCode, its whole configuration passed inline in `OPENCODE_CONFIG_CONTENT`.
#[derive(Debug)]
pub(crate) struct OpenCode;

/// Provider id used for `model_base_url`.
const PROVIDER: &str = "codencer";

impl Adapter for OpenCode {
    fn name(&self) -> &'static str {
        "opencode"
    }

    fn binary(&self) -> &'static str {
        "opencode"
    }

    fn install_hint(&self) -> &'static str {
        "npm install -g opencode-ai (or scripts/install-executors.sh)"
    }

    fn config_home_env(&self) -> Option<&'static str> {
        Some("OPENCODE_CONFIG_DIR")
    }

    fn invocation(&self, req: &InvocationRequest<'_>) -> Result<Invocation, AdapterError> {
        let mut config = json!({
            "$schema": "https://opencode.ai/config.json",
            "autoupdate": false,
            "share": "disabled",
        });
        let mut model_arg = req.model.map(str::to_string);
        if let Some(base) = req.openai_base() {
            let model = req.model_for_base_url("opencode")?;
            config["provider"] = json!({ PROVIDER: {
                "npm": "@ai-sdk/openai-compatible",
                "name": PROVIDER,
                "options": { "baseURL": base, "apiKey": "{env:OPENAI_API_KEY}" },
                "models": { model: { "name": model } },
            }});
            model_arg = Some(format!("{PROVIDER}/{model}"));
        }
        let mut argv = req.argv(self.binary(), &["run", "--format", "json", "--auto"]);
        if let Some(model) = model_arg {
            argv.extend(["-m".to_string(), model]);
        }
        argv.extend(["--".to_string(), req.prompt.to_string()]);
        let home = req.home();
        let sub = |dir: &str| req.config_home.join(dir).display().to_string();
        let env = env_pairs(&[
            ("OPENCODE_CONFIG_DIR", &home),
            ("HOME", &home),
            ("XDG_CONFIG_HOME", &sub(".config")),
            ("XDG_DATA_HOME", &sub(".local/share")),
            ("XDG_CACHE_HOME", &sub(".cache")),
            ("XDG_STATE_HOME", &sub(".local/state")),
            ("OPENCODE_CONFIG_CONTENT", &config.to_string()),
            ("OPENCODE_DISABLE_CLAUDE_CODE", "1"),
            ("OPENCODE_DISABLE_AUTOUPDATE", "1"),
            ("OPENCODE_DISABLE_MODELS_FETCH", "1"),
        ]);
        Ok(Invocation {
            argv,
            env,
            files: Vec::new(),
        })
    }

    fn parse(&self, stdout: &[u8]) -> ExecutorReport {
        parse_opencode(stdout)
    }
}

const WRITE_TOOLS: &[&str] = &["write", "edit", "patch", "multiedit"];

fn parse_opencode(stdout: &[u8]) -> ExecutorReport {
    let lines = stream::json_lines(stdout);
    let mut report = ExecutorReport::unreported();
    let mut tools = Tools::default();
    let (mut input, mut output, mut cost) = (None, None, None::<f64>);
    let mut end: Option<(Outcome, Option<String>)> = None;
    for event in &lines.events {
        if report.session_id.is_none() {
            report.session_id = stream::str_at(event, "/sessionID").map(str::to_string);
        }
        let part = event.get("part").unwrap_or(&Value::Null);
        match event.get("type").and_then(Value::as_str) {
            Some("text") => {
                report.summary = stream::str_at(part, "/text").map(str::to_string);
            }
            Some("tool_use") => {
                let name = stream::str_at(part, "/tool").unwrap_or("?");
                let args = part.pointer("/state/input").unwrap_or(&Value::Null);
                let id = stream::str_at(part, "/callID");
                tools.call(id, name, args);
                if WRITE_TOOLS.contains(&name) {
                    stream::note_file(
                        &mut report.files_reported,
                        stream::str_at(args, "/filePath"),
                    );
                }
                let status = stream::str_at(part, "/state/status");
                if let (Some(id), Some("completed" | "error")) = (id, status) {
                    let exit_ok = part
                        .pointer("/state/metadata/exit")
                        .and_then(Value::as_i64)
                        .is_none_or(|code| code == 0);
                    tools.result(id, status == Some("completed") && exit_ok);
                }
            }
            Some("step_finish") => {
                input = stream::add(input, stream::u64_at(part, "/tokens/input"));
                output = stream::add(output, stream::u64_at(part, "/tokens/output"));
                if let Some(c) = part.get("cost").and_then(Value::as_f64) {
                    cost = Some(cost.unwrap_or(0.0) + c);
                }
                end = match stream::str_at(part, "/reason") {
                    // The model asked for tools: another step must follow.
                    Some("tool-calls") => None,
                    Some("stop") | None => Some((Outcome::Success, None)),
                    Some(other) => {
                        Some((Outcome::Failure, Some(format!("step finished: {other}"))))
                    }
                };
            }
            Some("error") => {
                let name = stream::str_at(event, "/error/name").unwrap_or("");
                let message = stream::str_at(event, "/error/data/message")
                    .or_else(|| stream::str_at(event, "/error/message"))
                    .unwrap_or(name);
                let api = name == "APIError" || stream::looks_like_api_error(message);
                let outcome = if api {
                    Outcome::ApiError
                } else {
                    Outcome::Failure
                };
                end = Some((outcome, Some(format!("{name}: {message}"))));
            }
            _ => {}
        }
    }
    report.tool_calls = tools.into_calls();
    report.usage = stream::usage(input, output, cost);
    match end {
        Some((outcome, error)) => {
            report.outcome = outcome;
            report.error = error;
            report
        }
        None => {
            let error = stream::incomplete(&lines, "opencode", "step_finish");
            stream::executor_error(report, error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::sample_request;

    #[test]
    fn invocation_snapshot() {
        let inv = OpenCode.invocation(&sample_request()).unwrap();
        let config = "{\"$schema\":\"https://opencode.ai/config.json\",\"autoupdate\":false,\
            \"provider\":{\"codencer\":{\"models\":{\"mock-model\":{\"name\":\"mock-model\"}},\
            \"name\":\"codencer\",\"npm\":\"@ai-sdk/openai-compatible\",\"options\":{\
            \"apiKey\":\"{env:OPENAI_API_KEY}\",\"baseURL\":\"http://127.0.0.1:9000/v1\"}}},\
            \"share\":\"disabled\"}";
        assert_eq!(
            inv,
            Invocation {
                argv: vec![
                    "/opt/bin/exe".into(),
                    "run".into(),
                    "--format".into(),
                    "json".into(),
                    "--auto".into(),
                    "-m".into(),
                    "codencer/mock-model".into(),
                    "--".into(),
                    "# Task\n\nFix it.\n".into(),
                ],
                env: vec![
                    ("OPENCODE_CONFIG_DIR".into(), "/home/codencer".into()),
                    ("HOME".into(), "/home/codencer".into()),
                    ("XDG_CONFIG_HOME".into(), "/home/codencer/.config".into()),
                    ("XDG_DATA_HOME".into(), "/home/codencer/.local/share".into()),
                    ("XDG_CACHE_HOME".into(), "/home/codencer/.cache".into()),
                    (
                        "XDG_STATE_HOME".into(),
                        "/home/codencer/.local/state".into()
                    ),
                    ("OPENCODE_CONFIG_CONTENT".into(), config.into()),
                    ("OPENCODE_DISABLE_CLAUDE_CODE".into(), "1".into()),
                    ("OPENCODE_DISABLE_AUTOUPDATE".into(), "1".into()),
                    ("OPENCODE_DISABLE_MODELS_FETCH".into(), "1".into()),
                ],
                files: vec![],
            }
        );
    }

    #[test]
    fn base_url_without_model_is_refused() {
        let req = InvocationRequest {
            model: None,
            ..sample_request()
        };
        let err = OpenCode.invocation(&req).unwrap_err();
        assert_eq!(
            err.to_string(),
            "executor `opencode` needs `model`: name the model served at the model base URL"
        );
    }
}
