//! Column lists and row mappers shared by the queries.

use rusqlite::Row;
use rusqlite::types::Type;

use crate::chain::decode_body;
use crate::error::StoreError;
use crate::model::{ArtifactRow, AttemptRow, Event, GateRow, RunRow, StepRow, ValidationRow};

macro_rules! event_cols {
    () => {
        "seq, ts, run_id, step_id, attempt_id, kind, actor, payload, prev_hash, hash"
    };
}
macro_rules! run_cols {
    () => {
        "id, name, workspace, executor, policy, status, reason, created_at, updated_at,
         finished_at, actor"
    };
}
macro_rules! step_cols {
    () => {
        "id, run_id, idx, goal, executor, max_attempts, status, base, base_commit, head_commit,
         reason, created_at, started_at, finished_at"
    };
}
macro_rules! attempt_cols {
    () => {
        "id, run_id, step_id, number, executor, status, branch, worktree, base_commit,
         commit_sha, exit_code, signal, reason, files_changed, insertions, deletions, summary,
         usage, started_at, finished_at, duration_ms"
    };
}
macro_rules! artifact_cols {
    () => {
        "id, run_id, step_id, attempt_id, kind, name, sha256, bytes, created_at"
    };
}
macro_rules! validation_cols {
    () => {
        "id, attempt_id, name, command, status, exit_code, duration_ms, output_artifact,
         created_at"
    };
}
macro_rules! gate_cols {
    () => {
        "id, run_id, step_id, attempt_id, name, status, reason, decided_by, created_at,
         decided_at"
    };
}
pub(crate) use {
    artifact_cols, attempt_cols, event_cols, gate_cols, run_cols, step_cols, validation_cols,
};

/// An event row before its payload is decoded (decoding errors are ours, not rusqlite's).
#[derive(Debug)]
pub(crate) struct RawEvent {
    pub seq: u64,
    pub ts: String,
    pub run_id: Option<String>,
    pub step_id: Option<String>,
    pub attempt_id: Option<String>,
    pub kind: String,
    pub actor: String,
    pub payload: String,
    pub prev_hash: String,
    pub hash: String,
}

impl RawEvent {
    /// Map a row selected with [`event_cols!`].
    pub(crate) fn from_row(r: &Row<'_>) -> rusqlite::Result<RawEvent> {
        Ok(RawEvent {
            seq: r.get(0)?,
            ts: r.get(1)?,
            run_id: r.get(2)?,
            step_id: r.get(3)?,
            attempt_id: r.get(4)?,
            kind: r.get(5)?,
            actor: r.get(6)?,
            payload: r.get(7)?,
            prev_hash: r.get(8)?,
            hash: r.get(9)?,
        })
    }

    pub(crate) fn decode(self) -> Result<Event, StoreError> {
        let body = decode_body(self.seq, &self.kind, &self.payload)?;
        Ok(Event {
            seq: self.seq,
            ts: self.ts,
            run_id: self.run_id,
            step_id: self.step_id,
            attempt_id: self.attempt_id,
            actor: self.actor,
            body,
            prev_hash: self.prev_hash,
            hash: self.hash,
        })
    }
}

pub(crate) fn run_row(r: &Row<'_>) -> rusqlite::Result<RunRow> {
    Ok(RunRow {
        id: r.get(0)?,
        name: r.get(1)?,
        workspace: r.get(2)?,
        executor: r.get(3)?,
        policy: r.get(4)?,
        status: r.get(5)?,
        reason: r.get(6)?,
        created_at: r.get(7)?,
        updated_at: r.get(8)?,
        finished_at: r.get(9)?,
        actor: r.get(10)?,
    })
}

pub(crate) fn step_row(r: &Row<'_>) -> rusqlite::Result<StepRow> {
    Ok(StepRow {
        id: r.get(0)?,
        run_id: r.get(1)?,
        index: r.get(2)?,
        goal: r.get(3)?,
        executor: r.get(4)?,
        max_attempts: r.get(5)?,
        status: r.get(6)?,
        base: r.get(7)?,
        base_commit: r.get(8)?,
        head_commit: r.get(9)?,
        reason: r.get(10)?,
        created_at: r.get(11)?,
        started_at: r.get(12)?,
        finished_at: r.get(13)?,
    })
}

pub(crate) fn attempt_row(r: &Row<'_>) -> rusqlite::Result<AttemptRow> {
    let files: String = r.get(13)?;
    let usage: Option<String> = r.get(17)?;
    Ok(AttemptRow {
        id: r.get(0)?,
        run_id: r.get(1)?,
        step_id: r.get(2)?,
        number: r.get(3)?,
        executor: r.get(4)?,
        status: r.get(5)?,
        branch: r.get(6)?,
        worktree: r.get(7)?,
        base_commit: r.get(8)?,
        commit: r.get(9)?,
        exit_code: r.get(10)?,
        signal: r.get(11)?,
        reason: r.get(12)?,
        files_changed: json_column(13, &files)?,
        insertions: r.get(14)?,
        deletions: r.get(15)?,
        summary: r.get(16)?,
        usage: usage.map(|u| json_column(17, &u)).transpose()?,
        started_at: r.get(18)?,
        finished_at: r.get(19)?,
        duration_ms: r.get(20)?,
    })
}

pub(crate) fn artifact_row(r: &Row<'_>) -> rusqlite::Result<ArtifactRow> {
    Ok(ArtifactRow {
        id: r.get(0)?,
        run_id: r.get(1)?,
        step_id: r.get(2)?,
        attempt_id: r.get(3)?,
        kind: r.get(4)?,
        name: r.get(5)?,
        sha256: r.get(6)?,
        bytes: r.get(7)?,
        created_at: r.get(8)?,
    })
}

pub(crate) fn validation_row(r: &Row<'_>) -> rusqlite::Result<ValidationRow> {
    Ok(ValidationRow {
        id: r.get(0)?,
        attempt_id: r.get(1)?,
        name: r.get(2)?,
        command: r.get(3)?,
        status: r.get(4)?,
        exit_code: r.get(5)?,
        duration_ms: r.get(6)?,
        output_artifact: r.get(7)?,
        created_at: r.get(8)?,
    })
}

pub(crate) fn gate_row(r: &Row<'_>) -> rusqlite::Result<GateRow> {
    Ok(GateRow {
        id: r.get(0)?,
        run_id: r.get(1)?,
        step_id: r.get(2)?,
        attempt_id: r.get(3)?,
        name: r.get(4)?,
        status: r.get(5)?,
        reason: r.get(6)?,
        decided_by: r.get(7)?,
        created_at: r.get(8)?,
        decided_at: r.get(9)?,
    })
}

fn json_column<T: serde::de::DeserializeOwned>(idx: usize, text: &str) -> rusqlite::Result<T> {
    serde_json::from_str(text)
        .map_err(|err| rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, Box::new(err)))
}
