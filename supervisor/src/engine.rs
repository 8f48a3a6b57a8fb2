//! The engine: one supervision tree over one store. `codencer run` uses it for one run;
//! the daemon keeps it running for many.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use codencer_store::{ArtifactKind, EventBody, Store};
use ractor::{Actor, ActorRef};
use tokio::sync::{oneshot, watch};

use crate::actors::policy::{PolicyActor, PolicyArgs};
use crate::actors::root::{RootActor, RootMsg};
use crate::actors::run::{RunArgs, RunOutcome};
use crate::context::{Context, Stop};
use crate::plan::RunPlan;
use crate::record::{Ids, Recorder};
use crate::supervisor_error::SupervisorError;

mod append;
mod scope;

pub use append::{AppendStepError, AppendedStep};
pub use scope::RunScope;

/// A run as created in the record, not yet started.
#[derive(Debug, Clone)]
pub struct CreatedRun {
    pub run_id: String,
    pub step_ids: Vec<String>,
}

/// A running supervision tree.
#[derive(Debug)]
pub struct Engine {
    ctx: Arc<Context>,
    root: ActorRef<RootMsg>,
    cancel: watch::Sender<bool>,
    stop: watch::Sender<Stop>,
}

/// Work started on a thread of its own before the engine needs it, taken by
/// [`Engine::start`].
struct Ahead<T>(std::sync::Mutex<Option<std::thread::JoinHandle<T>>>);

impl<T: Send + 'static> Ahead<T> {
    const fn new() -> Ahead<T> {
        Ahead(std::sync::Mutex::new(None))
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<std::thread::JoinHandle<T>>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts `work` unless it is already running or waiting to be taken.
    fn start(&self, work: impl FnOnce() -> T + Send + 'static) {
        let mut slot = self.slot();
        if slot.is_none() {
            *slot = Some(std::thread::spawn(work));
        }
    }

    /// The work's result (`Err` when it panicked); `None` when it was not started.
    fn take(&self) -> Option<std::thread::Result<T>> {
        let thread = self.slot().take()?;
        Some(thread.join())
    }
}

/// What this host can enforce (namespaces made in a child process, a few ms).
static HOST_PROBE: Ahead<codencer_sandbox::HostReport> = Ahead::new();
/// The store of a state directory, opened (the WAL read back, ~1 ms per MB) ahead.
static STORE: Ahead<(PathBuf, Result<Store, codencer_store::StoreError>)> = Ahead::new();

/// Starts probing what this host can enforce on a thread of its own, so that it overlaps
/// whatever the caller does before [`Engine::start`], e.g. checking a TaskSpec.
/// Idempotent until the engine takes it.
pub fn start_host_probe() {
    HOST_PROBE.start(codencer_sandbox::probe_host);
}

/// Starts opening the store in `state_dir` on a thread of its own, like
/// [`start_host_probe`]. Only an existing store: a TaskSpec found invalid meanwhile must
/// leave no state behind.
pub fn open_store_ahead(state_dir: &Path) {
    let Ok(dir) = std::path::absolute(state_dir) else {
        return;
    };
    if dir.join("codencer.db").is_file() {
        STORE.start(move || {
            let store = Store::open(&dir);
            (dir, store)
        });
    }
}

impl Engine {
    /// Opens the store in `state_dir` and starts the actors.
    pub async fn start(state_dir: &Path, actor: String) -> Result<Engine, SupervisorError> {
        // Git resolves worktree paths against the repository, not our working directory.
        let state_dir = &std::path::absolute(state_dir)
            .map_err(|e| SupervisorError::io("resolve the state directory", state_dir, e))?;
        std::fs::create_dir_all(state_dir)
            .map_err(|e| SupervisorError::io("create the state directory", state_dir, e))?;
        // The host probe (namespaces made in a child process, a few ms) runs on its own
        // thread, started as early as the caller could (`start_host_probe`).
        start_host_probe();
        let store = match STORE.take() {
            Some(Ok((dir, Ok(store)))) if dir == *state_dir => store,
            // Not opened ahead, or for another directory, or failed: open it here (again),
            // so a failure is reported from here.
            _ => Store::open(state_dir)?,
        };
        let store = Arc::new(store);
        let recorder = Recorder::new(store, actor);
        let worker = crate::context::worker_binary()?;
        let host = match HOST_PROBE.take() {
            Some(Ok(host)) => host,
            Some(Err(_)) => {
                return Err(SupervisorError::Infrastructure(
                    "the host probe panicked".into(),
                ));
            }
            None => codencer_sandbox::probe_host(),
        };
        let host = crate::context::host_layers(&host);
        let (policy, _) = Actor::spawn(
            None,
            PolicyActor,
            PolicyArgs {
                recorder: Arc::new(recorder.clone()),
                host,
            },
        )
        .await
        .map_err(|e| SupervisorError::Actor(format!("policy actor did not start: {e}")))?;
        let (cancel, cancel_rx) = watch::channel(false);
        let (stop, stop_rx) = watch::channel(Stop::Go);
        let ctx = Arc::new(Context {
            recorder,
            state_dir: state_dir.to_path_buf(),
            cancel: cancel_rx,
            stop: stop_rx,
            policy,
            worker,
        });
        let (root, _) = Actor::spawn(None, RootActor, ctx.clone())
            .await
            .map_err(|e| SupervisorError::Actor(format!("root supervisor did not start: {e}")))?;
        Ok(Engine {
            ctx,
            root,
            cancel,
            stop,
        })
    }

    pub fn recorder(&self) -> &Recorder {
        &self.ctx.recorder
    }

    pub fn state_dir(&self) -> &PathBuf {
        &self.ctx.state_dir
    }

    /// Records a new run: the TaskSpec as given, `run.created` and one `step.created` per step.
    pub fn create_run(&self, plan: &RunPlan) -> Result<CreatedRun, SupervisorError> {
        self.create_run_as(&self.ctx.recorder, plan)
    }

    /// [`Engine::create_run`], recorded as `rec`'s actor (an API token's name).
    pub fn create_run_as(
        &self,
        rec: &Recorder,
        plan: &RunPlan,
    ) -> Result<CreatedRun, SupervisorError> {
        let spec = &plan.spec;
        let run_id = codencer_store::new_id();
        let staged = rec.store().stage_blob(spec.text.as_bytes())?;
        let (_, taskspec) = staged.recorded(ArtifactKind::Taskspec, Some(&spec.origin));
        let step_ids: Vec<String> = spec
            .steps
            .iter()
            .map(|_| codencer_store::new_id())
            .collect();
        let mut events = vec![
            (
                Ids::run(&run_id),
                EventBody::RunCreated {
                    name: spec.name.clone(),
                    workspace: spec.workspace.display().to_string(),
                    executor: spec.executor.clone(),
                    policy: spec.policy.clone(),
                    steps: spec.steps.len() as u32,
                },
            ),
            (Ids::run(&run_id), taskspec),
        ];
        for (i, (step, id)) in plan.steps.iter().zip(&step_ids).enumerate() {
            events.push((
                Ids::step(&run_id, id),
                EventBody::StepCreated {
                    index: i as u32 + 1,
                    goal: step.spec.goal.clone(),
                    executor: step.spec.executor.clone(),
                    max_attempts: step.max_attempts(),
                },
            ));
        }
        if plan.open {
            events.push((Ids::run(&run_id), EventBody::RunOpened {}));
        }
        // One transaction: a run is recorded whole or not at all, its TaskSpec included.
        rec.append_all_with_blobs(&[staged], events)?;
        Ok(CreatedRun { run_id, step_ids })
    }

    /// Runs a created run to its end.
    pub async fn execute(
        &self,
        plan: Arc<RunPlan>,
        run: CreatedRun,
    ) -> Result<RunOutcome, SupervisorError> {
        self.execute_in(&RunScope::engine(self), plan, run).await
    }

    /// Runs a created run to its end in `scope` (its own actor and cancellation).
    pub async fn execute_in(
        &self,
        scope: &RunScope,
        plan: Arc<RunPlan>,
        run: CreatedRun,
    ) -> Result<RunOutcome, SupervisorError> {
        let _lock = crate::runlock::RunLock::take(&scope.ctx.state_dir, &run.run_id)?;
        let spec = &plan.spec;
        let resolved = match &spec.base_commit {
            Some(commit) => Ok(commit.clone()),
            None => crate::git::resolve_commit(&spec.workspace, &spec.base).await,
        };
        let base_commit = match resolved {
            Ok(commit) => commit,
            Err(err) => {
                // The run is recorded; it must not stay pending forever.
                let reason = format!("cannot resolve base `{}`: {err}", spec.base);
                scope.ctx.recorder.append(
                    &Ids::run(&run.run_id),
                    EventBody::RunCompleted {
                        status: codencer_store::RunStatus::Failed,
                        reason: Some(reason.clone()),
                    },
                )?;
                return Err(SupervisorError::Infrastructure(reason));
            }
        };
        let base = spec.base.clone();
        self.launch_in(scope.ctx.clone(), plan, run, 0, false, base, base_commit)
            .await
    }

    /// Hands a run to the supervision tree, in the actors' shared context `ctx`, and waits
    /// for its outcome.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn launch_in(
        &self,
        ctx: Arc<Context>,
        plan: Arc<RunPlan>,
        run: CreatedRun,
        first_step: usize,
        resumed: bool,
        base: String,
        base_commit: String,
    ) -> Result<RunOutcome, SupervisorError> {
        let (done, wait) = oneshot::channel();
        let args = RunArgs {
            ctx,
            run_id: run.run_id.clone(),
            base,
            plan,
            step_ids: run.step_ids,
            first_step,
            resumed,
            base_commit,
            done: Some(done),
        };
        ractor::call!(self.root, RootMsg::StartRun, args)
            .map_err(|e| SupervisorError::Actor(e.to_string()))?
            .map_err(SupervisorError::Actor)?;
        wait.await.map_err(|_| {
            SupervisorError::Actor(format!(
                "run {} ended without an outcome (its actor failed; see the record)",
                run.run_id
            ))
        })
    }

    /// Cancels everything running: attempts are killed and recorded, runs end `cancelled`
    /// (or, after [`Engine::suspend`], stay unfinished for the next start).
    pub fn cancel(&self) {
        self.cancel.send_replace(true);
    }

    /// Graceful stop of `codencer run`: no new attempt or step starts; a running attempt
    /// goes on (until [`Engine::cancel`]); the run then ends `cancelled`.
    pub fn drain(&self) {
        self.stop.send_replace(Stop::Drain);
    }

    /// Graceful stop of the daemon: as [`Engine::drain`], but runs stay unfinished and go
    /// on at the next start.
    pub fn suspend(&self) {
        self.stop.send_replace(Stop::Suspend);
    }

    /// Whether [`Engine::drain`] or [`Engine::suspend`] was called.
    pub fn stopping(&self) -> bool {
        *self.stop.borrow() != Stop::Go
    }
}

/// What `codencer gc` did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct GcReport {
    pub worktrees_removed: u64,
    pub branches_deleted: u64,
    pub runs_kept: u64,
}

/// Removes worktrees (and scratch dirs) of finished runs; with `branches`, their branches.
pub async fn gc(
    store: &Store,
    state_dir: &Path,
    branches: bool,
) -> Result<GcReport, SupervisorError> {
    let mut report = GcReport::default();
    let runs = store.list_runs(&codencer_store::RunFilter::default())?;
    for run in runs {
        if !run.status.is_terminal() {
            report.runs_kept += 1;
            continue;
        }
        let Some(tree) = store.run_tree(&run.id)? else {
            continue;
        };
        let repo = PathBuf::from(&run.workspace);
        for step in &tree.steps {
            for attempt in &step.attempts {
                let wt = PathBuf::from(&attempt.attempt.worktree);
                if wt.exists() {
                    match crate::git::remove_worktree(&repo, &wt).await {
                        Ok(()) => report.worktrees_removed += 1,
                        Err(err) => {
                            tracing::warn!(worktree = %wt.display(), cause = %err, "git could not remove the worktree; removing the directory");
                            std::fs::remove_dir_all(&wt)
                                .map_err(|e| SupervisorError::io("remove a worktree", &wt, e))?;
                            report.worktrees_removed += 1;
                        }
                    }
                }
                let scratch = state_dir.join("attempts").join(&attempt.attempt.id);
                if scratch.exists() {
                    std::fs::remove_dir_all(&scratch).map_err(|e| {
                        SupervisorError::io("remove a scratch directory", &scratch, e)
                    })?;
                }
                if branches
                    && crate::git::delete_branch(&repo, &attempt.attempt.branch)
                        .await
                        .is_ok()
                {
                    report.branches_deleted += 1;
                }
            }
        }
        if repo.exists() {
            let _ = crate::git::prune_worktrees(&repo).await;
        }
        let run_dir = state_dir.join("worktrees").join(&run.id);
        if run_dir.exists() {
            let _ = std::fs::remove_dir_all(&run_dir);
        }
    }
    Ok(report)
}
