//! Connection settings from a [`SourceConfig`]: the Easy Connect string
//! (`//host:port/service_name`, or `tcps://…` for TLS), credentials and
//! timeouts, and the statement every new session runs. Pure: validated at
//! registration, used by the client layer when it connects.
//!
//! # Session settings
//!
//! Every new session runs [`SESSION_SQL`]:
//!
//! - `NLS_SORT=BINARY`, `NLS_COMP=BINARY`: string order and equality by
//!   code point. The SQL engine pushes filters, joins and ORDER BY down to
//!   the source and evaluates the rest itself in binary order; a linguistic
//!   sort or comparison on the Oracle side would make the same query answer
//!   differently depending on what was pushed down (and merge joins and
//!   sorted limits would return wrong rows).
//! - `TIME_ZONE='UTC'`: `TIMESTAMP WITH LOCAL TIME ZONE` values and
//!   `SYSTIMESTAMP` conversions are read in UTC, as the catalog types say.
//! - `NLS_DATE_FORMAT`, `NLS_TIMESTAMP_FORMAT`, `NLS_TIMESTAMP_TZ_FORMAT`:
//!   ISO renderings for any value converted to text in SQL (the engine's
//!   literals, fallbacks), independent of the client's locale.
//! - `NLS_NUMERIC_CHARACTERS='.,'`: exact decimals are bound as text and
//!   read back as text; the decimal point must be `.` whatever the locale.
//!
//! # TLS
//!
//! Oracle's network encryption and TLS are done by Instant Client itself
//! (not by rustls, which the rest of tributary uses). `tls.mode`:
//! `off` and `prefer` connect over plain TCP (`prefer` cannot fall back:
//! Oracle's TLS listener is a different endpoint, usually port 2484);
//! `require` connects with `tcps://` without matching the server's
//! certificate name; `verify-full` with `tcps://` and
//! `ssl_server_dn_match=on`. Instant Client trusts the certificates of the
//! Oracle wallet named in `sqlnet.ora` (`TNS_ADMIN`) or, from 23ai, the
//! system's; `tls.ca_file` (a PEM file) is not something it reads, so it is
//! refused with a message saying so.

use std::fmt;
use std::time::Duration;

use tributary_connector::{ConnectorError, PoolOptions, Result, Secret, SourceConfig, TlsMode};
use tributary_schema_cache::SourceKind;

/// Oracle's listener port when the config names none.
pub const DEFAULT_PORT: u16 = 1521;

/// The statement every new session runs (see the module docs for why).
pub const SESSION_SQL: &str = "ALTER SESSION SET \
     NLS_DATE_FORMAT = 'YYYY-MM-DD HH24:MI:SS' \
     NLS_TIMESTAMP_FORMAT = 'YYYY-MM-DD HH24:MI:SS.FF6' \
     NLS_TIMESTAMP_TZ_FORMAT = 'YYYY-MM-DD HH24:MI:SS.FF6 TZH:TZM' \
     NLS_SORT = BINARY NLS_COMP = BINARY TIME_ZONE = 'UTC' \
     NLS_NUMERIC_CHARACTERS = '.,'";

/// Everything the client layer needs to open sessions.
#[derive(Clone)]
pub struct ConnectSettings {
    pub source: String,
    pub host: String,
    pub port: u16,
    pub service: String,
    pub user: String,
    pub password: Option<Secret>,
    pub tls: TlsMode,
    pub pool: PoolOptions,
}

impl fmt::Debug for ConnectSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectSettings")
            .field("source", &self.source)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("service", &self.service)
            .field("user", &self.user)
            .field("password", &self.password)
            .field("tls", &self.tls)
            .field("pool", &self.pool)
            .finish()
    }
}

impl ConnectSettings {
    /// Checks an Oracle source's config; opens nothing.
    pub fn from_config(config: &SourceConfig) -> Result<Self> {
        if config.kind != SourceKind::Oracle {
            return Err(ConnectorError::config(format!(
                "the Oracle connector cannot serve a {} source",
                config.kind
            )));
        }
        let mut config = config.clone();
        config.normalize()?;
        let connection = &config.connection;
        let host = connection
            .host
            .clone()
            .ok_or_else(|| ConnectorError::config("an oracle source needs `host` (or a URL)"))?;
        let service = connection
            .database
            .clone()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                ConnectorError::config(
                    "an oracle source needs the service name: the URL path \
                     (oracle://user:password@host:1521/FREEPDB1) or `database`",
                )
            })?;
        let user = connection.user.clone().ok_or_else(|| {
            ConnectorError::config("an oracle source needs `user` (or a user in the URL)")
        })?;
        if let Some(ca_file) = &config.tls.ca_file {
            return Err(ConnectorError::config(format!(
                "tls.ca_file ({}) is not supported for Oracle: Instant Client trusts the \
                 certificates of an Oracle wallet (WALLET_LOCATION in sqlnet.ora, found through \
                 TNS_ADMIN), or from 23ai the system's; put the CA there and remove tls.ca_file",
                ca_file.display()
            )));
        }
        for (what, text) in [("host", &host), ("service name", &service)] {
            if text
                .chars()
                .any(|c| "()=?&/ \"'".contains(c) || c.is_control())
            {
                return Err(ConnectorError::config(format!(
                    "the {what} `{text}` has characters an Oracle connect string cannot hold"
                )));
            }
        }
        Ok(Self {
            source: config.name.clone(),
            host,
            port: connection.port.unwrap_or(DEFAULT_PORT),
            service,
            user,
            password: connection.password.clone(),
            tls: config.tls.mode,
            pool: config.pool.clone(),
        })
    }

    /// `host:port`, as errors name it.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The Easy Connect Plus string (Instant Client 19c+):
    /// `//host:port/service?connect_timeout=5`, or `tcps://…` with TLS.
    pub fn connect_string(&self) -> String {
        let timeout_secs = self.pool.connect_timeout().as_secs_f64().ceil().max(1.0);
        let (scheme, tls_params) = match self.tls {
            TlsMode::Off | TlsMode::Prefer => ("", ""),
            TlsMode::Require => ("tcps:", "&ssl_server_dn_match=off"),
            TlsMode::VerifyFull => ("tcps:", "&ssl_server_dn_match=on"),
        };
        format!(
            "{scheme}//{}/{}?connect_timeout={timeout_secs}{tls_params}",
            self.address(),
            self.service
        )
    }

    /// The password, read now (an environment variable may change).
    pub fn password(&self) -> Result<String> {
        self.password
            .as_ref()
            .map(Secret::resolve)
            .transpose()
            .map(Option::unwrap_or_default)
    }

    /// The per-call limit of every round trip (the driver's call timeout).
    pub fn statement_timeout(&self) -> Option<Duration> {
        self.pool.statement_timeout()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str) -> Result<ConnectSettings> {
        ConnectSettings::from_config(&SourceConfig::from_url("ora", url)?)
    }

    #[test]
    fn url_path_is_the_service_name_and_the_port_defaults() {
        let s = settings("oracle://app:p%40ss@db.example/FREEPDB1").unwrap();
        assert_eq!(s.port, 1521);
        assert_eq!(s.service, "FREEPDB1");
        assert_eq!(s.user, "app");
        assert_eq!(s.password().unwrap(), "p@ss");
        assert_eq!(
            s.connect_string(),
            "//db.example:1521/FREEPDB1?connect_timeout=5"
        );
        assert!(!format!("{s:?}").contains("p@ss"));
        let s = settings("oracle://app:pw@db.example:1600/ORCL").unwrap();
        assert_eq!(s.address(), "db.example:1600");
    }

    #[test]
    fn tls_modes_choose_tcps() {
        let s = settings("oracle://app:pw@db:2484/SVC?sslmode=require").unwrap();
        assert_eq!(
            s.connect_string(),
            "tcps://db:2484/SVC?connect_timeout=5&ssl_server_dn_match=off"
        );
        let s = settings("oracle://app:pw@db:2484/SVC?sslmode=verify-full").unwrap();
        assert!(s.connect_string().ends_with("ssl_server_dn_match=on"));
        let s = settings("oracle://app:pw@db/SVC?sslmode=disable").unwrap();
        assert!(s.connect_string().starts_with("//db:1521/SVC"));
        let err = settings("oracle://app:pw@db/SVC?sslmode=verify-full&sslrootcert=/tmp/ca.pem")
            .unwrap_err();
        assert!(err.message().contains("wallet"), "{err}");
    }

    #[test]
    fn missing_parts_are_config_errors() {
        let err = settings("oracle://app:pw@db.example:1521").unwrap_err();
        assert!(err.message().contains("service name"), "{err}");
        let err = settings("oracle://db.example/FREEPDB1").unwrap_err();
        assert!(err.message().contains("user"), "{err}");
        let err = settings("postgres://app@db/x").unwrap_err();
        assert!(err.message().contains("cannot serve"), "{err}");
        assert!(settings("oracle://app:pw@db/SVC)(HOST=evil").is_err());
    }

    #[test]
    fn session_settings_pin_binary_order_and_utc() {
        for part in [
            "NLS_SORT = BINARY",
            "NLS_COMP = BINARY",
            "TIME_ZONE = 'UTC'",
            "NLS_NUMERIC_CHARACTERS = '.,'",
            "NLS_DATE_FORMAT = 'YYYY-MM-DD HH24:MI:SS'",
            "NLS_TIMESTAMP_FORMAT = 'YYYY-MM-DD HH24:MI:SS.FF6'",
        ] {
            assert!(SESSION_SQL.contains(part), "{part}");
        }
    }
}
