//! The PolicyActor: consulted before an attempt starts (admission), after the executor exits
//! (post-exec path and size checks), before gates fire, and after a failure (retry). It
//! evaluates with `codencer-policy` and records every decision as a `policy.decided` event
//! carrying its reason and the origin (file, line, key) of the rule that decided it.

use std::sync::Arc;

use codencer_policy::{
    ChangeSummary, EffectivePolicy, Evaluation, FailureKind, HostLayers, ValidationSummary, Verdict,
};
use codencer_store::{ArtifactKind, EventBody};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::record::{Ids, NewArtifact, Recorder};

/// What a StepActor asks.
#[derive(Debug, Clone)]
pub enum PolicyCheck {
    /// May this attempt start on this host? Records the effective policy as an artifact.
    Admission {
        ids: Ids,
        policy: Arc<EffectivePolicy>,
    },
    /// Is what the executor changed acceptable?
    PostExec {
        ids: Ids,
        policy: Arc<EffectivePolicy>,
        changes: ChangeSummary,
    },
    /// Gate verdicts once validators ran.
    Gates {
        ids: Ids,
        policy: Arc<EffectivePolicy>,
        changes: ChangeSummary,
        validations: ValidationSummary,
    },
    /// May the step try again after this failure?
    Retry {
        ids: Ids,
        policy: Arc<EffectivePolicy>,
        failure: FailureKind,
        attempts_made: u64,
    },
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyVerdict {
    Admit,
    Deny(String),
    NeedsApproval(String),
}

#[derive(Debug)]
pub enum PolicyMsg {
    Check(PolicyCheck, RpcReplyPort<PolicyVerdict>),
}

#[derive(Debug)]
pub struct PolicyActor;

/// Built once per supervisor: what this host can enforce does not change while it runs.
#[derive(Debug, Clone)]
pub struct PolicyArgs {
    pub recorder: Arc<Recorder>,
    pub host: HostLayers,
}

impl Actor for PolicyActor {
    type Msg = PolicyMsg;
    type State = PolicyArgs;
    type Arguments = PolicyArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<PolicyMsg>,
        args: PolicyArgs,
    ) -> Result<PolicyArgs, ActorProcessingErr> {
        Ok(args)
    }

    async fn handle(
        &self,
        _myself: ActorRef<PolicyMsg>,
        msg: PolicyMsg,
        state: &mut PolicyArgs,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            PolicyMsg::Check(check, reply) => {
                let verdict = decide(state, &check)?;
                // The asker may have gone away (cancelled); nothing to do then.
                let _ = reply.send(verdict);
            }
        }
        Ok(())
    }
}

fn decide(state: &PolicyArgs, check: &PolicyCheck) -> Result<PolicyVerdict, ActorProcessingErr> {
    let rec = &state.recorder;
    // Admission records the effective policy beside its decisions.
    let mut explained = None;
    let (ids, stage, evaluation) = match check {
        PolicyCheck::Admission { ids, policy } => {
            let explanation = codencer_policy::explain(policy);
            explained = Some((serde_json::to_vec_pretty(&explanation)?, policy.executor()));
            (
                ids,
                "admission",
                codencer_policy::admit(policy, &state.host),
            )
        }
        PolicyCheck::PostExec {
            ids,
            policy,
            changes,
        } => (
            ids,
            "post_exec",
            codencer_policy::check_changes(policy, changes),
        ),
        PolicyCheck::Gates {
            ids,
            policy,
            changes,
            validations,
        } => (
            ids,
            "gates",
            codencer_policy::gate_verdicts(policy, changes, *validations),
        ),
        PolicyCheck::Retry {
            ids,
            policy,
            failure,
            attempts_made,
        } => {
            let decision = codencer_policy::retry_allowed(policy, *failure, *attempts_made);
            (
                ids,
                "retry",
                Evaluation {
                    verdict: decision.verdict,
                    decisions: vec![decision],
                },
            )
        }
    };
    let events = evaluation
        .decisions
        .iter()
        .map(|d| {
            (
                ids.clone(),
                EventBody::PolicyDecided {
                    stage: stage.to_string(),
                    verdict: verdict_name(d.verdict).to_string(),
                    reason: format!("{}: {}", d.rule, d.reason),
                    origin: d.origin.as_ref().map(|o| o.to_string()),
                },
            )
        })
        .collect::<Vec<_>>();
    match &explained {
        Some((json, executor)) => {
            let policy = NewArtifact::bytes(ArtifactKind::Policy, Some(executor), json);
            rec.record(ids, &[policy], |_| events)?;
        }
        None => {
            rec.append_all(events)?;
        }
    }
    let reasons = |wanted: Verdict| {
        evaluation
            .decisions
            .iter()
            .filter(|d| d.verdict == wanted)
            .map(|d| d.reason.clone())
            .collect::<Vec<_>>()
            .join("; ")
    };
    Ok(match evaluation.verdict {
        Verdict::Allow => PolicyVerdict::Admit,
        Verdict::NeedsApproval => PolicyVerdict::NeedsApproval(reasons(Verdict::NeedsApproval)),
        Verdict::Deny => PolicyVerdict::Deny(reasons(Verdict::Deny)),
        _ => PolicyVerdict::Deny(
            "the policy returned a verdict this supervisor does not know".to_string(),
        ),
    })
}

fn verdict_name(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Allow => "allow",
        Verdict::NeedsApproval => "needs_approval",
        Verdict::Deny => "deny",
        _ => "unknown",
    }
}
