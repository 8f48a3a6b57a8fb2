//! StepActor: runs one step's attempts until one passes or `max_attempts` is reached; a later
//! attempt gets the earlier failures' evidence in its prompt.

use std::path::PathBuf;
use std::sync::Arc;

use codencer_policy::FailureKind;
use codencer_store::{AttemptStatus, EventBody, RunStatus};
use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::run::{RunMsg, StepFinished};
use crate::actors::policy::{PolicyCheck, PolicyVerdict};
use crate::attempt::{AttemptPlan, run_attempt};
use crate::context::{Context, Stop};
use crate::plan::StepPlan;
use crate::record::{Ids, NewArtifact};

/// Everything a step needs; cloned on restart.
#[derive(Debug, Clone)]
pub struct StepArgs {
    pub ctx: Arc<Context>,
    pub run_id: String,
    pub step_id: String,
    /// 1-based.
    pub index: u32,
    pub plan: StepPlan,
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
            let attempts = recorded(s).map_or(0, |r| r.attempts);
            // Best effort: when the store itself failed, these appends fail too, the run
            // reports the infrastructure error without them, and the next start closes
            // the attempt `interrupted`.
            close_unfinished(s, &reason);
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
                suspended: false,
            }
        }
    }
}

/// Ends the step's attempt an infrastructure error left unfinished, `crashed` with `reason`.
fn close_unfinished(s: &StepArgs, reason: &str) {
    let rec = &s.ctx.recorder;
    let Ok(Some(tree)) = rec.store().run_tree(&s.run_id) else {
        return;
    };
    for attempt in tree
        .unfinished_attempts()
        .filter(|a| a.step_id == s.step_id)
    {
        let _ = rec.append(
            &Ids::attempt(&s.run_id, &s.step_id, &attempt.id),
            EventBody::AttemptCompleted {
                status: AttemptStatus::Crashed,
                exit: None,
                reason: Some(reason.to_string()),
                commit: None,
                files_changed: Vec::new(),
                insertions: 0,
                deletions: 0,
                duration_ms: 0,
                summary: None,
                usage: None,
            },
        );
    }
}

/// Records the step's ResultSpec, built from the record, as a step artifact.
fn record_result(s: &StepArgs) -> Result<(), crate::supervisor_error::SupervisorError> {
    let store = s.ctx.recorder.store();
    let Some(tree) = store.run_tree(&s.run_id)? else {
        return Ok(());
    };
    let Some(step) = tree.steps.iter().find(|st| st.step.id == s.step_id) else {
        return Ok(());
    };
    let result = crate::result::ResultSpec::from_step(&tree, step);
    let json = serde_json::to_vec_pretty(&result)
        .map_err(|e| crate::supervisor_error::SupervisorError::Infrastructure(e.to_string()))?;
    let artifact = NewArtifact::bytes(codencer_store::ArtifactKind::Resultspec, None, &json);
    s.ctx
        .recorder
        .record(&Ids::step(&s.run_id, &s.step_id), &[artifact], |_| {
            Vec::new()
        })?;
    Ok(())
}

/// What the record already says about this step: a restarted StepActor resumes from it.
struct Recorded {
    /// Attempts already made (numbering continues after them).
    attempts: u32,
    /// `step.started` is already recorded.
    started: bool,
    /// The commit of the last attempt when it passed without an approval gate left open
    /// (the supervisor died between the attempt's end and the step's).
    passed: Option<String>,
}

fn recorded(s: &StepArgs) -> Result<Recorded, crate::supervisor_error::SupervisorError> {
    let step = s
        .ctx
        .recorder
        .store()
        .run_tree(&s.run_id)?
        .and_then(|tree| tree.steps.into_iter().find(|st| st.step.id == s.step_id));
    let Some(step) = step else {
        return Ok(Recorded {
            attempts: 0,
            started: false,
            passed: None,
        });
    };
    let passed = step.attempts.last().and_then(|last| {
        let gated = last.gates.iter().any(|g| g.name == "approval");
        (last.attempt.status == AttemptStatus::Passed && !gated).then(|| {
            last.attempt
                .commit
                .clone()
                .unwrap_or_else(|| s.base_commit.clone())
        })
    });
    Ok(Recorded {
        attempts: step.attempts.len() as u32,
        started: step.step.status != RunStatus::Pending,
        passed,
    })
}

async fn try_run_step(
    s: &StepArgs,
) -> Result<StepFinished, crate::supervisor_error::SupervisorError> {
    let ids = Ids::step(&s.run_id, &s.step_id);
    let rec = &s.ctx.recorder;
    let recorded = recorded(s)?;
    // A restarted step continues numbering after the attempts already recorded.
    let done = recorded.attempts;
    // A StepActor restarted before its first attempt already recorded the step's start.
    if done == 0 && !recorded.started {
        rec.append(
            &ids,
            EventBody::StepStarted {
                base: s.base.clone(),
                base_commit: s.base_commit.clone(),
            },
        )?;
    }
    let finish = |status: RunStatus,
                  head_commit: Option<String>,
                  attempts: u32,
                  reason: Option<String>|
     -> Result<StepFinished, crate::supervisor_error::SupervisorError> {
        let event = match status {
            RunStatus::AwaitingApproval => EventBody::StepAwaitingApproval {
                gate: "approval".into(),
                reason: reason
                    .clone()
                    .unwrap_or_else(|| "an approval gate is open".into()),
            },
            _ => EventBody::StepCompleted {
                status,
                head_commit: head_commit.clone(),
                attempts,
                reason,
            },
        };
        rec.append(&ids, event)?;
        Ok(StepFinished {
            index: s.index,
            status,
            head_commit,
            infrastructure: None,
            suspended: false,
        })
    };
    if let Some(head) = recorded.passed {
        // The supervisor died after the attempt passed but before the step's end.
        return finish(RunStatus::Passed, Some(head), done, None);
    }
    let max_attempts = s.plan.max_attempts();
    let mut feedback: Vec<String> = Vec::new();
    let mut last_reason = None;
    let mut made = done;
    loop {
        if made >= max_attempts {
            break;
        }
        match s.ctx.stopping() {
            // Left unfinished on purpose: the next start goes on from here.
            Stop::Suspend => return Ok(StepFinished::suspended(s.index)),
            _ if *s.ctx.cancel.borrow() => break,
            Stop::Drain => {
                let why = format!("stopped by a signal before attempt {}", made + 1);
                return finish(RunStatus::Cancelled, None, made, Some(why));
            }
            Stop::Go => {}
        }
        let number = made + 1;
        crate::test_hooks::maybe_panic("step", number);
        let plan = AttemptPlan {
            run_id: &s.run_id,
            step_id: &s.step_id,
            step_index: s.index,
            number,
            step: &s.plan,
            repo: &s.repo,
            base_commit: &s.base_commit,
            feedback: &feedback,
        };
        let result = run_attempt(&s.ctx, &plan).await?;
        made = number;
        match result.status {
            AttemptStatus::Passed if result.awaiting_approval => {
                return finish(
                    RunStatus::AwaitingApproval,
                    result.commit,
                    made,
                    result.reason,
                );
            }
            AttemptStatus::Passed => {
                let head = result.commit.unwrap_or_else(|| s.base_commit.clone());
                return finish(RunStatus::Passed, Some(head), made, None);
            }
            // Cancelled (or suspended): the loop's head decides how the step ends.
            AttemptStatus::Killed | AttemptStatus::Interrupted if *s.ctx.cancel.borrow() => {}
            other => {
                last_reason = Some(format!(
                    "attempt {number} {}{}",
                    other.as_str(),
                    result
                        .reason
                        .as_ref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                ));
                if let Some(evidence) = result.evidence {
                    feedback.push(format!(
                        "Attempt {number} ended `{}`.\n{evidence}",
                        other.as_str()
                    ));
                }
                let failure = match other {
                    AttemptStatus::TimedOut => FailureKind::TimedOut,
                    AttemptStatus::Failed if result.validation_failed => {
                        FailureKind::ValidationFailed
                    }
                    AttemptStatus::Crashed | AttemptStatus::Killed | AttemptStatus::Interrupted => {
                        FailureKind::Crashed
                    }
                    // The executor or the policy refused: the same attempt again would too.
                    _ => break,
                };
                let retry = PolicyCheck::Retry {
                    ids: ids.clone(),
                    policy: s.plan.policy.clone(),
                    failure,
                    attempts_made: u64::from(made),
                };
                if s.ctx.policy_check(retry).await? != PolicyVerdict::Admit {
                    break;
                }
            }
        }
    }
    if *s.ctx.cancel.borrow() {
        return finish(RunStatus::Cancelled, None, made, Some("cancelled".into()));
    }
    let reason = format!(
        "{made} of at most {max_attempts} attempt(s) made, none passed{}",
        last_reason
            .map(|r| format!("; last: {r}"))
            .unwrap_or_default()
    );
    finish(RunStatus::Failed, None, made, Some(reason))
}
