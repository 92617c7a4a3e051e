//! Classifies driver and pool failures into [`ErrorKind`]s by SQLSTATE and
//! cause.

use std::error::Error as _;
use std::io;

use deadpool_postgres::{PoolError, TimeoutType};
use tokio_postgres::error::DbError;
use tributary_connector::{ConnectorError, ErrorKind};

use crate::encode::ParamError;

/// The kind of a server error, by SQLSTATE.
pub(crate) fn kind_of_sqlstate(code: &str) -> ErrorKind {
    match code {
        "40001" | "40P01" => ErrorKind::Conflict,
        "42P01" | "42703" | "3F000" => ErrorKind::NotFound,
        "42501" => ErrorKind::PermissionDenied,
        "57014" => ErrorKind::Timeout,
        "57P01" | "57P02" | "57P03" => ErrorKind::Unavailable,
        "3D000" => ErrorKind::Config,
        "0A000" | "25006" => ErrorKind::Unsupported,
        _ => match &code[..code.len().min(2)] {
            "23" => ErrorKind::Constraint,
            "28" => ErrorKind::Authentication,
            "22" | "42" | "21" | "2F" | "P0" | "25" => ErrorKind::InvalidInput,
            "08" | "53" => ErrorKind::Unavailable,
            _ => ErrorKind::Internal,
        },
    }
}

/// A readable message from a server error: message, detail, hint and where
/// (which names the parameter when a bound value did not parse).
fn db_message(db: &DbError) -> String {
    let mut message = db.message().to_string();
    if let Some(detail) = db.detail().filter(|d| shown(d)) {
        message.push_str(" (");
        message.push_str(detail);
        message.push(')');
    }
    if let Some(hint) = db.hint() {
        message.push_str("; hint: ");
        message.push_str(hint);
    }
    if let Some(context) = db.where_().filter(|w| w.contains("parameter $")) {
        message.push_str("; ");
        message.push_str(context.lines().next().unwrap_or(context));
    }
    format!("{message} [SQLSTATE {}]", db.code().code())
}

/// Whether a server error's detail may reach the caller. Not PostgreSQL's
/// "Failing row contains (…)" of a NOT NULL or CHECK violation: it lists
/// every column of the row, those the caller's role may not read too.
fn shown(detail: &str) -> bool {
    !detail.starts_with("Failing row contains")
}

/// PostgreSQL refuses to run a cached plan whose result type changed (`ALTER
/// TABLE` since the statement was prepared).
pub(crate) fn is_stale_plan(err: &tokio_postgres::Error) -> bool {
    err.as_db_error()
        .is_some_and(|db| db.code().code() == "0A000" && db.message().contains("cached plan"))
}

/// Whether a cached write statement may have failed because its table
/// changed since it was prepared (an error already converted by
/// [`from_pg`]): a stale plan, or — the statement re-analyzed with the
/// parameter types it was prepared with — a datatype mismatch, an undefined
/// column or table, a value that cannot be coerced. Prepared afresh, it may
/// run.
pub(crate) fn may_be_stale(err: &ConnectorError) -> bool {
    err.source()
        .and_then(|cause| cause.downcast_ref::<tokio_postgres::Error>())
        .is_some_and(|e| {
            is_stale_plan(e)
                || e.as_db_error().is_some_and(|db| {
                    matches!(db.code().code(), "42804" | "42703" | "42P01" | "42846")
                })
        })
}

/// Classifies a tokio-postgres error.
pub(crate) fn from_pg(err: tokio_postgres::Error) -> ConnectorError {
    if let Some(db) = err.as_db_error() {
        let kind = kind_of_sqlstate(db.code().code());
        let message = db_message(db);
        return ConnectorError::new(kind, message).with_cause(err);
    }
    if let Some(param) = err.source().and_then(|s| s.downcast_ref::<ParamError>()) {
        return ConnectorError::invalid_input(param.to_string());
    }
    if err.is_closed() {
        return ConnectorError::unavailable("the connection to PostgreSQL was closed")
            .with_cause(err);
    }
    let text = err.to_string();
    let io_kind = err
        .source()
        .and_then(|s| s.downcast_ref::<io::Error>())
        .map(io::Error::kind);
    let detail = err
        .source()
        .map(ToString::to_string)
        .filter(|s| !s.is_empty());
    let message = match &detail {
        Some(d) => format!("{text}: {d}"),
        None => text.clone(),
    };
    // A value the protocol cannot carry (text with a NUL byte) fails while
    // the message is encoded, before anything is sent: bad input, not a
    // source that is down.
    let kind = if text.starts_with("error encoding message to server")
        || text.starts_with("error serializing parameter")
    {
        ErrorKind::InvalidInput
    } else if matches!(io_kind, Some(io::ErrorKind::TimedOut)) || text.starts_with("timeout") {
        ErrorKind::Timeout
    } else if text.starts_with("authentication error") {
        ErrorKind::Authentication
    } else if text.starts_with("error connecting")
        || text.starts_with("error communicating")
        || text.starts_with("error performing TLS")
        || io_kind.is_some()
    {
        ErrorKind::Unavailable
    } else if text.starts_with("invalid configuration")
        || text.starts_with("invalid connection string")
    {
        ErrorKind::Config
    } else if text.starts_with("expected ") && text.contains("parameters") {
        ErrorKind::InvalidInput
    } else {
        ErrorKind::Internal
    };
    ConnectorError::new(kind, message).with_cause(err)
}

/// Classifies a failure to get a pooled connection.
pub(crate) fn from_pool(err: PoolError) -> ConnectorError {
    match err {
        PoolError::Timeout(TimeoutType::Wait) => ConnectorError::busy(
            "every pooled connection stayed in use past pool.acquire_timeout_ms",
        ),
        PoolError::Timeout(TimeoutType::Create) => {
            ConnectorError::timeout("timed out connecting to PostgreSQL (pool.connect_timeout_ms)")
        }
        PoolError::Timeout(TimeoutType::Recycle) => {
            ConnectorError::timeout("timed out checking a pooled connection")
        }
        PoolError::Backend(e) => {
            let err = from_pg(e);
            match err.kind() {
                // A connection that cannot be made means the database is not
                // reachable (refused, reset, DNS), unless it timed out.
                ErrorKind::Internal => ConnectorError::unavailable(err.message().to_string()),
                _ => err,
            }
        }
        PoolError::Closed => ConnectorError::unavailable("the connection pool is closed"),
        PoolError::NoRuntimeSpecified => {
            ConnectorError::internal("the connection pool has no async runtime")
        }
        PoolError::PostCreateHook(e) => {
            ConnectorError::unavailable(format!("connection setup failed: {e}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates() {
        for (code, kind) in [
            ("23505", ErrorKind::Constraint),
            ("23503", ErrorKind::Constraint),
            ("40001", ErrorKind::Conflict),
            ("40P01", ErrorKind::Conflict),
            ("28P01", ErrorKind::Authentication),
            ("28000", ErrorKind::Authentication),
            ("42P01", ErrorKind::NotFound),
            ("42703", ErrorKind::NotFound),
            ("22P02", ErrorKind::InvalidInput),
            ("22003", ErrorKind::InvalidInput),
            ("42601", ErrorKind::InvalidInput),
            ("42501", ErrorKind::PermissionDenied),
            ("57014", ErrorKind::Timeout),
            ("08006", ErrorKind::Unavailable),
            ("57P01", ErrorKind::Unavailable),
            ("57P03", ErrorKind::Unavailable),
            ("XX000", ErrorKind::Internal),
        ] {
            assert_eq!(kind_of_sqlstate(code), kind, "{code}");
        }
    }

    #[test]
    fn details_listing_a_whole_row_are_not_shown() {
        assert!(!shown("Failing row contains (1, null, secret)."));
        assert!(shown("Key (id)=(5) already exists."));
    }
}
