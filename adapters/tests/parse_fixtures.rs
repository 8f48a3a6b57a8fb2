//! The parsers against the streams recorded from the real CLIs (tests/fixtures/executors,
//! see its README for which are recorded and which synthesized).
// Test helpers are not `#[test]` functions, which clippy.toml's allowance covers.
#![allow(clippy::unwrap_used)]

use std::ffi::OsStr;
use std::path::PathBuf;

use codencer_adapters::{
    AdapterError, ExecutorReport, Outcome, ToolCall, Usage, adapter, adapters, require,
};
use sha2::{Digest, Sha256};

fn fixture(executor: &str, file: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/executors")
        .join(executor)
        .join(file);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn parse(executor: &str, file: &str) -> ExecutorReport {
    adapter(executor).unwrap().parse(&fixture(executor, file))
}

fn digest(json: &str) -> String {
    hex::encode(Sha256::digest(json.as_bytes()))
}

fn call(name: &str, args: &str, ok: Option<bool>) -> ToolCall {
    ToolCall {
        name: name.into(),
        args_digest: digest(args),
        ok,
    }
}

fn usage(input: u64, output: u64, cost: Option<f64>) -> Option<Usage> {
    Some(Usage {
        input_tokens: Some(input),
        output_tokens: Some(output),
        cost_usd: cost,
    })
}

/// Every fixture, with the outcome its complete stream must give.
const FIXTURES: &[(&str, &str, Outcome)] = &[
    ("claude-code", "success.jsonl", Outcome::Success),
    ("claude-code", "tool_failure.jsonl", Outcome::Success),
    ("claude-code", "max_turns.jsonl", Outcome::MaxTurns),
    ("claude-code", "api_error.jsonl", Outcome::ApiError),
    ("codex", "success.jsonl", Outcome::Success),
    ("codex", "tool_failure.jsonl", Outcome::Success),
    ("codex", "api_error.jsonl", Outcome::ApiError),
    ("gemini", "success.jsonl", Outcome::Success),
    ("gemini", "tool_failure.jsonl", Outcome::Success),
    ("gemini", "max_turns.jsonl", Outcome::MaxTurns),
    ("gemini", "api_error.jsonl", Outcome::ApiError),
    ("qwen", "success.jsonl", Outcome::Success),
    ("qwen", "tool_failure.jsonl", Outcome::Success),
    // Qwen Code 0.24.4 ends a max-turns run without a `result` event (the reason goes to
    // stderr only), so the stream is indistinguishable from a truncated one.
    ("qwen", "max_turns.jsonl", Outcome::ExecutorError),
    ("qwen", "api_error.jsonl", Outcome::ApiError),
    ("opencode", "success.jsonl", Outcome::Success),
    ("opencode", "tool_failure.jsonl", Outcome::Success),
    ("opencode", "api_error.jsonl", Outcome::ApiError),
    ("aider", "success.txt", Outcome::Success),
    ("aider", "api_error.txt", Outcome::ApiError),
    ("openclaw", "success.json", Outcome::Success),
    ("openclaw", "tool_failure.json", Outcome::Success),
    // No turn limit in openclaw: its tool-loop detector stopped the endless script.
    ("openclaw", "tool_loop.json", Outcome::Failure),
    ("openclaw", "api_error.json", Outcome::ApiError),
    ("antigravity", "success.txt", Outcome::Unreported),
];

#[test]
fn every_fixture_gives_its_outcome() {
    for (executor, file, outcome) in FIXTURES {
        let report = parse(executor, file);
        assert_eq!(report.outcome, *outcome, "{executor}/{file}: {report:?}");
        assert_eq!(
            report.error.is_some(),
            !matches!(outcome, Outcome::Success | Outcome::Unreported),
            "{executor}/{file}: {report:?}"
        );
    }
}

#[test]
fn claude_code_success() {
    assert_eq!(
        parse("claude-code", "success.jsonl"),
        ExecutorReport {
            outcome: Outcome::Success,
            summary: Some("Created hello.txt and checked its content.".into()),
            tool_calls: vec![
                call(
                    "Write",
                    r#"{"content":"hello from the mock\n","file_path":"/tmp/codencer-record/claude-code-success/repo/hello.txt"}"#,
                    Some(true)
                ),
                call(
                    "Bash",
                    r#"{"command":"cat hello.txt && echo ran-ok","description":"Run a command"}"#,
                    Some(true)
                ),
            ],
            files_reported: vec!["/tmp/codencer-record/claude-code-success/repo/hello.txt".into()],
            usage: usage(390, 72, Some(0.00225)),
            session_id: Some("be59f96f-9be4-4a00-8b3e-c38059725595".into()),
            error: None,
        }
    );
}

#[test]
fn claude_code_failures() {
    let report = parse("claude-code", "tool_failure.jsonl");
    let oks: Vec<_> = report
        .tool_calls
        .iter()
        .map(|c| (c.name.as_str(), c.ok))
        .collect();
    assert_eq!(oks, [("Read", Some(false)), ("Bash", Some(false))]);
    let report = parse("claude-code", "max_turns.jsonl");
    assert_eq!(
        report.error.as_deref(),
        Some("Reached maximum number of turns (2)")
    );
    assert_eq!(report.tool_calls.len(), 2);
    let report = parse("claude-code", "api_error.jsonl");
    assert_eq!(
        report.error.as_deref(),
        Some("API Error: 400 mock: scripted API error")
    );
}

#[test]
fn codex_success() {
    assert_eq!(
        parse("codex", "success.jsonl"),
        ExecutorReport {
            outcome: Outcome::Success,
            summary: Some("Created hello.txt and checked its content.".into()),
            tool_calls: vec![
                call(
                    "command_execution",
                    r#"{"command":"/bin/bash -lc \"cat > 'hello.txt' <<'CODENCER_EOF'\nhello from the mock\nCODENCER_EOF\""}"#,
                    Some(true)
                ),
                call(
                    "command_execution",
                    r#"{"command":"/bin/bash -lc 'cat hello.txt && echo ran-ok'"}"#,
                    Some(true)
                ),
            ],
            files_reported: vec![],
            usage: usage(390, 72, None),
            session_id: Some("01a1fb41-9d18-7481-aeda-66474bb0bd83".into()),
            error: None,
        }
    );
    let failed = parse("codex", "tool_failure.jsonl");
    assert!(
        failed.tool_calls.iter().all(|c| c.ok == Some(false)),
        "{failed:?}"
    );
}

#[test]
fn gemini_reports() {
    let report = parse("gemini", "success.jsonl");
    assert_eq!(
        report,
        ExecutorReport {
            outcome: Outcome::Success,
            summary: Some("Created hello.txt and checked its content.".into()),
            tool_calls: vec![
                call(
                    "write_file",
                    r#"{"content":"hello from the mock\n","file_path":"hello.txt"}"#,
                    Some(true)
                ),
                call(
                    "run_shell_command",
                    r#"{"command":"cat hello.txt && echo ran-ok"}"#,
                    Some(true)
                ),
            ],
            files_reported: vec!["hello.txt".into()],
            usage: usage(390, 72, None),
            session_id: Some("aaedd123-d3c9-4ef0-a470-5d32b80676ec".into()),
            error: None,
        }
    );
    // Gemini CLI reports a shell command exiting non-zero as a successful tool call.
    let oks: Vec<_> = parse("gemini", "tool_failure.jsonl")
        .tool_calls
        .iter()
        .map(|c| c.ok)
        .collect();
    assert_eq!(oks, [Some(false), Some(true)]);
}

#[test]
fn qwen_reports() {
    let report = parse("qwen", "success.jsonl");
    assert_eq!(
        report.summary.as_deref(),
        Some("Created hello.txt and checked its content.")
    );
    assert_eq!(report.usage, usage(390, 72, None));
    assert_eq!(
        report.files_reported,
        ["/tmp/codencer-record/qwen-success/repo/hello.txt"]
    );
    let oks: Vec<_> = parse("qwen", "tool_failure.jsonl")
        .tool_calls
        .iter()
        .map(|c| c.ok)
        .collect();
    assert_eq!(oks, [Some(false), Some(false)]);
}

#[test]
fn opencode_reports() {
    let report = parse("opencode", "success.jsonl");
    assert_eq!(
        report.tool_calls,
        [
            call(
                "write",
                r#"{"content":"hello from the mock\n","filePath":"/tmp/codencer-record/opencode-success/repo/hello.txt"}"#,
                Some(true)
            ),
            call(
                "bash",
                r#"{"command":"cat hello.txt && echo ran-ok"}"#,
                Some(true)
            ),
        ]
    );
    assert_eq!(report.usage, usage(390, 72, Some(0.0)));
    let oks: Vec<_> = parse("opencode", "tool_failure.jsonl")
        .tool_calls
        .iter()
        .map(|c| c.ok)
        .collect();
    assert_eq!(oks, [Some(false), Some(false)]);
    assert_eq!(
        parse("opencode", "api_error.jsonl").error.as_deref(),
        Some("APIError: mock: scripted API error")
    );
}

#[test]
fn aider_reports() {
    assert_eq!(
        parse("aider", "success.txt"),
        ExecutorReport {
            outcome: Outcome::Success,
            summary: Some("Created hello.txt.".into()),
            tool_calls: vec![],
            files_reported: vec!["hello.txt".into()],
            usage: usage(120, 30, None),
            session_id: None,
            error: None,
        }
    );
}

#[test]
fn openclaw_reports() {
    // The `agent exec --json` envelope names the tools used, not each call: no tool_calls.
    assert_eq!(
        parse("openclaw", "success.json"),
        ExecutorReport {
            outcome: Outcome::Success,
            summary: Some("Created hello.txt and checked its content.".into()),
            tool_calls: vec![],
            files_reported: vec![],
            usage: usage(390, 72, None),
            session_id: Some("1b6a5e02-5e10-422f-8e80-4bf60e28d473".into()),
            error: None,
        }
    );
    // Failed tool calls do not fail the run; the summary admits them.
    let report = parse("openclaw", "tool_failure.json");
    assert_eq!(
        report.summary.as_deref(),
        Some("The file is missing and the command failed with exit code 3; nothing was changed.")
    );
    assert_eq!(report.usage, usage(330, 75, None));
    let report = parse("openclaw", "tool_loop.json");
    assert_eq!(
        report.error.as_deref(),
        Some(
            "OpenClaw stopped this run because tool-loop recovery encountered another critical \
             loop. No blocked tool action was executed. (incomplete_turn)"
        )
    );
    // The error payload ("Agent run failed") is not a summary.
    assert_eq!(report.summary, None);
    assert_eq!(report.usage, usage(1980, 220, None));
    // OpenClaw does not relay the provider's message (the mock's HTTP 400).
    let report = parse("openclaw", "api_error.json");
    assert_eq!(
        report.error.as_deref(),
        Some(
            "LLM request failed: provider rejected the request schema or tool payload. (exception)"
        )
    );
    assert_eq!(report.usage, None);
    assert_eq!(
        report.session_id.as_deref(),
        Some("109ed549-1f3b-4ebe-8604-9abdb721b884")
    );
}

/// Cutting a stream anywhere inside its final event must give `executor_error`, never a
/// panic and never a verdict; cuts elsewhere must not panic either.
#[test]
fn truncated_streams_are_executor_errors() {
    for (executor, file, _) in FIXTURES {
        let bytes = fixture(executor, file);
        let parser = adapter(executor).unwrap();
        let body = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
        // The final event: the last line of an NDJSON stream, the whole JSON document of
        // openclaw. Text executors (aider, agy) have no final event to cut.
        let final_start = match *executor {
            "aider" | "antigravity" => None,
            "openclaw" => Some(0),
            _ => Some(body.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1)),
        };
        // Every cut point for short streams, a deterministic pseudo-random sample else.
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let cuts: Vec<usize> = if body.len() <= 4000 {
            (0..body.len()).collect()
        } else {
            (0..600)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    (seed % body.len() as u64) as usize
                })
                .chain(final_start)
                .collect()
        };
        for cut in cuts {
            let report = parser.parse(&body[..cut]);
            if final_start.is_some_and(|start| cut >= start) {
                assert_eq!(
                    report.outcome,
                    Outcome::ExecutorError,
                    "{executor}/{file} cut at {cut}: {report:?}"
                );
                assert!(report.error.is_some());
            }
        }
        // Garbage and empty input (any text is a valid `agy` answer: only empty is not).
        if *executor == "antigravity" {
            assert_eq!(parser.parse(b"").outcome, Outcome::ExecutorError);
            continue;
        }
        for junk in [
            &b""[..],
            b"\xff\xfe{{{",
            b"not json at all\n",
            b"[1,2]\n{\"type\":",
        ] {
            let report = parser.parse(junk);
            assert!(
                matches!(report.outcome, Outcome::ExecutorError),
                "{executor} on {junk:?}: {report:?}"
            );
        }
    }
}

#[test]
fn registry_lists_all_nine_with_unique_names() {
    let names: Vec<&str> = adapters().iter().map(|a| a.name()).collect();
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
    let experimental: Vec<&str> = adapters()
        .iter()
        .filter(|a| a.experimental())
        .map(|a| a.name())
        .collect();
    assert_eq!(experimental, ["antigravity"]);
    for a in adapters() {
        assert_eq!(adapter(a.name()).map(|b| b.name()), Some(a.name()));
    }
}

#[test]
fn a_missing_binary_names_the_install_command() {
    let empty = tempfile::tempdir().unwrap();
    let codex = adapter("codex").unwrap();
    let err = require(codex, Some(OsStr::new(empty.path()))).unwrap_err();
    assert!(matches!(err, AdapterError::NotInstalled { .. }));
    assert_eq!(
        err.to_string(),
        "executor `codex`: `codex` not found on PATH; install it with: \
         npm install -g @openai/codex (or scripts/install-executors.sh)"
    );
    let sh = adapter("shell").unwrap();
    assert!(require(sh, Some(OsStr::new("/bin:/usr/bin"))).is_ok());
}
