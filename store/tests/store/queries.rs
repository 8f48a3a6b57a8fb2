//! Lookups: run ids by prefix, run lists, unfinished work, gates.

use codencer_store::{
    AttemptStatus, EventBody, EventIds, GateStatus, RunFilter, RunStatus, StoreError,
};

use crate::fixtures::{ACTOR, open, run_created, scenario};

#[test]
fn resolve_run_id_accepts_unique_prefixes_only() {
    let (_dir, store) = open();
    for id in ["01HAAA1", "01HAAB2", "01HB", "01HB2"] {
        store.append(run_created(id, id)).unwrap();
    }
    assert_eq!(store.resolve_run_id("01HAAA").unwrap(), "01HAAA1");
    assert_eq!(store.resolve_run_id("01haab").unwrap(), "01HAAB2");
    assert_eq!(store.resolve_run_id("01HAAA1").unwrap(), "01HAAA1");
    // An exact id wins over the longer ids it prefixes.
    assert_eq!(store.resolve_run_id("01HB").unwrap(), "01HB");
    match store.resolve_run_id("01HAA") {
        Err(StoreError::AmbiguousRunId {
            prefix,
            mut candidates,
        }) => {
            candidates.sort();
            assert_eq!(
                (prefix.as_str(), candidates),
                ("01HAA", vec!["01HAAA1".to_owned(), "01HAAB2".to_owned()])
            );
        }
        other => panic!("{other:?}"),
    }
    let err = store.resolve_run_id("01H").unwrap_err();
    assert!(err.to_string().contains("ambiguous"), "{err}");
    for none in ["", "02", "%", "01H_AA", "01HAAA12"] {
        assert!(
            matches!(
                store.resolve_run_id(none),
                Err(StoreError::RunNotFound { .. })
            ),
            "{none:?}"
        );
    }
}

#[test]
fn list_runs_filters_and_pages_newest_first() {
    let (_dir, store) = open();
    let ids: Vec<String> = (0..5).map(|_| codencer_store::new_id()).collect();
    for (i, id) in ids.iter().enumerate() {
        store
            .append(run_created(id, if i % 2 == 0 { "even" } else { "odd" }))
            .unwrap();
    }
    store
        .append(EventIds::run(&ids[4]).event(
            ACTOR,
            EventBody::RunCompleted {
                status: RunStatus::Cancelled,
                reason: Some("stop".into()),
            },
        ))
        .unwrap();
    let list = |f: RunFilter| -> Vec<String> {
        store
            .list_runs(&f)
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect()
    };
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(list(RunFilter::default()), newest_first);
    assert_eq!(
        list(RunFilter {
            limit: Some(2),
            ..Default::default()
        }),
        newest_first[..2]
    );
    assert_eq!(
        list(RunFilter {
            before: Some(ids[3].clone()),
            limit: Some(2),
            ..Default::default()
        }),
        [ids[2].clone(), ids[1].clone()]
    );
    assert_eq!(
        list(RunFilter {
            name: Some("even".into()),
            ..Default::default()
        }),
        [ids[4].clone(), ids[2].clone(), ids[0].clone()]
    );
    assert_eq!(
        list(RunFilter {
            status: Some(RunStatus::Cancelled),
            ..Default::default()
        }),
        [ids[4].clone()]
    );
    let unfinished: Vec<String> = store
        .unfinished_runs()
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(unfinished, ids[..4]);
}

#[test]
fn unfinished_attempts_and_gates_by_status() {
    let (_dir, store) = open();
    let s = scenario(&store);
    assert!(store.unfinished_attempts().unwrap().is_empty());
    assert!(store.unfinished_runs().unwrap().is_empty());

    // A second run left mid-flight: its attempt and gate stay open.
    let run = codencer_store::new_id();
    let step = codencer_store::new_id();
    let attempt = codencer_store::new_id();
    store.append(run_created(&run, "live")).unwrap();
    let a = EventIds::attempt(&run, &step, &attempt);
    store
        .append_all(vec![
            EventIds::step(&run, &step).event(
                ACTOR,
                EventBody::StepCreated {
                    index: 1,
                    goal: "g".into(),
                    executor: "e".into(),
                    max_attempts: 2,
                },
            ),
            a.event(
                ACTOR,
                EventBody::AttemptStarted {
                    number: 1,
                    executor: "e".into(),
                    branch: "b".into(),
                    worktree: "/w".into(),
                    base_commit: "c".into(),
                },
            ),
            a.event(ACTOR, EventBody::AttemptRunning { pid: Some(7) }),
            a.event(
                ACTOR,
                EventBody::GateOpened {
                    gate_id: "G".into(),
                    name: "human".into(),
                    reason: "why".into(),
                },
            ),
        ])
        .unwrap();
    let open_attempts = store.unfinished_attempts().unwrap();
    assert_eq!(open_attempts.len(), 1);
    assert_eq!(
        (open_attempts[0].id.as_str(), open_attempts[0].status),
        (attempt.as_str(), AttemptStatus::Running)
    );
    assert_eq!(store.unfinished_runs().unwrap().len(), 1);

    let pending = store.gates(None, Some(GateStatus::Pending)).unwrap();
    assert_eq!(
        pending.iter().map(|g| g.id.as_str()).collect::<Vec<_>>(),
        ["G"]
    );
    assert_eq!(pending[0].reason.as_deref(), Some("why"));
    assert_eq!(store.gates(Some(&s.run), None).unwrap().len(), 2);
    assert_eq!(
        store
            .gates(Some(&s.run), Some(GateStatus::Approved))
            .unwrap()[0]
            .id,
        s.gate
    );
    assert_eq!(store.gates(None, None).unwrap().len(), 3);
}
