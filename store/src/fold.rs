//! The run tree, folded from a run's events at read time.
//!
//! Events are the only record of runs: nothing else is written per event, so an append costs
//! one row and one index entry (docs/store.md, docs/performance.md). Reading a run replays
//! its events (found through the `events_run` index) in seq order. The fold is strict: an
//! event about a node that does not exist is an error, as it was refused when appended.

use std::collections::HashMap;

use crate::error::StoreError;
use crate::model::{
    ArtifactRow, AttemptRow, AttemptStatus, AttemptTree, Event, EventBody, GateRow, GateStatus,
    RunRow, RunStatus, RunTree, StepRow, StepTree, ValidationRow,
};

/// Where a node hangs in the tree being folded.
#[derive(Debug, Clone, Copy)]
enum Node {
    Run,
    Step(usize),
    Attempt(usize, usize),
}

/// A run tree being folded, one event at a time.
pub(crate) struct Fold {
    tree: Option<RunTree>,
    step_at: HashMap<String, usize>,
    attempt_at: HashMap<String, (usize, usize)>,
    gate_at: HashMap<String, (Node, usize)>,
}

/// What an event of `kind` needs and does not have.
fn missing(kind: &'static str, field: &'static str) -> StoreError {
    StoreError::MissingId { kind, field }
}

fn unknown(kind: &'static str, node: &'static str, id: &str) -> StoreError {
    StoreError::UnknownNode {
        kind,
        node,
        id: id.to_owned(),
    }
}

impl Fold {
    pub(crate) fn new() -> Fold {
        Fold {
            tree: None,
            step_at: HashMap::new(),
            attempt_at: HashMap::new(),
            gate_at: HashMap::new(),
        }
    }

    /// The tree: steps by index, attempts by number, everything else in event order.
    /// `None` when no `run.created` was folded.
    pub(crate) fn finish(self) -> Option<RunTree> {
        let mut tree = self.tree?;
        // Stable sorts: equal indexes and numbers stay in creation order.
        tree.steps.sort_by_key(|s| s.step.index);
        for step in &mut tree.steps {
            step.attempts.sort_by_key(|a| a.attempt.number);
        }
        Some(tree)
    }

    fn tree(&mut self, kind: &'static str, run_id: &str) -> Result<&mut RunTree, StoreError> {
        self.tree
            .as_mut()
            .ok_or_else(|| unknown(kind, "run", run_id))
    }

    /// Where the step the event names is in the tree.
    fn step_pos(&self, kind: &'static str, ev: &Event) -> Result<usize, StoreError> {
        let id = ev.step_id.as_deref().ok_or(missing(kind, "step id"))?;
        self.step_at
            .get(id)
            .copied()
            .ok_or_else(|| unknown(kind, "step", id))
    }

    /// Where the attempt the event names is in the tree.
    fn attempt_pos(&self, kind: &'static str, ev: &Event) -> Result<(usize, usize), StoreError> {
        let id = ev
            .attempt_id
            .as_deref()
            .ok_or(missing(kind, "attempt id"))?;
        self.attempt_at
            .get(id)
            .copied()
            .ok_or_else(|| unknown(kind, "attempt", id))
    }

    fn step(
        &mut self,
        kind: &'static str,
        run_id: &str,
        ev: &Event,
    ) -> Result<&mut StepRow, StoreError> {
        let s = self.step_pos(kind, ev)?;
        Ok(&mut self.tree(kind, run_id)?.steps[s].step)
    }

    fn attempt(
        &mut self,
        kind: &'static str,
        run_id: &str,
        ev: &Event,
    ) -> Result<&mut AttemptTree, StoreError> {
        let (s, a) = self.attempt_pos(kind, ev)?;
        Ok(&mut self.tree(kind, run_id)?.steps[s].attempts[a])
    }

    /// The deepest known node among the event's step and attempt ids.
    fn node(&self, step_id: Option<&str>, attempt_id: Option<&str>) -> Node {
        if let Some(&(s, a)) = attempt_id.and_then(|a| self.attempt_at.get(a)) {
            return Node::Attempt(s, a);
        }
        match step_id.and_then(|s| self.step_at.get(s)) {
            Some(&s) => Node::Step(s),
            None => Node::Run,
        }
    }

    fn gates_at(tree: &mut RunTree, node: Node) -> &mut Vec<GateRow> {
        match node {
            Node::Run => &mut tree.gates,
            Node::Step(s) => &mut tree.steps[s].gates,
            Node::Attempt(s, a) => &mut tree.steps[s].attempts[a].gates,
        }
    }

    /// Apply one event of this run, in seq order.
    pub(crate) fn apply(&mut self, ev: &Event) -> Result<(), StoreError> {
        let kind = ev.body.kind();
        let ts = ev.ts.as_str();
        let run_id = ev.run_id.as_deref().ok_or(missing(kind, "run id"))?;
        if let Some(run) = created_run(ev) {
            if self.tree.is_some() {
                return Err(StoreError::DuplicateNode {
                    kind,
                    node: "run",
                    id: run_id.to_owned(),
                });
            }
            self.tree = Some(RunTree {
                run,
                steps: Vec::new(),
                artifacts: Vec::new(),
                gates: Vec::new(),
            });
            return Ok(());
        }
        // Events that name no node of the tree still date the run; one before `run.created`
        // (none is appended that way) leaves it to the strict arms below.
        if let Some(tree) = self.tree.as_mut() {
            tree.run.updated_at = ts.to_owned();
        }
        match &ev.body {
            EventBody::RunCreated { .. } => {}
            EventBody::RunStarted {} | EventBody::RunCompleted { .. } => {
                run_status(&mut self.tree(kind, run_id)?.run, &ev.body, ts);
            }
            EventBody::RunOpened {} => {
                self.tree(kind, run_id)?;
            }
            EventBody::StepCreated {
                index,
                goal,
                executor,
                max_attempts,
            } => {
                let step_id = ev.step_id.as_deref().ok_or(missing(kind, "step id"))?;
                if self.step_at.contains_key(step_id) {
                    return Err(StoreError::DuplicateNode {
                        kind,
                        node: "step",
                        id: step_id.to_owned(),
                    });
                }
                let tree = self.tree(kind, run_id)?;
                let at = tree.steps.len();
                tree.steps.push(StepTree {
                    step: StepRow {
                        id: step_id.to_owned(),
                        run_id: run_id.to_owned(),
                        index: *index,
                        goal: goal.clone(),
                        executor: executor.clone(),
                        max_attempts: *max_attempts,
                        status: RunStatus::Pending,
                        base: None,
                        base_commit: None,
                        head_commit: None,
                        reason: None,
                        created_at: ts.to_owned(),
                        started_at: None,
                        finished_at: None,
                    },
                    attempts: Vec::new(),
                    artifacts: Vec::new(),
                    gates: Vec::new(),
                });
                self.step_at.insert(step_id.to_owned(), at);
            }
            EventBody::StepStarted { base, base_commit } => {
                let step = self.step(kind, run_id, ev)?;
                step.status = RunStatus::Running;
                step.base = Some(base.clone());
                step.base_commit = Some(base_commit.clone());
                step.started_at.get_or_insert_with(|| ts.to_owned());
                run_status(&mut self.tree(kind, run_id)?.run, &ev.body, ts);
            }
            EventBody::StepAwaitingApproval { gate: _, reason: _ } => {
                self.step(kind, run_id, ev)?.status = RunStatus::AwaitingApproval;
                run_status(&mut self.tree(kind, run_id)?.run, &ev.body, ts);
            }
            EventBody::StepCompleted {
                status,
                head_commit,
                attempts: _,
                reason,
            } => {
                let step = self.step(kind, run_id, ev)?;
                step.status = *status;
                step.head_commit.clone_from(head_commit);
                step.reason.clone_from(reason);
                step.finished_at = Some(ts.to_owned());
            }
            EventBody::AttemptStarted {
                number,
                executor,
                branch,
                worktree,
                base_commit,
            } => {
                let attempt_id = ev
                    .attempt_id
                    .as_deref()
                    .ok_or(missing(kind, "attempt id"))?;
                if self.attempt_at.contains_key(attempt_id) {
                    return Err(StoreError::DuplicateNode {
                        kind,
                        node: "attempt",
                        id: attempt_id.to_owned(),
                    });
                }
                let s = self.step_pos(kind, ev)?;
                let step_id = ev.step_id.as_deref().unwrap_or_default();
                let attempts = &mut self.tree(kind, run_id)?.steps[s].attempts;
                let a = attempts.len();
                attempts.push(AttemptTree {
                    attempt: AttemptRow {
                        id: attempt_id.to_owned(),
                        run_id: run_id.to_owned(),
                        step_id: step_id.to_owned(),
                        number: *number,
                        executor: executor.clone(),
                        status: AttemptStatus::Starting,
                        branch: branch.clone(),
                        worktree: worktree.clone(),
                        base_commit: base_commit.clone(),
                        commit: None,
                        exit_code: None,
                        signal: None,
                        reason: None,
                        files_changed: Vec::new(),
                        insertions: 0,
                        deletions: 0,
                        summary: None,
                        usage: None,
                        started_at: ts.to_owned(),
                        finished_at: None,
                        duration_ms: None,
                    },
                    artifacts: Vec::new(),
                    validations: Vec::new(),
                    gates: Vec::new(),
                });
                self.attempt_at.insert(attempt_id.to_owned(), (s, a));
            }
            EventBody::AttemptRunning { pid: _ } => {
                self.attempt(kind, run_id, ev)?.attempt.status = AttemptStatus::Running;
            }
            EventBody::AttemptValidating {} => {
                self.attempt(kind, run_id, ev)?.attempt.status = AttemptStatus::Validating;
            }
            EventBody::AttemptCompleted {
                status,
                exit,
                reason,
                commit,
                files_changed,
                insertions,
                deletions,
                duration_ms,
                summary,
                usage,
            } => {
                let a = &mut self.attempt(kind, run_id, ev)?.attempt;
                a.status = *status;
                a.exit_code = exit.as_ref().and_then(|e| e.code);
                a.signal = exit.as_ref().and_then(|e| e.signal);
                a.reason.clone_from(reason);
                a.commit.clone_from(commit);
                a.files_changed.clone_from(files_changed);
                a.insertions = *insertions;
                a.deletions = *deletions;
                a.duration_ms = Some(*duration_ms);
                a.summary.clone_from(summary);
                a.usage.clone_from(usage);
                a.finished_at = Some(ts.to_owned());
            }
            EventBody::ArtifactRecorded { .. } => {
                let Some(row) = artifact_row(ev) else {
                    return Ok(());
                };
                let node = self.node(ev.step_id.as_deref(), ev.attempt_id.as_deref());
                let tree = self.tree(kind, run_id)?;
                match node {
                    Node::Run => tree.artifacts.push(row),
                    Node::Step(s) => tree.steps[s].artifacts.push(row),
                    Node::Attempt(s, a) => tree.steps[s].attempts[a].artifacts.push(row),
                }
            }
            EventBody::ValidationCompleted {
                validation_id,
                name,
                command,
                status,
                exit_code,
                duration_ms,
                output_artifact,
            } => {
                let attempt = self.attempt(kind, run_id, ev)?;
                let attempt_id = attempt.attempt.id.clone();
                attempt.validations.push(ValidationRow {
                    id: validation_id.clone(),
                    attempt_id,
                    name: name.clone(),
                    command: command.clone(),
                    status: *status,
                    exit_code: *exit_code,
                    duration_ms: *duration_ms,
                    output_artifact: output_artifact.clone(),
                    created_at: ts.to_owned(),
                });
            }
            EventBody::GateOpened {
                gate_id,
                name,
                reason,
            } => {
                let row = GateRow {
                    id: gate_id.clone(),
                    run_id: run_id.to_owned(),
                    step_id: ev.step_id.clone(),
                    attempt_id: ev.attempt_id.clone(),
                    name: name.clone(),
                    status: GateStatus::Pending,
                    reason: Some(reason.clone()),
                    decided_by: None,
                    created_at: ts.to_owned(),
                    decided_at: None,
                };
                self.add_gate(kind, run_id, ev, row)?;
            }
            EventBody::GateDecided {
                gate_id,
                name,
                status,
                reason,
            } => {
                if let Some(&(node, at)) = self.gate_at.get(gate_id) {
                    let gate = &mut Self::gates_at(self.tree(kind, run_id)?, node)[at];
                    gate.status = *status;
                    if reason.is_some() {
                        gate.reason.clone_from(reason);
                    }
                    gate.decided_by = Some(ev.actor.clone());
                    gate.decided_at = Some(ts.to_owned());
                } else {
                    // A gate decided without being opened first (an automatic gate).
                    let row = GateRow {
                        id: gate_id.clone(),
                        run_id: run_id.to_owned(),
                        step_id: ev.step_id.clone(),
                        attempt_id: ev.attempt_id.clone(),
                        name: name.clone(),
                        status: *status,
                        reason: reason.clone(),
                        decided_by: Some(ev.actor.clone()),
                        created_at: ts.to_owned(),
                        decided_at: Some(ts.to_owned()),
                    };
                    self.add_gate(kind, run_id, ev, row)?;
                }
            }
            EventBody::PolicyDecided { .. }
            | EventBody::NetworkConnection { .. }
            | EventBody::SupervisorFailure { .. }
            | EventBody::AuditDenied { .. }
            | EventBody::TokenCreated { .. }
            | EventBody::TokenRevoked { .. } => {}
        }
        Ok(())
    }

    fn add_gate(
        &mut self,
        kind: &'static str,
        run_id: &str,
        ev: &Event,
        row: GateRow,
    ) -> Result<(), StoreError> {
        let node = self.node(ev.step_id.as_deref(), ev.attempt_id.as_deref());
        let id = row.id.clone();
        let gates = Self::gates_at(self.tree(kind, run_id)?, node);
        gates.push(row);
        let at = gates.len() - 1;
        self.gate_at.insert(id, (node, at));
        Ok(())
    }
}

/// The run-level part of the fold: how `body` changes the run's status.
fn run_status(run: &mut RunRow, body: &EventBody, ts: &str) {
    match body {
        EventBody::RunStarted {} => run.status = RunStatus::Running,
        EventBody::RunCompleted { status, reason } => {
            run.status = *status;
            run.reason.clone_from(reason);
            run.finished_at = Some(ts.to_owned());
        }
        // A step resuming after approval resumes its run.
        EventBody::StepStarted { .. } if run.status == RunStatus::AwaitingApproval => {
            run.status = RunStatus::Running;
        }
        EventBody::StepAwaitingApproval { .. } => run.status = RunStatus::AwaitingApproval,
        _ => {}
    }
}

/// The kinds [`run_row`] reads: the run's creation and every event changing its status.
pub(crate) const RUN_ROW_KINDS: &str =
    "'run.created', 'run.started', 'run.completed', 'step.started', 'step.awaiting_approval'";

/// The run row alone, from the run's [`RUN_ROW_KINDS`] events in seq order, dated by its last
/// event's `updated_at` (listing runs needs no step or attempt).
pub(crate) fn run_row(events: &[Event], updated_at: String) -> Option<RunRow> {
    let mut events = events.iter();
    let mut run = created_run(events.next()?)?;
    run.updated_at = updated_at;
    for ev in events {
        run_status(&mut run, &ev.body, &ev.ts);
    }
    Some(run)
}

/// The run a `run.created` event creates, `pending`.
fn created_run(ev: &Event) -> Option<RunRow> {
    let EventBody::RunCreated {
        name,
        workspace,
        executor,
        policy,
        steps: _,
    } = &ev.body
    else {
        return None;
    };
    Some(RunRow {
        id: ev.run_id.clone()?,
        name: name.clone(),
        workspace: workspace.clone(),
        executor: executor.clone(),
        policy: policy.clone(),
        status: RunStatus::Pending,
        reason: None,
        created_at: ev.ts.clone(),
        updated_at: ev.ts.clone(),
        finished_at: None,
        actor: ev.actor.clone(),
    })
}

/// The artifact an `artifact.recorded` event records.
pub(crate) fn artifact_row(ev: &Event) -> Option<ArtifactRow> {
    let EventBody::ArtifactRecorded {
        artifact_id,
        kind,
        name,
        sha256,
        bytes,
    } = &ev.body
    else {
        return None;
    };
    Some(ArtifactRow {
        id: artifact_id.clone(),
        run_id: ev.run_id.clone(),
        step_id: ev.step_id.clone(),
        attempt_id: ev.attempt_id.clone(),
        kind: *kind,
        name: name.clone(),
        sha256: sha256.clone(),
        bytes: *bytes,
        created_at: ev.ts.clone(),
    })
}

/// Fold the events of one run, in seq order.
pub(crate) fn fold_run(
    events: impl IntoIterator<Item = Event>,
) -> Result<Option<RunTree>, StoreError> {
    let mut fold = Fold::new();
    for ev in events {
        fold.apply(&ev)?;
    }
    Ok(fold.finish())
}
