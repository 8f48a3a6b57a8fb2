//! A quick look at throughput and latency, ignored by default (run in release):
//! `cargo test --release -p codencer-store --test store -- --ignored --nocapture perf`.
//! The measured figures, against their references, come from `scripts/bench.sh`.

use std::time::Instant;

use codencer_store::{
    ArtifactKind, AttemptStatus, EventBody, EventIds, NewEvent, RunStatus, Store, ValidationStatus,
    new_id,
};

use crate::fixtures::{ACTOR, policy_note, run_created};

const EVENTS: usize = 100_000;
const BATCH: usize = 1_000;

/// About 30 events per run: 3 steps of 2 attempts each, with artifacts and validations.
fn workload(n: usize) -> (Vec<NewEvent>, String) {
    let mut events = Vec::with_capacity(n + 64);
    let mut last_run = String::new();
    while events.len() < n {
        let run = new_id();
        events.push(run_created(&run, "bench"));
        events.push(EventIds::run(&run).event(ACTOR, EventBody::RunStarted {}));
        for index in 1..=3 {
            let step = new_id();
            let s = EventIds::step(&run, &step);
            events.push(s.event(
                ACTOR,
                EventBody::StepCreated {
                    index,
                    goal: "goal".into(),
                    executor: "claude".into(),
                    max_attempts: 3,
                },
            ));
            events.push(s.event(
                ACTOR,
                EventBody::StepStarted {
                    base: "main".into(),
                    base_commit: "c0".into(),
                },
            ));
            for number in 1..=2 {
                let a = EventIds::attempt(&run, &step, new_id());
                events.push(a.event(
                    ACTOR,
                    EventBody::AttemptStarted {
                        number,
                        executor: "claude".into(),
                        branch: "codencer/x".into(),
                        worktree: "/wt/x".into(),
                        base_commit: "c0".into(),
                    },
                ));
                events.push(a.event(ACTOR, EventBody::AttemptRunning { pid: Some(1) }));
                events.push(a.event(
                    ACTOR,
                    EventBody::ArtifactRecorded {
                        artifact_id: new_id(),
                        kind: ArtifactKind::Diff,
                        name: None,
                        sha256: "0".repeat(64),
                        bytes: 10,
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
                        commit: Some("c1".into()),
                        files_changed: vec!["a.rs".into()],
                        insertions: 1,
                        deletions: 0,
                        duration_ms: 10,
                        summary: None,
                        usage: None,
                    },
                ));
            }
            events.push(s.event(
                ACTOR,
                EventBody::StepCompleted {
                    status: RunStatus::Passed,
                    head_commit: None,
                    attempts: 2,
                    reason: None,
                },
            ));
        }
        events.push(policy_note(Some(&run), 0));
        events.push(EventIds::run(&run).event(
            ACTOR,
            EventBody::RunCompleted {
                status: RunStatus::Passed,
                reason: None,
            },
        ));
        last_run = run;
    }
    (events, last_run)
}

#[test]
#[ignore = "benchmark; run in release"]
fn perf_append_and_tree() {
    let (events, last_run) = workload(EVENTS);
    let total = events.len();

    // Baseline: plain rusqlite inserts of the same rows, same batches, no chain, no projections.
    let dir = tempfile::tempdir().unwrap();
    let conn = rusqlite::Connection::open(dir.path().join("plain.db")).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
         CREATE TABLE events (seq INTEGER PRIMARY KEY, ts TEXT NOT NULL, run_id TEXT,
           step_id TEXT, attempt_id TEXT, kind TEXT NOT NULL, actor TEXT NOT NULL,
           payload TEXT NOT NULL);",
    )
    .unwrap();
    let start = Instant::now();
    let mut conn = conn;
    for chunk in events.chunks(BATCH) {
        let tx = conn.transaction().unwrap();
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO events (ts, run_id, step_id, attempt_id, kind, actor, payload)
                     VALUES ('2026-01-01T00:00:00.000Z', ?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .unwrap();
            for e in chunk {
                let payload = serde_json::to_string(&e.body).unwrap();
                stmt.execute(rusqlite::params![
                    e.run_id,
                    e.step_id,
                    e.attempt_id,
                    e.body.kind(),
                    e.actor,
                    payload
                ])
                .unwrap();
            }
        }
        tx.commit().unwrap();
    }
    let plain = start.elapsed();

    let store = Store::open(&dir.path().join("state")).unwrap();
    let start = Instant::now();
    let mut chunk = Vec::with_capacity(BATCH);
    for e in events {
        chunk.push(e);
        if chunk.len() == BATCH {
            store.append_all(std::mem::take(&mut chunk)).unwrap();
        }
    }
    store.append_all(chunk).unwrap();
    let chained = start.elapsed();

    let start = Instant::now();
    let tree = store.run_tree(&last_run).unwrap().unwrap();
    let tree_time = start.elapsed();
    assert_eq!(tree.steps.len(), 3);

    let start = Instant::now();
    for _ in 0..1000 {
        store.append(policy_note(None, 1)).unwrap();
    }
    let single = start.elapsed();

    let start = Instant::now();
    let report = store.verify().unwrap();
    let verify_time = start.elapsed();
    // The workload's artifacts have no blobs: only the chain must check out.
    assert!(report.broken_link.is_none() && report.integrity_errors.is_empty());
    let start = Instant::now();
    assert!(store.check_projections().unwrap().ok);
    let check_time = start.elapsed();

    let rate = total as f64 / chained.as_secs_f64();
    let ratio = chained.as_secs_f64() / plain.as_secs_f64();
    println!(
        "{total} events: chained {chained:?} ({rate:.0}/s), plain {plain:?} (ratio {ratio:.2}); \
         run_tree {tree_time:?}; 1000 single appends {single:?}; verify {verify_time:?}; \
         check_projections {check_time:?}"
    );
    // No timed assertions: the targets are checked by `scripts/bench.sh`, side by side with
    // their references (docs/performance.md).
}
