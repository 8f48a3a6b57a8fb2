//! Ctrl-C during an attempt: the attempt is recorded `killed`, its processes are gone, its
//! worktree and partial change are kept, and `codencer run` exits 130.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use codencer_tests::{Sandbox, git, processes_with};

#[test]
fn ctrl_c_kills_the_attempt_and_keeps_the_record() {
    let sb = Sandbox::new();
    // A unique sleep duration marks the executor's processes (and a background child).
    let marker = "61.4321";
    let spec = sb.spec(
        "spec.yaml",
        &format!(
            "task:\n  name: c\n  workspace: {}\n  executor: shell\n  command: 'echo begun > begun.txt; sleep {marker} & sleep {marker}'\n  goal: g\n  validators: ['true']\n",
            sb.repo().display()
        ),
    );
    let child = sb
        .command("codencer")
        .arg("run")
        .arg(&spec)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let worktree = loop {
        let found = std::fs::read_dir(sb.state().join("worktrees"))
            .ok()
            .and_then(|mut runs| runs.next())
            .and_then(|run| run.ok())
            .map(|run| run.path().join("1-1"))
            .filter(|wt| wt.join("begun.txt").exists());
        if let Some(wt) = found
            && processes_with(marker).len() >= 2
        {
            break wt;
        }
        assert!(Instant::now() < deadline, "the attempt never started");
        std::thread::sleep(Duration::from_millis(50));
    };
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(130),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted"));
    assert!(
        processes_with(marker).is_empty(),
        "left behind: {:?}",
        processes_with(marker)
    );
    assert!(worktree.join("begun.txt").exists(), "worktree not kept");

    let show = sb.ctl(&["runs", "list", "--json"]);
    let runs: serde_json::Value = serde_json::from_str(&show.stdout).unwrap();
    let run_id = runs[0]["id"].as_str().unwrap();
    assert_eq!(runs[0]["status"], "cancelled");
    let tree = sb.tree(run_id);
    let attempt = &tree["steps"][0]["attempts"][0];
    assert_eq!(attempt["attempt"]["status"], "killed");
    assert_eq!(tree["steps"][0]["step"]["status"], "cancelled");
    assert_eq!(attempt["validations"][0]["status"], "skipped");
    // The partial change made before the interrupt is on the attempt branch.
    let branch = attempt["attempt"]["branch"].as_str().unwrap();
    assert_eq!(
        git(&sb.repo(), &["show", &format!("{branch}:begun.txt")]),
        "begun\n"
    );
    assert_eq!(sb.codencer(&["store", "verify"]).code, Some(0));
}
