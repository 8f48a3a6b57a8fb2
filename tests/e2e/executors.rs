//! `codencer executors` and what happens when an executor's binary is missing.

use codencer_tests::{Sandbox, run};

#[test]
fn executors_json_lists_every_adapter() {
    let sb = Sandbox::new();
    let out = run(sb
        .command("codencer")
        .env("PATH", "/usr/bin:/bin")
        .env_remove("CODENCER_EXECUTOR_PATH")
        .args(["executors", "--json"]));
    assert_eq!(out.code, Some(0), "{out}");
    let listed: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "claude-code",
            "codex",
            "gemini",
            "qwen",
            "opencode",
            "aider",
            "openclaw",
            "antigravity",
            "shell"
        ]
    );
    let by_name = |name: &str| {
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .unwrap()
            .clone()
    };
    let claude = by_name("claude-code");
    assert_eq!(claude["found"], false, "{claude}");
    assert_eq!(claude["path"], serde_json::Value::Null);
    assert_eq!(claude["default_policy"]["network"], "allow");
    assert_eq!(
        claude["default_policy"]["allow"],
        serde_json::json!(["api.anthropic.com:443"])
    );
    assert_eq!(
        claude["default_policy"]["config_home_env"],
        "CLAUDE_CONFIG_DIR"
    );
    assert!(
        claude["install"]
            .as_str()
            .unwrap()
            .contains("@anthropic-ai/claude-code")
    );
    assert_eq!(by_name("antigravity")["experimental"], true);
    let shell = by_name("shell");
    assert_eq!(shell["found"], true, "{shell}");
}

#[test]
fn missing_executor_binary_names_the_install_command() {
    let sb = Sandbox::new();
    let spec = sb.spec(
        "spec.yaml",
        &format!(
            "task:\n  name: c\n  workspace: {}\n  executor: claude-code\n  goal: g\n",
            sb.repo().display()
        ),
    );
    let out = run(sb
        .command("codencer")
        .env("PATH", "/usr/bin:/bin")
        .env_remove("CODENCER_EXECUTOR_PATH")
        .arg("run")
        .arg(&spec));
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stderr.contains("`claude` not found"), "{out}");
    assert!(
        out.stderr
            .contains("npm install -g @anthropic-ai/claude-code"),
        "{out}"
    );
    assert!(!sb.state().exists(), "recorded something");
}
