//! Runs one executor or validator process, with its output captured to files, under wall,
//! idle and output limits, cancellable.
//!
//! PLACEHOLDER for the foundation: the process runs unconfined, in its own process group,
//! which is killed whole when the process ends, times out or is cancelled. The sandbox
//! issue replaces the spawn with `codencer-worker` (namespaces, Landlock, seccomp); the
//! interface (request in, outcome out) stays.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use codencer_store::ProcessExit;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use tokio::sync::watch;

/// What to run.
#[derive(Debug, Clone)]
pub struct ProcessRequest {
    pub argv: Vec<String>,
    /// The whole environment of the process (nothing is inherited).
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    /// File receiving stdout.
    pub stdout: PathBuf,
    /// File receiving stderr; `None` interleaves stderr into `stdout`.
    pub stderr: Option<PathBuf>,
    pub wall: Duration,
    /// Kill when no output arrives for this long.
    pub idle: Option<Duration>,
    /// Kill when stdout and stderr together exceed this many bytes.
    pub output_limit: Option<u64>,
}

/// Why the process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// It exited (or was killed by a signal) on its own.
    Exited,
    WallTimeout,
    IdleTimeout,
    OutputLimit,
    Cancelled,
}

/// How it went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessOutcome {
    pub exit: ProcessExit,
    pub ending: Ending,
    pub duration: Duration,
    pub output_bytes: u64,
}

/// Errors starting or supervising a process.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LaunchError {
    #[error("cannot start `{program}`")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write process output to {path}")]
    Output {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("empty command line")]
    EmptyCommand,
}

/// Output activity shared between the pipe readers and the supervising loop.
#[derive(Debug, Default)]
struct Activity {
    bytes: AtomicU64,
    /// Milliseconds since start of the last output.
    last_ms: AtomicU64,
}

/// Runs the process to its end. `on_start` gets the pid once it runs.
pub async fn run_process(
    req: &ProcessRequest,
    cancel: &mut watch::Receiver<bool>,
    on_start: impl FnOnce(u32),
) -> Result<ProcessOutcome, LaunchError> {
    let (program, args) = req.argv.split_first().ok_or(LaunchError::EmptyCommand)?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(&req.cwd)
        .env_clear()
        .envs(req.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let started = Instant::now();
    let mut child = cmd.spawn().map_err(|source| LaunchError::Spawn {
        program: program.clone(),
        source,
    })?;
    let pid = child.id().unwrap_or(0);
    on_start(pid);

    let activity = Arc::new(Activity::default());
    let out_file = open_output(&req.stdout).await?;
    let err_file = match &req.stderr {
        Some(path) => open_output(path).await?,
        None => out_file
            .try_clone()
            .await
            .map_err(|source| output_err(&req.stdout, source))?,
    };
    let mut readers = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        readers.push(tokio::spawn(pump(
            stdout,
            out_file,
            activity.clone(),
            started,
        )));
    }
    if let Some(stderr) = child.stderr.take() {
        readers.push(tokio::spawn(pump(
            stderr,
            err_file,
            activity.clone(),
            started,
        )));
    }

    let deadline = tokio::time::Instant::from_std(started + req.wall);
    let tick = req.idle.map_or(Duration::from_millis(500), |i| {
        (i / 4).clamp(Duration::from_millis(20), Duration::from_millis(500))
    });
    let mut ending = Ending::Exited;
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            () = tokio::time::sleep_until(deadline) => { ending = Ending::WallTimeout; break kill_and_wait(&mut child, pid).await; }
            changed = cancel.changed() => {
                if changed.is_err() || *cancel.borrow() {
                    ending = Ending::Cancelled;
                    break kill_and_wait(&mut child, pid).await;
                }
            }
            () = tokio::time::sleep(tick) => {
                if let Some(limit) = req.output_limit && activity.bytes.load(Ordering::Relaxed) > limit {
                    ending = Ending::OutputLimit;
                    break kill_and_wait(&mut child, pid).await;
                }
                if let Some(idle) = req.idle {
                    let quiet = started.elapsed().saturating_sub(Duration::from_millis(activity.last_ms.load(Ordering::Relaxed)));
                    if quiet >= idle {
                        ending = Ending::IdleTimeout;
                        break kill_and_wait(&mut child, pid).await;
                    }
                }
            }
        }
    };
    // Whatever the process left running in its group ends with it.
    kill_group(pid);
    for reader in readers {
        // Readers end at EOF, which the group kill guarantees; a bounded wait all the same.
        let _ = tokio::time::timeout(Duration::from_secs(5), reader).await;
    }
    let exit = match status {
        Ok(status) => {
            use std::os::unix::process::ExitStatusExt;
            ProcessExit {
                code: status.code(),
                signal: status.signal(),
            }
        }
        Err(_) => ProcessExit {
            code: None,
            signal: None,
        },
    };
    Ok(ProcessOutcome {
        exit,
        ending,
        duration: started.elapsed(),
        output_bytes: activity.bytes.load(Ordering::Relaxed),
    })
}

async fn kill_and_wait(
    child: &mut tokio::process::Child,
    pid: u32,
) -> std::io::Result<std::process::ExitStatus> {
    kill_group(pid);
    child.wait().await
}

fn kill_group(pid: u32) {
    if pid == 0 {
        return;
    }
    if let Ok(pid) = i32::try_from(pid) {
        // The group may already be gone; that is the point.
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

fn output_err(path: &std::path::Path, source: std::io::Error) -> LaunchError {
    LaunchError::Output {
        path: path.display().to_string(),
        source,
    }
}

async fn open_output(path: &std::path::Path) -> Result<tokio::fs::File, LaunchError> {
    tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await
        .map_err(|source| output_err(path, source))
}

async fn pump(
    mut from: impl AsyncRead + Unpin,
    mut to: tokio::fs::File,
    activity: Arc<Activity>,
    started: Instant,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                activity.bytes.fetch_add(n as u64, Ordering::Relaxed);
                activity
                    .last_ms
                    .store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
                if to.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.flush().await;
}
