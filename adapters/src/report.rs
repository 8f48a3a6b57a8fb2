//! The executor's report, parsed from its machine output.

use serde::{Deserialize, Serialize};

/// How the executor's turn ended, judged from its final event (never the exit code alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Outcome {
    /// The executor finished its turn and reported success.
    Success,
    /// The executor finished its turn and reported failure.
    Failure,
    /// The executor stopped because it reached its turn limit.
    MaxTurns,
    /// The model API answered with an error.
    ApiError,
    /// The output could not be parsed or was truncated; the tail is kept as an artifact.
    ExecutorError,
    /// The executor has no machine output (e.g. `shell`): judged by exit code and validators.
    Unreported,
}

/// One tool call the executor made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    pub name: String,
    /// SHA-256 of the call's arguments as JSON text, so transcripts can be compared without
    /// copying possibly sensitive arguments into the report.
    pub args_digest: String,
    pub ok: Option<bool>,
}

/// Token usage and cost.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub cost_usd: Option<f64>,
}

/// What an executor reported about its turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutorReport {
    pub outcome: Outcome,
    pub summary: Option<String>,
    pub tool_calls: Vec<ToolCall>,
    pub files_reported: Vec<String>,
    pub usage: Option<Usage>,
    pub session_id: Option<String>,
    /// Why the outcome is what it is, when it is not `success` (e.g. the parse error).
    pub error: Option<String>,
}

impl ExecutorReport {
    /// A report for an executor without machine output.
    pub fn unreported() -> Self {
        ExecutorReport {
            outcome: Outcome::Unreported,
            summary: None,
            tool_calls: Vec::new(),
            files_reported: Vec::new(),
            usage: None,
            session_id: None,
            error: None,
        }
    }
}
