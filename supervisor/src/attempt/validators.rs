//! Validators: shell commands run in the worktree after the executor, in the same
//! confinement, each recorded with its output as an artifact.

use codencer_policy::ValidationSummary;
use codencer_store::{ArtifactKind, EventBody, ValidationStatus};

use super::evidence::{FailedValidation, tail_file};
use super::{AttemptPlan, Workspace};
use crate::context::Context;
use crate::launch::{self, Ending, ProcessRequest};
use crate::record::{Ids, NewArtifact};
use crate::spec::ValidatorSpec;
use crate::supervisor_error::SupervisorError;

pub(super) struct ValidationOutcome {
    pub failed: Vec<FailedValidation>,
    pub summary: ValidationSummary,
    pub cancelled: bool,
}

fn request(
    plan: &AttemptPlan<'_>,
    ws: &Workspace<'_>,
    index: usize,
    v: &ValidatorSpec,
) -> ProcessRequest {
    ProcessRequest {
        argv: vec!["/bin/sh".into(), "-c".into(), v.run.clone()],
        env: ws.env.clone(),
        cwd: ws.worktree.to_path_buf(),
        stdout: ws.scratch.join(format!("validator-{}.out", index + 1)),
        stderr: None,
        wall: v.timeout,
        idle: None,
        output_limit: plan.step.output_limit(),
        sandbox: ws.sandbox.clone(),
    }
}

/// Runs every validator in order; all run even after one fails, so the evidence is whole.
/// After a cancel the rest are recorded `skipped`. `kept`: the executor's sandbox, kept
/// for them (each runs in it while it lasts; a validator killed at a limit ends it, and
/// the next ones get sandboxes of their own).
pub(super) async fn run_all(
    ctx: &Context,
    plan: &AttemptPlan<'_>,
    ws: &Workspace<'_>,
    mut kept: Option<launch::Kept>,
) -> Result<ValidationOutcome, SupervisorError> {
    let mut failed = Vec::new();
    let mut summary = ValidationSummary { run: 0, passed: 0 };
    let mut cancelled = false;
    for (i, v) in plan.step.spec.validators.iter().enumerate() {
        if cancelled || *ctx.cancel.borrow() {
            cancelled = true;
            skip(ctx, &ws.ids, v)?;
            continue;
        }
        let request = request(plan, ws, i, v);
        let output = request.stdout.clone();
        let mut cancel = ctx.cancel.clone();
        let result = match kept.take() {
            Some(sandbox) => sandbox.run(&request, &mut cancel).await.map(|(o, next)| {
                kept = next;
                o
            }),
            None => launch::run_process(&ctx.worker, &request, &mut cancel, |_| {}).await,
        };
        let (status, exit_code, duration_ms) = match &result {
            Ok(o) if o.report.setup_error.is_some() => {
                (ValidationStatus::Error, None, o.duration.as_millis() as u64)
            }
            Ok(o) => {
                let status = match (o.ending, o.exit.code) {
                    (Ending::WallTimeout | Ending::IdleTimeout, _) => ValidationStatus::TimedOut,
                    (Ending::Cancelled | Ending::OutputLimit, _) | (Ending::Exited, None) => {
                        ValidationStatus::Error
                    }
                    (Ending::Exited, Some(0)) => ValidationStatus::Passed,
                    (Ending::Exited, Some(_)) => ValidationStatus::Failed,
                };
                (status, o.exit.code, o.duration.as_millis() as u64)
            }
            Err(_) => (ValidationStatus::Error, None, 0),
        };
        record(
            ctx,
            &ws.ids,
            &v.name,
            &v.run,
            status,
            exit_code,
            duration_ms,
            Some(output.as_path()).filter(|path| path.exists()),
        )?;
        summary.run += 1;
        if matches!(&result, Ok(o) if o.ending == Ending::Cancelled) {
            cancelled = true;
            continue;
        }
        if status == ValidationStatus::Passed {
            summary.passed += 1;
            continue;
        }
        let output_tail = match (&result, &status) {
            (Err(err), _) => format!("could not run: {}", crate::text::error_chain(err)),
            (Ok(o), _) if o.report.setup_error.is_some() => format!(
                "sandbox refused to start: {}",
                o.report.setup_error.clone().unwrap_or_default()
            ),
            _ => tail_file(&output),
        };
        failed.push(FailedValidation {
            name: v.name.clone(),
            command: v.run.clone(),
            status: crate::text::serde_name(&status),
            exit_code,
            output_tail,
        });
    }
    Ok(ValidationOutcome {
        failed,
        summary,
        cancelled,
    })
}

/// Records every validator as skipped (the executor phase already failed the attempt).
pub(super) fn skip_all(
    ctx: &Context,
    ids: &Ids,
    plan: &AttemptPlan<'_>,
) -> Result<(), SupervisorError> {
    for v in &plan.step.spec.validators {
        skip(ctx, ids, v)?;
    }
    Ok(())
}

fn skip(ctx: &Context, ids: &Ids, v: &ValidatorSpec) -> Result<(), SupervisorError> {
    record(
        ctx,
        ids,
        &v.name,
        &v.run,
        ValidationStatus::Skipped,
        None,
        0,
        None,
    )
}

/// Records a validator's end, with its output (when it wrote any) as an artifact in the
/// same transaction.
#[allow(clippy::too_many_arguments)]
fn record(
    ctx: &Context,
    ids: &Ids,
    name: &str,
    command: &str,
    status: ValidationStatus,
    exit_code: Option<i32>,
    duration_ms: u64,
    output: Option<&std::path::Path>,
) -> Result<(), SupervisorError> {
    let artifacts: Vec<NewArtifact<'_>> = output
        .map(|path| NewArtifact::file(ArtifactKind::ValidatorOutput, Some(name), path))
        .into_iter()
        .collect();
    ctx.recorder.record(ids, &artifacts, |artifact_ids| {
        vec![(
            ids.clone(),
            EventBody::ValidationCompleted {
                validation_id: codencer_store::new_id(),
                name: name.to_string(),
                command: command.to_string(),
                status,
                exit_code,
                duration_ms,
                output_artifact: artifact_ids.first().cloned(),
            },
        )]
    })?;
    Ok(())
}
