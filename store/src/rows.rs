//! The event columns and row mapper shared by the queries.

use rusqlite::Row;

use crate::chain::{GENESIS_HASH, decode_body, to_hex};
use crate::error::StoreError;
use crate::model::Event;

/// The columns of an event selected `FROM main.events AS e`: the stored ones, and the
/// previous event's hash (its `prev_hash`, not stored; one rowid seek).
macro_rules! event_cols {
    () => {
        "e.seq, e.ts, e.run_id, e.step_id, e.attempt_id, e.kind, e.actor, e.payload, e.hash,
         (SELECT p.hash FROM main.events AS p WHERE p.seq = e.seq - 1)"
    };
}
pub(crate) use event_cols;

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
    pub hash: Vec<u8>,
    pub prev_hash: Option<Vec<u8>>,
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
            hash: r.get(8)?,
            prev_hash: r.get(9)?,
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
            // The first event's predecessor is the genesis hash.
            prev_hash: self
                .prev_hash
                .map_or_else(|| GENESIS_HASH.to_owned(), |h| to_hex(&h)),
            hash: to_hex(&self.hash),
        })
    }
}
