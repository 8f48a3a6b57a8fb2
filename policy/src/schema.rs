//! The keys a policy file may contain, their types, and what "narrower" means for each.

/// How a key's TOML value is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Bool,
    /// Non-negative integer with a minimum.
    Count {
        min: u64,
    },
    Duration,
    Bytes,
    Mode,
    Approval,
    OnViolation,
    Hosts,
    Forwards,
    /// Absolute host paths.
    Paths,
    /// Worktree-relative globs.
    Globs,
    EnvNames,
    /// One environment variable name.
    EnvName,
    Failures,
    Layers,
    /// Free text (an `env.set` value).
    Text,
    /// `{ file = "..." }` or `{ env = "..." }`.
    Secret,
}

/// What "narrower" means for a key, used for floors and TaskSpec narrowing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Narrow {
    /// Smaller is narrower (limits, counts).
    Smaller,
    /// `true` is narrower (`strict`, `validators_required`).
    TrueNarrower,
    /// `false` is narrower (`enabled`).
    FalseNarrower,
    /// The stricter enumerated value is narrower (mode, approval).
    Stricter,
    /// Fewer elements are narrower (allow lists, extra paths).
    Subset,
    /// More elements are narrower (hidden, protected, required layers).
    Superset,
    /// No order: the floor does not constrain it (env values, secrets).
    Free,
}

#[derive(Debug)]
pub(crate) struct KeySpec {
    pub(crate) key: &'static str,
    pub(crate) kind: Kind,
    pub(crate) narrow: Narrow,
}

const fn spec(key: &'static str, kind: Kind, narrow: Narrow) -> KeySpec {
    KeySpec { key, kind, narrow }
}

/// Every fixed key, in the order `explain` prints them.
pub(crate) const SCHEMA: &[KeySpec] = &[
    spec("enabled", Kind::Bool, Narrow::FalseNarrower),
    spec("strict", Kind::Bool, Narrow::TrueNarrower),
    spec("filesystem.read_only", Kind::Paths, Narrow::Subset),
    spec("filesystem.read_write", Kind::Paths, Narrow::Subset),
    spec("filesystem.hidden", Kind::Paths, Narrow::Superset),
    spec("filesystem.allowed_paths", Kind::Globs, Narrow::Subset),
    spec("filesystem.forbidden_paths", Kind::Globs, Narrow::Superset),
    spec("filesystem.protected_paths", Kind::Globs, Narrow::Superset),
    spec("network.mode", Kind::Mode, Narrow::Stricter),
    spec("network.allow", Kind::Hosts, Narrow::Subset),
    spec("network.forward", Kind::Forwards, Narrow::Subset),
    spec("limits.wall", Kind::Duration, Narrow::Smaller),
    spec("limits.idle", Kind::Duration, Narrow::Smaller),
    spec("limits.cpu", Kind::Duration, Narrow::Smaller),
    spec("limits.memory", Kind::Bytes, Narrow::Smaller),
    spec("limits.pids", Kind::Count { min: 1 }, Narrow::Smaller),
    spec("limits.open_files", Kind::Count { min: 1 }, Narrow::Smaller),
    spec("limits.output", Kind::Bytes, Narrow::Smaller),
    spec("env.pass", Kind::EnvNames, Narrow::Subset),
    spec("env.config_home", Kind::EnvName, Narrow::Free),
    spec(
        "gates.max_files_changed",
        Kind::Count { min: 0 },
        Narrow::Smaller,
    ),
    spec(
        "gates.max_diff_lines",
        Kind::Count { min: 0 },
        Narrow::Smaller,
    ),
    spec("gates.require_approval", Kind::Approval, Narrow::Stricter),
    spec(
        "gates.validators_required",
        Kind::Bool,
        Narrow::TrueNarrower,
    ),
    spec("gates.on_violation", Kind::OnViolation, Narrow::Stricter),
    spec(
        "retry.max_attempts",
        Kind::Count { min: 1 },
        Narrow::Smaller,
    ),
    spec("retry.on", Kind::Failures, Narrow::Subset),
    spec("sandbox.required", Kind::Layers, Narrow::Superset),
];

/// Tables whose keys are chosen by the operator (variable names).
pub(crate) const OPEN_TABLES: &[KeySpec] = &[
    spec("env.set", Kind::Text, Narrow::Free),
    spec("env.secrets", Kind::Secret, Narrow::Free),
];

/// Keys that select which executors and profile a file applies to.
pub(crate) const META_KEYS: &[&str] = &["executors", "profile"];

pub(crate) fn lookup(key: &str) -> Option<&'static KeySpec> {
    SCHEMA.iter().find(|spec| spec.key == key)
}

/// The spec for `key`, including keys inside open tables (`env.set.FOO`).
pub(crate) fn lookup_any(key: &str) -> Option<&'static KeySpec> {
    lookup(key).or_else(|| {
        let (table, _) = key.rsplit_once('.')?;
        OPEN_TABLES.iter().find(|spec| spec.key == table)
    })
}

/// Keys known directly under `prefix` ("" for the top level), for error messages.
pub(crate) fn known_under(prefix: &str) -> String {
    let mut names: Vec<&str> = Vec::new();
    let children = SCHEMA.iter().chain(OPEN_TABLES).map(|spec| spec.key);
    for key in children {
        let rest = if prefix.is_empty() {
            Some(key)
        } else {
            key.strip_prefix(prefix).and_then(|r| r.strip_prefix('.'))
        };
        if let Some(rest) = rest {
            let first = rest.split('.').next().unwrap_or(rest);
            if !names.contains(&first) {
                names.push(first);
            }
        }
    }
    if prefix.is_empty() {
        names.extend(META_KEYS);
    }
    names.join(", ")
}
