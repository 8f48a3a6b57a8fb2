//! The effective policy for one executor: every value with the origin that set it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::model::{
    ApprovalMode, FailureKind, NetworkMode, Origin, SandboxLayer, SecretSource, ViolationAction,
};
use crate::network::{Forward, NetworkRules};
use crate::value::Value;

/// One effective value and where it came from.
#[derive(Debug, Clone)]
pub(crate) struct Setting {
    pub(crate) value: Value,
    pub(crate) origin: Origin,
}

/// Key of the TaskSpec's `allowed_paths` (checked in addition to the policy's).
pub(crate) const TASK_ALLOWED: &str = "task.allowed_paths";
/// Key of the TaskSpec's `forbidden_paths` (checked in addition to the policy's).
pub(crate) const TASK_FORBIDDEN: &str = "task.forbidden_paths";
/// Key of the TaskSpec's `protected_paths` (checked in addition to the policy's).
pub(crate) const TASK_PROTECTED: &str = "task.protected_paths";

/// The resolved policy for one executor (and profile), ready for evaluation.
#[derive(Debug, Clone)]
pub struct EffectivePolicy {
    pub(crate) executor: String,
    pub(crate) profile: Option<String>,
    pub(crate) files: Vec<String>,
    pub(crate) settings: BTreeMap<String, Setting>,
    pub(crate) values: PolicyValues,
}

impl EffectivePolicy {
    pub(crate) fn new(
        executor: String,
        profile: Option<String>,
        files: Vec<String>,
        settings: BTreeMap<String, Setting>,
    ) -> Self {
        let values = PolicyValues::from_settings(&settings);
        Self {
            executor,
            profile,
            files,
            settings,
            values,
        }
    }

    pub(crate) fn refresh(&mut self) {
        self.values = PolicyValues::from_settings(&self.settings);
    }

    /// The executor this policy is for.
    pub fn executor(&self) -> &str {
        &self.executor
    }

    /// The profile selected by the TaskSpec, if any.
    pub fn profile(&self) -> Option<&str> {
        self.profile.as_deref()
    }

    /// The files that contributed, in the order they were applied.
    pub fn files(&self) -> &[String] {
        &self.files
    }

    /// The typed effective values.
    pub fn values(&self) -> &PolicyValues {
        &self.values
    }

    /// Where the value of a dotted key (`limits.wall`, `env.set.LANG`) was set.
    pub fn origin(&self, key: &str) -> Option<&Origin> {
        self.settings.get(key).map(|s| &s.origin)
    }

    /// Every set key with its rendered value (TOML syntax) and origin, sorted by key.
    pub fn entries(&self) -> impl Iterator<Item = (&str, String, &Origin)> {
        self.settings
            .iter()
            .map(|(key, s)| (key.as_str(), s.value.to_string(), &s.origin))
    }

    pub(crate) fn setting(&self, key: &str) -> Option<&Setting> {
        self.settings.get(key)
    }
}

/// `[filesystem]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FilesystemPolicy {
    /// Extra host paths mounted read-only.
    pub read_only: Vec<PathBuf>,
    /// Extra host paths mounted read-write.
    pub read_write: Vec<PathBuf>,
    /// Host paths that must never be visible.
    pub hidden: Vec<PathBuf>,
    /// Worktree globs the executor may modify (policy level).
    pub allowed_paths: Vec<String>,
    /// Worktree globs the executor may modify, from the TaskSpec (checked as well).
    pub task_allowed_paths: Option<Vec<String>>,
    /// Worktree globs the executor must never modify (policy and TaskSpec).
    pub forbidden_paths: Vec<String>,
    /// Worktree globs whose modification needs approval (or fails, per `require_approval`).
    pub protected_paths: Vec<String>,
}

/// `[network]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkPolicy {
    /// The mode.
    pub mode: NetworkMode,
    /// Hosts reachable through the proxy (only under `allow`).
    pub allow: NetworkRules,
    /// Host loopback services reachable (under `allow` and `none`).
    pub forward: Vec<Forward>,
}

/// `[limits]`; `None` means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// Wall-clock time of one attempt.
    pub wall: Option<Duration>,
    /// Time without output before the attempt is killed.
    pub idle: Option<Duration>,
    /// CPU time.
    pub cpu: Option<Duration>,
    /// Memory in bytes.
    pub memory: Option<u64>,
    /// Number of processes/threads.
    pub pids: Option<u64>,
    /// Open file descriptors.
    pub open_files: Option<u64>,
    /// Captured output in bytes.
    pub output: Option<u64>,
}

/// `[env]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnvPolicy {
    /// Variables passed through from the supervisor's environment, by name.
    pub pass: Vec<String>,
    /// Variable the supervisor points at a fresh per-attempt config directory.
    pub config_home: Option<String>,
    /// Fixed values.
    pub set: BTreeMap<String, String>,
    /// Secrets, read by the supervisor and injected only into this executor.
    pub secrets: BTreeMap<String, SecretSource>,
}

/// `[gates]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GatePolicy {
    /// Most files one attempt may change.
    pub max_files_changed: Option<u64>,
    /// Most diff lines (insertions + deletions) one attempt may produce.
    pub max_diff_lines: Option<u64>,
    /// When a human must approve.
    pub require_approval: ApprovalMode,
    /// Whether at least one validator must run and all must pass.
    pub validators_required: bool,
    /// What a path or size violation does.
    pub on_violation: ViolationAction,
}

/// `[retry]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetryPolicy {
    /// Attempts in total, the first included.
    pub max_attempts: u64,
    /// Failures that may be retried.
    pub on: Vec<FailureKind>,
}

/// Every typed effective value (origins via [`EffectivePolicy::origin`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyValues {
    /// Whether this executor may run at all.
    pub enabled: bool,
    /// Whether the `strict` rules apply.
    pub strict: bool,
    /// `[filesystem]`.
    pub filesystem: FilesystemPolicy,
    /// `[network]`.
    pub network: NetworkPolicy,
    /// `[limits]`.
    pub limits: Limits,
    /// `[env]`.
    pub env: EnvPolicy,
    /// `[gates]`.
    pub gates: GatePolicy,
    /// `[retry]`.
    pub retry: RetryPolicy,
    /// Layers that must be enforced (all of them under `strict`).
    pub required_layers: Vec<SandboxLayer>,
}

impl PolicyValues {
    fn from_settings(settings: &BTreeMap<String, Setting>) -> Self {
        let get = |key: &str| settings.get(key).map(|s| &s.value);
        let flag = |key, default| match get(key) {
            Some(Value::Bool(b)) => *b,
            _ => default,
        };
        let duration = |key| match get(key) {
            Some(Value::Duration(d)) => Some(*d),
            _ => None,
        };
        let number = |key| match get(key) {
            Some(Value::Count(n) | Value::Bytes(n)) => Some(*n),
            _ => None,
        };
        let paths = |key| match get(key) {
            Some(Value::Paths(p)) => p.clone(),
            _ => Vec::new(),
        };
        let strings = |key| match get(key) {
            Some(Value::Strings(s)) => Some(s.clone()),
            _ => None,
        };
        let strict = flag("strict", false);
        let mut forbidden_paths = strings("filesystem.forbidden_paths").unwrap_or_default();
        forbidden_paths.extend(strings(TASK_FORBIDDEN).unwrap_or_default());
        let mut protected_paths = strings("filesystem.protected_paths").unwrap_or_default();
        protected_paths.extend(strings(TASK_PROTECTED).unwrap_or_default());
        let mut required_layers = match get("sandbox.required") {
            Some(Value::Layers(l)) => l.clone(),
            _ => Vec::new(),
        };
        if strict {
            required_layers = SandboxLayer::ALL.to_vec();
        }
        let mut set = BTreeMap::new();
        let mut secrets = BTreeMap::new();
        for (key, setting) in settings {
            match (
                &setting.value,
                key.strip_prefix("env.set."),
                key.strip_prefix("env.secrets."),
            ) {
                (Value::Text(text), Some(name), _) => {
                    set.insert(name.to_owned(), text.clone());
                }
                (Value::Secret(source), _, Some(name)) => {
                    secrets.insert(name.to_owned(), source.clone());
                }
                _ => {}
            }
        }
        Self {
            enabled: flag("enabled", true),
            strict,
            filesystem: FilesystemPolicy {
                read_only: paths("filesystem.read_only"),
                read_write: paths("filesystem.read_write"),
                hidden: paths("filesystem.hidden"),
                allowed_paths: strings("filesystem.allowed_paths")
                    .unwrap_or_else(|| vec!["**".to_owned()]),
                task_allowed_paths: strings(TASK_ALLOWED),
                forbidden_paths,
                protected_paths,
            },
            network: NetworkPolicy {
                mode: match get("network.mode") {
                    Some(Value::Mode(m)) => *m,
                    _ => NetworkMode::None,
                },
                allow: match get("network.allow") {
                    Some(Value::Hosts(h)) => NetworkRules::new(h.clone()),
                    _ => NetworkRules::default(),
                },
                forward: match get("network.forward") {
                    Some(Value::Forwards(f)) => f.clone(),
                    _ => Vec::new(),
                },
            },
            limits: Limits {
                wall: duration("limits.wall"),
                idle: duration("limits.idle"),
                cpu: duration("limits.cpu"),
                memory: number("limits.memory"),
                pids: number("limits.pids"),
                open_files: number("limits.open_files"),
                output: number("limits.output"),
            },
            env: EnvPolicy {
                pass: strings("env.pass").unwrap_or_default(),
                config_home: match get("env.config_home") {
                    Some(Value::Text(name)) => Some(name.clone()),
                    _ => None,
                },
                set,
                secrets,
            },
            gates: GatePolicy {
                max_files_changed: number("gates.max_files_changed"),
                max_diff_lines: number("gates.max_diff_lines"),
                require_approval: match get("gates.require_approval") {
                    Some(Value::Approval(a)) => *a,
                    _ => ApprovalMode::ProtectedPaths,
                },
                validators_required: flag("gates.validators_required", false),
                on_violation: match get("gates.on_violation") {
                    Some(Value::OnViolation(v)) => *v,
                    _ => ViolationAction::Fail,
                },
            },
            retry: RetryPolicy {
                max_attempts: number("retry.max_attempts").unwrap_or(1),
                on: match get("retry.on") {
                    Some(Value::Failures(f)) => f.clone(),
                    _ => Vec::new(),
                },
            },
            required_layers,
        }
    }
}
