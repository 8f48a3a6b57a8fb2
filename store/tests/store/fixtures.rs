//! A realistic run, shared by the suites.

use codencer_store::{
    ArtifactKind, AttemptStatus, EventBody, EventIds, GateStatus, NewEvent, ProcessExit, RunStatus,
    Store, Usage, ValidationStatus, new_id,
};
use tempfile::TempDir;

pub const ACTOR: &str = "tester@host";

pub fn open() -> (TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    (dir, store)
}

pub fn raw(dir: &TempDir) -> rusqlite::Connection {
    rusqlite::Connection::open(dir.path().join("codencer.db")).unwrap()
}

/// Rewrites a store of the current schema into what schema version 4 kept: hashes as hex text
/// with each event's `prev_hash`, the run-tree projection tables (empty: the upgrade drops
/// them whole), `user_version` 4. Versions before 4 are made from this by each test.
pub fn as_version_4(dir: &TempDir) {
    raw(dir)
        .execute_batch(
            "CREATE TABLE events_v4 (
                 seq INTEGER PRIMARY KEY CHECK (seq > 0), ts TEXT NOT NULL, run_id TEXT,
                 step_id TEXT, attempt_id TEXT, kind TEXT NOT NULL, actor TEXT NOT NULL,
                 payload TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
             INSERT INTO events_v4
             SELECT seq, ts, run_id, step_id, attempt_id, kind, actor, payload,
                    lower(hex(COALESCE((SELECT p.hash FROM events AS p WHERE p.seq = e.seq - 1),
                                       zeroblob(32)))),
                    lower(hex(hash))
             FROM events AS e ORDER BY seq;
             DROP TABLE events;
             ALTER TABLE events_v4 RENAME TO events;
             CREATE INDEX events_run ON events(run_id, seq) WHERE run_id IS NOT NULL;
             CREATE TRIGGER events_no_update BEFORE UPDATE ON events
             BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
             CREATE TRIGGER events_no_delete BEFORE DELETE ON events
             BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
             CREATE TABLE runs (id TEXT PRIMARY KEY NOT NULL, seq INTEGER NOT NULL,
                                status TEXT NOT NULL);
             CREATE TABLE steps (id TEXT PRIMARY KEY NOT NULL, seq INTEGER NOT NULL,
                                 run_id TEXT NOT NULL REFERENCES runs(id));
             CREATE TABLE attempts (id TEXT PRIMARY KEY NOT NULL, seq INTEGER NOT NULL,
                                    run_id TEXT NOT NULL REFERENCES runs(id),
                                    step_id TEXT NOT NULL REFERENCES steps(id),
                                    status TEXT NOT NULL);
             CREATE INDEX attempts_unfinished ON attempts(status)
                 WHERE status = 'starting' OR status = 'running' OR status = 'validating';
             CREATE TABLE artifacts (id TEXT PRIMARY KEY NOT NULL,
                                     attempt_id TEXT REFERENCES attempts(id));
             CREATE TABLE validations (id TEXT PRIMARY KEY NOT NULL,
                                       attempt_id TEXT NOT NULL REFERENCES attempts(id));
             CREATE TABLE gates (id TEXT PRIMARY KEY NOT NULL,
                                 run_id TEXT NOT NULL REFERENCES runs(id));
             PRAGMA user_version = 4;",
        )
        .unwrap();
}

pub fn run_created(run_id: &str, name: &str) -> NewEvent {
    EventIds::run(run_id).event(
        ACTOR,
        EventBody::RunCreated {
            name: name.into(),
            workspace: "/repo".into(),
            executor: "claude".into(),
            policy: Some("strict".into()),
            steps: 2,
        },
    )
}

pub fn policy_note(run_id: Option<&str>, n: u32) -> NewEvent {
    policy_decided(run_id, format!("note {n}"))
}

/// An admission `policy.decided` event with `reason` (its size sets the event's).
pub fn policy_decided(run_id: Option<&str>, reason: String) -> NewEvent {
    NewEvent {
        run_id: run_id.map(str::to_owned),
        step_id: None,
        attempt_id: None,
        actor: ACTOR.into(),
        body: EventBody::PolicyDecided {
            stage: "admission".into(),
            verdict: "allow".into(),
            reason,
            origin: None,
        },
    }
}

/// Ids of the scenario's nodes.
#[derive(Debug)]
pub struct Scenario {
    pub run: String,
    pub steps: [String; 2],
    /// Step 1 has two attempts (the first failed), step 2 one.
    pub attempts: [String; 3],
    pub gate: String,
}

/// `step.created` for step `index` (1-based) of a run.
pub fn step_created(ids: &EventIds, index: u32, max_attempts: u32) -> NewEvent {
    ids.event(
        "supervisor",
        EventBody::StepCreated {
            index,
            goal: format!("step {index}"),
            executor: "claude".into(),
            max_attempts,
        },
    )
}

pub fn attempt_started(ids: &EventIds, number: u32) -> NewEvent {
    ids.event(
        "supervisor",
        EventBody::AttemptStarted {
            number,
            executor: "claude".into(),
            branch: format!("codencer/{number}"),
            worktree: format!("/wt/{number}"),
            base_commit: "base".into(),
        },
    )
}

fn attempt_completed(ids: &EventIds, status: AttemptStatus, commit: Option<&str>) -> NewEvent {
    ids.event(
        "supervisor",
        EventBody::AttemptCompleted {
            status,
            exit: Some(ProcessExit {
                code: Some(0),
                signal: None,
            }),
            reason: (status != AttemptStatus::Passed).then(|| "tests failed".to_owned()),
            commit: commit.map(str::to_owned),
            files_changed: vec!["src/a.rs".into(), "src/b.rs".into()],
            insertions: 10,
            deletions: 2,
            duration_ms: 1234,
            summary: Some("did things".into()),
            usage: Some(Usage {
                input_tokens: Some(100),
                output_tokens: Some(50),
                cost_usd: Some(0.25),
            }),
        },
    )
}

fn validation(ids: &EventIds, status: ValidationStatus, output: Option<String>) -> NewEvent {
    ids.event(
        "supervisor",
        EventBody::ValidationCompleted {
            validation_id: new_id(),
            name: "cargo test".into(),
            command: "cargo test".into(),
            status,
            exit_code: Some(i32::from(status != ValidationStatus::Passed)),
            duration_ms: 99,
            output_artifact: output,
        },
    )
}

/// A run with 2 steps, a retry, validations, artifacts, and a gate opened then approved.
pub fn scenario(store: &Store) -> Scenario {
    let run = new_id();
    let steps = [new_id(), new_id()];
    let attempts = [new_id(), new_id(), new_id()];
    let gate = new_id();
    let r = EventIds::run(&run);
    store.append(run_created(&run, "demo")).unwrap();
    store
        .record_artifact(&r, ACTOR, ArtifactKind::Taskspec, None, b"goal: demo")
        .unwrap();
    store
        .append(r.event("supervisor", EventBody::RunStarted {}))
        .unwrap();
    store
        .append_all(
            steps
                .iter()
                .enumerate()
                .map(|(i, s)| step_created(&EventIds::step(&run, s), i as u32 + 1, 3))
                .collect(),
        )
        .unwrap();

    // Step 1, attempt 1: fails its validation.
    let s1 = EventIds::step(&run, &steps[0]);
    store
        .append(s1.event(
            "supervisor",
            EventBody::StepStarted {
                base: "main".into(),
                base_commit: "c0".into(),
            },
        ))
        .unwrap();
    let a1 = EventIds::attempt(&run, &steps[0], &attempts[0]);
    store.append(attempt_started(&a1, 1)).unwrap();
    store
        .append(a1.event("supervisor", EventBody::AttemptRunning { pid: Some(42) }))
        .unwrap();
    store
        .append(a1.event("supervisor", EventBody::AttemptValidating {}))
        .unwrap();
    let out = store
        .record_artifact(
            &a1,
            "supervisor",
            ArtifactKind::ValidatorOutput,
            Some("cargo test"),
            b"FAILED",
        )
        .unwrap();
    store
        .append_all(vec![
            validation(&a1, ValidationStatus::Failed, Some(out.id)),
            attempt_completed(&a1, AttemptStatus::Failed, None),
        ])
        .unwrap();

    // Attempt 2: passes, then waits for a human.
    let a2 = EventIds::attempt(&run, &steps[0], &attempts[1]);
    store.append(attempt_started(&a2, 2)).unwrap();
    store
        .append(a2.event("supervisor", EventBody::AttemptRunning { pid: None }))
        .unwrap();
    store
        .record_artifact(&a2, "supervisor", ArtifactKind::Diff, None, b"+fn a() {}")
        .unwrap();
    store
        .append(validation(&a2, ValidationStatus::Passed, None))
        .unwrap();
    store
        .append(attempt_completed(&a2, AttemptStatus::Passed, Some("c1")))
        .unwrap();
    store
        .append_all(vec![
            a2.event(
                "supervisor",
                EventBody::GateOpened {
                    gate_id: gate.clone(),
                    name: "human".into(),
                    reason: "touches CI".into(),
                },
            ),
            s1.event(
                "supervisor",
                EventBody::StepAwaitingApproval {
                    gate: gate.clone(),
                    reason: "touches CI".into(),
                },
            ),
        ])
        .unwrap();
    store
        .append(a2.event(
            "alice@laptop",
            EventBody::GateDecided {
                gate_id: gate.clone(),
                name: "human".into(),
                status: GateStatus::Approved,
                reason: Some("fine".into()),
            },
        ))
        .unwrap();
    store
        .append(s1.event(
            "supervisor",
            EventBody::StepStarted {
                base: "main".into(),
                base_commit: "c0".into(),
            },
        ))
        .unwrap();
    store
        .append(s1.event(
            "supervisor",
            EventBody::StepCompleted {
                status: RunStatus::Passed,
                head_commit: Some("c1".into()),
                attempts: 2,
                reason: None,
            },
        ))
        .unwrap();

    // Step 2: one attempt that passes, with an automatic gate decided without being opened.
    let s2 = EventIds::step(&run, &steps[1]);
    let a3 = EventIds::attempt(&run, &steps[1], &attempts[2]);
    store
        .append_all(vec![
            s2.event(
                "supervisor",
                EventBody::StepStarted {
                    base: "c1".into(),
                    base_commit: "c1".into(),
                },
            ),
            attempt_started(&a3, 1),
            attempt_completed(&a3, AttemptStatus::Passed, Some("c2")),
            a3.event(
                "policy",
                EventBody::GateDecided {
                    gate_id: new_id(),
                    name: "validations_passed".into(),
                    status: GateStatus::Passed,
                    reason: None,
                },
            ),
            s2.event(
                "supervisor",
                EventBody::StepCompleted {
                    status: RunStatus::Passed,
                    head_commit: Some("c2".into()),
                    attempts: 1,
                    reason: None,
                },
            ),
            policy_note(Some(&run), 1),
        ])
        .unwrap();
    store
        .record_artifact(&s2, "supervisor", ArtifactKind::Resultspec, None, b"{}")
        .unwrap();
    store
        .append(r.event(
            "supervisor",
            EventBody::RunCompleted {
                status: RunStatus::Passed,
                reason: None,
            },
        ))
        .unwrap();
    Scenario {
        run,
        steps,
        attempts,
        gate,
    }
}
