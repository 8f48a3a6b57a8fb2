//! The supervisor's error type.

use std::path::Path;

/// Errors that end a run as an infrastructure failure (exit code 4): the record, the disk,
/// git or the actor system failed, not the executor.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SupervisorError {
    #[error("the store failed")]
    Store(#[from] codencer_store::StoreError),
    #[error("cannot {what} at {path}")]
    Io {
        what: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Infrastructure(String),
    #[error("actor system: {0}")]
    Actor(String),
    /// Another process (a `codencer run` or `resume`, or orchestratord) drives this run
    /// from the same state directory.
    #[error(
        "run {run_id} is being driven by another Codencer process on this state directory; refusing to touch it (wait for it to end, or stop it)"
    )]
    RunBusy { run_id: String },
}

impl SupervisorError {
    pub(crate) fn io(what: &'static str, path: &Path, source: std::io::Error) -> SupervisorError {
        SupervisorError::Io {
            what,
            path: path.display().to_string(),
            source,
        }
    }
}
