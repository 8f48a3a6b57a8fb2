//! Connection setup and versioned migrations (`PRAGMA user_version` is the schema version).

use std::path::Path;
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, TransactionBehavior};

use crate::error::StoreError;

/// How long a connection waits for another writer (another process) before giving up.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The projection tables (the run tree is folded from events at read time, `fold.rs`).
pub(crate) const PROJECTION_TABLES: [&str; 1] = ["tokens"];

/// Migration `i` brings the schema from version `i` to `i + 1`. Never edit a released one.
const MIGRATIONS: &[&str] = &[V1, V2, V3, V4, V5];

/// The schema version this build writes.
pub(crate) const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

// Every projection column is derived from events; `seq` is the seq of the event that created
// the row and gives the creation order. Projection DDL is written `CREATE TABLE name (` and
// `CREATE INDEX name ON table(` so it can be replayed into the `scratch` schema (see rebuild).
const V1: &str = r#"
CREATE TABLE events (
    seq        INTEGER PRIMARY KEY CHECK (seq > 0),
    ts         TEXT NOT NULL,
    run_id     TEXT,
    step_id    TEXT,
    attempt_id TEXT,
    kind       TEXT NOT NULL,
    actor      TEXT NOT NULL,
    payload    TEXT NOT NULL,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
);
CREATE INDEX events_run ON events(run_id, seq) WHERE run_id IS NOT NULL;
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;

CREATE TABLE runs (
    id          TEXT PRIMARY KEY NOT NULL,
    seq         INTEGER NOT NULL,
    name        TEXT NOT NULL,
    workspace   TEXT NOT NULL,
    executor    TEXT NOT NULL,
    policy      TEXT,
    status      TEXT NOT NULL,
    reason      TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    finished_at TEXT,
    actor       TEXT NOT NULL
);
CREATE INDEX runs_seq ON runs(seq);

CREATE TABLE steps (
    id           TEXT PRIMARY KEY NOT NULL,
    seq          INTEGER NOT NULL,
    run_id       TEXT NOT NULL REFERENCES runs(id),
    idx          INTEGER NOT NULL,
    goal         TEXT NOT NULL,
    executor     TEXT NOT NULL,
    max_attempts INTEGER NOT NULL,
    status       TEXT NOT NULL,
    base         TEXT,
    base_commit  TEXT,
    head_commit  TEXT,
    reason       TEXT,
    created_at   TEXT NOT NULL,
    started_at   TEXT,
    finished_at  TEXT
);
CREATE INDEX steps_run ON steps(run_id, idx);

CREATE TABLE attempts (
    id            TEXT PRIMARY KEY NOT NULL,
    seq           INTEGER NOT NULL,
    run_id        TEXT NOT NULL REFERENCES runs(id),
    step_id       TEXT NOT NULL REFERENCES steps(id),
    number        INTEGER NOT NULL,
    executor      TEXT NOT NULL,
    status        TEXT NOT NULL,
    branch        TEXT NOT NULL,
    worktree      TEXT NOT NULL,
    base_commit   TEXT NOT NULL,
    commit_sha    TEXT,
    exit_code     INTEGER,
    signal        INTEGER,
    reason        TEXT,
    files_changed TEXT NOT NULL,
    insertions    INTEGER NOT NULL,
    deletions     INTEGER NOT NULL,
    summary       TEXT,
    usage         TEXT,
    started_at    TEXT NOT NULL,
    finished_at   TEXT,
    duration_ms   INTEGER
);
CREATE INDEX attempts_run ON attempts(run_id, number);
CREATE INDEX attempts_unfinished ON attempts(status)
    WHERE status IN ('starting', 'running', 'validating');

CREATE TABLE artifacts (
    id         TEXT PRIMARY KEY NOT NULL,
    seq        INTEGER NOT NULL,
    run_id     TEXT REFERENCES runs(id),
    step_id    TEXT REFERENCES steps(id),
    attempt_id TEXT REFERENCES attempts(id),
    kind       TEXT NOT NULL,
    name       TEXT,
    sha256     TEXT NOT NULL,
    bytes      INTEGER NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX artifacts_run ON artifacts(run_id, seq);

CREATE TABLE validations (
    id              TEXT PRIMARY KEY NOT NULL,
    seq             INTEGER NOT NULL,
    run_id          TEXT NOT NULL REFERENCES runs(id),
    attempt_id      TEXT NOT NULL REFERENCES attempts(id),
    name            TEXT NOT NULL,
    command         TEXT NOT NULL,
    status          TEXT NOT NULL,
    exit_code       INTEGER,
    duration_ms     INTEGER NOT NULL,
    output_artifact TEXT,
    created_at      TEXT NOT NULL
);
CREATE INDEX validations_run ON validations(run_id, seq);

CREATE TABLE gates (
    id         TEXT PRIMARY KEY NOT NULL,
    seq        INTEGER NOT NULL,
    run_id     TEXT NOT NULL REFERENCES runs(id),
    step_id    TEXT REFERENCES steps(id),
    attempt_id TEXT REFERENCES attempts(id),
    name       TEXT NOT NULL,
    status     TEXT NOT NULL,
    reason     TEXT,
    decided_by TEXT,
    created_at TEXT NOT NULL,
    decided_at TEXT
);
CREATE INDEX gates_run ON gates(run_id, seq);
CREATE INDEX gates_status ON gates(status);
"#;

// API tokens of the daemon, projected from `token.created` / `token.revoked`.
const V2: &str = r#"
CREATE TABLE tokens (
    id         TEXT PRIMARY KEY NOT NULL,
    seq        INTEGER NOT NULL,
    name       TEXT NOT NULL,
    sha256     TEXT NOT NULL,
    scopes     TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    revoked_at TEXT
);
CREATE INDEX tokens_sha256 ON tokens(sha256);
"#;

// The partial index of unfinished attempts, with the same rows. `status IN (...)` in an index's
// WHERE is evaluated through a temporary b-tree built per row written, twice per attempt status
// change (old row, new row): about half the cost of those updates. ORed comparisons compile to
// plain comparisons. The query in `unfinished_attempts` repeats this expression so the planner
// can still use the index.
const V3: &str = r#"
DROP INDEX attempts_unfinished;
CREATE INDEX attempts_unfinished ON attempts(status)
    WHERE status = 'starting' OR status = 'running' OR status = 'validating';
"#;

// Blobs of up to 64 KiB (`INLINE_BLOB_MAX_BYTES`), by sha256, written before the event that
// names them: no fsync, as the WAL orders the two commits (see `inline.rs`). Immutable like
// the events. Older stores keep their small blobs as files; reads look here first, then there.
const V4: &str = r#"
CREATE TABLE blobs (
    sha256 TEXT PRIMARY KEY NOT NULL,
    data   BLOB NOT NULL
) WITHOUT ROWID;
CREATE TRIGGER blobs_no_update BEFORE UPDATE ON blobs
BEGIN SELECT RAISE(ABORT, 'blobs are immutable'); END;
CREATE TRIGGER blobs_no_delete BEFORE DELETE ON blobs
BEGIN SELECT RAISE(ABORT, 'blobs are immutable'); END;
"#;

// Events are the only record of runs: an append writes one row and one `events_run` entry.
// - The run-tree projections go: runs, steps, attempts and their artifacts, validations and
//   gates are folded from the run's events when read (`fold.rs`), which wrote the tree twice
//   and cost 2x the events' own writes.
// - `hash` is kept as its 32 bytes instead of 64 hex digits, and `prev_hash` is not kept: it
//   is the previous event's hash, which verification recomputes the link from anyway.
// Copying the events converts their hashes; a stored hash that is not hex is kept as its
// bytes, for `verify` to report.
const V5: &str = r#"
CREATE TABLE events_v5 (
    seq        INTEGER PRIMARY KEY CHECK (seq > 0),
    ts         TEXT NOT NULL,
    run_id     TEXT,
    step_id    TEXT,
    attempt_id TEXT,
    kind       TEXT NOT NULL,
    actor      TEXT NOT NULL,
    payload    TEXT NOT NULL,
    hash       BLOB NOT NULL
);
INSERT INTO events_v5 (seq, ts, run_id, step_id, attempt_id, kind, actor, payload, hash)
SELECT seq, ts, run_id, step_id, attempt_id, kind, actor, payload,
       COALESCE(unhex(hash), CAST(hash AS BLOB))
FROM events ORDER BY seq;
DROP TABLE events;
ALTER TABLE events_v5 RENAME TO events;
CREATE INDEX events_run ON events(run_id, seq) WHERE run_id IS NOT NULL;
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
DROP TABLE IF EXISTS gates;
DROP TABLE IF EXISTS validations;
DROP TABLE IF EXISTS artifacts;
DROP TABLE IF EXISTS attempts;
DROP TABLE IF EXISTS steps;
DROP TABLE IF EXISTS runs;
"#;

/// Open a connection with the store's settings.
pub(crate) fn connect(db: &Path) -> Result<Connection, StoreError> {
    let open = |source| StoreError::Open {
        path: db.to_owned(),
        source,
    };
    let conn = Connection::open(db).map_err(open)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(open)?;
    // WAL: readers never block the writer and vice versa; NORMAL is crash-safe in WAL mode
    // (a power cut may lose the last commits, never corrupt or fork the chain).
    // Switching a fresh database to WAL needs a lock that a concurrent migrator (another
    // process opening the same new state dir) may hold; SQLite then answers BUSY at once,
    // without the busy handler, so wait for it here.
    let mut tries = 0;
    let mode: String = loop {
        match conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)) {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy && tries < 500 =>
            {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            other => break other.map_err(open)?,
        }
    };
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(path = %db.display(), mode, "database is not in WAL mode");
    }
    // Checkpoint every 10,000 WAL pages (40 MB) instead of 1,000: each append rewrites the same
    // few hot pages (the chain's tail, the index's), and a longer WAL folds those rewrites
    // into one checkpoint write (docs/performance.md). Readers stay fast: the WAL index is a
    // hash.
    conn.execute_batch(
        "PRAGMA synchronous = NORMAL;
         PRAGMA foreign_keys = ON;
         PRAGMA wal_autocheckpoint = 10000;
         PRAGMA cache_size = -32000;
         ATTACH DATABASE ':memory:' AS scratch;",
    )
    .map_err(open)?;
    // Closing the last connection of a process would checkpoint the whole WAL, fsync twice and
    // unlink the WAL: milliseconds at the end of every short CLI process, and the next process
    // then grows a new WAL file. Checkpoints are left to `wal_autocheckpoint` and to a store
    // dropped with a WAL over 2 MB (`Store`'s `Drop`); the next process to open the store reads
    // the WAL back (docs/store.md).
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
        .map_err(open)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Bring the schema up to [`SCHEMA_VERSION`]. Safe against a concurrent migrator: each step runs
/// under `BEGIN IMMEDIATE` and re-reads the version once it holds the write lock.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let found: u32 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                found,
                supported: SCHEMA_VERSION,
            });
        }
        let Some(sql) = MIGRATIONS.get(found as usize) else {
            return Ok(());
        };
        let version = found + 1;
        let step = |source| StoreError::Migration { version, source };
        tx.execute_batch(sql).map_err(step)?;
        tx.pragma_update(None, "user_version", version)
            .map_err(step)?;
        tx.commit().map_err(step)?;
        tracing::info!(version, "store schema migrated");
    }
}

/// (Re)create the projection tables, empty, in the `scratch` schema, from the live definitions,
/// so a rebuild always has exactly the live columns in the live order.
pub(crate) fn reset_scratch(conn: &Connection) -> Result<(), StoreError> {
    for table in PROJECTION_TABLES.iter().rev() {
        conn.execute_batch(&format!("DROP TABLE IF EXISTS scratch.{table}"))?;
    }
    let mut stmt = conn.prepare_cached(
        "SELECT type, sql FROM main.sqlite_schema
         WHERE tbl_name = ?1 AND sql IS NOT NULL
         ORDER BY type DESC, rowid",
    )?;
    let mut defs = Vec::new();
    for table in PROJECTION_TABLES {
        defs.extend(
            stmt.query_map([table], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })?
            .collect::<Result<Vec<_>, _>>()?,
        );
    }
    for (kind, sql) in defs {
        let scratch = match kind.as_str() {
            "table" => sql.replacen("CREATE TABLE ", "CREATE TABLE scratch.", 1),
            "index" => sql.replacen("CREATE INDEX ", "CREATE INDEX scratch.", 1),
            _ => continue,
        };
        conn.execute_batch(&scratch)?;
    }
    Ok(())
}
