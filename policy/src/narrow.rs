//! TaskSpec narrowing: a task may tighten the effective policy, never loosen it.

use std::time::Duration;

use crate::effective::{EffectivePolicy, Setting, TASK_ALLOWED, TASK_FORBIDDEN, TASK_PROTECTED};
use crate::error::PolicyError;
use crate::model::{ApprovalMode, Layer, NetworkMode, Origin};
use crate::network::HostRule;
use crate::schema::{self, Narrow};
use crate::value::{self, Value};

/// What a TaskSpec asks to tighten. `None`/empty fields leave the policy as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskNarrowing {
    /// How the TaskSpec is named in errors and origins (its file name or id).
    pub source: String,
    /// Worktree globs the task may modify; checked in addition to the policy's.
    pub allowed_paths: Option<Vec<String>>,
    /// Extra worktree globs the task must not modify.
    pub forbidden_paths: Vec<String>,
    /// Extra worktree globs whose modification needs approval.
    pub protected_paths: Vec<String>,
    /// Wall-clock limit (`limits.wall`).
    pub timeout: Option<Duration>,
    /// Idle limit (`limits.idle`).
    pub idle_timeout: Option<Duration>,
    /// `retry.max_attempts`.
    pub max_attempts: Option<u64>,
    /// `network.mode`.
    pub network: Option<NetworkMode>,
    /// `network.allow` rules (`host:port`), a subset of the policy's.
    pub allow_hosts: Option<Vec<String>>,
    /// `gates.max_files_changed`.
    pub max_files_changed: Option<u64>,
    /// `gates.max_diff_lines`.
    pub max_diff_lines: Option<u64>,
    /// `gates.require_approval`.
    pub require_approval: Option<ApprovalMode>,
}

impl EffectivePolicy {
    /// Applies a TaskSpec's narrowing. Any request that would widen the policy is an
    /// error and leaves the policy unchanged.
    pub fn narrow(&mut self, task: &TaskNarrowing) -> Result<(), PolicyError> {
        let mut next = self.clone();
        let src = task.source.as_str();
        let mut requests: Vec<(&str, Value)> = Vec::new();
        if let Some(d) = task.timeout {
            requests.push(("limits.wall", Value::Duration(d)));
        }
        if let Some(d) = task.idle_timeout {
            requests.push(("limits.idle", Value::Duration(d)));
        }
        if let Some(n) = task.max_attempts {
            requests.push(("retry.max_attempts", Value::Count(n)));
        }
        if let Some(mode) = task.network {
            requests.push(("network.mode", Value::Mode(mode)));
        }
        if let Some(hosts) = &task.allow_hosts {
            let rules = hosts
                .iter()
                .map(|h| HostRule::parse(h).map_err(|p| invalid(src, "network.allow", h, p)))
                .collect::<Result<Vec<_>, _>>()?;
            requests.push(("network.allow", Value::Hosts(rules)));
        }
        if let Some(n) = task.max_files_changed {
            requests.push(("gates.max_files_changed", Value::Count(n)));
        }
        if let Some(n) = task.max_diff_lines {
            requests.push(("gates.max_diff_lines", Value::Count(n)));
        }
        if let Some(a) = task.require_approval {
            requests.push(("gates.require_approval", Value::Approval(a)));
        }
        for (key, value) in requests {
            let narrow = schema::lookup(key).map_or(Narrow::Free, |s| s.narrow);
            if let Some(current) = next.setting(key)
                && !value::within(&value, &current.value, narrow)
            {
                return Err(PolicyError::TaskWidens {
                    source_name: src.to_owned(),
                    key: key.to_owned(),
                    value: value.to_string(),
                    current: format!("{}, set at {}", current.value, current.origin.location()),
                });
            }
            next.settings
                .insert(key.to_owned(), task_setting(src, key, value));
        }
        if let Some(globs) = &task.allowed_paths {
            let checked = globs
                .iter()
                .map(|g| globs_checked(src, "filesystem.allowed_paths", g))
                .collect::<Result<Vec<_>, _>>()?;
            // Checked in addition to the policy's allowed_paths, so a task can only
            // ever shrink the writable set, whatever its globs say.
            next.settings.insert(
                TASK_ALLOWED.to_owned(),
                task_setting(src, TASK_ALLOWED, Value::Strings(checked)),
            );
        }
        extend_task_list(&mut next, src, TASK_FORBIDDEN, &task.forbidden_paths)?;
        extend_task_list(&mut next, src, TASK_PROTECTED, &task.protected_paths)?;
        next.refresh();
        *self = next;
        Ok(())
    }
}

/// Adds globs to a TaskSpec list (forbidden or protected): more entries only narrow.
fn extend_task_list(
    next: &mut EffectivePolicy,
    src: &str,
    key: &str,
    extra: &[String],
) -> Result<(), PolicyError> {
    if extra.is_empty() {
        return Ok(());
    }
    let mut globs = match next.setting(key) {
        Some(Setting {
            value: Value::Strings(g),
            ..
        }) => g.clone(),
        _ => Vec::new(),
    };
    for glob in extra {
        let glob = globs_checked(src, key, glob)?;
        if !globs.contains(&glob) {
            globs.push(glob);
        }
    }
    next.settings.insert(
        key.to_owned(),
        task_setting(src, key, Value::Strings(globs)),
    );
    Ok(())
}

fn task_setting(src: &str, key: &str, value: Value) -> Setting {
    Setting {
        value,
        origin: Origin {
            layer: Layer::TaskSpec,
            file: src.to_owned(),
            key: key.to_owned(),
            line: None,
        },
    }
}

fn globs_checked(src: &str, key: &str, glob: &str) -> Result<String, PolicyError> {
    value::parse_glob(glob).map_err(|p| invalid(src, key, glob, p))
}

fn invalid(src: &str, key: &str, value: &str, problem: String) -> PolicyError {
    PolicyError::TaskInvalid {
        source_name: src.to_owned(),
        key: key.to_owned(),
        value: format!("{value:?}"),
        problem,
    }
}
