//! Turns `mysql_async` errors into classified `ConnectorError`s: server
//! errors by their error number, driver and I/O errors by what they mean.

use std::io;

use mysql_async::{DriverError, Error as MyError, IoError};
use tributary_connector::{ConnectorError, ErrorKind};

/// The kind of a MySQL / MariaDB error number (server `ER_*` and client `CR_*` codes).
pub fn kind_of_code(code: u16) -> ErrorKind {
    match code {
        // Duplicate key, foreign key parent/child, NOT NULL, no default,
        // CHECK (MySQL 3819, MariaDB 4025).
        1062 | 1169 | 1216 | 1217 | 1451 | 1452 | 1557 | 1586 | 1048 | 1364 | 1761 | 1762
        | 3819 | 4025 => ErrorKind::Constraint,
        // Deadlock, lock wait timeout.
        1213 | 1205 => ErrorKind::Conflict,
        // Access denied (password, database, no password plugin match).
        1045 | 1044 | 1698 | 1251 => ErrorKind::Authentication,
        // The user lacking a privilege for a table, a column or a command.
        1142 | 1143 | 1227 => ErrorKind::PermissionDenied,
        // Unknown table, column, database, function.
        1146 | 1054 | 1049 | 1109 | 1051 | 1305 => ErrorKind::NotFound,
        // Syntax, bad or out-of-range values, too long data, division by zero.
        1064 | 1366 | 1292 | 1264 | 1406 | 1265 | 1411 | 1052 | 1241 | 1210 | 1690 | 1365
        | 3140 | 1918 => ErrorKind::InvalidInput,
        // MariaDB max_statement_time, MySQL max_execution_time.
        1969 | 3024 => ErrorKind::Timeout,
        // Client errors: no socket, cannot connect, server gone, lost connection;
        // server: too many connections, host blocked, shutting down, killed,
        // disconnected for inactivity.
        2002 | 2003 | 2005 | 2006 | 2013 | 2055 | 1040 | 1129 | 1053 | 1927 | 4031 => {
            ErrorKind::Unavailable
        }
        _ => ErrorKind::Internal,
    }
}

/// Classifies a driver error (without naming the source: callers add it).
pub fn classify(err: MyError) -> ConnectorError {
    let (kind, message) = describe(&err);
    ConnectorError::new(kind, message).with_cause(err)
}

/// Classifies an error met while obtaining a connection: failures to reach
/// the server name the address they tried.
pub fn classify_connect(err: MyError, address: &str) -> ConnectorError {
    let (kind, message) = describe(&err);
    let message = match kind {
        ErrorKind::Unavailable | ErrorKind::Timeout => format!("cannot reach {address}: {message}"),
        _ => message,
    };
    ConnectorError::new(kind, message).with_cause(err)
}

fn describe(err: &MyError) -> (ErrorKind, String) {
    match err {
        MyError::Server(server) => (kind_of_code(server.code), server_message(server)),
        MyError::Io(IoError::Io(io)) => (kind_of_io(io), format!("connection failed: {io}")),
        MyError::Io(IoError::Tls(tls)) => (ErrorKind::Unavailable, format!("TLS failed: {tls}")),
        MyError::Driver(driver) => (kind_of_driver(driver), driver_message(driver)),
        MyError::Url(url) => (ErrorKind::Config, url.to_string()),
        MyError::Other(other) => (ErrorKind::Internal, other.to_string()),
    }
}

fn server_message(server: &mysql_async::ServerError) -> String {
    match kind_of_code(server.code) {
        ErrorKind::Timeout => format!(
            "the statement ran longer than the statement timeout (error {}: {})",
            server.code, server.message
        ),
        _ => format!(
            "error {} ({}): {}",
            server.code, server.state, server.message
        ),
    }
}

fn kind_of_io(err: &io::Error) -> ErrorKind {
    match err.kind() {
        io::ErrorKind::TimedOut => ErrorKind::Timeout,
        _ => ErrorKind::Unavailable,
    }
}

fn kind_of_driver(err: &DriverError) -> ErrorKind {
    match err {
        DriverError::ConnectionClosed
        | DriverError::PoolDisconnected
        | DriverError::PacketOutOfOrder
        | DriverError::UnexpectedPacket { .. } => ErrorKind::Unavailable,
        DriverError::NoClientSslFlagFromServer => ErrorKind::Config,
        DriverError::UnknownAuthPlugin { .. }
        | DriverError::CleartextPluginDisabled
        | DriverError::MysqlOldPasswordDisabled => ErrorKind::Authentication,
        DriverError::StmtParamsMismatch { .. }
        | DriverError::StmtParamsNumberExceedsLimit { .. }
        | DriverError::Params(_)
        | DriverError::MixedParams
        | DriverError::PacketTooLarge => ErrorKind::InvalidInput,
        _ => ErrorKind::Internal,
    }
}

fn driver_message(err: &DriverError) -> String {
    match err {
        DriverError::NoClientSslFlagFromServer => {
            "the server does not support TLS, but tls.mode requires it \
             (use tls.mode = \"prefer\" or \"off\", or enable TLS on the server)"
                .to_string()
        }
        other => other.to_string(),
    }
}

/// True when the error says the server does not offer TLS at all.
pub fn is_tls_unsupported(err: &MyError) -> bool {
    matches!(err, MyError::Driver(DriverError::NoClientSslFlagFromServer))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_async::ServerError;
    use rstest::rstest;

    #[rstest]
    #[case(1062, ErrorKind::Constraint)] // duplicate entry
    #[case(1451, ErrorKind::Constraint)] // cannot delete a parent row
    #[case(1452, ErrorKind::Constraint)] // cannot add a child row
    #[case(1048, ErrorKind::Constraint)] // column cannot be null
    #[case(1364, ErrorKind::Constraint)] // field has no default value
    #[case(3819, ErrorKind::Constraint)] // MySQL CHECK
    #[case(4025, ErrorKind::Constraint)] // MariaDB CHECK
    #[case(1213, ErrorKind::Conflict)] // deadlock
    #[case(1205, ErrorKind::Conflict)] // lock wait timeout
    #[case(1045, ErrorKind::Authentication)] // wrong password
    #[case(1044, ErrorKind::Authentication)] // no access to the database
    #[case(1698, ErrorKind::Authentication)]
    #[case(1142, ErrorKind::PermissionDenied)] // no privilege on the table
    #[case(1143, ErrorKind::PermissionDenied)] // no privilege on the column
    #[case(1146, ErrorKind::NotFound)] // no such table
    #[case(1054, ErrorKind::NotFound)] // no such column
    #[case(1049, ErrorKind::NotFound)] // no such database
    #[case(1064, ErrorKind::InvalidInput)] // syntax
    #[case(1366, ErrorKind::InvalidInput)] // incorrect value
    #[case(1292, ErrorKind::InvalidInput)] // truncated incorrect value
    #[case(1264, ErrorKind::InvalidInput)] // out of range
    #[case(1406, ErrorKind::InvalidInput)] // data too long
    #[case(1969, ErrorKind::Timeout)] // MariaDB max_statement_time
    #[case(3024, ErrorKind::Timeout)] // MySQL max_execution_time
    #[case(2002, ErrorKind::Unavailable)]
    #[case(2003, ErrorKind::Unavailable)]
    #[case(2006, ErrorKind::Unavailable)]
    #[case(2013, ErrorKind::Unavailable)]
    #[case(1040, ErrorKind::Unavailable)] // too many connections
    #[case(1105, ErrorKind::Internal)] // unknown error
    fn server_codes(#[case] code: u16, #[case] expected: ErrorKind) {
        assert_eq!(kind_of_code(code), expected);
        let err = classify(MyError::Server(ServerError {
            code,
            message: "msg".into(),
            state: "HY000".into(),
        }));
        assert_eq!(err.kind(), expected);
        assert!(err.message().contains(&code.to_string()), "{err}");
    }

    #[rstest]
    #[case(
        MyError::Io(IoError::Io(io::Error::from(io::ErrorKind::ConnectionRefused))),
        ErrorKind::Unavailable
    )]
    #[case(
        MyError::Io(IoError::Io(io::Error::from(io::ErrorKind::ConnectionReset))),
        ErrorKind::Unavailable
    )]
    #[case(
        MyError::Io(IoError::Io(io::Error::from(io::ErrorKind::TimedOut))),
        ErrorKind::Timeout
    )]
    #[case(MyError::Driver(DriverError::ConnectionClosed), ErrorKind::Unavailable)]
    #[case(MyError::Driver(DriverError::PoolDisconnected), ErrorKind::Unavailable)]
    #[case(
        MyError::Driver(DriverError::NoClientSslFlagFromServer),
        ErrorKind::Config
    )]
    #[case(MyError::Driver(DriverError::UnknownAuthPlugin { name: "x".into() }), ErrorKind::Authentication)]
    #[case(MyError::Driver(DriverError::StmtParamsMismatch { required: 1, supplied: 2 }), ErrorKind::InvalidInput)]
    #[case(MyError::Driver(DriverError::NestedTransaction), ErrorKind::Internal)]
    fn driver_errors(#[case] err: MyError, #[case] expected: ErrorKind) {
        assert_eq!(classify(err).kind(), expected);
    }

    #[test]
    fn connection_failures_name_the_address() {
        let refused = MyError::Io(IoError::Io(io::Error::from(
            io::ErrorKind::ConnectionRefused,
        )));
        let err = classify_connect(refused, "db:3306");
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert!(err.message().starts_with("cannot reach db:3306: "), "{err}");
        let denied = MyError::Server(ServerError {
            code: 1045,
            message: "denied".into(),
            state: "28000".into(),
        });
        assert!(
            !classify_connect(denied, "db:3306")
                .message()
                .contains("db:3306")
        );
    }

    #[test]
    fn tls_unsupported_is_recognised_and_explained() {
        let err = MyError::Driver(DriverError::NoClientSslFlagFromServer);
        assert!(is_tls_unsupported(&err));
        assert!(classify(err).message().contains("does not support TLS"));
        assert!(!is_tls_unsupported(&MyError::Driver(
            DriverError::ConnectionClosed
        )));
    }
}
