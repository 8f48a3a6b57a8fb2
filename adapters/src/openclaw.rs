//! `openclaw`: OpenClaw's local agent, `openclaw agent --local --json`. Not verified here:
//! the pinned release needs Node >= 24 (see docs/executors.md); the output shape follows
//! the documented `--json` result (`payloads` and `meta`).

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
        "npm install -g openclaw (needs Node >= 24; scripts/install-executors.sh --only openclaw)"
    }

    fn config_home_env(&self) -> Option<&'static str> {
        Some("HOME")
    }

    fn invocation(&self, req: &InvocationRequest<'_>) -> Result<Invocation, AdapterError> {
        let task = req.config_home.join(TASK_FILE);
        let argv = vec![
            req.program(self.binary()),
            "agent".to_string(),
            "--local".to_string(),
            "--message-file".to_string(),
            task.display().to_string(),
            "--json".to_string(),
        ];
        let home = req.home();
        let mut env = env_pairs(&[("HOME", &home)]);
        let mut files = vec![(task, req.prompt.as_bytes().to_vec())];
        if let Some(base) = req.openai_base() {
            let model = req.model.ok_or_else(|| AdapterError::MissingField {
                executor: "openclaw".to_string(),
                field: "model".to_string(),
                fix: "name the model served at the model base URL".to_string(),
            })?;
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
            env.extend(env_pairs(&[(
                "OPENCLAW_CONFIG_PATH",
                &path.display().to_string(),
            )]));
            files.push((path, format!("{config}\n").into_bytes()));
        }
        Ok(Invocation { argv, env, files })
    }

    fn parse(&self, stdout: &[u8]) -> ExecutorReport {
        parse_openclaw(stdout)
    }
}

/// One JSON document: `{"payloads": [{"text": ...}], "meta": {"durationMs", "aborted",
/// "error"?, "agentMeta": {"sessionId", "usage": {"input", "output"}}}}`.
fn parse_openclaw(stdout: &[u8]) -> ExecutorReport {
    let mut report = ExecutorReport::unreported();
    let text = String::from_utf8_lossy(stdout);
    // Tolerate log lines before the document: it starts at the first line opening `{`.
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
    let texts: Vec<&str> = doc
        .get("payloads")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("text").and_then(Value::as_str))
        .collect();
    if !texts.is_empty() {
        report.summary = Some(texts.join("\n"));
    }
    let agent = doc.pointer("/meta/agentMeta").unwrap_or(&Value::Null);
    report.session_id = stream::str_at(agent, "/sessionId").map(str::to_string);
    report.usage = stream::usage(
        stream::u64_at(agent, "/usage/input"),
        stream::u64_at(agent, "/usage/output"),
        None,
    );
    let error = doc
        .pointer("/meta/error/message")
        .or_else(|| doc.pointer("/meta/error"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let aborted = doc.pointer("/meta/aborted").and_then(Value::as_bool) == Some(true);
    report.outcome = match &error {
        Some(message) if stream::looks_like_api_error(message) => Outcome::ApiError,
        Some(_) => Outcome::Failure,
        None if aborted => Outcome::Failure,
        None => Outcome::Success,
    };
    if report.outcome != Outcome::Success {
        report.error = Some(error.unwrap_or_else(|| "openclaw run aborted".to_string()));
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
                    "--local".into(),
                    "--message-file".into(),
                    "/home/codencer/task.md".into(),
                    "--json".into(),
                ],
                env: vec![
                    ("HOME".into(), "/home/codencer".into()),
                    (
                        "OPENCLAW_CONFIG_PATH".into(),
                        "/home/codencer/openclaw.json".into()
                    ),
                ],
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
}
