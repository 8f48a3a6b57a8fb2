//! Store figures for `scripts/bench.sh`: appending events (hash chain and the checks of the
//! run tree included) side by side with plain rusqlite inserts of the same rows, loading a run tree
//! from a large store, and storing small (4 KiB) blobs. Prints one JSON object on stdout.
//!
//! `cargo bench -p codencer-store --bench store -- [--events N] [--reps R] [--single N]
//! [--blobs N]`
//! (run without `--bench`, as `cargo test --all-targets` does, it is a quick smoke run).
//!
//! Not a test: nothing here asserts a time. Medians over `--reps` fresh stores, after a
//! warm-up; each repetition times the reference and ours back to back, so that load from
//! other processes hits both alike.

use std::error::Error;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use codencer_store::{
    ArtifactKind, AttemptStatus, EventBody, EventIds, NewEvent, RunStatus, Store, ValidationStatus,
    new_id,
};
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

type BenchResult<T> = Result<T, Box<dyn Error>>;

const ACTOR: &str = "bench@host";
/// Events per transaction in the batched figure (`append_all`).
const BATCH: usize = 1_000;

struct Options {
    events: usize,
    reps: usize,
    single: usize,
    tree_loads: usize,
    blobs: usize,
}

fn options() -> BenchResult<Options> {
    let mut o = Options {
        events: 100_000,
        reps: 5,
        single: 10_000,
        tree_loads: 201,
        blobs: 400,
    };
    let mut args = std::env::args().skip(1);
    // `cargo bench` passes `--bench`; without it (`cargo test --all-targets` runs this as a
    // test) a small smoke run keeps the suite fast.
    let mut benching = false;
    while let Some(arg) = args.next() {
        let mut value =
            || -> BenchResult<usize> { Ok(args.next().ok_or("missing value")?.parse::<usize>()?) };
        match arg.as_str() {
            "--events" => o.events = value()?,
            "--reps" => o.reps = value()?.max(1),
            "--single" => o.single = value()?,
            "--tree-loads" => o.tree_loads = value()?.max(1),
            "--blobs" => o.blobs = value()?.max(1),
            // cargo bench passes `--bench`; anything else is a mistake.
            "--bench" => benching = true,
            other => return Err(format!("unknown argument `{other}`").into()),
        }
    }
    if !benching {
        o = Options {
            events: 2_000,
            reps: 1,
            single: 200,
            tree_loads: 5,
            blobs: 20,
        };
    }
    Ok(o)
}

/// About 30 events per run: 3 steps of 2 attempts each, with artifacts and validations,
/// in the shape the supervisor records them.
fn workload(n: usize) -> (Vec<NewEvent>, Vec<String>) {
    let mut events = Vec::with_capacity(n + 64);
    let mut runs = Vec::new();
    while events.len() < n {
        let run = new_id();
        let r = EventIds::run(&run);
        events.push(r.event(
            ACTOR,
            EventBody::RunCreated {
                name: "bench".into(),
                workspace: "/home/dev/project".into(),
                executor: "claude".into(),
                policy: Some("strict".into()),
                steps: 3,
            },
        ));
        events.push(r.event(ACTOR, EventBody::RunStarted {}));
        for index in 1..=3 {
            let step = new_id();
            let s = EventIds::step(&run, &step);
            events.push(s.event(
                ACTOR,
                EventBody::StepCreated {
                    index,
                    goal: "Make the greeting say hello to Codencer.".into(),
                    executor: "claude".into(),
                    max_attempts: 3,
                },
            ));
            events.push(s.event(
                ACTOR,
                EventBody::StepStarted {
                    base: "main".into(),
                    base_commit: "501954b67c49d1e0a4f3f1c2b6c0b5e9a8d7c6b5".into(),
                },
            ));
            for number in 1..=2 {
                let a = EventIds::attempt(&run, &step, new_id());
                events.push(a.event(
                    ACTOR,
                    EventBody::AttemptStarted {
                        number,
                        executor: "claude".into(),
                        branch: format!("codencer/{run}/{index}/{number}"),
                        worktree: format!("/state/worktrees/{run}/{index}-{number}"),
                        base_commit: "501954b67c49d1e0a4f3f1c2b6c0b5e9a8d7c6b5".into(),
                    },
                ));
                events.push(a.event(ACTOR, EventBody::AttemptRunning { pid: Some(4242) }));
                events.push(a.event(
                    ACTOR,
                    EventBody::ArtifactRecorded {
                        artifact_id: new_id(),
                        kind: ArtifactKind::Diff,
                        name: None,
                        sha256: "ab".repeat(32),
                        bytes: 1234,
                    },
                ));
                events.push(a.event(
                    ACTOR,
                    EventBody::ValidationCompleted {
                        validation_id: new_id(),
                        name: "test".into(),
                        command: "cargo test".into(),
                        status: ValidationStatus::Passed,
                        exit_code: Some(0),
                        duration_ms: 5,
                        output_artifact: None,
                    },
                ));
                events.push(a.event(
                    ACTOR,
                    EventBody::AttemptCompleted {
                        status: AttemptStatus::Passed,
                        exit: None,
                        reason: None,
                        commit: Some("c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1".into()),
                        files_changed: vec!["src/lib.rs".into(), "README.md".into()],
                        insertions: 12,
                        deletions: 3,
                        duration_ms: 10,
                        summary: Some("Changed the greeting.".into()),
                        usage: None,
                    },
                ));
            }
            events.push(s.event(
                ACTOR,
                EventBody::StepCompleted {
                    status: RunStatus::Passed,
                    head_commit: Some("c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1".into()),
                    attempts: 2,
                    reason: None,
                },
            ));
        }
        events.push(NewEvent {
            run_id: Some(run.clone()),
            step_id: None,
            attempt_id: None,
            actor: ACTOR.into(),
            body: EventBody::PolicyDecided {
                stage: "admission".into(),
                verdict: "allow".into(),
                reason: "within the default policy".into(),
                origin: None,
            },
        });
        events.push(r.event(
            ACTOR,
            EventBody::RunCompleted {
                status: RunStatus::Passed,
                reason: None,
            },
        ));
        runs.push(run);
    }
    (events, runs)
}

/// The reference: the same `events` rows (every column but the chain's hash), the same
/// index, triggers and pragmas, one prepared statement, the payload serialized from the same
/// bodies; no hash.
fn plain_db(dir: &Path) -> BenchResult<Connection> {
    std::fs::create_dir_all(dir)?;
    let conn = Connection::open(dir.join("events.db"))?;
    conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0))?;
    conn.execute_batch(
        "PRAGMA synchronous = NORMAL;
         PRAGMA foreign_keys = ON;
         PRAGMA wal_autocheckpoint = 10000;
         PRAGMA cache_size = -32000;
         CREATE TABLE events (
             seq        INTEGER PRIMARY KEY CHECK (seq > 0),
             ts         TEXT NOT NULL,
             run_id     TEXT,
             step_id    TEXT,
             attempt_id TEXT,
             kind       TEXT NOT NULL,
             actor      TEXT NOT NULL,
             payload    TEXT NOT NULL,
             hash       BLOB
         );
         CREATE INDEX events_run ON events(run_id, seq) WHERE run_id IS NOT NULL;
         CREATE TRIGGER events_no_update BEFORE UPDATE ON events
         BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
         CREATE TRIGGER events_no_delete BEFORE DELETE ON events
         BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;",
    )?;
    Ok(conn)
}

/// One transaction of reference inserts; with `chain`, also the hash chain exactly as the
/// store computes and keeps it (head read once per transaction), to split our cost into the
/// chain and the rest.
fn plain_insert(
    conn: &mut Connection,
    chunk: &[NewEvent],
    seq: &mut u64,
    chain: bool,
) -> BenchResult<()> {
    let ts = "2026-01-01T00:00:00.000Z";
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    {
        let mut prev: Option<String> = None;
        if chain {
            prev = Some(
                tx.prepare_cached("SELECT hash FROM events ORDER BY seq DESC LIMIT 1")?
                    .query_row([], |r| r.get::<_, Vec<u8>>(0))
                    .optional()?
                    .map_or_else(|| "0".repeat(64), hex::encode),
            );
        }
        let mut stmt = tx.prepare_cached(
            "INSERT INTO events (seq, ts, run_id, step_id, attempt_id, kind, actor, payload, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?;
        for e in chunk {
            *seq += 1;
            // The same payload text the store keeps (the body's fields, without the tag).
            let payload = payload_of(&e.body)?;
            let hash = prev.as_deref().map(|p| {
                let mut h = Sha256::new();
                h.update(b"codencer.event.v1");
                put(&mut h, Some(p));
                h.update(seq.to_be_bytes());
                put(&mut h, Some(ts));
                put(&mut h, e.run_id.as_deref());
                put(&mut h, e.step_id.as_deref());
                put(&mut h, e.attempt_id.as_deref());
                put(&mut h, Some(e.body.kind()));
                put(&mut h, Some(&e.actor));
                put(&mut h, Some(&payload));
                h.finalize().to_vec()
            });
            stmt.execute(params![
                *seq,
                ts,
                e.run_id,
                e.step_id,
                e.attempt_id,
                e.body.kind(),
                e.actor,
                payload,
                hash
            ])?;
            if let Some(hash) = hash {
                prev = Some(hex::encode(hash));
            }
        }
    }
    tx.commit()?;
    Ok(())
}

fn put(h: &mut Sha256, field: Option<&str>) {
    match field {
        None => h.update([0u8]),
        Some(s) => {
            h.update([1u8]);
            h.update((s.len() as u64).to_be_bytes());
            h.update(s.as_bytes());
        }
    }
}

fn payload_of(body: &EventBody) -> BenchResult<String> {
    // serde's adjacently tagged form is `{"kind":"<kind>","payload":<payload>}`: slice the
    // payload out, the cheapest way to the stored text.
    let full = serde_json::to_string(body)?;
    let prefix = format!(r#"{{"kind":"{}","payload":"#, body.kind());
    Ok(full
        .strip_prefix(&prefix)
        .and_then(|rest| rest.strip_suffix('}'))
        .ok_or("unexpected serde shape")?
        .to_owned())
}

/// Seconds to insert `events` in transactions of `batch`, the reference way.
///
/// Timed twice: the inserts alone, and until the WAL is checkpointed into the database (the
/// figure). Both sides checkpoint every 10,000 WAL pages, and 100,000 events write about that
/// many: without the closing checkpoint, whichever side crosses the line pays a whole
/// checkpoint the other does not, and that, not the work per event, decides the ratio.
fn time_plain(dir: &Path, events: &[NewEvent], batch: usize, chain: bool) -> BenchResult<Timed> {
    let name = if chain { "chained" } else { "plain" };
    let mut conn = plain_db(&dir.join(name))?;
    let mut seq = 0;
    let start = Instant::now();
    for chunk in events.chunks(batch) {
        plain_insert(&mut conn, chunk, &mut seq, chain)?;
    }
    let inserts = start.elapsed();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(Timed {
        inserts,
        total: start.elapsed(),
    })
}

/// Seconds to append `events` in transactions of `batch` (`append` when 1), the store's way;
/// timed like [`time_plain`] (the store checkpoints a WAL past 2 MB, as a process exiting does).
fn time_store(dir: &Path, events: &[NewEvent], batch: usize) -> BenchResult<(Timed, Store)> {
    let store = Store::open(&dir.join("state"))?;
    // The store takes its events by value, as a caller hands over events it built; they are
    // copied out of the shared workload before the clock starts.
    let chunks: Vec<Vec<NewEvent>> = events.chunks(batch).map(<[NewEvent]>::to_vec).collect();
    let start = Instant::now();
    for chunk in chunks {
        if batch == 1 {
            for e in chunk {
                store.append(e)?;
            }
        } else {
            store.append_all(chunk)?;
        }
    }
    let inserts = start.elapsed();
    store.checkpoint_before_exit();
    let total = start.elapsed();
    Ok((Timed { inserts, total }, store))
}

/// One timed insertion.
#[derive(Debug, Clone, Copy, Default)]
struct Timed {
    inserts: Duration,
    total: Duration,
}

/// Size of each blob in the `put_blob` figure: the TaskSpecs, policies and reports a run stores.
const SMALL_BLOB: usize = 4 * 1024;

/// Median seconds per `put_blob` of a new small blob, over `reps` fresh stores.
fn time_put_blob(count: usize, reps: usize) -> BenchResult<f64> {
    let mut per_put = Vec::with_capacity(reps);
    for rep in 0..reps {
        let dir = tempfile::tempdir()?;
        let store = Store::open(&dir.path().join("state"))?;
        let blobs: Vec<Vec<u8>> = (0..count)
            .map(|i| {
                let seed = format!("blob {rep} {i} ");
                seed.bytes().cycle().take(SMALL_BLOB).collect()
            })
            .collect();
        let start = Instant::now();
        for blob in &blobs {
            store.put_blob(blob)?;
        }
        per_put.push(start.elapsed().as_secs_f64() / count as f64);
    }
    Ok(median(per_put))
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    match xs.len() {
        0 => f64::NAN,
        n => xs[n / 2],
    }
}

/// Medians (seconds) of one comparison, each repetition on fresh databases.
struct Compared {
    ours: f64,
    plain: f64,
    chain_only: f64,
    ratio: f64,
    chain_only_ratio: f64,
    /// The ratio of the inserts alone, before the closing checkpoint.
    inserts_ratio: f64,
}

fn compare(
    events: &[NewEvent],
    batch: usize,
    reps: usize,
    keep: &mut Option<(tempfile::TempDir, Store)>,
) -> BenchResult<Compared> {
    let (mut ours, mut plain, mut chained, mut ratios, mut chain_ratios, mut insert_ratios) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    // Warm-up: page cache, allocator, code.
    {
        let dir = tempfile::tempdir()?;
        let warm = &events[..events.len().min(5_000)];
        time_plain(dir.path(), warm, batch, false)?;
        time_plain(dir.path(), warm, batch, true)?;
        time_store(dir.path(), warm, batch)?;
    }
    for rep in 0..reps {
        let dir = tempfile::tempdir()?;
        // Rotate which side goes first, so none always gets the warmer machine.
        let mut p = Timed::default();
        let mut c = Timed::default();
        let mut o = None;
        for k in 0..3 {
            match (rep + k) % 3 {
                0 => p = time_plain(dir.path(), events, batch, false)?,
                1 => c = time_plain(dir.path(), events, batch, true)?,
                _ => o = Some(time_store(dir.path(), events, batch)?),
            }
        }
        let (o, store) = o.ok_or("store not timed")?;
        let (o_total, p_total, c_total) = (
            o.total.as_secs_f64(),
            p.total.as_secs_f64(),
            c.total.as_secs_f64(),
        );
        ours.push(o_total);
        plain.push(p_total);
        chained.push(c_total);
        ratios.push(o_total / p_total);
        chain_ratios.push(c_total / p_total);
        insert_ratios.push(o.inserts.as_secs_f64() / p.inserts.as_secs_f64());
        *keep = Some((dir, store));
    }
    Ok(Compared {
        ours: median(ours),
        plain: median(plain),
        chain_only: median(chained),
        ratio: median(ratios),
        chain_only_ratio: median(chain_ratios),
        inserts_ratio: median(insert_ratios),
    })
}

fn main() -> BenchResult<()> {
    let o = options()?;
    let (events, runs) = workload(o.events);
    let total = events.len();

    let mut kept = None;
    let b = compare(&events, BATCH, o.reps, &mut kept)?;
    let single_events = &events[..o.single.min(total)];
    let s = compare(single_events, 1, o.reps, &mut None)?;

    // Tree loads from the last full store, through a fresh handle (as a new CLI would).
    let (dir, store) = kept.ok_or("no repetition ran")?;
    drop(store);
    let store = Store::open(&dir.path().join("state"))?;
    let target = runs.get(runs.len() / 2).ok_or("no runs")?;
    let start = Instant::now();
    let first = store.run_tree(target)?.ok_or("run missing")?;
    let cold = start.elapsed().as_secs_f64();
    let mut loads = Vec::with_capacity(o.tree_loads);
    for i in 0..o.tree_loads {
        let run = &runs[(i * 7919) % runs.len()];
        let start = Instant::now();
        let tree = store.run_tree(run)?.ok_or("run missing")?;
        loads.push(start.elapsed().as_secs_f64());
        if tree.steps.len() != first.steps.len() {
            return Err("inconsistent tree".into());
        }
    }
    let tree_median = median(loads);
    let put_blob = time_put_blob(o.blobs, o.reps)?;

    let json = serde_json::json!({
        "events": total,
        "batch": BATCH,
        "reps": o.reps,
        "append_s": b.ours,
        "plain_s": b.plain,
        "chain_only_s": b.chain_only,
        "append_ratio": b.ratio,
        "chain_only_ratio": b.chain_only_ratio,
        "append_inserts_ratio": b.inserts_ratio,
        "append_events_per_s": total as f64 / b.ours,
        "plain_events_per_s": total as f64 / b.plain,
        "single_events": single_events.len(),
        "single_append_s": s.ours,
        "single_plain_s": s.plain,
        "single_chain_only_s": s.chain_only,
        "single_ratio": s.ratio,
        "single_chain_only_ratio": s.chain_only_ratio,
        "single_inserts_ratio": s.inserts_ratio,
        "single_events_per_s": single_events.len() as f64 / s.ours,
        "tree_first_ms": cold * 1e3,
        "tree_median_ms": tree_median * 1e3,
        "tree_loads": o.tree_loads,
        "tree_store_events": total,
        "put_blob_count": o.blobs,
        "put_blob_bytes": SMALL_BLOB,
        "put_blob_us": put_blob * 1e6,
    });
    let mut out = std::io::stdout().lock();
    writeln!(out, "{json}")?;
    Ok(())
}
