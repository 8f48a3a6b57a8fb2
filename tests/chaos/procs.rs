//! Finding and killing the processes under test through `/proc`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Pids whose command line contains `marker` (the executor's or a validator's `sh -c`).
pub fn with_marker(marker: &str) -> Vec<u32> {
    pids()
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker))
        })
        .collect()
}

/// `codencer-worker` processes whose parent is `parent` (the outer workers of a supervisor).
pub fn workers_of(parent: u32) -> Vec<u32> {
    pids()
        .into_iter()
        .filter(|pid| {
            stat(*pid)
                .is_some_and(|(comm, ppid)| comm.starts_with("codencer-worke") && ppid == parent)
        })
        .collect()
}

/// Live processes running the binary at `exe`.
pub fn running(exe: &Path) -> Vec<u32> {
    pids()
        .into_iter()
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|e| e == exe)
                && stat(*pid).is_some_and(|_| true)
        })
        .collect()
}

/// SIGKILL; whether the process existed.
pub fn kill(pid: u32) -> bool {
    Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Waits until `pick()` finds something (returns it) or `alive()` turns false or the
/// deadline passes.
pub fn wait_for(
    mut pick: impl FnMut() -> Option<u32>,
    mut alive: impl FnMut() -> bool,
    within: Duration,
) -> Option<u32> {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if let Some(pid) = pick() {
            return Some(pid);
        }
        if !alive() {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

fn pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// (comm, ppid) of a live, non-zombie process.
fn stat(pid: u32) -> Option<(String, u32)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = s.find('(')?;
    let close = s.rfind(')')?;
    let comm = s.get(open + 1..close)?.to_owned();
    let mut rest = s.get(close + 2..)?.split_whitespace();
    let state = rest.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    let ppid = rest.next()?.parse().ok()?;
    Some((comm, ppid))
}
