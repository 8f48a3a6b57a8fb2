//! The PolicyActor: consulted before an attempt starts, after the executor exits, and before
//! gates fire. Every decision is recorded as a `policy.decided` event.
//!
//! Foundation: no policy files are loaded yet, so every check admits, and says so in the
//! record. The policy issue replaces the decisions with `codencer-policy` evaluation.

use std::sync::Arc;

use codencer_store::EventBody;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::record::{Ids, Recorder};

/// What a StepActor asks.
#[derive(Debug, Clone)]
pub enum PolicyCheck {
    /// May this attempt start?
    Admission { ids: Ids, executor: String },
    /// Is what the executor changed acceptable?
    PostExec {
        ids: Ids,
        files: Vec<String>,
        insertions: u64,
        deletions: u64,
    },
    /// Gate verdicts once validators ran.
    Gates { ids: Ids, validations_failed: usize },
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyVerdict {
    Admit,
    Deny(String),
    #[expect(
        dead_code,
        reason = "the policy issue's protected-path rules construct it"
    )]
    NeedsApproval(String),
}

#[derive(Debug)]
pub enum PolicyMsg {
    Check(PolicyCheck, RpcReplyPort<PolicyVerdict>),
}

#[derive(Debug)]
pub struct PolicyActor;

#[derive(Debug)]
pub struct PolicyState {
    recorder: Arc<Recorder>,
}

impl Actor for PolicyActor {
    type Msg = PolicyMsg;
    type State = PolicyState;
    type Arguments = Arc<Recorder>;

    async fn pre_start(
        &self,
        _myself: ActorRef<PolicyMsg>,
        recorder: Arc<Recorder>,
    ) -> Result<PolicyState, ActorProcessingErr> {
        Ok(PolicyState { recorder })
    }

    async fn handle(
        &self,
        _myself: ActorRef<PolicyMsg>,
        msg: PolicyMsg,
        state: &mut PolicyState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            PolicyMsg::Check(check, reply) => {
                let (ids, stage, verdict, reason) = decide(&check);
                state.recorder.append(
                    ids,
                    EventBody::PolicyDecided {
                        stage: stage.to_string(),
                        verdict: match &verdict {
                            PolicyVerdict::Admit => "admit",
                            PolicyVerdict::Deny(_) => "deny",
                            PolicyVerdict::NeedsApproval(_) => "needs_approval",
                        }
                        .to_string(),
                        reason,
                        origin: Some("builtin:foundation".to_string()),
                    },
                )?;
                // The asker may have gone away (cancelled); nothing to do then.
                let _ = reply.send(verdict);
            }
        }
        Ok(())
    }
}

/// The foundation's rules: every executor and change is admitted; the validations gate
/// requires every validator to pass.
fn decide(check: &PolicyCheck) -> (&Ids, &'static str, PolicyVerdict, String) {
    match check {
        PolicyCheck::Admission { ids, executor } => (
            ids,
            "admission",
            PolicyVerdict::Admit,
            format!("executor `{executor}` admitted: no policy files are loaded yet"),
        ),
        PolicyCheck::PostExec {
            ids,
            files,
            insertions,
            deletions,
        } => (
            ids,
            "post_exec",
            PolicyVerdict::Admit,
            format!(
                "{} file(s) changed (+{insertions} -{deletions}): no path or size rules are loaded yet",
                files.len()
            ),
        ),
        PolicyCheck::Gates {
            ids,
            validations_failed: 0,
        } => (
            ids,
            "gates",
            PolicyVerdict::Admit,
            "every validator passed".to_string(),
        ),
        PolicyCheck::Gates {
            ids,
            validations_failed,
        } => {
            let why = format!("{validations_failed} validator(s) failed; validators are required");
            (ids, "gates", PolicyVerdict::Deny(why.clone()), why)
        }
    }
}
