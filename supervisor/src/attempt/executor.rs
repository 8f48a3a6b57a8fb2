//! The executor phase: prompt, invocation, the confined run, output artifacts, the report.

use std::path::{Path, PathBuf};

use codencer_adapters::{Outcome, PromptInput, render_prompt};
use codencer_store::{ArtifactKind, AttemptStatus, EventBody};

use super::{AttemptPlan, ExecPhase, Workspace, evidence};
use crate::context::Context;
use crate::launch::{self, ProcessRequest};
use crate::record::NewArtifact;
use crate::supervisor_error::SupervisorError;

/// Policy variable naming the model server's base URL for the executor's adapter.
pub const MODEL_BASE_URL_ENV: &str = "CODENCER_MODEL_BASE_URL";
/// Policy variable naming the model the executor asks for.
pub const MODEL_ENV: &str = "CODENCER_MODEL";

/// The executor's process, ready to start: its invocation, and its sandbox built and held
/// (see [`prepare`]).
pub(super) struct Prepared {
    adapter: &'static dyn codencer_adapters::Adapter,
    files: Vec<(PathBuf, Vec<u8>)>,
    request: ProcessRequest,
    held: Result<launch::Held, launch::LaunchError>,
}

/// Renders the prompt and the invocation and builds the executor's sandbox, held until
/// [`run`] releases it: the worker sets it up on another core while the supervisor checks
/// the worktree out and the policy decides admission. Records nothing, starts nothing:
/// dropping the result discards the sandbox. `Err` is how the attempt ends when the
/// executor cannot even be invoked (not installed, a bad invocation).
pub(super) async fn prepare(
    ctx: &Context,
    plan: &AttemptPlan<'_>,
    ws: &Workspace<'_>,
) -> Result<Prepared, ExecPhase> {
    let step = &plan.step.spec;
    let prompt = render_prompt(&PromptInput {
        goal: &step.goal,
        context: step.context.as_deref(),
        constraints: &step.constraints,
        acceptance: &step.acceptance,
        allowed_paths: &step.allowed_paths,
        forbidden_paths: &step.forbidden_paths,
        attempt: plan.number,
        feedback: plan.feedback,
    });
    let adapter = codencer_adapters::adapter(&step.executor).ok_or_else(|| {
        ExecPhase::ended(
            AttemptStatus::Failed,
            format!("unknown executor `{}`", step.executor),
        )
    })?;
    let located = crate::executors::locate(adapter)
        .map_err(|err| ExecPhase::ended(AttemptStatus::Failed, err.to_string()))?;
    let home = ws.scratch.join("home");
    // The operator points an executor at an on-prem (or mock) model server through its
    // policy: `[env.set] CODENCER_MODEL_BASE_URL` / `CODENCER_MODEL`; the adapter turns
    // them into the CLI's own settings.
    let policy_env = |name: &str| {
        ws.env
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    };
    let invocation = adapter
        .invocation(&codencer_adapters::InvocationRequest {
            prompt: &prompt,
            worktree: ws.worktree,
            attempt: plan.number,
            command: step.command.as_deref(),
            config_home: &home,
            binary: Some(&located.binary),
            model: policy_env(MODEL_ENV),
            model_base_url: policy_env(MODEL_BASE_URL_ENV),
        })
        .map_err(|err| ExecPhase::ended(AttemptStatus::Failed, err.to_string()))?;
    let mut env = ws.env.clone();
    for (k, v) in &invocation.env {
        env.retain(|(name, _)| name != k);
        env.push((k.clone(), v.clone()));
    }
    let request = ProcessRequest {
        argv: invocation.argv,
        env,
        cwd: ws.worktree.to_path_buf(),
        stdout: ws.scratch.join("executor.stdout"),
        stderr: Some(ws.scratch.join("executor.stderr")),
        wall: plan.step.wall(),
        idle: plan.step.idle(),
        output_limit: plan.step.output_limit(),
        sandbox: {
            // The executor's own installation is visible, read-only; nothing else of it.
            let mut sandbox = ws.sandbox.clone();
            sandbox.read_only.extend(located.install_root.clone());
            sandbox
        },
    };
    // With validators to run, the sandbox is kept for them after the executor.
    let held = if step.validators.is_empty() {
        launch::prepare(&ctx.worker, &request).await
    } else {
        launch::prepare_kept(&ctx.worker, &request).await
    };
    Ok(Prepared {
        adapter,
        files: invocation.files,
        request,
        held,
    })
}

/// Writes the executor's files, releases its sandbox and supervises it to its end,
/// recording its output, the sandbox report and the executor's own report. Run it once
/// the worktree is checked out and admission is granted.
pub(super) async fn run(
    ctx: &Context,
    plan: &AttemptPlan<'_>,
    ws: &Workspace<'_>,
    prepared: Prepared,
) -> Result<ExecPhase, SupervisorError> {
    let Prepared {
        adapter,
        files,
        request,
        held,
    } = prepared;
    // Written now, not while preparing: the checkout must not race them.
    for (path, contents) in &files {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| {
                SupervisorError::io("create the executor's config directory", parent, e)
            })?;
        }
        std::fs::write(path, contents)
            .map_err(|e| SupervisorError::io("write the executor's files", path, e))?;
    }
    let stdout = request.stdout.clone();
    let stderr = request.stderr.clone().unwrap_or_else(|| stdout.clone());
    let mut cancel = ctx.cancel.clone();
    let rec = ctx.recorder.clone();
    let running_ids = ws.ids.clone();
    let on_start = move |pid| {
        if let Err(err) = rec.append(&running_ids, EventBody::AttemptRunning { pid: Some(pid) }) {
            tracing::error!(cause = %err, "could not record attempt.running");
        }
    };
    let result = match held {
        Ok(held) => held.run_keep(&request, &mut cancel, on_start).await,
        Err(err) => Err(err),
    };
    touch(&stdout)?;
    touch(&stderr)?;
    let mut artifacts = vec![
        NewArtifact::file(ArtifactKind::ExecutorStdout, None, &stdout),
        NewArtifact::file(ArtifactKind::ExecutorStderr, None, &stderr),
    ];
    let (outcome, kept) = match result {
        Ok(ran) => ran,
        Err(err) => {
            // Output is recorded even when the process could not be supervised to its end.
            ctx.recorder.record(&ws.ids, &artifacts, |_| Vec::new())?;
            return Ok(ExecPhase::ended(
                AttemptStatus::Crashed,
                format!("executor could not run: {}", crate::text::error_chain(&err)),
            ));
        }
    };
    let sandbox_json = serde_json::to_vec_pretty(&outcome.report).unwrap_or_default();
    artifacts.push(NewArtifact::bytes(
        ArtifactKind::SandboxReport,
        None,
        &sandbox_json,
    ));
    if let Some(refusal) = &outcome.report.setup_error {
        ctx.recorder.record(&ws.ids, &artifacts, |_| Vec::new())?;
        // Fail closed: the sandbox could not be built as required, so nothing ran.
        return Ok(ExecPhase::ended(
            AttemptStatus::Failed,
            format!("sandbox refused to start: {refusal}"),
        ));
    }
    let stdout_bytes = std::fs::read(&stdout).unwrap_or_default();
    let report = adapter.parse(&stdout_bytes);
    let report_json = (report.outcome != Outcome::Unreported)
        .then(|| serde_json::to_vec_pretty(&report).unwrap_or_default());
    if let Some(json) = &report_json {
        artifacts.push(NewArtifact::bytes(ArtifactKind::ExecutorReport, None, json));
    }
    // The outputs, the sandbox's report and the executor's in one transaction.
    ctx.recorder.record(&ws.ids, &artifacts, |_| Vec::new())?;
    let (status, reason) = match outcome.ending {
        launch::Ending::Cancelled => {
            let (status, why) = ctx.cancelled_status();
            (Some(status), Some(why.to_string()))
        }
        _ => evidence::executor_verdict(&outcome, &report, plan.step.wall()),
    };
    let evidence = reason
        .as_ref()
        .map(|why| evidence::from_executor(why, &stderr, &stdout));
    Ok(ExecPhase {
        status,
        reason,
        exit: Some(outcome.exit),
        report,
        evidence,
        kept,
    })
}

/// Makes sure an output file exists (a process that never started wrote none).
fn touch(path: &Path) -> Result<(), SupervisorError> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| SupervisorError::io("create an output file", path, e))?;
    Ok(())
}
