//! Routes for gates, artifacts and tokens.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Extension, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use codencer_store::{ArtifactKind, BlobContent, GateStatus, StoreError};
use serde::Deserialize;
use serde_json::json;

use super::auth::{self, Principal, Scope};
use super::error::ApiError;
use super::http::{AppState, parse_body};

type Who = Extension<Principal>;

#[derive(Debug, Deserialize)]
pub struct GatesQuery {
    run: Option<String>,
    status: Option<String>,
}

pub async fn list(
    State(s): State<AppState>,
    Extension(who): Who,
    Query(q): Query<GatesQuery>,
) -> Result<impl IntoResponse, ApiError> {
    s.require(&who, Scope::RunsRead, "GET /v1/gates")?;
    let run = q.run.map(|r| s.resolve_run(&r)).transpose()?;
    let status = q
        .status
        .map(|st| {
            st.parse::<GateStatus>()
                .map_err(|e| ApiError::bad_request(e.to_string()))
        })
        .transpose()?;
    Ok(Json(
        json!({ "gates": s.store().gates(run.as_deref(), status)? }),
    ))
}

pub async fn get(
    State(s): State<AppState>,
    Extension(who): Who,
    Path(gate): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    s.require(&who, Scope::RunsRead, "GET /v1/gates/{gate}")?;
    Ok(Json(s.gate(&gate)?))
}

#[derive(Debug, Default, Deserialize)]
pub struct Decision {
    reason: Option<String>,
}

pub async fn approve(
    State(s): State<AppState>,
    Extension(who): Who,
    Path(gate): Path<String>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let d: Decision = parse_body(&body)?;
    Ok(Json(s.decide_gate(&who, &gate, true, d.reason)?))
}

pub async fn reject(
    State(s): State<AppState>,
    Extension(who): Who,
    Path(gate): Path<String>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let d: Decision = parse_body(&body)?;
    Ok(Json(s.decide_gate(&who, &gate, false, d.reason)?))
}

pub async fn run_artifacts(
    State(s): State<AppState>,
    Extension(who): Who,
    Path(run): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    s.require(&who, Scope::ArtifactsRead, "GET /v1/runs/{run}/artifacts")?;
    Ok(Json(json!({ "artifacts": s.run_artifacts(&run)? })))
}

pub async fn artifact(
    State(s): State<AppState>,
    Extension(who): Who,
    Path(artifact): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    s.require(&who, Scope::ArtifactsRead, "GET /v1/artifacts/{artifact}")?;
    Ok(Json(s.artifact(&artifact)?))
}

/// The media type an artifact is served as.
pub fn content_type(kind: ArtifactKind) -> &'static str {
    match kind {
        ArtifactKind::Resultspec
        | ArtifactKind::ChangedFiles
        | ArtifactKind::Policy
        | ArtifactKind::SandboxReport
        | ArtifactKind::ExecutorReport => "application/json",
        ArtifactKind::Diff => "text/x-diff; charset=utf-8",
        ArtifactKind::NetworkLog | ArtifactKind::Transcript => "application/x-ndjson",
        ArtifactKind::Taskspec
        | ArtifactKind::ExecutorStdout
        | ArtifactKind::ExecutorStderr
        | ArtifactKind::ValidatorOutput => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// The blob: from the database when it is small, else streamed from its file (artifacts can
/// be large).
pub async fn artifact_content(
    State(s): State<AppState>,
    Extension(who): Who,
    Path(artifact): Path<String>,
) -> Result<Response, ApiError> {
    s.require(
        &who,
        Scope::ArtifactsRead,
        "GET /v1/artifacts/{artifact}/content",
    )?;
    let row = s.artifact(&artifact)?;
    let missing = |cause: &dyn std::fmt::Display| {
        ApiError::new(
            StatusCode::GONE,
            "blob_missing",
            format!("the blob of artifact {artifact} is missing from the store: {cause}"),
        )
    };
    let body = match s.store().open_blob(&row.sha256) {
        Ok(BlobContent::Inline(bytes)) => Body::from(bytes),
        Ok(BlobContent::File(path)) => {
            let file = tokio::fs::File::open(&path)
                .await
                .map_err(|e| missing(&e))?;
            Body::from_stream(tokio_util::io::ReaderStream::new(file))
        }
        Err(err @ StoreError::BlobNotFound { .. }) => return Err(missing(&err)),
        Err(err) => return Err(err.into()),
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type(row.kind).to_string()),
            (header::CONTENT_LENGTH, row.bytes.to_string()),
        ],
        body,
    )
        .into_response())
}

pub async fn list_tokens(
    State(s): State<AppState>,
    Extension(who): Who,
) -> Result<impl IntoResponse, ApiError> {
    s.require(&who, Scope::Admin, "GET /v1/tokens")?;
    Ok(Json(json!({ "tokens": s.store().list_tokens()? })))
}

#[derive(Debug, Deserialize)]
pub struct NewToken {
    name: String,
    scopes: Vec<String>,
}

pub async fn create_token(
    State(s): State<AppState>,
    Extension(who): Who,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    s.require(&who, Scope::Admin, "POST /v1/tokens")?;
    let req: NewToken = parse_body(&body)?;
    let scopes = auth::parse_scopes(&req.scopes).map_err(ApiError::bad_request)?;
    let (secret, row) = auth::create_token(s.store(), &who.name, &req.name, &scopes)
        .map_err(ApiError::bad_request)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "token": secret, "record": row })),
    ))
}

pub async fn revoke_token(
    State(s): State<AppState>,
    Extension(who): Who,
    Path(token): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    s.require(&who, Scope::Admin, "DELETE /v1/tokens/{token}")?;
    let id = resolve_token(&s, &token)?;
    let row = s.store().revoke_token(&who.name, &id)?.ok_or_else(|| {
        ApiError::conflict(
            "token_revoked",
            format!("token `{token}` is already revoked"),
        )
    })?;
    Ok(Json(row))
}

/// A token by id or by the name of a live token.
fn resolve_token(s: &AppState, token: &str) -> Result<String, ApiError> {
    let tokens = s.store().list_tokens()?;
    tokens
        .iter()
        .find(|t| t.id == token)
        .or_else(|| {
            tokens
                .iter()
                .find(|t| t.name == token && t.revoked_at.is_none())
        })
        .map(|t| t.id.clone())
        .ok_or_else(|| ApiError::not_found("token", token))
}
