//! Hostile suite: each case runs a small hostile program as the executor through the real
//! `codencer-worker` (via `spawn_worker`) and asserts it is contained AND that the
//! legitimate path next to it still works. Runs as root and as an unprivileged user
//! (`scripts/test-unprivileged.sh`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]
#![allow(missing_debug_implementations)]

mod harness;

mod filesystem;
mod legit;
mod limits;
mod network;
mod privileges;
mod processes;
