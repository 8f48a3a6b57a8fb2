//! Routes for runs, steps and attempts.

use std::path::PathBuf;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use codencer_store::{AttemptTree, RunFilter, RunStatus, ValidationRow};
use serde::Deserialize;
use serde_json::json;

use super::auth::{Principal, Scope};
use super::error::ApiError;
use super::http::{AppState, parse_body, spec_text};

type Who = Extension<Principal>;

pub async fn queue(
    State(s): State<AppState>,
    Extension(who): Who,
) -> Result<impl IntoResponse, ApiError> {
    s.require(&who, Scope::RunsRead, "GET /v1/queue")?;
    Ok(Json(s.runner.queue()))
}

#[derive(Debug, Deserialize)]
pub struct CreateRun {
    taskspec: serde_json::Value,
    #[serde(default)]
    open: bool,
    base_dir: Option<PathBuf>,
}

pub async fn create(
    State(s): State<AppState>,
    Extension(who): Who,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let req: CreateRun = parse_body(&body)?;
    let text = spec_text(&req.taskspec, "taskspec")?;
    let submitted = s.submit(&who, &text, req.open, req.base_dir)?;
    Ok((StatusCode::CREATED, Json(submitted)))
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    status: Option<String>,
    name: Option<String>,
    before: Option<String>,
    limit: Option<u32>,
}

pub async fn list(
    State(s): State<AppState>,
    Extension(who): Who,
    Query(q): Query<ListQuery>,
) -> Result<impl IntoResponse, ApiError> {
    s.require(&who, Scope::RunsRead, "GET /v1/runs")?;
    let status = q
        .status
        .map(|st| {
            st.parse::<RunStatus>()
                .map_err(|e| ApiError::bad_request(e.to_string()))
        })
        .transpose()?;
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let runs = s.store().list_runs(&RunFilter {
        status,
        name: q.name,
        before: q.before,
        limit: Some(limit),
    })?;
    // The next page starts before the oldest run of this one.
    let next = (runs.len() as u32 == limit)
        .then(|| runs.last().map(|r| r.id.clone()))
        .flatten();
    Ok(Json(json!({ "runs": runs, "next_before": next })))
}

pub async fn get(
    State(s): State<AppState>,
    Extension(who): Who,
    Path(run): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    s.require(&who, Scope::RunsRead, "GET /v1/runs/{run}")?;
    Ok(Json(s.run_view(&run)?))
}

pub async fn result(
    State(s): State<AppState>,
    Extension(who): Who,
    Path(run): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    s.require(&who, Scope::RunsRead, "GET /v1/runs/{run}/result")?;
    Ok(Json(s.run_result(&run)?))
}

pub async fn cancel(
    State(s): State<AppState>,
    Extension(who): Who,
    Path(run): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok((StatusCode::ACCEPTED, Json(s.cancel(&who, &run)?)))
}

pub async fn resume(
    State(s): State<AppState>,
    Extension(who): Who,
    Path(run): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok((StatusCode::ACCEPTED, Json(s.resume(&who, &run)?)))
}

pub async fn close(
    State(s): State<AppState>,
    Extension(who): Who,
    Path(run): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(s.close(&who, &run)?))
}

#[derive(Debug, Deserialize)]
pub struct AppendStep {
    step: serde_json::Value,
}

pub async fn append_step(
    State(s): State<AppState>,
    Extension(who): Who,
    Path(run): Path<String>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let req: AppendStep = parse_body(&body)?;
    let text = spec_text(&req.step, "step")?;
    Ok((StatusCode::CREATED, Json(s.append_step(&who, &run, &text)?)))
}

pub async fn step(
    State(s): State<AppState>,
    Extension(who): Who,
    Path((run, step)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    s.require(&who, Scope::RunsRead, "GET /v1/runs/{run}/steps/{step}")?;
    Ok(Json(s.step(&run, &step)?.1))
}

pub async fn step_result(
    State(s): State<AppState>,
    Extension(who): Who,
    Path((run, step)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    s.require(
        &who,
        Scope::RunsRead,
        "GET /v1/runs/{run}/steps/{step}/result",
    )?;
    Ok(Json(s.step_result(&run, &step)?.result))
}

#[derive(Debug, Deserialize)]
pub struct WaitQuery {
    /// Seconds (default 30, at most 600).
    timeout: Option<u64>,
}

pub async fn step_wait(
    State(s): State<AppState>,
    Extension(who): Who,
    Path((run, step)): Path<(String, String)>,
    Query(q): Query<WaitQuery>,
) -> Result<impl IntoResponse, ApiError> {
    s.require(
        &who,
        Scope::RunsRead,
        "GET /v1/runs/{run}/steps/{step}/wait",
    )?;
    let timeout = Duration::from_secs(q.timeout.unwrap_or(30).min(600));
    Ok(Json(s.wait_step(&run, &step, timeout).await?))
}

fn attempt_trees(s: &AppState, run: &str) -> Result<Vec<AttemptTree>, ApiError> {
    let tree = s.tree(&s.resolve_run(run)?)?;
    Ok(tree.steps.into_iter().flat_map(|st| st.attempts).collect())
}

pub async fn attempts(
    State(s): State<AppState>,
    Extension(who): Who,
    Path(run): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    s.require(&who, Scope::RunsRead, "GET /v1/runs/{run}/attempts")?;
    let rows: Vec<_> = attempt_trees(&s, &run)?
        .into_iter()
        .map(|a| a.attempt)
        .collect();
    Ok(Json(json!({ "attempts": rows })))
}

pub async fn validations(
    State(s): State<AppState>,
    Extension(who): Who,
    Path(run): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    s.require(&who, Scope::RunsRead, "GET /v1/runs/{run}/validations")?;
    let rows: Vec<ValidationRow> = attempt_trees(&s, &run)?
        .into_iter()
        .flat_map(|a| a.validations)
        .collect();
    Ok(Json(json!({ "validations": rows })))
}

pub async fn attempt(
    State(s): State<AppState>,
    Extension(who): Who,
    Path(attempt): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    s.require(&who, Scope::RunsRead, "GET /v1/attempts/{attempt}")?;
    let row = s
        .store()
        .attempt(&attempt)?
        .ok_or_else(|| ApiError::not_found("attempt", &attempt))?;
    let tree = attempt_trees(&s, &row.run_id)?
        .into_iter()
        .find(|a| a.attempt.id == attempt)
        .ok_or_else(|| ApiError::not_found("attempt", &attempt))?;
    Ok(Json(tree))
}
