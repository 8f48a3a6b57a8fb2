//! Runs many runs at once under a concurrency limit: one driver task per run that has work,
//! queued for a slot, then [`Engine::resume_in`] (which starts a new run, runs appended
//! steps, continues after a gate decision or a crash). The queue is visible in the API.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use codencer_store::{EventBody, RunStatus};
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::engine::{Engine, RunScope};
use crate::record::{Ids, Recorder};
use crate::resume::Resumed;
use crate::text::error_chain;

/// Where a run with work is: waiting for a slot, or running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Slot {
    Queued,
    Running,
}

#[derive(Debug)]
struct Driver {
    scope: RunScope,
    slot: Slot,
    /// More work arrived while the driver ran (an appended step, a gate decision).
    again: bool,
    cancelled_by: Option<String>,
}

/// The queue as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct QueueView {
    pub limit: usize,
    pub running: Vec<String>,
    pub queued: Vec<String>,
}

/// The daemon's engine and its run drivers.
#[derive(Debug)]
pub struct Runner {
    pub engine: Engine,
    limit: usize,
    slots: Arc<Semaphore>,
    // A std mutex: held only to read or update the map, never across an await.
    drivers: Mutex<HashMap<String, Driver>>,
}

impl Runner {
    pub fn new(engine: Engine, limit: usize) -> Runner {
        let limit = limit.max(1);
        Runner {
            engine,
            limit,
            slots: Arc::new(Semaphore::new(limit)),
            drivers: Mutex::new(HashMap::new()),
        }
    }

    fn drivers(&self) -> std::sync::MutexGuard<'_, HashMap<String, Driver>> {
        self.drivers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Where run `run_id` is, when it has work.
    pub fn slot(&self, run_id: &str) -> Option<Slot> {
        self.drivers().get(run_id).map(|d| d.slot)
    }

    pub fn queue(&self) -> QueueView {
        let drivers = self.drivers();
        let mut running: Vec<String> = Vec::new();
        let mut queued: Vec<String> = Vec::new();
        for (id, d) in drivers.iter() {
            match d.slot {
                Slot::Running => running.push(id.clone()),
                Slot::Queued => queued.push(id.clone()),
            }
        }
        running.sort();
        queued.sort();
        QueueView {
            limit: self.limit,
            running,
            queued,
        }
    }

    /// Makes sure run `run_id` is driven until it has nothing left to run; its events are
    /// recorded as `actor`.
    pub fn kick(self: &Arc<Self>, run_id: &str, actor: &str) {
        {
            let mut drivers = self.drivers();
            if let Some(driver) = drivers.get_mut(run_id) {
                driver.again = true;
                return;
            }
            drivers.insert(
                run_id.to_string(),
                Driver {
                    scope: self.engine.scope(actor),
                    slot: Slot::Queued,
                    again: false,
                    cancelled_by: None,
                },
            );
        }
        let runner = self.clone();
        let run_id = run_id.to_string();
        tokio::spawn(async move { runner.drive(run_id).await });
    }

    async fn drive(self: Arc<Self>, run_id: String) {
        loop {
            let permit = match self.slots.clone().acquire_owned().await {
                Ok(permit) => permit,
                Err(_) => return,
            };
            let scope = {
                let mut drivers = self.drivers();
                let Some(driver) = drivers.get_mut(&run_id) else {
                    return;
                };
                driver.slot = Slot::Running;
                driver.again = false;
                driver.scope.clone()
            };
            if !scope.is_cancelled() && !self.engine.stopping() {
                match self.engine.resume_in(&scope, &run_id).await {
                    Ok(Resumed::Ran(outcome)) => {
                        tracing::info!(run_id = %run_id, status = outcome.status.as_str(), "run went on")
                    }
                    Ok(Resumed::AwaitingApproval { gate_id }) => {
                        tracing::info!(run_id = %run_id, gate_id = %gate_id, "run awaits approval")
                    }
                    Ok(Resumed::Finished(status)) => {
                        tracing::debug!(run_id = %run_id, status = status.as_str(), "nothing to run")
                    }
                    Err(err @ crate::SupervisorError::RunBusy { .. }) => {
                        // Another process drives it; it is theirs to record.
                        tracing::warn!(run_id = %run_id, cause = %err, "run left alone");
                    }
                    Err(err) => {
                        let reason = error_chain(&err);
                        tracing::error!(run_id = %run_id, cause = %reason, "run could not go on");
                        self.end(&scope.recorder(), &run_id, RunStatus::Failed, reason);
                    }
                }
            }
            drop(permit);
            let mut drivers = self.drivers();
            let Some(driver) = drivers.get_mut(&run_id) else {
                return;
            };
            if let Some(by) = driver.cancelled_by.clone() {
                drivers.remove(&run_id);
                drop(drivers);
                self.end(
                    &scope.recorder(),
                    &run_id,
                    RunStatus::Cancelled,
                    format!("cancelled by {by}"),
                );
                return;
            }
            if driver.again {
                driver.slot = Slot::Queued;
                continue;
            }
            drivers.remove(&run_id);
            return;
        }
    }

    /// Graceful stop: no new attempt starts; running attempts get `grace` to end, then are
    /// killed (recorded `interrupted`); runs stay unfinished for the next start.
    pub async fn drain(&self, grace: std::time::Duration) {
        self.engine.suspend();
        let idle = async {
            while !self.drivers().is_empty() {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        };
        if tokio::time::timeout(grace, idle).await.is_err() {
            tracing::warn!(
                grace_secs = grace.as_secs(),
                "grace period over: killing running attempts"
            );
            self.engine.cancel();
            let idle = async {
                while !self.drivers().is_empty() {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            };
            if tokio::time::timeout(std::time::Duration::from_secs(30), idle)
                .await
                .is_err()
            {
                tracing::error!("runs still going after the kill; the next start recovers them");
            }
        }
    }

    /// Records `run.completed` unless the run already ended.
    fn end(&self, rec: &Recorder, run_id: &str, status: RunStatus, reason: String) {
        let ended = rec
            .store()
            .run_tree(run_id)
            .ok()
            .flatten()
            .is_none_or(|t| t.run.status.is_terminal());
        if ended {
            return;
        }
        if let Err(err) = rec.append(
            &Ids::run(run_id),
            EventBody::RunCompleted {
                status,
                reason: Some(reason),
            },
        ) {
            tracing::error!(run_id = %run_id, cause = %err, "could not record run.completed");
        }
    }

    /// Cancels run `run_id` as `rec`'s actor: a running attempt is killed and recorded; a
    /// queued or idle run ends `cancelled` at once.
    pub fn cancel(&self, rec: &Recorder, run_id: &str) {
        {
            let mut drivers = self.drivers();
            if let Some(driver) = drivers.get_mut(run_id) {
                driver.cancelled_by = Some(rec.actor().to_string());
                driver.scope.cancel();
                return;
            }
        }
        self.end(
            rec,
            run_id,
            RunStatus::Cancelled,
            format!("cancelled by {}", rec.actor()),
        );
    }
}

impl RunScope {
    fn recorder(&self) -> Recorder {
        self.ctx.recorder.clone()
    }
}
