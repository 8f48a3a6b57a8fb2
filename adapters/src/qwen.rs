//! `qwen`: Qwen Code (a Gemini CLI fork) with Claude-style `stream-json` output, talking to
//! an OpenAI-compatible chat completions API.

use crate::claude::parse_claude_style;
use crate::registry::{Adapter, env_pairs};
use crate::{AdapterError, ExecutorReport, Invocation, InvocationRequest};

/// Qwen Code: `qwen -p <prompt> --output-format stream-json --yolo --auth-type openai`.
#[derive(Debug)]
pub(crate) struct Qwen;

impl Adapter for Qwen {
    fn name(&self) -> &'static str {
        "qwen"
    }

    fn binary(&self) -> &'static str {
        "qwen"
    }

    fn install_hint(&self) -> &'static str {
        "npm install -g @qwen-code/qwen-code (or scripts/install-executors.sh)"
    }

    fn config_home_env(&self) -> Option<&'static str> {
        Some("HOME")
    }

    fn invocation(&self, req: &InvocationRequest<'_>) -> Result<Invocation, AdapterError> {
        let argv = req.argv(
            self.binary(),
            &[
                "-p",
                req.prompt,
                "--output-format",
                "stream-json",
                "--yolo",
                // The API-key path is the only headless one (the default is an OAuth login).
                "--auth-type",
                "openai",
            ],
        );
        let home = req.home();
        let mut env = env_pairs(&[("HOME", &home), ("QWEN_CODE_SUPPRESS_YOLO_WARNING", "1")]);
        if let Some(base) = req.openai_base() {
            env.extend(env_pairs(&[("OPENAI_BASE_URL", &base)]));
        }
        if let Some(model) = req.model {
            env.extend(env_pairs(&[("OPENAI_MODEL", model)]));
        }
        Ok(Invocation {
            argv,
            env,
            files: Vec::new(),
        })
    }

    fn parse(&self, stdout: &[u8]) -> ExecutorReport {
        parse_claude_style(stdout, "qwen", &["write_file", "edit", "replace"])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::sample_request;

    #[test]
    fn invocation_snapshot() {
        let inv = Qwen.invocation(&sample_request()).unwrap();
        assert_eq!(
            inv,
            Invocation {
                argv: vec![
                    "/opt/bin/exe".into(),
                    "-p".into(),
                    "# Task\n\nFix it.\n".into(),
                    "--output-format".into(),
                    "stream-json".into(),
                    "--yolo".into(),
                    "--auth-type".into(),
                    "openai".into(),
                ],
                env: vec![
                    ("HOME".into(), "/home/codencer".into()),
                    ("QWEN_CODE_SUPPRESS_YOLO_WARNING".into(), "1".into()),
                    ("OPENAI_BASE_URL".into(), "http://127.0.0.1:9000/v1".into()),
                    ("OPENAI_MODEL".into(), "mock-model".into()),
                ],
                files: vec![],
            }
        );
    }
}
