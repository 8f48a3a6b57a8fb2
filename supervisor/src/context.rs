//! What every actor of one supervisor shares: the record, the state dir, cancellation, the
//! policy actor.

use std::path::{Path, PathBuf};

use ractor::ActorRef;
use tokio::sync::watch;

use crate::actors::policy::{PolicyCheck, PolicyMsg, PolicyVerdict};
use crate::record::Recorder;
use crate::supervisor_error::SupervisorError;

/// Shared by the actors of one supervisor (behind an `Arc`).
#[derive(Debug)]
pub struct Context {
    pub recorder: Recorder,
    pub state_dir: PathBuf,
    /// Flips to `true` on cancellation (Ctrl-C, SIGTERM, an API cancel).
    pub cancel: watch::Receiver<bool>,
    pub policy: ActorRef<PolicyMsg>,
}

impl Context {
    /// `<state>/worktrees/<run>/<step>-<attempt>`.
    pub fn worktree_dir(&self, run_id: &str, step_index: u32, attempt: u32) -> PathBuf {
        self.state_dir
            .join("worktrees")
            .join(run_id)
            .join(format!("{step_index}-{attempt}"))
    }

    /// Per-attempt scratch space outside the worktree (output files, private home).
    pub fn scratch_dir(&self, attempt_id: &str) -> Result<PathBuf, SupervisorError> {
        let dir = self.state_dir.join("attempts").join(attempt_id);
        std::fs::create_dir_all(&dir)
            .map_err(|e| SupervisorError::io("create the attempt's scratch directory", &dir, e))?;
        Ok(dir)
    }

    /// The environment an executor or validator starts from: nothing of the operator's but
    /// PATH and locale; a private HOME.
    pub fn base_env(&self, home: &Path) -> Vec<(String, String)> {
        let path =
            std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".to_string());
        vec![
            ("PATH".to_string(), path),
            ("HOME".to_string(), home.display().to_string()),
            ("LANG".to_string(), "C.UTF-8".to_string()),
            ("TERM".to_string(), "dumb".to_string()),
            ("CODENCER".to_string(), "1".to_string()),
        ]
    }

    /// Asks the policy actor.
    pub async fn policy_check(&self, check: PolicyCheck) -> Result<PolicyVerdict, SupervisorError> {
        ractor::call!(self.policy, PolicyMsg::Check, check)
            .map_err(|err| SupervisorError::Actor(format!("policy actor did not answer: {err}")))
    }
}
