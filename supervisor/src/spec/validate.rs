//! Semantic checks of a parsed TaskSpec. Every problem is collected, so one run of
//! `codencer run` shows all of them, each naming the file, line, field and fix.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::raw::{RawFile, RawStep, RawValidator};
use super::{DEFAULT_VALIDATOR_TIMEOUT, StepSpec, TaskSpec, ValidatorSpec, parse_duration};
use crate::git;

/// One problem in a TaskSpec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// Dotted field path, e.g. `task.steps[1].executor`.
    pub field: String,
    pub message: String,
    pub fix: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.field.is_empty() && !self.message.starts_with(&self.field) {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}\n  fix: {}", self.message, self.fix)
    }
}

/// Every problem found in a TaskSpec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SpecErrors(pub Vec<SpecError>);

impl SpecErrors {
    pub(super) fn one(error: SpecError) -> Self {
        SpecErrors(vec![error])
    }
}

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

struct Checker<'a> {
    text: &'a str,
    origin: &'a str,
    errors: Vec<SpecError>,
}

impl Checker<'_> {
    /// `key` is the YAML key searched for, within the part of the file `field` names.
    fn error(&mut self, field: &str, key: &str, message: String, fix: &str) {
        self.errors.push(SpecError {
            file: self.origin.to_string(),
            line: find_line(self.text, field, key),
            field: field.to_string(),
            message,
            fix: fix.to_string(),
        });
    }

    fn duration(&mut self, field: &str, key: &str, value: &Option<String>) -> Option<Duration> {
        let text = value.as_ref()?;
        let parsed = parse_duration(text);
        if parsed.is_none() {
            self.error(
                field,
                key,
                format!("`{text}` is not a duration"),
                "use a number with a unit, e.g. `90s`, `30m`, `1h30m`",
            );
        }
        parsed
    }

    fn attempts(&mut self, field: &str, value: Option<u32>) -> Option<u32> {
        let n = value?;
        if !(1..=100).contains(&n) {
            self.error(
                field,
                "max_attempts",
                format!("{n} is out of range"),
                "use a number from 1 to 100",
            );
            return None;
        }
        Some(n)
    }

    fn executor(&mut self, field: &str, name: &str) {
        if codencer_adapters::adapter(name).is_none() {
            let known: Vec<&str> = codencer_adapters::adapters()
                .iter()
                .map(|a| a.name())
                .collect();
            self.error(
                field,
                "executor",
                format!("unknown executor `{name}`"),
                &format!("use one of: {}", known.join(", ")),
            );
        }
    }

    fn validators(&mut self, field: &str, raw: Vec<RawValidator>) -> Vec<ValidatorSpec> {
        let mut out = Vec::new();
        for (i, v) in raw.into_iter().enumerate() {
            let (name, run, timeout) = match v {
                RawValidator::Command(run) => (None, run, None),
                RawValidator::Full(full) => (full.name, full.run, full.timeout),
            };
            let item = format!("{field}[{i}]");
            if run.trim().is_empty() {
                self.error(
                    &item,
                    "run",
                    "empty validator command".into(),
                    "give the command line to run, e.g. `cargo test`",
                );
                continue;
            }
            let timeout = self
                .duration(&format!("{item}.timeout"), "timeout", &timeout)
                .unwrap_or(DEFAULT_VALIDATOR_TIMEOUT);
            let name = name.unwrap_or_else(|| default_validator_name(&run, i));
            out.push(ValidatorSpec { name, run, timeout });
        }
        out
    }
}

/// A validator without a name is called by its command's first word.
fn default_validator_name(run: &str, index: usize) -> String {
    let word = run.split_whitespace().next().unwrap_or("validator");
    let word = word.rsplit('/').next().unwrap_or(word);
    format!("{}-{}", word, index + 1)
}

/// Line of `key:` within the part of the file that `field` names: a step's own lines for
/// `task.steps[i]...`, the task's lines (steps excluded) otherwise. A missing key points at
/// the step's first line.
fn find_line(text: &str, field: &str, key: &str) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let steps_at = lines.iter().position(|l| {
        let t = l.trim_start();
        t.starts_with("steps:") || t.starts_with("\"steps\"")
    });
    let items: Vec<usize> = match steps_at {
        Some(at) => {
            let indent = lines
                .iter()
                .skip(at + 1)
                .find(|l| l.trim_start().starts_with("- "))
                .map(|l| l.len() - l.trim_start().len());
            (at + 1..lines.len())
                .filter(|&i| {
                    indent.is_some_and(|n| {
                        lines[i].len() - lines[i].trim_start().len() == n
                            && lines[i].trim_start().starts_with("- ")
                    })
                })
                .collect()
        }
        None => Vec::new(),
    };
    let step = field
        .strip_prefix("task.steps[")
        .and_then(|rest| rest.split(']').next())
        .and_then(|n| n.parse::<usize>().ok());
    let region: Vec<usize> = match (step, steps_at) {
        (Some(n), Some(_)) => {
            let start = *items.get(n)?;
            let end = items
                .get(n + 1)
                .copied()
                .unwrap_or_else(|| block_end(&lines, start));
            (start..end).collect()
        }
        (_, Some(at)) => {
            let end = block_end(&lines, at);
            (0..lines.len()).filter(|i| *i < at || *i >= end).collect()
        }
        (_, None) => (0..lines.len()).collect(),
    };
    let yaml_key = format!("{key}:");
    let json_key = format!("\"{key}\"");
    let found = region.iter().copied().find(|&i| {
        let t = lines[i].trim_start().trim_start_matches("- ");
        !key.is_empty() && (t.starts_with(&yaml_key) || t.starts_with(&json_key))
    });
    match (found, step) {
        (Some(i), _) => Some(i + 1),
        (None, Some(_)) => region.first().map(|i| i + 1),
        (None, None) => None,
    }
}

/// First line after the block starting at `start` that is indented no deeper than it.
fn block_end(lines: &[&str], start: usize) -> usize {
    let indent = |l: &str| l.len() - l.trim_start().len();
    let base = indent(lines[start]);
    (start + 1..lines.len())
        .find(|&i| {
            !lines[i].trim().is_empty()
                && indent(lines[i]) <= base
                && !lines[i].trim_start().starts_with("- ")
        })
        .unwrap_or(lines.len())
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix('~'), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) if rest.is_empty() || rest.starts_with('/') => {
            PathBuf::from(home).join(rest.trim_start_matches('/'))
        }
        _ => PathBuf::from(path),
    }
}

pub(super) fn validate(
    raw: RawFile,
    text: &str,
    origin: &str,
    base_dir: &Path,
) -> Result<TaskSpec, SpecErrors> {
    let task = raw.task;
    let mut c = Checker {
        text,
        origin,
        errors: Vec::new(),
    };

    if !valid_name(&task.name) {
        c.error("task.name", "name", format!("`{}` is not a valid name", task.name),
            "use lowercase letters, digits and dashes, starting with a letter or digit (e.g. `fix-login`)");
    }
    let base = task.base.clone().unwrap_or_else(|| "HEAD".to_string());
    let repo = resolve_workspace(&mut c, &task.workspace, base_dir, &base);
    if let Some(repo) = &repo
        && repo.commit.is_none()
    {
        c.error(
            "task.base",
            "base",
            format!(
                "`{base}` does not name a commit in {}",
                repo.toplevel.display()
            ),
            "give an existing branch, tag or commit (or omit `base` to use HEAD)",
        );
    }
    c.executor("task.executor", &task.executor);
    let timeout = c.duration("task.timeout", "timeout", &task.timeout);
    let max_attempts = c.attempts("task.max_attempts", task.max_attempts);
    if let Some(policy) = &task.policy
        && !valid_name(policy)
    {
        c.error(
            "task.policy",
            "policy",
            format!("`{policy}` is not a policy profile name"),
            "use a profile name such as `default` or `strict`",
        );
    }
    let validators = c.validators("task.validators", task.validators);

    let defaults = StepSpec {
        name: None,
        goal: task.goal.clone().unwrap_or_default(),
        executor: task.executor.clone(),
        command: task.command.clone(),
        context: task.context.clone(),
        constraints: task.constraints.clone(),
        acceptance: task.acceptance.clone(),
        allowed_paths: task.allowed_paths.clone(),
        forbidden_paths: task.forbidden_paths.clone(),
        validators,
        timeout,
        max_attempts,
    };

    let mut steps = Vec::new();
    if task.steps.is_empty() {
        if task.goal.as_deref().is_none_or(|g| g.trim().is_empty()) {
            c.error(
                "task.goal",
                "goal",
                "missing `goal`".into(),
                "say what the executor should do in `goal:` (or give an ordered plan in `steps:`)",
            );
        }
        check_command(&mut c, "task", &defaults);
        steps.push(defaults.clone());
    } else {
        for (i, raw_step) in task.steps.into_iter().enumerate() {
            let step = resolve_step(&mut c, &defaults, raw_step, &format!("task.steps[{i}]"));
            steps.push(step);
        }
    }

    if !c.errors.is_empty() {
        return Err(SpecErrors(c.errors));
    }
    Ok(TaskSpec {
        origin: origin.to_string(),
        text: text.to_string(),
        name: task.name,
        base_commit: repo.as_ref().and_then(|r| r.commit.clone()),
        workspace: repo.map(|r| r.toplevel).unwrap_or_default(),
        base,
        executor: task.executor,
        policy: task.policy,
        steps,
    })
}

pub(super) fn validate_appended_step(
    task: &TaskSpec,
    raw: RawStep,
    text: &str,
    origin: &str,
) -> Result<StepSpec, SpecErrors> {
    let mut c = Checker {
        text,
        origin,
        errors: Vec::new(),
    };
    let defaults = StepSpec {
        name: None,
        goal: String::new(),
        executor: task.executor.clone(),
        command: None,
        context: None,
        constraints: Vec::new(),
        acceptance: Vec::new(),
        allowed_paths: Vec::new(),
        forbidden_paths: Vec::new(),
        validators: Vec::new(),
        timeout: None,
        max_attempts: None,
    };
    let step = resolve_step(&mut c, &defaults, raw, "step");
    if !c.errors.is_empty() {
        return Err(SpecErrors(c.errors));
    }
    Ok(step)
}

fn resolve_step(c: &mut Checker<'_>, defaults: &StepSpec, raw: RawStep, field: &str) -> StepSpec {
    let goal = raw
        .goal
        .clone()
        .or_else(|| Some(defaults.goal.clone()).filter(|g| !g.trim().is_empty()));
    if goal.as_deref().is_none_or(|g| g.trim().is_empty()) {
        c.error(
            &format!("{field}.goal"),
            "goal",
            "missing `goal`".into(),
            "say what the executor should do in this step's `goal:`",
        );
    }
    if let Some(executor) = &raw.executor {
        c.executor(&format!("{field}.executor"), executor);
    }
    let validators = match raw.validators {
        Some(v) => c.validators(&format!("{field}.validators"), v),
        None => defaults.validators.clone(),
    };
    let timeout = c
        .duration(&format!("{field}.timeout"), "timeout", &raw.timeout)
        .or(defaults.timeout);
    let max_attempts = c
        .attempts(&format!("{field}.max_attempts"), raw.max_attempts)
        .or(defaults.max_attempts);
    let step = StepSpec {
        name: raw.name,
        goal: goal.unwrap_or_default(),
        executor: raw.executor.unwrap_or_else(|| defaults.executor.clone()),
        command: raw.command.or_else(|| defaults.command.clone()),
        context: raw.context.or_else(|| defaults.context.clone()),
        constraints: raw
            .constraints
            .unwrap_or_else(|| defaults.constraints.clone()),
        acceptance: raw
            .acceptance
            .unwrap_or_else(|| defaults.acceptance.clone()),
        allowed_paths: raw
            .allowed_paths
            .unwrap_or_else(|| defaults.allowed_paths.clone()),
        forbidden_paths: raw
            .forbidden_paths
            .unwrap_or_else(|| defaults.forbidden_paths.clone()),
        validators,
        timeout,
        max_attempts,
    };
    check_command(c, field, &step);
    step
}

fn check_command(c: &mut Checker<'_>, field: &str, step: &StepSpec) {
    if step.executor == "shell" && step.command.as_deref().is_none_or(|s| s.trim().is_empty()) {
        c.error(&format!("{field}.command"), "executor", "the `shell` executor needs `command`".into(),
            "add `command: <shell command line>` (run in the worktree with the prompt in $CODENCER_PROMPT)");
    }
}

/// The workspace's repository, and the commit `base` names there (from one git process).
fn resolve_workspace(
    c: &mut Checker<'_>,
    workspace: &str,
    base_dir: &Path,
    base: &str,
) -> Option<git::RepoFacts> {
    let path = expand_home(workspace);
    let path = if path.is_relative() {
        base_dir.join(path)
    } else {
        path
    };
    if !path.is_dir() {
        c.error("task.workspace", "workspace", format!("`{}` does not exist or is not a directory", path.display()),
            "point `workspace` at a git repository (relative paths resolve against the TaskSpec's directory)");
        return None;
    }
    match git::inspect_blocking(&path, base) {
        Some(facts) => Some(facts),
        None => {
            c.error("task.workspace", "workspace", format!("`{}` is not a git repository", path.display()),
                "run `git init` and commit there first, or point `workspace` at an existing repository");
            None
        }
    }
}
