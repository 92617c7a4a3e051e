//! `ApiError`: the one place errors become HTTP responses, with a JSON body
//! `{"error": {"code", "message", "path"}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tributary_connector::{ConnectorError, ErrorKind};
use tributary_schema_cache::CacheError;

use crate::metadata::MetadataError;

/// An error on its way to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Where in the request the problem is (a field, a filter path), when known.
    pub path: Option<String>,
    /// Seconds the client is asked to wait before trying again
    /// (`Retry-After`), for a refusal that passes: a rate limit, a busy source.
    pub retry_after: Option<u64>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: BodyInner<'a>,
}

#[derive(Serialize)]
struct BodyInner<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<&'a str>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            path: None,
            retry_after: None,
        }
    }

    /// The error with `Retry-After: seconds`.
    #[must_use]
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    #[must_use]
    pub fn at(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// The error's path, placed under `parent` (`objects[0]` + `total` →
    /// `objects[0].total`, + `[1]` → `objects[0][1]`): for callers that
    /// name the place of an error only once there is one.
    pub fn placed_in(mut self, parent: &str) -> Self {
        if !parent.is_empty() {
            self.path = Some(match self.path.take() {
                Some(path) => crate::filter::join_path(parent, &path),
                None => parent.to_string(),
            });
        }
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_input", message)
    }

    pub fn not_found(what: &str, name: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("unknown {what} `{name}`"),
        )
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "permission_denied", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// A connector failure while registering or re-configuring a source: the
    /// admin's input (address, credentials, options) is what is wrong, so
    /// even an unreachable host is a 4xx.
    pub fn registration(error: &ConnectorError) -> Self {
        let (status, code) = match error.kind() {
            ErrorKind::Unavailable | ErrorKind::Timeout => {
                (StatusCode::UNPROCESSABLE_ENTITY, "source_unreachable")
            }
            ErrorKind::Authentication => {
                (StatusCode::UNPROCESSABLE_ENTITY, "authentication_failed")
            }
            ErrorKind::NotFound => (StatusCode::UNPROCESSABLE_ENTITY, "database_not_found"),
            ErrorKind::PermissionDenied => {
                (StatusCode::UNPROCESSABLE_ENTITY, "insufficient_privilege")
            }
            ErrorKind::Config | ErrorKind::InvalidInput | ErrorKind::Unsupported => {
                (StatusCode::BAD_REQUEST, "invalid_source_config")
            }
            _ => return Self::from(error),
        };
        Self::new(status, code, error.to_string())
    }
}

impl From<&ConnectorError> for ApiError {
    fn from(error: &ConnectorError) -> Self {
        let (status, code) = match error.kind() {
            ErrorKind::InvalidInput => (StatusCode::BAD_REQUEST, "invalid_input"),
            ErrorKind::Config => (StatusCode::BAD_REQUEST, "invalid_source_config"),
            ErrorKind::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            // Not the caller's input: the source's database user may not
            // do this; retrying will not help until its admin grants it.
            ErrorKind::PermissionDenied => (StatusCode::FORBIDDEN, "source_permission_denied"),
            ErrorKind::Unsupported => (StatusCode::BAD_REQUEST, "unsupported"),
            ErrorKind::Constraint => (StatusCode::CONFLICT, "constraint_violation"),
            ErrorKind::Conflict => (StatusCode::CONFLICT, "conflict"),
            // A source that refuses our credentials cannot serve: the client
            // sees the source as unavailable, the admin sees why.
            ErrorKind::Unavailable | ErrorKind::Authentication => {
                (StatusCode::SERVICE_UNAVAILABLE, "source_unavailable")
            }
            ErrorKind::Timeout => (StatusCode::GATEWAY_TIMEOUT, "source_timeout"),
            ErrorKind::Busy => (StatusCode::SERVICE_UNAVAILABLE, "source_busy"),
            ErrorKind::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        let answer = Self::new(status, code, error.to_string());
        if error.kind() == ErrorKind::Busy {
            // Up, but every pooled connection stayed in use: worth a retry
            // soon, unlike a source that is down.
            answer.retry_after(BUSY_RETRY_AFTER_SECS)
        } else {
            answer
        }
    }
}

impl From<ConnectorError> for ApiError {
    fn from(error: ConnectorError) -> Self {
        Self::from(&error)
    }
}

impl From<MetadataError> for ApiError {
    fn from(error: MetadataError) -> Self {
        tracing::error!(%error, "metadata store failure");
        Self::internal(format!("metadata store: {error}"))
    }
}

impl From<CacheError> for ApiError {
    fn from(error: CacheError) -> Self {
        match error {
            CacheError::UnknownSource(name) => Self::not_found("source", &name),
            other => {
                tracing::error!(error = %other, "catalog cache failure");
                Self::internal(other.to_string())
            }
        }
    }
}

/// Seconds a client is asked to wait before retrying a busy source: the
/// request already waited `pool.acquire_timeout_ms` for a connection.
const BUSY_RETRY_AFTER_SECS: u64 = 1;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: BodyInner {
                code: self.code,
                message: &self.message,
                path: self.path.as_deref(),
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(seconds),
            );
        }
        response
    }
}

/// Turns axum's JSON extractor rejections into our error body, naming the
/// problem (unknown field, wrong type, malformed JSON).
pub fn json_rejection(rejection: &axum::extract::rejection::JsonRejection) -> ApiError {
    ApiError::new(rejection.status(), "invalid_input", rejection.body_text())
}

impl From<crate::sources::SourceError> for ApiError {
    fn from(error: crate::sources::SourceError) -> Self {
        use crate::sources::SourceError;
        match error {
            SourceError::Duplicate(name) => {
                Self::conflict(format!("a source named `{name}` already exists"))
            }
            SourceError::Unknown(name) => Self::not_found("source", &name),
            SourceError::InvalidConfig(e) => Self::new(
                StatusCode::BAD_REQUEST,
                "invalid_source_config",
                e.to_string(),
            ),
            SourceError::Connect(e) => Self::registration(&e),
            SourceError::Source(e) => Self::from(&e),
            SourceError::Metadata(e) => Self::from(e),
            SourceError::Cache(e) => Self::from(e),
        }
    }
}

/// A planner error as users should read it: the parser's own message (not
/// its debug form), and table names without the engine's internal default
/// catalog (`datafusion.crm.x` is `crm.x` to them).
fn engine_message(error: &datafusion::error::DataFusionError) -> String {
    use datafusion::error::DataFusionError;
    let message = match error {
        DataFusionError::SQL(parser, _) => parser.to_string(),
        other => other.to_string(),
    };
    message.replace(
        &format!("table '{}.", crate::engine::DEFAULT_CATALOG),
        "table '",
    )
}

impl From<crate::engine::EngineError> for ApiError {
    fn from(error: crate::engine::EngineError) -> Self {
        use crate::engine::EngineError;
        use datafusion::error::DataFusionError;
        if let Some(source_error) = error.connector_error() {
            return Self::from(source_error);
        }
        match &error {
            EngineError::NotAllowed(message) => {
                Self::new(StatusCode::BAD_REQUEST, "read_only", message.clone())
            }
            EngineError::Denied(message) => Self::forbidden(message.clone()),
            EngineError::Timeout(_) => Self::new(
                StatusCode::GATEWAY_TIMEOUT,
                "query_timeout",
                error.to_string(),
            ),
            EngineError::DataFusion(inner) => {
                let (status, code) = match inner.find_root() {
                    DataFusionError::SQL(..) => (StatusCode::BAD_REQUEST, "syntax_error"),
                    DataFusionError::Plan(_) | DataFusionError::SchemaError(..) => {
                        (StatusCode::BAD_REQUEST, "invalid_query")
                    }
                    DataFusionError::NotImplemented(_) => (StatusCode::BAD_REQUEST, "unsupported"),
                    DataFusionError::Execution(_) | DataFusionError::ArrowError(..) => {
                        (StatusCode::BAD_REQUEST, "query_failed")
                    }
                    DataFusionError::ResourcesExhausted(_) => {
                        (StatusCode::SERVICE_UNAVAILABLE, "resources_exhausted")
                    }
                    _ => {
                        tracing::error!(%inner, "query failed");
                        (StatusCode::INTERNAL_SERVER_ERROR, "internal")
                    }
                };
                Self::new(status, code, engine_message(inner.find_root()))
            }
        }
    }
}
