//! MySQL or MariaDB: telling the two apart from the server's version string,
//! and what the connector remembers about the server it last talked to.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use tributary_schema_cache::SourceKind;

/// Which server speaks the MySQL protocol on the other end. The two differ in
/// catalog details (JSON, column defaults, CHECK constraints), the statement
/// timeout variable and `RETURNING` support.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Oracle MySQL (8.0 and later are what the connector targets).
    MySql,
    /// MariaDB (10.5 and later for `RETURNING`; 10.2.7+ for expression defaults).
    MariaDb,
}

impl Flavor {
    /// Reads the flavor from a version string: MariaDB says so
    /// (`10.11.19-MariaDB-0+deb12u1`, or `5.5.5-10.11.19-MariaDB` in the
    /// handshake); anything else is MySQL (`8.4.3`, `9.7.4-2`).
    pub fn from_version(version: &str) -> Self {
        if version.to_ascii_lowercase().contains("mariadb") {
            Self::MariaDb
        } else {
            Self::MySql
        }
    }

    /// The source kind this flavor reports.
    pub fn kind(self) -> SourceKind {
        match self {
            Self::MySql => SourceKind::Mysql,
            Self::MariaDb => SourceKind::Mariadb,
        }
    }

    /// The session statement that limits how long one statement may run:
    /// MariaDB's `max_statement_time` (seconds, fractions allowed) applies to
    /// every statement; MySQL's `max_execution_time` (milliseconds) applies
    /// to read-only `SELECT`s only — MySQL has no server-side limit for
    /// writes, which are bounded by `innodb_lock_wait_timeout` instead.
    pub fn statement_timeout_assignment(self, timeout_ms: u64) -> String {
        match self {
            Self::MariaDb => {
                let seconds = timeout_ms / 1_000;
                let millis = timeout_ms % 1_000;
                format!("SESSION max_statement_time = {seconds}.{millis:03}")
            }
            Self::MySql => format!("SESSION max_execution_time = {timeout_ms}"),
        }
    }
}

/// `(major, minor, patch)` from a version string, without MariaDB's `5.5.5-`
/// compatibility prefix; `None` when the string does not start with a version.
pub fn parse_version(version: &str) -> Option<(u32, u32, u32)> {
    let text = version.strip_prefix("5.5.5-").unwrap_or(version);
    let numeric = text
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .next()?;
    let mut parts = numeric.split('.').map(str::parse::<u32>);
    let major = parts.next()?.ok()?;
    let minor = parts.next().and_then(Result::ok).unwrap_or(0);
    let patch = parts.next().and_then(Result::ok).unwrap_or(0);
    Some((major, minor, patch))
}

/// What the connector has learnt from its connections: the flavor of the
/// last server it connected to and whether that server has `RETURNING`. Shared with the pool's
/// after-connect hook, which updates it for every new connection.
#[derive(Debug, Default)]
pub struct ServerInfo {
    /// 0: not connected yet, 1: MySQL, 2: MariaDB.
    flavor: AtomicU8,
    /// MariaDB 10.5+: `INSERT … RETURNING` and `DELETE … RETURNING`.
    returning: AtomicBool,
}

impl ServerInfo {
    /// Records what a new connection reported.
    pub fn record(&self, version: &str) -> Flavor {
        let flavor = Flavor::from_version(version);
        self.flavor.store(
            match flavor {
                Flavor::MySql => 1,
                Flavor::MariaDb => 2,
            },
            Ordering::Relaxed,
        );
        let returning =
            flavor == Flavor::MariaDb && parse_version(version).is_some_and(|v| v >= (10, 5, 0));
        self.returning.store(returning, Ordering::Relaxed);
        flavor
    }

    /// The flavor of the last connection, `None` before the first one.
    pub fn flavor(&self) -> Option<Flavor> {
        match self.flavor.load(Ordering::Relaxed) {
            1 => Some(Flavor::MySql),
            2 => Some(Flavor::MariaDb),
            _ => None,
        }
    }

    /// True when the last server has `INSERT … RETURNING` and
    /// `DELETE … RETURNING` (MariaDB 10.5 and later).
    pub fn has_returning(&self) -> bool {
        self.returning.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("5.5.5-10.11.19-MariaDB", Flavor::MariaDb, Some((10, 11, 19)))]
    #[case("10.11.19-MariaDB-0+deb12u1", Flavor::MariaDb, Some((10, 11, 19)))]
    #[case("11.4.2-MariaDB-ubu2404-log", Flavor::MariaDb, Some((11, 4, 2)))]
    #[case("5.5.5-10.5.8-mariadb", Flavor::MariaDb, Some((10, 5, 8)))]
    #[case("8.0.36", Flavor::MySql, Some((8, 0, 36)))]
    #[case("8.4.3-commercial", Flavor::MySql, Some((8, 4, 3)))]
    #[case("9.7.4-2", Flavor::MySql, Some((9, 7, 4)))]
    #[case("5.7.44-log", Flavor::MySql, Some((5, 7, 44)))]
    #[case("garbage", Flavor::MySql, None)]
    fn versions(
        #[case] text: &str,
        #[case] flavor: Flavor,
        #[case] version: Option<(u32, u32, u32)>,
    ) {
        assert_eq!(Flavor::from_version(text), flavor);
        assert_eq!(parse_version(text), version);
    }

    #[rstest]
    #[case(Flavor::MariaDb, 30_000, "SESSION max_statement_time = 30.000")]
    #[case(Flavor::MariaDb, 1_250, "SESSION max_statement_time = 1.250")]
    #[case(Flavor::MySql, 1_250, "SESSION max_execution_time = 1250")]
    fn statement_timeouts(#[case] flavor: Flavor, #[case] ms: u64, #[case] expected: &str) {
        assert_eq!(flavor.statement_timeout_assignment(ms), expected);
    }

    #[test]
    fn server_info_remembers_the_last_connection() {
        let info = ServerInfo::default();
        assert_eq!(info.flavor(), None);
        assert_eq!(info.record("10.11.19-MariaDB"), Flavor::MariaDb);
        assert_eq!(info.flavor(), Some(Flavor::MariaDb));
        assert!(info.has_returning());
        info.record("5.5.5-10.4.32-MariaDB");
        assert!(!info.has_returning());
        assert_eq!(info.record("8.4.3"), Flavor::MySql);
        assert!(!info.has_returning());
        assert_eq!(info.flavor().map(Flavor::kind), Some(SourceKind::Mysql));
    }
}
