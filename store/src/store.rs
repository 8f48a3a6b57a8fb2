//! The store handle: opening the state directory, appending events, recording artifacts
//! (the blob API is in `inline.rs`).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::blobs::Blobs;
use crate::chain::{GENESIS_HASH, Link, encode_payload, now_ts, to_hex};
use crate::error::StoreError;
use crate::inline::StagedBlob;
use crate::model::{ArtifactKind, ArtifactRow, Event, EventIds, NewEvent};
use crate::nodes::{Checks, Known};
use crate::project::{Statements, Target, project};
use crate::schema;

/// A fresh id: a ULID (26 characters, Crockford base32), sortable by creation time and, within
/// one process, strictly increasing.
pub fn new_id() -> String {
    // Monotonic within a millisecond, so ids made in a row sort in the order they were made.
    static GENERATOR: Mutex<ulid::Generator> = Mutex::new(ulid::Generator::new());
    let mut generator = GENERATOR
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match generator.generate() {
        Ok(id) => id.to_string(),
        // 2^80 ids in one millisecond: fall back to a random (still time-prefixed) one.
        Err(_) => ulid::Ulid::generate().to_string(),
    }
}

/// The record: an append-only, hash-chained event log, its projections and its blobs.
///
/// Cheap to share (`Arc<Store>`); several `Store`s, in one process or several, may use the same
/// state directory at once.
pub struct Store {
    pub(crate) root: PathBuf,
    pub(crate) blobs: Blobs,
    // A std mutex, not a tokio one: SQLite calls are blocking and nothing awaits while holding
    // the lock; async callers use `spawn_blocking`. Appends and reads have their own
    // connections so a long read (verify, a big tree) never holds up the writer.
    pub(crate) writer: Mutex<Connection>,
    pub(crate) reader: Mutex<Connection>,
    /// Run-tree nodes known to exist, so appends about them need no read (`nodes.rs`).
    pub(crate) known: Known,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

/// Past this size, closing a store checkpoints the WAL into the database as SQLite does by
/// default. Below it, the WAL is left for the next process, which reads it back on open: every
/// new process after the last one closed rebuilds the WAL index from the whole WAL (SQLite
/// truncates a `-shm` nobody holds), measured at ~1 ms per MB here, while a checkpoint on
/// close costs ~3 ms (two fsyncs). A one-step run grows the WAL by ~0.5 MB, so 2 MB balances
/// the two (a checkpoint every ~4 runs, ~1 MB read back on average). Without a limit, a WAL
/// that a new process has just recovered counts as not yet checkpointed, so processes making
/// one transaction each would never restart it.
const CHECKPOINT_ON_CLOSE_BYTES: u64 = 2 << 20;

impl Store {
    fn wal_is_large(&self) -> bool {
        let wal = self.root.join("codencer.db-wal");
        fs::metadata(&wal).is_ok_and(|m| m.len() > CHECKPOINT_ON_CLOSE_BYTES)
    }

    /// Does now what closing the store would do, for a process about to exit without
    /// dropping it (`codencer run` leaves its runtime to the exit): checkpoints a WAL grown
    /// past [`CHECKPOINT_ON_CLOSE_BYTES`] into the database and truncates it. Like SQLite's
    /// checkpoint on close it never waits: with another connection busy (a daemon on the
    /// same state directory) the WAL is left as it is. The store stays usable.
    pub fn checkpoint_before_exit(&self) {
        if !self.wal_is_large() {
            return;
        }
        let conn = lock(&self.writer);
        // Setting a busy timeout cannot fail; the checkpoint may.
        let _ = conn.busy_timeout(std::time::Duration::ZERO);
        let checkpoint = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        let _ = conn.busy_timeout(schema::BUSY_TIMEOUT);
        if let Err(err) = checkpoint {
            tracing::debug!(cause = %err, "WAL left for the next process");
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if self.wal_is_large() {
            // SQLite checkpoints on close only in the last connection to the database
            // (system-wide) and never waits for one: a daemon's store stays untouched.
            for conn in [&self.writer, &self.reader] {
                if let Err(err) =
                    lock(conn).set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, false)
                {
                    tracing::debug!(cause = %err, "WAL left for the next process");
                }
            }
        }
    }
}

/// Inserts `blobs` in `tx`, then lets `append` check, chain, insert and project events
/// through the head, and commits: the one body of every append.
fn commit_events<T>(
    tx: rusqlite::Transaction<'_>,
    known: &Known,
    blobs: &[StagedBlob],
    append: impl FnOnce(&mut Head<'_>, &mut Statements<'_>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    for blob in blobs {
        blob.insert(&tx)?;
    }
    let mut head = Head::read(&tx, known)?;
    let mut stmts = Statements::new(&tx);
    let out = append(&mut head, &mut stmts)?;
    drop(stmts);
    let (last, checks) = (head.seq, head.checks);
    tx.commit()?;
    checks.committed(last);
    tracing::trace!(last, "events appended");
    Ok(out)
}

/// Checks, chains, inserts and projects `event` in `tx`, with the small `blobs` it names, and
/// commits.
fn append_one(
    tx: rusqlite::Transaction<'_>,
    known: &Known,
    blobs: &[StagedBlob],
    event: NewEvent,
) -> Result<Event, StoreError> {
    commit_events(tx, known, blobs, |head, stmts| head.append(stmts, event))
}

/// Lock a connection. A panic while holding it cannot leave a transaction open (rusqlite rolls
/// back on drop, also when unwinding), so a poisoned lock is safe to take over.
pub(crate) fn lock(conn: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    conn.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Store {
    /// Open (creating if needed) the store in `state_dir`:
    /// `codencer.db`, `blobs/sha256/`, `tmp/`.
    pub fn open(state_dir: &Path) -> Result<Store, StoreError> {
        create_private_dir(state_dir)?;
        let blobs = Blobs::new(state_dir);
        blobs.create_dirs()?;
        blobs.sweep_tmp();
        let db = state_dir.join("codencer.db");
        let mut writer = schema::connect(&db)?;
        schema::migrate(&mut writer)?;
        let reader = schema::connect(&db)?;
        tracing::debug!(path = %state_dir.display(), "store opened");
        Ok(Store {
            root: state_dir.to_owned(),
            blobs,
            writer: Mutex::new(writer),
            reader: Mutex::new(reader),
            known: Known::default(),
        })
    }

    /// The state directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Append one event (and update the projections) atomically.
    pub fn append(&self, event: NewEvent) -> Result<Event, StoreError> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        append_one(tx, &self.known, &[], event)
    }

    /// Append the event `decide` returns, if any, in one transaction with `decide`'s reads:
    /// it runs holding the write lock, so what it read is still true when the event lands
    /// (two callers cannot both act on the same state).
    pub(crate) fn append_if(
        &self,
        decide: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<Option<NewEvent>, StoreError>,
    ) -> Result<Option<Event>, StoreError> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        match decide(&tx)? {
            Some(event) => append_one(tx, &self.known, &[], event).map(Some),
            None => Ok(None),
        }
    }

    /// Append events in one transaction: all of them, contiguous in the chain, or none.
    ///
    /// All events of one call share a timestamp (they commit at one instant); timestamps never
    /// go backwards along the chain, even if the clock does.
    pub fn append_all(&self, events: Vec<NewEvent>) -> Result<Vec<Event>, StoreError> {
        self.append_all_with_blobs(&[], events)
    }

    /// [`Store::append_all`], with the small `blobs` the events name inserted in the same
    /// transaction (large ones were stored as files when staged): one commit for an
    /// artifact's content and its event, or for several artifacts at once.
    pub fn append_all_with_blobs(
        &self,
        blobs: &[StagedBlob],
        events: Vec<NewEvent>,
    ) -> Result<Vec<Event>, StoreError> {
        if events.is_empty() && blobs.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = lock(&self.writer);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        commit_events(tx, &self.known, blobs, |head, stmts| {
            events
                .into_iter()
                .map(|event| head.append(stmts, event))
                .collect()
        })
    }

    /// Store `bytes` as a blob and record an `artifact.recorded` event for it (a small blob
    /// in the event's transaction).
    pub fn record_artifact(
        &self,
        ids: &EventIds,
        actor: &str,
        kind: ArtifactKind,
        name: Option<&str>,
        bytes: &[u8],
    ) -> Result<ArtifactRow, StoreError> {
        let blob = self.stage_blob(bytes)?;
        self.record_blob(ids, actor, kind, name, blob)
    }

    /// Store the file at `path` as a blob (streaming) and record an `artifact.recorded` event.
    pub fn record_artifact_file(
        &self,
        ids: &EventIds,
        actor: &str,
        kind: ArtifactKind,
        name: Option<&str>,
        path: &Path,
    ) -> Result<ArtifactRow, StoreError> {
        let blob = self.stage_blob_file(path)?;
        self.record_blob(ids, actor, kind, name, blob)
    }

    fn record_blob(
        &self,
        ids: &EventIds,
        actor: &str,
        kind: ArtifactKind,
        name: Option<&str>,
        staged: StagedBlob,
    ) -> Result<ArtifactRow, StoreError> {
        let (id, body) = staged.recorded(kind, name);
        let blob = staged.blob().clone();
        let event = ids.event(actor, body);
        let event = {
            let mut conn = lock(&self.writer);
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            append_one(tx, &self.known, std::slice::from_ref(&staged), event)?
        };
        Ok(ArtifactRow {
            id,
            run_id: event.run_id,
            step_id: event.step_id,
            attempt_id: event.attempt_id,
            kind,
            name: name.map(str::to_owned),
            sha256: blob.sha256,
            bytes: blob.bytes,
            created_at: event.ts,
        })
    }
}

/// The end of the chain, as seen inside a write transaction, and the transaction's checks.
struct Head<'k> {
    seq: u64,
    /// The last event's hash, in hex (as the next one hashes it).
    hash: String,
    ts: String,
    checks: Checks<'k>,
}

impl<'k> Head<'k> {
    /// Read the head. Callers hold the write lock (`BEGIN IMMEDIATE`), so no other writer,
    /// thread or process, can append between this read and their commit: the chain never
    /// forks. It is read once per transaction (one index seek), never per event, and never
    /// trusted from memory, since another process may have appended since our last commit.
    fn read(conn: &Connection, known: &'k Known) -> Result<Head<'k>, StoreError> {
        let head: Option<(u64, Vec<u8>, String)> = conn
            .prepare_cached("SELECT seq, hash, ts FROM main.events ORDER BY seq DESC LIMIT 1")?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        let (seq, hash, ts) = match head {
            Some((seq, hash, ts)) => (seq, to_hex(&hash), ts),
            None => (0, GENESIS_HASH.to_owned(), String::new()),
        };
        Ok(Head {
            seq,
            hash,
            // One timestamp per transaction, and never earlier than the previous event's.
            ts: now_ts().max(ts),
            checks: Checks::new(known, seq),
        })
    }

    /// Check, chain, insert and project one event; advances the head.
    fn append(&mut self, stmts: &mut Statements<'_>, event: NewEvent) -> Result<Event, StoreError> {
        self.checks.check(stmts.conn(), &event)?;
        let NewEvent {
            run_id,
            step_id,
            attempt_id,
            actor,
            body,
        } = event;
        let seq = self.seq + 1;
        let kind = body.kind();
        let payload = encode_payload(&body)?;
        let digest = Link {
            prev_hash: &self.hash,
            seq,
            ts: &self.ts,
            run_id: run_id.as_deref(),
            step_id: step_id.as_deref(),
            attempt_id: attempt_id.as_deref(),
            kind,
            actor: &actor,
            payload: &payload,
        }
        .digest();
        stmts
            .get(
                "INSERT INTO main.events
               (seq, ts, run_id, step_id, attempt_id, kind, actor, payload, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                seq,
                self.ts,
                run_id,
                step_id,
                attempt_id,
                kind,
                actor,
                payload,
                &digest[..]
            ])?;
        let hash = to_hex(&digest);
        let event = Event {
            seq,
            ts: self.ts.clone(),
            run_id,
            step_id,
            attempt_id,
            actor,
            body,
            prev_hash: std::mem::replace(&mut self.hash, hash.clone()),
            hash,
        };
        project(stmts, Target::Live, &event)?;
        self.seq = seq;
        Ok(event)
    }
}

/// The state directory holds the operator's code and transcripts: owner-only when we create it.
fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(StoreError::io(dir))
}
