//! Shared by the command lines: exit codes, the state dir, the local actor name.

use std::path::PathBuf;
use std::process::ExitCode;

/// Documented exit codes (docs/cli.md).
pub const EXIT_PASSED: u8 = 0;
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_INVALID: u8 = 2;
pub const EXIT_AWAITING_APPROVAL: u8 = 3;
pub const EXIT_INFRASTRUCTURE: u8 = 4;
pub const EXIT_INTERRUPTED: u8 = 130;

/// Seconds a running attempt may go on after SIGINT/SIGTERM (`--grace`).
pub const DEFAULT_GRACE_SECS: u64 = 10;

pub fn exit(code: u8) -> ExitCode {
    ExitCode::from(code)
}

/// `--state-dir`, else `$CODENCER_HOME`, else `$XDG_DATA_HOME/codencer`, else
/// `~/.local/share/codencer`.
pub fn state_dir(flag: Option<PathBuf>) -> PathBuf {
    if let Some(dir) = flag {
        return dir;
    }
    if let Some(dir) = std::env::var_os("CODENCER_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("codencer");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"));
    home.join(".local/share/codencer")
}

/// `user@host`: the actor of locally caused events. The user is the process's real uid
/// as the system names it (`/etc/passwd`), not `$USER`, which anyone can set.
pub fn local_actor() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".to_string());
    format!("{}@{host}", user_name())
}

fn user_name() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().next())
        .map(str::to_string);
    let Some(uid) = uid else {
        return "unknown".to_string();
    };
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 2 && f[2] == uid)
        .map(|f| f[0].to_string())
        .unwrap_or_else(|| format!("uid-{uid}"))
}

/// Logging to stderr, filtered by `CODENCER_LOG` (default: `default_level`), coloured only
/// on a terminal.
pub fn init_tracing(json: bool, default_level: &str) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("CODENCER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Opens the store read-write for maintenance commands, with a clear error.
pub fn open_store(dir: &std::path::Path) -> Result<codencer_store::Store, String> {
    if !dir.join("codencer.db").exists() {
        return Err(format!(
            "no Codencer state at {} (nothing has run yet; pass --state-dir or set CODENCER_HOME)",
            dir.display()
        ));
    }
    codencer_store::Store::open(dir).map_err(|e| {
        format!(
            "cannot open the store at {}: {}",
            dir.display(),
            error_chain(&e)
        )
    })
}

pub use crate::text::error_chain;

/// Runs `work` on a fresh runtime; a runtime that cannot start is an infrastructure error.
pub fn block_on(work: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match runtime() {
        Ok(rt) => rt.block_on(work),
        Err(err) => {
            eprintln!("error: {err}");
            exit(EXIT_INFRASTRUCTURE)
        }
    }
}

/// [`block_on`] for work the process exits right after (`codencer run` and `resume`): the
/// runtime, with its actors and their store handles, is left to the process's exit
/// instead of shut down, which joins every thread and drops every actor (1-2 ms at the
/// end of each run). The work must leave nothing to clean up but memory: its events
/// appended, its output printed, the store settled ([`Store::checkpoint_before_exit`]).
///
/// [`Store::checkpoint_before_exit`]: codencer_store::Store::checkpoint_before_exit
pub fn block_on_then_exit(work: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match runtime() {
        Ok(rt) => {
            let code = rt.block_on(work);
            std::mem::forget(rt);
            code
        }
        Err(err) => {
            eprintln!("error: {err}");
            exit(EXIT_INFRASTRUCTURE)
        }
    }
}

pub fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}
