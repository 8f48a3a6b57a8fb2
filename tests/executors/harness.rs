//! The mock model server, the per-case policy and TaskSpec, and reading the record back.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use codencer_tests::{Run, Sandbox, git, wait_for_port_file};

/// What the scripted executor must never see.
pub const SECRET: &str = "TOP-SECRET-OUTSIDE-THE-WORKTREE";

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `tests/mock_model/server.py` on an ephemeral loopback port; killed on drop.
pub struct Mock {
    child: Child,
    pub port: u16,
    log: PathBuf,
}

impl Mock {
    pub fn start(dir: &Path, scenario: &Path) -> Mock {
        let port_file = dir.join("mock.port");
        let log = dir.join("mock.jsonl");
        let child = Command::new("python3")
            .arg(root().join("tests/mock_model/server.py"))
            .arg("--scenario")
            .arg(scenario)
            .args(["--port", "0", "--port-file"])
            .arg(&port_file)
            .arg("--log")
            .arg(&log)
            .stdout(Stdio::null())
            .stderr(File::create(dir.join("mock.err")).unwrap())
            .spawn()
            .expect("python3 for the mock model server");
        let port = wait_for_port_file(&port_file, "the mock model server");
        Mock { child, port, log }
    }

    /// The request log (one JSON line per request).
    pub fn requests(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One real CLI.
pub struct Case<'a> {
    /// Executor name (adapter, policy file).
    pub executor: &'a str,
    /// Binary in `.tools/npm/bin`.
    pub binary: &'a str,
    /// `CODENCER_MODEL`, when the CLI needs one.
    pub model: Option<&'a str>,
    /// The API key variable the built-in policy passes from the operator's environment.
    pub key: &'a str,
    /// `network.mode`: `none`, or `allow` (the proxy runs too; the forward must still
    /// work, `NO_PROXY` covering loopback).
    pub network: &'a str,
}

/// What a case left behind.
pub struct Outcome {
    pub sb: Sandbox,
    pub out: Run,
    pub result: serde_json::Value,
    /// The parsed `executor_report` artifact.
    pub report: serde_json::Value,
    /// The executor's stdout artifact (its machine-readable transcript).
    pub transcript: String,
    /// The mock's request log.
    pub requests: String,
}

impl Outcome {
    /// A file of the attempt's branch.
    pub fn file(&self, name: &str) -> String {
        let branch = self.result["steps"][0]["branch"].as_str().unwrap();
        git(&self.sb.repo(), &["show", &format!("{branch}:{name}")])
    }

    /// The first artifact of `kind` of the first attempt.
    pub fn artifact(&self, kind: &str) -> String {
        self.sb
            .attempt_artifact(self.result["run_id"].as_str().unwrap(), kind, None)
    }
}

/// Runs `case` through `codencer run`: the mock plays a script that writes `hello.txt`,
/// runs a command reading it, tries to read a file outside the worktree, and summarises.
pub fn run_case(case: &Case<'_>) -> Outcome {
    let bin = root().join(".tools/npm/bin");
    assert!(
        bin.join(case.binary).exists(),
        "{} is not installed in {}: run scripts/install-executors.sh (scripts/test.sh does)",
        case.binary,
        bin.display()
    );
    let sb = Sandbox::new();
    let secret = sb.dir.path().join("operator-secret.txt");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    let scenario = sb.dir.path().join("scenario.json");
    let script = serde_json::json!({
        "description": "write, run, try to read outside the worktree, summarise",
        "usage": {"input_tokens": 120, "output_tokens": 30},
        "turns": [
            {"text": "I will create the file.", "action": "write_file", "path": "hello.txt", "content": "hello from the mock\n"},
            // What the tests look for is printed, never in the command text the model's own
            // request repeats (`printf 'ran-%s' ok` prints `ran-ok`). Each command sleeps after its
            // output: Qwen Code 0.24.4 headless (child_process) settles a command on `exit`,
            // before the last `data` of a command that exits at once (docs/executors.md).
            {"action": "shell", "command": "cat hello.txt && printf 'ran-%s\\n' ok; sleep 0.5"},
            {"action": "shell", "command": format!("cat {} || echo read-denied; sleep 0.5", secret.display())},
            {"text": "Created hello.txt and checked its content.", "usage": {"input_tokens": 150, "output_tokens": 12}}
        ]
    });
    std::fs::write(&scenario, script.to_string()).unwrap();
    let mock = Mock::start(sb.dir.path(), &scenario);
    let port = mock.port;
    let network = case.network;
    let model = case
        .model
        .map(|m| format!("CODENCER_MODEL = \"{m}\"\n"))
        .unwrap_or_default();
    // How an operator points an executor at an on-prem model server (docs/executors.md).
    sb.policy(
        &format!("{}.toml", case.executor),
        &format!(
            "[network]\nmode = \"{network}\"\nforward = [\"127.0.0.1:{port}\"]\n\n[env.set]\nCODENCER_MODEL_BASE_URL = \"http://127.0.0.1:{port}\"\n{model}"
        ),
    );
    let spec = sb.spec(
        "spec.yaml",
        &format!(
            "task:\n  name: real-{}\n  workspace: {}\n  executor: {}\n  goal: Create hello.txt and check it.\n  timeout: 5m\n  max_attempts: 1\n",
            case.executor,
            sb.repo().display(),
            case.executor
        ),
    );
    let out = codencer_tests::run(
        sb.command("codencer")
            .env("CODENCER_EXECUTOR_PATH", &bin)
            .env(case.key, "sk-mock")
            .args(["run", "--json", spec.to_str().unwrap()]),
    );
    let result: serde_json::Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}\n--- mock\n{}", mock.requests()));
    let mut outcome = Outcome {
        sb,
        out,
        result,
        report: serde_json::Value::Null,
        transcript: String::new(),
        requests: mock.requests(),
    };
    outcome.transcript = outcome.artifact("executor_stdout");
    let report = outcome.artifact("executor_report");
    outcome.report = serde_json::from_str(&report).unwrap_or(serde_json::Value::Null);
    outcome
}

/// The assertions every CLI must pass.
pub fn assert_proven(o: &Outcome, executor: &str) {
    let context = || {
        format!(
            "{}\n--- transcript\n{}\n--- mock requests\n{}",
            o.out, o.transcript, o.requests
        )
    };
    assert_eq!(o.out.code, Some(0), "{}", context());
    assert_eq!(o.result["status"], "passed", "{}", context());
    assert_eq!(o.file("hello.txt"), "hello from the mock\n");
    assert_eq!(o.report["outcome"], "success", "{:#}", o.report);
    assert!(
        o.report["summary"]
            .as_str()
            .unwrap_or_default()
            .contains("Created hello.txt"),
        "{executor}: {:#}",
        o.report
    );
    let tools = o.report["tool_calls"].as_array().unwrap();
    assert!(tools.len() >= 3, "{executor}: {:#}", o.report);
    assert!(
        o.report["usage"]["input_tokens"]
            .as_u64()
            .unwrap_or_default()
            > 0,
        "{executor}: {:#}",
        o.report
    );
    // The scripted command ran (its output, not only its text, went back to the model)...
    assert!(o.requests.contains("ran-ok"), "{}", context());
    // ...and the read outside the worktree found nothing: the file is not in the view.
    assert!(
        o.requests
            .contains("operator-secret.txt: No such file or directory"),
        "{}",
        context()
    );
    assert!(!o.requests.contains(SECRET), "secret leaked to the model");
    assert!(!o.transcript.contains(SECRET), "secret in the transcript");
    let summary = &o.result["steps"][0]["summary"];
    assert!(
        summary
            .as_str()
            .unwrap_or_default()
            .contains("Created hello.txt"),
        "{summary}"
    );
}
