//! `ConnectorError`: every failure a connector reports, classified into kinds
//! the server maps to HTTP statuses in one place.

use std::fmt;

/// What kind of failure an error is; decides the HTTP status and whether a
/// retry may help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The request (a value, a statement) is wrong: 400.
    InvalidInput,
    /// Configuration of the source is wrong (bad URL, unknown option): 400.
    Config,
    /// The database refused our credentials: 400 on registration, 503 later.
    Authentication,
    /// A table or column does not exist: 404/400.
    NotFound,
    /// The source's database user lacks a privilege the statement needs
    /// (SELECT on a column, UPDATE on a table): 403; the source's admin
    /// grants it.
    PermissionDenied,
    /// The operation is not possible on this source or table: 400.
    Unsupported,
    /// A constraint (unique, foreign key, not null, check) rejected a write: 409.
    Constraint,
    /// A serialization failure or deadlock: 409, the client may retry.
    Conflict,
    /// The database cannot be reached: 503 naming the source.
    Unavailable,
    /// A statement took too long: 504.
    Timeout,
    /// Every pooled connection stayed in use past `pool.acquire_timeout_ms`:
    /// the source is busy, not down: 503 with `Retry-After`.
    Busy,
    /// Anything else (a driver bug, a decoding failure): 500.
    Internal,
}

/// A connector failure with the source it came from.
#[derive(Debug, thiserror::Error)]
pub struct ConnectorError {
    kind: ErrorKind,
    source_name: Option<String>,
    message: String,
    #[source]
    cause: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl fmt::Display for ConnectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source_name {
            Some(source) => write!(f, "source `{source}`: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl ConnectorError {
    /// A new error of `kind` with a human-readable message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            source_name: None,
            message: message.into(),
            cause: None,
        }
    }

    /// Keeps the driver's error as the cause.
    #[must_use]
    pub fn with_cause(mut self, cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.cause = Some(Box::new(cause));
        self
    }

    /// Names the source (done by every connector before an error leaves it).
    #[must_use]
    pub fn for_source(mut self, source: &str) -> Self {
        if self.source_name.is_none() {
            self.source_name = Some(source.to_string());
        }
        self
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn source_name(&self) -> Option<&str> {
        self.source_name.as_deref()
    }

    /// The message without the source prefix.
    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config, message)
    }
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, message)
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Timeout, message)
    }
    pub fn busy(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Busy, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }
}

/// Shorthand for connector results.
pub type Result<T, E = ConnectorError> = std::result::Result<T, E>;
