//! Shared helpers for the end-to-end suites: locating the built binaries, throwaway git
//! repositories, and running the command lines.
#![forbid(unsafe_code)]
// Test support: a setup step that fails must abort the test, with its message.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Path of a workspace binary (`codencer`, `orchestratorctl`, `codencer-worker`) in the
/// same target directory as the running test. `scripts/test.sh` builds them first.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test>-<hash>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let path = profile_dir.join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --workspace --bins` first (scripts/test.sh does)",
        path.display()
    );
    path
}

/// Runs git in `dir`, panicking with its stderr on failure; returns stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=test", "-c", "user.email=test@example.com"])
        .args(args)
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The port a helper server writes to `port_file` once it listens; panics naming `what`
/// when none appears within 20 s.
pub fn wait_for_port_file(port_file: &Path, what: &str) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(port) = std::fs::read_to_string(port_file)
            .ok()
            .and_then(|p| p.trim().parse().ok())
        {
            return port;
        }
        assert!(Instant::now() < deadline, "{what} did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `pid: command line` of every live process whose command line contains `marker`
/// (except cargo's own), to prove an executor's processes are gone.
pub fn processes_with(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if text.contains(marker) && !text.contains("cargo") {
                found.push(format!("{}: {text}", entry.file_name().to_string_lossy()));
            }
        }
    }
    found
}

/// A temporary directory holding a git repository (`repo/`, one commit on `main`), a state
/// dir (`state/`) and room for TaskSpecs.
#[derive(Debug)]
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = dir.path().join("repo");
        std::fs::create_dir_all(&repo).expect("mkdir repo");
        git(&repo, &["init", "-q", "-b", "main"]);
        std::fs::write(repo.join("README.md"), "# demo\n").expect("write");
        std::fs::write(repo.join("app.txt"), "line 1\n").expect("write");
        git(&repo, &["add", "."]);
        git(&repo, &["commit", "-q", "-m", "initial"]);
        Sandbox { dir }
    }

    pub fn repo(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Writes a TaskSpec file and returns its path.
    pub fn spec(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write spec");
        path
    }

    /// The operator's policy directory for this test (`$CODENCER_CONFIG/policy`), so tests
    /// never read the real operator's files.
    pub fn policy_dir(&self) -> PathBuf {
        self.dir.path().join("config").join("policy")
    }

    /// Writes an operator policy file.
    pub fn policy(&self, name: &str, text: &str) {
        std::fs::create_dir_all(self.policy_dir()).expect("mkdir policy");
        std::fs::write(self.policy_dir().join(name), text).expect("write policy");
    }

    /// A command for one of the binaries, with this sandbox's state and config.
    pub fn command(&self, binary: &str) -> Command {
        let mut cmd = Command::new(bin(binary));
        cmd.env("CODENCER_CONFIG", self.dir.path().join("config"))
            .arg("--state-dir")
            .arg(self.state());
        cmd
    }

    /// `codencer --state-dir <state> args...`
    pub fn codencer(&self, args: &[&str]) -> Run {
        run(self.command("codencer").args(args))
    }

    /// `orchestratorctl --state-dir <state> args...`
    pub fn ctl(&self, args: &[&str]) -> Run {
        run(self.command("orchestratorctl").args(args))
    }

    /// `orchestratorctl runs tree --json <run_id>`, parsed.
    pub fn tree(&self, run_id: &str) -> serde_json::Value {
        let out = self.ctl(&["runs", "tree", "--json", run_id]);
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("runs tree is not JSON ({e}):\n{out}"))
    }

    /// The content of the first attempt's artifact of `kind` (and `name`, when given) in
    /// the first step of `run_id`.
    pub fn attempt_artifact(&self, run_id: &str, kind: &str, name: Option<&str>) -> String {
        let tree = self.tree(run_id);
        let id = tree["steps"][0]["attempts"][0]["artifacts"]
            .as_array()
            .expect("artifacts")
            .iter()
            .find(|a| a["kind"] == kind && name.is_none_or(|n| a["name"] == n))
            .and_then(|a| a["id"].as_str())
            .unwrap_or_else(|| panic!("no {kind} artifact {name:?}:\n{tree:#}"))
            .to_owned();
        self.ctl(&["artifacts", "get", &id]).stdout
    }

    /// `codencer run --json <spec>`, parsed.
    pub fn run_json(&self, spec: &Path) -> (Run, serde_json::Value) {
        let out = self.codencer(&["run", "--json", spec.to_str().expect("utf-8 path")]);
        let json = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{out}"));
        (out, json)
    }
}

impl Default for Sandbox {
    fn default() -> Self {
        Sandbox::new()
    }
}

/// A finished command.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

pub fn run(cmd: &mut Command) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("spawn");
    Run {
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}
