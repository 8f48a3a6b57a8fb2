//! Runs one executor or validator process confined by `codencer-worker`, with its output
//! captured to files, under wall, idle and output limits, cancellable.
//!
//! The worker is the PID 1 of the sandbox: killing it (SIGKILL, through a pidfd) takes every
//! process inside with it, so a timeout, a cancel or an output flood ends the whole sandbox.
//!
//! A sandbox may be built ahead and held ([`prepare`]), and kept after its first process
//! ([`prepare_kept`], [`Held::run_keep`]): once that process and everything it started are
//! gone, more processes run in it one at a time ([`Kept::run`]). The attempt keeps the
//! executor's sandbox this way for its validators.

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use codencer_sandbox::{
    ExecSpec, ExitStatus, SandboxError, SandboxSpec, WorkerHandle, WorkerReport,
};
use codencer_store::ProcessExit;
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
    /// The confinement.
    pub sandbox: SandboxSpec,
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
    /// What the worker enforced, and why it refused to start if it did.
    pub report: WorkerReport,
}

/// Errors starting or supervising a process.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LaunchError {
    #[error("cannot start the sandbox worker {worker}")]
    Spawn {
        worker: String,
        #[source]
        source: codencer_sandbox::SandboxError,
    },
    #[error("cannot capture process output to {path}")]
    Output {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the sandbox worker failed")]
    Worker(#[source] codencer_sandbox::SandboxError),
    #[error("empty command line")]
    EmptyCommand,
}

/// Output activity shared between the pipe readers and the supervising loop.
#[derive(Debug, Default)]
struct Activity {
    bytes: AtomicU64,
    /// Milliseconds after start of the last output.
    last_ms: AtomicU64,
}

/// Runs the process to its end. `on_start` gets the worker's pid once it runs.
pub async fn run_process(
    worker: &Path,
    req: &ProcessRequest,
    cancel: &mut watch::Receiver<bool>,
    on_start: impl FnOnce(u32),
) -> Result<ProcessOutcome, LaunchError> {
    start(worker, req, false, false)
        .await?
        .run(req, cancel, on_start)
        .await
}

/// Sets the sandbox of `req` up (the worker builds it on another core) without starting
/// the process: [`Held::run`] starts it, dropping the [`Held`] discards it. The caller
/// may keep working in the worktree meanwhile; the sandbox only binds it.
pub async fn prepare(worker: &Path, req: &ProcessRequest) -> Result<Held, LaunchError> {
    start(worker, req, true, false).await
}

/// [`prepare`], for a sandbox that outlives its first process: [`Held::run_keep`] hands it
/// back as a [`Kept`] once that process and everything it started are gone, to run more
/// processes in, one at a time, in the same confinement.
pub async fn prepare_kept(worker: &Path, req: &ProcessRequest) -> Result<Held, LaunchError> {
    start(worker, req, true, true).await
}

/// A worker started for a request, its process not yet supervised (held, or about to be).
#[derive(Debug)]
pub struct Held {
    handle: Option<WorkerHandle>,
    watch: Watch,
}

/// A sandbox whose process ended, kept for more ([`prepare_kept`]). Dropping it ends the
/// sandbox.
#[derive(Debug)]
pub struct Kept {
    handle: Option<WorkerHandle>,
}

async fn start(
    worker: &Path,
    req: &ProcessRequest,
    hold: bool,
    more: bool,
) -> Result<Held, LaunchError> {
    if req.argv.is_empty() {
        return Err(LaunchError::EmptyCommand);
    }
    let outputs = Outputs::open(req)?;
    let spec = ExecSpec {
        argv: req.argv.clone(),
        cwd: req.cwd.clone(),
        env: req.env.clone(),
        sandbox: req.sandbox.clone(),
        hold,
        more,
    };
    // The write ends move into the worker; once the process and everything it started are
    // gone, the readers see EOF.
    let handle = spawn_on_spawner(
        worker,
        spec,
        Stdio::from(outputs.out_w),
        Stdio::from(outputs.err_w),
    )
    .await
    .map_err(|source| LaunchError::Spawn {
        worker: worker.display().to_string(),
        source,
    })?;
    Ok(Held {
        handle: Some(handle),
        watch: outputs.watch,
    })
}

/// A process's output files and the pipes to them, pumped from now on.
struct Outputs {
    out_w: std::io::PipeWriter,
    err_w: std::io::PipeWriter,
    watch: Watch,
}

/// The pumps copying a process's output to its files, and what they saw.
#[derive(Debug)]
struct Watch {
    readers: Vec<tokio::task::JoinHandle<()>>,
    activity: Arc<Activity>,
    /// When the readers started; output times are relative to it.
    t0: Instant,
}

impl Outputs {
    fn open(req: &ProcessRequest) -> Result<Outputs, LaunchError> {
        let out_file = open_output(&req.stdout)?;
        let err_file = match &req.stderr {
            Some(path) => open_output(path)?,
            None => out_file
                .try_clone()
                .map_err(|source| output_err(&req.stdout, source))?,
        };
        let (out_r, out_w) = std::io::pipe().map_err(|source| output_err(&req.stdout, source))?;
        let (err_r, err_w) = std::io::pipe().map_err(|source| output_err(&req.stdout, source))?;
        let t0 = Instant::now();
        let activity = Arc::new(Activity::default());
        let readers = vec![
            pump(out_r, out_file, activity.clone(), t0),
            pump(err_r, err_file, activity.clone(), t0),
        ];
        Ok(Outputs {
            out_w,
            err_w,
            watch: Watch {
                readers,
                activity,
                t0,
            },
        })
    }
}

impl Held {
    /// Starts the process (releases a held sandbox) and supervises it to its end under
    /// `req`'s wall, idle and output limits, counted from now.
    pub async fn run(
        self,
        req: &ProcessRequest,
        cancel: &mut watch::Receiver<bool>,
        on_start: impl FnOnce(u32),
    ) -> Result<ProcessOutcome, LaunchError> {
        Ok(self.release(req, cancel, on_start, false).await?.0)
    }

    /// [`Held::run`] for a sandbox from [`prepare_kept`]: also hands the sandbox back once
    /// the process and everything it started are gone (`None` when the sandbox ended with
    /// it: killed at a limit, cancelled, or it failed).
    pub async fn run_keep(
        self,
        req: &ProcessRequest,
        cancel: &mut watch::Receiver<bool>,
        on_start: impl FnOnce(u32),
    ) -> Result<(ProcessOutcome, Option<Kept>), LaunchError> {
        self.release(req, cancel, on_start, true).await
    }

    async fn release(
        mut self,
        req: &ProcessRequest,
        cancel: &mut watch::Receiver<bool>,
        on_start: impl FnOnce(u32),
        keep: bool,
    ) -> Result<(ProcessOutcome, Option<Kept>), LaunchError> {
        let Some(mut handle) = self.handle.take() else {
            return Err(LaunchError::Worker(SandboxError::WorkerIo(
                std::io::Error::other("the worker was already run"),
            )));
        };
        let watch = std::mem::replace(&mut self.watch, Watch::none());
        if let Some(go) = handle.take_go() {
            go.release();
        }
        on_start(handle.pid());
        supervise(handle, watch, req, cancel, keep).await
    }
}

impl Kept {
    /// Runs `req`'s command (its argv, env, cwd and output files; not its sandbox, which is
    /// this one) the way [`Held::run_keep`] ran the first, and hands the sandbox back again.
    pub async fn run(
        mut self,
        req: &ProcessRequest,
        cancel: &mut watch::Receiver<bool>,
    ) -> Result<(ProcessOutcome, Option<Kept>), LaunchError> {
        let Some(handle) = self.handle.take() else {
            return Err(LaunchError::Worker(SandboxError::WorkerIo(
                std::io::Error::other("the kept sandbox is gone"),
            )));
        };
        if req.argv.is_empty() {
            return Err(LaunchError::EmptyCommand);
        }
        let outputs = Outputs::open(req)?;
        let next = codencer_sandbox::NextCommand {
            argv: req.argv.clone(),
            cwd: req.cwd.clone(),
            env: req.env.clone(),
        };
        if let Err(err) = handle.run_next(&next, outputs.out_w.as_fd(), outputs.err_w.as_fd()) {
            discard(handle);
            return Err(LaunchError::Worker(err));
        }
        // Ours closed: the readers see EOF once the command's processes are gone.
        drop((outputs.out_w, outputs.err_w));
        supervise(handle, outputs.watch, req, cancel, true).await
    }
}

impl Drop for Kept {
    /// No more commands: the idle sandbox ends; it is reaped off the async threads.
    fn drop(&mut self) {
        if let Some(mut handle) = self.handle.take() {
            handle.end_commands();
            std::thread::spawn(move || {
                let _ = handle.wait();
            });
        }
    }
}

impl Watch {
    fn none() -> Watch {
        Watch {
            readers: Vec::new(),
            activity: Arc::new(Activity::default()),
            t0: Instant::now(),
        }
    }
}

/// Kills a worker and reaps it off the async threads.
fn discard(handle: WorkerHandle) {
    handle.kill();
    std::thread::spawn(move || {
        let _ = handle.wait();
    });
}

/// Supervises the process just started in `handle` to its end under `req`'s wall, idle
/// and output limits, counted from now; with `keep`, hands the sandbox back when it
/// outlived the process.
async fn supervise(
    mut handle: WorkerHandle,
    watch: Watch,
    req: &ProcessRequest,
    cancel: &mut watch::Receiver<bool>,
    keep: bool,
) -> Result<(ProcessOutcome, Option<Kept>), LaunchError> {
    let started = Instant::now();
    let Watch {
        readers,
        activity,
        t0,
    } = watch;
    activity
        .last_ms
        .store(t0.elapsed().as_millis() as u64, Ordering::Relaxed);
    let killer = handle.killer();
    let keep = keep && handle.takes_commands();
    let mut wait = tokio::task::spawn_blocking(move || {
        if !keep {
            return (handle.wait(), None);
        }
        match handle.wait_exit() {
            Ok(Some(report)) if report.setup_error.is_none() => (Ok(report), Some(handle)),
            // The sandbox refused, or ended with the process: its final report.
            Ok(_) => (handle.wait(), None),
            Err(err) => {
                discard(handle);
                (Err(err), None)
            }
        }
    });

    let deadline = tokio::time::Instant::from_std(started + req.wall);
    let tick = req.idle.map_or(Duration::from_millis(250), |i| {
        (i / 4).clamp(Duration::from_millis(20), Duration::from_millis(250))
    });
    let mut ending = Ending::Exited;
    let waited = loop {
        tokio::select! {
            waited = &mut wait => break waited,
            () = tokio::time::sleep_until(deadline), if ending == Ending::Exited => {
                ending = Ending::WallTimeout;
                killer.kill();
            }
            changed = cancel.changed(), if ending == Ending::Exited => {
                if changed.is_err() || *cancel.borrow() {
                    ending = Ending::Cancelled;
                    killer.kill();
                }
            }
            () = tokio::time::sleep(tick), if ending == Ending::Exited => {
                if req.output_limit.is_some_and(|limit| activity.bytes.load(Ordering::Relaxed) > limit) {
                    ending = Ending::OutputLimit;
                    killer.kill();
                } else if let Some(idle) = req.idle {
                    let last = Duration::from_millis(activity.last_ms.load(Ordering::Relaxed));
                    if t0.elapsed().saturating_sub(last) >= idle {
                        ending = Ending::IdleTimeout;
                        killer.kill();
                    }
                }
            }
        }
    };
    for reader in readers {
        // EOF comes once every process of the command is gone; a bounded wait all the same.
        let _ = tokio::time::timeout(Duration::from_secs(5), reader).await;
    }
    let (report, kept) = match waited {
        Ok((Ok(report), kept)) => (report, kept),
        Ok((Err(err), _)) => return Err(LaunchError::Worker(err)),
        Err(join) => {
            return Err(LaunchError::Worker(
                codencer_sandbox::SandboxError::WorkerIo(std::io::Error::other(join)),
            ));
        }
    };
    // A sandbox killed at a limit is gone; one kept past a kill would be no use.
    let kept = match (kept, ending) {
        (Some(handle), Ending::Exited) => Some(Kept {
            handle: Some(handle),
        }),
        (Some(handle), _) => {
            discard(handle);
            None
        }
        (None, _) => None,
    };
    let exit = match &report.exit {
        Some(ExitStatus::Exited { code }) => ProcessExit {
            code: Some(*code),
            signal: None,
        },
        Some(ExitStatus::Signaled { signal, .. }) => ProcessExit {
            code: None,
            signal: Some(*signal),
        },
        None => ProcessExit {
            code: None,
            signal: None,
        },
    };
    Ok((
        ProcessOutcome {
            exit,
            ending,
            duration: started.elapsed(),
            output_bytes: activity.bytes.load(Ordering::Relaxed),
            report,
        },
        kept,
    ))
}

impl Drop for Held {
    /// A held worker never run: its go pipe closes (it starts nothing), it is killed all
    /// the same, and reaped off the async threads.
    fn drop(&mut self) {
        if let Some(mut handle) = self.handle.take() {
            drop(handle.take_go());
            discard(handle);
        }
    }
}

fn output_err(path: &Path, source: std::io::Error) -> LaunchError {
    LaunchError::Output {
        path: path.display().to_string(),
        source,
    }
}

fn open_output(path: &Path) -> Result<std::fs::File, LaunchError> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| output_err(path, source))
}

/// Copies a pipe to a file in a blocking thread, counting bytes and noting activity.
fn pump(
    mut from: std::io::PipeReader,
    mut to: std::fs::File,
    activity: Arc<Activity>,
    started: Instant,
) -> tokio::task::JoinHandle<()> {
    tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    activity.bytes.fetch_add(n as u64, Ordering::Relaxed);
                    activity
                        .last_ms
                        .store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
                    // Output past a disk error is lost; the limit and the kill still apply.
                    let _ = to.write_all(&buf[..n]);
                }
            }
        }
        let _ = to.flush();
    })
}

type SpawnJob = Box<dyn FnOnce() + Send>;

/// Starts the worker from one long-lived thread. The worker's parent-death signal fires
/// when the thread that forked it exits, not the process, and tokio retires idle threads;
/// this thread lives as long as the process, so a worker dies exactly when its supervisor
/// does (SIGKILL included).
async fn spawn_on_spawner(
    worker: &Path,
    spec: ExecSpec,
    stdout: Stdio,
    stderr: Stdio,
) -> Result<WorkerHandle, SandboxError> {
    static SPAWNER: OnceLock<Option<mpsc::Sender<SpawnJob>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (jobs, queue) = mpsc::channel::<SpawnJob>();
        std::thread::Builder::new()
            .name("codencer-spawner".into())
            .spawn(move || {
                for job in queue {
                    job();
                }
            })
            .ok()
            .map(|_| jobs)
    });
    let (reply, answer) = tokio::sync::oneshot::channel();
    let worker = worker.to_path_buf();
    let job: SpawnJob = Box::new(move || {
        let _ = reply.send(codencer_sandbox::spawn_worker(
            &worker, &spec, stdout, stderr,
        ));
    });
    let lost = || SandboxError::WorkerIo(std::io::Error::other("the spawner thread is gone"));
    match spawner {
        Some(jobs) => {
            jobs.send(job).map_err(|_| lost())?;
            answer.await.map_err(|_| lost())?
        }
        None => Err(lost()),
    }
}
