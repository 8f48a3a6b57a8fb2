//! The adapter trait and the registry of known executors.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::{
    AdapterError, ExecutorReport, aider::Aider, antigravity::Antigravity, claude::ClaudeCode,
    codex::Codex, gemini::Gemini, openclaw::OpenClaw, opencode::OpenCode, qwen::Qwen, shell::Shell,
};

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
    /// Base URL of an OpenAI-, Anthropic- or Gemini-compatible model server to use instead
    /// of the vendor's API (an on-prem server, or the mock model server in tests), e.g.
    /// `http://127.0.0.1:8080` (for OpenAI-style CLIs the adapter appends `/v1`).
    pub model_base_url: Option<&'a str>,
    /// Model name passed to the executor; the executor's default when `None`.
    pub model: Option<&'a str>,
}

impl InvocationRequest<'_> {
    /// argv\[0\]: the detected binary, else the adapter's binary name (looked up on PATH).
    pub(crate) fn program(&self, name: &str) -> String {
        self.binary
            .map(|b| b.display().to_string())
            .unwrap_or_else(|| name.to_string())
    }

    /// argv for `binary` (see [`Self::program`]) followed by `args`.
    pub(crate) fn argv(&self, binary: &str, args: &[&str]) -> Vec<String> {
        std::iter::once(self.program(binary))
            .chain(args.iter().map(|a| a.to_string()))
            .collect()
    }

    /// The model, which a model base URL requires (the CLI's default model is not served
    /// there).
    pub(crate) fn model_for_base_url(&self, executor: &str) -> Result<&str, AdapterError> {
        self.model.ok_or_else(|| AdapterError::MissingField {
            executor: executor.to_string(),
            field: "model".to_string(),
            fix: "name the model served at the model base URL".to_string(),
        })
    }

    pub(crate) fn home(&self) -> String {
        self.config_home.display().to_string()
    }

    /// The base URL without a trailing slash, with `/v1` appended when it has no path.
    pub(crate) fn openai_base(&self) -> Option<String> {
        self.model_base_url.map(|url| {
            let url = url.trim_end_matches('/');
            let has_path = url
                .split_once("://")
                .map(|(_, rest)| rest.contains('/'))
                .unwrap_or(false);
            if has_path {
                url.to_string()
            } else {
                format!("{url}/v1")
            }
        })
    }
}

/// The request the adapters' invocation snapshots are taken with.
#[cfg(test)]
pub(crate) fn sample_request() -> InvocationRequest<'static> {
    InvocationRequest {
        prompt: "# Task\n\nFix it.\n",
        worktree: Path::new("/wt"),
        attempt: 1,
        command: None,
        config_home: Path::new("/home/codencer"),
        binary: Some(Path::new("/opt/bin/exe")),
        model_base_url: Some("http://127.0.0.1:9000/"),
        model: Some("mock-model"),
    }
}

/// `(name, value)` pairs as owned strings.
pub(crate) fn env_pairs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A headless command line for one attempt. The worker runs it; the adapter never does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub argv: Vec<String>,
    /// Variables set for the executor, on top of what policy passes.
    pub env: Vec<(String, String)>,
    /// Files to write before the executor starts (path, contents), e.g. a config file in
    /// the private config home or the task file for CLIs that read one. Paths are absolute,
    /// under the config home; the writer creates missing parent directories (gemini's
    /// settings live in `<config home>/.gemini/`).
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

/// The registry, in a stable order: the real executors in the order of
/// docs/executors.md, the experimental one after them, and `shell` (the scripted test
/// executor) last.
static ADAPTERS: &[&dyn Adapter] = &[
    &ClaudeCode,
    &Codex,
    &Gemini,
    &Qwen,
    &OpenCode,
    &Aider,
    &OpenClaw,
    &Antigravity,
    &Shell,
];

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

/// The adapter's binary, or [`AdapterError::NotInstalled`] naming the install command.
pub fn require(
    adapter: &dyn Adapter,
    search_path: Option<&OsStr>,
) -> Result<PathBuf, AdapterError> {
    detect(adapter, search_path)
        .path
        .ok_or_else(|| AdapterError::NotInstalled {
            executor: adapter.name().to_string(),
            binary: adapter.binary().to_string(),
            install: adapter.install_hint().to_string(),
        })
}
