//! The adapter trait and the registry of known executors.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::{AdapterError, ExecutorReport, shell::Shell};

/// What an adapter needs to build the executor's command line.
#[derive(Debug, Clone)]
pub struct InvocationRequest<'a> {
    /// The rendered prompt (see [`crate::render_prompt`]).
    pub prompt: &'a str,
    /// The attempt's worktree; the executor's working directory.
    pub worktree: &'a Path,
    /// 1-based attempt number.
    pub attempt: u32,
    /// The TaskSpec's `command:` (the `shell` executor's command line).
    pub command: Option<&'a str>,
    /// A private, initially empty config home for the executor inside the sandbox.
    pub config_home: &'a Path,
    /// The executor binary as detected (absolute path), when found.
    pub binary: Option<&'a Path>,
}

/// A headless command line for one attempt. The worker runs it; the adapter never does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub argv: Vec<String>,
    /// Variables set for the executor, on top of what policy passes.
    pub env: Vec<(String, String)>,
    /// Files to write before the executor starts (path, contents), e.g. a config file in
    /// the private config home or the task file for CLIs that read one.
    pub files: Vec<(PathBuf, Vec<u8>)>,
}

/// One executor CLI.
pub trait Adapter: Send + Sync {
    /// Name used in TaskSpecs and policy files, e.g. `claude-code`.
    fn name(&self) -> &'static str;
    /// Binary looked up on PATH.
    fn binary(&self) -> &'static str;
    /// Command that installs the binary, shown when it is missing.
    fn install_hint(&self) -> &'static str;
    /// Arguments that print the binary's version.
    fn version_args(&self) -> &'static [&'static str] {
        &["--version"]
    }
    /// Experimental adapters cannot be proven end to end here.
    fn experimental(&self) -> bool {
        false
    }
    /// Environment variable naming the executor's config home, if it has one.
    fn config_home_env(&self) -> Option<&'static str>;
    /// Builds the headless command line.
    fn invocation(&self, req: &InvocationRequest<'_>) -> Result<Invocation, AdapterError>;
    /// Parses the executor's stdout into a report. Never panics on any input.
    fn parse(&self, stdout: &[u8]) -> ExecutorReport;
}

static SHELL: Shell = Shell;
static ADAPTERS: &[&dyn Adapter] = &[&SHELL];

/// Every known adapter, in a stable order.
pub fn adapters() -> &'static [&'static dyn Adapter] {
    ADAPTERS
}

/// The adapter with this name.
pub fn adapter(name: &str) -> Option<&'static dyn Adapter> {
    ADAPTERS.iter().copied().find(|a| a.name() == name)
}

/// Whether an adapter's binary is installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Detection {
    pub name: &'static str,
    pub binary: &'static str,
    /// Absolute path of the binary, when found.
    pub path: Option<PathBuf>,
    pub experimental: bool,
    pub install: &'static str,
}

/// Looks the adapter's binary up on `search_path` (PATH when `None`).
pub fn detect(adapter: &dyn Adapter, search_path: Option<&OsStr>) -> Detection {
    let found = match search_path {
        Some(paths) => {
            let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
            which::which_in(adapter.binary(), Some(paths), cwd).ok()
        }
        None => which::which(adapter.binary()).ok(),
    };
    Detection {
        name: adapter.name(),
        binary: adapter.binary(),
        path: found,
        experimental: adapter.experimental(),
        install: adapter.install_hint(),
    }
}
