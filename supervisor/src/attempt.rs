//! One attempt: worktree, executor, capture, post-exec policy, validators, gates, verdict.
//! Every transition is an event; every output is an artifact; a failure at any point still
//! ends the attempt with a recorded terminal status.

mod evidence;
mod validators;

use std::path::{Path, PathBuf};
use std::time::Instant;

use codencer_adapters::{ExecutorReport, Outcome, PromptInput, render_prompt};
use codencer_store::{ArtifactKind, AttemptStatus, EventBody, GateStatus, ProcessExit, Usage};

use crate::actors::policy::{PolicyCheck, PolicyVerdict};
use crate::context::Context;
use crate::git;
use crate::launch::{self, ProcessRequest};
use crate::record::Ids;
use crate::spec::StepSpec;
use crate::supervisor_error::SupervisorError;

/// Where an attempt starts from.
#[derive(Debug, Clone)]
pub(crate) struct AttemptPlan<'a> {
    pub run_id: &'a str,
    pub step_id: &'a str,
    pub step_index: u32,
    pub number: u32,
    pub step: &'a StepSpec,
    pub repo: &'a Path,
    pub base_commit: &'a str,
    /// Failure evidence of earlier attempts, fed into the prompt.
    pub feedback: &'a [String],
}

/// How the attempt ended.
#[derive(Debug, Clone)]
pub(crate) struct AttemptResult {
    pub status: AttemptStatus,
    pub commit: Option<String>,
    /// What the next attempt is told about this one's failure.
    pub evidence: Option<String>,
    /// An approval gate is open on this attempt.
    pub awaiting_approval: bool,
}

/// What the executor phase produced.
struct ExecPhase {
    status: Option<AttemptStatus>,
    reason: Option<String>,
    exit: Option<ProcessExit>,
    report: ExecutorReport,
    evidence: Option<String>,
}

pub(crate) async fn run_attempt(
    ctx: &Context,
    plan: &AttemptPlan<'_>,
) -> Result<AttemptResult, SupervisorError> {
    let started = Instant::now();
    let attempt_id = codencer_store::new_id();
    let ids = Ids::attempt(plan.run_id, plan.step_id, &attempt_id);
    let branch = format!(
        "codencer/{}/{}/{}",
        plan.run_id, plan.step_index, plan.number
    );
    let worktree = ctx.worktree_dir(plan.run_id, plan.step_index, plan.number);
    let scratch = ctx.scratch_dir(&attempt_id)?;
    let rec = &ctx.recorder;
    rec.append(
        &ids,
        EventBody::AttemptStarted {
            number: plan.number,
            executor: plan.step.executor.clone(),
            branch: branch.clone(),
            worktree: worktree.display().to_string(),
            base_commit: plan.base_commit.to_string(),
        },
    )?;

    if let Some(parent) = worktree.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| SupervisorError::io("create the worktree directory", parent, e))?;
    }
    if let Err(err) = git::add_worktree(plan.repo, &worktree, &branch, plan.base_commit).await {
        let reason = format!("could not create the worktree: {err}");
        complete(
            ctx,
            &ids,
            AttemptStatus::Crashed,
            None,
            Some(reason.clone()),
            None,
            &ExecutorReport::unreported(),
            started,
        )?;
        return Err(SupervisorError::Infrastructure(reason));
    }

    let admission = ctx
        .policy_check(PolicyCheck::Admission {
            ids: ids.clone(),
            executor: plan.step.executor.clone(),
        })
        .await?;
    let exec = match admission {
        PolicyVerdict::Deny(reason) => ExecPhase {
            status: Some(AttemptStatus::Failed),
            reason: Some(format!("refused by policy: {reason}")),
            exit: None,
            report: ExecutorReport::unreported(),
            evidence: None,
        },
        PolicyVerdict::Admit | PolicyVerdict::NeedsApproval(_) => {
            run_executor(ctx, plan, &ids, &worktree, &scratch).await?
        }
    };

    // Capture whatever the executor did, whatever happened to it, before anything else.
    let message = format!(
        "codencer: run {} step {} attempt {}",
        plan.run_id, plan.step_index, plan.number
    );
    let capture = match git::capture(&worktree, plan.repo, plan.base_commit, &message).await {
        Ok(capture) => capture,
        Err(err) => {
            let reason = format!("could not capture the worktree's changes: {err}");
            complete(
                ctx,
                &ids,
                AttemptStatus::Crashed,
                exec.exit,
                Some(reason.clone()),
                None,
                &exec.report,
                started,
            )?;
            return Err(SupervisorError::Infrastructure(reason));
        }
    };
    rec.artifact(&ids, ArtifactKind::Diff, None, &capture.diff)?;
    let files_json = serde_json::to_vec(&capture.files).unwrap_or_default();
    rec.artifact(&ids, ArtifactKind::ChangedFiles, None, &files_json)?;
    let changes = Changes {
        commit: capture.commit.clone(),
        files: capture.files.clone(),
        insertions: capture.insertions,
        deletions: capture.deletions,
    };

    let mut status = exec.status;
    let mut reason = exec.reason.clone();
    let mut evidence = exec.evidence.clone();
    let mut awaiting_approval = false;
    if status.is_none() {
        match ctx
            .policy_check(PolicyCheck::PostExec {
                ids: ids.clone(),
                files: changes.files.clone(),
                insertions: changes.insertions,
                deletions: changes.deletions,
            })
            .await?
        {
            PolicyVerdict::Admit => {}
            PolicyVerdict::Deny(why) => {
                status = Some(AttemptStatus::Failed);
                reason = Some(format!("policy: {why}"));
                evidence = Some(format!("The change was refused by policy: {why}"));
            }
            PolicyVerdict::NeedsApproval(why) => {
                awaiting_approval = true;
                reason = Some(why);
            }
        }
    }

    let validations = if status.is_none() {
        rec.append(&ids, EventBody::AttemptValidating {})?;
        let outcome = validators::run_all(ctx, &ids, plan, &worktree, &scratch).await?;
        if outcome.cancelled {
            status = Some(AttemptStatus::Killed);
            reason = Some("cancelled during validation".into());
        }
        outcome.failed
    } else {
        validators::skip_all(ctx, &ids, plan)?;
        Vec::new()
    };

    let gate_status = match ctx
        .policy_check(PolicyCheck::Gates {
            ids: ids.clone(),
            validations_failed: validations.len(),
        })
        .await?
    {
        PolicyVerdict::Admit if status.is_none() && validations.is_empty() => GateStatus::Passed,
        PolicyVerdict::Admit | PolicyVerdict::Deny(_) | PolicyVerdict::NeedsApproval(_) => {
            GateStatus::Failed
        }
    };
    rec.append(
        &ids,
        EventBody::GateDecided {
            gate_id: codencer_store::new_id(),
            name: "validations".into(),
            status: gate_status,
            reason: Some(match (&status, validations.is_empty()) {
                (None, true) => "every validator passed".to_string(),
                (None, false) => format!("{} validator(s) failed", validations.len()),
                (Some(s), _) => format!("attempt ended {} before validation", s.as_str()),
            }),
        },
    )?;
    if status.is_none() && !validations.is_empty() {
        status = Some(AttemptStatus::Failed);
        reason = Some(format!(
            "validation failed: {}",
            validations
                .iter()
                .map(|v| v.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        evidence = Some(evidence::from_validations(&validations));
    }
    let status = status.unwrap_or(AttemptStatus::Passed);
    let awaiting_approval = awaiting_approval && status == AttemptStatus::Passed;
    if awaiting_approval {
        rec.append(
            &ids,
            EventBody::GateOpened {
                gate_id: codencer_store::new_id(),
                name: "approval".into(),
                reason: reason
                    .clone()
                    .unwrap_or_else(|| "policy requires approval".into()),
            },
        )?;
    }
    complete(
        ctx,
        &ids,
        status,
        exec.exit,
        reason,
        Some(&changes),
        &exec.report,
        started,
    )?;
    Ok(AttemptResult {
        status,
        commit: changes.commit,
        evidence,
        awaiting_approval,
    })
}

/// What the attempt changed.
struct Changes {
    commit: Option<String>,
    files: Vec<String>,
    insertions: u64,
    deletions: u64,
}

async fn run_executor(
    ctx: &Context,
    plan: &AttemptPlan<'_>,
    ids: &Ids,
    worktree: &Path,
    scratch: &Path,
) -> Result<ExecPhase, SupervisorError> {
    let step = plan.step;
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
        SupervisorError::Infrastructure(format!("unknown executor `{}`", step.executor))
    })?;
    let config_home = scratch.join("home");
    std::fs::create_dir_all(&config_home)
        .map_err(|e| SupervisorError::io("create the executor's home", &config_home, e))?;
    let invocation = match adapter.invocation(&codencer_adapters::InvocationRequest {
        prompt: &prompt,
        worktree,
        attempt: plan.number,
        command: step.command.as_deref(),
        config_home: &config_home,
        binary: None,
    }) {
        Ok(inv) => inv,
        Err(err) => {
            return Ok(ExecPhase {
                status: Some(AttemptStatus::Failed),
                reason: Some(err.to_string()),
                exit: None,
                report: ExecutorReport::unreported(),
                evidence: None,
            });
        }
    };
    for (path, contents) in &invocation.files {
        std::fs::write(path, contents)
            .map_err(|e| SupervisorError::io("write the executor's files", path, e))?;
    }
    let stdout = scratch.join("executor.stdout");
    let stderr = scratch.join("executor.stderr");
    let mut env = ctx.base_env(&config_home);
    env.extend(invocation.env.iter().cloned());
    let request = ProcessRequest {
        argv: invocation.argv.clone(),
        env,
        cwd: worktree.to_path_buf(),
        stdout: stdout.clone(),
        stderr: Some(stderr.clone()),
        wall: step.timeout,
        idle: None,
        output_limit: None,
    };
    let mut cancel = ctx.cancel.clone();
    let rec = ctx.recorder.clone();
    let running_ids = ids.clone();
    let result = launch::run_process(&request, &mut cancel, move |pid| {
        if let Err(err) = rec.append(&running_ids, EventBody::AttemptRunning { pid: Some(pid) }) {
            tracing::error!(cause = %err, "could not record attempt.running");
        }
    })
    .await;
    // Output is recorded even when the process could not be supervised to its end.
    ctx.recorder
        .artifact_file(ids, ArtifactKind::ExecutorStdout, None, &touch(&stdout)?)?;
    ctx.recorder
        .artifact_file(ids, ArtifactKind::ExecutorStderr, None, &touch(&stderr)?)?;
    let outcome = match result {
        Ok(outcome) => outcome,
        Err(err) => {
            let reason = format!("executor could not run: {err}");
            return Ok(ExecPhase {
                status: Some(AttemptStatus::Crashed),
                reason: Some(reason.clone()),
                exit: None,
                report: ExecutorReport::unreported(),
                evidence: Some(reason),
            });
        }
    };
    let stdout_bytes = std::fs::read(&stdout).unwrap_or_default();
    let report = adapter.parse(&stdout_bytes);
    if report.outcome != Outcome::Unreported {
        let json = serde_json::to_vec_pretty(&report).unwrap_or_default();
        ctx.recorder
            .artifact(ids, ArtifactKind::ExecutorReport, None, &json)?;
    }
    let (status, reason) = evidence::executor_verdict(&outcome, &report, step.timeout);
    let evidence = reason
        .as_ref()
        .map(|why| evidence::from_executor(why, &stderr, &stdout));
    Ok(ExecPhase {
        status,
        reason,
        exit: Some(outcome.exit),
        report,
        evidence,
    })
}

/// Makes sure an output file exists (a process that never started wrote none).
fn touch(path: &Path) -> Result<PathBuf, SupervisorError> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| SupervisorError::io("create an output file", path, e))?;
    Ok(path.to_path_buf())
}

#[allow(clippy::too_many_arguments)]
fn complete(
    ctx: &Context,
    ids: &Ids,
    status: AttemptStatus,
    exit: Option<ProcessExit>,
    reason: Option<String>,
    changes: Option<&Changes>,
    report: &ExecutorReport,
    started: Instant,
) -> Result<(), SupervisorError> {
    let usage = report.usage.as_ref().map(|u| Usage {
        input_tokens: u.input_tokens,
        output_tokens: u.output_tokens,
        cost_usd: u.cost_usd,
    });
    ctx.recorder.append(
        ids,
        EventBody::AttemptCompleted {
            status,
            exit,
            reason,
            commit: changes.and_then(|c| c.commit.clone()),
            files_changed: changes.map(|c| c.files.clone()).unwrap_or_default(),
            insertions: changes.map_or(0, |c| c.insertions),
            deletions: changes.map_or(0, |c| c.deletions),
            duration_ms: started.elapsed().as_millis() as u64,
            summary: report.summary.clone(),
            usage,
        },
    )?;
    Ok(())
}
