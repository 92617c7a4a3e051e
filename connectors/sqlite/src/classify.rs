//! Maps rusqlite / SQLite errors to `ConnectorError` kinds: by primary result
//! code first, and for the generic `SQLITE_ERROR` by its message.

use rusqlite::ffi;
use tributary_connector::{ConnectorError, ErrorKind};

/// Classifies a driver error, keeping it as the cause.
pub(crate) fn classify(err: rusqlite::Error) -> ConnectorError {
    let (kind, message) = describe(&err);
    ConnectorError::new(kind, message).with_cause(err)
}

/// The kind and message of a driver error.
fn describe(err: &rusqlite::Error) -> (ErrorKind, String) {
    match err {
        rusqlite::Error::SqliteFailure(code, message) => {
            let text = message.clone().unwrap_or_else(|| code.to_string());
            (kind_of_code(code, &text), text)
        }
        rusqlite::Error::SqlInputError { error, msg, .. } => {
            (kind_of_code(error, msg), msg.clone())
        }
        rusqlite::Error::MultipleStatement => (
            ErrorKind::InvalidInput,
            "only one SQL statement may be run at a time".to_string(),
        ),
        rusqlite::Error::InvalidParameterCount(given, expected) => (
            ErrorKind::InvalidInput,
            format!("the statement takes {expected} parameters but {given} were given"),
        ),
        rusqlite::Error::InvalidParameterName(_)
        | rusqlite::Error::NulError(_)
        | rusqlite::Error::ToSqlConversionFailure(_) => (ErrorKind::InvalidInput, err.to_string()),
        rusqlite::Error::InvalidPath(path) => (
            ErrorKind::Config,
            format!("the SQLite path `{}` is not valid", path.display()),
        ),
        other => (ErrorKind::Internal, other.to_string()),
    }
}

/// SQLite primary result codes → kinds; `SQLITE_ERROR` by message.
fn kind_of_code(code: &ffi::Error, message: &str) -> ErrorKind {
    use ffi::ErrorCode;
    match code.code {
        ErrorCode::ConstraintViolation => ErrorKind::Constraint,
        ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked | ErrorCode::SchemaChanged => {
            ErrorKind::Conflict
        }
        ErrorCode::CannotOpen
        | ErrorCode::NotADatabase
        | ErrorCode::SystemIoFailure
        | ErrorCode::FileLockingProtocolFailed
        | ErrorCode::PermissionDenied
        | ErrorCode::NoLargeFileSupport => ErrorKind::Unavailable,
        ErrorCode::OperationInterrupted => ErrorKind::Timeout,
        ErrorCode::AuthorizationForStatementDenied => ErrorKind::Authentication,
        ErrorCode::ReadOnly => ErrorKind::Unsupported,
        ErrorCode::TypeMismatch | ErrorCode::TooBig | ErrorCode::ParameterOutOfRange => {
            ErrorKind::InvalidInput
        }
        ErrorCode::Unknown => {
            const NOT_FOUND: [&str; 4] = [
                "no such table",
                "no such column",
                "no such view",
                "no such index",
            ];
            if NOT_FOUND.iter().any(|prefix| message.starts_with(prefix)) {
                ErrorKind::NotFound
            } else {
                ErrorKind::InvalidInput
            }
        }
        _ => ErrorKind::Internal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn failure(code: i32, message: &str) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(ffi::Error::new(code), Some(message.to_string()))
    }

    #[rstest]
    #[case(
        ffi::SQLITE_CONSTRAINT_UNIQUE,
        "UNIQUE constraint failed: t.a",
        ErrorKind::Constraint
    )]
    #[case(
        ffi::SQLITE_CONSTRAINT_FOREIGNKEY,
        "FOREIGN KEY constraint failed",
        ErrorKind::Constraint
    )]
    #[case(
        ffi::SQLITE_CONSTRAINT_NOTNULL,
        "NOT NULL constraint failed: t.a",
        ErrorKind::Constraint
    )]
    #[case(
        ffi::SQLITE_CONSTRAINT_CHECK,
        "CHECK constraint failed: c",
        ErrorKind::Constraint
    )]
    #[case(ffi::SQLITE_BUSY, "database is locked", ErrorKind::Conflict)]
    #[case(ffi::SQLITE_BUSY_SNAPSHOT, "database is locked", ErrorKind::Conflict)]
    #[case(ffi::SQLITE_LOCKED, "database table is locked", ErrorKind::Conflict)]
    #[case(
        ffi::SQLITE_CANTOPEN,
        "unable to open database file: /x/y.db",
        ErrorKind::Unavailable
    )]
    #[case(ffi::SQLITE_NOTADB, "file is not a database", ErrorKind::Unavailable)]
    #[case(ffi::SQLITE_IOERR_READ, "disk I/O error", ErrorKind::Unavailable)]
    #[case(ffi::SQLITE_INTERRUPT, "interrupted", ErrorKind::Timeout)]
    #[case(ffi::SQLITE_AUTH, "not authorized", ErrorKind::Authentication)]
    #[case(
        ffi::SQLITE_READONLY,
        "attempt to write a readonly database",
        ErrorKind::Unsupported
    )]
    #[case(ffi::SQLITE_TOOBIG, "string or blob too big", ErrorKind::InvalidInput)]
    #[case(ffi::SQLITE_ERROR, "no such table: nope", ErrorKind::NotFound)]
    #[case(ffi::SQLITE_ERROR, "no such column: nope", ErrorKind::NotFound)]
    #[case(
        ffi::SQLITE_ERROR,
        "near \"SELEKT\": syntax error",
        ErrorKind::InvalidInput
    )]
    #[case(ffi::SQLITE_ERROR, "no such function: nope", ErrorKind::InvalidInput)]
    #[case(
        ffi::SQLITE_CORRUPT,
        "database disk image is malformed",
        ErrorKind::Internal
    )]
    #[case(ffi::SQLITE_FULL, "database or disk is full", ErrorKind::Internal)]
    fn result_codes(#[case] code: i32, #[case] message: &str, #[case] expected: ErrorKind) {
        let err = classify(failure(code, message));
        assert_eq!(err.kind(), expected, "{message}");
        assert_eq!(err.message(), message);
    }

    /// Real errors from a real (in-memory) database.
    #[rstest]
    #[case("INSERT INTO t VALUES (1, 'a')", ErrorKind::Constraint)]
    #[case("INSERT INTO t VALUES (2, NULL)", ErrorKind::Constraint)]
    #[case("SELECT * FROM missing", ErrorKind::NotFound)]
    #[case("SELECT missing FROM t", ErrorKind::NotFound)]
    #[case("SELEKT 1", ErrorKind::InvalidInput)]
    #[case("SELECT 1; SELECT 2", ErrorKind::InvalidInput)]
    fn statements(#[case] sql: &str, #[case] expected: ErrorKind) {
        let db = rusqlite::Connection::open_in_memory().unwrap();
        db.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT NOT NULL); INSERT INTO t VALUES (1, 'a');")
            .unwrap();
        let err = db
            .prepare(sql)
            .and_then(|mut s| s.raw_execute())
            .unwrap_err();
        assert_eq!(classify(err).kind(), expected, "{sql}");
    }

    #[test]
    fn parameter_count_mismatch_is_invalid_input() {
        let err = classify(rusqlite::Error::InvalidParameterCount(1, 2));
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.message().contains("takes 2 parameters"), "{err}");
    }
}
