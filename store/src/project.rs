//! Applying one event to the projection tables (the daemon's API tokens; the run tree is
//! folded from events at read time, `fold.rs`). The same function serves live appends and
//! rebuilds, which is what makes "projections derive from events alone" checkable.

use rusqlite::{CachedStatement, Connection, params};

use crate::error::StoreError;
use crate::model::{Event, EventBody};

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

    /// The connection the statements run on.
    pub(crate) fn conn(&self) -> &'c Connection {
        self.conn
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

/// Apply `ev` to the projection tables of `target`.
///
/// Fails when the event refers to a token that does not exist (or is already revoked); the
/// caller's transaction then rolls back and nothing is appended.
pub(crate) fn project(
    stmts: &mut Statements<'_>,
    target: Target,
    ev: &Event,
) -> Result<(), StoreError> {
    let kind = ev.body.kind();
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
        // The run tree is folded from events when read (`fold.rs`).
        _ => {}
    }

    Ok(())
}
