//! Finding and killing a worker that outlived its supervisor (the supervisor was killed
//! before the worker's parent-death signal could be armed, or on a kernel without it).
//!
//! A pid alone is not an identity: it is only trusted when `/proc` says the process is a
//! `codencer-worker` started no earlier than the attempt, and the checks are repeated
//! after a pidfd pins the process, so a recycled pid is never signalled.

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::SandboxError;
use crate::spawn::pidfd_open;

/// The worker binary's name, as `/proc/<pid>/exe` and (truncated) `comm` show it.
const WORKER_NAME: &str = "codencer-worker";
/// `/proc/stat`'s `btime` has a one-second resolution.
const CLOCK_SLACK: Duration = Duration::from_secs(2);
/// How long to wait for the killed processes to be gone.
const GONE_WITHIN: Duration = Duration::from_secs(10);

/// What [`kill_stale_worker`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StaleWorker {
    /// No such worker (it exited, or the pid is now another process's).
    Gone,
    /// It was alive; it and its sandbox (PID 1 and everything in its namespace) are dead now.
    Killed,
}

/// Kills worker `pid` and its sandbox if it is still a `codencer-worker` that started at or
/// after `started_after`, and waits until they are gone.
pub fn kill_stale_worker(pid: u32, started_after: SystemTime) -> Result<StaleWorker, SandboxError> {
    if !is_worker(pid, started_after) {
        return Ok(StaleWorker::Gone);
    }
    let Ok(worker) = pidfd_open(pid) else {
        return Ok(StaleWorker::Gone);
    };
    // Pinned by the pidfd: if it still matches now, the pidfd is that worker.
    if !is_worker(pid, started_after) {
        return Ok(StaleWorker::Gone);
    }
    // Its children (the sandbox's PID 1, proxy relays) are pinned while it still lives.
    let mut pinned: Vec<OwnedFd> = children(pid)
        .into_iter()
        .filter_map(|child| pidfd_open(child).ok())
        .collect();
    pinned.push(worker);
    for fd in &pinned {
        crate::spawn::send_kill(fd);
    }
    let deadline = std::time::Instant::now() + GONE_WITHIN;
    for fd in &pinned {
        wait_gone(fd, deadline)?;
    }
    Ok(StaleWorker::Killed)
}

fn is_worker(pid: u32, started_after: SystemTime) -> bool {
    let proc = format!("/proc/{pid}");
    let named = match std::fs::read_link(format!("{proc}/exe")) {
        Ok(exe) => exe
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(WORKER_NAME)),
        // Not readable (another user's, or not dumpable): fall back to its name.
        Err(_) => std::fs::read_to_string(format!("{proc}/comm"))
            .is_ok_and(|comm| WORKER_NAME.starts_with(comm.trim()) && comm.trim().len() >= 8),
    };
    named && start_time(pid).is_some_and(|t| t + CLOCK_SLACK >= started_after)
}

/// When `pid` started, from its start tick in `/proc/<pid>/stat` and the boot time.
fn start_time(pid: u32) -> Option<SystemTime> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces and parentheses).
    let rest = &stat[stat.rfind(')')? + 2..];
    // starttime is field 22; `rest` starts at field 3.
    let ticks: u64 = rest.split_whitespace().nth(19)?.parse().ok()?;
    let btime: u64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = u64::try_from(hz).ok().filter(|h| *h > 0)?;
    let millis = btime * 1000 + ticks * 1000 / hz;
    Some(UNIX_EPOCH + Duration::from_millis(millis))
}

/// Pids whose parent is `pid`.
fn children(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| {
            std::fs::read_to_string(format!("/proc/{child}/stat"))
                .ok()
                .and_then(|stat| {
                    let rest = stat.get(stat.rfind(')')? + 2..)?.to_owned();
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(pid)
        })
        .collect()
}

/// Waits until the process behind `pidfd` has exited (a pid namespace's init exits only
/// once every process in it is gone).
fn wait_gone(pidfd: &OwnedFd, deadline: std::time::Instant) -> Result<(), SandboxError> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(SandboxError::sys(
                "waiting for a killed stale worker to exit",
                std::io::Error::from(std::io::ErrorKind::TimedOut),
            ));
        }
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Err(nix::errno::Errno::EINTR) | Ok(0) => continue,
            Ok(_) => return Ok(()),
            Err(e) => return Err(SandboxError::sys("poll on a pidfd", e)),
        }
    }
}
