//! Public vocabulary of the policy: layers, origins, and the enumerated settings.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

/// Where a policy layer comes from, loosest precedence first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Layer {
    /// Files shipped inside the binary.
    Builtin,
    /// `$CODENCER_CONFIG/policy/*.toml`.
    Operator,
    /// `/etc/codencer/policy/*.toml`: the organisation-wide floor.
    Floor,
    /// Narrowing requested by a TaskSpec.
    TaskSpec,
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Builtin => "builtin",
            Self::Operator => "operator",
            Self::Floor => "floor",
            Self::TaskSpec => "task-spec",
        })
    }
}

/// Where an effective value was set: layer, file, dotted key and line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Origin {
    /// The layer of the file.
    pub layer: Layer,
    /// The file, e.g. `builtin:claude-code.toml` or `/etc/codencer/policy/org.toml`.
    pub file: String,
    /// The dotted key, e.g. `limits.wall`.
    pub key: String,
    /// 1-based line of the value, when it came from a file.
    pub line: Option<usize>,
}

impl Origin {
    /// `file:line` (or just `file`).
    pub fn location(&self) -> String {
        match self.line {
            Some(line) => format!("{}:{line}", self.file),
            None => self.file.clone(),
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.location(), self.layer)
    }
}

/// `network.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum NetworkMode {
    /// No network at all (a fresh network namespace with only loopback).
    None,
    /// Only `allow` rules, through the supervisor's logging proxy, plus `forward`s.
    Allow,
    /// The host's network, unfiltered. Refused under `strict`.
    Host,
}

/// `gates.require_approval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ApprovalMode {
    /// Never ask; touching a protected path fails the attempt instead.
    Never,
    /// Ask a human when the attempt touched a protected path.
    ProtectedPaths,
    /// Always ask a human before the attempt is accepted.
    Always,
}

/// `gates.on_violation`: what a path or size violation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ViolationAction {
    /// Send the attempt to human approval.
    Approval,
    /// Fail the attempt.
    Fail,
}

/// Why an attempt failed, for `retry.on`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum FailureKind {
    /// A validator reported failure.
    ValidationFailed,
    /// The wall or idle limit ran out.
    TimedOut,
    /// The executor or worker died (signal, non-zero exit without a result).
    Crashed,
}

impl FailureKind {
    pub(crate) const ALL: [(&'static str, FailureKind); 3] = [
        ("validation-failed", FailureKind::ValidationFailed),
        ("timed-out", FailureKind::TimedOut),
        ("crashed", FailureKind::Crashed),
    ];
}

/// A sandbox layer, as named in `sandbox.required` and reported by the host probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum SandboxLayer {
    /// user, mount, pid, net, ipc, uts namespaces.
    Namespaces,
    /// New root: pivot_root, read-only system dirs, private HOME and /tmp.
    Root,
    /// Landlock filesystem and network rules.
    Landlock,
    /// seccomp filter.
    Seccomp,
    /// no_new_privs, dropped capabilities, fd and env hygiene.
    Privileges,
    /// rlimits / cgroup limits.
    Limits,
    /// Network isolation and the allow-list proxy.
    Network,
}

impl SandboxLayer {
    /// Every layer, in the order of the architecture document.
    pub const ALL: [SandboxLayer; 7] = [
        SandboxLayer::Namespaces,
        SandboxLayer::Root,
        SandboxLayer::Landlock,
        SandboxLayer::Seccomp,
        SandboxLayer::Privileges,
        SandboxLayer::Limits,
        SandboxLayer::Network,
    ];

    /// The name used in policy files.
    pub fn name(self) -> &'static str {
        match self {
            Self::Namespaces => "namespaces",
            Self::Root => "root",
            Self::Landlock => "landlock",
            Self::Seccomp => "seccomp",
            Self::Privileges => "privileges",
            Self::Limits => "limits",
            Self::Network => "network",
        }
    }
}

/// Where a secret comes from. The policy crate never reads it; the supervisor does,
/// and injects it only into the executor the policy applies to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum SecretSource {
    /// Read the whole file (trailing newline stripped by the reader).
    File(PathBuf),
    /// Read this variable from the operator's environment.
    Env(String),
}
