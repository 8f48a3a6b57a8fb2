//! The shape of the record: statuses, the event catalogue, and the run tree folded from it.
//!
//! Events are the truth: the run tree is folded from them when read (`fold.rs`), so every field
//! of a row must come from some event payload.

use serde::{Deserialize, Serialize};

/// Status of a run and of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RunStatus {
    Pending,
    Running,
    AwaitingApproval,
    Passed,
    Failed,
    Cancelled,
}

/// Status of a step (same vocabulary as a run).
pub type StepStatus = RunStatus;

impl RunStatus {
    pub fn is_terminal(self) -> bool {
        match self {
            RunStatus::Passed | RunStatus::Failed | RunStatus::Cancelled => true,
            RunStatus::Pending | RunStatus::Running | RunStatus::AwaitingApproval => false,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Pending => "pending",
            RunStatus::Running => "running",
            RunStatus::AwaitingApproval => "awaiting_approval",
            RunStatus::Passed => "passed",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }
}

/// A status name that is not one of its enum's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{given}`: use {expected}")]
pub struct UnknownStatus {
    what: &'static str,
    given: String,
    expected: &'static str,
}

/// Parses a snake_case status name the way serde spells it.
fn parse_status<T: for<'de> Deserialize<'de>>(
    text: &str,
    what: &'static str,
    expected: &'static str,
) -> Result<T, UnknownStatus> {
    serde_json::from_value(serde_json::Value::String(text.to_string())).map_err(|_| UnknownStatus {
        what,
        given: text.to_string(),
        expected,
    })
}

impl std::str::FromStr for RunStatus {
    type Err = UnknownStatus;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_status(
            text,
            "status",
            "pending, running, awaiting_approval, passed, failed or cancelled",
        )
    }
}

impl std::str::FromStr for GateStatus {
    type Err = UnknownStatus;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_status(
            text,
            "gate status",
            "pending, passed, failed, approved or rejected",
        )
    }
}

/// Status of one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AttemptStatus {
    Starting,
    Running,
    Validating,
    Passed,
    Failed,
    TimedOut,
    Killed,
    Crashed,
    Interrupted,
}

impl AttemptStatus {
    pub fn is_terminal(self) -> bool {
        match self {
            AttemptStatus::Starting | AttemptStatus::Running | AttemptStatus::Validating => false,
            AttemptStatus::Passed
            | AttemptStatus::Failed
            | AttemptStatus::TimedOut
            | AttemptStatus::Killed
            | AttemptStatus::Crashed
            | AttemptStatus::Interrupted => true,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AttemptStatus::Starting => "starting",
            AttemptStatus::Running => "running",
            AttemptStatus::Validating => "validating",
            AttemptStatus::Passed => "passed",
            AttemptStatus::Failed => "failed",
            AttemptStatus::TimedOut => "timed_out",
            AttemptStatus::Killed => "killed",
            AttemptStatus::Crashed => "crashed",
            AttemptStatus::Interrupted => "interrupted",
        }
    }
}

/// Status of one validator run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ValidationStatus {
    Passed,
    Failed,
    TimedOut,
    Error,
    Skipped,
}

/// Status of a gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum GateStatus {
    Pending,
    Passed,
    Failed,
    Approved,
    Rejected,
}

impl GateStatus {
    pub fn is_terminal(self) -> bool {
        !matches!(self, GateStatus::Pending)
    }
}

/// Kind of an artifact blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ArtifactKind {
    /// The TaskSpec exactly as the planner gave it.
    Taskspec,
    /// The ResultSpec of a step (JSON).
    Resultspec,
    /// Unified diff of the attempt against its base, untracked files included.
    Diff,
    /// Changed-files list (JSON array of paths).
    ChangedFiles,
    ExecutorStdout,
    ExecutorStderr,
    /// The executor's machine-readable transcript, when it has one.
    Transcript,
    /// Output of one validator (stdout and stderr interleaved).
    ValidatorOutput,
    /// The effective policy resolved for the attempt (JSON).
    Policy,
    /// What the sandbox enforced for the attempt (JSON).
    SandboxReport,
    /// The network proxy's connection log (JSON lines).
    NetworkLog,
    /// The executor's parsed report (JSON).
    ExecutorReport,
    /// Anything else.
    Other,
}

/// Token usage reported by an executor.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub cost_usd: Option<f64>,
}

/// How a process ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessExit {
    /// Exit code when the process exited normally.
    pub code: Option<i32>,
    /// Signal number when it was killed by a signal.
    pub signal: Option<i32>,
}

/// The body of an event: its kind (the serde tag) and its payload.
///
/// Adding a variant is backwards compatible; changing one is a migration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "payload")]
#[non_exhaustive]
pub enum EventBody {
    #[serde(rename = "run.created")]
    RunCreated {
        name: String,
        /// Canonical path of the git repository.
        workspace: String,
        executor: String,
        policy: Option<String>,
        /// Number of steps known at creation (a planner may append more).
        steps: u32,
    },
    #[serde(rename = "run.started")]
    RunStarted {},
    #[serde(rename = "run.completed")]
    RunCompleted {
        status: RunStatus,
        reason: Option<String>,
    },
    #[serde(rename = "step.created")]
    StepCreated {
        /// 1-based position in the run.
        index: u32,
        goal: String,
        executor: String,
        max_attempts: u32,
    },
    #[serde(rename = "step.started")]
    StepStarted {
        /// Ref or commit the step branches from.
        base: String,
        base_commit: String,
    },
    #[serde(rename = "step.awaiting_approval")]
    StepAwaitingApproval { gate: String, reason: String },
    #[serde(rename = "step.completed")]
    StepCompleted {
        status: RunStatus,
        /// Commit of the passed attempt (what the next step builds on).
        head_commit: Option<String>,
        attempts: u32,
        reason: Option<String>,
    },
    #[serde(rename = "attempt.started")]
    AttemptStarted {
        /// 1-based attempt number within the step.
        number: u32,
        executor: String,
        branch: String,
        worktree: String,
        base_commit: String,
    },
    #[serde(rename = "attempt.running")]
    AttemptRunning { pid: Option<u32> },
    #[serde(rename = "attempt.validating")]
    AttemptValidating {},
    #[serde(rename = "attempt.completed")]
    AttemptCompleted {
        status: AttemptStatus,
        exit: Option<ProcessExit>,
        reason: Option<String>,
        /// Commit on the attempt branch holding the executor's changes.
        commit: Option<String>,
        files_changed: Vec<String>,
        insertions: u64,
        deletions: u64,
        duration_ms: u64,
        summary: Option<String>,
        usage: Option<Usage>,
    },
    #[serde(rename = "artifact.recorded")]
    ArtifactRecorded {
        artifact_id: String,
        kind: ArtifactKind,
        /// Human name, e.g. the validator's name for its output.
        name: Option<String>,
        sha256: String,
        bytes: u64,
    },
    #[serde(rename = "validation.completed")]
    ValidationCompleted {
        validation_id: String,
        name: String,
        command: String,
        status: ValidationStatus,
        exit_code: Option<i32>,
        duration_ms: u64,
        output_artifact: Option<String>,
    },
    #[serde(rename = "gate.opened")]
    GateOpened {
        gate_id: String,
        name: String,
        reason: String,
    },
    #[serde(rename = "gate.decided")]
    GateDecided {
        gate_id: String,
        name: String,
        status: GateStatus,
        reason: Option<String>,
    },
    #[serde(rename = "policy.decided")]
    PolicyDecided {
        /// admission, post_exec, gates, limits
        stage: String,
        verdict: String,
        reason: String,
        /// Where the deciding rule came from (file and key).
        origin: Option<String>,
    },
    /// One connection through an attempt's network proxy or forwards (the whole log is
    /// also the attempt's `network_log` artifact).
    #[serde(rename = "network.connection")]
    NetworkConnection {
        /// connect, http, forward
        kind: String,
        /// The host as requested.
        host: String,
        port: u16,
        /// The canonical host the rules were checked against.
        canonical: Option<String>,
        /// The address connected to.
        addr: Option<String>,
        /// allowed, denied, failed
        verdict: String,
        /// The allowing rule, or why it was denied or failed.
        reason: String,
        bytes_sent: u64,
        bytes_received: u64,
    },
    #[serde(rename = "supervisor.failure")]
    SupervisorFailure { actor: String, error: String },
    #[serde(rename = "audit.denied")]
    AuditDenied {
        reason: String,
        route: Option<String>,
    },
    /// The run stays open for steps a planner appends (through the daemon) until it is
    /// closed or cancelled: its last step passing does not end it.
    #[serde(rename = "run.opened")]
    RunOpened {},
    /// An API token was created. Only the SHA-256 of the secret is recorded.
    #[serde(rename = "token.created")]
    TokenCreated {
        token_id: String,
        /// The actor of every event the token causes.
        name: String,
        scopes: Vec<String>,
        sha256: String,
    },
    #[serde(rename = "token.revoked")]
    TokenRevoked { token_id: String, name: String },
}

impl EventBody {
    /// The dotted kind name, as stored in the `kind` column.
    pub fn kind(&self) -> &'static str {
        match self {
            EventBody::RunCreated { .. } => "run.created",
            EventBody::RunStarted { .. } => "run.started",
            EventBody::RunCompleted { .. } => "run.completed",
            EventBody::StepCreated { .. } => "step.created",
            EventBody::StepStarted { .. } => "step.started",
            EventBody::StepAwaitingApproval { .. } => "step.awaiting_approval",
            EventBody::StepCompleted { .. } => "step.completed",
            EventBody::AttemptStarted { .. } => "attempt.started",
            EventBody::AttemptRunning { .. } => "attempt.running",
            EventBody::AttemptValidating { .. } => "attempt.validating",
            EventBody::AttemptCompleted { .. } => "attempt.completed",
            EventBody::ArtifactRecorded { .. } => "artifact.recorded",
            EventBody::ValidationCompleted { .. } => "validation.completed",
            EventBody::GateOpened { .. } => "gate.opened",
            EventBody::GateDecided { .. } => "gate.decided",
            EventBody::PolicyDecided { .. } => "policy.decided",
            EventBody::NetworkConnection { .. } => "network.connection",
            EventBody::SupervisorFailure { .. } => "supervisor.failure",
            EventBody::AuditDenied { .. } => "audit.denied",
            EventBody::RunOpened { .. } => "run.opened",
            EventBody::TokenCreated { .. } => "token.created",
            EventBody::TokenRevoked { .. } => "token.revoked",
        }
    }
}

/// An event to append. The store assigns `seq`, `ts`, `prev_hash` and `hash`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub run_id: Option<String>,
    pub step_id: Option<String>,
    pub attempt_id: Option<String>,
    /// Who caused it: `user@host` locally, a token's name through the daemon.
    pub actor: String,
    pub body: EventBody,
}

/// The run-tree ids an event is attached to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EventIds {
    pub run_id: Option<String>,
    pub step_id: Option<String>,
    pub attempt_id: Option<String>,
}

impl EventIds {
    /// Ids of an event about a run.
    pub fn run(run_id: impl Into<String>) -> EventIds {
        EventIds {
            run_id: Some(run_id.into()),
            step_id: None,
            attempt_id: None,
        }
    }

    /// Ids of an event about a step.
    pub fn step(run_id: impl Into<String>, step_id: impl Into<String>) -> EventIds {
        EventIds {
            run_id: Some(run_id.into()),
            step_id: Some(step_id.into()),
            attempt_id: None,
        }
    }

    /// Ids of an event about an attempt.
    pub fn attempt(
        run_id: impl Into<String>,
        step_id: impl Into<String>,
        attempt_id: impl Into<String>,
    ) -> EventIds {
        EventIds {
            run_id: Some(run_id.into()),
            step_id: Some(step_id.into()),
            attempt_id: Some(attempt_id.into()),
        }
    }

    /// An event with these ids.
    pub fn event(&self, actor: impl Into<String>, body: EventBody) -> NewEvent {
        NewEvent {
            run_id: self.run_id.clone(),
            step_id: self.step_id.clone(),
            attempt_id: self.attempt_id.clone(),
            actor: actor.into(),
            body,
        }
    }
}

/// An event as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub seq: u64,
    /// RFC 3339, UTC, millisecond precision.
    pub ts: String,
    pub run_id: Option<String>,
    pub step_id: Option<String>,
    pub attempt_id: Option<String>,
    pub actor: String,
    #[serde(flatten)]
    pub body: EventBody,
    pub prev_hash: String,
    pub hash: String,
}

/// A content-addressed blob as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRef {
    pub sha256: String,
    pub bytes: u64,
}

/// The run tree, folded from the run's events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunTree {
    pub run: RunRow,
    pub steps: Vec<StepTree>,
    /// Artifacts attached to the run itself (e.g. the TaskSpec).
    pub artifacts: Vec<ArtifactRow>,
    /// Gates attached to the run itself (no step id).
    pub gates: Vec<GateRow>,
}

impl RunTree {
    /// The run's attempts not in a terminal status (what a supervisor that stopped or failed
    /// mid-attempt must close), by step, then by number.
    pub fn unfinished_attempts(&self) -> impl Iterator<Item = &AttemptRow> {
        self.steps
            .iter()
            .flat_map(|s| &s.attempts)
            .map(|a| &a.attempt)
            .filter(|a| !a.status.is_terminal())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepTree {
    pub step: StepRow,
    pub attempts: Vec<AttemptTree>,
    /// Artifacts attached to the step itself (e.g. its ResultSpec).
    pub artifacts: Vec<ArtifactRow>,
    /// Gates attached to the step itself (no attempt id), e.g. a human approval.
    pub gates: Vec<GateRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptTree {
    pub attempt: AttemptRow,
    pub artifacts: Vec<ArtifactRow>,
    pub validations: Vec<ValidationRow>,
    pub gates: Vec<GateRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRow {
    pub id: String,
    pub name: String,
    pub workspace: String,
    pub executor: String,
    pub policy: Option<String>,
    pub status: RunStatus,
    pub reason: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub finished_at: Option<String>,
    pub actor: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRow {
    pub id: String,
    pub run_id: String,
    pub index: u32,
    pub goal: String,
    pub executor: String,
    pub max_attempts: u32,
    pub status: StepStatus,
    pub base: Option<String>,
    pub base_commit: Option<String>,
    pub head_commit: Option<String>,
    pub reason: Option<String>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptRow {
    pub id: String,
    pub run_id: String,
    pub step_id: String,
    pub number: u32,
    pub executor: String,
    pub status: AttemptStatus,
    pub branch: String,
    pub worktree: String,
    pub base_commit: String,
    pub commit: Option<String>,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub reason: Option<String>,
    pub files_changed: Vec<String>,
    pub insertions: u64,
    pub deletions: u64,
    pub summary: Option<String>,
    pub usage: Option<Usage>,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub duration_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArtifactRow {
    pub id: String,
    pub run_id: Option<String>,
    pub step_id: Option<String>,
    pub attempt_id: Option<String>,
    pub kind: ArtifactKind,
    pub name: Option<String>,
    pub sha256: String,
    pub bytes: u64,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationRow {
    pub id: String,
    pub attempt_id: String,
    pub name: String,
    pub command: String,
    pub status: ValidationStatus,
    pub exit_code: Option<i32>,
    pub duration_ms: u64,
    pub output_artifact: Option<String>,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateRow {
    pub id: String,
    pub run_id: String,
    pub step_id: Option<String>,
    pub attempt_id: Option<String>,
    pub name: String,
    pub status: GateStatus,
    pub reason: Option<String>,
    /// Who decided it (the event's actor), once decided.
    pub decided_by: Option<String>,
    pub created_at: String,
    pub decided_at: Option<String>,
}

/// An API token as recorded (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRow {
    pub id: String,
    /// The actor of every event the token causes.
    pub name: String,
    pub scopes: Vec<String>,
    /// SHA-256 (hex) of the secret.
    pub sha256: String,
    pub created_at: String,
    pub created_by: String,
    pub revoked_at: Option<String>,
}

/// Filter for listing runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    pub status: Option<RunStatus>,
    pub name: Option<String>,
    /// Return runs created before this id (ULIDs sort by time); for paging.
    pub before: Option<String>,
    pub limit: Option<u32>,
}

#[cfg(test)]
mod status_tests {
    use super::*;

    #[test]
    fn statuses_parse_by_their_serde_names() {
        assert_eq!(
            "awaiting_approval".parse::<RunStatus>(),
            Ok(RunStatus::AwaitingApproval)
        );
        assert_eq!("rejected".parse::<GateStatus>(), Ok(GateStatus::Rejected));
        let err = "done".parse::<RunStatus>().unwrap_err().to_string();
        assert_eq!(
            err,
            "unknown status `done`: use pending, running, awaiting_approval, passed, failed or cancelled"
        );
        let err = "Approved".parse::<GateStatus>().unwrap_err().to_string();
        assert_eq!(
            err,
            "unknown gate status `Approved`: use pending, passed, failed, approved or rejected"
        );
    }
}
