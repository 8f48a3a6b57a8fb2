//! `codencer policy explain`: every effective value, its origin, and what the executor
//! will be able to see, reach and write.

use std::fmt;

use serde::Serialize;

use crate::effective::EffectivePolicy;
use crate::model::{ApprovalMode, NetworkMode, Origin, SecretSource};

/// One effective value for display.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExplainedValue {
    /// Dotted key.
    pub key: String,
    /// The value in TOML syntax.
    pub value: String,
    /// Where it was set.
    pub origin: Origin,
}

/// The effective policy, explained. Serialises to JSON for `--json`; `Display` is the
/// human table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    /// The executor.
    pub executor: String,
    /// The selected profile.
    pub profile: Option<String>,
    /// Whether `strict` applies.
    pub strict: bool,
    /// Files applied, lowest precedence first.
    pub files: Vec<String>,
    /// Every effective value.
    pub values: Vec<ExplainedValue>,
    /// What the executor can see.
    pub can_see: Vec<String>,
    /// What the executor can reach on the network.
    pub can_reach: Vec<String>,
    /// What the executor can write, and what needs approval.
    pub can_write: Vec<String>,
}

/// Explains an effective policy.
pub fn explain(policy: &EffectivePolicy) -> Explanation {
    let v = policy.values();
    let values = policy
        .entries()
        .map(|(key, value, origin)| ExplainedValue {
            key: key.to_owned(),
            value,
            origin: origin.clone(),
        })
        .collect();

    let mut can_see = vec![
        "the task's worktree, system directories read-only, a private HOME and /tmp".to_owned(),
    ];
    can_see.extend(
        v.filesystem
            .read_only
            .iter()
            .map(|p| format!("{} (read-only)", p.display())),
    );
    can_see.extend(
        v.filesystem
            .read_write
            .iter()
            .map(|p| format!("{} (read-write)", p.display())),
    );
    can_see.extend(
        v.filesystem
            .hidden
            .iter()
            .map(|p| format!("never {}", p.display())),
    );
    can_see.extend(
        v.env
            .pass
            .iter()
            .map(|n| format!("env {n} (passed through)")),
    );
    can_see.extend(v.env.set.keys().map(|n| format!("env {n} (fixed value)")));
    can_see.extend(v.env.secrets.iter().map(|(n, s)| match s {
        SecretSource::File(p) => format!("env {n} (secret from file {})", p.display()),
        SecretSource::Env(var) => format!("env {n} (secret from operator's ${var})"),
    }));
    if let Some(home) = &v.env.config_home {
        can_see.push(format!("env {home} (a fresh config directory)"));
    }

    let mut can_reach = Vec::new();
    match v.network.mode {
        NetworkMode::None => can_reach.push("no network (mode \"none\")".to_owned()),
        NetworkMode::Host => {
            can_reach.push("the host's whole network, unfiltered (mode \"host\")".to_owned())
        }
        NetworkMode::Allow if v.network.allow.is_empty() => {
            can_reach.push("no remote host: the allow list is empty".to_owned());
        }
        NetworkMode::Allow => can_reach.extend(
            v.network
                .allow
                .rules()
                .iter()
                .map(|r| format!("{r} through the logging proxy")),
        ),
    }
    if v.network.mode != NetworkMode::Host {
        can_reach.extend(
            v.network
                .forward
                .iter()
                .map(|f| format!("{f} on the host's loopback (forwarded)")),
        );
    }

    let mut can_write = vec![match &v.filesystem.task_allowed_paths {
        Some(task) => format!(
            "worktree files matching {:?} and the task's {task:?}",
            v.filesystem.allowed_paths
        ),
        None => format!("worktree files matching {:?}", v.filesystem.allowed_paths),
    }];
    if !v.filesystem.forbidden_paths.is_empty() {
        can_write.push(format!("never {:?}", v.filesystem.forbidden_paths));
    }
    if !v.filesystem.protected_paths.is_empty() {
        let how = match v.gates.require_approval {
            ApprovalMode::Never => "never (touching them fails the attempt)",
            ApprovalMode::ProtectedPaths | ApprovalMode::Always => "only with approval",
        };
        can_write.push(format!("{:?} {how}", v.filesystem.protected_paths));
    }
    can_write.extend(
        v.filesystem
            .read_write
            .iter()
            .map(|p| format!("{} (extra read-write path)", p.display())),
    );

    Explanation {
        executor: policy.executor().to_owned(),
        profile: policy.profile().map(str::to_owned),
        strict: v.strict,
        files: policy.files().to_vec(),
        values,
        can_see,
        can_reach,
        can_write,
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "policy for executor `{}` (profile: {}, strict: {})",
            self.executor,
            self.profile.as_deref().unwrap_or("none"),
            if self.strict { "yes" } else { "no" }
        )?;
        writeln!(f, "\nfiles, lowest precedence first:")?;
        for file in &self.files {
            writeln!(f, "  {file}")?;
        }
        let key_w = self
            .values
            .iter()
            .map(|v| v.key.len())
            .max()
            .unwrap_or(3)
            .max(3);
        let val_w = self
            .values
            .iter()
            .map(|v| v.value.len())
            .max()
            .unwrap_or(5)
            .max(5);
        writeln!(f, "\n  {:key_w$}  {:val_w$}  ORIGIN", "KEY", "VALUE")?;
        for v in &self.values {
            writeln!(f, "  {:key_w$}  {:val_w$}  {}", v.key, v.value, v.origin)?;
        }
        for (title, lines) in [
            ("can see", &self.can_see),
            ("can reach", &self.can_reach),
            ("can write", &self.can_write),
        ] {
            writeln!(f, "\n{title}:")?;
            for line in lines {
                writeln!(f, "  - {line}")?;
            }
        }
        Ok(())
    }
}
