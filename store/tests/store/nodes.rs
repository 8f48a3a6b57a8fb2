//! The run tree is folded from events: appends refuse events that would not fold, from any
//! number of store handles, and nodes are found by id alone.

use codencer_store::{ArtifactKind, EventBody, EventIds, GateStatus, Store, StoreError, new_id};

use crate::fixtures::{ACTOR, attempt_started, open, run_created, scenario, step_created};

fn is_duplicate(err: &StoreError, node: &str) -> bool {
    matches!(err, StoreError::DuplicateNode { node: n, .. } if *n == node)
}

fn is_unknown(err: &StoreError, node: &str) -> bool {
    matches!(err, StoreError::UnknownNode { node: n, .. } if *n == node)
}

#[test]
fn nodes_are_created_once_and_only_under_their_parents() {
    let (_dir, store) = open();
    let (run, other_run, step, attempt) = (new_id(), new_id(), new_id(), new_id());
    store.append(run_created(&run, "r")).unwrap();
    store.append(run_created(&other_run, "o")).unwrap();
    let s = EventIds::step(&run, &step);
    let a = EventIds::attempt(&run, &step, &attempt);
    store.append(step_created(&s, 1, 1)).unwrap();
    store.append(attempt_started(&a, 1)).unwrap();
    let head = store.last_seq().unwrap();

    // Created twice, in a later transaction and within one.
    let err = store.append(run_created(&run, "again")).unwrap_err();
    assert!(is_duplicate(&err, "run"), "{err:?}");
    let err = store.append(step_created(&s, 2, 1)).unwrap_err();
    assert!(is_duplicate(&err, "step"), "{err:?}");
    let fresh = EventIds::step(&run, new_id());
    let err = store
        .append_all(vec![step_created(&fresh, 2, 1), step_created(&fresh, 3, 1)])
        .unwrap_err();
    assert!(is_duplicate(&err, "step"), "{err:?}");
    let err = store.append(attempt_started(&a, 2)).unwrap_err();
    assert!(is_duplicate(&err, "attempt"), "{err:?}");

    // Under a parent that does not exist, or under another run's.
    let err = store
        .append(step_created(&EventIds::step(new_id(), new_id()), 1, 1))
        .unwrap_err();
    assert!(is_unknown(&err, "run"), "{err:?}");
    let err = store
        .append(attempt_started(
            &EventIds::attempt(&other_run, &step, new_id()),
            1,
        ))
        .unwrap_err();
    assert!(is_unknown(&err, "step"), "{err:?}");
    let err = store
        .append(
            EventIds::attempt(&other_run, &step, &attempt)
                .event(ACTOR, EventBody::AttemptRunning { pid: None }),
        )
        .unwrap_err();
    assert!(is_unknown(&err, "attempt"), "{err:?}");
    let err = store
        .record_artifact(
            &EventIds::attempt(&run, &step, new_id()),
            ACTOR,
            ArtifactKind::Diff,
            None,
            b"x",
        )
        .unwrap_err();
    assert!(is_unknown(&err, "attempt"), "{err:?}");

    // Nothing of it was appended, and the run still folds.
    assert_eq!(store.last_seq().unwrap(), head);
    let tree = store.run_tree(&run).unwrap().unwrap();
    assert_eq!(tree.steps.len(), 1);
    assert_eq!(tree.steps[0].attempts.len(), 1);
    assert!(store.check_projections().unwrap().ok);
}

/// What one handle remembers never stands in for what another wrote: a node made through
/// another handle (another process) is found in the record, and a run another handle wrote
/// to is checked against the record again.
#[test]
fn checks_hold_across_store_handles() {
    let (dir, a) = open();
    let b = Store::open(dir.path()).unwrap();
    let (run, step) = (new_id(), new_id());
    a.append(run_created(&run, "r")).unwrap();
    a.append(step_created(&EventIds::step(&run, &step), 1, 2))
        .unwrap();

    // b knows nothing of them, and finds them.
    let first = EventIds::attempt(&run, &step, new_id());
    b.append(attempt_started(&first, 1)).unwrap();
    let err = b
        .append(step_created(&EventIds::step(&run, &step), 2, 1))
        .unwrap_err();
    assert!(is_duplicate(&err, "step"), "{err:?}");

    // a's memory of the run is stale now: the attempt b made is found as a duplicate all the
    // same, and a can carry on with it.
    let err = a.append(attempt_started(&first, 2)).unwrap_err();
    assert!(is_duplicate(&err, "attempt"), "{err:?}");
    a.append(first.event(ACTOR, EventBody::AttemptRunning { pid: Some(1) }))
        .unwrap();

    let tree = b.run_tree(&run).unwrap().unwrap();
    assert_eq!(tree.steps[0].attempts.len(), 1);
    assert!(a.verify().unwrap().ok);
}

/// Steps, attempts, artifacts and gates are found by id alone, whatever time their id
/// carries: ULIDs from now, from the epoch and from the far future, and ids that are not
/// ULIDs at all.
#[test]
fn nodes_are_found_by_id_whatever_their_id_says() {
    let (_dir, store) = open();
    let s = scenario(&store);
    // Ids outside the time the events were written.
    let epoch = "00000000000000000000000000";
    let future = "7ZZZZZZZZZZZZZZZZZZZZZZZZZ";
    let run = new_id();
    let r = EventIds::run(&run);
    store.append(run_created(&run, "odd ids")).unwrap();
    store
        .append(step_created(&EventIds::step(&run, epoch), 1, 1))
        .unwrap();
    store
        .append(attempt_started(&EventIds::attempt(&run, epoch, future), 1))
        .unwrap();
    for gate_id in ["gate-1", future] {
        store
            .append(r.event(
                ACTOR,
                EventBody::GateOpened {
                    gate_id: gate_id.into(),
                    name: "review".into(),
                    reason: "look".into(),
                },
            ))
            .unwrap();
    }
    store
        .append(r.event(
            ACTOR,
            EventBody::GateDecided {
                gate_id: "gate-1".into(),
                name: "review".into(),
                status: GateStatus::Approved,
                reason: None,
            },
        ))
        .unwrap();
    // Later events, so a scan from the wrong place would have to skip them.
    scenario(&store);

    assert_eq!(store.step(&s.steps[1]).unwrap().unwrap().index, 2);
    assert_eq!(store.step(epoch).unwrap().unwrap().run_id, run);
    assert_eq!(store.attempt(&s.attempts[2]).unwrap().unwrap().number, 1);
    assert_eq!(store.attempt(future).unwrap().unwrap().step_id, epoch);
    let gate = store.gate("gate-1").unwrap().unwrap();
    assert_eq!(
        (
            gate.status,
            gate.reason.as_deref(),
            gate.decided_by.as_deref()
        ),
        (GateStatus::Approved, Some("look"), Some(ACTOR))
    );
    assert_eq!(
        store.gate(future).unwrap().unwrap().status,
        GateStatus::Pending
    );
    assert_eq!(
        store.gate(&s.gate).unwrap().unwrap().status,
        GateStatus::Approved
    );

    let tree = store.run_tree(&s.run).unwrap().unwrap();
    let artifact = &tree.steps[0].attempts[0].artifacts[0];
    assert_eq!(
        store.artifact(&artifact.id).unwrap().as_ref(),
        Some(artifact)
    );
    let taskspec = &tree.artifacts[0];
    assert_eq!(
        store.artifact(&taskspec.id).unwrap().as_ref(),
        Some(taskspec)
    );

    for missing in [new_id(), epoch.to_owned(), future.to_owned(), "nope".into()] {
        assert_eq!(store.artifact(&missing).unwrap(), None, "{missing}");
    }
    assert_eq!(store.step(future).unwrap(), None);
    assert_eq!(store.attempt(epoch).unwrap(), None);
    assert_eq!(store.gate(&new_id()).unwrap(), None);
    // An id that only appears inside another field is not that node.
    assert_eq!(store.gate("review").unwrap(), None);
}
