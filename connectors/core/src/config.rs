//! How a source is registered: kind, connection (URL or fields), pool, TLS and
//! which schemas to introspect. Typed, with unknown keys rejected.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tributary_schema_cache::SourceKind;
use url::Url;

use crate::error::{ConnectorError, Result};

/// Everything needed to connect to and introspect one source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// The source's name: `[A-Za-z][A-Za-z0-9_-]*`, at most 63 characters.
    pub name: String,
    pub kind: SourceKind,
    /// Where the database is and who we are: a `url`, or separate fields.
    pub connection: ConnectionOptions,
    #[serde(default)]
    pub pool: PoolOptions,
    #[serde(default)]
    pub tls: TlsOptions,
    #[serde(default)]
    pub schemas: SchemaFilter,
}

impl SourceConfig {
    /// Builds a config from a connection URL (`postgres://`, `mysql://`,
    /// `mariadb://`, `sqlite://`): the kind comes from the scheme.
    pub fn from_url(name: &str, url: &str) -> Result<Self> {
        let kind = kind_of_url(url)?;
        let connection = ConnectionOptions {
            url: Some(url.to_string()),
            ..Default::default()
        };
        let mut config = Self {
            name: name.to_string(),
            kind,
            connection,
            pool: PoolOptions::default(),
            tls: TlsOptions::default(),
            schemas: SchemaFilter::default(),
        };
        config.normalize()?;
        Ok(config)
    }

    /// Checks the config and folds a URL into separate fields (fields given
    /// explicitly win over the URL's parts), so the stored config never holds
    /// a URL with an embedded password.
    pub fn normalize(&mut self) -> Result<()> {
        validate_source_name(&self.name)?;
        if let Some(url) = self.connection.url.take() {
            let url_kind = kind_of_url(&url)?;
            let compatible = url_kind == self.kind
                || matches!(
                    (url_kind, self.kind),
                    (SourceKind::Mysql, SourceKind::Mariadb)
                        | (SourceKind::Mariadb, SourceKind::Mysql)
                );
            if !compatible {
                return Err(ConnectorError::config(format!(
                    "the URL is for {url_kind} but the source kind is {}",
                    self.kind
                )));
            }
            let parsed = ConnectionOptions::parse_url(&url, &mut self.tls)?;
            self.connection = self.connection.clone().or(parsed);
        }
        match self.kind {
            SourceKind::Sqlite => {
                if self.connection.path.is_none() {
                    return Err(ConnectorError::config(
                        "a sqlite source needs `path` (or a sqlite:// URL)",
                    ));
                }
            }
            _ => {
                if self.connection.host.is_none() {
                    return Err(ConnectorError::config(format!(
                        "a {} source needs `host` (or a URL)",
                        self.kind
                    )));
                }
            }
        }
        self.pool.validate()?;
        if !self.pool.settings.is_empty()
            && !matches!(
                self.kind,
                SourceKind::Postgres
                    | SourceKind::Kingbase
                    | SourceKind::Mysql
                    | SourceKind::Mariadb
            )
        {
            return Err(ConnectorError::config(format!(
                "pool.settings is taken by PostgreSQL, KingbaseES, MySQL and MariaDB sources, not \
                 by a {} source",
                self.kind
            )));
        }
        Ok(())
    }

    /// A copy safe to show: the password replaced by a marker (or by the name
    /// of the environment variable it comes from).
    #[must_use]
    pub fn redacted(&self) -> Self {
        let mut copy = self.clone();
        if let Some(Secret::Plain(_)) = copy.connection.password {
            copy.connection.password = Some(Secret::Plain(Secret::REDACTED.to_string()));
        }
        copy
    }
}

fn kind_of_url(url: &str) -> Result<SourceKind> {
    let scheme = url.split_once("://").map(|(s, _)| s).ok_or_else(|| {
        ConnectorError::config(
            "the URL has no scheme (expected postgres://, mysql://, mariadb://, sqlserver://, oracle://, kingbase:// or sqlite://)",
        )
    })?;
    SourceKind::parse(scheme).ok_or_else(|| {
        ConnectorError::config(format!(
            "unsupported URL scheme `{scheme}` (expected postgres://, mysql://, mariadb://, sqlserver://, oracle://, kingbase:// or sqlite://)"
        ))
    })
}

/// Names the SQL engine uses itself (its default catalog and schema, and the
/// catalog schemas clients look for), so no source may take them.
pub const RESERVED_SOURCE_NAMES: [&str; 4] =
    ["datafusion", "public", "information_schema", "pg_catalog"];

/// Checks a source name: it becomes a SQL catalog name and an API name prefix.
pub fn validate_source_name(name: &str) -> Result<()> {
    if RESERVED_SOURCE_NAMES.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(ConnectorError::config(format!(
            "`{name}` is reserved; choose another source name"
        )));
    }
    let valid = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if valid {
        Ok(())
    } else {
        Err(ConnectorError::config(format!(
            "invalid source name `{name}`: use a letter followed by letters, digits, `_` or `-` (at most 63)"
        )))
    }
}

/// Where the database is and who we are. A `url` is accepted on input and
/// folded into the other fields by [`SourceConfig::normalize`].
#[derive(Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// The database file (SQLite).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
}

impl fmt::Debug for ConnectionOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionOptions")
            .field("url", &self.url.as_ref().map(|_| Secret::REDACTED))
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password", &self.password)
            .field("path", &self.path)
            .finish()
    }
}

impl ConnectionOptions {
    /// Fields of `self` win; missing ones come from `other`.
    fn or(self, other: Self) -> Self {
        Self {
            url: None,
            host: self.host.or(other.host),
            port: self.port.or(other.port),
            database: self.database.or(other.database),
            user: self.user.or(other.user),
            password: self.password.or(other.password),
            path: self.path.or(other.path),
        }
    }

    /// Parses a connection URL. `sslmode` / `ssl-mode` query parameters set
    /// the TLS mode.
    fn parse_url(text: &str, tls: &mut TlsOptions) -> Result<Self> {
        if let Some(rest) = text
            .strip_prefix("sqlite://")
            .or_else(|| text.strip_prefix("sqlite3://"))
        {
            let path = rest.split('?').next().unwrap_or_default();
            if path.is_empty() {
                return Err(ConnectorError::config("the sqlite URL has no file path"));
            }
            return Ok(Self {
                path: Some(PathBuf::from(path)),
                ..Default::default()
            });
        }
        let url =
            Url::parse(text).map_err(|e| ConnectorError::config(format!("invalid URL: {e}")))?;
        let decode = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .map(|h| h.trim_matches(['[', ']']).to_string());
        if host.is_none() {
            return Err(ConnectorError::config("the URL has no host"));
        }
        let user = Some(decode(url.username())).filter(|u| !u.is_empty());
        let password = url.password().map(|p| Secret::Plain(decode(p)));
        let database =
            Some(url.path().trim_start_matches('/').to_string()).filter(|d| !d.is_empty());
        let sqlserver = SourceKind::parse(url.scheme()) == Some(SourceKind::Sqlserver);
        // SQL Server's own spellings: `encrypt=false` is sslmode=off,
        // `trust_server_certificate=true` sslmode=require, `encrypt=true`
        // alone sslmode=verify-full.
        let (mut encrypt, mut trust) = (None, false);
        for (key, value) in url.query_pairs() {
            let flag = || match value.to_ascii_lowercase().as_str() {
                "true" | "yes" | "1" => Ok(true),
                "false" | "no" | "0" => Ok(false),
                other => Err(ConnectorError::config(format!(
                    "URL parameter `{key}` must be true or false, not `{other}`"
                ))),
            };
            // SQL Server's spellings in any case, with or without `_`.
            let spelled = key.to_ascii_lowercase().replace('_', "");
            match key.as_ref() {
                "sslmode" | "ssl-mode" | "ssl_mode" | "tls" => tls.mode = TlsMode::parse(&value)?,
                "sslrootcert" | "ssl-ca" => tls.ca_file = Some(PathBuf::from(value.as_ref())),
                _ if sqlserver && spelled == "encrypt" => encrypt = Some(flag()?),
                _ if sqlserver && spelled == "trustservercertificate" => trust = flag()?,
                other => {
                    let supported = if sqlserver {
                        "sslmode, sslrootcert, encrypt, trust_server_certificate"
                    } else {
                        "sslmode, sslrootcert"
                    };
                    return Err(ConnectorError::config(format!(
                        "unknown URL parameter `{other}` (supported: {supported})"
                    )));
                }
            }
        }
        match (encrypt, trust) {
            (Some(false), _) => tls.mode = TlsMode::Off,
            (_, true) => tls.mode = TlsMode::Require,
            (Some(true), false) => tls.mode = TlsMode::VerifyFull,
            (None, false) => {}
        }
        Ok(Self {
            url: None,
            host,
            port: url.port(),
            database,
            user,
            password,
            path: None,
        })
    }
}

/// A password given inline or read from an environment variable at connect time.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Secret {
    /// `{"env": "PG_PASSWORD"}`: read when connecting; never stored.
    Env { env: String },
    /// The password itself; stored in the metadata store (mode 0600), never shown.
    Plain(String),
}

impl Secret {
    /// What the admin API shows instead of a password.
    pub const REDACTED: &'static str = "[REDACTED]";

    /// The password's value.
    pub fn resolve(&self) -> Result<String> {
        match self {
            Self::Plain(p) => Ok(p.clone()),
            #[allow(clippy::disallowed_methods)] // secrets are read where they are used
            Self::Env { env } => std::env::var(env).map_err(|_| {
                ConnectorError::config(format!(
                    "the password environment variable `{env}` is not set"
                ))
            }),
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Env { env } => write!(f, "Env({env})"),
            Self::Plain(_) => f.write_str(Self::REDACTED),
        }
    }
}

/// Connection pool bounds and timeouts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoolOptions {
    /// Most connections open at once.
    pub max_size: u32,
    /// Most of them one caller (an API key, else a user, else a role) may
    /// use at once, the rest kept for the others; `None`: all of them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_per_caller: Option<u32>,
    /// How long a request waits for a free connection before a timeout error.
    pub acquire_timeout_ms: u64,
    /// How long opening one connection may take.
    pub connect_timeout_ms: u64,
    /// Longest a statement may run on the server (0 = no limit).
    pub statement_timeout_ms: u64,
    /// Session settings every connection starts with (PostgreSQL's `-c
    /// name=value`, MySQL's `SET SESSION name = value`), e.g. `{"work_mem":
    /// "64MB"}`. Those Tributary sets itself, because values are read and
    /// written by them, are refused ([`RESERVED_SETTINGS`]).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub settings: BTreeMap<String, String>,
}

/// Session settings a source's `pool.settings` may not hold: Tributary
/// sets them (time zone, date style, string escapes, encodings, SQL mode)
/// so that the values it reads and the literals it writes mean what they
/// should, or has a field of its own for them (the statement timeout).
pub const RESERVED_SETTINGS: &[&str] = &[
    "timezone",
    "time_zone",
    "datestyle",
    "intervalstyle",
    "standard_conforming_strings",
    "backslash_quote",
    "client_encoding",
    "bytea_output",
    "extra_float_digits",
    "statement_timeout",
    "max_execution_time",
    "max_statement_time",
    "sql_mode",
    "names",
    "character_set_client",
    "character_set_connection",
    "character_set_results",
    "collation_connection",
];

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_size: 10,
            max_per_caller: None,
            acquire_timeout_ms: 5_000,
            connect_timeout_ms: 5_000,
            statement_timeout_ms: 30_000,
            settings: BTreeMap::new(),
        }
    }
}

impl PoolOptions {
    /// Checks the bounds (size 1–1000, a caller's share 1–size, timeouts
    /// above zero).
    pub fn validate(&self) -> Result<()> {
        if self.max_size == 0 || self.max_size > 1_000 {
            return Err(ConnectorError::config(
                "pool.max_size must be between 1 and 1000",
            ));
        }
        if self
            .max_per_caller
            .is_some_and(|n| n == 0 || n > self.max_size)
        {
            return Err(ConnectorError::config(
                "pool.max_per_caller must be between 1 and pool.max_size",
            ));
        }
        if self.acquire_timeout_ms == 0 || self.connect_timeout_ms == 0 {
            return Err(ConnectorError::config(
                "pool timeouts must be greater than 0",
            ));
        }
        for (name, value) in &self.settings {
            let mut chars = name.chars();
            let named = name.len() <= 63
                && chars
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
            if !named {
                return Err(ConnectorError::config(format!(
                    "pool.settings: `{name}` is not a setting's name (letters, digits, `_` and `.`)"
                )));
            }
            if RESERVED_SETTINGS.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(ConnectorError::config(format!(
                    "pool.settings: `{name}` is set by Tributary itself, so that values are read \
                     and written as they should be (the statement timeout is \
                     pool.statement_timeout_ms)"
                )));
            }
            if value.len() > 1024 || value.chars().any(char::is_control) {
                return Err(ConnectorError::config(format!(
                    "pool.settings: the value of `{name}` must be at most 1024 characters, \
                     without control characters"
                )));
            }
        }
        Ok(())
    }

    pub fn acquire_timeout(&self) -> Duration {
        Duration::from_millis(self.acquire_timeout_ms)
    }
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
    /// `None` when statements may run without limit.
    pub fn statement_timeout(&self) -> Option<Duration> {
        (self.statement_timeout_ms > 0).then(|| Duration::from_millis(self.statement_timeout_ms))
    }
}

/// TLS towards the database (rustls).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TlsOptions {
    pub mode: TlsMode,
    /// A PEM file with the CA certificates to trust (instead of the built-in web roots).
    pub ca_file: Option<PathBuf>,
}

/// How TLS is used, with libpq's meanings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    /// Never.
    Off,
    /// TLS when the server offers it, without certificate checks; plain otherwise.
    #[default]
    Prefer,
    /// TLS always, without certificate checks (encryption only).
    Require,
    /// TLS always, certificate chain and host name verified.
    VerifyFull,
}

impl TlsMode {
    /// Parses libpq / MySQL spellings (`disable`, `prefer`, `require`, `verify-full`, `VERIFY_IDENTITY`).
    pub fn parse(text: &str) -> Result<Self> {
        match text.to_ascii_lowercase().replace('_', "-").as_str() {
            "off" | "disable" | "disabled" | "false" => Ok(Self::Off),
            "prefer" | "preferred" | "allow" => Ok(Self::Prefer),
            "require" | "required" | "true" => Ok(Self::Require),
            "verify-full" | "verify-identity" | "verify-ca" => Ok(Self::VerifyFull),
            other => Err(ConnectorError::config(format!(
                "unknown TLS mode `{other}` (off, prefer, require, verify-full)"
            ))),
        }
    }
}

/// Which schemas (databases, for MySQL) to introspect: glob patterns with `*`
/// and `?`. Empty `include` means every non-system schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct SchemaFilter {
    pub include: Vec<String>,
    pub exclude: Vec<String>,
}

impl SchemaFilter {
    /// True when `schema` is selected.
    pub fn matches(&self, schema: &str) -> bool {
        let included =
            self.include.is_empty() || self.include.iter().any(|p| glob_match(p, schema));
        included && !self.exclude.iter().any(|p| glob_match(p, schema))
    }
}

/// Glob match with `*` (any run) and `?` (any one character), case-sensitive.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("public", "public", true)]
    #[case("tenant_*", "tenant_42", true)]
    #[case("tenant_*", "tenant", false)]
    #[case("t?st", "test", true)]
    #[case("*", "", true)]
    #[case("a*b*c", "axxbyyc", true)]
    #[case("a*b*c", "axxbyy", false)]
    fn globs(#[case] pattern: &str, #[case] text: &str, #[case] expected: bool) {
        assert_eq!(glob_match(pattern, text), expected);
    }

    #[test]
    fn filter_include_then_exclude() {
        let filter = SchemaFilter {
            include: vec!["app*".into()],
            exclude: vec!["app_tmp".into()],
        };
        assert!(filter.matches("app"));
        assert!(filter.matches("app_main"));
        assert!(!filter.matches("app_tmp"));
        assert!(!filter.matches("public"));
        assert!(SchemaFilter::default().matches("anything"));
    }

    #[test]
    fn url_is_folded_into_fields_and_password_decoded() {
        let config = SourceConfig::from_url(
            "crm",
            "postgres://app:p%40ss@db.local:6432/crm?sslmode=require",
        )
        .unwrap();
        assert_eq!(config.kind, SourceKind::Postgres);
        let c = &config.connection;
        assert_eq!(c.url, None);
        assert_eq!(c.host.as_deref(), Some("db.local"));
        assert_eq!(c.port, Some(6432));
        assert_eq!(c.database.as_deref(), Some("crm"));
        assert_eq!(c.user.as_deref(), Some("app"));
        assert_eq!(c.password.as_ref().unwrap().resolve().unwrap(), "p@ss");
        assert_eq!(config.tls.mode, TlsMode::Require);
        let shown = serde_json::to_string(&config.redacted()).unwrap();
        assert!(!shown.contains("p@ss"), "{shown}");
        assert!(shown.contains("[REDACTED]"));
        assert!(!format!("{config:?}").contains("p@ss"));
    }

    #[rstest]
    #[case("mssql://u:p@h/db?trust_server_certificate=true", TlsMode::Require)]
    #[case(
        "sqlserver://u:p@h/db?Encrypt=true&TrustServerCertificate=true",
        TlsMode::Require
    )]
    #[case("sqlserver://u:p@h/db?encrypt=false", TlsMode::Off)]
    #[case("sqlserver://u:p@h/db?encrypt=true", TlsMode::VerifyFull)]
    #[case("sqlserver://u:p@h/db?sslmode=require", TlsMode::Require)]
    #[case("sqlserver://u:p@h/db", TlsMode::Prefer)]
    fn sqlserver_urls_take_its_tls_spellings(#[case] url: &str, #[case] mode: TlsMode) {
        assert_eq!(
            SourceConfig::from_url("s", url).unwrap().tls.mode,
            mode,
            "{url}"
        );
    }

    #[rstest]
    #[case("db2://x/y", "unsupported URL scheme `db2`")]
    #[case("postgres://h/db?encrypt=true", "unknown URL parameter `encrypt`")]
    #[case("mssql://h/db?encrypt=maybe", "must be true or false")]
    #[case("no-scheme", "no scheme")]
    #[case("postgres://", "no host")]
    #[case("postgres://h/db?foo=1", "unknown URL parameter `foo`")]
    #[case("mysql://h/db?sslmode=sometimes", "unknown TLS mode")]
    #[case("sqlite://", "no file path")]
    fn bad_urls_say_what_is_wrong(#[case] url: &str, #[case] expected: &str) {
        let err = SourceConfig::from_url("s", url).unwrap_err();
        assert!(err.to_string().contains(expected), "{err}");
    }

    /// A caller's share of the pool is at least one connection and at most
    /// all of them.
    #[test]
    fn a_callers_share_fits_in_the_pool() {
        let pool = |max_per_caller| PoolOptions {
            max_size: 8,
            max_per_caller,
            ..PoolOptions::default()
        };
        assert!(pool(None).validate().is_ok());
        assert!(pool(Some(1)).validate().is_ok());
        assert!(pool(Some(8)).validate().is_ok());
        for bad in [0, 9] {
            let error = pool(Some(bad)).validate().unwrap_err();
            assert!(error.to_string().contains("pool.max_per_caller"), "{error}");
        }
    }

    #[test]
    fn names_are_checked() {
        assert!(validate_source_name("shop_2-eu").is_ok());
        for bad in [
            "",
            "2shop",
            "shop.eu",
            "a b",
            &"x".repeat(64),
            "public",
            "DataFusion",
        ] {
            assert!(validate_source_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sqlite_and_mariadb_urls() {
        let config = SourceConfig::from_url("demo", "sqlite:///tmp/demo.db").unwrap();
        assert_eq!(
            config.connection.path.as_deref(),
            Some(std::path::Path::new("/tmp/demo.db"))
        );
        let config = SourceConfig::from_url("m", "mariadb://root@127.0.0.1:3306/test").unwrap();
        assert_eq!(config.kind, SourceKind::Mariadb);
        assert_eq!(config.connection.password, None);
    }

    #[test]
    fn env_secret_and_unknown_fields() {
        let config: SourceConfig = serde_json::from_value(serde_json::json!({
            "name": "crm", "kind": "postgres",
            "connection": {"host": "h", "password": {"env": "TRIBUTARY_TEST_UNSET_VAR"}}
        }))
        .unwrap();
        let err = config.connection.password.unwrap().resolve().unwrap_err();
        assert!(err.to_string().contains("TRIBUTARY_TEST_UNSET_VAR"));
        let err = serde_json::from_value::<SourceConfig>(serde_json::json!({
            "name": "crm", "kind": "postgres", "connection": {"host": "h", "hots": "x"}
        }))
        .unwrap_err();
        assert!(err.to_string().contains("hots"), "{err}");
    }
}
