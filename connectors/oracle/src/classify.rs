//! Classifies Oracle failures into [`ErrorKind`]s by their `ORA-` (server,
//! network) or `DPI-` (ODPI-C, the client library) code, and keeps row data
//! out of messages. Pure: the client layer hands over the code and text.

use tributary_connector::{ConnectorError, ErrorKind};

/// What to install when Oracle Instant Client is missing (`DPI-1047`).
pub const INSTALL_MESSAGE: &str = "Oracle Instant Client is not installed or not on the library \
     path: install Oracle Instant Client (Basic or Basic Light, 19c or later) and libaio \
     (libaio1 / libaio1t64), then make libclntsh.so findable (ldconfig or LD_LIBRARY_PATH) \
     and restart tributary";

/// The code at the start of a message: `ORA-00001: …` → (`ORA`, 1).
pub fn message_code(message: &str) -> Option<(&str, i32)> {
    let message = message.trim_start();
    let (prefix, rest) = message.split_once('-')?;
    if !matches!(prefix, "ORA" | "DPI" | "TNS" | "OCI") {
        return None;
    }
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some((prefix, digits.parse().ok()?))
}

/// The kind of a server or network error, by its `ORA-` number.
pub fn kind_of_ora(code: i32) -> ErrorKind {
    match code {
        // Unique, NOT NULL (insert, update), check, foreign key (parent
        // missing, children exist).
        1 | 1400 | 1407 | 2290 | 2291 | 2292 => ErrorKind::Constraint,
        // Value too large for the column, invalid number, literal does not
        // match the format, precision exceeded, divide by zero, SQL syntax,
        // bind variables.
        12899 | 1722 | 1858 | 1861 | 1841 | 1843 | 1847 | 1438 | 1830 | 1839 | 1840 | 1850
        | 1851 | 1852 | 1853 | 1866 | 1873 | 1874 | 1875 | 1877 | 1878 | 1879 | 1401 | 1410
        | 1476 | 1481 | 1489 | 932 | 936 | 907 | 917 | 921 | 923 | 933 | 1756 | 1747 | 1745
        | 1008 | 1036 | 1006 => ErrorKind::InvalidInput,
        // Insufficient privileges.
        1031 => ErrorKind::PermissionDenied,
        // Table or view does not exist; invalid identifier (a column).
        942 | 904 | 4043 => ErrorKind::NotFound,
        // Invalid credentials, account locked, password expired, no CREATE SESSION.
        1017 | 1005 | 28000 | 28001 | 1045 | 1004 => ErrorKind::Authentication,
        // Deadlock, cannot serialize, resource busy (NOWAIT).
        60 | 8177 | 54 => ErrorKind::Conflict,
        // User requested cancel (a statement timeout or a broken execution),
        // statement timeout (call timeout).
        1013 | 3136 | 3156 => ErrorKind::Timeout,
        // No listener, unknown service, connect timeout, end of file on the
        // communication channel, not connected, host unreachable and the
        // other network failures; the database is starting, shut or shutting down.
        12541 | 12514 | 12170 | 3113 | 3114 | 3135 | 12543 | 12545 | 12537 | 12547 | 12505
        | 12528 | 12516 | 12518 | 12519 | 12520 | 12521 | 12526 | 12527 | 12500 | 12560 | 12535
        | 12154 | 12262 | 1033 | 1034 | 1089 | 1090 | 1092 | 28547 | 29002 | 29003 | 29024
        | 28759 | 28860 | 28862 | 28864 | 28865 => ErrorKind::Unavailable,
        // Feature not supported, this kind of DML returning not supported.
        3001 | 22816 => ErrorKind::Unsupported,
        _ => ErrorKind::Internal,
    }
}

/// The kind of an ODPI-C error, by its `DPI-` number.
fn kind_of_dpi(code: i32) -> ErrorKind {
    match code {
        // Cannot locate / load the Oracle Client library, or it is too old.
        1047 | 1072 | 1050 => ErrorKind::Unavailable,
        // Call timeout exceeded.
        1067 | 1080 => ErrorKind::Timeout,
        // Not connected (the session died).
        1010 => ErrorKind::Unavailable,
        // Wrong parameter count or conversion of a bound value.
        1009 | 1014 | 1043 | 1044 => ErrorKind::InvalidInput,
        _ => ErrorKind::Internal,
    }
}

/// The part of a server message that may reach the caller: its first line,
/// without the row values Oracle 23ai appends to constraint errors
/// ("… row with column values (NAME:'x') already exists"), which may hold
/// columns the caller's role cannot read.
pub fn safe_message(message: &str) -> String {
    let first = message.lines().next().unwrap_or_default().trim_end();
    let first = match first.find("row with column values") {
        Some(at) => first[..at].trim_end().trim_end_matches(':').trim_end(),
        None => first,
    };
    first.to_string()
}

/// Classifies a failure from its code (the driver's, 0 when it has none) and
/// message. `host` is the `host:port` the source connects to, named in
/// errors that say it cannot be reached.
pub fn classify(code: i32, message: &str, host: &str) -> ConnectorError {
    let parsed = message_code(message);
    let (kind, dpi) = match parsed {
        Some(("DPI", n)) => (kind_of_dpi(n), Some(n)),
        Some((_, n)) => (kind_of_ora(n), None),
        None if code > 0 => (kind_of_ora(code), None),
        None => (ErrorKind::Internal, None),
    };
    if dpi == Some(1047) || (dpi.is_some() && message.contains("libclntsh")) {
        return ConnectorError::unavailable(format!(
            "{INSTALL_MESSAGE} ({})",
            safe_message(message)
        ));
    }
    let text = safe_message(message);
    let text = if kind == ErrorKind::Unavailable && !text.contains(host) {
        format!("cannot reach Oracle at {host}: {text}")
    } else {
        text
    };
    ConnectorError::new(kind, text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(
        "ORA-00001: unique constraint (APP.ITEMS_NAME_UK) violated",
        ErrorKind::Constraint
    )]
    #[case(
        "ORA-02291: integrity constraint (APP.FK_ORDER) violated - parent key not found",
        ErrorKind::Constraint
    )]
    #[case(
        "ORA-02292: integrity constraint (APP.FK_ORDER) violated - child record found",
        ErrorKind::Constraint
    )]
    #[case(
        "ORA-01400: cannot insert NULL into (\"APP\".\"ITEMS\".\"NAME\")",
        ErrorKind::Constraint
    )]
    #[case(
        "ORA-02290: check constraint (APP.QTY_CK) violated",
        ErrorKind::Constraint
    )]
    #[case(
        "ORA-12899: value too large for column \"APP\".\"ITEMS\".\"NAME\" (actual: 90, maximum: 80)",
        ErrorKind::InvalidInput
    )]
    #[case("ORA-01722: invalid number", ErrorKind::InvalidInput)]
    #[case("ORA-01031: insufficient privileges", ErrorKind::PermissionDenied)]
    #[case(
        "ORA-01017: invalid username/password; logon denied",
        ErrorKind::Authentication
    )]
    #[case("ORA-28000: the account is locked", ErrorKind::Authentication)]
    #[case("ORA-12541: TNS:no listener", ErrorKind::Unavailable)]
    #[case(
        "ORA-12514: TNS:listener does not currently know of service requested in connect descriptor",
        ErrorKind::Unavailable
    )]
    #[case("ORA-12170: TNS:Connect timeout occurred", ErrorKind::Unavailable)]
    #[case(
        "ORA-03113: end-of-file on communication channel",
        ErrorKind::Unavailable
    )]
    #[case("ORA-03114: not connected to ORACLE", ErrorKind::Unavailable)]
    #[case("ORA-01034: ORACLE not available", ErrorKind::Unavailable)]
    #[case("ORA-00942: table or view does not exist", ErrorKind::NotFound)]
    #[case("ORA-00904: \"NAMEX\": invalid identifier", ErrorKind::NotFound)]
    #[case(
        "ORA-00060: deadlock detected while waiting for resource",
        ErrorKind::Conflict
    )]
    #[case(
        "ORA-08177: can't serialize access for this transaction",
        ErrorKind::Conflict
    )]
    #[case(
        "ORA-01013: user requested cancel of current operation",
        ErrorKind::Timeout
    )]
    #[case(
        "DPI-1067: call timeout of 30000 ms exceeded with ORA-3156",
        ErrorKind::Timeout
    )]
    #[case("ORA-00600: internal error code", ErrorKind::Internal)]
    #[case(
        "DPI-1047: Cannot locate a 64-bit Oracle Client library: \"libclntsh.so: cannot open shared object file: No such file or directory\"",
        ErrorKind::Unavailable
    )]
    fn ora_and_dpi_codes(#[case] message: &str, #[case] kind: ErrorKind) {
        let err = classify(0, message, "db.example:1521");
        assert_eq!(err.kind(), kind, "{message}");
    }

    #[test]
    fn the_driver_code_is_used_when_the_message_has_none() {
        assert_eq!(
            classify(1, "unique constraint violated", "h:1521").kind(),
            ErrorKind::Constraint
        );
        assert_eq!(
            classify(0, "something odd", "h:1521").kind(),
            ErrorKind::Internal
        );
    }

    #[test]
    fn a_missing_instant_client_says_what_to_install() {
        let err = classify(
            0,
            "DPI-1047: Cannot locate a 64-bit Oracle Client library: \"libclntsh.so: cannot open shared object file: No such file or directory\". See https://oracle.github.io/odpi/doc/installation.html#linux for help",
            "h:1521",
        );
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        for needle in ["Instant Client", "Basic Light", "libaio", "DPI-1047"] {
            assert!(err.message().contains(needle), "{needle}: {err}");
        }
    }

    #[test]
    fn unreachable_errors_name_the_host() {
        let err = classify(0, "ORA-12541: TNS:no listener", "db.example:1521");
        assert!(err.message().contains("db.example:1521"), "{err}");
        assert!(err.message().contains("ORA-12541"), "{err}");
        // 23ai already names it; it is not repeated.
        let err = classify(
            0,
            "ORA-12541: Cannot connect. No listener at host db.example port 1521.",
            "db.example",
        );
        assert_eq!(err.message().matches("db.example").count(), 1, "{err}");
    }

    #[test]
    fn row_values_never_reach_the_message() {
        let message = "ORA-00001: unique constraint (APP.USERS_UK) violated on table APP.USERS \
                       columns (EMAIL)\nORA-03301: (ORA-00001 details) row with column values \
                       (EMAIL:'secret@example.com') already exists\nHelp: https://docs.oracle.com/error-help/db/ora-00001/";
        let err = classify(0, message, "h:1521");
        assert_eq!(err.kind(), ErrorKind::Constraint);
        assert!(!err.message().contains("secret"), "{err}");
        assert!(err.message().contains("APP.USERS_UK"), "{err}");
        let one_line =
            "ORA-00001: unique constraint (A.B) violated row with column values (X:'hidden')";
        assert!(!safe_message(one_line).contains("hidden"));
    }

    #[test]
    fn codes_are_read_from_messages() {
        assert_eq!(message_code("ORA-00001: x"), Some(("ORA", 1)));
        assert_eq!(message_code("DPI-1047: x"), Some(("DPI", 1047)));
        assert_eq!(message_code("no code"), None);
    }
}
