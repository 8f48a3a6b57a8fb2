//! Reading the record: events, and the run tree folded from them (`fold.rs`).
//!
//! Runs are found through the `events_run` index. A node named by its id alone (a step, an
//! attempt, an artifact, a gate) is found from the time in its id: ids are ULIDs made just
//! before the event that creates the node, and event timestamps never go backwards along the
//! chain, so the event lies shortly after the first one stamped at or after that time
//! (`locate`). A full scan remains for ids that are not found there.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use rusqlite::{Connection, OptionalExtension, Params, Statement, params};

use crate::chain::ts_of_millis;
use crate::error::StoreError;
use crate::fold::{RUN_ROW_KINDS, artifact_row, fold_run, run_row};
use crate::model::{
    ArtifactRow, AttemptRow, Event, GateRow, GateStatus, RunFilter, RunRow, RunTree, StepRow,
};
use crate::rows::{RawEvent, event_cols};
use crate::store::{Store, lock};

/// How many candidates an ambiguous-prefix error lists.
const AMBIGUOUS_SHOWN: usize = 5;

/// How far before the time in its id a node's creating event is looked for first: the clock
/// may have been stepped back between making the id and appending (the scan falls back to the
/// whole log anyway).
const LOCATE_SLACK_MS: u64 = 60_000;

impl Store {
    /// Seq of the last event (0 when the log is empty).
    pub fn last_seq(&self) -> Result<u64, StoreError> {
        let conn = lock(&self.reader);
        let seq = conn
            .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM main.events")?
            .query_row([], |r| r.get(0))?;
        Ok(seq)
    }

    /// Up to `limit` events with seq greater than `after_seq`, in order.
    pub fn events_since(&self, after_seq: u64, limit: u32) -> Result<Vec<Event>, StoreError> {
        let conn = lock(&self.reader);
        let mut stmt = conn.prepare_cached(concat!(
            "SELECT ",
            event_cols!(),
            " FROM main.events AS e WHERE e.seq > ?1 ORDER BY e.seq LIMIT ?2"
        ))?;
        decoded(&mut stmt, params![after_seq, limit])
    }

    /// All events of one run, in order.
    pub fn events_for_run(&self, run_id: &str) -> Result<Vec<Event>, StoreError> {
        run_events(&lock(&self.reader), run_id)
    }

    /// Runs matching `filter` (exact name, status), newest first.
    pub fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRow>, StoreError> {
        let mut conn = lock(&self.reader);
        let tx = conn.transaction()?;
        let before = match &filter.before {
            None => None,
            // Runs created before one that does not exist: none.
            Some(id) => match created_seq(&tx, id)? {
                Some(seq) => Some(seq),
                None => return Ok(Vec::new()),
            },
        };
        let limit = filter.limit.map_or(usize::MAX, |l| l as usize);
        let mut runs = Vec::new();
        let mut stmt = tx.prepare_cached(
            "SELECT run_id FROM main.events
             WHERE kind = 'run.created' AND (?1 IS NULL OR seq < ?1) AND run_id IS NOT NULL
             ORDER BY seq DESC",
        )?;
        let mut ids = stmt.query([before])?;
        while runs.len() < limit {
            let Some(row) = ids.next()? else { break };
            let id: String = row.get(0)?;
            let Some(run) = run_of(&tx, &id)? else {
                continue;
            };
            if filter.status.is_some_and(|s| s != run.status)
                || filter.name.as_ref().is_some_and(|n| *n != run.name)
            {
                continue;
            }
            runs.push(run);
        }
        Ok(runs)
    }

    /// The whole tree of one run: steps by index, attempts by number, everything else by
    /// creation. `None` if there is no such run.
    pub fn run_tree(&self, run_id: &str) -> Result<Option<RunTree>, StoreError> {
        tree_of(&lock(&self.reader), run_id)
    }

    /// The one run whose id is `prefix` or starts with it (ASCII case-insensitive).
    pub fn resolve_run_id(&self, prefix: &str) -> Result<String, StoreError> {
        // An empty prefix would match whatever single run exists: never guess.
        if prefix.is_empty() {
            return Err(StoreError::RunNotFound {
                prefix: String::new(),
            });
        }
        let mut conn = lock(&self.reader);
        let tx = conn.transaction()?;
        if created_seq(&tx, prefix)?.is_some() {
            return Ok(prefix.to_owned());
        }
        // The index orders ids bytewise: look up the prefix as given and in either case.
        let mut variants = vec![
            prefix.to_owned(),
            prefix.to_ascii_uppercase(),
            prefix.to_ascii_lowercase(),
        ];
        variants.sort();
        variants.dedup();
        let mut candidates: Vec<(u64, String)> = Vec::new();
        let mut stmt = tx.prepare_cached(
            "SELECT DISTINCT run_id FROM main.events WHERE run_id >= ?1 AND run_id < ?2",
        )?;
        for variant in variants {
            // Every id starting with the prefix sorts below the prefix followed by U+10FFFF.
            let end = format!("{variant}\u{10FFFF}");
            let mut ids = stmt.query(params![variant, end])?;
            while let Some(row) = ids.next()? {
                let id: String = row.get(0)?;
                if candidates.iter().any(|(_, c)| *c == id) {
                    continue;
                }
                if let Some(seq) = created_seq(&tx, &id)? {
                    candidates.push((seq, id));
                }
            }
        }
        // Newest first.
        candidates.sort_by_key(|c| std::cmp::Reverse(c.0));
        let mut candidates: Vec<String> = candidates.into_iter().map(|(_, id)| id).collect();
        match candidates.len() {
            0 => Err(StoreError::RunNotFound {
                prefix: prefix.to_owned(),
            }),
            1 => Ok(candidates.remove(0)),
            _ => {
                candidates.truncate(AMBIGUOUS_SHOWN);
                Err(StoreError::AmbiguousRunId {
                    prefix: prefix.to_owned(),
                    candidates,
                })
            }
        }
    }

    /// One step by id.
    pub fn step(&self, step_id: &str) -> Result<Option<StepRow>, StoreError> {
        let tree = located_tree(&lock(&self.reader), Creates::Step, step_id)?;
        Ok(tree.and_then(|t| {
            t.steps
                .into_iter()
                .map(|s| s.step)
                .find(|s| s.id == step_id)
        }))
    }

    /// One attempt by id.
    pub fn attempt(&self, attempt_id: &str) -> Result<Option<AttemptRow>, StoreError> {
        let tree = located_tree(&lock(&self.reader), Creates::Attempt, attempt_id)?;
        Ok(tree.and_then(|t| {
            t.steps
                .into_iter()
                .flat_map(|s| s.attempts)
                .map(|a| a.attempt)
                .find(|a| a.id == attempt_id)
        }))
    }

    /// One artifact by id.
    pub fn artifact(&self, artifact_id: &str) -> Result<Option<ArtifactRow>, StoreError> {
        let conn = lock(&self.reader);
        Ok(locate(&conn, Creates::Artifact, artifact_id)?.and_then(|ev| artifact_row(&ev)))
    }

    /// One gate by id.
    pub fn gate(&self, gate_id: &str) -> Result<Option<GateRow>, StoreError> {
        let tree = located_tree(&lock(&self.reader), Creates::Gate, gate_id)?;
        Ok(tree.and_then(|t| all_gates(t).into_iter().find(|g| g.id == gate_id)))
    }

    /// Gates, optionally of one run and/or in one status, oldest first.
    pub fn gates(
        &self,
        run_id: Option<&str>,
        status: Option<GateStatus>,
    ) -> Result<Vec<GateRow>, StoreError> {
        let mut conn = lock(&self.reader);
        let tx = conn.transaction()?;
        // Gates in the order they were created, and the runs holding them.
        let mut order: Vec<String> = Vec::new();
        let mut seen = HashSet::new();
        let mut runs: HashSet<String> = HashSet::new();
        {
            let mut stmt = tx.prepare_cached(
                "SELECT run_id, json_extract(payload, '$.gate_id') FROM main.events
                 WHERE (kind = 'gate.opened' OR kind = 'gate.decided')
                   AND (?1 IS NULL OR run_id = ?1)
                 ORDER BY seq",
            )?;
            let mut rows = stmt.query([run_id])?;
            while let Some(row) = rows.next()? {
                let (run, gate): (Option<String>, Option<String>) = (row.get(0)?, row.get(1)?);
                let (Some(run), Some(gate)) = (run, gate) else {
                    continue;
                };
                if seen.insert(gate.clone()) {
                    order.push(gate);
                }
                runs.insert(run);
            }
        }
        let mut rows: HashMap<String, GateRow> = HashMap::new();
        for run in runs {
            if let Some(tree) = tree_of(&tx, &run)? {
                rows.extend(all_gates(tree).into_iter().map(|g| (g.id.clone(), g)));
            }
        }
        Ok(order
            .into_iter()
            .filter_map(|id| rows.remove(&id))
            .filter(|g| status.is_none_or(|s| g.status == s))
            .collect())
    }

    /// Attempts not in a terminal status (what a restarted daemon must interrupt or resume),
    /// oldest first.
    pub fn unfinished_attempts(&self) -> Result<Vec<AttemptRow>, StoreError> {
        let mut conn = lock(&self.reader);
        let tx = conn.transaction()?;
        let open = open_nodes(&tx, "attempt.started", "attempt.completed", "attempt_id")?;
        let mut trees: HashMap<String, Option<RunTree>> = HashMap::new();
        let mut attempts = Vec::new();
        for (run, attempt_id) in open {
            let tree = match trees.entry(run) {
                Entry::Occupied(tree) => tree.into_mut(),
                Entry::Vacant(slot) => {
                    let tree = tree_of(&tx, slot.key())?;
                    slot.insert(tree)
                }
            };
            let found = tree
                .iter()
                .flat_map(RunTree::unfinished_attempts)
                .find(|a| a.id == attempt_id);
            attempts.extend(found.cloned());
        }
        Ok(attempts)
    }

    /// Runs not in a terminal status, oldest first.
    pub fn unfinished_runs(&self) -> Result<Vec<RunRow>, StoreError> {
        let mut conn = lock(&self.reader);
        let tx = conn.transaction()?;
        let open = open_nodes(&tx, "run.created", "run.completed", "run_id")?;
        let mut runs = Vec::new();
        for (run, _) in open {
            runs.extend(run_of(&tx, &run)?.filter(|r| !r.status.is_terminal()));
        }
        Ok(runs)
    }
}

/// The events of one run, in order.
fn run_events(conn: &Connection, run_id: &str) -> Result<Vec<Event>, StoreError> {
    let mut stmt = conn.prepare_cached(concat!(
        "SELECT ",
        event_cols!(),
        " FROM main.events AS e WHERE e.run_id = ?1 ORDER BY e.seq"
    ))?;
    decoded(&mut stmt, [run_id])
}

/// The events a statement selecting [`event_cols!`] answers, decoded.
fn decoded(stmt: &mut Statement<'_>, params: impl Params) -> Result<Vec<Event>, StoreError> {
    let raw = stmt
        .query_map(params, RawEvent::from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    raw.into_iter().map(RawEvent::decode).collect()
}

/// The tree of one run, folded from its events.
fn tree_of(conn: &Connection, run_id: &str) -> Result<Option<RunTree>, StoreError> {
    let events = run_events(conn, run_id)?;
    if events.is_empty() {
        return Ok(None);
    }
    fold_run(events)
}

/// The tree of the run holding the node `id`, found by the event creating it.
fn located_tree(
    conn: &Connection,
    creates: Creates,
    id: &str,
) -> Result<Option<RunTree>, StoreError> {
    match locate(conn, creates, id)?.and_then(|ev| ev.run_id) {
        Some(run_id) => tree_of(conn, &run_id),
        None => Ok(None),
    }
}

/// The run row alone, from the events that make it.
fn run_of(conn: &Connection, run_id: &str) -> Result<Option<RunRow>, StoreError> {
    let sql = format!(
        concat!(
            "SELECT ",
            event_cols!(),
            " FROM main.events AS e WHERE e.run_id = ?1 AND e.kind IN ({}) ORDER BY e.seq"
        ),
        RUN_ROW_KINDS
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let events = decoded(&mut stmt, [run_id])?;
    let updated_at: Option<String> = conn
        .prepare_cached("SELECT ts FROM main.events WHERE run_id = ?1 ORDER BY seq DESC LIMIT 1")?
        .query_row([run_id], |r| r.get(0))
        .optional()?;
    Ok(updated_at.and_then(|ts| run_row(&events, ts)))
}

/// The seq of the run's `run.created`, if it exists.
fn created_seq(conn: &Connection, run_id: &str) -> Result<Option<u64>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT seq FROM main.events WHERE run_id = ?1 AND kind = 'run.created' LIMIT 1",
        )?
        .query_row([run_id], |r| r.get(0))
        .optional()?)
}

/// (run, id) of nodes with an `opened` event and no `closed` one, oldest first: one pass over
/// the log (what a starting daemon reads once).
fn open_nodes(
    conn: &Connection,
    opened: &str,
    closed: &str,
    id_column: &'static str,
) -> Result<Vec<(String, String)>, StoreError> {
    let sql = format!(
        "SELECT run_id, {id_column}, kind = ?1 FROM main.events
         WHERE (kind = ?1 OR kind = ?2) AND run_id IS NOT NULL AND {id_column} IS NOT NULL
         ORDER BY seq"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query([opened, closed])?;
    let mut open: Vec<(String, String)> = Vec::new();
    let mut closed_ids: HashSet<String> = HashSet::new();
    while let Some(row) = rows.next()? {
        let (run, id, is_open): (String, String, bool) = (row.get(0)?, row.get(1)?, row.get(2)?);
        if is_open {
            open.push((run, id));
        } else {
            closed_ids.insert(id);
        }
    }
    open.retain(|(_, id)| !closed_ids.contains(id));
    Ok(open)
}

/// Every gate of a tree (run, step and attempt gates).
fn all_gates(tree: RunTree) -> Vec<GateRow> {
    let mut gates = tree.gates;
    for step in tree.steps {
        gates.extend(step.gates);
        for attempt in step.attempts {
            gates.extend(attempt.gates);
        }
    }
    gates
}

/// The kinds of node [`locate`] finds, by the event creating them.
#[derive(Debug, Clone, Copy)]
enum Creates {
    Step,
    Attempt,
    Artifact,
    Gate,
}

impl Creates {
    /// The condition on an event (`?2` bound to [`Creates::needle`]) that it may create the
    /// node; [`Creates::is`] then checks the decoded event.
    fn condition(self) -> &'static str {
        match self {
            Creates::Step => "kind = 'step.created' AND step_id = ?2",
            Creates::Attempt => "kind = 'attempt.started' AND attempt_id = ?2",
            Creates::Artifact => "kind = 'artifact.recorded' AND instr(payload, ?2) > 0",
            Creates::Gate => {
                "(kind = 'gate.opened' OR kind = 'gate.decided') AND instr(payload, ?2) > 0"
            }
        }
    }

    fn needle(self, id: &str) -> String {
        // The payload is serde's JSON: the field as serde writes it.
        let quoted = serde_json::to_string(id).unwrap_or_default();
        match self {
            Creates::Step | Creates::Attempt => id.to_owned(),
            Creates::Artifact => format!(r#""artifact_id":{quoted}"#),
            Creates::Gate => format!(r#""gate_id":{quoted}"#),
        }
    }

    fn is(self, ev: &Event, id: &str) -> bool {
        use crate::model::EventBody as B;
        match (self, &ev.body) {
            (Creates::Step, B::StepCreated { .. }) => ev.step_id.as_deref() == Some(id),
            (Creates::Attempt, B::AttemptStarted { .. }) => ev.attempt_id.as_deref() == Some(id),
            (Creates::Artifact, B::ArtifactRecorded { artifact_id, .. }) => artifact_id == id,
            (Creates::Gate, B::GateOpened { gate_id, .. } | B::GateDecided { gate_id, .. }) => {
                gate_id == id
            }
            _ => false,
        }
    }
}

/// The first event creating the node `id`: looked for from the time in the id on, then in the
/// rest of the log.
fn locate(conn: &Connection, creates: Creates, id: &str) -> Result<Option<Event>, StoreError> {
    let needle = creates.needle(id);
    let start = match ulid::Ulid::from_string(id)
        .ok()
        .and_then(|u| ts_of_millis(u.timestamp_ms().saturating_sub(LOCATE_SLACK_MS)))
    {
        Some(ts) => first_seq_at(conn, &ts)?,
        None => 1,
    };
    let forward = format!(
        concat!(
            "SELECT ",
            event_cols!(),
            " FROM main.events AS e WHERE e.seq >= ?1 AND {} ORDER BY e.seq"
        ),
        creates.condition()
    );
    let backward = format!(
        concat!(
            "SELECT ",
            event_cols!(),
            " FROM main.events AS e WHERE e.seq < ?1 AND {} ORDER BY e.seq"
        ),
        creates.condition()
    );
    for sql in [forward, backward] {
        let mut stmt = conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(params![start, needle])?;
        while let Some(row) = rows.next()? {
            let ev = RawEvent::from_row(row)?.decode()?;
            if creates.is(&ev, id) {
                return Ok(Some(ev));
            }
        }
    }
    Ok(None)
}

/// The first seq stamped at or after `ts` (one past the last if none): a binary search by
/// rowid, as timestamps never go backwards along the chain. A missing seq (a damaged log,
/// which `verify` reports) makes it start from the beginning.
fn first_seq_at(conn: &Connection, ts: &str) -> Result<u64, StoreError> {
    let last: u64 = conn
        .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM main.events")?
        .query_row([], |r| r.get(0))?;
    let mut stmt = conn.prepare_cached("SELECT ts FROM main.events WHERE seq = ?1")?;
    let (mut lo, mut hi) = (1u64, last + 1);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let Some(at): Option<String> = stmt.query_row([mid], |r| r.get(0)).optional()? else {
            return Ok(1);
        };
        if at.as_str() < ts {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}
