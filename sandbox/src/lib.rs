//! codencer-sandbox: confinement mechanics for running an executor in a git worktree.
//!
//! The supervisor describes the process and its confinement with an [`ExecSpec`], starts
//! the `codencer-worker` binary with [`spawn_worker`], and gets a [`WorkerReport`] back
//! from [`WorkerHandle::wait`]: the exit status and, per layer, what was enforced.
//! [`Egress`] runs the allow-list proxy and forward relays a sandbox's network goes
//! through. [`probe_host`] tells what this host can enforce (for `codencer doctor` and `strict`).
//!
//! The [`confine`] module holds the mechanics the worker applies; nothing else should
//! call it.

pub mod confine;
mod error;
mod probe;
mod proxy;
#[cfg(test)]
mod proxy_tests;
mod report;
mod spawn;
mod spec;
mod stale;

pub use error::SandboxError;
pub use probe::probe_host;
pub use proxy::{
    AllowFn, Connection, ConnectionKind, Counters, DEFAULT_PROXY_PORT, Egress, EgressConfig,
    ProxyConfig, Verdict,
};
pub use report::{
    Denial, DenialKind, Enforcement, ExitStatus, HostLayer, HostReport, LayerReport, LimitKind,
    LimitMechanism, LimitReport, WorkerReport,
};
pub use spawn::{
    CMD_FD, GO_FD, Go, REPORT_FD, WorkerHandle, WorkerKiller, pidfd_open, signal_name, signaled,
    spawn_worker,
};
pub use spec::{ExecSpec, ForwardSpec, Layer, Limits, NetworkSpec, NextCommand, SandboxSpec};
pub use stale::{StaleWorker, kill_stale_worker};
