//! Proving the projections derive from the events alone: replay every event into a scratch
//! copy of the projection tables (the daemon's tokens), compare it row by row with the live
//! tables, and optionally swap it in. The replay also folds every run's tree, as reads do.

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};
use serde::Serialize;

use crate::error::StoreError;
use crate::fold::Fold;
use crate::project::{Statements, Target, project};
use crate::rows::{RawEvent, event_cols};
use crate::schema::{PROJECTION_TABLES, reset_scratch};
use crate::store::{Store, lock};

/// Differences listed in a report; more are only counted.
const MAX_LISTED: usize = 100;

/// The outcome of [`Store::check_projections`] and [`Store::rebuild`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ProjectionReport {
    /// True when the live tables equal the ones rebuilt from events (before any replacement).
    pub ok: bool,
    /// Events replayed.
    pub events: u64,
    /// Runs whose tree was folded from their events (every run in the record).
    pub runs_folded: u64,
    /// Row counts per table.
    pub tables: Vec<TableCount>,
    /// The first differences found (at most 100).
    pub differences: Vec<ProjectionDiff>,
    /// How many rows differ in all.
    pub differences_total: u64,
    /// True when the live tables were replaced by the rebuilt ones ([`Store::rebuild`]).
    pub replaced: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct TableCount {
    pub table: &'static str,
    pub live_rows: u64,
    pub rebuilt_rows: u64,
}

/// One row that differs between the live and the rebuilt projections.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ProjectionDiff {
    pub table: &'static str,
    pub id: String,
    pub difference: RowDifference,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum RowDifference {
    /// The events produce this row but the live table lacks it.
    MissingFromLive,
    /// The live table has a row no event produces.
    NotFromEvents,
    /// Both have the row, with different values.
    Changed { columns: Vec<ColumnDiff> },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ColumnDiff {
    pub column: String,
    pub live: serde_json::Value,
    pub rebuilt: serde_json::Value,
}

impl fmt::Display for ProjectionReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ok {
            write!(f, "projections: consistent with {} events", self.events)?;
        } else {
            write!(
                f,
                "projections: {} row(s) differ from a rebuild of {} events",
                self.differences_total, self.events
            )?;
        }
        write!(
            f,
            "\n  run trees: {} folded from their events",
            self.runs_folded
        )?;
        for t in &self.tables {
            write!(
                f,
                "\n  {}: {} live, {} rebuilt",
                t.table, t.live_rows, t.rebuilt_rows
            )?;
        }
        for d in &self.differences {
            match &d.difference {
                RowDifference::MissingFromLive => {
                    write!(f, "\n  {} {}: missing from the live table", d.table, d.id)?;
                }
                RowDifference::NotFromEvents => {
                    write!(f, "\n  {} {}: not produced by any event", d.table, d.id)?;
                }
                RowDifference::Changed { columns } => {
                    for c in columns {
                        write!(
                            f,
                            "\n  {} {}: {} is {} live, {} rebuilt",
                            d.table, d.id, c.column, c.live, c.rebuilt
                        )?;
                    }
                }
            }
        }
        let unlisted = self
            .differences_total
            .saturating_sub(self.differences.len() as u64);
        if unlisted > 0 {
            write!(f, "\n  ... and {unlisted} more")?;
        }
        if self.replaced {
            write!(f, "\n  live projections replaced by the rebuilt ones")?;
        }
        Ok(())
    }
}

impl Store {
    /// Rebuild the projections from the events into a scratch copy and compare them with the
    /// live tables. Changes nothing.
    pub fn check_projections(&self) -> Result<ProjectionReport, StoreError> {
        let mut conn = lock(&self.reader);
        // A read snapshot of `main`; the writes go to the in-memory `scratch` schema and are
        // rolled back with the transaction.
        let tx = conn.transaction()?;
        let (events, runs) = replay(&tx)?;
        let report = compare(&tx, events, runs)?;
        drop(tx);
        Ok(report)
    }

    /// Rebuild the projections from the events and replace the live tables with the result,
    /// in one transaction. The report lists what differed before the replacement.
    pub fn rebuild(&self) -> Result<ProjectionReport, StoreError> {
        let mut conn = lock(&self.writer);
        // IMMEDIATE: no event can be appended between the replay and the swap.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (events, runs) = replay(&tx)?;
        let mut report = compare(&tx, events, runs)?;
        for table in PROJECTION_TABLES.iter().rev() {
            tx.execute(&format!("DELETE FROM main.{table}"), [])?;
        }
        for table in PROJECTION_TABLES {
            tx.execute(
                &format!("INSERT INTO main.{table} SELECT * FROM scratch.{table}"),
                [],
            )?;
        }
        for table in PROJECTION_TABLES.iter().rev() {
            tx.execute(&format!("DELETE FROM scratch.{table}"), [])?;
        }
        tx.commit()?;
        report.replaced = true;
        tracing::info!(
            events = report.events,
            differed = report.differences_total,
            "projections rebuilt"
        );
        Ok(report)
    }
}

/// Replay every event into empty scratch projection tables, and fold every run's tree as
/// reads do, so an event the tree cannot take fails here too; returns the number of events
/// and of runs.
fn replay(conn: &Connection) -> Result<(u64, u64), StoreError> {
    reset_scratch(conn)?;
    let mut stmt = conn.prepare(concat!(
        "SELECT ",
        event_cols!(),
        " FROM main.events AS e ORDER BY e.seq"
    ))?;
    let mut rows = stmt.query([])?;
    let mut count = 0u64;
    let mut runs: HashMap<String, Fold> = HashMap::new();
    let mut stmts = Statements::new(conn);
    while let Some(row) = rows.next()? {
        let event = RawEvent::from_row(row)?.decode()?;
        project(&mut stmts, Target::Scratch, &event)?;
        if let Some(run_id) = &event.run_id {
            runs.entry(run_id.clone())
                .or_insert_with(Fold::new)
                .apply(&event)?;
        }
        count += 1;
    }
    Ok((count, runs.len() as u64))
}

/// Compare `main` and `scratch` projection tables on every column.
fn compare(
    conn: &Connection,
    events: u64,
    runs_folded: u64,
) -> Result<ProjectionReport, StoreError> {
    let mut tables = Vec::with_capacity(PROJECTION_TABLES.len());
    let mut differences = Vec::new();
    let mut total = 0u64;
    for table in PROJECTION_TABLES {
        let count = |schema: &str| -> Result<u64, StoreError> {
            Ok(
                conn.query_row(&format!("SELECT COUNT(*) FROM {schema}.{table}"), [], |r| {
                    r.get(0)
                })?,
            )
        };
        tables.push(TableCount {
            table,
            live_rows: count("main")?,
            rebuilt_rows: count("scratch")?,
        });

        let differing = |a: &str, b: &str| -> Result<Vec<String>, StoreError> {
            let sql = format!(
                "SELECT id FROM (SELECT * FROM {a}.{table} EXCEPT SELECT * FROM {b}.{table})"
            );
            let ids = conn
                .prepare(&sql)?
                .query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            Ok(ids)
        };
        let ids: BTreeSet<String> = differing("main", "scratch")?
            .into_iter()
            .chain(differing("scratch", "main")?)
            .collect();
        total += ids.len() as u64;
        for id in ids {
            if differences.len() >= MAX_LISTED {
                break;
            }
            let live = fetch(conn, "main", table, &id)?;
            let rebuilt = fetch(conn, "scratch", table, &id)?;
            let difference = match (live, rebuilt) {
                (Some(live), Some(rebuilt)) => RowDifference::Changed {
                    columns: live
                        .into_iter()
                        .zip(rebuilt)
                        .filter(|((_, l), (_, r))| l != r)
                        .map(|((column, l), (_, r))| ColumnDiff {
                            column,
                            live: to_json(l),
                            rebuilt: to_json(r),
                        })
                        .collect(),
                },
                (Some(_), None) => RowDifference::NotFromEvents,
                (None, _) => RowDifference::MissingFromLive,
            };
            differences.push(ProjectionDiff {
                table,
                id,
                difference,
            });
        }
    }
    Ok(ProjectionReport {
        runs_folded,
        ok: total == 0,
        events,
        tables,
        differences,
        differences_total: total,
        replaced: false,
    })
}

fn fetch(
    conn: &Connection,
    schema: &str,
    table: &str,
    id: &str,
) -> Result<Option<Vec<(String, Value)>>, StoreError> {
    let mut stmt = conn.prepare(&format!("SELECT * FROM {schema}.{table} WHERE id = ?1"))?;
    let names: Vec<String> = stmt.column_names().map(str::to_owned).collect();
    let row = stmt
        .query_row([id], |r| {
            names
                .iter()
                .enumerate()
                .map(|(i, name)| Ok((name.clone(), r.get::<_, Value>(i)?)))
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .optional()?;
    Ok(row)
}

fn to_json(value: Value) -> serde_json::Value {
    match value {
        Value::Null => serde_json::Value::Null,
        Value::Integer(i) => i.into(),
        Value::Real(f) => f.into(),
        Value::Text(s) => s.into(),
        Value::Blob(b) => hex::encode(b).into(),
    }
}
