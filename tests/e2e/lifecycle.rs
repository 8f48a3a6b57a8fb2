//! The run lifecycle: retries with feedback, exhaustion, multi-step plans, executor failure,
//! timeouts.

use codencer_tests::{Sandbox, git};

fn spec(sb: &Sandbox, body: &str) -> std::path::PathBuf {
    sb.spec(
        "spec.yaml",
        &format!(
            "task:\n  name: t\n  workspace: {}\n  executor: shell\n{body}",
            sb.repo().display()
        ),
    )
}

#[test]
fn validator_failure_retries_with_feedback_then_passes() {
    let sb = Sandbox::new();
    let path = spec(
        &sb,
        concat!(
            "  goal: Create fix.txt.\n",
            "  command: 'printf \"%s\" \"$CODENCER_PROMPT\" > prompt-$CODENCER_ATTEMPT.txt; if [ \"$CODENCER_ATTEMPT\" -ge 2 ]; then echo fixed > fix.txt; fi'\n",
            "  validators:\n",
            "    - {name: has-fix, run: 'test -f fix.txt || { echo \"fix.txt is missing, create it\"; exit 1; }'}\n",
            "  max_attempts: 3\n",
        ),
    );
    let (out, result) = sb.run_json(&path);
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(result["status"], "passed");
    let step = &result["steps"][0];
    assert_eq!(step["status"], "passed");
    assert_eq!(step["attempts"], 2);
    assert_eq!(step["validations"][0]["status"], "passed");
    let branch = step["branch"].as_str().unwrap();
    assert!(branch.ends_with("/1/2"), "{branch}");
    // Attempt 2's prompt carried attempt 1's validator output.
    let prompt2 = git(&sb.repo(), &["show", &format!("{branch}:prompt-2.txt")]);
    assert!(prompt2.contains("Create fix.txt."), "{prompt2}");
    assert!(
        prompt2.contains("Earlier attempts failed (this is attempt 2)"),
        "{prompt2}"
    );
    assert!(
        prompt2.contains("fix.txt is missing, create it"),
        "{prompt2}"
    );
    // Attempt 1's prompt had no feedback, and its change is kept on its own branch.
    let first = branch.replace("/1/2", "/1/1");
    let prompt1 = git(&sb.repo(), &["show", &format!("{first}:prompt-1.txt")]);
    assert!(!prompt1.contains("Earlier attempts failed"), "{prompt1}");
}

#[test]
fn max_attempts_exhausted_fails() {
    let sb = Sandbox::new();
    let path = spec(
        &sb,
        "  goal: never passes\n  command: 'echo try >> log.txt'\n  validators: ['false']\n  max_attempts: 2\n",
    );
    let (out, result) = sb.run_json(&path);
    assert_eq!(out.code, Some(1), "{out}");
    assert_eq!(result["status"], "failed");
    let step = &result["steps"][0];
    assert_eq!(step["status"], "failed");
    assert_eq!(step["attempts"], 2);
    let reason = step["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("2 of at most 2 attempt(s) made, none passed; last: attempt 2 failed: validation failed: false-1"),
        "{reason}"
    );
    assert_eq!(step["validations"][0]["status"], "failed");
    assert_eq!(step["validations"][0]["exit_code"], 1);
    assert_eq!(step["gates"][0]["status"], "failed");
}

#[test]
fn step_two_sees_step_one_change() {
    let sb = Sandbox::new();
    let path = spec(
        &sb,
        concat!(
            "  steps:\n",
            "    - goal: write a\n",
            "      command: 'echo from-step-1 > a.txt'\n",
            "      validators: ['test -f a.txt']\n",
            "    - goal: copy a to b\n",
            "      command: 'cp a.txt b.txt'\n",
            "      validators: ['grep -q from-step-1 b.txt']\n",
        ),
    );
    let (out, result) = sb.run_json(&path);
    assert_eq!(out.code, Some(0), "{out}");
    let steps = result["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2);
    assert_eq!(steps[1]["status"], "passed");
    // Step 2 started from step 1's commit and changed only b.txt.
    assert_eq!(steps[1]["base"], steps[0]["commit"]);
    assert_eq!(steps[1]["files_changed"], serde_json::json!(["b.txt"]));
    let b = git(
        &sb.repo(),
        &[
            "show",
            &format!("{}:b.txt", steps[1]["branch"].as_str().unwrap()),
        ],
    );
    assert_eq!(b, "from-step-1\n");
}

#[test]
fn executor_failure_skips_validators_and_keeps_output() {
    let sb = Sandbox::new();
    let path = spec(
        &sb,
        "  goal: g\n  command: 'echo partial > p.txt; echo oops >&2; exit 3'\n  validators: ['true']\n  max_attempts: 1\n",
    );
    let (out, result) = sb.run_json(&path);
    assert_eq!(out.code, Some(1), "{out}");
    let step = &result["steps"][0];
    assert_eq!(step["validations"][0]["status"], "skipped");
    // The partial change is still committed to the attempt branch.
    assert_eq!(step["files_changed"], serde_json::json!(["p.txt"]));
    let stderr_artifact = step["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "executor_stderr")
        .unwrap();
    let text = sb.ctl(&["artifacts", "get", stderr_artifact["id"].as_str().unwrap()]);
    assert_eq!(text.stdout, "oops\n");
    let tree = sb.ctl(&["runs", "tree", result["run_id"].as_str().unwrap()]);
    assert!(
        tree.stdout.contains("executor exited with code 3"),
        "{tree}"
    );
    // An attempt that ended before the gates is not put to them: no gates decision that
    // could contradict its end.
    let audit = sb.ctl(&["audit", "export", "--jsonl"]).stdout;
    let stages: Vec<String> = audit
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["event"] == "policy.decided")
        .map(|e| e["result"]["stage"].as_str().unwrap().to_string())
        .collect();
    assert!(stages.contains(&"admission".to_string()), "{stages:?}");
    assert!(!stages.contains(&"gates".to_string()), "{stages:?}");
}

#[test]
fn wall_timeout_marks_attempt_timed_out() {
    let sb = Sandbox::new();
    let path = spec(
        &sb,
        "  goal: g\n  command: 'echo begun > begun.txt; sleep 30'\n  timeout: 1s\n  max_attempts: 1\n",
    );
    let started = std::time::Instant::now();
    let (out, result) = sb.run_json(&path);
    assert!(
        started.elapsed().as_secs() < 20,
        "the sleeper was not stopped"
    );
    assert_eq!(out.code, Some(1), "{out}");
    let tree = sb.tree(result["run_id"].as_str().unwrap());
    let attempt = &tree["steps"][0]["attempts"][0]["attempt"];
    assert_eq!(attempt["status"], "timed_out");
    assert_eq!(attempt["files_changed"], serde_json::json!(["begun.txt"]));
}

/// The validators run in the executor's sandbox, kept for them: nothing the executor
/// started is left when they run, each has its own output, and one killed at its timeout
/// ends that sandbox, so the next runs in a new one.
#[test]
fn validators_run_alone_in_the_kept_sandbox_and_survive_its_end() {
    let sb = Sandbox::new();
    let path = spec(
        &sb,
        concat!(
            "  goal: g\n",
            "  command: 'sleep 60 & echo $! > sleeper.pid; echo from-executor > /tmp/note'\n",
            "  validators:\n",
            "    - {name: alone, run: 'kill -0 $(cat sleeper.pid) 2>/dev/null && { echo SLEEPER-ALIVE; exit 1; }; cat /tmp/note'}\n",
            "    - {name: stuck, run: 'sleep 30', timeout: 1s}\n",
            "    - {name: after, run: 'test -e /tmp/note && echo SAME-SANDBOX; echo after-ran'}\n",
            "  max_attempts: 1\n",
        ),
    );
    let started = std::time::Instant::now();
    let (out, result) = sb.run_json(&path);
    assert!(
        started.elapsed().as_secs() < 25,
        "the stuck validator was not stopped"
    );
    assert_eq!(out.code, Some(1), "{out}");
    let validations = &result["steps"][0]["validations"];
    assert_eq!(validations[0]["status"], "passed", "{validations}");
    assert_eq!(validations[1]["status"], "timed_out", "{validations}");
    assert_eq!(validations[2]["status"], "passed", "{validations}");
    let run_id = result["run_id"].as_str().unwrap();
    let output = |name: &str| sb.attempt_artifact(run_id, "validator_output", Some(name));
    // The executor's sandbox, its processes gone: its /tmp is still there.
    assert_eq!(output("alone"), "from-executor\n");
    // A new sandbox after the kill: a fresh /tmp.
    assert_eq!(output("after"), "after-ran\n");
}
