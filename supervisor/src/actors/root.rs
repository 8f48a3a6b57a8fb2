//! The root supervisor: parent of every RunActor. A RunActor that fails is recorded and its
//! run is ended failed; nothing else in the tree is affected.

use std::collections::HashMap;
use std::sync::Arc;

use codencer_store::{EventBody, RunStatus};
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};

use super::run::{RunActor, RunArgs};
use crate::context::Context;
use crate::record::Ids;

#[derive(Debug)]
pub enum RootMsg {
    /// Starts a run; replies once its actor is up.
    StartRun(RunArgs, RpcReplyPort<Result<(), String>>),
}

#[derive(Debug)]
pub struct RootActor;

#[derive(Debug)]
pub struct RootState {
    ctx: Arc<Context>,
    runs: HashMap<ActorId, String>,
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
            RootMsg::StartRun(args, reply) => {
                let run_id = args.run_id.clone();
                let spawned = Actor::spawn_linked(None, RunActor, args, myself.get_cell()).await;
                let answer = match spawned {
                    Ok((run, _)) => {
                        state.runs.insert(run.get_id(), run_id);
                        Ok(())
                    }
                    Err(err) => Err(format!("run actor did not start: {err}")),
                };
                let _ = reply.send(answer);
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<RootMsg>,
        evt: SupervisionEvent,
        state: &mut RootState,
    ) -> Result<(), ActorProcessingErr> {
        match evt {
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                state.runs.remove(&cell.get_id());
            }
            SupervisionEvent::ActorFailed(cell, err) => {
                if let Some(run_id) = state.runs.remove(&cell.get_id()) {
                    tracing::error!(run_id = %run_id, cause = %err, "run actor failed");
                    let ids = Ids::run(&run_id);
                    let rec = &state.ctx.recorder;
                    rec.append(
                        &ids,
                        EventBody::SupervisorFailure {
                            actor: "run".into(),
                            error: err.to_string(),
                        },
                    )?;
                    rec.append(
                        &ids,
                        EventBody::RunCompleted {
                            status: RunStatus::Failed,
                            reason: Some(format!("run actor failed: {err}")),
                        },
                    )?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}
