//! `shell`: any command line as the executor. The scripted executor of tests and demos.

use crate::{AdapterError, ExecutorReport, Invocation, InvocationRequest, registry::Adapter};

/// Runs the TaskSpec's `command:` with `/bin/sh -c`, the prompt in `CODENCER_PROMPT` and the
/// attempt number in `CODENCER_ATTEMPT`.
#[derive(Debug)]
pub(crate) struct Shell;

impl Adapter for Shell {
    fn name(&self) -> &'static str {
        "shell"
    }

    fn binary(&self) -> &'static str {
        "sh"
    }

    fn install_hint(&self) -> &'static str {
        "apt-get install dash (any POSIX sh)"
    }

    fn version_args(&self) -> &'static [&'static str] {
        &[]
    }

    fn config_home_env(&self) -> Option<&'static str> {
        None
    }

    fn invocation(&self, req: &InvocationRequest<'_>) -> Result<Invocation, AdapterError> {
        let command = req
            .command
            .filter(|c| !c.trim().is_empty())
            .ok_or_else(|| AdapterError::MissingField {
                executor: "shell".to_string(),
                field: "command".to_string(),
                fix: "add `command: <shell command line>` to the task or the step".to_string(),
            })?;
        Ok(Invocation {
            argv: vec!["/bin/sh".to_string(), "-c".to_string(), command.to_string()],
            env: vec![
                ("CODENCER_PROMPT".to_string(), req.prompt.to_string()),
                ("CODENCER_ATTEMPT".to_string(), req.attempt.to_string()),
            ],
            files: Vec::new(),
        })
    }

    fn parse(&self, _stdout: &[u8]) -> ExecutorReport {
        ExecutorReport::unreported()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn request(command: Option<&str>) -> InvocationRequest<'_> {
        InvocationRequest {
            prompt: "do it",
            worktree: Path::new("/wt"),
            attempt: 3,
            command,
            config_home: Path::new("/home/codencer"),
            binary: None,
            model_base_url: None,
            model: None,
        }
    }

    #[test]
    fn invocation_snapshot() {
        let inv = Shell.invocation(&request(Some("./fix.sh --all"))).unwrap();
        assert_eq!(
            inv,
            Invocation {
                argv: vec!["/bin/sh".into(), "-c".into(), "./fix.sh --all".into()],
                env: vec![
                    ("CODENCER_PROMPT".into(), "do it".into()),
                    ("CODENCER_ATTEMPT".into(), "3".into()),
                ],
                files: vec![],
            }
        );
    }

    #[test]
    fn missing_command_names_the_field() {
        let err = Shell.invocation(&request(Some("  "))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "executor `shell` needs `command`: add `command: <shell command line>` to the task or the step"
        );
    }
}
