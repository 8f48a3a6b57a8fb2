//! End-to-end: the real `codencer` and `orchestratorctl` binaries against throwaway repos.

mod interrupt;
mod lifecycle;
mod record;
mod spec_errors;
mod worktrees;
