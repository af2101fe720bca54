//! The errors of colzero-serve: [`ServeError`] (the one error enum of the crate, for
//! starting the service) and [`ApiError`] (what a request gets back).
//!
//! Contract: every error a client sees is JSON `{"code", "message"}` with the status that
//! says whose fault it is: 400 `BAD_REQUEST` (the message names the field), 400
//! `DIMENSION_MISMATCH`, 404 `INDEX_NOT_FOUND` / `NOT_FOUND`, 405 `METHOD_NOT_ALLOWED`, 409 `DOCUMENT_EXISTS` /
//! `INDEX_ALREADY_EXISTS` / `INDEX_NOT_MANAGED`, 413 `PAYLOAD_TOO_LARGE`, 503
//! `QUEUE_FULL` / `INDEX_BUSY` (with a `Retry-After` header, seconds), 500
//! `MODEL_ERROR` / `INTERNAL_ERROR`. Library errors are mapped in one place
//! ([`From<IndexError>`](ApiError#impl-From<IndexError>-for-ApiError)); nothing panics
//! on bad input.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use colzero_core::CoreError;
use colzero_index::IndexError;
use colzero_model::ModelError;

/// Errors raised while starting the service (loading the model and the indexes, binding).
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// An index could not be opened or written.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// A named index could not be opened.
    #[error("cannot open index `{name}`")]
    OpenIndex {
        name: String,
        #[source]
        source: IndexError,
    },
    /// The model could not be loaded.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A core error (lock, file).
    #[error(transparent)]
    Core(#[from] CoreError),
    /// An I/O error, with what was being done.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// An invalid setting (names it).
    #[error("{0}")]
    Invalid(String),
}

impl ServeError {
    /// Wraps an `io::Error` with what was being done.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        ServeError::Io {
            what: what.into(),
            source,
        }
    }
}

/// Result alias for colzero-serve.
pub type Result<T> = std::result::Result<T, ServeError>;

/// An error answered to a request (see module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds for the `Retry-After` header (503 only).
    pub retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 400 `BAD_REQUEST` about `field`.
    pub fn field(field: &str, message: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            format!("field `{field}`: {message}"),
        )
    }

    /// 400 `BAD_REQUEST` not tied to one field.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BAD_REQUEST", message)
    }

    /// 400 `DIMENSION_MISMATCH`.
    pub fn dimension(field: &str, found: usize, expected: usize) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "DIMENSION_MISMATCH",
            format!("field `{field}`: vectors have dim {found}, the index has dim {expected}"),
        )
    }

    /// 404 `INDEX_NOT_FOUND`.
    pub fn no_index(name: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "INDEX_NOT_FOUND",
            format!("no index named `{name}`"),
        )
    }

    /// 404 `NOT_FOUND` (no such route).
    pub fn no_route(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("no route {path}"),
        )
    }

    /// 405 `METHOD_NOT_ALLOWED`.
    pub fn method(method: &str, path: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            format!("{method} is not allowed on {path}"),
        )
    }

    /// 409 with `code`.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// 413 `PAYLOAD_TOO_LARGE`.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
            format!("request body larger than {limit} bytes (--max-body-bytes)"),
        )
    }

    /// 503 with `code` and `Retry-After: 1`.
    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            retry_after: Some(1),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
        }
    }

    /// 500 `INTERNAL_ERROR`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR", message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl From<IndexError> for ApiError {
    fn from(e: IndexError) -> Self {
        match e {
            IndexError::DuplicateId(id) => ApiError::conflict(
                "DOCUMENT_EXISTS",
                format!("document id `{id}` already exists (delete it first to replace it)"),
            ),
            IndexError::Dim {
                what,
                expected,
                found,
            } => ApiError::dimension(&what, found, expected),
            IndexError::Core(CoreError::Locked { path, holder }) => ApiError::unavailable(
                "INDEX_BUSY",
                format!("{}: {holder}; try again", path.display()),
            ),
            IndexError::Invalid(m) => ApiError::bad_request(m),
            other => ApiError::internal(other.to_string()),
        }
    }
}

impl From<ModelError> for ApiError {
    fn from(e: ModelError) -> Self {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "MODEL_ERROR",
            e.to_string(),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(code = self.code, "{}", self.message);
        } else {
            tracing::info!(
                code = self.code,
                status = self.status.as_u16(),
                "{}",
                self.message
            );
        }
        let body = serde_json::json!({"code": self.code, "message": self.message});
        let mut r = (self.status, Json(body)).into_response();
        if let Some(s) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        r
    }
}
