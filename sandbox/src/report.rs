//! What the worker reports back: how the process ended and what was actually enforced.

use serde::{Deserialize, Serialize};

use crate::spec::Layer;

/// The outcome of one sandboxed process, written by `codencer-worker` and completed by
/// [`WorkerHandle::wait`](crate::WorkerHandle::wait).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkerReport {
    /// How the executor ended; `None` when it never started (see `setup_error`).
    pub exit: Option<ExitStatus>,
    /// How the worker itself ended, when it did not exit normally (e.g. killed by the caller).
    pub worker_exit: Option<ExitStatus>,
    /// Per-layer enforcement, in [`Layer::ALL`] order.
    pub layers: Vec<LayerReport>,
    /// Per-limit enforcement mechanism.
    pub limits: Vec<LimitReport>,
    /// Denials observed by the worker (limit kills, seccomp kills, ...).
    pub denials: Vec<Denial>,
    /// Why the worker refused to start the process or failed setting up.
    pub setup_error: Option<String>,
}

impl WorkerReport {
    /// The status of `layer`, if it was reported.
    pub fn layer(&self, layer: Layer) -> Option<&LayerReport> {
        self.layers.iter().find(|l| l.layer == layer)
    }

    /// The report of `kind`, if that limit was requested.
    pub fn limit(&self, kind: LimitKind) -> Option<&LimitReport> {
        self.limits.iter().find(|l| l.kind == kind)
    }

    /// Whether the worker (and with it the whole sandbox) was killed by a signal.
    pub fn worker_killed(&self) -> bool {
        matches!(self.worker_exit, Some(ExitStatus::Signaled { .. }))
    }
}

/// How a process ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ExitStatus {
    /// Normal exit with a code.
    Exited {
        /// The exit code.
        code: i32,
    },
    /// Killed by a signal.
    Signaled {
        /// The signal number.
        signal: i32,
        /// The signal name (`SIGKILL`).
        name: String,
    },
}

/// Enforcement state of a layer or of a host capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Enforcement {
    /// Fully enforced.
    Enforced,
    /// Enforced in part (see the detail).
    Partial,
    /// Not enforced.
    NotEnforced,
}

/// Enforcement of one layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerReport {
    /// The layer.
    pub layer: Layer,
    /// Its state.
    pub status: Enforcement,
    /// What was done, or what is missing and why.
    pub detail: String,
}

/// A resource limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitKind {
    /// CPU seconds.
    CpuSeconds,
    /// Memory bytes.
    MemoryBytes,
    /// Number of processes.
    Pids,
    /// Open files.
    OpenFiles,
    /// File size / file-backed output bytes.
    FileSizeBytes,
}

/// The mechanism that enforced a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitMechanism {
    /// setrlimit(2).
    Rlimit,
    /// A cgroup v1 controller.
    CgroupV1,
    /// A cgroup v2 controller.
    CgroupV2,
    /// Nothing could enforce it.
    NotEnforced,
}

/// Enforcement of one requested limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitReport {
    /// Which limit.
    pub kind: LimitKind,
    /// The requested value.
    pub value: u64,
    /// What enforced it.
    pub mechanism: LimitMechanism,
    /// Precision about the mechanism (e.g. "address space per process").
    pub detail: String,
}

/// A denial the worker could observe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Denial {
    /// What kind of denial.
    pub kind: DenialKind,
    /// Details (counts, signal, process).
    pub detail: String,
}

/// Kinds of observable denials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DenialKind {
    /// The CPU limit killed a process (SIGXCPU / SIGKILL after the soft limit).
    CpuLimit,
    /// The memory cgroup OOM-killed a process, or allocations failed at the limit.
    MemoryLimit,
    /// Process creation was refused at the pids limit.
    PidsLimit,
    /// A process exceeded the file-size limit (SIGXFSZ).
    FileSizeLimit,
    /// A process was killed by seccomp (SIGSYS).
    Seccomp,
    /// The caller killed the sandbox (wall or idle time).
    Killed,
}

/// What this host can enforce, per layer (for `codencer doctor` and strict admission).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostReport {
    /// Kernel release (`uname -r`).
    pub kernel: String,
    /// Whether the probe ran as root.
    pub root: bool,
    /// The Landlock ABI of the kernel, if any.
    pub landlock_abi: Option<i32>,
    /// One entry per layer, in [`Layer::ALL`] order.
    pub layers: Vec<HostLayer>,
    /// Where each limit would be enforced.
    pub limits: Vec<LimitReport>,
}

impl HostReport {
    /// The entry for `layer`.
    pub fn layer(&self, layer: Layer) -> Option<&HostLayer> {
        self.layers.iter().find(|l| l.layer == layer)
    }

    /// The required layers this host cannot fully enforce.
    pub fn missing<'a>(&'a self, required: &'a [Layer]) -> impl Iterator<Item = &'a HostLayer> {
        self.layers
            .iter()
            .filter(move |l| required.contains(&l.layer) && l.status != Enforcement::Enforced)
    }
}

/// Availability of one layer on this host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostLayer {
    /// The layer.
    pub layer: Layer,
    /// Whether it can be enforced here.
    pub status: Enforcement,
    /// What was found.
    pub detail: String,
    /// How to make it available, when it is not.
    pub fix: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_round_trips_and_answers_queries() {
        let report = WorkerReport {
            exit: Some(ExitStatus::Signaled {
                signal: 9,
                name: "SIGKILL".into(),
            }),
            worker_exit: Some(ExitStatus::Signaled {
                signal: 9,
                name: "SIGKILL".into(),
            }),
            layers: vec![LayerReport {
                layer: Layer::Landlock,
                status: Enforcement::Partial,
                detail: "abi".into(),
            }],
            limits: vec![LimitReport {
                kind: LimitKind::Pids,
                value: 64,
                mechanism: LimitMechanism::CgroupV1,
                detail: String::new(),
            }],
            denials: vec![Denial {
                kind: DenialKind::Killed,
                detail: "wall time".into(),
            }],
            setup_error: None,
        };
        let json = serde_json::to_string(&report).unwrap();
        assert!(json.contains(r#""mechanism":"cgroup_v1""#), "{json}");
        assert!(json.contains(r#""kind":"signaled""#), "{json}");
        let back: WorkerReport = serde_json::from_str(&json).unwrap();
        assert_eq!(back, report);
        assert!(back.worker_killed());
        assert_eq!(
            back.layer(Layer::Landlock).unwrap().status,
            Enforcement::Partial
        );
        assert_eq!(back.limit(LimitKind::Pids).unwrap().value, 64);
    }
}
