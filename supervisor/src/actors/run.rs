//! RunActor: owns a run's StepActors and runs the steps in order, each from the previous
//! passed step's commit. A StepActor that fails (panics) ends its attempt `crashed`, is
//! recorded, and is restarted from the store's state; it never takes the run down.

use std::sync::Arc;

use codencer_store::{AttemptStatus, EventBody, RunStatus};
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SupervisionEvent};
use tokio::sync::oneshot;

use super::step::{StepActor, StepArgs};
use crate::context::{Context, Stop};
use crate::plan::RunPlan;
use crate::record::Ids;

/// How many times a failing StepActor is restarted before its step fails.
const MAX_STEP_RESTARTS: u32 = 3;

/// How a run ended, for whoever waits on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutcome {
    pub run_id: String,
    pub status: RunStatus,
    /// Set when the run ended because of an infrastructure failure.
    pub infrastructure: Option<String>,
}

/// A step's end, reported by its StepActor.
#[derive(Debug, Clone)]
pub struct StepFinished {
    pub index: u32,
    pub status: RunStatus,
    pub head_commit: Option<String>,
    pub infrastructure: Option<String>,
    /// The step stopped unfinished because the supervisor suspends its runs.
    pub suspended: bool,
}

impl StepFinished {
    pub(crate) fn suspended(index: u32) -> StepFinished {
        StepFinished {
            index,
            status: RunStatus::Running,
            head_commit: None,
            infrastructure: None,
            suspended: true,
        }
    }
}

#[derive(Debug)]
pub enum RunMsg {
    NextStep,
    StepFinished(StepFinished),
}

#[derive(Debug)]
pub struct RunArgs {
    pub ctx: Arc<Context>,
    pub run_id: String,
    pub plan: Arc<RunPlan>,
    /// Step ids in order, as recorded by `step.created`.
    pub step_ids: Vec<String>,
    /// 0-based index of the first step to run (non-zero when resuming).
    pub first_step: usize,
    /// The run was already started (resuming): no `run.started` again.
    pub resumed: bool,
    /// Ref and commit the first step to run starts from.
    pub base: String,
    pub base_commit: String,
    pub done: Option<oneshot::Sender<RunOutcome>>,
}

#[derive(Debug)]
pub struct RunState {
    args: RunArgs,
    next: usize,
    current: Option<(ActorCell, StepArgs)>,
    restarts: u32,
}

#[derive(Debug)]
pub struct RunActor;

impl RunActor {
    fn finish(
        myself: &ActorRef<RunMsg>,
        state: &mut RunState,
        status: RunStatus,
        reason: Option<String>,
        infrastructure: Option<String>,
    ) {
        let a = &state.args;
        // An open run waits for appended steps once its steps passed.
        let stays_open = a.plan.open && status == RunStatus::Passed;
        if status != RunStatus::AwaitingApproval
            && !stays_open
            && let Err(err) = a.ctx.recorder.append(
                &Ids::run(&a.run_id),
                EventBody::RunCompleted { status, reason },
            )
        {
            tracing::error!(run_id = %a.run_id, cause = %err, "could not record run.completed");
        }
        if let Some(done) = state.args.done.take() {
            let _ = done.send(RunOutcome {
                run_id: state.args.run_id.clone(),
                status,
                infrastructure,
            });
        }
        myself.stop(None);
    }

    /// Stops without `run.completed`: the run stays unfinished for the next start.
    fn suspend(myself: &ActorRef<RunMsg>, state: &mut RunState) {
        if let Some(done) = state.args.done.take() {
            let _ = done.send(RunOutcome {
                run_id: state.args.run_id.clone(),
                status: RunStatus::Running,
                infrastructure: None,
            });
        }
        myself.stop(None);
    }

    async fn spawn_step(
        myself: &ActorRef<RunMsg>,
        state: &mut RunState,
        step: StepArgs,
    ) -> Result<(), ActorProcessingErr> {
        let (child, _) =
            Actor::spawn_linked(None, StepActor, step.clone(), myself.get_cell()).await?;
        state.current = Some((child.get_cell(), step));
        Ok(())
    }
}

impl Actor for RunActor {
    type Msg = RunMsg;
    type State = RunState;
    type Arguments = RunArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<RunMsg>,
        args: RunArgs,
    ) -> Result<RunState, ActorProcessingErr> {
        if !args.resumed {
            args.ctx
                .recorder
                .append(&Ids::run(&args.run_id), EventBody::RunStarted {})?;
        }
        myself.send_message(RunMsg::NextStep)?;
        let next = args.first_step;
        Ok(RunState {
            args,
            next,
            current: None,
            restarts: 0,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<RunMsg>,
        msg: RunMsg,
        state: &mut RunState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RunMsg::NextStep => {
                let a = &state.args;
                if *a.ctx.cancel.borrow() {
                    Self::finish(
                        &myself,
                        state,
                        RunStatus::Cancelled,
                        Some("cancelled".into()),
                        None,
                    );
                    return Ok(());
                }
                let Some(plan) = a.plan.steps.get(state.next).cloned() else {
                    Self::finish(&myself, state, RunStatus::Passed, None, None);
                    return Ok(());
                };
                match a.ctx.stopping() {
                    Stop::Go => {}
                    Stop::Suspend => {
                        Self::suspend(&myself, state);
                        return Ok(());
                    }
                    Stop::Drain => {
                        let why = format!("stopped by a signal before step {}", state.next + 1);
                        Self::finish(&myself, state, RunStatus::Cancelled, Some(why), None);
                        return Ok(());
                    }
                }
                let step = StepArgs {
                    ctx: a.ctx.clone(),
                    run_id: a.run_id.clone(),
                    step_id: a.step_ids[state.next].clone(),
                    index: state.next as u32 + 1,
                    plan,
                    repo: a.plan.spec.workspace.clone(),
                    base: a.base.clone(),
                    base_commit: a.base_commit.clone(),
                    parent: myself.clone(),
                };
                state.restarts = 0;
                crate::test_hooks::maybe_panic("run", step.index);
                Self::spawn_step(&myself, state, step).await?;
            }
            RunMsg::StepFinished(f) if f.suspended => {
                state.current = None;
                Self::suspend(&myself, state);
            }
            RunMsg::StepFinished(f) => {
                state.current = None;
                match f.status {
                    RunStatus::Passed => {
                        if let Some(head) = f.head_commit {
                            state.args.base = head.clone();
                            state.args.base_commit = head;
                        }
                        state.next += 1;
                        myself.send_message(RunMsg::NextStep)?;
                    }
                    RunStatus::AwaitingApproval => {
                        Self::finish(&myself, state, RunStatus::AwaitingApproval, None, None)
                    }
                    RunStatus::Cancelled => Self::finish(
                        &myself,
                        state,
                        RunStatus::Cancelled,
                        Some("cancelled".into()),
                        None,
                    ),
                    RunStatus::Failed | RunStatus::Pending | RunStatus::Running => {
                        let reason = Some(format!("step {} failed", f.index));
                        Self::finish(&myself, state, RunStatus::Failed, reason, f.infrastructure);
                    }
                    _ => Self::finish(
                        &myself,
                        state,
                        RunStatus::Failed,
                        Some(format!("step {} ended {}", f.index, f.status.as_str())),
                        f.infrastructure,
                    ),
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<RunMsg>,
        evt: SupervisionEvent,
        state: &mut RunState,
    ) -> Result<(), ActorProcessingErr> {
        let SupervisionEvent::ActorFailed(cell, err) = evt else {
            return Ok(());
        };
        let Some((current, step)) = state.current.take() else {
            return Ok(());
        };
        if current.get_id() != cell.get_id() {
            state.current = Some((current, step));
            return Ok(());
        }
        let rec = &state.args.ctx.recorder;
        let ids = Ids::step(&step.run_id, &step.step_id);
        tracing::error!(run_id = %step.run_id, step = step.index, cause = %err, "step actor failed");
        rec.append(
            &ids,
            EventBody::SupervisorFailure {
                actor: format!("step {}", step.index),
                error: err.to_string(),
            },
        )?;
        // The attempt it was running ends `crashed` (its worker killed, its changes
        // captured); the record says why.
        let tree = rec.store().run_tree(&step.run_id)?;
        for attempt in tree
            .iter()
            .flat_map(|t| t.unfinished_attempts())
            .filter(|a| a.step_id == step.step_id)
        {
            crate::interrupted::close(
                rec,
                &step.repo,
                attempt,
                AttemptStatus::Crashed,
                &format!("step actor failed: {err}"),
            )
            .await?;
        }
        state.restarts += 1;
        if state.restarts > MAX_STEP_RESTARTS {
            let reason = format!("step actor failed {} times; last: {err}", state.restarts);
            rec.append(
                &ids,
                EventBody::StepCompleted {
                    status: RunStatus::Failed,
                    head_commit: None,
                    attempts: 0,
                    reason: Some(reason.clone()),
                },
            )?;
            Self::finish(&myself, state, RunStatus::Failed, Some(reason), None);
            return Ok(());
        }
        Self::spawn_step(&myself, state, step).await
    }
}
