//! Many runs at once, the planner loop, recovery after a daemon crash, the CLI client.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{Daemon, ctl_remote};

#[test]
fn twenty_runs_at_once_complete_and_the_limit_queues() {
    let d = Daemon::start_with(4);
    let mut runs = Vec::new();
    for i in 0..20 {
        let (run, _) = d.submit(
            &d.spec(
                &format!("c{i}"),
                &format!("  goal: g\n  command: 'sleep 1; echo {i} > f{i}.txt'\n"),
            ),
            false,
        );
        runs.push(run);
    }
    // The queue is visible and never runs more than the limit.
    let mut saw_queued = false;
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let q = d.get("/v1/queue").json();
        assert_eq!(q["limit"], 4);
        let running = q["running"].as_array().unwrap().len();
        let queued = q["queued"].as_array().unwrap().len();
        assert!(running <= 4, "{q}");
        saw_queued |= queued > 0;
        if running == 0 && queued == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "runs did not finish: {q}\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(saw_queued, "20 runs over a limit of 4 must queue");
    for run in &runs {
        let v = d.wait_run(run, 30);
        assert_eq!(v["run"]["status"], "passed", "{v}");
    }
    let view = d.get(&format!("/v1/runs/{}", runs[0])).json();
    assert_eq!(view["slot"], serde_json::Value::Null);
}

#[test]
fn planner_loop_step_two_builds_on_step_one() {
    let d = Daemon::start();
    let (run, steps) = d.submit(
        &d.spec("loop", "  goal: write a\n  command: 'echo alpha > a.txt'\n"),
        true,
    );
    let r1 = d.wait_step(&run, &steps[0]);
    assert_eq!(r1["status"], "passed", "{r1}");
    assert_eq!(r1["files_changed"], json!(["a.txt"]));
    // The open run waits for its next step.
    let view = d.get(&format!("/v1/runs/{run}")).json();
    assert_eq!(view["open"], true);
    assert_eq!(view["run"]["status"], "running");
    let a = d.post(
        &format!("/v1/runs/{run}/steps"),
        json!({ "step": "goal: derive b from a\ncommand: 'tr a-z A-Z < a.txt > b.txt'\nvalidators: ['grep -q ALPHA b.txt']\n" }),
    );
    assert_eq!(a.status, 201, "{a:?}");
    let step2 = a.json()["step_id"].as_str().unwrap().to_string();
    assert_eq!(a.json()["index"], 2);
    let r2 = d.wait_step(&run, &step2);
    assert_eq!(r2["status"], "passed", "{r2}");
    assert_eq!(
        r2["base"], r1["commit"],
        "step 2 starts from step 1's commit"
    );
    assert_eq!(r2["validations"][0]["status"], "passed");
    // A bad appended step gets the field-level errors.
    let a = d.post(
        &format!("/v1/runs/{run}/steps"),
        json!({ "step": "gaol: typo\n" }),
    );
    assert_eq!(a.status, 400, "{a:?}");
    assert_eq!(a.json()["code"], "invalid_step");
    let a = d.post(&format!("/v1/runs/{run}/close"), json!({}));
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.json()["status"], "passed");
    assert_eq!(
        d.get(&format!("/v1/runs/{run}")).json()["run"]["status"],
        "passed"
    );
    // A run that is not open refuses appended steps.
    let (closed, _) = d.submit(&d.spec("fixed", "  goal: g\n  command: 'true'\n"), false);
    d.wait_run(&closed, 30);
    let a = d.post(
        &format!("/v1/runs/{closed}/steps"),
        json!({ "step": "goal: more\n" }),
    );
    assert_eq!(a.status, 409);
}

#[test]
fn daemon_restart_during_a_run_recovers() {
    let mut d = Daemon::start();
    let (run, steps) = d.submit(
        &d.spec(
            "crash",
            "  goal: g\n  command: 'if [ \"$CODENCER_ATTEMPT\" = 1 ]; then sleep 30; fi; echo done > done.txt'\n  validators: ['test -f done.txt']\n",
        ),
        false,
    );
    // Kill the daemon while attempt 1 runs.
    d.wait_first_attempt_running(&run);
    std::thread::sleep(Duration::from_millis(300));
    d.kill();
    d.spawn();
    let view = d.wait_run(&run, 90);
    assert_eq!(view["run"]["status"], "passed", "{view}\n{}", d.log());
    let attempts = view["steps"][0]["attempts"].as_array().unwrap();
    assert_eq!(attempts[0]["attempt"]["status"], "interrupted", "{view}");
    assert_eq!(attempts.last().unwrap()["attempt"]["status"], "passed");
    let r = d.wait_step(&run, &steps[0]);
    assert_eq!(r["status"], "passed");
}

#[test]
fn orchestratorctl_is_a_client_of_the_daemon() {
    let d = Daemon::start();
    let spec = d.sb.spec(
        "s.yaml",
        &d.spec("cli", "  goal: g\n  command: 'echo hi > hi.txt'\n"),
    );
    let out = ctl_remote(
        &d,
        &d.admin,
        &["submit", spec.to_str().unwrap(), "--wait", "--json"],
    );
    assert_eq!(out.code, Some(0), "{out}");
    let result: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(result["status"], "passed");
    let run = result["run_id"].as_str().unwrap();
    let out = ctl_remote(&d, &d.admin, &["runs", "list", "--json"]);
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stdout.contains(run));
    let out = ctl_remote(&d, &d.admin, &["runs", "watch", run]);
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stdout.contains("step 1/1 started from"), "{out}");
    assert!(out.stdout.contains("[passed]"), "{out}");
    let out = ctl_remote(&d, &d.admin, &["runs", "show", run, "--json"]);
    assert_eq!(out.code, Some(0), "{out}");
    // The same RunResult `submit --wait` printed.
    let shown: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(shown, result);
    assert_eq!(
        shown["steps"][0]["files_changed"],
        serde_json::json!(["hi.txt"])
    );
    let out = ctl_remote(&d, &d.admin, &["tokens", "list", "--json"]);
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stdout.contains("\"admin\""));
    let out = ctl_remote(&d, "cdt_wrong", &["runs", "list"]);
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stderr.contains("unauthorized"), "{out}");
}

#[test]
fn daemon_sigterm_drains_and_the_next_start_goes_on() {
    let mut d = Daemon::start();
    let (run, _) = d.submit(
        &d.spec(
            "drain",
            "  goal: g\n  command: 'echo begun > begun.txt; if [ \"$CODENCER_ATTEMPT\" = 1 ]; then sleep 30; fi; echo done > done.txt'\n",
        ),
        false,
    );
    d.wait_first_attempt_running(&run);
    let mut child = d.child.take().unwrap();
    let sent = Instant::now();
    let term = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{}", d.log());
    assert!(
        sent.elapsed() < Duration::from_secs(20),
        "{:?}",
        sent.elapsed()
    );
    let tree = d.sb.tree(&run);
    let first = &tree["steps"][0]["attempts"][0]["attempt"];
    assert_eq!(first["status"], "interrupted", "{tree}");
    assert!(
        first["reason"].as_str().unwrap().contains("grace period"),
        "{tree}"
    );
    assert_eq!(tree["run"]["status"], "running", "{tree}");
    d.spawn();
    let view = d.wait_run(&run, 90);
    assert_eq!(view["run"]["status"], "passed", "{view}\n{}", d.log());
    let attempts = view["steps"][0]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{view}");
    assert_eq!(d.sb.codencer(&["store", "verify"]).code, Some(0));
}
