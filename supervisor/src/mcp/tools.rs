//! The MCP tools. Each takes the caller's token from the HTTP request (checked by the
//! daemon) and answers with JSON text; a failure is a tool error saying what was wrong and
//! how to fix it, never a transport failure.

use std::time::Duration;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::Extension;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, ServerCapabilities, ServerConfig};
use rmcp::{ErrorData as McpError, ServerHandler, schemars, tool, tool_handler, tool_router};
use serde::Deserialize;
use serde_json::json;

use crate::daemon::{ApiError, AppState, Principal};

/// Artifact text returned inline at most; the rest is pointed to.
const DEFAULT_ARTIFACT_BYTES: usize = 64 * 1024;

const INSTRUCTIONS: &str = "Codencer runs a coding executor (Claude Code, Codex, a shell command, ...) \
in an isolated git worktree, checks its work with validators and gates, and records everything. \
Typical loop: submit_task (a TaskSpec; pass open=true to keep the run open for more steps), then \
wait_for_step until done, read the ResultSpec (status, diff, validations, gates), then append_step \
for the next step (it builds on the last passed step's commit), and close_run when finished. A step \
with status awaiting_approval needs approve_gate or reject_gate. Use get_artifact for diffs and logs.";

#[derive(Debug, Clone)]
pub struct CodencerTools {
    state: AppState,
    tool_router: ToolRouter<Self>,
}

impl CodencerTools {
    pub fn new(state: AppState) -> CodencerTools {
        CodencerTools {
            state,
            tool_router: Self::tool_router(),
        }
    }
}

type Parts = Extension<axum::http::request::Parts>;

fn who(parts: &axum::http::request::Parts) -> Result<Principal, CallToolResult> {
    parts.extensions.get::<Principal>().cloned().ok_or_else(|| {
        tool_error(&ApiError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "unauthorized",
            "no token on this MCP session; connect with `Authorization: Bearer <token>`",
        ))
    })
}

fn tool_error(err: &ApiError) -> CallToolResult {
    let mut text = format!("error[{}]: {}", err.code, err.message);
    if let Some(errors) = &err.errors {
        text.push_str("\nfield errors: ");
        text.push_str(&errors.to_string());
    }
    CallToolResult::error(vec![ContentBlock::text(text)])
}

fn ok_json<T: serde::Serialize>(value: &T) -> CallToolResult {
    match serde_json::to_string_pretty(value) {
        Ok(text) => CallToolResult::success(vec![ContentBlock::text(text)]),
        Err(e) => CallToolResult::error(vec![ContentBlock::text(format!("error[internal]: {e}"))]),
    }
}

/// Runs `f` as the caller, turning every failure into a tool error.
fn answer<T: serde::Serialize>(
    parts: &axum::http::request::Parts,
    f: impl FnOnce(&Principal) -> Result<T, ApiError>,
) -> Result<CallToolResult, McpError> {
    let principal = match who(parts) {
        Ok(p) => p,
        Err(e) => return Ok(e),
    };
    Ok(match f(&principal) {
        Ok(value) => ok_json(&value),
        Err(err) => tool_error(&err),
    })
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct SubmitTask {
    /// The TaskSpec, as YAML or JSON text: `task: {name, workspace (absolute path of a git repository), executor, goal, validators, ...}` or `task: {..., steps: [...]}`. See docs/taskspec.md.
    pub taskspec: String,
    /// Keep the run open after its steps so you can append_step more; close it with close_run. Default false.
    #[serde(default)]
    pub open: bool,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct AppendStep {
    /// The run to extend (created with open=true). A unique prefix of the id is enough.
    pub run_id: String,
    /// One step as YAML or JSON text: `goal`, and optionally `name`, `executor`, `command`, `validators`, `allowed_paths`, `timeout`, `max_attempts`.
    pub step: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct RunRef {
    /// Run id (a unique prefix is enough).
    pub run_id: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ResultRef {
    /// Run id (a unique prefix is enough).
    pub run_id: String,
    /// Step id or 1-based step number; omit for every step of the run.
    pub step_id: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct WaitForStep {
    /// Run id (a unique prefix is enough).
    pub run_id: String,
    /// Step id or 1-based step number.
    pub step_id: String,
    /// Seconds to wait at most (default 60, at most 600). Call again if `done` is false.
    pub timeout_seconds: Option<u64>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ListRuns {
    /// Only runs with this status: pending, running, awaiting_approval, passed, failed, cancelled.
    pub status: Option<String>,
    /// Most runs to return, newest first (default 20).
    pub limit: Option<u32>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct GetArtifact {
    /// Artifact id (from a ResultSpec's `artifacts`, `diff.artifact` or list_artifacts).
    pub artifact_id: String,
    /// Most bytes of text to return (default 65536); the rest is left out with a note.
    pub max_bytes: Option<usize>,
    /// Byte offset to start from, to read a large artifact in pieces (default 0).
    pub offset: Option<usize>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct Approve {
    /// Gate id (from the ResultSpec's `gates` or the run's tree).
    pub gate_id: String,
    /// Why it is approved (recorded).
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct Reject {
    /// Gate id.
    pub gate_id: String,
    /// Why it is rejected (required; recorded and shown in the step's result).
    pub reason: String,
}

#[tool_router]
impl CodencerTools {
    #[tool(
        description = "Submit a TaskSpec: creates a run and queues its steps. Returns run_id and step_ids. Then call wait_for_step with the first step id. Pass open=true to keep the run open for append_step."
    )]
    async fn submit_task(
        &self,
        Extension(parts): Parts,
        Parameters(p): Parameters<SubmitTask>,
    ) -> Result<CallToolResult, McpError> {
        answer(&parts, |w| self.state.submit(w, &p.taskspec, p.open, None))
    }

    #[tool(
        description = "Append the next step to an open run (one created with open=true). It runs after the steps before it, from the last passed step's commit, so it sees their changes. Returns the new step_id."
    )]
    async fn append_step(
        &self,
        Extension(parts): Parts,
        Parameters(p): Parameters<AppendStep>,
    ) -> Result<CallToolResult, McpError> {
        answer(&parts, |w| self.state.append_step(w, &p.run_id, &p.step))
    }

    #[tool(
        description = "Get a run's whole record: status, steps, attempts, artifacts, validations, gates; `open` says whether it accepts append_step; `slot` whether it is queued or running now."
    )]
    async fn get_run(
        &self,
        Extension(parts): Parts,
        Parameters(p): Parameters<RunRef>,
    ) -> Result<CallToolResult, McpError> {
        answer(&parts, |w| {
            self.state
                .require(w, crate::daemon::Scope::RunsRead, "get_run")?;
            self.state.run_view(&p.run_id)
        })
    }

    #[tool(
        description = "Get the ResultSpec of a step (status, reason, summary, commit, files_changed, diff, validations, gates, artifacts), or of every step of the run when step_id is omitted."
    )]
    async fn get_result(
        &self,
        Extension(parts): Parts,
        Parameters(p): Parameters<ResultRef>,
    ) -> Result<CallToolResult, McpError> {
        answer(&parts, |w| {
            self.state
                .require(w, crate::daemon::Scope::RunsRead, "get_result")?;
            match &p.step_id {
                Some(step) => serde_json::to_value(self.state.step_result(&p.run_id, step)?.result),
                None => serde_json::to_value(self.state.run_result(&p.run_id)?),
            }
            .map_err(|e| ApiError::internal(&e))
        })
    }

    #[tool(
        description = "Wait until a step is done (passed, failed, cancelled, or awaiting_approval) or the timeout passes. Returns {done, result: ResultSpec}. If done is false, call again."
    )]
    async fn wait_for_step(
        &self,
        Extension(parts): Parts,
        Parameters(p): Parameters<WaitForStep>,
    ) -> Result<CallToolResult, McpError> {
        let principal = match who(&parts) {
            Ok(w) => w,
            Err(e) => return Ok(e),
        };
        if let Err(e) =
            self.state
                .require(&principal, crate::daemon::Scope::RunsRead, "wait_for_step")
        {
            return Ok(tool_error(&e));
        }
        let timeout = Duration::from_secs(p.timeout_seconds.unwrap_or(60).min(600));
        Ok(
            match self.state.wait_step(&p.run_id, &p.step_id, timeout).await {
                Ok(wait) => ok_json(&wait),
                Err(e) => tool_error(&e),
            },
        )
    }

    #[tool(description = "List runs, newest first, optionally by status.")]
    async fn list_runs(
        &self,
        Extension(parts): Parts,
        Parameters(p): Parameters<ListRuns>,
    ) -> Result<CallToolResult, McpError> {
        answer(&parts, |w| {
            self.state
                .require(w, crate::daemon::Scope::RunsRead, "list_runs")?;
            let status = p
                .status
                .map(|s| {
                    s.parse::<codencer_store::RunStatus>()
                        .map_err(|e| ApiError::bad_request(e.to_string()))
                })
                .transpose()?;
            Ok(self.state.store().list_runs(&codencer_store::RunFilter {
                status,
                limit: Some(p.limit.unwrap_or(20).clamp(1, 200)),
                ..Default::default()
            })?)
        })
    }

    #[tool(
        description = "List a run's artifacts (TaskSpec, diffs, executor output, validator output, ResultSpecs, ...) with id, kind, name and size."
    )]
    async fn list_artifacts(
        &self,
        Extension(parts): Parts,
        Parameters(p): Parameters<RunRef>,
    ) -> Result<CallToolResult, McpError> {
        answer(&parts, |w| {
            self.state
                .require(w, crate::daemon::Scope::ArtifactsRead, "list_artifacts")?;
            self.state.run_artifacts(&p.run_id)
        })
    }

    #[tool(
        description = "Read an artifact as text (a diff, a log, a ResultSpec). Large artifacts are truncated; the answer says how to read the rest with offset."
    )]
    async fn get_artifact(
        &self,
        Extension(parts): Parts,
        Parameters(p): Parameters<GetArtifact>,
    ) -> Result<CallToolResult, McpError> {
        answer(&parts, |w| {
            self.state
                .require(w, crate::daemon::Scope::ArtifactsRead, "get_artifact")?;
            let row = self.state.artifact(&p.artifact_id)?;
            // Only the asked-for window is read: an artifact can be large.
            let total = usize::try_from(row.bytes).unwrap_or(usize::MAX);
            let offset = p.offset.unwrap_or(0).min(total);
            let max = p.max_bytes.unwrap_or(DEFAULT_ARTIFACT_BYTES).max(1);
            let window = self
                .state
                .store()
                .read_blob_range(&row.sha256, offset as u64, max)?;
            let end = offset + window.len();
            let text = String::from_utf8_lossy(&window).into_owned();
            let truncated = end < total;
            Ok(json!({
                "artifact": row,
                "offset": offset,
                "text": text,
                "truncated": truncated,
                "note": truncated.then(|| format!(
                    "showing bytes {offset}..{end} of {}; call get_artifact with offset={end} for more, or GET /v1/artifacts/{}/content for all of it",
                    total, row.id
                )),
            }))
        })
    }

    #[tool(
        description = "Approve a pending gate (e.g. a step awaiting human approval); the run then goes on."
    )]
    async fn approve_gate(
        &self,
        Extension(parts): Parts,
        Parameters(p): Parameters<Approve>,
    ) -> Result<CallToolResult, McpError> {
        answer(&parts, |w| {
            self.state.decide_gate(w, &p.gate_id, true, p.reason)
        })
    }

    #[tool(
        description = "Reject a pending gate with a reason; the step then fails and the run ends failed."
    )]
    async fn reject_gate(
        &self,
        Extension(parts): Parts,
        Parameters(p): Parameters<Reject>,
    ) -> Result<CallToolResult, McpError> {
        answer(&parts, |w| {
            self.state.decide_gate(w, &p.gate_id, false, Some(p.reason))
        })
    }

    #[tool(
        description = "Cancel a run: a running attempt is stopped (its worktree and record are kept); the run ends cancelled."
    )]
    async fn cancel_run(
        &self,
        Extension(parts): Parts,
        Parameters(p): Parameters<RunRef>,
    ) -> Result<CallToolResult, McpError> {
        answer(&parts, |w| self.state.cancel(w, &p.run_id))
    }

    #[tool(
        description = "Close an open run once its last step is done: it ends passed if that step passed, else failed. No more steps can be appended."
    )]
    async fn close_run(
        &self,
        Extension(parts): Parts,
        Parameters(p): Parameters<RunRef>,
    ) -> Result<CallToolResult, McpError> {
        answer(&parts, |w| self.state.close(w, &p.run_id))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for CodencerTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_instructions(INSTRUCTIONS)
    }
}
