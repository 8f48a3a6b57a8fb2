//! Crash-only behaviour of `codencer run`/`resume`: graceful drain on SIGTERM, a supervisor
//! killed with SIGKILL, an injected StepActor panic, a second process on the same run, and
//! a store that cannot be written.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use codencer_tests::{Sandbox, git, processes_with};

fn spec(sb: &Sandbox, steps: &[&str]) -> PathBuf {
    let mut text = format!(
        "task:\n  name: r\n  workspace: {}\n  executor: shell\n  goal: g\n  validators: ['true']\n  steps:\n",
        sb.repo().display()
    );
    for command in steps {
        text.push_str(&format!("    - goal: g\n      command: '{command}'\n"));
    }
    sb.spec("spec.yaml", &text)
}

fn start(sb: &Sandbox, args: &[&str]) -> Child {
    sb.command("codencer")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until the first attempt's worktree has `file`; returns the worktree.
fn wait_for_file(state: &Path, file: &str) -> PathBuf {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = std::fs::read_dir(state.join("worktrees"))
            .ok()
            .and_then(|mut runs| runs.next())
            .and_then(|run| run.ok())
            .map(|run| run.path().join("1-1"))
            .filter(|wt| wt.join(file).exists());
        if let Some(wt) = found {
            return wt;
        }
        assert!(Instant::now() < deadline, "{file} never appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

fn tree(sb: &Sandbox) -> serde_json::Value {
    let runs: serde_json::Value =
        serde_json::from_str(&sb.ctl(&["runs", "list", "--json"]).stdout).unwrap();
    let id = runs[0]["id"].as_str().unwrap().to_string();
    sb.tree(&id)
}

fn count_events(sb: &Sandbox, kind: &str) -> i64 {
    let conn = rusqlite::Connection::open(sb.state().join("codencer.db")).unwrap();
    conn.query_row("SELECT count(*) FROM events WHERE kind = ?1", [kind], |r| {
        r.get(0)
    })
    .unwrap()
}

#[test]
fn sigterm_lets_the_running_attempt_finish_and_starts_nothing_new() {
    let sb = Sandbox::new();
    let spec = spec(
        &sb,
        &["echo one > one.txt; sleep 1.5", "echo two > two.txt"],
    );
    let child = start(&sb, &["run", "--grace", "30", spec.to_str().unwrap()]);
    wait_for_file(&sb.state(), "one.txt");
    signal(&child, "-TERM");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("terminated: no new attempt starts"),
        "{stderr}"
    );
    let tree = tree(&sb);
    assert_eq!(tree["run"]["status"], "cancelled");
    assert_eq!(tree["steps"][0]["step"]["status"], "passed");
    assert_eq!(
        tree["steps"][0]["attempts"][0]["attempt"]["status"],
        "passed"
    );
    assert_eq!(tree["steps"][1]["attempts"].as_array().unwrap().len(), 0);
    assert_eq!(sb.codencer(&["store", "verify"]).code, Some(0));
}

#[test]
fn sigterm_kills_the_attempt_once_the_grace_period_is_over() {
    let sb = Sandbox::new();
    let marker = "47.1234";
    let spec = spec(&sb, &[&format!("echo a > a.txt; sleep {marker}")]);
    let child = start(&sb, &["run", "--grace", "1", spec.to_str().unwrap()]);
    wait_for_file(&sb.state(), "a.txt");
    let sent = Instant::now();
    signal(&child, "-TERM");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    assert!(
        sent.elapsed() < Duration::from_secs(15),
        "{:?}",
        sent.elapsed()
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("grace period over"));
    assert!(processes_with(marker).is_empty());
    let tree = tree(&sb);
    assert_eq!(
        tree["steps"][0]["attempts"][0]["attempt"]["status"],
        "killed"
    );
    assert_eq!(tree["run"]["status"], "cancelled");
}

#[test]
fn supervisor_sigkill_takes_the_sandbox_with_it_and_resume_loses_nothing() {
    let sb = Sandbox::new();
    let marker = "53.4321";
    // kept.txt appears whole (renamed into place): the test kills as soon as it exists.
    let spec = spec(
        &sb,
        &[&format!(
            "if [ $CODENCER_ATTEMPT = 1 ]; then echo kept > kept.tmp && mv kept.tmp kept.txt; sleep {marker}; fi; echo done > done.txt"
        )],
    );
    let mut child = start(&sb, &["run", spec.to_str().unwrap()]);
    let worktree = wait_for_file(&sb.state(), "kept.txt");
    signal(&child, "-KILL");
    let _ = child.wait();
    // The worker dies with its supervisor (parent-death signal), the executor with it.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !processes_with(marker).is_empty() {
        assert!(
            Instant::now() < deadline,
            "left: {:?}",
            processes_with(marker)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let tree0 = tree(&sb);
    let run_id = tree0["run"]["id"].as_str().unwrap().to_string();
    let out = sb.codencer(&["resume", &run_id]);
    assert_eq!(out.code, Some(0), "{out}");
    let tree = tree(&sb);
    let first = &tree["steps"][0]["attempts"][0]["attempt"];
    assert_eq!(first["status"], "interrupted");
    // Its partial output is recorded too.
    let kinds: Vec<&str> = tree["steps"][0]["attempts"][0]["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"executor_stdout"), "{kinds:?}");
    assert!(kinds.contains(&"diff"), "{kinds:?}");
    let branch = first["branch"].as_str().unwrap();
    assert_eq!(
        git(&sb.repo(), &["show", &format!("{branch}:kept.txt")]),
        "kept\n"
    );
    assert!(
        worktree.join("kept.txt").exists(),
        "worktree kept for evidence"
    );
    assert_eq!(
        tree["steps"][0]["attempts"][1]["attempt"]["status"],
        "passed"
    );
    assert_eq!(tree["run"]["status"], "passed");
    assert_eq!(sb.codencer(&["store", "verify"]).code, Some(0));
}

#[test]
fn a_step_actor_panic_is_recorded_and_the_step_restarts_without_duplicates() {
    let sb = Sandbox::new();
    let spec = spec(&sb, &["echo x > x.txt"]);
    let out = codencer_tests::run(
        sb.command("codencer")
            .env("CODENCER_TEST_PANIC", "step:1")
            .args(["run", spec.to_str().unwrap()]),
    );
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(count_events(&sb, "supervisor.failure"), 1);
    assert_eq!(count_events(&sb, "attempt.started"), 1);
    assert_eq!(count_events(&sb, "step.started"), 1);
    let tree = tree(&sb);
    assert_eq!(tree["steps"][0]["attempts"][0]["attempt"]["number"], 1);
    assert_eq!(tree["run"]["status"], "passed");
    assert_eq!(sb.codencer(&["store", "verify"]).code, Some(0));
}

#[test]
fn a_second_process_refuses_a_run_another_one_drives() {
    let sb = Sandbox::new();
    let spec = spec(&sb, &["echo a > a.txt; sleep 2"]);
    let child = start(&sb, &["run", spec.to_str().unwrap()]);
    wait_for_file(&sb.state(), "a.txt");
    let run_id = tree(&sb)["run"]["id"].as_str().unwrap().to_string();
    let second = sb.codencer(&["resume", &run_id]);
    assert_eq!(second.code, Some(4), "{second}");
    assert!(
        second
            .stderr
            .contains("being driven by another Codencer process"),
        "{second}"
    );
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let tree = tree(&sb);
    assert_eq!(tree["steps"][0]["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(
        tree["steps"][0]["attempts"][0]["attempt"]["status"],
        "passed"
    );
    assert_eq!(sb.codencer(&["store", "verify"]).code, Some(0));
}

#[test]
fn a_store_that_cannot_be_written_fails_the_run_as_infrastructure() {
    let sb = Sandbox::new();
    // Three files of 700 KB: each fits under a 1 MiB file-size limit, their diff does not,
    // so recording the diff blob fails (EFBIG, as a full disk fails with ENOSPC).
    let spec = spec(
        &sb,
        &["for i in 1 2 3; do head -c 700000 /dev/zero | tr \"\\\\0\" x > big$i.txt; done"],
    );
    let codencer = codencer_tests::bin("codencer");
    let out = codencer_tests::run(
        Command::new("bash")
            .env("CODENCER_CONFIG", sb.dir.path().join("config"))
            .arg("-c")
            .arg(r#"trap "" XFSZ; ulimit -S -f 1024; exec "$0" --state-dir "$1" run "$2""#)
            .arg(&codencer)
            .arg(sb.state())
            .arg(&spec),
    );
    assert_eq!(out.code, Some(4), "{out}");
    assert!(out.stderr.contains("infrastructure"), "{out}");
    assert!(
        !sb.state().join("tmp").read_dir().unwrap().any(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".partial")
        }),
        "a half-written blob was left"
    );
    let tree = tree(&sb);
    let attempt = &tree["steps"][0]["attempts"][0]["attempt"];
    assert_eq!(attempt["status"], "crashed", "{tree}");
    assert!(
        attempt["reason"]
            .as_str()
            .unwrap()
            .contains("infrastructure error")
    );
    assert_eq!(tree["run"]["status"], "failed");
    assert_eq!(sb.codencer(&["store", "verify"]).code, Some(0));
}

#[test]
fn a_run_actor_panic_is_recorded_and_the_run_restarts_from_the_record() {
    let sb = Sandbox::new();
    let spec = spec(&sb, &["echo one > one.txt", "echo two > two.txt"]);
    let out = codencer_tests::run(
        sb.command("codencer")
            .env("CODENCER_TEST_PANIC", "run:2")
            .args(["run", spec.to_str().unwrap()]),
    );
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(count_events(&sb, "supervisor.failure"), 1);
    assert_eq!(count_events(&sb, "run.started"), 1);
    assert_eq!(count_events(&sb, "attempt.started"), 2);
    let tree = tree(&sb);
    assert_eq!(tree["run"]["status"], "passed");
    assert_eq!(tree["steps"][1]["step"]["status"], "passed");
    assert_eq!(sb.codencer(&["store", "verify"]).code, Some(0));
}
