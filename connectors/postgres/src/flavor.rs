//! Which server speaks the PostgreSQL protocol on the other end: PostgreSQL
//! itself or KingbaseES, chosen from the source's configured kind.
//!
//! # KingbaseES
//!
//! KingbaseES (人大金仓) speaks the PostgreSQL wire protocol, so reads, writes,
//! transactions, error classification and cancellation are the PostgreSQL
//! path. What differs:
//!
//! * **Catalog.** The system catalog lives in `sys_catalog` (`sys_class`,
//!   `sys_namespace`, `sys_attribute`, ...); V8R3 has no `pg_catalog` at all.
//!   The Kingbase flavor therefore never reads `pg_catalog`: tables, views,
//!   columns, types, defaults, nullability and constraints come from
//!   `information_schema`, and only comments, indexes and row estimates from
//!   `sys_catalog` (see `introspect_kingbase.rs`). The server version is
//!   `SELECT version()`.
//! * **System schemas.** `SYS*` schemas (`SYS`, `SYS_CATALOG`, `SYSAUDIT`,
//!   `SYSLOGICAL`, `SYSMAC`, `SYS_HM`, ..., in any case), `information_schema`
//!   and `pg_*` are left out unless an `include` pattern names one exactly.
//! * **Compatibility modes.** A KingbaseES database runs in PostgreSQL, Oracle
//!   or MySQL compatibility mode (V8R6: the `database_mode` chosen at
//!   `initdb`). In Oracle mode unquoted identifiers fold to **upper case** and
//!   `''` may be stored as NULL. The connector takes every name from the
//!   catalog as stored and always quotes it, so `"ORDERS"."ID"` and
//!   `"orders"."id"` both work; nothing is lower-cased. Clients writing SQL by
//!   hand must quote lower-case names in Oracle mode. An empty string written
//!   through the API may read back as NULL in Oracle mode.
//! * **User-defined types.** The driver resolves types it does not know by
//!   OID (enums, composites, extension types, Kingbase-specific types) with
//!   queries on `pg_catalog.pg_type`, which fail on a server without
//!   `pg_catalog`. The Kingbase flavor only decodes PostgreSQL's built-in
//!   types; columns of other types are introspected as text flagged
//!   `unsupported_type` and read as their text output (`::text`). When the
//!   driver's lookup fails anyway (the type only shows up once the statement
//!   is described), a read with an expected schema is retried with its text
//!   columns cast to `text`; otherwise the error says why and suggests the
//!   cast.

use tributary_connector::{ConnectorError, Result};
use tributary_schema_cache::SourceKind;

/// The server behind the PostgreSQL protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// PostgreSQL: introspection from `pg_catalog`.
    Postgres,
    /// KingbaseES: introspection from `information_schema` and `sys_catalog`.
    Kingbase,
}

impl Flavor {
    /// The flavor serving a configured source kind; other kinds are a config
    /// error.
    pub fn from_kind(kind: SourceKind) -> Result<Self> {
        match kind {
            SourceKind::Postgres => Ok(Self::Postgres),
            SourceKind::Kingbase => Ok(Self::Kingbase),
            other => Err(ConnectorError::config(format!(
                "the PostgreSQL connector cannot serve a {other} source"
            ))),
        }
    }

    /// The source kind this flavor reports.
    pub fn kind(self) -> SourceKind {
        match self {
            Self::Postgres => SourceKind::Postgres,
            Self::Kingbase => SourceKind::Kingbase,
        }
    }

    /// The port the server listens on unless configured otherwise.
    pub fn default_port(self) -> u16 {
        match self {
            Self::Postgres => 5432,
            Self::Kingbase => 54321,
        }
    }

    /// The product name, for messages.
    pub fn product(self) -> &'static str {
        match self {
            Self::Postgres => "PostgreSQL",
            Self::Kingbase => "KingbaseES",
        }
    }

    /// The statement that reads the server version.
    pub(crate) fn version_sql(self) -> &'static str {
        match self {
            Self::Postgres => "SELECT pg_catalog.current_setting('server_version')",
            // `version()` names the product and its build
            // (`KingbaseES V008R006C008B0014 on x86_64-pc-linux-gnu, ...`).
            Self::Kingbase => "SELECT version()",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_ports_and_versions() {
        let cases = [
            (SourceKind::Postgres, Flavor::Postgres, 5432, "pg_catalog"),
            (SourceKind::Kingbase, Flavor::Kingbase, 54321, "version()"),
        ];
        for (kind, flavor, port, version_sql) in cases {
            let chosen = Flavor::from_kind(kind).unwrap();
            assert_eq!(chosen, flavor);
            assert_eq!(chosen.kind(), kind);
            assert_eq!(chosen.default_port(), port);
            assert!(chosen.version_sql().contains(version_sql), "{kind}");
        }
        assert!(!Flavor::Kingbase.version_sql().contains("pg_"));
        for other in [
            SourceKind::Mysql,
            SourceKind::Mariadb,
            SourceKind::Sqlite,
            SourceKind::Sqlserver,
            SourceKind::Oracle,
        ] {
            let err = Flavor::from_kind(other).unwrap_err();
            assert_eq!(err.kind(), tributary_connector::ErrorKind::Config);
            assert!(err.message().contains(other.as_str()), "{err}");
        }
    }
}
