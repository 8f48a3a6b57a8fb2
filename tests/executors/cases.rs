//! One test per CLI. Each is slow (a real CLI start, several model turns).

use crate::harness::{Case, assert_proven, run_case};

#[test]
fn claude_code_end_to_end() {
    let o = run_case(&Case {
        executor: "claude-code",
        binary: "claude",
        model: Some("claude-sonnet-4-5"),
        key: "ANTHROPIC_API_KEY",
        network: "allow",
    });
    assert_proven(&o, "claude-code");
    // Claude Code used its own tools.
    let names = o.report["tool_calls"].to_string();
    assert!(names.contains("Write") && names.contains("Bash"), "{names}");
    // With `allow` the proxy ran beside the forward; the model traffic took the forward.
    let log = o.artifact("network_log");
    assert!(log.contains("\"kind\":\"forward\""), "{log}");
}

#[test]
fn codex_end_to_end() {
    let o = run_case(&Case {
        executor: "codex",
        binary: "codex",
        model: Some("gpt-5-codex"),
        key: "OPENAI_API_KEY",
        network: "none",
    });
    assert_proven(&o, "codex");
}

#[test]
fn gemini_end_to_end() {
    let o = run_case(&Case {
        executor: "gemini",
        binary: "gemini",
        model: Some("gemini-2.5-pro"),
        key: "GEMINI_API_KEY",
        network: "none",
    });
    assert_proven(&o, "gemini");
}

#[test]
fn qwen_end_to_end() {
    let o = run_case(&Case {
        executor: "qwen",
        binary: "qwen",
        model: Some("mock-model"),
        key: "OPENAI_API_KEY",
        network: "none",
    });
    assert_proven(&o, "qwen");
}

#[test]
fn opencode_end_to_end() {
    let o = run_case(&Case {
        executor: "opencode",
        binary: "opencode",
        model: Some("mock-model"),
        key: "OPENAI_API_KEY",
        network: "none",
    });
    assert_proven(&o, "opencode");
}
