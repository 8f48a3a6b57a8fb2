//! End-to-end: the real `codencer` and `orchestratorctl` binaries against throwaway repos.

// Helpers of tests panic on unexpected shapes, like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod executors;
mod interrupt;
mod lifecycle;
mod network;
mod policy;
mod record;
mod reliability;
mod spec_errors;
mod worktrees;
