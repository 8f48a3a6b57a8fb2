//! The TaskSpec: what the planner asks for. Parsed from YAML or JSON, validated whole, and
//! resolved into one [`StepSpec`] per step before anything is recorded.

mod raw;
mod validate;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

pub use validate::{SpecError, SpecErrors};

/// Wall-time limit of one attempt when neither the TaskSpec nor the policy gives one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Default wall-time limit of one validator.
pub const DEFAULT_VALIDATOR_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// Attempts per step when neither the TaskSpec nor the policy gives a number.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

/// A validated TaskSpec.
#[derive(Debug, Clone, Serialize)]
pub struct TaskSpec {
    /// Where it came from (a file path, or `<request>` for the API).
    pub origin: String,
    /// The text exactly as given; recorded as the `taskspec` artifact.
    #[serde(skip)]
    pub text: String,
    pub name: String,
    /// Top level of the git repository (canonical).
    pub workspace: PathBuf,
    /// Ref the first step branches from; `HEAD` when not given.
    pub base: String,
    /// The commit `base` named when the TaskSpec was validated: the run starts from it.
    #[serde(skip)]
    pub base_commit: Option<String>,
    pub executor: String,
    pub policy: Option<String>,
    pub steps: Vec<StepSpec>,
}

/// One step, with the task's values filled in where the step does not override them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepSpec {
    pub name: Option<String>,
    pub goal: String,
    pub executor: String,
    /// The `shell` executor's command line.
    pub command: Option<String>,
    pub context: Option<String>,
    pub constraints: Vec<String>,
    pub acceptance: Vec<String>,
    pub allowed_paths: Vec<String>,
    pub forbidden_paths: Vec<String>,
    pub validators: Vec<ValidatorSpec>,
    /// Wall-time limit of one attempt, when the TaskSpec gives one. It narrows the policy's
    /// `limits.wall` (and may not exceed it).
    #[serde(with = "opt_duration_secs")]
    pub timeout: Option<Duration>,
    /// Attempts, when the TaskSpec gives them. It narrows the policy's `retry.max_attempts`.
    pub max_attempts: Option<u32>,
}

/// A validator: a shell command run in the worktree after the executor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidatorSpec {
    pub name: String,
    pub run: String,
    #[serde(with = "duration_secs")]
    pub timeout: Duration,
}

impl TaskSpec {
    /// Reads and validates a TaskSpec file.
    pub fn load(path: &Path) -> Result<TaskSpec, SpecErrors> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|err| {
            SpecErrors::one(SpecError {
                file: origin.clone(),
                line: None,
                field: String::new(),
                message: format!("cannot read the TaskSpec: {err}"),
                fix: "check the path; pass a YAML or JSON TaskSpec file".to_string(),
            })
        })?;
        let base_dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Self::parse(&text, &origin, &base_dir)
    }

    /// Parses and validates TaskSpec text. Relative workspaces resolve against `base_dir`.
    pub fn parse(text: &str, origin: &str, base_dir: &Path) -> Result<TaskSpec, SpecErrors> {
        let raw = raw::parse(text, origin)?;
        validate::validate(raw, text, origin, base_dir)
    }

    /// Re-reads the TaskSpec recorded for a run, with the workspace the run recorded (a
    /// relative workspace in the text no longer resolves against anything).
    pub fn parse_recorded(
        text: &str,
        origin: &str,
        workspace: &Path,
    ) -> Result<TaskSpec, SpecErrors> {
        let mut raw = raw::parse(text, origin)?;
        raw.task.workspace = workspace.display().to_string();
        validate::validate(raw, text, origin, Path::new("/"))
    }

    /// A step appended later (by a planner through the API), validated against this task.
    pub fn parse_step(&self, text: &str, origin: &str) -> Result<StepSpec, SpecErrors> {
        let raw = raw::parse_step(text, origin)?;
        validate::validate_appended_step(self, raw, text, origin)
    }
}

/// Parses `30m`, `90s`, `1h30m`, `500ms`, `2h`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let value: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let part = match unit {
            "ms" => Duration::from_millis(value),
            "s" => Duration::from_secs(value),
            "m" => Duration::from_secs(value.checked_mul(60)?),
            "h" => Duration::from_secs(value.checked_mul(3600)?),
            _ => return None,
        };
        total = total.checked_add(part)?;
    }
    (!total.is_zero()).then_some(total)
}

mod opt_duration_secs {
    use std::time::Duration;

    pub(super) fn serialize<S: serde::Serializer>(
        d: &Option<Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }
}

mod duration_secs {
    use std::time::Duration;

    pub(super) fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests;
