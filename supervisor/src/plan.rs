//! A run's plan: every step with its effective policy, resolved (and refused when invalid)
//! before anything is recorded.

use std::sync::Arc;
use std::time::Duration;

use codencer_policy::{EffectivePolicy, PolicyError, PolicySources, TaskNarrowing};

use crate::spec::{DEFAULT_MAX_ATTEMPTS, DEFAULT_TIMEOUT, StepSpec, TaskSpec};

/// A validated TaskSpec and the policy each of its steps runs under.
#[derive(Debug, Clone)]
pub struct RunPlan {
    pub spec: TaskSpec,
    pub steps: Vec<StepPlan>,
    /// The run stays open for appended steps (the daemon's `open: true`): its last step
    /// passing does not end it.
    pub open: bool,
}

/// One step and its effective policy (policy files narrowed by the TaskSpec).
#[derive(Debug, Clone)]
pub struct StepPlan {
    pub spec: StepSpec,
    pub policy: Arc<EffectivePolicy>,
}

impl RunPlan {
    /// Loads the policy layers for each step's executor and narrows them with the step's
    /// TaskSpec values. A TaskSpec that asks for more than the policy allows is refused.
    pub fn resolve(spec: TaskSpec, sources: &PolicySources) -> Result<RunPlan, PolicyError> {
        let steps = spec
            .steps
            .iter()
            .map(|step| StepPlan::resolve(&spec, step.clone(), sources))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RunPlan {
            spec,
            steps,
            open: false,
        })
    }

    /// A step appended to an open run, under the same sources.
    pub fn resolve_step(
        &self,
        step: StepSpec,
        sources: &PolicySources,
    ) -> Result<StepPlan, PolicyError> {
        StepPlan::resolve(&self.spec, step, sources)
    }
}

impl StepPlan {
    fn resolve(
        task: &TaskSpec,
        step: StepSpec,
        sources: &PolicySources,
    ) -> Result<StepPlan, PolicyError> {
        let mut policy = codencer_policy::load(sources, &step.executor, task.policy.as_deref())?;
        policy.narrow(&TaskNarrowing {
            source: task.origin.clone(),
            allowed_paths: (!step.allowed_paths.is_empty()).then(|| step.allowed_paths.clone()),
            forbidden_paths: step.forbidden_paths.clone(),
            timeout: step.timeout,
            max_attempts: step.max_attempts.map(u64::from),
            ..TaskNarrowing::default()
        })?;
        Ok(StepPlan {
            spec: step,
            policy: Arc::new(policy),
        })
    }

    /// Wall time of one attempt.
    pub fn wall(&self) -> Duration {
        self.policy.values().limits.wall.unwrap_or(DEFAULT_TIMEOUT)
    }

    /// Longest silence (no output) before an attempt is killed.
    pub fn idle(&self) -> Option<Duration> {
        self.policy.values().limits.idle
    }

    /// Most output (stdout and stderr together) an attempt may write.
    pub fn output_limit(&self) -> Option<u64> {
        self.policy.values().limits.output
    }

    pub fn max_attempts(&self) -> u32 {
        u32::try_from(self.policy.values().retry.max_attempts)
            .unwrap_or(DEFAULT_MAX_ATTEMPTS)
            .max(1)
    }
}
