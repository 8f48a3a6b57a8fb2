//! The `codencer-worker` process: sets up the sandbox described by the `ExecSpec` it reads
//! on stdin, runs the executor as a child of the sandbox's PID 1, and writes a
//! `WorkerReport` (JSON lines, last one wins) on fd 3.
//!
//! Process tree: the worker (outside, in the new user namespace) forks the sandbox's
//! PID 1 (module `init`), which builds the filesystem view, drops privileges and forks the
//! executor. Killing the worker kills PID 1 (parent-death signal), and with it the whole
//! PID namespace.

mod bridge;
mod exec;
mod init;
mod outer;
mod proto;

use std::process::ExitCode;

/// Entry point of the `codencer-worker` binary.
pub fn run_main() -> ExitCode {
    outer::run()
}
