//! StepActor: runs one step's attempts until one passes or `max_attempts` is reached; a later
//! attempt gets the earlier failures' evidence in its prompt.

use std::path::PathBuf;
use std::sync::Arc;

use codencer_store::{AttemptStatus, EventBody, RunStatus};
use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::run::{RunMsg, StepFinished};
use crate::attempt::{AttemptPlan, run_attempt};
use crate::context::Context;
use crate::record::Ids;
use crate::spec::StepSpec;

/// Everything a step needs; cloned on restart.
#[derive(Debug, Clone)]
pub struct StepArgs {
    pub ctx: Arc<Context>,
    pub run_id: String,
    pub step_id: String,
    /// 1-based.
    pub index: u32,
    pub spec: StepSpec,
    pub repo: PathBuf,
    /// Ref the step starts from (for the record) and the commit it resolves to.
    pub base: String,
    pub base_commit: String,
    pub parent: ActorRef<RunMsg>,
}

#[derive(Debug)]
pub enum StepMsg {
    Go,
}

#[derive(Debug)]
pub struct StepActor;

impl Actor for StepActor {
    type Msg = StepMsg;
    type State = StepArgs;
    type Arguments = StepArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<StepMsg>,
        args: StepArgs,
    ) -> Result<StepArgs, ActorProcessingErr> {
        myself.send_message(StepMsg::Go)?;
        Ok(args)
    }

    #[tracing::instrument(skip_all, fields(run_id = %state.run_id, step = state.index))]
    async fn handle(
        &self,
        myself: ActorRef<StepMsg>,
        msg: StepMsg,
        state: &mut StepArgs,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            StepMsg::Go => {
                let finished = run_step(state).await;
                state.parent.send_message(RunMsg::StepFinished(finished))?;
                myself.stop(None);
            }
        }
        Ok(())
    }
}

async fn run_step(s: &StepArgs) -> StepFinished {
    match try_run_step(s).await {
        Ok(finished) => {
            if let Err(err) = record_result(s) {
                tracing::error!(cause = %err, "could not record the step's ResultSpec");
            }
            finished
        }
        Err(err) => {
            let reason = format!("infrastructure error: {err}");
            tracing::error!(cause = %err, "step failed on infrastructure");
            let ids = Ids::step(&s.run_id, &s.step_id);
            let attempts = attempts_so_far(s);
            // Best effort: when the store itself failed, this append fails too, and the
            // run reports the infrastructure error without it.
            let _ = s.ctx.recorder.append(
                &ids,
                EventBody::StepCompleted {
                    status: RunStatus::Failed,
                    head_commit: None,
                    attempts,
                    reason: Some(reason.clone()),
                },
            );
            StepFinished {
                index: s.index,
                status: RunStatus::Failed,
                head_commit: None,
                infrastructure: Some(reason),
            }
        }
    }
}

/// Records the step's ResultSpec, built from the record, as a step artifact.
fn record_result(s: &StepArgs) -> Result<(), crate::supervisor_error::SupervisorError> {
    let store = s.ctx.recorder.store();
    let Some(tree) = store.run_tree(&s.run_id)? else { return Ok(()) };
    let Some(step) = tree.steps.iter().find(|st| st.step.id == s.step_id) else { return Ok(()) };
    let result = crate::result::ResultSpec::from_step(&tree, step);
    let json = serde_json::to_vec_pretty(&result).map_err(|e| crate::supervisor_error::SupervisorError::Infrastructure(e.to_string()))?;
    s.ctx.recorder.artifact(&Ids::step(&s.run_id, &s.step_id), codencer_store::ArtifactKind::Resultspec, None, &json)?;
    Ok(())
}

fn attempts_so_far(s: &StepArgs) -> u32 {
    s.ctx
        .recorder
        .store()
        .run_tree(&s.run_id)
        .ok()
        .flatten()
        .and_then(|tree| tree.steps.into_iter().find(|st| st.step.id == s.step_id))
        .map_or(0, |st| st.attempts.len() as u32)
}

async fn try_run_step(
    s: &StepArgs,
) -> Result<StepFinished, crate::supervisor_error::SupervisorError> {
    let ids = Ids::step(&s.run_id, &s.step_id);
    let rec = &s.ctx.recorder;
    // A restarted step continues numbering after the attempts already recorded.
    let done = attempts_so_far(s);
    if done == 0 {
        rec.append(
            &ids,
            EventBody::StepStarted {
                base: s.base.clone(),
                base_commit: s.base_commit.clone(),
            },
        )?;
    }
    let mut feedback: Vec<String> = Vec::new();
    let mut last_reason = None;
    let mut number = done;
    while number < s.spec.max_attempts {
        number += 1;
        if *s.ctx.cancel.borrow() {
            break;
        }
        let plan = AttemptPlan {
            run_id: &s.run_id,
            step_id: &s.step_id,
            step_index: s.index,
            number,
            step: &s.spec,
            repo: &s.repo,
            base_commit: &s.base_commit,
            feedback: &feedback,
        };
        let result = run_attempt(&s.ctx, &plan).await?;
        match result.status {
            AttemptStatus::Passed if result.awaiting_approval => {
                rec.append(
                    &ids,
                    EventBody::StepAwaitingApproval {
                        gate: "approval".into(),
                        reason: "an approval gate is open".into(),
                    },
                )?;
                return Ok(StepFinished {
                    index: s.index,
                    status: RunStatus::AwaitingApproval,
                    head_commit: result.commit,
                    infrastructure: None,
                });
            }
            AttemptStatus::Passed => {
                let head = result.commit.unwrap_or_else(|| s.base_commit.clone());
                rec.append(
                    &ids,
                    EventBody::StepCompleted {
                        status: RunStatus::Passed,
                        head_commit: Some(head.clone()),
                        attempts: number,
                        reason: None,
                    },
                )?;
                return Ok(StepFinished {
                    index: s.index,
                    status: RunStatus::Passed,
                    head_commit: Some(head),
                    infrastructure: None,
                });
            }
            AttemptStatus::Killed if *s.ctx.cancel.borrow() => break,
            other => {
                last_reason = Some(format!("attempt {number} {}", other.as_str()));
                if let Some(evidence) = result.evidence {
                    feedback.push(format!(
                        "Attempt {number} ended `{}`.\n{evidence}",
                        other.as_str()
                    ));
                }
            }
        }
    }
    if *s.ctx.cancel.borrow() {
        rec.append(
            &ids,
            EventBody::StepCompleted {
                status: RunStatus::Cancelled,
                head_commit: None,
                attempts: number,
                reason: Some("cancelled".into()),
            },
        )?;
        return Ok(StepFinished {
            index: s.index,
            status: RunStatus::Cancelled,
            head_commit: None,
            infrastructure: None,
        });
    }
    let reason = format!(
        "all {} attempt(s) failed{}",
        s.spec.max_attempts,
        last_reason
            .map(|r| format!("; last: {r}"))
            .unwrap_or_default()
    );
    rec.append(
        &ids,
        EventBody::StepCompleted {
            status: RunStatus::Failed,
            head_commit: None,
            attempts: number,
            reason: Some(reason),
        },
    )?;
    Ok(StepFinished {
        index: s.index,
        status: RunStatus::Failed,
        head_commit: None,
        infrastructure: None,
    })
}
