//! The WAL across processes: closing a store does not checkpoint (docs/store.md), so what the
//! next process needs is read back from the WAL, and `wal_autocheckpoint` keeps it bounded.

use codencer_store::Store;

use crate::fixtures::{open, policy_decided, policy_note, scenario};

/// Size of one WAL frame: a 24-byte header and a 4096-byte page.
const FRAME: u64 = 24 + 4096;

fn wal_len(dir: &std::path::Path) -> u64 {
    std::fs::metadata(dir.join("codencer.db-wal"))
        .map(|m| m.len())
        .unwrap_or(0)
}

#[test]
fn closing_leaves_the_wal_and_a_new_store_sees_every_event() {
    let (dir, store) = open();
    scenario(&store);
    let last = store.append(policy_note(None, 1)).unwrap();
    drop(store);

    // A checkpoint on close would have copied the WAL into the database and removed it.
    assert!(wal_len(dir.path()) > 0, "the WAL was checkpointed on close");
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.last_seq().unwrap(), last.seq);
    let report = store.verify().unwrap();
    assert!(report.ok, "{report}");
    let projections = store.check_projections().unwrap();
    assert!(projections.ok, "{projections}");
}

/// A daemon keeps its store open while CLI processes open, append and close theirs.
#[test]
fn a_short_lived_store_closing_beside_a_long_lived_one() {
    let (dir, daemon) = open();
    daemon.append(policy_note(None, 1)).unwrap();
    for n in 0..3 {
        let cli = Store::open(dir.path()).unwrap();
        cli.append(policy_note(None, 10 + n)).unwrap();
        drop(cli);
        let next = daemon.append(policy_note(None, 20 + n)).unwrap();
        assert_eq!(next.seq, 3 + 2 * u64::from(n));
    }
    assert_eq!(daemon.events_since(0, 100).unwrap().len(), 7);
    drop(daemon);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.last_seq().unwrap(), 7);
    let report = store.verify().unwrap();
    assert!(report.ok, "{report}");
}

/// Processes that make one big transaction each: a WAL over 2 MB is checkpointed when a store
/// closes, so it never holds much more than that plus one process's writes. (`wal_autocheckpoint`
/// alone would not bound it here: a WAL recovered by a new process counts as not checkpointed,
/// and one transaction per process never gets to restart it.)
#[test]
fn the_wal_stays_bounded_across_processes() {
    let (dir, store) = open();
    drop(store);
    // About one page per event: twelve closes write ~12,000 pages, past the threshold.
    let reason = "x".repeat(3_000);
    let mut appended = 0;
    for _ in 0..12 {
        let store = Store::open(dir.path()).unwrap();
        let batch = (0..1_000)
            .map(|_| policy_decided(None, reason.clone()))
            .collect();
        appended += store.append_all(batch).unwrap().len();
        drop(store);
    }
    let wal = wal_len(dir.path());
    // 2 MB (~510 pages) plus one transaction of ~1,000 pages, not the ~12,000 pages written.
    assert!(wal <= 2_000 * FRAME, "WAL of {} pages", wal / FRAME);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.last_seq().unwrap(), appended as u64);
}

/// `codencer run` exits without dropping its store: it settles the WAL itself first.
#[test]
fn checkpoint_before_exit_truncates_a_large_wal_and_loses_nothing() {
    let (dir, store) = open();
    let reason = "x".repeat(3_000);
    let batch = (0..1_000)
        .map(|_| policy_decided(None, reason.clone()))
        .collect();
    let appended = store.append_all(batch).unwrap().len() as u64;
    assert!(
        wal_len(dir.path()) > 2 << 20,
        "the WAL is past the threshold"
    );

    store.checkpoint_before_exit();
    assert_eq!(wal_len(dir.path()), 0);
    // Still usable, and an exit without a close keeps what was appended after it too.
    let last = store.append(policy_note(None, 1)).unwrap();
    assert_eq!(last.seq, appended + 1);
    std::mem::forget(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.last_seq().unwrap(), appended + 1);
    let report = store.verify().unwrap();
    assert!(report.ok, "{report}");
}

#[test]
fn checkpoint_before_exit_leaves_a_small_wal_for_the_next_process() {
    let (dir, store) = open();
    scenario(&store);
    let before = wal_len(dir.path());
    assert!(before > 0);
    store.checkpoint_before_exit();
    assert_eq!(wal_len(dir.path()), before);
}
