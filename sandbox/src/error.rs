//! The error type of this crate.

use std::io;
use std::path::PathBuf;

/// Errors setting up or talking to a sandbox.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SandboxError {
    /// The spec is not usable (reason in the message).
    #[error("invalid sandbox spec: {0}")]
    InvalidSpec(String),
    /// Serializing or parsing the spec or the report failed.
    #[error("encoding {what}")]
    Encoding {
        /// What was being encoded or decoded.
        what: &'static str,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// Starting the worker binary failed.
    #[error("spawning worker {path}")]
    Spawn {
        /// The worker binary.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A system call failed.
    #[error("{op}")]
    Sys {
        /// What was being done.
        op: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A mount operation failed.
    #[error("mounting {path}")]
    Mount {
        /// The mount target (or source).
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// `pivot_root` failed.
    #[error("pivot_root to {path}")]
    PivotRoot {
        /// The new root.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Building or applying the Landlock ruleset failed.
    #[error("landlock")]
    Landlock(#[source] landlock::RulesetError),
    /// Building the seccomp filter failed.
    #[error("building the seccomp filter")]
    SeccompBuild(#[source] seccompiler::BackendError),
    /// Applying the seccomp filter failed.
    #[error("applying the seccomp filter")]
    Seccomp(#[source] seccompiler::Error),
    /// Dropping capabilities failed.
    #[error("capabilities")]
    Caps(#[source] caps::errors::CapsError),
    /// The I/O with the worker failed.
    #[error("worker i/o")]
    WorkerIo(#[source] io::Error),
}

impl SandboxError {
    /// A failed system call `op`.
    pub(crate) fn sys(op: impl Into<String>, source: impl Into<io::Error>) -> Self {
        SandboxError::Sys {
            op: op.into(),
            source: source.into(),
        }
    }
}
