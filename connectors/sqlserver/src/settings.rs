//! From a source's config to a tiberius `Config`: address, database, SQL
//! authentication, TLS and timeouts (the SQL Server TLS spellings of a
//! URL, `encrypt` and `trust_server_certificate`, are read by core).
//!
//! * Port 1433 unless given; the database is the login's default when none
//!   is configured; the application name is `tributary`.
//! * TLS (`tls.mode`), in SQL Server's terms:
//!
//!   | `tls.mode`    | SQL Server                                   | certificate            |
//!   |---------------|----------------------------------------------|------------------------|
//!   | `off`         | `Encrypt=false`: only the login is encrypted  | not checked            |
//!   | `prefer`      | encrypt when the server can                   | not checked            |
//!   | `require`     | `Encrypt=true;TrustServerCertificate=true`    | not checked            |
//!   | `verify-full` | `Encrypt=true`                                | chain and host name, against the Mozilla roots core `tls.rs` uses, plus `tls.ca_file` when set |
//!
//!   `off` still encrypts the login packet (as every SQL Server client does
//!   with `Encrypt=false`): the password never crosses the network in the
//!   clear. tiberius adds `tls.ca_file` to the base roots rather than using
//!   it alone.
//! * `pool.connect_timeout_ms` bounds the TCP connect plus the TDS/TLS/login
//!   handshake; `pool.statement_timeout_ms` becomes tiberius' command timeout:
//!   the longest the server may stay silent during one statement (a statement
//!   over it fails with a `Timeout` error and its connection is closed).

use tiberius::{AuthMethod, Config, EncryptionLevel};
use tributary_connector::{ConnectorError, Result, SourceConfig, TlsMode};
use tributary_schema_cache::SourceKind;

/// SQL Server's port when the config names none.
pub const DEFAULT_PORT: u16 = 1433;

/// What the pool needs to open connections.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub host: String,
    pub port: u16,
    /// The config without the password (resolved at each connect).
    pub config: Config,
    pub user: Option<String>,
    pub password: Option<tributary_connector::Secret>,
}

impl Settings {
    /// `host:port`, for messages.
    pub fn endpoint(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The tiberius config with the password resolved now.
    pub fn connect_config(&self) -> Result<Config> {
        let mut config = self.config.clone();
        if let Some(user) = &self.user {
            let password = self
                .password
                .as_ref()
                .map(tributary_connector::Secret::resolve)
                .transpose()?
                .unwrap_or_default();
            config.authentication(AuthMethod::sql_server(user, password));
        }
        Ok(config)
    }
}

/// Builds the settings of a normalized SQL Server source config.
pub(crate) fn settings(source: &SourceConfig) -> Result<Settings> {
    if source.kind != SourceKind::Sqlserver {
        return Err(ConnectorError::config(format!(
            "the SQL Server connector cannot serve a {} source",
            source.kind
        )));
    }
    let connection = &source.connection;
    if connection.url.is_some() {
        return Err(ConnectorError::config(
            "the source config must be normalized (URL folded into fields)",
        ));
    }
    let host = connection
        .host
        .clone()
        .ok_or_else(|| ConnectorError::config("a sqlserver source needs `host` (or a URL)"))?;
    if connection.user.is_none() {
        return Err(ConnectorError::config(
            "a sqlserver source needs `user` and `password` (SQL Server authentication)",
        ));
    }
    // A missing password variable is a config error at registration.
    if let Some(password) = &connection.password {
        password.resolve()?;
    }
    let port = connection.port.unwrap_or(DEFAULT_PORT);
    let mut config = Config::new();
    config.host(&host);
    config.port(port);
    if let Some(database) = &connection.database {
        config.database(database);
    }
    config.application_name("tributary");
    config.handshake_timeout(Some(source.pool.connect_timeout()));
    config.command_timeout(source.pool.statement_timeout());
    match source.tls.mode {
        TlsMode::Off => {
            config.encryption(EncryptionLevel::Off);
            config.trust_cert();
        }
        TlsMode::Prefer => {
            config.encryption(EncryptionLevel::On);
            config.trust_cert();
        }
        TlsMode::Require => {
            config.encryption(EncryptionLevel::Required);
            config.trust_cert();
        }
        TlsMode::VerifyFull => {
            config.encryption(EncryptionLevel::Required);
            config.trust_webpki_roots();
            if let Some(ca_file) = &source.tls.ca_file {
                // Checked now (readable PEM), so a bad file is a config error.
                tributary_connector::tls::root_store(&source.tls)?;
                config.trust_cert_ca(ca_file.display());
            }
        }
    }
    Ok(Settings {
        host,
        port,
        config,
        user: connection.user.clone(),
        password: connection.password.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_connector::ErrorKind;

    #[test]
    fn urls_and_tls_modes() {
        let config = SourceConfig::from_url(
            "mssql",
            "sqlserver://sa:Passw0rd!@127.0.0.1/tributary_test?trust_server_certificate=true",
        )
        .unwrap();
        assert_eq!(config.tls.mode, TlsMode::Require);
        let s = settings(&config).unwrap();
        assert_eq!(s.endpoint(), "127.0.0.1:1433");
        assert_eq!(s.config.get_addr(), "127.0.0.1:1433");
        assert_eq!(s.user.as_deref(), Some("sa"));
        assert_eq!(s.password.as_ref().unwrap().resolve().unwrap(), "Passw0rd!");
        for (url, mode) in [
            ("mssql://u:p@h:1500/db?encrypt=false", TlsMode::Off),
            ("mssql://u:p@h/db?encrypt=true", TlsMode::VerifyFull),
            (
                "mssql://u:p@h/db?Encrypt=true&TrustServerCertificate=true",
                TlsMode::Require,
            ),
            ("mssql://u:p@h/db?sslmode=verify-full", TlsMode::VerifyFull),
            ("mssql://u:p@h/db", TlsMode::Prefer),
        ] {
            let config = SourceConfig::from_url("s", url).unwrap();
            assert_eq!(config.tls.mode, mode, "{url}");
            settings(&config).unwrap();
        }
        let config = SourceConfig::from_url("s", "mssql://u:p@h:1500/db").unwrap();
        assert_eq!(settings(&config).unwrap().endpoint(), "h:1500");
    }

    #[test]
    fn bad_configs_say_what_is_wrong() {
        let err = SourceConfig::from_url("s", "mssql://u:p@h/db?encrypt=maybe").unwrap_err();
        assert!(err.message().contains("encrypt"), "{err}");
        let err = SourceConfig::from_url("s", "mssql://u:p@h/db?packet_size=4096").unwrap_err();
        assert!(err.message().contains("packet_size"), "{err}");
        let no_user = SourceConfig::from_url("s", "mssql://h/db").unwrap();
        let err = settings(&no_user).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(err.message().contains("user"), "{err}");
        let pg = SourceConfig::from_url("s", "postgres://u@h/db").unwrap();
        assert_eq!(settings(&pg).unwrap_err().kind(), ErrorKind::Config);
        let mut bad_ca =
            SourceConfig::from_url("s", "mssql://u:p@h/db?sslmode=verify-full").unwrap();
        bad_ca.tls.ca_file = Some("/nonexistent/ca.pem".into());
        let err = settings(&bad_ca).unwrap_err();
        assert!(err.message().contains("/nonexistent/ca.pem"), "{err}");
    }
}
