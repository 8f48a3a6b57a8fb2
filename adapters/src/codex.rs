//! `codex`: OpenAI's Codex CLI, `codex exec --json`. Our sandbox is the sandbox, so codex's
//! own is turned off (`danger-full-access`): it would need namespaces it cannot get inside.

use serde_json::{Value, json};

use crate::registry::{Adapter, env_pairs};
use crate::stream::{self, Tools};
use crate::{AdapterError, ExecutorReport, Invocation, InvocationRequest, Outcome};

/// Codex CLI: `codex exec --json --sandbox danger-full-access --skip-git-repo-check -C <wt>`.
#[derive(Debug)]
pub(crate) struct Codex;

/// Name of the custom model provider written into `config.toml` for `model_base_url`.
const PROVIDER: &str = "codencer";

impl Adapter for Codex {
    fn name(&self) -> &'static str {
        "codex"
    }

    fn binary(&self) -> &'static str {
        "codex"
    }

    fn install_hint(&self) -> &'static str {
        "npm install -g @openai/codex (or scripts/install-executors.sh)"
    }

    fn config_home_env(&self) -> Option<&'static str> {
        Some("CODEX_HOME")
    }

    fn invocation(&self, req: &InvocationRequest<'_>) -> Result<Invocation, AdapterError> {
        let mut argv = req.argv(
            self.binary(),
            &[
                "exec",
                "--json",
                "--sandbox",
                "danger-full-access",
                "--skip-git-repo-check",
                "-C",
                &req.worktree.display().to_string(),
            ],
        );
        if let Some(model) = req.model {
            argv.extend(["-m".to_string(), model.to_string()]);
        }
        // `--` so a prompt starting with `-` is never read as a flag.
        argv.extend(["--".to_string(), req.prompt.to_string()]);
        let home = req.home();
        let env = env_pairs(&[("CODEX_HOME", &home), ("HOME", &home)]);
        let mut files = Vec::new();
        if let Some(base) = req.openai_base() {
            files.push((
                req.config_home.join("config.toml"),
                config_toml(&base, req.model),
            ));
        }
        Ok(Invocation { argv, env, files })
    }

    fn parse(&self, stdout: &[u8]) -> ExecutorReport {
        parse_codex(stdout)
    }
}

/// A `config.toml` selecting a custom Responses-API provider at `base`. The key is read
/// from `OPENAI_API_KEY`, as for the default provider, so policy passes the same variable.
fn config_toml(base: &str, model: Option<&str>) -> Vec<u8> {
    let mut text = String::new();
    if let Some(model) = model {
        text.push_str(&format!("model = {}\n", toml_string(model)));
    }
    text.push_str(&format!(
        "model_provider = \"{PROVIDER}\"\n\n[model_providers.{PROVIDER}]\n\
         name = \"{PROVIDER}\"\nbase_url = {}\nenv_key = \"OPENAI_API_KEY\"\n\
         wire_api = \"responses\"\n",
        toml_string(base)
    ));
    text.into_bytes()
}

/// A TOML basic string; JSON string escaping is valid TOML.
fn toml_string(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

fn parse_codex(stdout: &[u8]) -> ExecutorReport {
    let lines = stream::json_lines(stdout);
    let mut report = ExecutorReport::unreported();
    let mut tools = Tools::default();
    let (mut input, mut output) = (None, None);
    let mut last_error: Option<String> = None;
    let mut end: Option<(Outcome, Option<String>)> = None;
    for event in &lines.events {
        match event.get("type").and_then(Value::as_str) {
            Some("thread.started") => {
                report.session_id = stream::str_at(event, "/thread_id").map(str::to_string);
            }
            Some("item.started") | Some("item.updated") => {
                if let Some(item) = event.get("item") {
                    item_call(item, &mut tools, &mut report.files_reported);
                }
            }
            Some("item.completed") => {
                let Some(item) = event.get("item") else {
                    continue;
                };
                match item.get("type").and_then(Value::as_str) {
                    Some("agent_message") => {
                        report.summary = stream::str_at(item, "/text").map(str::to_string);
                    }
                    // Non-fatal notices (e.g. unknown model metadata); kept in case the turn
                    // fails without saying why.
                    Some("error") => {
                        last_error = stream::str_at(item, "/message").map(str::to_string)
                    }
                    _ => {
                        if let Some(id) = item_call(item, &mut tools, &mut report.files_reported) {
                            tools.result(&id, item_ok(item));
                        }
                    }
                }
            }
            Some("turn.completed") => {
                input = stream::add(input, stream::u64_at(event, "/usage/input_tokens"));
                output = stream::add(output, stream::u64_at(event, "/usage/output_tokens"));
                end = Some((Outcome::Success, None));
            }
            Some("turn.failed") => {
                let msg = stream::str_at(event, "/error/message").map(str::to_string);
                end = Some((Outcome::ApiError, msg.or_else(|| last_error.clone())));
            }
            // Stream errors (also "Reconnecting... 1/5"): the turn's end says whether the
            // run recovered.
            Some("error") => last_error = stream::str_at(event, "/message").map(str::to_string),
            _ => {}
        }
    }
    report.tool_calls = tools.into_calls();
    report.usage = stream::usage(input, output, None);
    match end {
        Some((outcome, error)) => {
            report.outcome = outcome;
            if outcome != Outcome::Success {
                report.error =
                    Some(error.unwrap_or_else(|| "codex reported a failed turn".to_string()));
            }
            report
        }
        None => {
            let mut error = stream::incomplete(&lines, "codex", "turn.completed");
            if let Some(last) = last_error {
                error.push_str(&format!("; last error: {last}"));
            }
            stream::executor_error(report, error)
        }
    }
}

/// Registers the tool call an item stands for; returns its id.
fn item_call(item: &Value, tools: &mut Tools, files: &mut Vec<String>) -> Option<String> {
    let id = item.get("id").and_then(Value::as_str)?;
    let (name, args) = match item.get("type").and_then(Value::as_str)? {
        "command_execution" => (
            "command_execution".to_string(),
            json!({ "command": item.get("command") }),
        ),
        "file_change" => {
            for change in item
                .get("changes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                stream::note_file(files, stream::str_at(change, "/path"));
            }
            (
                "file_change".to_string(),
                json!({ "changes": item.get("changes") }),
            )
        }
        "mcp_tool_call" => (
            format!(
                "{}.{}",
                stream::str_at(item, "/server").unwrap_or("?"),
                stream::str_at(item, "/tool").unwrap_or("?")
            ),
            item.get("arguments").cloned().unwrap_or(Value::Null),
        ),
        "web_search" => (
            "web_search".to_string(),
            json!({ "query": item.get("query") }),
        ),
        _ => return None,
    };
    tools.call(Some(id), &name, &args);
    Some(id.to_string())
}

fn item_ok(item: &Value) -> bool {
    let status_ok = matches!(
        item.get("status").and_then(Value::as_str),
        None | Some("completed")
    );
    let exit_ok = item
        .get("exit_code")
        .and_then(Value::as_i64)
        .is_none_or(|code| code == 0);
    status_ok && exit_ok && item.get("error").is_none_or(Value::is_null)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::registry::sample_request;

    #[test]
    fn invocation_snapshot() {
        let inv = Codex.invocation(&sample_request()).unwrap();
        assert_eq!(
            inv,
            Invocation {
                argv: vec![
                    "/opt/bin/exe".into(),
                    "exec".into(),
                    "--json".into(),
                    "--sandbox".into(),
                    "danger-full-access".into(),
                    "--skip-git-repo-check".into(),
                    "-C".into(),
                    "/wt".into(),
                    "-m".into(),
                    "mock-model".into(),
                    "--".into(),
                    "# Task\n\nFix it.\n".into(),
                ],
                env: vec![
                    ("CODEX_HOME".into(), "/home/codencer".into()),
                    ("HOME".into(), "/home/codencer".into()),
                ],
                files: vec![(
                    PathBuf::from("/home/codencer/config.toml"),
                    b"model = \"mock-model\"\nmodel_provider = \"codencer\"\n\n\
                      [model_providers.codencer]\nname = \"codencer\"\n\
                      base_url = \"http://127.0.0.1:9000/v1\"\nenv_key = \"OPENAI_API_KEY\"\n\
                      wire_api = \"responses\"\n"
                        .to_vec()
                )],
            }
        );
    }

    #[test]
    fn without_a_base_url_no_config_is_written() {
        let req = InvocationRequest {
            model_base_url: None,
            model: None,
            ..sample_request()
        };
        let inv = Codex.invocation(&req).unwrap();
        assert_eq!(inv.files, vec![]);
        assert_eq!(inv.argv[inv.argv.len() - 2], "--");
    }
}
