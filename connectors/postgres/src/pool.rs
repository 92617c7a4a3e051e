//! The connection pool: tokio-postgres connections with rustls TLS, managed
//! by deadpool with the source's bounds and timeouts.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::task::JoinHandle;
use tokio_postgres::config::SslMode;
use tokio_postgres::tls::{MakeTlsConnect, NoTls, TlsConnect};
use tokio_postgres::{Client, Config, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;
use tributary_connector::tls::client_config;
use tributary_connector::{ConnectorError, Result, Secret, SourceConfig, TlsMode};

use crate::flavor::Flavor;

/// The `options` startup parameter: per-session settings, which take
/// precedence over a database's or role's own. Statements are cancelled by
/// the server after `statement_timeout`; times are rendered in UTC and ISO
/// style wherever the server renders them as text; a backslash in a string
/// literal is a backslash (`standard_conforming_strings`: the pushed SQL
/// escapes a quote by doubling it, which a server set to read `\'` as an
/// escaped quote would let a value end its literal).
pub(crate) fn session_options(
    statement_timeout: Option<Duration>,
    settings: &BTreeMap<String, String>,
) -> String {
    let mut options =
        String::from("-c TimeZone=UTC -c DateStyle=ISO -c standard_conforming_strings=on");
    if let Some(timeout) = statement_timeout {
        options.push_str(&format!(
            " -c statement_timeout={}",
            timeout.as_millis().max(1)
        ));
    }
    // The source's own settings (names checked by PoolOptions::validate);
    // the server splits `options` at spaces a backslash does not escape.
    for (name, value) in settings {
        let value = value.replace('\\', "\\\\").replace(' ', "\\ ");
        options.push_str(&format!(" -c {name}={value}"));
    }
    options
}

/// The tokio-postgres config (without the password, resolved per connect);
/// the port defaults to the flavor's (5432 for PostgreSQL, 54321 for
/// KingbaseES).
pub(crate) fn pg_config(config: &SourceConfig) -> Result<Config> {
    let flavor = Flavor::from_kind(config.kind)?;
    let connection = &config.connection;
    if connection.url.is_some() {
        return Err(ConnectorError::config(
            "the source config must be normalized (URL folded into fields)",
        ));
    }
    let host = connection
        .host
        .as_deref()
        .ok_or_else(|| ConnectorError::config(format!("a {} source needs `host`", config.kind)))?;
    let user = connection.user.as_deref().unwrap_or("postgres");
    let mut pg = Config::new();
    pg.host(host)
        .port(connection.port.unwrap_or(flavor.default_port()))
        .user(user)
        .dbname(connection.database.as_deref().unwrap_or(user))
        .application_name("tributary")
        .connect_timeout(config.pool.connect_timeout())
        .keepalives(true)
        .options(session_options(
            config.pool.statement_timeout(),
            &config.pool.settings,
        ))
        .ssl_mode(match config.tls.mode {
            TlsMode::Off => SslMode::Disable,
            TlsMode::Prefer => SslMode::Prefer,
            TlsMode::Require | TlsMode::VerifyFull => SslMode::Require,
        });
    Ok(pg)
}

/// Builds the pool; no connection is opened until one is needed.
pub(crate) fn build_pool(config: &SourceConfig) -> Result<Pool> {
    let pg = pg_config(config)?;
    let password = config.connection.password.clone();
    // Resolve once now: a missing environment variable is a config error
    // at registration, and the value is the fallback should it vanish later.
    let resolved = password.as_ref().map(Secret::resolve).transpose()?;
    let manager_config = ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    };
    let manager = match client_config(&config.tls)? {
        None => Manager::from_connect(
            pg,
            PgConnect {
                tls: NoTls,
                password,
                resolved,
            },
            manager_config,
        ),
        Some(tls) => {
            let tls = MakeRustlsConnect::new((*tls).clone());
            Manager::from_connect(
                pg,
                PgConnect {
                    tls,
                    password,
                    resolved,
                },
                manager_config,
            )
        }
    };
    let max_size = usize::try_from(config.pool.max_size).unwrap_or(10);
    Pool::builder(manager)
        .max_size(max_size)
        .wait_timeout(Some(config.pool.acquire_timeout()))
        .create_timeout(Some(config.pool.connect_timeout()))
        .recycle_timeout(Some(config.pool.connect_timeout()))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| ConnectorError::config(format!("cannot build the connection pool: {e}")))
}

/// Opens connections, reading the password (possibly from the environment)
/// at each connect.
struct PgConnect<T> {
    tls: T,
    password: Option<Secret>,
    resolved: Option<String>,
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl<T> deadpool_postgres::Connect for PgConnect<T>
where
    T: MakeTlsConnect<Socket> + Clone + Sync + Send + 'static,
    T::Stream: Sync + Send,
    T::TlsConnect: Sync + Send,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    fn connect(
        &self,
        pg_config: &Config,
    ) -> BoxFuture<'_, Result<(Client, JoinHandle<()>), tokio_postgres::Error>> {
        let mut pg_config = pg_config.clone();
        let password = self
            .password
            .as_ref()
            .and_then(|p| p.resolve().ok())
            .or_else(|| self.resolved.clone());
        if let Some(password) = password {
            pg_config.password(password);
        }
        let tls = self.tls.clone();
        Box::pin(async move {
            let (client, connection) = pg_config.connect(tls).await?;
            let task = tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "PostgreSQL connection ended with an error");
                }
            });
            Ok((client, task))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_and_modes() {
        let none = BTreeMap::new();
        assert_eq!(
            session_options(Some(Duration::from_millis(1500)), &none),
            "-c TimeZone=UTC -c DateStyle=ISO -c standard_conforming_strings=on -c statement_timeout=1500"
        );
        assert_eq!(
            session_options(None, &none),
            "-c TimeZone=UTC -c DateStyle=ISO -c standard_conforming_strings=on"
        );
        let settings = BTreeMap::from([
            ("work_mem".to_string(), "64MB".to_string()),
            ("search_path".to_string(), r"a b,c\d".to_string()),
        ]);
        assert_eq!(
            session_options(None, &settings),
            r"-c TimeZone=UTC -c DateStyle=ISO -c standard_conforming_strings=on -c search_path=a\ b,c\\d -c work_mem=64MB"
        );
        let mut config =
            SourceConfig::from_url("s", "postgres://u:p@db:6543/app?sslmode=verify-full").unwrap();
        let pg = pg_config(&config).unwrap();
        assert_eq!(pg.get_ssl_mode(), SslMode::Require);
        assert_eq!(pg.get_ports(), &[6543]);
        assert_eq!(pg.get_dbname(), Some("app"));
        assert!(pg.get_password().is_none());
        config.tls.mode = TlsMode::Off;
        assert_eq!(pg_config(&config).unwrap().get_ssl_mode(), SslMode::Disable);
        config.tls.mode = TlsMode::Prefer;
        assert_eq!(pg_config(&config).unwrap().get_ssl_mode(), SslMode::Prefer);
        let mysql = SourceConfig::from_url("m", "mysql://u@h/db").unwrap();
        assert!(pg_config(&mysql).is_err());
    }

    #[test]
    fn default_ports_by_flavor() {
        let cases = [
            ("postgres://u:p@db/app", 5432),
            ("postgresql://u@db:6000/app", 6000),
            ("kingbase://system:pw@kb/test", 54321),
            ("kingbase://system:pw@kb:54321/test", 54321),
            ("kingbase://system:pw@kb:5433/test", 5433),
        ];
        for (url, port) in cases {
            let config = SourceConfig::from_url("s", url).unwrap();
            let pg = pg_config(&config).unwrap();
            assert_eq!(pg.get_ports(), &[port], "{url}");
            assert_eq!(pg.get_hosts().len(), 1, "{url}");
        }
        let kb = SourceConfig::from_url("kb", "kingbase://system:secret@kb:54321/test").unwrap();
        let pg = pg_config(&kb).unwrap();
        assert_eq!(pg.get_user(), Some("system"));
        assert_eq!(pg.get_dbname(), Some("test"));
        // The password is resolved at connect time, never stored in the config.
        assert!(pg.get_password().is_none());
        for url in ["mssql://sa@h/db", "oracle://u@h/db", "sqlite:///tmp/x.db"] {
            let config = SourceConfig::from_url("s", url).unwrap();
            let err = pg_config(&config).unwrap_err();
            assert_eq!(err.kind(), tributary_connector::ErrorKind::Config, "{url}");
        }
    }
}
