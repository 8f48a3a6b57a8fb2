//! A real MCP client session (the official Python SDK, installed by scripts/setup.sh) over
//! Streamable HTTP and over stdio through `codencer mcp`.

use std::path::PathBuf;
use std::process::Command;

use codencer_tests::bin;

use crate::harness::Daemon;

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("CODENCER_MCP_PYTHON") {
        return PathBuf::from(p);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let venv = root.join(".tools/mcp-venv/bin/python");
    assert!(
        venv.exists(),
        "the Python MCP SDK is not installed: run scripts/setup.sh (it creates {})",
        venv.display()
    );
    venv
}

fn client(d: &Daemon, stdio: bool) -> serde_json::Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("mcp_client/client.py");
    let mut cmd = Command::new(python());
    cmd.arg(script)
        .args(["--url", &d.url, "--token", &d.admin, "--repo"])
        .arg(d.sb.repo());
    if stdio {
        cmd.arg("--stdio").arg("--codencer").arg(bin("codencer"));
    }
    let out = codencer_tests::run(&mut cmd);
    assert_eq!(out.code, Some(0), "{out}\n--- daemon\n{}", d.log());
    serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn check(v: &serde_json::Value) {
    let tools: Vec<&str> = v["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    for t in [
        "submit_task",
        "append_step",
        "get_run",
        "get_result",
        "wait_for_step",
        "list_runs",
        "list_artifacts",
        "get_artifact",
        "approve_gate",
        "reject_gate",
        "cancel_run",
    ] {
        assert!(tools.contains(&t), "{t} missing from {tools:?}");
    }
    assert_eq!(v["bad_taskspec_is_tool_error"], true);
    assert!(
        v["bad_taskspec_message"]
            .as_str()
            .unwrap()
            .contains("invalid_taskspec")
    );
    assert_eq!(v["step1_status"], "passed");
    assert_eq!(v["step2_first_status"], "awaiting_approval");
    assert_eq!(v["step2_status"], "passed");
    assert_eq!(v["diff_has_step1"], true);
    assert_eq!(v["closed"], "passed");
    assert_eq!(v["cancel_answer_run_id_matches"], true, "{v}");
    assert_eq!(v["cancelled_step_status"], "cancelled", "{v}");
    assert_eq!(v["cancelled_run_status"], "cancelled", "{v}");
}

#[test]
fn mcp_over_streamable_http() {
    let d = Daemon::start();
    let v = client(&d, false);
    check(&v);
    // The approval was recorded with the token's name.
    let approvals: Vec<_> = d
        .audit()
        .into_iter()
        .filter(|e| e["event"] == "gate.decided" && e["result"]["status"] == "approved")
        .collect();
    assert_eq!(approvals.len(), 1);
    assert_eq!(approvals[0]["actor"], "admin");
}

#[test]
fn mcp_over_stdio_through_codencer_mcp() {
    let d = Daemon::start();
    check(&client(&d, true));
}
