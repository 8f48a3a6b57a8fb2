//! Errors the API returns: an HTTP status, a stable `code`, a human `message` saying what
//! was wrong and how to fix it, and optional field-level `errors`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

use crate::spec::SpecErrors;
use crate::text::error_chain;

/// One API failure. `code` values are documented in docs/api.md and never change meaning.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub errors: Option<Value>,
}

#[derive(Debug, Serialize)]
struct Body<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            errors: None,
        }
    }

    pub fn not_found(what: &str, id: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no {what} `{id}`"),
        )
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, code, message)
    }

    pub fn internal(err: &dyn std::error::Error) -> ApiError {
        tracing::error!(cause = %error_chain(err), "request failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            error_chain(err),
        )
    }

    /// A TaskSpec (or step) that does not validate: the CLI's field-level messages.
    pub fn invalid_spec(code: &'static str, errors: &SpecErrors) -> ApiError {
        let list: Vec<Value> = errors
            .0
            .iter()
            .map(|e| {
                serde_json::json!({
                    "file": e.file,
                    "line": e.line,
                    "field": e.field,
                    "message": e.message,
                    "fix": e.fix,
                })
            })
            .collect();
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code,
            message: format!("invalid TaskSpec (nothing was run or recorded)\n{errors}"),
            errors: Some(Value::Array(list)),
        }
    }
}

impl From<codencer_store::StoreError> for ApiError {
    fn from(err: codencer_store::StoreError) -> ApiError {
        match &err {
            codencer_store::StoreError::RunNotFound { prefix } => {
                ApiError::not_found("run", prefix)
            }
            codencer_store::StoreError::AmbiguousRunId { .. } => {
                ApiError::bad_request(error_chain(&err))
            }
            _ => ApiError::internal(&err),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            code: self.code,
            message: &self.message,
            errors: self.errors.as_ref(),
        };
        (self.status, Json(body)).into_response()
    }
}
