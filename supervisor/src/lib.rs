//! codencer-supervisor: the ractor supervision tree, the TaskSpec and ResultSpec contracts,
//! worktree management, the `codencer`, `orchestratord` and `orchestratorctl` command lines,
//! the daemon's HTTP API and its MCP endpoint.
#![forbid(unsafe_code)]

mod actors;
mod attempt;
mod cli;
mod context;
pub mod daemon;
mod engine;
mod executors;
mod git;
mod interrupted;
mod launch;
pub mod mcp;
mod plan;
mod record;
mod result;
mod resume;
mod runlock;
pub mod spec;
mod supervisor_error;
mod test_hooks;
mod text;

pub use actors::run::RunOutcome;
pub use cli::{codencer_main, orchestratorctl_main, orchestratord_main};
pub use engine::{AppendStepError, AppendedStep, CreatedRun, Engine, RunScope};
pub use plan::{RunPlan, StepPlan};
pub use record::{Ids, Recorder};
pub use result::{ResultSpec, RunResult};
pub use resume::Resumed;
pub use supervisor_error::SupervisorError;
