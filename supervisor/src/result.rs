//! The ResultSpec: what the planner gets back for a step, built from the record alone so it
//! can never disagree with it. See docs/resultspec.md.

use codencer_store::{
    ArtifactKind, ArtifactRow, AttemptStatus, GateStatus, RunStatus, RunTree, StepTree, Usage,
    ValidationStatus,
};
use serde::{Deserialize, Serialize};

/// Version of the ResultSpec shape.
pub const RESULTSPEC_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiffRef {
    /// Artifact id of the unified diff.
    pub artifact: Option<String>,
    pub insertions: u64,
    pub deletions: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationResult {
    pub name: String,
    pub command: String,
    pub status: ValidationStatus,
    pub exit_code: Option<i32>,
    pub duration_ms: u64,
    pub output_artifact: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateResult {
    pub name: String,
    pub status: GateStatus,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArtifactRef {
    pub id: String,
    pub kind: ArtifactKind,
    pub name: Option<String>,
    pub sha256: String,
    pub bytes: u64,
}

/// The result of one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultSpec {
    pub version: u32,
    pub run_id: String,
    pub step_id: String,
    /// 1-based position of the step in the run.
    pub step: u32,
    /// The attempt the result describes: the one that passed, else the last one.
    pub attempt_id: Option<String>,
    pub task: String,
    pub executor: String,
    pub status: RunStatus,
    /// Why the step ended as it did, when it did not pass.
    pub reason: Option<String>,
    pub summary: Option<String>,
    pub branch: Option<String>,
    /// Commit the attempt started from.
    pub base: Option<String>,
    /// Commit holding the attempt's changes.
    pub commit: Option<String>,
    pub files_changed: Vec<String>,
    pub diff: DiffRef,
    pub validations: Vec<ValidationResult>,
    pub gates: Vec<GateResult>,
    pub artifacts: Vec<ArtifactRef>,
    /// Number of attempts made.
    pub attempts: u32,
    /// `null` when the executor does not report usage.
    pub usage: Option<Usage>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub duration_ms: Option<u64>,
}

/// The result of a run: its status and one ResultSpec per step that started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    pub version: u32,
    pub run_id: String,
    pub task: String,
    pub status: RunStatus,
    pub reason: Option<String>,
    pub steps: Vec<ResultSpec>,
}

impl RunResult {
    pub fn from_tree(tree: &RunTree) -> RunResult {
        RunResult {
            version: RESULTSPEC_VERSION,
            run_id: tree.run.id.clone(),
            task: tree.run.name.clone(),
            status: tree.run.status,
            reason: tree.run.reason.clone(),
            steps: tree
                .steps
                .iter()
                .filter(|s| s.step.started_at.is_some())
                .map(|s| ResultSpec::from_step(tree, s))
                .collect(),
        }
    }
}

impl ResultSpec {
    pub fn from_step(tree: &RunTree, step: &StepTree) -> ResultSpec {
        let chosen = step
            .attempts
            .iter()
            .rev()
            .find(|a| a.attempt.status == AttemptStatus::Passed)
            .or_else(|| step.attempts.last());
        let diff_artifact = chosen.and_then(|a| first_of(&a.artifacts, ArtifactKind::Diff));
        let started_at = step.step.started_at.clone();
        let finished_at = step.step.finished_at.clone();
        ResultSpec {
            version: RESULTSPEC_VERSION,
            run_id: tree.run.id.clone(),
            step_id: step.step.id.clone(),
            step: step.step.index,
            attempt_id: chosen.map(|a| a.attempt.id.clone()),
            task: tree.run.name.clone(),
            executor: step.step.executor.clone(),
            status: step.step.status,
            reason: step.step.reason.clone(),
            summary: chosen.and_then(|a| a.attempt.summary.clone()),
            branch: chosen.map(|a| a.attempt.branch.clone()),
            base: chosen.map(|a| a.attempt.base_commit.clone()),
            commit: chosen.and_then(|a| a.attempt.commit.clone()),
            files_changed: chosen
                .map(|a| a.attempt.files_changed.clone())
                .unwrap_or_default(),
            diff: DiffRef {
                artifact: diff_artifact,
                insertions: chosen.map_or(0, |a| a.attempt.insertions),
                deletions: chosen.map_or(0, |a| a.attempt.deletions),
            },
            validations: chosen
                .map(|a| {
                    a.validations
                        .iter()
                        .map(|v| ValidationResult {
                            name: v.name.clone(),
                            command: v.command.clone(),
                            status: v.status,
                            exit_code: v.exit_code,
                            duration_ms: v.duration_ms,
                            output_artifact: v.output_artifact.clone(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            gates: chosen
                .map(|a| {
                    a.gates
                        .iter()
                        .map(|g| GateResult {
                            name: g.name.clone(),
                            status: g.status,
                            reason: g.reason.clone(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            artifacts: chosen
                .map(|a| a.artifacts.iter().map(artifact_ref).collect())
                .unwrap_or_default(),
            attempts: step.attempts.len() as u32,
            usage: chosen.and_then(|a| a.attempt.usage.clone()),
            duration_ms: duration_ms(started_at.as_deref(), finished_at.as_deref()),
            started_at,
            finished_at,
        }
    }
}

fn first_of(artifacts: &[ArtifactRow], kind: ArtifactKind) -> Option<String> {
    artifacts
        .iter()
        .find(|a| a.kind == kind)
        .map(|a| a.id.clone())
}

fn artifact_ref(a: &ArtifactRow) -> ArtifactRef {
    ArtifactRef {
        id: a.id.clone(),
        kind: a.kind,
        name: a.name.clone(),
        sha256: a.sha256.clone(),
        bytes: a.bytes,
    }
}

fn duration_ms(start: Option<&str>, end: Option<&str>) -> Option<u64> {
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;
    let start = OffsetDateTime::parse(start?, &Rfc3339).ok()?;
    let end = OffsetDateTime::parse(end?, &Rfc3339).ok()?;
    u64::try_from((end - start).whole_milliseconds()).ok()
}
