//! One attempt: worktree, executor, capture, post-exec policy, validators, gates, verdict.
//! Every transition is an event; every output is an artifact; a failure at any point still
//! ends the attempt with a recorded terminal status.

mod evidence;
mod executor;
mod network;
mod validators;

use std::path::Path;
use std::time::Instant;

use codencer_adapters::ExecutorReport;
use codencer_policy::{ChangeSummary, ValidationSummary};
use codencer_store::{AttemptStatus, EventBody, GateStatus, ProcessExit, Usage};

use crate::actors::policy::{PolicyCheck, PolicyVerdict};
use crate::context::Context;
use crate::git;
use crate::plan::StepPlan;
use crate::record::Ids;
use crate::supervisor_error::SupervisorError;

/// Where an attempt starts from.
#[derive(Debug, Clone)]
pub(crate) struct AttemptPlan<'a> {
    pub run_id: &'a str,
    pub step_id: &'a str,
    pub step_index: u32,
    pub number: u32,
    pub step: &'a StepPlan,
    pub repo: &'a Path,
    pub base_commit: &'a str,
    /// Failure evidence of earlier attempts, fed into the prompt.
    pub feedback: &'a [String],
}

/// How the attempt ended.
#[derive(Debug, Clone)]
pub(crate) struct AttemptResult {
    pub status: AttemptStatus,
    /// Why it did not pass, or why it awaits approval.
    pub reason: Option<String>,
    pub commit: Option<String>,
    /// What the next attempt is told about this one's failure.
    pub evidence: Option<String>,
    /// The failure was the validators' (as opposed to the executor's or the policy's).
    pub validation_failed: bool,
    /// An approval gate is open on this attempt.
    pub awaiting_approval: bool,
}

/// Where the attempt's processes run and how they are confined.
pub(crate) struct Workspace<'a> {
    pub ids: Ids,
    pub worktree: &'a Path,
    pub scratch: &'a Path,
    pub sandbox: codencer_sandbox::SandboxSpec,
    pub env: Vec<(String, String)>,
}

/// What the executor phase produced.
pub(crate) struct ExecPhase {
    pub status: Option<AttemptStatus>,
    pub reason: Option<String>,
    pub exit: Option<ProcessExit>,
    pub report: ExecutorReport,
    pub evidence: Option<String>,
    /// The executor's sandbox, kept for the validators (when there are any and it outlived
    /// the executor).
    pub kept: Option<crate::launch::Kept>,
}

impl ExecPhase {
    fn ended(status: AttemptStatus, reason: String) -> ExecPhase {
        ExecPhase {
            status: Some(status),
            evidence: Some(reason.clone()),
            reason: Some(reason),
            exit: None,
            report: ExecutorReport::unreported(),
            kept: None,
        }
    }
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
            executor: plan.step.spec.executor.clone(),
            branch: branch.clone(),
            worktree: worktree.display().to_string(),
            base_commit: plan.base_commit.to_string(),
        },
    )?;
    let crashed = |reason: String| {
        complete(
            ctx,
            &ids,
            AttemptStatus::Crashed,
            None,
            Some(reason.clone()),
            None,
            &ExecutorReport::unreported(),
            started,
        )
        .map(|()| reason)
    };

    if let Some(parent) = worktree.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| SupervisorError::io("create the worktree directory", parent, e))?;
    }
    let tree = match git::create_worktree(plan.repo, &worktree, &branch, plan.base_commit).await {
        Ok(tree) => tree,
        Err(err) => {
            return Err(SupervisorError::Infrastructure(crashed(format!(
                "could not create the worktree: {err}"
            ))?));
        }
    };
    let home = scratch.join("home");
    std::fs::create_dir_all(&home)
        .map_err(|e| SupervisorError::io("create the executor's home", &home, e))?;
    let mut ws = Workspace {
        sandbox: ctx.sandbox_spec(&tree, &home, &plan.step.policy),
        env: ctx.base_env(&home, &plan.step.policy),
        ids: ids.clone(),
        worktree: &worktree,
        scratch: &scratch,
    };
    // The network the policy allows (proxy, forwards), for the executor and validators.
    let egress = match network::start(&plan.step.policy, &mut ws) {
        Ok(egress) => egress,
        Err(err) => return Err(SupervisorError::Infrastructure(crashed(err.to_string())?)),
    };

    // Three things at once: git checks the base out, the policy decides admission, and the
    // worker builds the executor's sandbox (held: nothing starts before both said yes).
    let policy = plan.step.policy.clone();
    let (checkout, admission, prepared) = tokio::join!(
        tree.check_out(plan.base_commit),
        ctx.policy_check(PolicyCheck::Admission {
            ids: ids.clone(),
            policy: policy.clone(),
        }),
        executor::prepare(ctx, plan, &ws),
    );
    if let Err(err) = checkout {
        drop(prepared);
        return Err(SupervisorError::Infrastructure(crashed(format!(
            "could not check the worktree out: {err}"
        ))?));
    }
    let mut exec = match (admission?, prepared) {
        (PolicyVerdict::Deny(reason), _) => ExecPhase::ended(
            AttemptStatus::Failed,
            format!("refused by policy: {reason}"),
        ),
        (_, Err(ended)) => ended,
        (PolicyVerdict::Admit | PolicyVerdict::NeedsApproval(_), Ok(prepared)) => {
            executor::run(ctx, plan, &ws, prepared).await?
        }
    };

    // The validators run in the executor's sandbox, kept for them (nothing of the executor
    // is left in it).
    let kept = exec.kept.take().filter(|_| exec.status.is_none());
    // Capture whatever the executor did, whatever happened to it, before anything else.
    let message = format!(
        "codencer: run {} step {} attempt {}",
        plan.run_id, plan.step_index, plan.number
    );
    let capture = match git::capture(&tree, plan.base_commit, &message).await {
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
    rec.capture_artifacts(&ids, &capture)?;
    let changes = ChangeSummary {
        files: capture.files.clone(),
        insertions: capture.insertions,
        deletions: capture.deletions,
    };

    let mut status = exec.status;
    let mut reason = exec.reason.clone();
    let mut evidence = exec.evidence.clone();
    if status.is_none()
        && let PolicyVerdict::Deny(why) = ctx
            .policy_check(PolicyCheck::PostExec {
                ids: ids.clone(),
                policy: policy.clone(),
                changes: changes.clone(),
            })
            .await?
    {
        status = Some(AttemptStatus::Failed);
        reason = Some(format!("policy: {why}"));
        evidence = Some(format!("The change was refused by policy: {why}"));
    }

    let mut failed_validations = Vec::new();
    let mut validations = ValidationSummary { run: 0, passed: 0 };
    if status.is_none() {
        rec.append(&ids, EventBody::AttemptValidating {})?;
        let outcome = validators::run_all(ctx, plan, &ws, kept).await?;
        if outcome.cancelled {
            let (cancelled, why) = ctx.cancelled_status();
            status = Some(cancelled);
            reason = Some(format!("{why} (during validation)"));
        }
        validations = outcome.summary;
        failed_validations = outcome.failed;
    } else {
        // Refused after the executor: the kept sandbox ends unused.
        drop(kept);
        validators::skip_all(ctx, &ids, plan)?;
    }
    network::finish(ctx, &ids, egress).await?;

    let mut approval: Option<String> = None;
    // An attempt that already ended is not put to the gates: their decisions would only
    // contradict its end in the record.
    let gate_verdict = match status {
        Some(_) => None,
        None => Some(
            ctx.policy_check(PolicyCheck::Gates {
                ids: ids.clone(),
                policy,
                changes,
                validations,
            })
            .await?,
        ),
    };
    let (gate_status, gate_reason) = match &gate_verdict {
        None => (
            GateStatus::Failed,
            format!(
                "attempt ended {} before the gates",
                status.map_or("failed", AttemptStatus::as_str)
            ),
        ),
        Some(PolicyVerdict::Admit) => (GateStatus::Passed, "every gate passed".to_string()),
        Some(PolicyVerdict::Deny(why)) => (GateStatus::Failed, why.clone()),
        Some(PolicyVerdict::NeedsApproval(_)) if !failed_validations.is_empty() => {
            (GateStatus::Failed, "validation failed".to_string())
        }
        Some(PolicyVerdict::NeedsApproval(why)) => {
            approval = Some(why.clone());
            (
                GateStatus::Passed,
                "every automatic gate passed; a person must approve".to_string(),
            )
        }
    };
    rec.append(
        &ids,
        EventBody::GateDecided {
            gate_id: codencer_store::new_id(),
            name: "policy".into(),
            status: gate_status,
            reason: Some(gate_reason.clone()),
        },
    )?;
    let validation_failed = status.is_none() && !failed_validations.is_empty();
    if validation_failed {
        status = Some(AttemptStatus::Failed);
        reason = Some(format!(
            "validation failed: {}",
            failed_validations
                .iter()
                .map(|v| v.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        evidence = Some(evidence::from_validations(&failed_validations));
    } else if status.is_none() && gate_status == GateStatus::Failed {
        status = Some(AttemptStatus::Failed);
        reason = Some(format!("gate failed: {gate_reason}"));
        evidence = Some(format!("A gate refused the change: {gate_reason}"));
    }
    let status = status.unwrap_or(AttemptStatus::Passed);
    let awaiting_approval = approval.is_some() && status == AttemptStatus::Passed;
    if let (true, Some(why)) = (awaiting_approval, &approval) {
        rec.append(
            &ids,
            EventBody::GateOpened {
                gate_id: codencer_store::new_id(),
                name: "approval".into(),
                reason: why.clone(),
            },
        )?;
    }
    let recorded_changes = Changes {
        commit: capture.commit.clone(),
        files: capture.files,
        insertions: capture.insertions,
        deletions: capture.deletions,
    };
    let reason = match (awaiting_approval, approval) {
        (true, Some(why)) => Some(format!("approval required: {why}")),
        _ => reason,
    };
    complete(
        ctx,
        &ids,
        status,
        exec.exit,
        reason.clone(),
        Some(&recorded_changes),
        &exec.report,
        started,
    )?;
    Ok(AttemptResult {
        status,
        reason,
        commit: capture.commit,
        evidence,
        validation_failed,
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
