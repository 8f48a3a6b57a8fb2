//! codencer-adapters: one module per executor. An adapter turns an attempt into the
//! executor's headless command line and its machine output into an [`ExecutorReport`].
//! Adapters never spawn processes: they return an [`Invocation`] that the worker runs.
#![forbid(unsafe_code)]

mod aider;
mod antigravity;
mod claude;
mod codex;
mod gemini;
mod openclaw;
mod opencode;
mod prompt;
mod qwen;
mod registry;
mod report;
mod shell;
mod stream;

pub use prompt::{PromptInput, render_prompt};
pub use registry::{
    Adapter, Detection, Invocation, InvocationRequest, adapter, adapters, detect, require,
};
pub use report::{ExecutorReport, Outcome, ToolCall, Usage};

/// Errors building an invocation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdapterError {
    /// The executor's binary was not found.
    #[error("executor `{executor}`: `{binary}` not found on PATH; install it with: {install}")]
    NotInstalled {
        executor: String,
        binary: String,
        install: String,
    },
    /// A field the executor needs is missing from the TaskSpec.
    #[error("executor `{executor}` needs `{field}`: {fix}")]
    MissingField {
        executor: String,
        field: String,
        fix: String,
    },
}
