//! Appends refuse events about nodes that do not exist, and events creating nodes that do.
//!
//! The run tree is folded from events at read time (`fold.rs`), so nothing written per event
//! enforces the tree's shape: this does, before the event is inserted. Nodes are found in a
//! per-store cache of nodes known to exist (the record is append-only, so a node once seen
//! exists forever) and otherwise in the run's events through the `events_run` index: a node
//! made by this store handle costs no read.

use std::collections::HashSet;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension};

use crate::error::StoreError;
use crate::model::{EventBody, NewEvent};

/// Past this many cached nodes the cache starts over (a daemon's lifetime of runs).
const KNOWN_MAX: usize = 200_000;

/// A node of the run tree, by its place: runs by id, steps and attempts within their run.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    Run(String),
    Step(String, String),
    Attempt(String, String),
}

/// A [`Key`] borrowed from the event being checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyRef<'a> {
    Run(&'a str),
    Step(&'a str, &'a str),
    Attempt(&'a str, &'a str),
}

impl KeyRef<'_> {
    fn node(self) -> &'static str {
        match self {
            KeyRef::Run(_) => "run",
            KeyRef::Step(..) => "step",
            KeyRef::Attempt(..) => "attempt",
        }
    }

    fn id(self) -> String {
        match self {
            KeyRef::Run(id) | KeyRef::Step(_, id) | KeyRef::Attempt(_, id) => id.to_owned(),
        }
    }

    fn to_key(self) -> Key {
        match self {
            KeyRef::Run(r) => Key::Run(r.to_owned()),
            KeyRef::Step(r, s) => Key::Step(r.to_owned(), s.to_owned()),
            KeyRef::Attempt(r, a) => Key::Attempt(r.to_owned(), a.to_owned()),
        }
    }
}

impl Key {
    fn borrow(&self) -> KeyRef<'_> {
        match self {
            Key::Run(r) => KeyRef::Run(r),
            Key::Step(r, s) => KeyRef::Step(r, s),
            Key::Attempt(r, a) => KeyRef::Attempt(r, a),
        }
    }
}

/// How many nodes a transaction's checks remember without hashing: events come in runs
/// about the same few nodes (a run, its step, its attempt).
const RECENT: usize = 8;

/// Nodes known to exist in the record (committed), and the runs whose every node is known.
#[derive(Debug, Default)]
pub(crate) struct Known(Mutex<KnownInner>);

#[derive(Debug, Default)]
struct KnownInner {
    nodes: HashSet<Key>,
    /// Runs created through this handle with no other writer appending since: every event of
    /// theirs went through this handle, so `nodes` holds all their steps and attempts.
    owned: HashSet<String>,
    /// The head after this handle's last commit.
    last_seq: Option<u64>,
}

impl Known {
    fn lock(&self) -> std::sync::MutexGuard<'_, KnownInner> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The checks of one write transaction: what it has created or found so far.
#[derive(Debug)]
pub(crate) struct Checks<'k> {
    known: &'k Known,
    seen: HashSet<Key>,
    /// The last nodes checked, newest last (compared without allocating or hashing).
    recent: Vec<Key>,
    /// Runs this transaction created.
    created_runs: Vec<String>,
}

impl<'k> Checks<'k> {
    /// The checks of a transaction that found the chain's head at `head_seq`. Another writer
    /// appended since this handle's last commit unless that commit left the same head: then
    /// no run's nodes are all known any more.
    pub(crate) fn new(known: &'k Known, head_seq: u64) -> Checks<'k> {
        let mut inner = known.lock();
        if inner.last_seq != Some(head_seq) {
            inner.owned.clear();
        }
        Checks {
            known,
            seen: HashSet::new(),
            recent: Vec::with_capacity(RECENT),
            created_runs: Vec::new(),
        }
    }

    /// Hand what the transaction created or found to the handle's memory, once it has
    /// committed; `last_seq` is its head.
    pub(crate) fn committed(self, last_seq: u64) {
        let mut known = self.known.lock();
        if known.nodes.len() + self.seen.len() > KNOWN_MAX {
            known.nodes.clear();
            known.owned.clear();
        }
        known.nodes.extend(self.seen);
        known.owned.extend(self.created_runs);
        known.last_seq = Some(last_seq);
    }

    /// Whether every node of `run` is in this transaction's or the handle's memory.
    fn all_known(&self, run: &str) -> bool {
        self.created_runs.iter().any(|r| r == run) || self.known.lock().owned.contains(run)
    }

    /// Whether this transaction or the handle has seen `key`.
    fn remembered(&self, key: &Key) -> bool {
        self.seen.contains(key) || self.known.lock().nodes.contains(key)
    }

    fn remember(&mut self, key: Key) {
        if self.recent.len() == RECENT {
            self.recent.remove(0);
        }
        self.recent.push(key.clone());
        self.seen.insert(key);
    }

    fn exists(&mut self, conn: &Connection, key: KeyRef<'_>) -> Result<bool, StoreError> {
        if self.recent.iter().rev().any(|k| k.borrow() == key) {
            return Ok(true);
        }
        let owned = key.to_key();
        let found = self.remembered(&owned) || in_record(conn, key)?;
        if found {
            self.remember(owned);
        }
        Ok(found)
    }

    fn need(
        &mut self,
        conn: &Connection,
        kind: &'static str,
        key: KeyRef<'_>,
    ) -> Result<(), StoreError> {
        if self.exists(conn, key)? {
            return Ok(());
        }
        Err(StoreError::UnknownNode {
            kind,
            node: key.node(),
            id: key.id(),
        })
    }

    fn create(
        &mut self,
        conn: &Connection,
        kind: &'static str,
        key: KeyRef<'_>,
    ) -> Result<(), StoreError> {
        let exists = match key {
            // A step or attempt of a run whose nodes are all known: no read.
            KeyRef::Step(run, _) | KeyRef::Attempt(run, _) if self.all_known(run) => {
                self.remembered(&key.to_key())
            }
            _ => self.exists(conn, key)?,
        };
        if exists {
            return Err(StoreError::DuplicateNode {
                kind,
                node: key.node(),
                id: key.id(),
            });
        }
        if let KeyRef::Run(run) = key {
            self.created_runs.push(run.to_owned());
        }
        self.remember(key.to_key());
        Ok(())
    }

    /// Check `event` against the record and this transaction's earlier events.
    pub(crate) fn check<'e>(
        &mut self,
        conn: &Connection,
        event: &'e NewEvent,
    ) -> Result<(), StoreError> {
        let kind = event.body.kind();
        let id = |id: &'e Option<String>, field| {
            id.as_deref().ok_or(StoreError::MissingId { kind, field })
        };
        let run = || id(&event.run_id, "run id");
        let step = || Ok::<_, StoreError>(KeyRef::Step(run()?, id(&event.step_id, "step id")?));
        let attempt = || {
            Ok::<_, StoreError>(KeyRef::Attempt(
                run()?,
                id(&event.attempt_id, "attempt id")?,
            ))
        };
        match &event.body {
            EventBody::RunCreated { .. } => self.create(conn, kind, KeyRef::Run(run()?)),
            EventBody::RunStarted {} | EventBody::RunCompleted { .. } | EventBody::RunOpened {} => {
                self.need(conn, kind, KeyRef::Run(run()?))
            }
            EventBody::StepCreated { .. } => {
                self.need(conn, kind, KeyRef::Run(run()?))?;
                self.create(conn, kind, step()?)
            }
            EventBody::StepStarted { .. }
            | EventBody::StepCompleted { .. }
            | EventBody::StepAwaitingApproval { .. } => self.need(conn, kind, step()?),
            EventBody::AttemptStarted { .. } => {
                self.need(conn, kind, step()?)?;
                self.create(conn, kind, attempt()?)
            }
            EventBody::AttemptRunning { .. }
            | EventBody::AttemptValidating {}
            | EventBody::AttemptCompleted { .. }
            | EventBody::ValidationCompleted { .. } => self.need(conn, kind, attempt()?),
            EventBody::ArtifactRecorded { .. } => {
                // An artifact may belong to no run (nothing records one that way today).
                if event.run_id.is_none() && event.step_id.is_none() && event.attempt_id.is_none() {
                    return Ok(());
                }
                self.need_parents(conn, kind, event)
            }
            EventBody::GateOpened { .. } | EventBody::GateDecided { .. } => {
                run()?;
                self.need_parents(conn, kind, event)
            }
            EventBody::PolicyDecided { .. }
            | EventBody::NetworkConnection { .. }
            | EventBody::SupervisorFailure { .. }
            | EventBody::AuditDenied { .. }
            | EventBody::TokenCreated { .. }
            | EventBody::TokenRevoked { .. } => Ok(()),
        }
    }

    /// The run, and the step and attempt when the event names them.
    fn need_parents(
        &mut self,
        conn: &Connection,
        kind: &'static str,
        event: &NewEvent,
    ) -> Result<(), StoreError> {
        let run = event.run_id.as_deref().ok_or(StoreError::MissingId {
            kind,
            field: "run id",
        })?;
        self.need(conn, kind, KeyRef::Run(run))?;
        if let Some(step) = &event.step_id {
            self.need(conn, kind, KeyRef::Step(run, step))?;
        }
        if let Some(attempt) = &event.attempt_id {
            self.need(conn, kind, KeyRef::Attempt(run, attempt))?;
        }
        Ok(())
    }
}

/// Whether the event creating `key` is in the record (the run's events, through
/// `events_run`).
fn in_record(conn: &Connection, key: KeyRef<'_>) -> Result<bool, StoreError> {
    let (run, kind, step, attempt) = match key {
        KeyRef::Run(run) => (run, "run.created", None, None),
        KeyRef::Step(run, step) => (run, "step.created", Some(step), None),
        KeyRef::Attempt(run, attempt) => (run, "attempt.started", None, Some(attempt)),
    };
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM main.events
             WHERE run_id = ?1 AND kind = ?2
               AND (?3 IS NULL OR step_id = ?3) AND (?4 IS NULL OR attempt_id = ?4)
             LIMIT 1",
        )?
        .query_row(rusqlite::params![run, kind, step, attempt], |_| Ok(()))
        .optional()?
        .is_some())
}
