//! Projections derive from events alone.

use codencer_store::{
    ArtifactKind, AttemptStatus, GateStatus, RowDifference, RunStatus, ValidationStatus,
};

use crate::fixtures::{open, raw, scenario};

#[test]
fn the_scenario_projects_into_the_expected_tree() {
    let (_dir, store) = open();
    let s = scenario(&store);
    let tree = store.run_tree(&s.run).unwrap().unwrap();

    assert_eq!(tree.run.status, RunStatus::Passed);
    assert_eq!(tree.run.policy.as_deref(), Some("strict"));
    assert!(tree.run.finished_at.is_some());
    let last_ts = store
        .events_for_run(&s.run)
        .unwrap()
        .last()
        .unwrap()
        .ts
        .clone();
    assert_eq!(tree.run.updated_at, last_ts);
    assert_eq!(
        tree.artifacts.iter().map(|a| a.kind).collect::<Vec<_>>(),
        [ArtifactKind::Taskspec]
    );
    assert!(tree.gates.is_empty());

    let ids: Vec<_> = tree.steps.iter().map(|st| st.step.id.clone()).collect();
    assert_eq!(ids, s.steps);
    let [step1, step2] = &tree.steps[..] else {
        panic!("two steps")
    };
    assert_eq!(step1.step.index, 1);
    assert_eq!(step1.step.status, RunStatus::Passed);
    assert_eq!(step1.step.head_commit.as_deref(), Some("c1"));
    assert_eq!(step1.step.base_commit.as_deref(), Some("c0"));
    assert!(step1.artifacts.is_empty() && step1.gates.is_empty());
    assert_eq!(
        step1
            .attempts
            .iter()
            .map(|a| (a.attempt.id.clone(), a.attempt.number, a.attempt.status))
            .collect::<Vec<_>>(),
        [
            (s.attempts[0].clone(), 1, AttemptStatus::Failed),
            (s.attempts[1].clone(), 2, AttemptStatus::Passed)
        ]
    );
    let first = &step1.attempts[0];
    assert_eq!(first.validations.len(), 1);
    assert_eq!(first.validations[0].status, ValidationStatus::Failed);
    assert_eq!(
        first.validations[0].output_artifact.as_ref(),
        Some(&first.artifacts[0].id)
    );
    assert_eq!(first.attempt.reason.as_deref(), Some("tests failed"));
    let second = &step1.attempts[1];
    assert_eq!(second.attempt.commit.as_deref(), Some("c1"));
    assert_eq!(second.attempt.files_changed, ["src/a.rs", "src/b.rs"]);
    assert_eq!(
        second.attempt.usage.as_ref().and_then(|u| u.cost_usd),
        Some(0.25)
    );
    assert_eq!(second.attempt.duration_ms, Some(1234));
    assert_eq!(second.attempt.exit_code, Some(0));
    assert_eq!(
        second.artifacts.iter().map(|a| a.kind).collect::<Vec<_>>(),
        [ArtifactKind::Diff]
    );
    let gate = &second.gates[..];
    assert_eq!(gate.len(), 1);
    assert_eq!(gate[0].id, s.gate);
    assert_eq!(gate[0].status, GateStatus::Approved);
    assert_eq!(gate[0].decided_by.as_deref(), Some("alice@laptop"));
    assert_eq!(gate[0].reason.as_deref(), Some("fine"));
    assert!(gate[0].decided_at.is_some());
    assert_eq!(store.gate(&s.gate).unwrap().as_ref(), Some(&gate[0]));

    assert_eq!(step2.step.status, RunStatus::Passed);
    assert_eq!(
        step2.artifacts.iter().map(|a| a.kind).collect::<Vec<_>>(),
        [ArtifactKind::Resultspec]
    );
    assert_eq!(step2.attempts.len(), 1);
    let auto = &step2.attempts[0].gates;
    assert_eq!(auto.len(), 1);
    assert_eq!(
        (auto[0].status, auto[0].decided_by.as_deref()),
        (GateStatus::Passed, Some("policy"))
    );

    assert_eq!(store.step(&s.steps[1]).unwrap().as_ref(), Some(&step2.step));
    assert_eq!(
        store.attempt(&s.attempts[2]).unwrap().as_ref(),
        Some(&step2.attempts[0].attempt)
    );
    assert!(store.run_tree("nope").unwrap().is_none());
}

#[test]
fn awaiting_approval_marks_step_and_run_and_resumes() {
    use codencer_store::{EventBody, EventIds};
    let (_dir, store) = open();
    let run = codencer_store::new_id();
    let step = codencer_store::new_id();
    store
        .append(crate::fixtures::run_created(&run, "r"))
        .unwrap();
    let s = EventIds::step(&run, &step);
    store
        .append(s.event(
            "x",
            EventBody::StepCreated {
                index: 1,
                goal: "g".into(),
                executor: "e".into(),
                max_attempts: 1,
            },
        ))
        .unwrap();
    store
        .append(s.event(
            "x",
            EventBody::StepAwaitingApproval {
                gate: "g".into(),
                reason: "r".into(),
            },
        ))
        .unwrap();
    let tree = store.run_tree(&run).unwrap().unwrap();
    assert_eq!(tree.run.status, RunStatus::AwaitingApproval);
    assert_eq!(tree.steps[0].step.status, RunStatus::AwaitingApproval);
    assert_eq!(store.unfinished_runs().unwrap().len(), 1);
    store
        .append(s.event(
            "x",
            EventBody::StepStarted {
                base: "b".into(),
                base_commit: "c".into(),
            },
        ))
        .unwrap();
    let tree = store.run_tree(&run).unwrap().unwrap();
    assert_eq!(tree.run.status, RunStatus::Running);
    assert_eq!(tree.steps[0].step.status, RunStatus::Running);
}

#[test]
fn rebuilt_projections_equal_the_live_ones() {
    let (_dir, store) = open();
    let s = scenario(&store);
    scenario(&store);
    let token = store
        .create_token("op", "bot", &["runs:read".to_string()], "ab")
        .unwrap();
    store.revoke_token("op", &token.id).unwrap();
    let before = store.run_tree(&s.run).unwrap();
    let report = store.check_projections().unwrap();
    assert!(report.ok, "{report}");
    assert_eq!(report.events, store.last_seq().unwrap());
    assert_eq!(report.runs_folded, 2);
    assert!(
        report
            .tables
            .iter()
            .all(|t| t.live_rows == t.rebuilt_rows && t.live_rows > 0),
        "{report}"
    );
    let report = store.rebuild().unwrap();
    assert!(report.ok && report.replaced, "{report}");
    assert_eq!(store.run_tree(&s.run).unwrap(), before);
    assert!(store.check_projections().unwrap().ok);
}

/// The daemon's tokens are the one projection kept as a table (an API request finds its token
/// by digest): drift in it is reported and repaired like any projection's.
#[test]
fn drifted_projections_are_reported_and_repaired() {
    let (dir, store) = open();
    let s = scenario(&store);
    let scopes = ["runs:read".to_string()];
    let kept = store.create_token("op", "kept", &scopes, "aa").unwrap();
    let revoked = store.create_token("op", "revoked", &scopes, "bb").unwrap();
    store.revoke_token("op", &revoked.id).unwrap();
    let before = store.list_tokens().unwrap();
    let conn = raw(&dir);
    // A revoked token made valid again, a token dropped, one forged.
    conn.execute(
        "UPDATE tokens SET revoked_at = NULL WHERE id = ?1",
        [&revoked.id],
    )
    .unwrap();
    conn.execute("DELETE FROM tokens WHERE id = ?1", [&kept.id])
        .unwrap();
    conn.execute(
        "INSERT INTO tokens (id, seq, name, sha256, scopes, created_at, created_by)
         VALUES ('forged', 999, 'forged', 'cc', '[\"admin\"]', 'now', 'mallory')",
        [],
    )
    .unwrap();

    let report = store.check_projections().unwrap();
    assert!(!report.ok);
    assert_eq!(report.differences_total, 3, "{report}");
    let found: Vec<_> = report
        .differences
        .iter()
        .map(|d| (d.table, d.id.as_str(), d.difference.clone()))
        .collect();
    assert!(
        found.contains(&("tokens", kept.id.as_str(), RowDifference::MissingFromLive)),
        "{report}"
    );
    assert!(
        found.contains(&("tokens", "forged", RowDifference::NotFromEvents)),
        "{report}"
    );
    let changed = found.iter().find(|(_, id, _)| *id == revoked.id).unwrap();
    let RowDifference::Changed { columns } = &changed.2 else {
        panic!("{report}")
    };
    assert_eq!(columns.len(), 1);
    assert_eq!(columns[0].column.as_str(), "revoked_at");
    assert_eq!(columns[0].live, serde_json::Value::Null);
    assert!(
        report.to_string().contains("revoked_at is null live"),
        "{report}"
    );
    // check_projections changes nothing.
    assert_eq!(store.check_projections().unwrap().differences_total, 3);

    let report = store.rebuild().unwrap();
    assert!(!report.ok && report.replaced);
    assert_eq!(store.list_tokens().unwrap(), before);
    assert!(store.find_token_by_hash("cc").unwrap().is_none());
    assert!(store.check_projections().unwrap().ok);
    assert!(store.verify().unwrap().ok);
    // The run tree never had a copy to drift: it is folded from the events.
    assert_eq!(
        store.run_tree(&s.run).unwrap().unwrap().run.status,
        RunStatus::Passed
    );
}
