//! Appending a step to an open run: the planner's next step, validated against the run's
//! TaskSpec and policy, recorded (`step.created` and the step's text) but not yet run.

use codencer_policy::{PolicyError, PolicySources};
use codencer_store::{ArtifactKind, EventBody, RunStatus, RunTree, StoreError};

use super::Engine;
use crate::record::{Ids, Recorder};
use crate::spec::SpecErrors;
use crate::supervisor_error::SupervisorError;

/// A step appended to a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendedStep {
    pub run_id: String,
    pub step_id: String,
    /// 1-based position in the run.
    pub index: u32,
}

/// Why a step could not be appended.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppendStepError {
    #[error("no run `{0}`")]
    NoRun(String),
    #[error(
        "run {0} is not open for appended steps (create it with `open: true`, or submit a new TaskSpec)"
    )]
    NotOpen(String),
    #[error("run {run_id} has already ended ({status})")]
    Finished {
        run_id: String,
        status: &'static str,
    },
    #[error("invalid step")]
    Spec(#[source] SpecErrors),
    #[error("the policy refuses this step")]
    Policy(#[source] PolicyError),
    #[error("the store failed")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Supervisor(#[from] SupervisorError),
}

impl Engine {
    /// Validates `text` (one step, YAML or JSON) against open run `run_id` and records it
    /// as the run's next step, as `rec`'s actor. Running it is the caller's business
    /// ([`Engine::resume_in`] runs every step not yet run).
    pub fn append_step(
        &self,
        rec: &Recorder,
        run_id: &str,
        text: &str,
        origin: &str,
    ) -> Result<AppendedStep, AppendStepError> {
        let store = rec.store();
        let tree = store
            .run_tree(run_id)?
            .ok_or_else(|| AppendStepError::NoRun(run_id.to_string()))?;
        if tree.run.status.is_terminal() {
            return Err(AppendStepError::Finished {
                run_id: run_id.to_string(),
                status: tree.run.status.as_str(),
            });
        }
        let plan = crate::resume::recorded_plan(store, &tree)?;
        if !plan.open {
            return Err(AppendStepError::NotOpen(run_id.to_string()));
        }
        let step = plan
            .spec
            .parse_step(text, origin)
            .map_err(AppendStepError::Spec)?;
        let resolved = plan
            .resolve_step(step, &PolicySources::from_env())
            .map_err(AppendStepError::Policy)?;
        let step_id = codencer_store::new_id();
        let index = tree.steps.len() as u32 + 1;
        let ids = Ids::step(run_id, &step_id);
        let staged = store.stage_blob(text.as_bytes())?;
        let (_, taskspec) = staged.recorded(ArtifactKind::Taskspec, Some(origin));
        // One transaction: the step and its TaskSpec, content included.
        rec.append_all_with_blobs(
            &[staged],
            vec![
                (
                    ids.clone(),
                    EventBody::StepCreated {
                        index,
                        goal: resolved.spec.goal.clone(),
                        executor: resolved.spec.executor.clone(),
                        max_attempts: resolved.max_attempts(),
                    },
                ),
                (ids, taskspec),
            ],
        )?;
        Ok(AppendedStep {
            run_id: run_id.to_string(),
            step_id,
            index,
        })
    }

    /// Whether the run of `tree` is open for appended steps and not ended. Takes the tree
    /// its callers have already read rather than reading it again.
    pub fn is_open(&self, tree: &RunTree) -> Result<bool, StoreError> {
        if tree.run.status.is_terminal() {
            return Ok(false);
        }
        Ok(self
            .recorder()
            .store()
            .events_for_run(&tree.run.id)?
            .iter()
            .any(|e| matches!(e.body, EventBody::RunOpened {})))
    }

    /// Ends open run `run_id`: `passed` when its last step passed, else `failed`.
    pub fn close_run(&self, rec: &Recorder, run_id: &str) -> Result<RunStatus, AppendStepError> {
        let store = rec.store();
        let tree = store
            .run_tree(run_id)?
            .ok_or_else(|| AppendStepError::NoRun(run_id.to_string()))?;
        if tree.run.status.is_terminal() {
            return Err(AppendStepError::Finished {
                run_id: run_id.to_string(),
                status: tree.run.status.as_str(),
            });
        }
        let last = tree.steps.last().map(|s| s.step.status);
        let (status, reason) = match last {
            Some(RunStatus::Passed) => (RunStatus::Passed, None),
            None => (
                RunStatus::Failed,
                Some("closed before any step ran".to_string()),
            ),
            Some(other) => (
                RunStatus::Failed,
                Some(format!("closed while its last step was {}", other.as_str())),
            ),
        };
        rec.append(
            &Ids::run(run_id),
            EventBody::RunCompleted { status, reason },
        )?;
        Ok(status)
    }
}
