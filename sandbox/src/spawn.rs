//! The supervisor's side: start `codencer-worker`, hand it the spec, collect its report.

use std::io::{IoSliceMut, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};

use crate::error::SandboxError;
use crate::report::{Denial, DenialKind, ExitStatus, WorkerReport};
use crate::spec::ExecSpec;

/// The descriptor on which the worker writes its report: a unix stream socket carrying
/// JSON lines (the last one wins) and, once, a pidfd of the sandbox's PID 1 (SCM_RIGHTS),
/// so that `wait` returns only when the whole PID namespace is gone.
pub const REPORT_FD: RawFd = 3;

/// The descriptor a held worker ([`ExecSpec::hold`]) reads its go byte from.
pub const GO_FD: RawFd = 4;

/// The descriptor a kept sandbox ([`ExecSpec::more`]) reads further commands from: a
/// `SOCK_SEQPACKET` socket, one [`NextCommand`](crate::NextCommand) per message, in JSON,
/// with its stdout and stderr as `SCM_RIGHTS`.
pub const CMD_FD: RawFd = 5;

/// Starts a held worker's process: [`Go::release`]. Dropping it instead makes the worker
/// start nothing and exit.
#[derive(Debug)]
pub struct Go(std::io::PipeWriter);

impl Go {
    /// Lets the sandbox start its process.
    pub fn release(mut self) {
        // A worker that already died shows up in `wait`.
        let _ = self.0.write_all(b"G");
    }
}

/// A running worker. Dropping it does not kill the sandbox; call [`WorkerHandle::kill`].
#[derive(Debug)]
pub struct WorkerHandle {
    child: Child,
    report: UnixStream,
    killer: WorkerKiller,
    go: Option<Go>,
    /// A kept sandbox's command socket ([`ExecSpec::more`]).
    commands: Option<OwnedFd>,
    /// Report bytes read so far, and how far [`WorkerHandle::wait_exit`] has looked.
    read: Vec<u8>,
    seen: usize,
}

/// Kills a worker (and its whole sandbox) from anywhere, also while another thread is
/// blocked in [`WorkerHandle::wait`]. Uses a pidfd, so it never signals a recycled pid.
#[derive(Debug, Clone)]
pub struct WorkerKiller {
    worker: Arc<OwnedFd>,
    init: Arc<OnceLock<OwnedFd>>,
}

impl WorkerKiller {
    /// Kills the sandbox: SIGKILL to its PID 1 once known (the whole PID namespace dies;
    /// the worker then reports and exits, so `wait` returns when nothing is left), else
    /// to the worker (PID 1 follows through its parent-death signal).
    /// A sandbox that already ended is not an error.
    pub fn kill(&self) {
        match self.init.get() {
            Some(init) => send_kill(init),
            None => send_kill(&self.worker),
        }
    }
}

pub(crate) fn send_kill(pidfd: &OwnedFd) {
    // SAFETY: pidfd_send_signal on a pidfd we own; null siginfo is allowed.
    let _ = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
}

impl WorkerHandle {
    /// The worker's pid (outside the sandbox).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the whole sandbox (SIGKILL to the worker; its PID namespace dies with it).
    pub fn kill(&self) {
        self.killer.kill();
    }

    /// The go of a held worker ([`ExecSpec::hold`]); `None` after the first call or when
    /// the worker was not held.
    pub fn take_go(&mut self) -> Option<Go> {
        self.go.take()
    }

    /// A cloneable killer usable while another thread waits.
    pub fn killer(&self) -> WorkerKiller {
        self.killer.clone()
    }

    /// For a kept sandbox ([`ExecSpec::more`]): blocks until its current process and
    /// everything it started are gone, and returns that process's report (`exit` set, or
    /// `setup_error`). `None`: the sandbox itself ended (killed, or it failed); then
    /// [`WorkerHandle::wait`] has the final report. Call it from a blocking thread.
    pub fn wait_exit(&mut self) -> Result<Option<WorkerReport>, SandboxError> {
        loop {
            while let Some(end) = self.read[self.seen..].iter().position(|b| *b == b'\n') {
                let line = &self.read[self.seen..self.seen + end];
                self.seen += end + 1;
                if let Ok(report) = serde_json::from_slice::<WorkerReport>(line)
                    && (report.exit.is_some() || report.setup_error.is_some())
                {
                    return Ok(Some(report));
                }
            }
            if read_some(&self.report, &self.killer.init, &mut self.read)? == 0 {
                return Ok(None);
            }
        }
    }

    /// Runs `next` in a kept sandbox ([`ExecSpec::more`]) whose previous process ended
    /// ([`WorkerHandle::wait_exit`]), with `stdout` and `stderr` as its output.
    pub fn run_next(
        &self,
        next: &crate::NextCommand,
        stdout: BorrowedFd<'_>,
        stderr: BorrowedFd<'_>,
    ) -> Result<(), SandboxError> {
        use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
        let Some(commands) = &self.commands else {
            return Err(SandboxError::InvalidSpec(
                "run_next needs a sandbox started with `more`".to_owned(),
            ));
        };
        let encoded = serde_json::to_vec(next).map_err(|source| SandboxError::Encoding {
            what: "next command",
            source,
        })?;
        let fds = [stdout.as_raw_fd(), stderr.as_raw_fd()];
        let cmsg = [ControlMessage::ScmRights(&fds)];
        sendmsg::<()>(
            commands.as_raw_fd(),
            &[std::io::IoSlice::new(&encoded)],
            &cmsg,
            MsgFlags::MSG_NOSIGNAL,
            None,
        )
        .map_err(|e| SandboxError::WorkerIo(e.into()))?;
        Ok(())
    }

    /// Whether the sandbox takes further commands ([`ExecSpec::more`], until
    /// [`WorkerHandle::end_commands`]).
    pub fn takes_commands(&self) -> bool {
        self.commands.is_some()
    }

    /// Tells a kept sandbox that no command follows: it ends once idle.
    pub fn end_commands(&mut self) {
        self.commands = None;
    }

    /// Blocks until the worker exits and returns its report. Call it from a blocking thread.
    pub fn wait(mut self) -> Result<WorkerReport, SandboxError> {
        self.commands = None;
        while read_some(&self.report, &self.killer.init, &mut self.read)? > 0 {}
        let raw = std::mem::take(&mut self.read);
        let status = self.child.wait().map_err(SandboxError::WorkerIo)?;
        if let Some(init) = self.killer.init.get() {
            // The worker is gone; its PID 1 follows (parent-death signal) and exits only
            // once every process of its namespace is dead.
            wait_readable(init);
        }
        let mut report = raw
            .rsplit(|b| *b == b'\n')
            .find_map(|line| serde_json::from_slice::<WorkerReport>(line).ok())
            .unwrap_or_default();
        if let Some(signal) = status.signal() {
            // The worker itself was killed (not through `kill`, which targets PID 1).
            report.worker_exit = Some(signaled(signal));
            report.denials.push(Denial {
                kind: DenialKind::Killed,
                detail: format!("worker killed by {}", signal_name(signal)),
            });
            if report.exit.is_none() && report.setup_error.is_none() {
                report.exit = Some(signaled(signal));
            }
        } else if report.exit.is_none() && report.setup_error.is_none() {
            report.worker_exit = status.code().map(|code| ExitStatus::Exited { code });
            report.setup_error = Some(format!(
                "worker exited ({status}) without a report; see its stderr"
            ));
        }
        Ok(report)
    }
}

/// Starts `worker_bin` with an empty environment, writes `spec` to its stdin, and returns
/// the handle. `stdout`/`stderr` become the executor's.
pub fn spawn_worker(
    worker_bin: &Path,
    spec: &ExecSpec,
    stdout: Stdio,
    stderr: Stdio,
) -> Result<WorkerHandle, SandboxError> {
    if spec.argv.is_empty() {
        return Err(SandboxError::InvalidSpec("argv is empty".to_owned()));
    }
    let encoded = serde_json::to_vec(spec).map_err(|source| SandboxError::Encoding {
        what: "exec spec",
        source,
    })?;
    let (spec_r, mut spec_w) = std::io::pipe().map_err(SandboxError::WorkerIo)?;
    let (report_r, report_w) = UnixStream::pair().map_err(SandboxError::WorkerIo)?;
    // Move the write end above the standard fds so dup2 onto REPORT_FD always copies
    // (dup2 of an fd onto itself would keep O_CLOEXEC).
    let report_w = dup_above(report_w.as_raw_fd(), 10)?;
    let report_w_fd = report_w.as_raw_fd();
    let (go_r, go_w) = if spec.hold {
        let (r, w) = std::io::pipe().map_err(SandboxError::WorkerIo)?;
        (Some(dup_above(r.as_raw_fd(), 10)?), Some(w))
    } else {
        (None, None)
    };
    let go_r_fd = go_r.as_ref().map(AsRawFd::as_raw_fd);
    if spec.more && !spec.hold {
        return Err(SandboxError::InvalidSpec("`more` needs `hold`".to_owned()));
    }
    let (cmd_r, cmd_w) = if spec.more {
        let (r, w) = nix::sys::socket::socketpair(
            nix::sys::socket::AddressFamily::Unix,
            nix::sys::socket::SockType::SeqPacket,
            None,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|e| SandboxError::WorkerIo(e.into()))?;
        (Some(dup_above(r.as_raw_fd(), 10)?), Some(w))
    } else {
        (None, None)
    };
    let cmd_r_fd = cmd_r.as_ref().map(AsRawFd::as_raw_fd);
    let mut command = Command::new(worker_bin);
    command
        .env_clear()
        .stdin(Stdio::from(OwnedFd::from(spec_r)))
        .stdout(stdout)
        .stderr(stderr);
    // The worker dies with the thread that spawns it (callers spawn from a long-lived
    // thread): a supervisor killed by SIGKILL leaves no sandbox running behind it.
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure only calls dup2, prctl and getppid, which are async-signal-safe.
    unsafe {
        command.pre_exec(move || {
            if libc::dup2(report_w_fd, REPORT_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(fd) = go_r_fd
                && libc::dup2(fd, GO_FD) < 0
            {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(fd) = cmd_r_fd
                && libc::dup2(fd, CMD_FD) < 0
            {
                return Err(std::io::Error::last_os_error());
            }
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent died before the signal was armed: nobody would kill us later.
            if libc::getppid() != parent {
                return Err(std::io::Error::other("the supervisor died during spawn"));
            }
            Ok(())
        });
    }
    let child = command.spawn().map_err(|source| SandboxError::Spawn {
        path: worker_bin.to_owned(),
        source,
    })?;
    drop(command);
    drop(report_w);
    drop(go_r);
    drop(cmd_r);
    let pidfd = pidfd_open(child.id())?;
    // A worker that died before reading shows up in `wait`; ignore EPIPE here.
    let _ = spec_w.write_all(&encoded);
    drop(spec_w);
    Ok(WorkerHandle {
        child,
        report: report_r,
        killer: WorkerKiller {
            worker: Arc::new(pidfd),
            init: Arc::new(OnceLock::new()),
        },
        go: go_w.map(Go),
        commands: cmd_w,
        read: Vec::new(),
        seen: 0,
    })
}

/// Reads what the report socket has (blocking until something or EOF) into `into`,
/// collecting the PID 1 pidfd if one comes; 0 at EOF.
fn read_some(
    sock: &UnixStream,
    init: &OnceLock<OwnedFd>,
    into: &mut Vec<u8>,
) -> Result<usize, SandboxError> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    let mut buf = [0u8; 16 * 1024];
    loop {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([RawFd; 2]);
        let msg = match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(msg) => msg,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(SandboxError::WorkerIo(e.into())),
        };
        let n = msg.bytes;
        if let Ok(cmsgs) = msg.cmsgs() {
            for cmsg in cmsgs {
                if let ControlMessageOwned::ScmRights(fds) = cmsg {
                    for fd in fds {
                        // SAFETY: the kernel just installed `fd` for us; we own it.
                        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
                        let _ = init.set(owned);
                    }
                }
            }
        }
        into.extend_from_slice(&buf[..n]);
        return Ok(n);
    }
}

/// Blocks until `pidfd` is readable (its process exited).
fn wait_readable(pidfd: &OwnedFd) {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    loop {
        let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            _ => return,
        }
    }
}

fn dup_above(fd: RawFd, min: RawFd) -> Result<OwnedFd, SandboxError> {
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) on a valid fd; the new fd is owned by the result.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, min) };
    if new < 0 {
        return Err(SandboxError::sys("dup", std::io::Error::last_os_error()));
    }
    // SAFETY: `new` was just returned by fcntl and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// A pidfd for `pid` (which must be a child of the caller, or otherwise not reapable
/// behind its back, for the fd to be unambiguous).
pub fn pidfd_open(pid: u32) -> Result<OwnedFd, SandboxError> {
    // SAFETY: pidfd_open takes a pid and flags; it returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(SandboxError::sys(
            "pidfd_open",
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: the kernel returned a fresh fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// An [`ExitStatus::Signaled`] for `signal`.
pub fn signaled(signal: i32) -> ExitStatus {
    ExitStatus::Signaled {
        signal,
        name: signal_name(signal),
    }
}

/// `SIGKILL`-style name of a signal number.
pub fn signal_name(signal: i32) -> String {
    nix::sys::signal::Signal::try_from(signal)
        .map(|s| s.as_str().to_owned())
        .unwrap_or_else(|_| format!("signal {signal}"))
}
