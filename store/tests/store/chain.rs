//! The event log: append-only, hash-chained, atomic, shared by concurrent writers.

use std::sync::Arc;

use codencer_store::{
    EventBody, EventIds, GENESIS_HASH, LinkProblem, NewEvent, Store, StoreError, new_id,
};

use crate::fixtures::{
    ACTOR, as_version_4, attempt_started, open, policy_note, raw, run_created, scenario,
    step_created,
};

#[test]
fn store_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Store>();
    assert_send_sync::<Arc<Store>>();
}

#[test]
fn state_dir_layout_is_created() {
    let (dir, store) = open();
    assert!(dir.path().join("codencer.db").is_file());
    assert!(dir.path().join("blobs/sha256").is_dir());
    assert!(dir.path().join("tmp").is_dir());
    assert_eq!(store.root(), dir.path());
    let conn = raw(&dir);
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let version: u32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 5);
}

#[test]
fn events_cannot_be_updated_or_deleted() {
    let (dir, store) = open();
    store.append(policy_note(None, 1)).unwrap();
    let conn = raw(&dir);
    let update = conn.execute("UPDATE events SET actor = 'mallory' WHERE seq = 1", []);
    let err = update.expect_err("UPDATE on events must fail").to_string();
    assert!(err.contains("events are append-only"), "{err}");
    let delete = conn.execute("DELETE FROM events", []);
    let err = delete.expect_err("DELETE on events must fail").to_string();
    assert!(err.contains("events are append-only"), "{err}");
    assert_eq!(store.last_seq().unwrap(), 1);
    assert_eq!(store.events_since(0, 10).unwrap()[0].actor, ACTOR);
}

#[test]
fn appended_events_are_chained_and_read_back_whole() {
    let (_dir, store) = open();
    let run = new_id();
    let first = store.append(run_created(&run, "r")).unwrap();
    let rest = store
        .append_all(vec![
            EventIds::run(&run).event(ACTOR, EventBody::RunStarted {}),
            policy_note(Some(&run), 2),
            policy_note(None, 3),
        ])
        .unwrap();
    assert_eq!(first.seq, 1);
    assert_eq!(first.prev_hash, GENESIS_HASH);
    let all: Vec<_> = std::iter::once(first).chain(rest).collect();
    assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3, 4]);
    for pair in all.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash);
        assert!(pair[1].ts >= pair[0].ts);
    }
    assert_eq!(store.events_since(0, 100).unwrap(), all);
    assert_eq!(store.events_since(2, 1).unwrap(), all[2..3]);
    assert_eq!(store.events_for_run(&run).unwrap(), all[..3]);
    assert_eq!(store.last_seq().unwrap(), 4);
    let report = store.verify().unwrap();
    assert!(report.ok, "{report}");
    assert_eq!(report.events_checked, 4);
}

#[test]
fn a_rejected_event_rolls_back_its_whole_batch() {
    let (_dir, store) = open();
    let run = new_id();
    store.append(run_created(&run, "r")).unwrap();
    let before = store.events_since(0, 10).unwrap();
    let orphan_step = EventIds::step(new_id(), new_id()).event(
        ACTOR,
        EventBody::StepStarted {
            base: "main".into(),
            base_commit: "c".into(),
        },
    );
    let err = store
        .append_all(vec![policy_note(Some(&run), 1), orphan_step])
        .unwrap_err();
    assert!(
        matches!(err, StoreError::UnknownNode { node: "step", .. }),
        "{err:?}"
    );
    let missing_id = NewEvent {
        run_id: None,
        ..run_created("x", "x")
    };
    let err = store.append(missing_id).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::MissingId {
                field: "run id",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(store.events_since(0, 10).unwrap(), before);
    // The chain carries on from the last committed event.
    let next = store.append(policy_note(None, 2)).unwrap();
    assert_eq!(
        (next.seq, next.prev_hash.as_str()),
        (2, before[0].hash.as_str())
    );
    assert!(store.verify().unwrap().ok);
}

#[test]
fn verify_reports_exactly_the_tampered_event() {
    let (dir, store) = open();
    scenario(&store);
    let total = store.last_seq().unwrap();
    assert!(total > 10);
    assert!(store.verify().unwrap().ok);

    let conn = raw(&dir);
    conn.execute_batch("DROP TRIGGER events_no_update").unwrap();
    conn.execute(
        "UPDATE events SET payload = replace(payload, 'demo', 'evil') WHERE seq = 1",
        [],
    )
    .unwrap();
    conn.execute("UPDATE events SET actor = 'mallory' WHERE seq = 7", [])
        .unwrap();
    let report = store.verify().unwrap();
    assert!(!report.ok);
    let broken = report.broken_link.clone().unwrap();
    assert_eq!(broken.seq, 1, "{report}");
    assert_eq!(broken.problem, LinkProblem::Hash);
    assert_eq!(report.events_checked, 0);
    assert_ne!(broken.expected, broken.found);
    assert!(report.to_string().contains("broken at seq 1"), "{report}");
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["ok"], false);
    assert_eq!(json["broken_link"]["seq"], 1);
}

#[test]
fn verify_stops_at_the_first_of_several_tampered_events() {
    let (dir, store) = open();
    scenario(&store);
    let conn = raw(&dir);
    conn.execute_batch("DROP TRIGGER events_no_update").unwrap();
    conn.execute(
        "UPDATE events SET actor = 'mallory' WHERE seq IN (9, 12)",
        [],
    )
    .unwrap();
    let report = store.verify().unwrap();
    let broken = report.broken_link.unwrap();
    assert_eq!(
        (broken.seq, broken.problem, report.events_checked),
        (9, LinkProblem::Hash, 8)
    );
}

#[test]
fn verify_detects_a_deleted_event_and_a_relinked_chain() {
    let (dir, store) = open();
    scenario(&store);
    let conn = raw(&dir);
    conn.execute_batch("DROP TRIGGER events_no_delete; DROP TRIGGER events_no_update")
        .unwrap();
    conn.execute("DELETE FROM events WHERE seq = 5", [])
        .unwrap();
    let broken = store.verify().unwrap().broken_link.unwrap();
    assert_eq!((broken.seq, broken.problem), (6, LinkProblem::Gap));
    assert_eq!(
        (broken.expected.as_str(), broken.found.as_str()),
        ("5", "6")
    );

    // Renumbering to hide the gap breaks the next event's hash: it covers its seq and the
    // hash of the event before it, which is now another one.
    conn.execute("UPDATE events SET seq = seq - 1 WHERE seq > 5", [])
        .unwrap();
    let broken = store.verify().unwrap().broken_link.unwrap();
    assert_eq!((broken.seq, broken.problem), (5, LinkProblem::Hash));
}

#[test]
fn two_stores_on_one_dir_keep_one_unbroken_chain() {
    const PER_THREAD: usize = 300;
    let dir = tempfile::tempdir().unwrap();
    let stores = [
        Store::open(dir.path()).unwrap(),
        Store::open(dir.path()).unwrap(),
    ];
    std::thread::scope(|scope| {
        for (t, store) in stores.iter().enumerate() {
            scope.spawn(move || {
                let mut n = 0;
                while n < PER_THREAD {
                    if n % 3 == 0 {
                        let batch = (0..5).map(|i| policy_note(None, (t * 10_000 + n + i) as u32));
                        store.append_all(batch.collect()).unwrap();
                        n += 5;
                    } else {
                        store
                            .append(policy_note(None, (t * 10_000 + n) as u32))
                            .unwrap();
                        n += 1;
                    }
                }
            });
        }
    });
    let events = stores[0].events_since(0, u32::MAX).unwrap();
    assert!(events.len() >= 2 * PER_THREAD);
    let mut prev = GENESIS_HASH.to_owned();
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.seq, i as u64 + 1);
        assert_eq!(e.prev_hash, prev, "fork at seq {}", e.seq);
        prev = e.hash.clone();
    }
    for store in &stores {
        let report = store.verify().unwrap();
        assert!(report.ok, "{report}");
        assert_eq!(report.events_checked, events.len() as u64);
    }
    // Both handles continue the same chain afterwards.
    let a = stores[0].append(policy_note(None, 1)).unwrap();
    let b = stores[1].append(policy_note(None, 2)).unwrap();
    assert_eq!((b.seq, &b.prev_hash), (a.seq + 1, &a.hash));
}

#[test]
fn reopening_continues_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let last = {
        let store = Store::open(dir.path()).unwrap();
        store.append(policy_note(None, 1)).unwrap()
    };
    let store = Store::open(dir.path()).unwrap();
    let next = store.append(policy_note(None, 2)).unwrap();
    assert_eq!((next.seq, next.prev_hash), (2, last.hash));
}

#[test]
fn a_newer_schema_is_refused() {
    let (dir, store) = open();
    drop(store);
    raw(&dir).pragma_update(None, "user_version", 99).unwrap();
    let err = Store::open(dir.path()).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::SchemaTooNew {
                found: 99,
                supported: 5
            }
        ),
        "{err:?}"
    );
}

/// A store written by schema version 2 (whose unfinished-attempts index said `status IN`) is
/// upgraded in place: the same events and chain, the new index, the same answers.
#[test]
fn a_version_2_store_is_migrated_in_place() {
    let (dir, store) = open();
    scenario(&store);
    let (run, step, attempt) = (new_id(), new_id(), new_id());
    store.append(run_created(&run, "live")).unwrap();
    let a = EventIds::attempt(&run, &step, &attempt);
    store
        .append_all(vec![
            step_created(&EventIds::step(&run, &step), 1, 1),
            attempt_started(&a, 1),
        ])
        .unwrap();
    let head = store.last_seq().unwrap();
    let before = store.run_tree(&run).unwrap().unwrap();
    let events = store.events_since(0, 1000).unwrap();
    drop(store);
    // Back to exactly what version 2 had, which kept every blob in a file.
    as_version_4(&dir);
    let conn = raw(&dir);
    let inline: Vec<(String, Vec<u8>)> = conn
        .prepare("SELECT sha256, data FROM blobs")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(!inline.is_empty());
    for (sha256, data) in inline {
        let path = dir
            .path()
            .join("blobs/sha256")
            .join(&sha256[..2])
            .join(&sha256);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
    }
    conn.execute_batch(
        "DROP TABLE blobs;
             DROP INDEX attempts_unfinished;
             CREATE INDEX attempts_unfinished ON attempts(status)
                 WHERE status IN ('starting', 'running', 'validating');
             PRAGMA user_version = 2;",
    )
    .unwrap();

    let store = Store::open(dir.path()).unwrap();
    let conn = raw(&dir);
    let version: u32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(version, 5);
    // Events, blobs and tokens; the run tree is folded from the events.
    assert_eq!(tables, ["blobs", "events", "tokens"]);
    assert_eq!(store.last_seq().unwrap(), head);
    // The same events, hashes and links as before the downgrade and upgrade.
    assert_eq!(store.events_since(0, 1000).unwrap(), events);
    assert_eq!(store.run_tree(&run).unwrap().unwrap(), before);
    let unfinished: Vec<String> = store
        .unfinished_attempts()
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(unfinished, std::slice::from_ref(&attempt));
    store
        .append(a.event(ACTOR, EventBody::AttemptRunning { pid: None }))
        .unwrap();
    assert_eq!(store.unfinished_attempts().unwrap().len(), 1);
    let report = store.verify().unwrap();
    assert!(report.ok, "{report}");
    let projections = store.check_projections().unwrap();
    assert!(projections.ok, "{projections}");
}
