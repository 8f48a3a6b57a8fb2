//! Policy through the binaries: the approval gate and its decision, refusals before
//! anything is recorded, narrowing, path rules, explain and check.

use codencer_tests::{Run, Sandbox, git};

fn spec(sb: &Sandbox, body: &str) -> std::path::PathBuf {
    sb.spec(
        "spec.yaml",
        &format!(
            "task:\n  name: p\n  workspace: {}\n  executor: shell\n  goal: g\n{body}",
            sb.repo().display()
        ),
    )
}

fn json(run: &Run) -> serde_json::Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{run}"))
}

/// Runs a TaskSpec that touches a protected path; returns (run id, pending approval gate id).
fn awaiting_approval(sb: &Sandbox) -> (String, String) {
    let path = spec(
        sb,
        "  command: 'mkdir -p db/migrations && echo create > db/migrations/001.sql'\n  validators: ['test -f db/migrations/001.sql']\n",
    );
    let (out, result) = sb.run_json(&path);
    assert_eq!(out.code, Some(3), "{out}");
    assert_eq!(result["status"], "awaiting_approval");
    assert_eq!(result["steps"][0]["status"], "awaiting_approval");
    let gates = json(&sb.ctl(&["gates", "list", "--status", "pending", "--json"]));
    let gates = gates.as_array().unwrap();
    assert_eq!(gates.len(), 1, "{gates:?}");
    assert_eq!(gates[0]["name"], "approval");
    assert!(
        gates[0]["reason"]
            .as_str()
            .unwrap()
            .contains("**/migrations/**"),
        "{}",
        gates[0]
    );
    (
        result["run_id"].as_str().unwrap().to_string(),
        gates[0]["id"].as_str().unwrap().to_string(),
    )
}

#[test]
fn protected_path_waits_for_approval_then_passes() {
    let sb = Sandbox::new();
    let (run_id, gate) = awaiting_approval(&sb);
    // Undecided: resuming changes nothing and still says so.
    let early = sb.codencer(&["resume", &run_id, "--json"]);
    assert_eq!(early.code, Some(3), "{early}");
    let approve = sb.ctl(&["gates", "approve", &gate, "--reason", "reviewed by the DBA"]);
    assert_eq!(approve.code, Some(0), "{approve}");
    let twice = sb.ctl(&["gates", "approve", &gate]);
    assert_eq!(twice.code, Some(2), "{twice}");
    assert!(twice.stderr.contains("already approved"), "{twice}");
    let resumed = sb.codencer(&["resume", &run_id, "--json"]);
    assert_eq!(resumed.code, Some(0), "{resumed}");
    let result = json(&resumed);
    assert_eq!(result["status"], "passed");
    assert_eq!(result["steps"][0]["status"], "passed");
    let gates = json(&sb.ctl(&["gates", "list", "--run", &run_id, "--json"]));
    let approval = gates
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "approval")
        .unwrap();
    assert_eq!(approval["status"], "approved");
    assert_eq!(approval["reason"], "reviewed by the DBA");
    assert!(approval["decided_by"].as_str().unwrap().contains('@'));
    assert_eq!(sb.codencer(&["store", "verify"]).code, Some(0));
}

#[test]
fn rejected_approval_fails_the_step() {
    let sb = Sandbox::new();
    let (run_id, gate) = awaiting_approval(&sb);
    let reject = sb.ctl(&[
        "gates",
        "reject",
        &gate,
        "--reason",
        "no schema changes this week",
    ]);
    assert_eq!(reject.code, Some(0), "{reject}");
    let resumed = sb.codencer(&["resume", &run_id, "--json"]);
    assert_eq!(resumed.code, Some(1), "{resumed}");
    let result = json(&resumed);
    assert_eq!(result["status"], "failed");
    let reason = result["steps"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("approval rejected by") && reason.contains("no schema changes this week"),
        "{reason}"
    );
}

#[test]
fn policy_decisions_are_recorded_with_their_origin() {
    let sb = Sandbox::new();
    let (run_id, _) = awaiting_approval(&sb);
    let audit = sb.ctl(&["audit", "export", "--jsonl", "--run", &run_id]);
    let decisions: Vec<serde_json::Value> = audit
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["event"] == "policy.decided")
        .collect();
    let protected = decisions
        .iter()
        .find(|d| d["result"]["verdict"] == "needs_approval")
        .expect("a needs_approval decision");
    assert!(
        protected["result"]["origin"]
            .as_str()
            .unwrap()
            .contains("default.toml"),
        "{protected}"
    );
    assert!(
        decisions
            .iter()
            .any(|d| d["result"]["stage"] == "admission")
    );
    // The effective policy is an artifact of the attempt.
    let tree = sb.tree(&run_id);
    let kinds: Vec<&str> = tree["steps"][0]["attempts"][0]["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"policy") && kinds.contains(&"sandbox_report"),
        "{kinds:?}"
    );
}

#[test]
fn forbidden_path_fails_the_attempt_without_retry() {
    let sb = Sandbox::new();
    let path = spec(
        &sb,
        "  command: 'echo x > secret.env; echo y > ok.txt'\n  forbidden_paths: ['*.env']\n  max_attempts: 3\n",
    );
    let (out, result) = sb.run_json(&path);
    assert_eq!(out.code, Some(1), "{out}");
    let step = &result["steps"][0];
    // A policy refusal would repeat: it is not retried.
    assert_eq!(step["attempts"], 1, "{step}");
    assert!(
        step["reason"].as_str().unwrap().contains("secret.env"),
        "{step}"
    );
    // The change is still kept on the attempt branch as evidence.
    assert_eq!(
        git(
            &sb.repo(),
            &[
                "show",
                &format!("{}:secret.env", step["branch"].as_str().unwrap())
            ]
        ),
        "x\n"
    );
}

#[test]
fn bad_operator_policy_refuses_before_recording() {
    let sb = Sandbox::new();
    sb.policy("shell.toml", "[limits]\nwall = \"3x\"\n");
    let out = sb.codencer(&["run", spec(&sb, "  command: 'true'\n").to_str().unwrap()]);
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stderr.contains("shell.toml:2"), "{out}");
    assert!(out.stderr.contains("wall"), "{out}");
    assert!(!sb.state().exists(), "recorded something");
    let check = sb.codencer(&["policy", "check", sb.policy_dir().to_str().unwrap()]);
    assert_eq!(check.code, Some(2), "{check}");
    assert!(check.stderr.contains("shell.toml:2"), "{check}");
}

#[test]
fn task_may_narrow_but_not_widen() {
    let sb = Sandbox::new();
    sb.policy("shell.toml", "[limits]\nwall = \"5m\"\n");
    let wide = sb.codencer(&[
        "run",
        spec(&sb, "  command: 'true'\n  timeout: 1h\n")
            .to_str()
            .unwrap(),
    ]);
    assert_eq!(wide.code, Some(2), "{wide}");
    assert!(wide.stderr.contains("wall"), "{wide}");
    let explain = sb.codencer(&[
        "policy",
        "explain",
        "--json",
        spec(&sb, "  command: 'true'\n  timeout: 1m\n")
            .to_str()
            .unwrap(),
    ]);
    assert_eq!(explain.code, Some(0), "{explain}");
    let explained = json(&explain);
    let values = explained["steps"][0]["policy"]["values"]
        .as_array()
        .unwrap();
    let wall = values.iter().find(|v| v["key"] == "limits.wall").unwrap();
    assert_eq!(wall["value"], "\"1m\"", "{wall}");
    assert!(wall["origin"].to_string().contains("spec.yaml"), "{wall}");
}

#[test]
fn doctor_reports_every_layer() {
    let sb = Sandbox::new();
    let out = sb.codencer(&["doctor", "--json"]);
    assert_eq!(out.code, Some(0), "{out}");
    let report = json(&out);
    let layers: Vec<&str> = report["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["layer"].as_str().unwrap())
        .collect();
    assert_eq!(
        layers,
        [
            "namespaces",
            "filesystem",
            "landlock",
            "seccomp",
            "privileges",
            "limits",
            "network"
        ]
    );
}

#[test]
fn env_carries_policy_secrets_and_nothing_else_of_the_operator() {
    let sb = Sandbox::new();
    let token_file = sb.dir.path().join("token");
    std::fs::write(&token_file, "file-secret\n").unwrap();
    sb.policy(
        "shell.toml",
        &format!("[env.set]\nMODE = \"ci\"\n\n[env.secrets]\nAPI_TOKEN = {{ env = \"OPERATOR_TOKEN\" }}\nFILE_TOKEN = {{ file = \"{}\" }}\n", token_file.display()),
    );
    let path = spec(&sb, "  command: 'env | sort > env.txt'\n");
    let out = codencer_tests::run(
        sb.command("codencer")
            .env("OPERATOR_TOKEN", "env-secret")
            .env("UNRELATED_SECRET", "must-not-leak")
            .args(["run", "--json", path.to_str().unwrap()]),
    );
    assert_eq!(out.code, Some(0), "{out}");
    let result = json(&out);
    let env = git(
        &sb.repo(),
        &[
            "show",
            &format!("{}:env.txt", result["steps"][0]["branch"].as_str().unwrap()),
        ],
    );
    assert!(env.contains("API_TOKEN=env-secret\n"), "{env}");
    assert!(env.contains("FILE_TOKEN=file-secret\n"), "{env}");
    assert!(env.contains("MODE=ci\n"), "{env}");
    assert!(
        !env.contains("must-not-leak") && !env.contains("OPERATOR_TOKEN"),
        "{env}"
    );
    // Secrets never reach the record.
    let audit = sb.ctl(&["audit", "export", "--jsonl"]).stdout;
    assert!(!audit.contains("env-secret") && !audit.contains("file-secret"));
}
