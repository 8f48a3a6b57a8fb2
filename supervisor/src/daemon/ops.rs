//! What the daemon does for a caller, shared by the HTTP routes and the MCP tools: each
//! operation checks the caller's scope and records what it causes as the caller.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use codencer_policy::PolicySources;
use codencer_store::{ArtifactRow, EventBody, GateRow, GateStatus, RunStatus, RunTree, StepTree};
use serde::Serialize;

use super::auth::{Principal, Scope};
use super::error::ApiError;
use super::runner::{Runner, Slot};
use crate::engine::AppendStepError;
use crate::plan::RunPlan;
use crate::record::{Ids, Recorder};
use crate::result::{ResultSpec, RunResult};
use crate::spec::TaskSpec;
use crate::text::error_chain;

/// The daemon's shared state.
#[derive(Debug)]
pub struct Daemon {
    pub runner: Arc<Runner>,
}

/// A run as the API shows it: the recorded tree, whether it is open, where it is queued.
#[derive(Debug, Clone, Serialize)]
pub struct RunView {
    #[serde(flatten)]
    pub tree: RunTree,
    pub open: bool,
    /// `queued` or `running` while the run has work, else `null`.
    pub slot: Option<Slot>,
}

/// What submitting a TaskSpec created.
#[derive(Debug, Clone, Serialize)]
pub struct Submitted {
    pub run_id: String,
    pub step_ids: Vec<String>,
    pub open: bool,
}

/// What appending a step created.
#[derive(Debug, Clone, Serialize)]
pub struct Appended {
    pub run_id: String,
    pub step_id: String,
    pub index: u32,
}

/// A run's full id and its status after a cancel, resume or close.
#[derive(Debug, Clone, Serialize)]
pub struct RunChange {
    pub run_id: String,
    pub status: RunStatus,
}

/// A step's result, and whether the step is done (passed, failed, cancelled, or waiting
/// for an approval).
#[derive(Debug, Clone, Serialize)]
pub struct StepWait {
    pub done: bool,
    pub result: ResultSpec,
}

impl Daemon {
    pub fn store(&self) -> &Arc<codencer_store::Store> {
        self.runner.engine.recorder().store()
    }

    /// The recorder for events `who` causes.
    pub fn recorder_for(&self, who: &Principal) -> Recorder {
        self.runner.engine.recorder().as_actor(&who.name)
    }

    /// Refuses (403, recorded as `audit.denied`) unless `who` has `scope`.
    pub fn require(&self, who: &Principal, scope: Scope, route: &str) -> Result<(), ApiError> {
        if who.allows(scope) {
            return Ok(());
        }
        let reason = format!("token `{}` lacks scope {scope}", who.name);
        self.record_denied(&who.name, &reason, route);
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("{reason}; ask an admin for a token with {scope}"),
        ))
    }

    /// Records `audit.denied` as `actor`; the refusal stands even if that fails.
    pub(crate) fn record_denied(&self, actor: &str, reason: &str, route: &str) {
        let rec = self.runner.engine.recorder().as_actor(actor);
        let denied = EventBody::AuditDenied {
            reason: reason.to_string(),
            route: Some(route.to_string()),
        };
        if let Err(err) = rec.append(&Ids::default(), denied) {
            tracing::error!(cause = %err, "could not record audit.denied");
        }
    }

    pub fn resolve_run(&self, id: &str) -> Result<String, ApiError> {
        Ok(self.store().resolve_run_id(id)?)
    }

    pub fn tree(&self, run_id: &str) -> Result<RunTree, ApiError> {
        self.store()
            .run_tree(run_id)?
            .ok_or_else(|| ApiError::not_found("run", run_id))
    }

    pub fn run_view(&self, id: &str) -> Result<RunView, ApiError> {
        let run_id = self.resolve_run(id)?;
        let tree = self.tree(&run_id)?;
        let open = self
            .runner
            .engine
            .is_open(&tree)
            .map_err(|e| ApiError::internal(&e))?;
        Ok(RunView {
            tree,
            open,
            slot: self.runner.slot(&run_id),
        })
    }

    pub fn run_result(&self, id: &str) -> Result<RunResult, ApiError> {
        let run_id = self.resolve_run(id)?;
        Ok(RunResult::from_tree(&self.tree(&run_id)?))
    }

    /// Validates and records a TaskSpec, then queues the run.
    pub fn submit(
        &self,
        who: &Principal,
        text: &str,
        open: bool,
        base_dir: Option<PathBuf>,
    ) -> Result<Submitted, ApiError> {
        self.require(who, Scope::RunsWrite, "submit")?;
        let base_dir = base_dir.unwrap_or_else(|| PathBuf::from("/"));
        let spec = TaskSpec::parse(text, "<request>", &base_dir)
            .map_err(|e| ApiError::invalid_spec("invalid_taskspec", &e))?;
        let mut plan = RunPlan::resolve(spec, &PolicySources::from_env()).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "policy_refused",
                format!(
                    "the policy refuses this TaskSpec (nothing was run or recorded): {}",
                    error_chain(&e)
                ),
            )
        })?;
        plan.open = open;
        if plan.steps.is_empty() && !open {
            return Err(ApiError::bad_request(
                "the TaskSpec has no step; give a goal, or submit with open: true and append steps",
            ));
        }
        let created = self
            .runner
            .engine
            .create_run_as(&self.recorder_for(who), &plan)
            .map_err(|e| ApiError::internal(&e))?;
        self.runner.kick(&created.run_id, &who.name);
        Ok(Submitted {
            run_id: created.run_id,
            step_ids: created.step_ids,
            open,
        })
    }

    /// Appends the planner's next step to an open run and queues it.
    pub fn append_step(&self, who: &Principal, id: &str, text: &str) -> Result<Appended, ApiError> {
        self.require(who, Scope::RunsWrite, "append_step")?;
        let run_id = self.resolve_run(id)?;
        let rec = self.recorder_for(who);
        let appended = self
            .runner
            .engine
            .append_step(&rec, &run_id, text, "<appended step>")
            .map_err(|e| match e {
                AppendStepError::NoRun(id) => ApiError::not_found("run", &id),
                AppendStepError::NotOpen(_) => ApiError::conflict("run_not_open", e.to_string()),
                AppendStepError::Finished { .. } => {
                    ApiError::conflict("run_finished", e.to_string())
                }
                AppendStepError::Spec(errors) => ApiError::invalid_spec("invalid_step", &errors),
                AppendStepError::Policy(err) => ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "policy_refused",
                    format!("the policy refuses this step: {}", error_chain(&err)),
                ),
                other => ApiError::internal(&other),
            })?;
        self.runner.kick(&run_id, &who.name);
        Ok(Appended {
            run_id,
            step_id: appended.step_id,
            index: appended.index,
        })
    }

    /// The tree of a run that has not ended; 409 once it has.
    fn unfinished_tree(&self, run_id: &str) -> Result<RunTree, ApiError> {
        let tree = self.tree(run_id)?;
        if tree.run.status.is_terminal() {
            return Err(ApiError::conflict(
                "run_finished",
                format!(
                    "run {run_id} has already ended ({})",
                    tree.run.status.as_str()
                ),
            ));
        }
        Ok(tree)
    }

    pub fn cancel(&self, who: &Principal, id: &str) -> Result<RunChange, ApiError> {
        self.require(who, Scope::RunsWrite, "cancel")?;
        let run_id = self.resolve_run(id)?;
        self.unfinished_tree(&run_id)?;
        self.runner.cancel(&self.recorder_for(who), &run_id);
        let status = self.tree(&run_id)?.run.status;
        Ok(RunChange { run_id, status })
    }

    pub fn resume(&self, who: &Principal, id: &str) -> Result<RunChange, ApiError> {
        self.require(who, Scope::RunsWrite, "resume")?;
        let run_id = self.resolve_run(id)?;
        let status = self.unfinished_tree(&run_id)?.run.status;
        self.runner.kick(&run_id, &who.name);
        Ok(RunChange { run_id, status })
    }

    /// Ends an open run once it has nothing running.
    pub fn close(&self, who: &Principal, id: &str) -> Result<RunChange, ApiError> {
        self.require(who, Scope::RunsWrite, "close")?;
        let run_id = self.resolve_run(id)?;
        if self.runner.slot(&run_id).is_some() {
            return Err(ApiError::conflict(
                "run_busy",
                format!("run {run_id} is still running a step; wait for it, or cancel the run"),
            ));
        }
        let tree = self.tree(&run_id)?;
        if !self
            .runner
            .engine
            .is_open(&tree)
            .map_err(|e| ApiError::internal(&e))?
        {
            return Err(ApiError::conflict(
                "run_not_open",
                format!("run {run_id} is not an open run (or has ended); cancel it instead"),
            ));
        }
        let status = self
            .runner
            .engine
            .close_run(&self.recorder_for(who), &run_id)
            .map_err(|e| ApiError::conflict("run_finished", e.to_string()))?;
        Ok(RunChange { run_id, status })
    }

    pub fn step(&self, run: &str, step_id: &str) -> Result<(RunTree, StepTree), ApiError> {
        let run_id = self.resolve_run(run)?;
        let tree = self.tree(&run_id)?;
        let step = tree
            .steps
            .iter()
            .find(|s| s.step.id == step_id || s.step.index.to_string() == step_id)
            .cloned()
            .ok_or_else(|| ApiError::not_found("step", step_id))?;
        Ok((tree, step))
    }

    pub fn step_result(&self, run: &str, step_id: &str) -> Result<StepWait, ApiError> {
        let (tree, step) = self.step(run, step_id)?;
        let done = step_done(&tree, &step, self.runner.slot(&tree.run.id));
        Ok(StepWait {
            done,
            result: ResultSpec::from_step(&tree, &step),
        })
    }

    /// Waits up to `timeout` for a step to be done; returns its result either way.
    pub async fn wait_step(
        &self,
        run: &str,
        step_id: &str,
        timeout: Duration,
    ) -> Result<StepWait, ApiError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut live = self.runner.engine.recorder().subscribe();
        loop {
            let wait = self.step_result(run, step_id)?;
            if wait.done || tokio::time::Instant::now() >= deadline {
                return Ok(wait);
            }
            // Any appended event may be the one; the poll catches other processes' appends.
            let _ = tokio::time::timeout_at(
                deadline.min(tokio::time::Instant::now() + Duration::from_millis(500)),
                live.recv(),
            )
            .await;
        }
    }

    pub fn artifact(&self, id: &str) -> Result<ArtifactRow, ApiError> {
        self.store()
            .artifact(id)?
            .ok_or_else(|| ApiError::not_found("artifact", id))
    }

    /// Every artifact of a run: its own, its steps', its attempts'.
    pub fn run_artifacts(&self, id: &str) -> Result<Vec<ArtifactRow>, ApiError> {
        let tree = self.tree(&self.resolve_run(id)?)?;
        let mut rows = tree.artifacts;
        for step in tree.steps {
            rows.extend(step.artifacts);
            for attempt in step.attempts {
                rows.extend(attempt.artifacts);
            }
        }
        Ok(rows)
    }

    pub fn gate(&self, id: &str) -> Result<GateRow, ApiError> {
        self.store()
            .gate(id)?
            .ok_or_else(|| ApiError::not_found("gate", id))
    }

    /// Approves or rejects a pending gate as `who`, then lets the run go on.
    pub fn decide_gate(
        &self,
        who: &Principal,
        id: &str,
        approve: bool,
        reason: Option<String>,
    ) -> Result<GateRow, ApiError> {
        self.require(
            who,
            Scope::GatesWrite,
            if approve {
                "approve_gate"
            } else {
                "reject_gate"
            },
        )?;
        let gate = self.gate(id)?;
        if gate.status != GateStatus::Pending {
            return Err(ApiError::conflict(
                "gate_decided",
                format!(
                    "gate {id} is already {} (by {})",
                    crate::text::serde_name(&gate.status),
                    gate.decided_by.unwrap_or_else(|| "codencer".into())
                ),
            ));
        }
        if !approve && reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
            return Err(ApiError::bad_request(
                "rejecting a gate needs a reason (it is recorded and shown to the planner)",
            ));
        }
        let status = if approve {
            GateStatus::Approved
        } else {
            GateStatus::Rejected
        };
        let ids = Ids {
            run: Some(gate.run_id.clone()),
            step: gate.step_id.clone(),
            attempt: gate.attempt_id.clone(),
        };
        self.recorder_for(who)
            .append(
                &ids,
                EventBody::GateDecided {
                    gate_id: gate.id.clone(),
                    name: gate.name.clone(),
                    status,
                    reason,
                },
            )
            .map_err(ApiError::from)?;
        self.runner.kick(&gate.run_id, &who.name);
        self.gate(id)
    }
}

/// Whether a step has come to a point where the planner can act.
fn step_done(tree: &RunTree, step: &StepTree, slot: Option<Slot>) -> bool {
    match step.step.status {
        RunStatus::Passed | RunStatus::Failed | RunStatus::Cancelled => true,
        RunStatus::AwaitingApproval => slot.is_none(),
        // A step that never started in a run that ended (cancelled, failed before it).
        _ => tree.run.status.is_terminal(),
    }
}
