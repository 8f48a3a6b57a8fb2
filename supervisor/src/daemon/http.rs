//! The HTTP API's router, authentication and shared helpers. Routes live in `http_*.rs`;
//! docs/api.md and docs/openapi.yaml describe them.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::de::DeserializeOwned;

use super::auth::{Principal, Scope, hash_token};
use super::error::ApiError;
use super::ops::Daemon;

pub type AppState = Arc<Daemon>;

/// The whole API: `/v1/...`, `/mcp`, and the unauthenticated `/v1/health`.
pub fn router(state: AppState, mcp: Router<AppState>) -> Router {
    use super::{http_events as events, http_gates as gates, http_runs as runs};
    let api = Router::new()
        .route("/v1/queue", get(runs::queue))
        .route("/v1/runs", post(runs::create).get(runs::list))
        .route("/v1/runs/{run}", get(runs::get))
        .route("/v1/runs/{run}/result", get(runs::result))
        .route("/v1/runs/{run}/cancel", post(runs::cancel))
        .route("/v1/runs/{run}/resume", post(runs::resume))
        .route("/v1/runs/{run}/close", post(runs::close))
        .route("/v1/runs/{run}/steps", post(runs::append_step))
        .route("/v1/runs/{run}/steps/{step}", get(runs::step))
        .route("/v1/runs/{run}/steps/{step}/result", get(runs::step_result))
        .route("/v1/runs/{run}/steps/{step}/wait", get(runs::step_wait))
        .route("/v1/runs/{run}/attempts", get(runs::attempts))
        .route("/v1/runs/{run}/validations", get(runs::validations))
        .route("/v1/runs/{run}/artifacts", get(gates::run_artifacts))
        .route("/v1/runs/{run}/events", get(events::run_events))
        .route("/v1/attempts/{attempt}", get(runs::attempt))
        .route("/v1/artifacts/{artifact}", get(gates::artifact))
        .route(
            "/v1/artifacts/{artifact}/content",
            get(gates::artifact_content),
        )
        .route("/v1/gates", get(gates::list))
        .route("/v1/gates/{gate}", get(gates::get))
        .route("/v1/gates/{gate}/approve", post(gates::approve))
        .route("/v1/gates/{gate}/reject", post(gates::reject))
        .route("/v1/events", get(events::all_events))
        .route(
            "/v1/tokens",
            get(gates::list_tokens).post(gates::create_token),
        )
        .route(
            "/v1/tokens/{token}",
            axum::routing::delete(gates::revoke_token),
        )
        .merge(mcp)
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate));
    Router::new()
        .route("/v1/health", get(health))
        .merge(api)
        .fallback(not_found)
        .with_state(state)
}

async fn health() -> impl IntoResponse {
    axum::Json(serde_json::json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

async fn not_found(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_route",
        format!(
            "no route {} {} (see docs/api.md)",
            req.method(),
            req.uri().path()
        ),
    )
}

/// Lets a request through with its [`Principal`] when it carries a valid, unrevoked token;
/// else 401, recorded as `audit.denied`.
async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let route = format!("{} {}", req.method(), req.uri().path());
    let secret = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .map(str::to_string);
    let denied = |reason: String| {
        state.record_denied("anonymous", &reason, &route);
        let mut response =
            ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", reason).into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static("Bearer"),
        );
        response
    };
    let Some(secret) = secret else {
        return denied(
            "missing bearer token: send `Authorization: Bearer <token>` (create one with `orchestratorctl tokens create`)"
                .into(),
        );
    };
    let token = match state.store().find_token_by_hash(&hash_token(&secret)) {
        Ok(token) => token,
        Err(err) => return ApiError::internal(&err).into_response(),
    };
    let Some(token) = token else {
        return denied("unknown token".into());
    };
    if token.revoked_at.is_some() {
        return denied(format!("token `{}` was revoked", token.name));
    }
    let scopes = token
        .scopes
        .iter()
        .filter_map(|s| Scope::parse(s))
        .collect();
    req.extensions_mut().insert(Principal {
        token_id: token.id,
        name: token.name,
        scopes,
    });
    next.run(req).await
}

/// A JSON request body, with a JSON error when it does not parse.
pub fn parse_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    let body: &[u8] = if body.is_empty() { b"{}" } else { body };
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!("the request body is not the expected JSON: {e}"))
    })
}

/// The text of a TaskSpec or step given as a string (YAML or JSON) or a JSON object.
pub fn spec_text(value: &serde_json::Value, field: &str) -> Result<String, ApiError> {
    match value {
        serde_json::Value::String(text) => Ok(text.clone()),
        serde_json::Value::Object(_) => {
            serde_json::to_string_pretty(value).map_err(|e| ApiError::bad_request(e.to_string()))
        }
        _ => Err(ApiError::bad_request(format!(
            "`{field}` must be the TaskSpec as a YAML/JSON string or a JSON object"
        ))),
    }
}
