//! `antigravity`: Google Antigravity's CLI `agy`, experimental. It prints plain text only,
//! so its turn cannot be judged from its output: the report is `unreported` with the text
//! as summary, and validators decide.

use crate::registry::{Adapter, env_pairs};
use crate::stream;
use crate::{AdapterError, ExecutorReport, Invocation, InvocationRequest};

/// Antigravity CLI: `agy -p <prompt>`; its state lives under `~/.gemini/antigravity-cli`.
#[derive(Debug)]
pub(crate) struct Antigravity;

impl Adapter for Antigravity {
    fn name(&self) -> &'static str {
        "antigravity"
    }

    fn binary(&self) -> &'static str {
        "agy"
    }

    fn install_hint(&self) -> &'static str {
        "install Google Antigravity and put its `agy` CLI on PATH (not on a registry reachable here)"
    }

    fn experimental(&self) -> bool {
        true
    }

    fn config_home_env(&self) -> Option<&'static str> {
        Some("HOME")
    }

    fn invocation(&self, req: &InvocationRequest<'_>) -> Result<Invocation, AdapterError> {
        let home = req.home();
        Ok(Invocation {
            argv: req.argv(self.binary(), &["-p", req.prompt]),
            env: env_pairs(&[("HOME", &home)]),
            files: Vec::new(),
        })
    }

    fn parse(&self, stdout: &[u8]) -> ExecutorReport {
        let text = String::from_utf8_lossy(stdout);
        let text = text.trim();
        let report = ExecutorReport::unreported();
        if text.is_empty() {
            return stream::executor_error(report, "agy printed nothing".to_string());
        }
        ExecutorReport {
            summary: Some(text.to_string()),
            ..report
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Outcome;
    use crate::registry::sample_request;

    #[test]
    fn invocation_snapshot() {
        let inv = Antigravity.invocation(&sample_request()).unwrap();
        assert_eq!(
            inv,
            Invocation {
                argv: vec![
                    "/opt/bin/exe".into(),
                    "-p".into(),
                    "# Task\n\nFix it.\n".into()
                ],
                env: vec![("HOME".into(), "/home/codencer".into())],
                files: vec![],
            }
        );
    }

    #[test]
    fn text_is_the_summary() {
        let report = Antigravity.parse(b"Done: fixed the bug.\n");
        assert_eq!(report.outcome, Outcome::Unreported);
        assert_eq!(report.summary.as_deref(), Some("Done: fixed the bug."));
        assert_eq!(Antigravity.parse(b" \n").outcome, Outcome::ExecutorError);
    }
}
