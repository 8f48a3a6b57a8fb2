//! Decisions: admission, post-exec change checks, gate verdicts, retries.
//! Every decision carries its reason and the origin of the rule that decided it.

use std::collections::BTreeMap;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use serde::Serialize;

use crate::effective::{EffectivePolicy, TASK_ALLOWED, TASK_FORBIDDEN, TASK_PROTECTED};
use crate::model::{ApprovalMode, FailureKind, NetworkMode, Origin, SandboxLayer, ViolationAction};

/// The outcome of one rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Verdict {
    /// Go on.
    Allow,
    /// Go on only once a human approves.
    NeedsApproval,
    /// Stop: the attempt does not start, or fails.
    Deny,
}

/// One decision: verdict, the rule (dotted key), a plain-language reason, the origin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// The verdict.
    pub verdict: Verdict,
    /// The dotted key of the deciding rule (`network.mode`, `gates.max_diff_lines`).
    pub rule: String,
    /// Why, in a sentence.
    pub reason: String,
    /// Where the deciding value was set (`None` for built-in facts such as path escapes).
    pub origin: Option<Origin>,
}

/// Several decisions and their combined verdict (the most severe).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evaluation {
    /// `Deny` if any decision denies, else `NeedsApproval` if any needs it, else `Allow`.
    pub verdict: Verdict,
    /// Every decision, in evaluation order.
    pub decisions: Vec<Decision>,
}

impl Evaluation {
    fn from_decisions(decisions: Vec<Decision>) -> Self {
        let verdict = decisions
            .iter()
            .map(|d| d.verdict)
            .max()
            .unwrap_or(Verdict::Allow);
        Self { verdict, decisions }
    }
}

fn decide(policy: &EffectivePolicy, verdict: Verdict, rule: &str, reason: String) -> Decision {
    Decision {
        verdict,
        rule: rule.to_owned(),
        reason,
        origin: policy.origin(rule).cloned(),
    }
}

/// How well this host enforces a sandbox layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Enforcement {
    /// Fully enforced.
    Enforced,
    /// Partly enforced (e.g. an older Landlock ABI).
    Partial,
    /// Not enforced.
    NotEnforced,
}

/// What this host can enforce, mapped by the supervisor from the sandbox's probe.
/// A layer not reported counts as not enforced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostLayers {
    layers: BTreeMap<SandboxLayer, Enforcement>,
}

impl HostLayers {
    /// A host reporting nothing (every layer not enforced).
    pub fn new() -> Self {
        Self::default()
    }

    /// A host enforcing every layer fully.
    pub fn all_enforced() -> Self {
        let mut host = Self::new();
        for layer in SandboxLayer::ALL {
            host.set(layer, Enforcement::Enforced);
        }
        host
    }

    /// Records how a layer is enforced.
    pub fn set(&mut self, layer: SandboxLayer, enforcement: Enforcement) -> &mut Self {
        self.layers.insert(layer, enforcement);
        self
    }

    /// How a layer is enforced.
    pub fn get(&self, layer: SandboxLayer) -> Enforcement {
        self.layers
            .get(&layer)
            .copied()
            .unwrap_or(Enforcement::NotEnforced)
    }
}

/// Admission: may this executor start on this host under this policy?
pub fn admit(policy: &EffectivePolicy, host: &HostLayers) -> Evaluation {
    let v = policy.values();
    let mut decisions = Vec::new();
    if !v.enabled {
        decisions.push(decide(
            policy,
            Verdict::Deny,
            "enabled",
            format!("executor `{}` is disabled by policy", policy.executor()),
        ));
        return Evaluation::from_decisions(decisions);
    }
    let rule = if v.strict {
        "strict"
    } else {
        "sandbox.required"
    };
    let mut required = v.required_layers.clone();
    // Asking for no or filtered network is a promise only the network layer keeps.
    if v.network.mode != NetworkMode::Host && !required.contains(&SandboxLayer::Network) {
        required.push(SandboxLayer::Network);
    }
    for layer in required {
        let implicit = rule == "sandbox.required"
            && layer == SandboxLayer::Network
            && !v.required_layers.contains(&layer);
        let rule = if implicit { "network.mode" } else { rule };
        let (verdict, reason) = match host.get(layer) {
            Enforcement::Enforced => (
                Verdict::Allow,
                format!("layer `{}` is enforced on this host", layer.name()),
            ),
            Enforcement::Partial => (
                Verdict::Deny,
                format!(
                    "layer `{}` is only partly enforced on this host and the policy requires it",
                    layer.name()
                ),
            ),
            Enforcement::NotEnforced => (
                Verdict::Deny,
                format!(
                    "layer `{}` cannot be enforced on this host and the policy requires it",
                    layer.name()
                ),
            ),
        };
        decisions.push(decide(policy, verdict, rule, reason));
    }
    decisions.push(decide(
        policy,
        Verdict::Allow,
        "enabled",
        format!("executor `{}` is enabled", policy.executor()),
    ));
    Evaluation::from_decisions(decisions)
}

/// What an attempt changed in its worktree.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ChangeSummary {
    /// Worktree-relative paths (added, modified, deleted, renamed from and to).
    pub files: Vec<String>,
    /// Lines inserted.
    pub insertions: u64,
    /// Lines deleted.
    pub deletions: u64,
}

struct Globs<'a> {
    key: &'a str,
    globs: Vec<String>,
    set: Option<GlobSet>,
}

impl<'a> Globs<'a> {
    fn new(policy: &EffectivePolicy, key: &'a str) -> Option<Self> {
        let setting = policy.setting(key)?;
        let crate::value::Value::Strings(globs) = &setting.value else {
            return None;
        };
        let mut builder = GlobSetBuilder::new();
        for glob in globs {
            // Globs were validated when loaded; an invalid one simply cannot match.
            if let Ok(g) = GlobBuilder::new(glob).literal_separator(true).build() {
                builder.add(g);
            }
        }
        Some(Self {
            key,
            globs: globs.clone(),
            set: builder.build().ok(),
        })
    }

    /// The first glob matching `path`.
    fn matching(&self, path: &str) -> Option<&str> {
        let index = *self.set.as_ref()?.matches(path).first()?;
        self.globs.get(index).map(String::as_str)
    }
}

fn normalise(path: &str) -> Option<&str> {
    let trimmed = path.trim_start_matches("./");
    let escapes = trimmed.is_empty()
        || trimmed.starts_with('/')
        || trimmed.split('/').any(|part| part == "..");
    (!escapes).then_some(trimmed)
}

fn violation_verdict(action: ViolationAction) -> Verdict {
    match action {
        ViolationAction::Fail => Verdict::Deny,
        ViolationAction::Approval => Verdict::NeedsApproval,
    }
}

/// After the executor exits, before validations: paths touched and diff size.
pub fn check_changes(policy: &EffectivePolicy, changes: &ChangeSummary) -> Evaluation {
    let v = policy.values();
    let on_violation = violation_verdict(v.gates.on_violation);
    let forbidden: Vec<Globs<'_>> = ["filesystem.forbidden_paths", TASK_FORBIDDEN]
        .into_iter()
        .filter_map(|k| Globs::new(policy, k))
        .collect();
    let protected: Vec<Globs<'_>> = ["filesystem.protected_paths", TASK_PROTECTED]
        .into_iter()
        .filter_map(|k| Globs::new(policy, k))
        .collect();
    let allowed: Vec<Globs<'_>> = ["filesystem.allowed_paths", TASK_ALLOWED]
        .into_iter()
        .filter_map(|k| Globs::new(policy, k))
        .collect();
    let mut decisions = Vec::new();
    let mut protected_hits: Vec<(&str, &Globs<'_>)> = Vec::new();
    for file in &changes.files {
        let Some(path) = normalise(file) else {
            decisions.push(Decision {
                verdict: Verdict::Deny,
                rule: "filesystem.allowed_paths".into(),
                reason: format!("`{file}` is outside the worktree"),
                origin: None,
            });
            continue;
        };
        if let Some((glob, list)) = forbidden
            .iter()
            .find_map(|g| g.matching(path).map(|m| (m, g)))
        {
            decisions.push(decide(
                policy,
                Verdict::Deny,
                list.key,
                format!("`{path}` was modified and matches forbidden glob `{glob}`"),
            ));
            continue;
        }
        if let Some(list) = allowed.iter().find(|g| g.matching(path).is_none()) {
            decisions.push(decide(
                policy,
                on_violation,
                list.key,
                format!("`{path}` was modified but matches none of {:?}", list.globs),
            ));
            continue;
        }
        if let Some(list) = protected.iter().find(|g| g.matching(path).is_some()) {
            protected_hits.push((path, list));
        }
    }
    for (path, list) in &protected_hits {
        let glob = list.matching(path).unwrap_or_default();
        let (verdict, tail) = match v.gates.require_approval {
            ApprovalMode::Never => (Verdict::Deny, "and approval is never offered"),
            ApprovalMode::ProtectedPaths | ApprovalMode::Always => {
                (Verdict::NeedsApproval, "and needs approval")
            }
        };
        decisions.push(decide(
            policy,
            verdict,
            list.key,
            format!("`{path}` matches protected glob `{glob}` {tail}"),
        ));
    }
    let count = changes.files.len() as u64;
    if let Some(max) = v.gates.max_files_changed
        && count > max
    {
        decisions.push(decide(
            policy,
            on_violation,
            "gates.max_files_changed",
            format!("{count} files changed, more than the limit of {max}"),
        ));
    }
    let lines = changes.insertions.saturating_add(changes.deletions);
    if let Some(max) = v.gates.max_diff_lines
        && lines > max
    {
        decisions.push(decide(
            policy,
            on_violation,
            "gates.max_diff_lines",
            format!("{lines} diff lines, more than the limit of {max}"),
        ));
    }
    if decisions.is_empty() {
        decisions.push(decide(
            policy,
            Verdict::Allow,
            "filesystem.allowed_paths",
            format!("{count} files and {lines} diff lines, all within policy"),
        ));
    }
    Evaluation::from_decisions(decisions)
}

/// How the attempt's validators fared.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ValidationSummary {
    /// Validators that ran.
    pub run: u32,
    /// Validators that passed.
    pub passed: u32,
}

/// Before gates fire: the policy gate (changes), the validations gate, the approval gate.
pub fn gate_verdicts(
    policy: &EffectivePolicy,
    changes: &ChangeSummary,
    validations: ValidationSummary,
) -> Evaluation {
    let v = policy.values();
    let mut decisions = check_changes(policy, changes).decisions;
    let failed = validations.run.saturating_sub(validations.passed);
    let (verdict, reason) = if failed > 0 {
        (
            Verdict::Deny,
            format!("{failed} of {} validators failed", validations.run),
        )
    } else if validations.run == 0 && v.gates.validators_required {
        (
            Verdict::Deny,
            "no validator ran and the policy requires validators".to_owned(),
        )
    } else {
        (
            Verdict::Allow,
            format!("{} validators passed", validations.passed),
        )
    };
    decisions.push(decide(policy, verdict, "gates.validators_required", reason));
    let touched_protected = decisions
        .iter()
        .any(|d| d.rule == "filesystem.protected_paths" || d.rule == TASK_PROTECTED);
    let (verdict, reason) = match v.gates.require_approval {
        ApprovalMode::Always => (
            Verdict::NeedsApproval,
            "every attempt needs approval".to_owned(),
        ),
        ApprovalMode::ProtectedPaths if touched_protected => (
            Verdict::NeedsApproval,
            "the attempt touched protected paths".to_owned(),
        ),
        ApprovalMode::ProtectedPaths | ApprovalMode::Never => {
            (Verdict::Allow, "no approval needed".to_owned())
        }
    };
    decisions.push(decide(policy, verdict, "gates.require_approval", reason));
    Evaluation::from_decisions(decisions)
}

/// May a failed attempt be retried? `attempts_made` counts the attempts so far.
pub fn retry_allowed(
    policy: &EffectivePolicy,
    failure: FailureKind,
    attempts_made: u64,
) -> Decision {
    let retry = &policy.values().retry;
    if !retry.on.contains(&failure) {
        return decide(
            policy,
            Verdict::Deny,
            "retry.on",
            format!("failures of kind {failure:?} are not retried"),
        );
    }
    if attempts_made >= retry.max_attempts {
        return decide(
            policy,
            Verdict::Deny,
            "retry.max_attempts",
            format!("{attempts_made} of {} attempts used", retry.max_attempts),
        );
    }
    decide(
        policy,
        Verdict::Allow,
        "retry.max_attempts",
        format!(
            "attempt {} of {} allowed",
            attempts_made + 1,
            retry.max_attempts
        ),
    )
}
