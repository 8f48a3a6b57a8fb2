//! The command lines. Binaries are thin: `main` calls one of these.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod client;
mod codencer;
mod common;
mod ctl;
mod ctl_error;
mod ctl_remote;
mod drive;
mod executors;
mod gates;
mod orchestratord;
mod policy;
mod render;

use std::process::ExitCode;

/// `codencer`: one-shot runs and local maintenance.
pub fn codencer_main() -> ExitCode {
    codencer::main()
}

/// `orchestratord`: the daemon.
pub fn orchestratord_main() -> ExitCode {
    orchestratord::main()
}

/// `orchestratorctl`: inspect runs, artifacts and the audit log.
pub fn orchestratorctl_main() -> ExitCode {
    ctl::main()
}
