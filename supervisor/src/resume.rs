//! Resuming a recorded run: after a crash of the supervisor, or once an approval gate is
//! decided. The record is the truth; resuming only appends to it.

use std::path::Path;
use std::sync::Arc;

use codencer_policy::PolicySources;
use codencer_store::{ArtifactKind, EventBody, GateStatus, RunStatus, RunTree};

use crate::actors::run::RunOutcome;
use crate::engine::{CreatedRun, Engine, RunScope};
use crate::plan::RunPlan;
use crate::record::{Ids, Recorder};
use crate::spec::TaskSpec;
use crate::supervisor_error::SupervisorError;

/// What resuming did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resumed {
    /// The run had already ended (its status); or, for an open run, every step it has ran
    /// (its status is then still `running`: it waits for the planner's next step).
    Finished(RunStatus),
    /// A step still waits for a decision on this gate.
    AwaitingApproval { gate_id: String },
    /// The run went on to its end (or to its next approval gate).
    Ran(RunOutcome),
}

/// Where a run picks up.
pub(crate) struct Restart {
    pub first_step: usize,
    pub base: String,
}

impl Engine {
    /// Continues a run from its record: attempts left unfinished by a dead supervisor are
    /// marked `interrupted`; a step awaiting approval continues as its gate was decided;
    /// the remaining steps run.
    pub async fn resume(&self, run_id: &str) -> Result<Resumed, SupervisorError> {
        self.resume_in(&RunScope::engine(self), run_id).await
    }

    /// [`Engine::resume`] in `scope` (its own actor and cancellation).
    pub async fn resume_in(
        &self,
        scope: &RunScope,
        run_id: &str,
    ) -> Result<Resumed, SupervisorError> {
        // Held until the run stops: no other process closes or starts its attempts.
        let _lock = crate::runlock::RunLock::take(&scope.ctx.state_dir, run_id)?;
        let rec = &scope.ctx.recorder;
        let store = rec.store();
        let tree = store
            .run_tree(run_id)?
            .ok_or_else(|| SupervisorError::Infrastructure(format!("no run {run_id}")))?;
        if tree.run.status.is_terminal() {
            return Ok(Resumed::Finished(tree.run.status));
        }
        let plan = Arc::new(recorded_plan(store, &tree)?);
        for attempt in tree.unfinished_attempts() {
            crate::interrupted::close(
                rec,
                &plan.spec.workspace,
                attempt,
                codencer_store::AttemptStatus::Interrupted,
                "the supervisor stopped before the attempt ended",
            )
            .await?;
        }
        let restart = match restart_point(rec, &tree, &plan)? {
            Ok(restart) => restart,
            Err(early) => return Ok(early),
        };
        let base_commit = crate::git::resolve_commit(&plan.spec.workspace, &restart.base)
            .await
            .map_err(|e| {
                SupervisorError::Infrastructure(format!(
                    "cannot resolve the run's base {}: {e}",
                    restart.base
                ))
            })?;
        let step_ids = tree.steps.iter().map(|s| s.step.id.clone()).collect();
        let outcome = self
            .launch_in(
                scope.ctx.clone(),
                plan,
                CreatedRun {
                    run_id: run_id.to_string(),
                    step_ids,
                },
                restart.first_step,
                // A run created but never started (the daemon queues new runs this way).
                tree.run.status != RunStatus::Pending,
                restart.base,
                base_commit,
            )
            .await?;
        Ok(Resumed::Ran(outcome))
    }
}

/// The first step still to run, and what it builds on; or why nothing runs.
pub(crate) fn restart_point(
    rec: &Recorder,
    tree: &RunTree,
    plan: &RunPlan,
) -> Result<Result<Restart, Resumed>, SupervisorError> {
    let run_id = &tree.run.id;
    let mut base = plan.spec.base.clone();
    for (i, step) in tree.steps.iter().enumerate() {
        let ids = Ids::step(run_id, &step.step.id);
        match step.step.status {
            RunStatus::Passed => {
                if let Some(head) = &step.step.head_commit {
                    base = head.clone();
                }
            }
            RunStatus::AwaitingApproval => {
                let Some((gate, commit)) = approval_gate(step) else {
                    return Ok(Ok(Restart {
                        first_step: i,
                        base,
                    }));
                };
                match gate.status {
                    GateStatus::Approved => {
                        let head = commit.unwrap_or_else(|| base.clone());
                        rec.append(
                            &ids,
                            EventBody::StepCompleted {
                                status: RunStatus::Passed,
                                head_commit: Some(head.clone()),
                                attempts: step.attempts.len() as u32,
                                reason: None,
                            },
                        )?;
                        base = head;
                    }
                    GateStatus::Rejected => {
                        let why = format!(
                            "approval rejected by {}{}",
                            gate.decided_by.clone().unwrap_or_else(|| "someone".into()),
                            gate.reason
                                .as_ref()
                                .map(|r| format!(": {r}"))
                                .unwrap_or_default()
                        );
                        rec.append(
                            &ids,
                            EventBody::StepCompleted {
                                status: RunStatus::Failed,
                                head_commit: None,
                                attempts: step.attempts.len() as u32,
                                reason: Some(why.clone()),
                            },
                        )?;
                        rec.append(
                            &Ids::run(run_id),
                            EventBody::RunCompleted {
                                status: RunStatus::Failed,
                                reason: Some(format!("step {} failed: {why}", i + 1)),
                            },
                        )?;
                        return Ok(Err(Resumed::Finished(RunStatus::Failed)));
                    }
                    _ => {
                        return Ok(Err(Resumed::AwaitingApproval {
                            gate_id: gate.id.clone(),
                        }));
                    }
                }
            }
            RunStatus::Failed | RunStatus::Cancelled => {
                // The supervisor died between the step's end and the run's.
                let status = step.step.status;
                rec.append(
                    &Ids::run(run_id),
                    EventBody::RunCompleted {
                        status,
                        reason: Some(format!("step {} {}", i + 1, status.as_str())),
                    },
                )?;
                return Ok(Err(Resumed::Finished(status)));
            }
            _ => {
                return Ok(Ok(Restart {
                    first_step: i,
                    base,
                }));
            }
        }
    }
    if plan.open {
        // Every step ran; the open run waits for the planner's next step.
        return Ok(Err(Resumed::Finished(tree.run.status)));
    }
    rec.append(
        &Ids::run(run_id),
        EventBody::RunCompleted {
            status: RunStatus::Passed,
            reason: None,
        },
    )?;
    Ok(Err(Resumed::Finished(RunStatus::Passed)))
}

/// The approval gate of a step's last attempt, with that attempt's commit.
fn approval_gate(
    step: &codencer_store::StepTree,
) -> Option<(&codencer_store::GateRow, Option<String>)> {
    let attempt = step.attempts.last()?;
    let gate = attempt.gates.iter().rev().find(|g| g.name == "approval")?;
    Some((gate, attempt.attempt.commit.clone()))
}

/// The run's plan, rebuilt from the TaskSpec it recorded, under today's policy files.
pub(crate) fn recorded_plan(
    store: &codencer_store::Store,
    tree: &RunTree,
) -> Result<RunPlan, SupervisorError> {
    let artifact = tree
        .artifacts
        .iter()
        .find(|a| a.kind == ArtifactKind::Taskspec)
        .ok_or_else(|| {
            SupervisorError::Infrastructure(format!("run {} has no recorded TaskSpec", tree.run.id))
        })?;
    let text = String::from_utf8(store.read_blob(&artifact.sha256)?).map_err(|_| {
        SupervisorError::Infrastructure("the recorded TaskSpec is not UTF-8".into())
    })?;
    let origin = artifact
        .name
        .clone()
        .unwrap_or_else(|| "<recorded TaskSpec>".into());
    let spec =
        TaskSpec::parse_recorded(&text, &origin, Path::new(&tree.run.workspace)).map_err(|e| {
            SupervisorError::Infrastructure(format!(
                "the recorded TaskSpec no longer validates:\n{e}"
            ))
        })?;
    let sources = PolicySources::from_env();
    let mut plan = RunPlan::resolve(spec, &sources).map_err(|e| {
        SupervisorError::Infrastructure(format!(
            "the policy refuses the recorded TaskSpec now:\n{e}"
        ))
    })?;
    plan.open = store
        .events_for_run(&tree.run.id)?
        .iter()
        .any(|e| matches!(e.body, EventBody::RunOpened {}));
    // Steps a planner appended: each recorded its own step text.
    for step in tree.steps.iter().skip(plan.steps.len()) {
        let artifact = step
            .artifacts
            .iter()
            .find(|a| a.kind == ArtifactKind::Taskspec)
            .ok_or_else(|| {
                SupervisorError::Infrastructure(format!(
                    "appended step {} has no recorded step text",
                    step.step.index
                ))
            })?;
        let text = String::from_utf8(store.read_blob(&artifact.sha256)?).map_err(|_| {
            SupervisorError::Infrastructure("a recorded step text is not UTF-8".into())
        })?;
        let origin = artifact
            .name
            .clone()
            .unwrap_or_else(|| "<appended step>".into());
        let spec = plan.spec.parse_step(&text, &origin).map_err(|e| {
            SupervisorError::Infrastructure(format!(
                "recorded step {} no longer validates:\n{e}",
                step.step.index
            ))
        })?;
        let resolved = plan.resolve_step(spec, &sources).map_err(|e| {
            SupervisorError::Infrastructure(format!(
                "the policy refuses recorded step {} now:\n{e}",
                step.step.index
            ))
        })?;
        plan.steps.push(resolved);
    }
    Ok(plan)
}
