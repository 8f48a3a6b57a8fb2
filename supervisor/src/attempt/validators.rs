//! Validators: shell commands run in the worktree after the executor, each recorded with its
//! output as an artifact.

use std::path::Path;

use codencer_store::{ArtifactKind, EventBody, ValidationStatus};

use super::AttemptPlan;
use super::evidence::{FailedValidation, tail_file};
use crate::context::Context;
use crate::launch::{self, Ending, ProcessRequest};
use crate::record::Ids;
use crate::supervisor_error::SupervisorError;

pub(super) struct ValidationOutcome {
    pub failed: Vec<FailedValidation>,
    pub cancelled: bool,
}

/// Runs every validator in order; all run even after one fails, so the evidence is whole.
pub(super) async fn run_all(
    ctx: &Context,
    ids: &Ids,
    plan: &AttemptPlan<'_>,
    worktree: &Path,
    scratch: &Path,
) -> Result<ValidationOutcome, SupervisorError> {
    let mut failed = Vec::new();
    for (i, v) in plan.step.validators.iter().enumerate() {
        if *ctx.cancel.borrow() {
            record(
                ctx,
                ids,
                &v.name,
                &v.run,
                ValidationStatus::Skipped,
                None,
                0,
                None,
            )?;
            continue;
        }
        let output = scratch.join(format!("validator-{}.out", i + 1));
        let home = scratch.join("home");
        let request = ProcessRequest {
            argv: vec!["/bin/sh".into(), "-c".into(), v.run.clone()],
            env: ctx.base_env(&home),
            cwd: worktree.to_path_buf(),
            stdout: output.clone(),
            stderr: None,
            wall: v.timeout,
            idle: None,
            output_limit: None,
        };
        let mut cancel = ctx.cancel.clone();
        let result = launch::run_process(&request, &mut cancel, |_| {}).await;
        let artifact = if output.exists() {
            Some(
                ctx.recorder
                    .artifact_file(ids, ArtifactKind::ValidatorOutput, Some(&v.name), &output)?
                    .id,
            )
        } else {
            None
        };
        let (status, exit_code, duration_ms) = match &result {
            Ok(o) => {
                let status = match (o.ending, o.exit.code) {
                    (Ending::WallTimeout | Ending::IdleTimeout, _) => ValidationStatus::TimedOut,
                    (Ending::Cancelled, _) => ValidationStatus::Error,
                    (Ending::OutputLimit, _) => ValidationStatus::Error,
                    (Ending::Exited, Some(0)) => ValidationStatus::Passed,
                    (Ending::Exited, Some(_)) => ValidationStatus::Failed,
                    (Ending::Exited, None) => ValidationStatus::Error,
                };
                (status, o.exit.code, o.duration.as_millis() as u64)
            }
            Err(_) => (ValidationStatus::Error, None, 0),
        };
        record(
            ctx,
            ids,
            &v.name,
            &v.run,
            status,
            exit_code,
            duration_ms,
            artifact,
        )?;
        if matches!(&result, Ok(o) if o.ending == Ending::Cancelled) {
            return Ok(ValidationOutcome {
                failed,
                cancelled: true,
            });
        }
        if status != ValidationStatus::Passed {
            let mut output_tail = tail_file(&output);
            if let Err(err) = &result {
                output_tail = format!("could not run: {err}");
            }
            failed.push(FailedValidation {
                name: v.name.clone(),
                command: v.run.clone(),
                status: serde_json::to_value(status)
                    .ok()
                    .and_then(|s| s.as_str().map(str::to_string))
                    .unwrap_or_default(),
                exit_code,
                output_tail,
            });
        }
    }
    Ok(ValidationOutcome {
        failed,
        cancelled: false,
    })
}

/// Records every validator as skipped (the executor phase already failed the attempt).
pub(super) fn skip_all(
    ctx: &Context,
    ids: &Ids,
    plan: &AttemptPlan<'_>,
) -> Result<(), SupervisorError> {
    for v in &plan.step.validators {
        record(
            ctx,
            ids,
            &v.name,
            &v.run,
            ValidationStatus::Skipped,
            None,
            0,
            None,
        )?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn record(
    ctx: &Context,
    ids: &Ids,
    name: &str,
    command: &str,
    status: ValidationStatus,
    exit_code: Option<i32>,
    duration_ms: u64,
    output_artifact: Option<String>,
) -> Result<(), SupervisorError> {
    ctx.recorder.append(
        ids,
        EventBody::ValidationCompleted {
            validation_id: codencer_store::new_id(),
            name: name.to_string(),
            command: command.to_string(),
            status,
            exit_code,
            duration_ms,
            output_artifact,
        },
    )?;
    Ok(())
}
