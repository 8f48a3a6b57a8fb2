//! Fixture and runner for the hostile suite: a throwaway repo with two worktrees, an
//! operator home holding a secret, a fake store, and the real `codencer-worker`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use codencer_sandbox::{ExecSpec, SandboxSpec, WorkerReport, spawn_worker};
use codencer_tests::git;

/// The worker binary: `$CODENCER_WORKER`, else next to the test binary.
pub fn worker() -> PathBuf {
    std::env::var_os("CODENCER_WORKER")
        .map(PathBuf::from)
        .unwrap_or_else(|| codencer_tests::bin("codencer-worker"))
}

/// The compiled probe (tests/hostile/probe.c), built once per test process.
pub fn probe() -> &'static Path {
    static PROBE: OnceLock<PathBuf> = OnceLock::new();
    PROBE.get_or_init(|| {
        // Probes of earlier runs whose process is gone.
        for entry in std::fs::read_dir(std::env::temp_dir()).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("codencer-hostile-probe-")
                && !Path::new("/proc").join(pid).exists()
            {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        let dir =
            std::env::temp_dir().join(format!("codencer-hostile-probe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("probe");
        // Embedded, so the binary also runs where the source tree is unreadable.
        let src = dir.join("probe.c");
        std::fs::write(&src, include_str!("probe.c")).unwrap();
        let status = Command::new("cc")
            .args(["-O1", "-o"])
            .arg(&out)
            .arg(&src)
            .status()
            .expect("cc");
        assert!(status.success(), "compiling probe.c");
        out
    })
}

/// One test's world.
pub struct Fixture {
    pub dir: tempfile::TempDir,
}

/// The worktree's branch, named like the supervisor's (`codencer/<run>/<step>/<attempt>`):
/// its ref directory is the only writable one.
pub const ATTEMPT_BRANCH: &str = "codencer/run/1/1";

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::Builder::new()
            .prefix("codencer-hostile")
            .tempdir()
            .unwrap();
        let root = dir.path();
        let repo = root.join("repo");
        std::fs::create_dir_all(&repo).unwrap();
        git(&repo, &["init", "-q", "-b", "main"]);
        std::fs::write(repo.join("app.txt"), "line 1\n").unwrap();
        git(&repo, &["add", "."]);
        git(&repo, &["commit", "-q", "-m", "initial"]);
        git(
            &repo,
            &["worktree", "add", "-q", "../wt", "-b", ATTEMPT_BRANCH],
        );
        git(
            &repo,
            &["worktree", "add", "-q", "../other-wt", "-b", "other"],
        );
        std::fs::write(
            root.join("other-wt/other-secret.txt"),
            "OTHER-WORKTREE-SECRET\n",
        )
        .unwrap();
        let ssh = root.join("home/.ssh");
        std::fs::create_dir_all(&ssh).unwrap();
        std::fs::write(ssh.join("id_rsa"), "OPERATOR-SSH-KEY\n").unwrap();
        std::fs::create_dir_all(root.join("store")).unwrap();
        std::fs::write(root.join("store/codencer.db"), "STORE-DB-CONTENT\n").unwrap();
        std::fs::create_dir_all(root.join("outside")).unwrap();
        std::fs::write(root.join("outside/target.txt"), "ORIGINAL\n").unwrap();
        Fixture { dir }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }

    pub fn wt(&self) -> PathBuf {
        self.path("wt")
    }

    /// The spec the supervisor would build: worktree, its git dir, the probe.
    pub fn spec(&self, script: &str) -> ExecSpec {
        let mut sandbox = SandboxSpec::new(self.wt());
        sandbox.git_dirs = vec![self.path("repo/.git")];
        sandbox.git_branch = Some(ATTEMPT_BRANCH.to_owned());
        sandbox.read_only = vec![probe().to_owned()];
        ExecSpec {
            argv: vec!["/bin/bash".into(), "-c".into(), script.into()],
            cwd: self.wt(),
            env: vec![
                (
                    "PATH".into(),
                    format!(
                        "/usr/local/bin:/usr/bin:/bin:{}",
                        probe().parent().unwrap().display()
                    ),
                ),
                ("HOME".into(), "/home/codencer".into()),
                ("LANG".into(), "C.UTF-8".into()),
                ("GIT_CONFIG_COUNT".into(), "3".into()),
                ("GIT_CONFIG_KEY_0".into(), "safe.directory".into()),
                ("GIT_CONFIG_VALUE_0".into(), "*".into()),
                ("GIT_CONFIG_KEY_1".into(), "user.name".into()),
                ("GIT_CONFIG_VALUE_1".into(), "executor".into()),
                ("GIT_CONFIG_KEY_2".into(), "user.email".into()),
                ("GIT_CONFIG_VALUE_2".into(), "executor@example.com".into()),
            ],
            sandbox,
            hold: false,
            more: false,
        }
    }

    /// Runs `script` with the default spec.
    pub fn run(&self, script: &str) -> Outcome {
        run(&self.spec(script), None)
    }
}

/// A finished sandboxed run.
#[derive(Debug)]
pub struct Outcome {
    pub report: WorkerReport,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Outcome {
    /// The executor's exit code (panics with the whole outcome when it did not exit).
    pub fn code(&self) -> i32 {
        match &self.report.exit {
            Some(codencer_sandbox::ExitStatus::Exited { code }) => *code,
            other => panic!("no exit code ({other:?}):\n{self}"),
        }
    }

    /// Asserts stdout contains every `needle`.
    pub fn expect(&self, needles: &[&str]) -> &Self {
        for needle in needles {
            assert!(
                self.stdout.contains(needle),
                "stdout lacks {needle:?}:\n{self}"
            );
        }
        self
    }

    /// Asserts neither stdout nor stderr contains `needle`.
    pub fn never(&self, needle: &str) -> &Self {
        assert!(
            !self.stdout.contains(needle) && !self.stderr.contains(needle),
            "output contains {needle:?}:\n{self}"
        );
        self
    }

    /// Asserts the executor exited 0.
    pub fn ok(&self) -> &Self {
        assert_eq!(self.code(), 0, "{self}");
        self
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "--- stdout\n{}\n--- stderr\n{}\n--- report\n{}",
            self.stdout,
            self.stderr,
            serde_json::to_string_pretty(&self.report).unwrap_or_default()
        )
    }
}

/// Starts the real worker on `spec` with `stdout` as the process's output (stderr
/// discarded), for cases that drive the handle themselves (held and kept sandboxes).
pub fn spawn(spec: &ExecSpec, stdout: Stdio) -> codencer_sandbox::WorkerHandle {
    spawn_worker(&worker(), spec, stdout, Stdio::null()).unwrap()
}

/// Runs `spec` through the real worker; kills the sandbox at `deadline` like the
/// supervisor's wall-time killer.
pub fn run(spec: &ExecSpec, deadline: Option<Duration>) -> Outcome {
    run_with(spec, deadline, |_| {})
}

/// Like [`run`], calling `during` with the worker's pid once it runs.
pub fn run_with(spec: &ExecSpec, deadline: Option<Duration>, during: impl FnOnce(u32)) -> Outcome {
    let out = tempfile::NamedTempFile::new().unwrap();
    let err = tempfile::NamedTempFile::new().unwrap();
    let start = Instant::now();
    let handle = spawn_worker(
        &worker(),
        spec,
        Stdio::from(out.reopen().unwrap()),
        Stdio::from(err.reopen().unwrap()),
    )
    .unwrap();
    during(handle.pid());
    let killer = handle.killer();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let limit = deadline.unwrap_or(Duration::from_secs(60));
    let watchdog = std::thread::spawn(move || {
        if done_rx.recv_timeout(limit).is_err() {
            killer.kill();
        }
    });
    let report = handle.wait().unwrap();
    let _ = done_tx.send(());
    watchdog.join().unwrap();
    Outcome {
        report,
        stdout: std::fs::read_to_string(out.path()).unwrap_or_default(),
        stderr: std::fs::read_to_string(err.path()).unwrap_or_default(),
        elapsed: start.elapsed(),
    }
}

/// Host processes whose command line contains `marker` (should be none after a run).
pub fn survivors(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if !entry
            .file_name()
            .to_string_lossy()
            .chars()
            .all(|c| c.is_ascii_digit())
        {
            continue;
        }
        if let Ok(raw) = std::fs::read(entry.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&raw).replace('\0', " ");
            if cmd.contains(marker) {
                found.push(format!("{}: {cmd}", entry.file_name().to_string_lossy()));
            }
        }
    }
    found
}

/// Whether this test process runs as root.
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}
