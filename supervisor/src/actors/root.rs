//! The root supervisor: parent of every RunActor. A RunActor that fails is recorded and
//! restarted from the store's state (the run's unfinished attempts closed `crashed`, the
//! run picked up where the record says); after too many failures its run ends failed.
//! Nothing else in the tree is affected.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use codencer_store::{AttemptStatus, EventBody, RunStatus};
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tokio::sync::oneshot;

use super::run::{RunActor, RunArgs, RunOutcome};
use crate::context::Context;
use crate::plan::RunPlan;
use crate::record::Ids;
use crate::resume::Resumed;

/// How many times a failing RunActor is restarted before its run fails.
const MAX_RUN_RESTARTS: u32 = 3;

#[derive(Debug)]
pub enum RootMsg {
    /// Starts a run; replies once its actor is up.
    StartRun(RunArgs, RpcReplyPort<Result<(), String>>),
}

#[derive(Debug)]
pub struct RootActor;

/// Whoever waits for a run's outcome; shared by the run's successive actors.
type Waiter = Arc<Mutex<Option<oneshot::Sender<RunOutcome>>>>;

/// What restarting a run needs.
#[derive(Debug)]
struct RunEntry {
    ctx: Arc<Context>,
    run_id: String,
    plan: Arc<RunPlan>,
    step_ids: Vec<String>,
    waiter: Waiter,
    restarts: u32,
}

#[derive(Debug)]
pub struct RootState {
    ctx: Arc<Context>,
    runs: HashMap<ActorId, RunEntry>,
}

/// A sender for one RunActor, forwarding its outcome to the run's waiter. When the actor
/// dies without sending, the waiter stays for its successor.
fn forward_to(waiter: &Waiter) -> oneshot::Sender<RunOutcome> {
    let (tx, rx) = oneshot::channel();
    let waiter = waiter.clone();
    tokio::spawn(async move {
        if let Ok(outcome) = rx.await
            && let Some(done) = take(&waiter)
        {
            let _ = done.send(outcome);
        }
    });
    tx
}

fn take(waiter: &Waiter) -> Option<oneshot::Sender<RunOutcome>> {
    waiter
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take()
}

fn tell(waiter: &Waiter, run_id: &str, status: RunStatus, infrastructure: Option<String>) {
    if let Some(done) = take(waiter) {
        let _ = done.send(RunOutcome {
            run_id: run_id.to_string(),
            status,
            infrastructure,
        });
    }
}

impl RootActor {
    async fn spawn_run(
        myself: &ActorRef<RootMsg>,
        state: &mut RootState,
        mut args: RunArgs,
        entry: RunEntry,
    ) -> Result<(), String> {
        args.done = Some(forward_to(&entry.waiter));
        match Actor::spawn_linked(None, RunActor, args, myself.get_cell()).await {
            Ok((run, _)) => {
                state.runs.insert(run.get_id(), entry);
                Ok(())
            }
            Err(err) => Err(format!("run actor did not start: {err}")),
        }
    }

    /// Picks the run up from the record after its actor failed.
    async fn restart(
        myself: &ActorRef<RootMsg>,
        state: &mut RootState,
        entry: RunEntry,
        err: &str,
    ) -> Result<(), ActorProcessingErr> {
        let rec = &entry.ctx.recorder;
        let before = rec.store().run_tree(&entry.run_id)?;
        for attempt in before.iter().flat_map(|t| t.unfinished_attempts()) {
            let why = format!("run actor failed: {err}");
            crate::interrupted::close(
                rec,
                &entry.plan.spec.workspace,
                attempt,
                AttemptStatus::Crashed,
                &why,
            )
            .await?;
        }
        let Some(tree) = rec.store().run_tree(&entry.run_id)? else {
            return Ok(());
        };
        let restart = match crate::resume::restart_point(rec, &tree, &entry.plan)? {
            Ok(restart) => restart,
            Err(Resumed::AwaitingApproval { .. }) => {
                tell(
                    &entry.waiter,
                    &entry.run_id,
                    RunStatus::AwaitingApproval,
                    None,
                );
                return Ok(());
            }
            Err(Resumed::Finished(status)) => {
                tell(&entry.waiter, &entry.run_id, status, None);
                return Ok(());
            }
            Err(Resumed::Ran(outcome)) => {
                tell(&entry.waiter, &entry.run_id, outcome.status, None);
                return Ok(());
            }
        };
        let base_commit =
            match crate::git::resolve_commit(&entry.plan.spec.workspace, &restart.base).await {
                Ok(commit) => commit,
                Err(e) => {
                    let why = format!("cannot resolve {} to restart the run: {e}", restart.base);
                    Self::fail(&entry, &why)?;
                    return Ok(());
                }
            };
        let args = RunArgs {
            ctx: entry.ctx.clone(),
            run_id: entry.run_id.clone(),
            plan: entry.plan.clone(),
            step_ids: entry.step_ids.clone(),
            first_step: restart.first_step,
            resumed: true,
            base: restart.base,
            base_commit,
            done: None,
        };
        if let Err(why) = Self::spawn_run(myself, state, args, entry).await {
            tracing::error!(cause = %why, "could not restart a run actor");
        }
        Ok(())
    }

    fn fail(entry: &RunEntry, why: &str) -> Result<(), ActorProcessingErr> {
        entry.ctx.recorder.append(
            &Ids::run(&entry.run_id),
            EventBody::RunCompleted {
                status: RunStatus::Failed,
                reason: Some(why.to_string()),
            },
        )?;
        tell(&entry.waiter, &entry.run_id, RunStatus::Failed, None);
        Ok(())
    }
}

impl Actor for RootActor {
    type Msg = RootMsg;
    type State = RootState;
    type Arguments = Arc<Context>;

    async fn pre_start(
        &self,
        _myself: ActorRef<RootMsg>,
        ctx: Arc<Context>,
    ) -> Result<RootState, ActorProcessingErr> {
        Ok(RootState {
            ctx,
            runs: HashMap::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<RootMsg>,
        msg: RootMsg,
        state: &mut RootState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RootMsg::StartRun(mut args, reply) => {
                let entry = RunEntry {
                    ctx: args.ctx.clone(),
                    run_id: args.run_id.clone(),
                    plan: args.plan.clone(),
                    step_ids: args.step_ids.clone(),
                    waiter: Arc::new(Mutex::new(args.done.take())),
                    restarts: 0,
                };
                let answer = Self::spawn_run(&myself, state, args, entry).await;
                let _ = reply.send(answer);
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<RootMsg>,
        evt: SupervisionEvent,
        state: &mut RootState,
    ) -> Result<(), ActorProcessingErr> {
        match evt {
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                state.runs.remove(&cell.get_id());
            }
            SupervisionEvent::ActorFailed(cell, err) => {
                let Some(mut entry) = state.runs.remove(&cell.get_id()) else {
                    return Ok(());
                };
                tracing::error!(run_id = %entry.run_id, cause = %err, "run actor failed");
                let rec = &state.ctx.recorder;
                rec.append(
                    &Ids::run(&entry.run_id),
                    EventBody::SupervisorFailure {
                        actor: "run".into(),
                        error: err.to_string(),
                    },
                )?;
                entry.restarts += 1;
                if entry.restarts > MAX_RUN_RESTARTS {
                    let why = format!("run actor failed {} times; last: {err}", entry.restarts);
                    return Self::fail(&entry, &why);
                }
                Self::restart(&myself, state, entry, &err.to_string()).await?;
            }
            _ => {}
        }
        Ok(())
    }
}
