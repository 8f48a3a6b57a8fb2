//! Applying one event to the projection tables. The same function serves live appends and
//! rebuilds, which is what makes "projections derive from events alone" checkable.

use rusqlite::{CachedStatement, Connection, params};

use crate::error::StoreError;
use crate::model::{AttemptStatus, Event, EventBody, GateStatus, RunStatus};

/// Which copy of the projection tables to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// The live tables (`main` schema).
    Live,
    /// The rebuild copy (`scratch` schema, in memory).
    Scratch,
}

/// A SQL statement whose `[table]` names are qualified with the schema of `target`, as a
/// `&'static str` (the key of the prepared-statement cache, so each target gets its own
/// cached statements for free).
macro_rules! on {
    ($target:expr; $($sql:literal $([$table:ident])?)+) => {
        match $target {
            Target::Live => concat!($($sql, $("main.", stringify!($table),)?)+),
            Target::Scratch => concat!($($sql, $("scratch.", stringify!($table),)?)+),
        }
    };
}

/// The statements of one transaction, each taken from the connection's cache once.
///
/// `prepare_cached` trims and hashes the SQL text on every call and files the statement back
/// on every drop; in a batch of a thousand events that bookkeeping was about 5% of the append.
/// Statements are keyed by the address of their `&'static str`, and go back to the
/// connection's cache when this is dropped (before the transaction ends).
pub(crate) struct Statements<'c> {
    conn: &'c Connection,
    held: Vec<(&'static str, CachedStatement<'c>)>,
}

impl<'c> Statements<'c> {
    pub(crate) fn new(conn: &'c Connection) -> Statements<'c> {
        Statements {
            conn,
            held: Vec::new(),
        }
    }

    /// The prepared statement for `sql`.
    pub(crate) fn get(
        &mut self,
        sql: &'static str,
    ) -> Result<&mut CachedStatement<'c>, StoreError> {
        let at = match self.held.iter().position(|(s, _)| std::ptr::eq(*s, sql)) {
            Some(at) => at,
            None => {
                self.held.push((sql, self.conn.prepare_cached(sql)?));
                self.held.len() - 1
            }
        };
        Ok(&mut self.held[at].1)
    }
}

/// Apply `ev` to the projection tables of `target` (all but `runs.updated_at`, see
/// [`touch_run`]).
///
/// Fails when the event lacks an id its kind needs or refers to a node that does not exist;
/// the caller's transaction then rolls back and nothing is appended.
pub(crate) fn project(
    stmts: &mut Statements<'_>,
    target: Target,
    ev: &Event,
) -> Result<(), StoreError> {
    let kind = ev.body.kind();
    let need = |id: &Option<String>, field: &'static str| {
        id.clone().ok_or(StoreError::MissingId { kind, field })
    };
    let exactly_one = |changed: usize, node: &'static str, id: &str| {
        if changed == 1 {
            Ok(())
        } else {
            Err(StoreError::UnknownNode {
                kind,
                node,
                id: id.to_owned(),
            })
        }
    };
    let seq = ev.seq;
    let ts = ev.ts.as_str();

    match &ev.body {
        EventBody::RunCreated {
            name,
            workspace,
            executor,
            policy,
            steps: _,
        } => {
            let run_id = need(&ev.run_id, "run id")?;
            stmts.get(on!(target; "INSERT INTO " [runs] " (id, seq, name, workspace, executor, policy, status, reason, created_at,
                   updated_at, finished_at, actor)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL, ?8, ?8, NULL, ?9)"))?
            .execute(params![
                run_id,
                seq,
                name,
                workspace,
                executor,
                policy,
                RunStatus::Pending,
                ts,
                ev.actor
            ])?;
        }
        EventBody::RunStarted {} => {
            let run_id = need(&ev.run_id, "run id")?;
            let n = stmts
                .get(on!(target; "UPDATE " [runs] " SET status = ?2 WHERE id = ?1"))?
                .execute(params![run_id, RunStatus::Running])?;
            exactly_one(n, "run", &run_id)?;
        }
        EventBody::RunCompleted { status, reason } => {
            let run_id = need(&ev.run_id, "run id")?;
            let n = stmts
                .get(on!(target; "UPDATE " [runs] " SET status = ?2, reason = ?3, finished_at = ?4 WHERE id = ?1"))?
                .execute(params![run_id, status, reason, ts])?;
            exactly_one(n, "run", &run_id)?;
        }
        EventBody::StepCreated {
            index,
            goal,
            executor,
            max_attempts,
        } => {
            let run_id = need(&ev.run_id, "run id")?;
            let step_id = need(&ev.step_id, "step id")?;
            stmts.get(on!(target; "INSERT INTO " [steps] " (id, seq, run_id, idx, goal, executor, max_attempts, status, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"))?
            .execute(params![
                step_id,
                seq,
                run_id,
                index,
                goal,
                executor,
                max_attempts,
                RunStatus::Pending,
                ts
            ])?;
        }
        EventBody::StepStarted { base, base_commit } => {
            let step_id = need(&ev.step_id, "step id")?;
            let n = stmts
                .get(
                    on!(target; "UPDATE " [steps] " SET status = ?2, base = ?3, base_commit = ?4,
                          started_at = COALESCE(started_at, ?5)
                      WHERE id = ?1"),
                )?
                .execute(params![step_id, RunStatus::Running, base, base_commit, ts])?;
            exactly_one(n, "step", &step_id)?;
            // A step resuming after approval resumes its run.
            if let Some(run_id) = &ev.run_id {
                stmts.get(
                    on!(target; "UPDATE " [runs] " SET status = ?2 WHERE id = ?1 AND status = ?3"),
                )?
                .execute(params![
                    run_id,
                    RunStatus::Running,
                    RunStatus::AwaitingApproval
                ])?;
            }
        }
        EventBody::StepAwaitingApproval { gate: _, reason: _ } => {
            let step_id = need(&ev.step_id, "step id")?;
            let run_id = need(&ev.run_id, "run id")?;
            let n = stmts
                .get(on!(target; "UPDATE " [steps] " SET status = ?2 WHERE id = ?1"))?
                .execute(params![step_id, RunStatus::AwaitingApproval])?;
            exactly_one(n, "step", &step_id)?;
            let n = stmts
                .get(on!(target; "UPDATE " [runs] " SET status = ?2 WHERE id = ?1"))?
                .execute(params![run_id, RunStatus::AwaitingApproval])?;
            exactly_one(n, "run", &run_id)?;
        }
        EventBody::StepCompleted {
            status,
            head_commit,
            attempts: _,
            reason,
        } => {
            let step_id = need(&ev.step_id, "step id")?;
            let n = stmts
                .get(on!(target; "UPDATE " [steps] " SET status = ?2, head_commit = ?3, reason = ?4, finished_at = ?5
                      WHERE id = ?1"))?
                .execute(params![step_id, status, head_commit, reason, ts])?;
            exactly_one(n, "step", &step_id)?;
        }
        EventBody::AttemptStarted {
            number,
            executor,
            branch,
            worktree,
            base_commit,
        } => {
            let run_id = need(&ev.run_id, "run id")?;
            let step_id = need(&ev.step_id, "step id")?;
            let attempt_id = need(&ev.attempt_id, "attempt id")?;
            stmts.get(on!(target; "INSERT INTO " [attempts] " (id, seq, run_id, step_id, number, executor, status, branch, worktree,
                   base_commit, files_changed, insertions, deletions, started_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, '[]', 0, 0, ?11)"))?
            .execute(params![
                attempt_id,
                seq,
                run_id,
                step_id,
                number,
                executor,
                AttemptStatus::Starting,
                branch,
                worktree,
                base_commit,
                ts
            ])?;
        }
        EventBody::AttemptRunning { pid: _ } => {
            set_attempt_status(stmts, target, ev, AttemptStatus::Running)?;
        }
        EventBody::AttemptValidating {} => {
            set_attempt_status(stmts, target, ev, AttemptStatus::Validating)?;
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
            let attempt_id = need(&ev.attempt_id, "attempt id")?;
            let files = serde_json::to_string(files_changed)
                .map_err(|source| StoreError::Encode { kind, source })?;
            let usage = usage
                .as_ref()
                .map(serde_json::to_string)
                .transpose()
                .map_err(|source| StoreError::Encode { kind, source })?;
            let n = stmts
                .get(on!(target; "UPDATE " [attempts] " SET status = ?2, exit_code = ?3, signal = ?4, reason = ?5, commit_sha = ?6,
                          files_changed = ?7, insertions = ?8, deletions = ?9, duration_ms = ?10,
                          summary = ?11, usage = ?12, finished_at = ?13
                      WHERE id = ?1"))?
                .execute(params![
                    attempt_id,
                    status,
                    exit.as_ref().and_then(|e| e.code),
                    exit.as_ref().and_then(|e| e.signal),
                    reason,
                    commit,
                    files,
                    insertions,
                    deletions,
                    duration_ms,
                    summary,
                    usage,
                    ts
                ])?;
            exactly_one(n, "attempt", &attempt_id)?;
        }
        EventBody::ArtifactRecorded {
            artifact_id,
            kind: artifact_kind,
            name,
            sha256,
            bytes,
        } => {
            stmts.get(on!(target; "INSERT INTO " [artifacts] " (id, seq, run_id, step_id, attempt_id, kind, name, sha256, bytes, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"))?
            .execute(params![
                artifact_id,
                seq,
                ev.run_id,
                ev.step_id,
                ev.attempt_id,
                artifact_kind,
                name,
                sha256,
                bytes,
                ts
            ])?;
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
            let attempt_id = need(&ev.attempt_id, "attempt id")?;
            // The run id comes from the attempt, so a validation always sits in its run's tree.
            let n = stmts
                .get(on!(target; "INSERT INTO " [validations] " (id, seq, run_id, attempt_id, name, command, status, exit_code,
                       duration_ms, output_artifact, created_at)
                     SELECT ?1, ?2, a.run_id, a.id, ?4, ?5, ?6, ?7, ?8, ?9, ?10
                     FROM " [attempts] " AS a WHERE a.id = ?3"))?
                .execute(params![
                    validation_id,
                    seq,
                    attempt_id,
                    name,
                    command,
                    status,
                    exit_code,
                    duration_ms,
                    output_artifact,
                    ts
                ])?;
            exactly_one(n, "attempt", &attempt_id)?;
        }
        EventBody::GateOpened {
            gate_id,
            name,
            reason,
        } => {
            let run_id = need(&ev.run_id, "run id")?;
            stmts.get(on!(target; "INSERT INTO " [gates] " (id, seq, run_id, step_id, attempt_id, name, status, reason, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"))?
            .execute(params![
                gate_id,
                seq,
                run_id,
                ev.step_id,
                ev.attempt_id,
                name,
                GateStatus::Pending,
                reason,
                ts
            ])?;
        }
        EventBody::GateDecided {
            gate_id,
            name,
            status,
            reason,
        } => {
            let run_id = need(&ev.run_id, "run id")?;
            // A gate decided without being opened first (an automatic gate) is created here.
            stmts.get(on!(target; "INSERT INTO " [gates] " (id, seq, run_id, step_id, attempt_id, name, status, reason, decided_by,
                   created_at, decided_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)
                 ON CONFLICT (id) DO UPDATE SET
                     status = excluded.status,
                     reason = COALESCE(excluded.reason, reason),
                     decided_by = excluded.decided_by,
                     decided_at = excluded.decided_at"))?
            .execute(params![
                gate_id,
                seq,
                run_id,
                ev.step_id,
                ev.attempt_id,
                name,
                status,
                reason,
                ev.actor,
                ts
            ])?;
        }
        EventBody::TokenCreated {
            token_id,
            name,
            scopes,
            sha256,
        } => {
            let scopes = serde_json::to_string(scopes)
                .map_err(|source| StoreError::Encode { kind, source })?;
            stmts.get(on!(target; "INSERT INTO " [tokens] " (id, seq, name, sha256, scopes, created_at, created_by, revoked_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL)"))?
            .execute(params![token_id, seq, name, sha256, scopes, ts, ev.actor])?;
        }
        EventBody::TokenRevoked { token_id, name: _ } => {
            let n = stmts
                .get(on!(target; "UPDATE " [tokens] " SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL"))?
                .execute(params![token_id, ts])?;
            exactly_one(n, "token", token_id)?;
        }
        EventBody::RunOpened {} => {
            let run_id = need(&ev.run_id, "run id")?;
            let n = stmts
                .get(on!(target; "SELECT COUNT(*) FROM " [runs] " WHERE id = ?1"))?
                .query_row([&run_id], |r| r.get::<_, usize>(0))?;
            exactly_one(n, "run", &run_id)?;
        }
        EventBody::PolicyDecided { .. }
        | EventBody::NetworkConnection { .. }
        | EventBody::SupervisorFailure { .. }
        | EventBody::AuditDenied { .. } => {}
    }

    Ok(())
}

/// Stamp `runs.updated_at` with the time of the latest event carrying the run's id.
///
/// Not part of [`project`] so a batch stamps each run once instead of once per event; callers
/// apply it after projecting (live: once per transaction; rebuild: once at the end of the
/// replay), which yields the same value either way.
pub(crate) fn touch_run(
    stmts: &mut Statements<'_>,
    target: Target,
    run_id: &str,
    ts: &str,
) -> Result<(), StoreError> {
    stmts
        .get(on!(target; "UPDATE " [runs] " SET updated_at = ?2 WHERE id = ?1"))?
        .execute(params![run_id, ts])?;
    Ok(())
}

fn set_attempt_status(
    stmts: &mut Statements<'_>,
    target: Target,
    ev: &Event,
    status: AttemptStatus,
) -> Result<(), StoreError> {
    let kind = ev.body.kind();
    let attempt_id = ev.attempt_id.as_deref().ok_or(StoreError::MissingId {
        kind,
        field: "attempt id",
    })?;
    let n = stmts
        .get(on!(target; "UPDATE " [attempts] " SET status = ?2 WHERE id = ?1"))?
        .execute(params![attempt_id, status])?;
    if n == 1 {
        Ok(())
    } else {
        Err(StoreError::UnknownNode {
            kind,
            node: "attempt",
            id: attempt_id.to_owned(),
        })
    }
}
