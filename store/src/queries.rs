//! Reading the record: events and the projected run tree.

use std::collections::HashMap;

use rusqlite::{OptionalExtension, params};

use crate::error::StoreError;
use crate::model::ArtifactRow;
use crate::model::{
    AttemptRow, AttemptTree, Event, GateRow, GateStatus, RunFilter, RunRow, RunTree, StepRow,
    StepTree,
};
use crate::rows::{
    RawEvent, artifact_cols, artifact_row, attempt_cols, attempt_row, event_cols, gate_cols,
    gate_row, run_cols, run_row, step_cols, step_row, validation_cols, validation_row,
};
use crate::store::{Store, lock};

/// How many candidates an ambiguous-prefix error lists.
const AMBIGUOUS_SHOWN: usize = 5;

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
            " FROM main.events WHERE seq > ?1 ORDER BY seq LIMIT ?2"
        ))?;
        let raw = stmt
            .query_map(params![after_seq, limit], RawEvent::from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        raw.into_iter().map(RawEvent::decode).collect()
    }

    /// All events of one run, in order.
    pub fn events_for_run(&self, run_id: &str) -> Result<Vec<Event>, StoreError> {
        let conn = lock(&self.reader);
        let mut stmt = conn.prepare_cached(concat!(
            "SELECT ",
            event_cols!(),
            " FROM main.events WHERE run_id = ?1 ORDER BY seq"
        ))?;
        let raw = stmt
            .query_map([run_id], RawEvent::from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        raw.into_iter().map(RawEvent::decode).collect()
    }

    /// Runs matching `filter` (exact name, status), newest first.
    pub fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRow>, StoreError> {
        let conn = lock(&self.reader);
        let mut stmt = conn.prepare_cached(concat!(
            "SELECT ",
            run_cols!(),
            " FROM main.runs
              WHERE (?1 IS NULL OR status = ?1)
                AND (?2 IS NULL OR name = ?2)
                AND (?3 IS NULL OR seq < (SELECT seq FROM main.runs WHERE id = ?3))
              ORDER BY seq DESC
              LIMIT ?4"
        ))?;
        let limit = filter.limit.map_or(-1, i64::from);
        let rows = stmt
            .query_map(
                params![filter.status, filter.name, filter.before, limit],
                run_row,
            )?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// The whole tree of one run: steps by index, attempts by number, everything else by
    /// creation. `None` if there is no such run.
    pub fn run_tree(&self, run_id: &str) -> Result<Option<RunTree>, StoreError> {
        let mut conn = lock(&self.reader);
        // One read transaction: every table is read from the same snapshot.
        let tx = conn.transaction()?;
        let Some(run) = tx
            .prepare_cached(concat!(
                "SELECT ",
                run_cols!(),
                " FROM main.runs WHERE id = ?1"
            ))?
            .query_row([run_id], run_row)
            .optional()?
        else {
            return Ok(None);
        };
        macro_rules! all {
            ($cols:expr, $table:literal, $order:literal, $map:expr) => {
                tx.prepare_cached(concat!(
                    "SELECT ",
                    $cols,
                    " FROM main.",
                    $table,
                    " WHERE run_id = ?1 ORDER BY ",
                    $order
                ))?
                .query_map([run_id], $map)?
                .collect::<Result<Vec<_>, _>>()?
            };
        }
        let steps = all!(step_cols!(), "steps", "idx, seq", step_row);
        let attempts = all!(attempt_cols!(), "attempts", "number, seq", attempt_row);
        let artifacts = all!(artifact_cols!(), "artifacts", "seq", artifact_row);
        let validations = all!(validation_cols!(), "validations", "seq", validation_row);
        let gates = all!(gate_cols!(), "gates", "seq", gate_row);
        drop(tx);

        let mut tree = RunTree {
            run,
            steps: Vec::new(),
            artifacts: Vec::new(),
            gates: Vec::new(),
        };
        let mut step_at = HashMap::with_capacity(steps.len());
        for step in steps {
            step_at.insert(step.id.clone(), tree.steps.len());
            tree.steps.push(StepTree {
                step,
                attempts: Vec::new(),
                artifacts: Vec::new(),
                gates: Vec::new(),
            });
        }
        let mut attempt_at = HashMap::with_capacity(attempts.len());
        for attempt in attempts {
            // An attempt always has a step (foreign key); skip defensively otherwise.
            let Some(&s) = step_at.get(&attempt.step_id) else {
                continue;
            };
            let attempts = &mut tree.steps[s].attempts;
            attempt_at.insert(attempt.id.clone(), (s, attempts.len()));
            attempts.push(AttemptTree {
                attempt,
                artifacts: Vec::new(),
                validations: Vec::new(),
                gates: Vec::new(),
            });
        }
        let node = |step_id: &Option<String>, attempt_id: &Option<String>| match attempt_id
            .as_ref()
            .and_then(|a| attempt_at.get(a))
        {
            Some(&(s, a)) => Node::Attempt(s, a),
            None => match step_id.as_ref().and_then(|s| step_at.get(s)) {
                Some(&s) => Node::Step(s),
                None => Node::Run,
            },
        };
        for artifact in artifacts {
            match node(&artifact.step_id, &artifact.attempt_id) {
                Node::Attempt(s, a) => tree.steps[s].attempts[a].artifacts.push(artifact),
                Node::Step(s) => tree.steps[s].artifacts.push(artifact),
                Node::Run => tree.artifacts.push(artifact),
            }
        }
        for validation in validations {
            if let Node::Attempt(s, a) = node(&None, &Some(validation.attempt_id.clone())) {
                tree.steps[s].attempts[a].validations.push(validation);
            }
        }
        for gate in gates {
            match node(&gate.step_id, &gate.attempt_id) {
                Node::Attempt(s, a) => tree.steps[s].attempts[a].gates.push(gate),
                Node::Step(s) => tree.steps[s].gates.push(gate),
                Node::Run => tree.gates.push(gate),
            }
        }
        Ok(Some(tree))
    }

    /// The one run whose id is `prefix` or starts with it (ASCII case-insensitive).
    pub fn resolve_run_id(&self, prefix: &str) -> Result<String, StoreError> {
        // An empty prefix would match whatever single run exists: never guess.
        if prefix.is_empty() {
            return Err(StoreError::RunNotFound {
                prefix: String::new(),
            });
        }
        let conn = lock(&self.reader);
        let exact: Option<String> = conn
            .prepare_cached("SELECT id FROM main.runs WHERE id = ?1")?
            .query_row([prefix], |r| r.get(0))
            .optional()?;
        if let Some(id) = exact {
            return Ok(id);
        }
        let pattern = format!(
            "{}%",
            prefix
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        let candidates = conn
            .prepare_cached(
                "SELECT id FROM main.runs WHERE id LIKE ?1 ESCAPE '\\' ORDER BY seq DESC LIMIT ?2",
            )?
            .query_map(params![pattern, AMBIGUOUS_SHOWN as i64 + 1], |r| {
                r.get::<_, String>(0)
            })?
            .collect::<Result<Vec<_>, _>>()?;
        match candidates.len() {
            0 => Err(StoreError::RunNotFound {
                prefix: prefix.to_owned(),
            }),
            1 => Ok(candidates.into_iter().next().unwrap_or_default()),
            _ => {
                let mut candidates = candidates;
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
        self.one(
            concat!("SELECT ", step_cols!(), " FROM main.steps WHERE id = ?1"),
            step_id,
            step_row,
        )
    }

    /// One attempt by id.
    pub fn attempt(&self, attempt_id: &str) -> Result<Option<AttemptRow>, StoreError> {
        self.one(
            concat!(
                "SELECT ",
                attempt_cols!(),
                " FROM main.attempts WHERE id = ?1"
            ),
            attempt_id,
            attempt_row,
        )
    }

    /// One artifact by id.
    pub fn artifact(&self, artifact_id: &str) -> Result<Option<ArtifactRow>, StoreError> {
        self.one(
            concat!(
                "SELECT ",
                artifact_cols!(),
                " FROM main.artifacts WHERE id = ?1"
            ),
            artifact_id,
            artifact_row,
        )
    }

    /// One gate by id.
    pub fn gate(&self, gate_id: &str) -> Result<Option<GateRow>, StoreError> {
        self.one(
            concat!("SELECT ", gate_cols!(), " FROM main.gates WHERE id = ?1"),
            gate_id,
            gate_row,
        )
    }

    /// Gates, optionally of one run and/or in one status, oldest first.
    pub fn gates(
        &self,
        run_id: Option<&str>,
        status: Option<GateStatus>,
    ) -> Result<Vec<GateRow>, StoreError> {
        let conn = lock(&self.reader);
        let rows = conn
            .prepare_cached(concat!(
                "SELECT ",
                gate_cols!(),
                " FROM main.gates
                  WHERE (?1 IS NULL OR run_id = ?1) AND (?2 IS NULL OR status = ?2)
                  ORDER BY seq"
            ))?
            .query_map(params![run_id, status], gate_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Attempts not in a terminal status (what a restarted daemon must interrupt or resume).
    pub fn unfinished_attempts(&self) -> Result<Vec<AttemptRow>, StoreError> {
        let conn = lock(&self.reader);
        let rows = conn
            .prepare_cached(concat!(
                "SELECT ",
                attempt_cols!(),
                " FROM main.attempts
                  WHERE status = 'starting' OR status = 'running' OR status = 'validating'
                  ORDER BY seq"
            ))?
            .query_map([], attempt_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Runs not in a terminal status, oldest first.
    pub fn unfinished_runs(&self) -> Result<Vec<RunRow>, StoreError> {
        let conn = lock(&self.reader);
        let rows = conn
            .prepare_cached(concat!(
                "SELECT ",
                run_cols!(),
                " FROM main.runs
                  WHERE status IN ('pending', 'running', 'awaiting_approval')
                  ORDER BY seq"
            ))?
            .query_map([], run_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn one<T>(
        &self,
        sql: &str,
        id: &str,
        map: fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Option<T>, StoreError> {
        let conn = lock(&self.reader);
        Ok(conn.prepare_cached(sql)?.query_row([id], map).optional()?)
    }
}

/// Where a node hangs in the tree being assembled.
enum Node {
    Run,
    Step(usize),
    Attempt(usize, usize),
}
