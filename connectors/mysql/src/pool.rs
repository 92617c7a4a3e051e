//! The bounded `mysql_async` pool behind a connector: created on first use
//! (no I/O at construction; the password is read then), with TLS per mode,
//! per-connection session setup, and acquire / connect timeouts.
//!
//! - Sessions: every new connection runs `SELECT VERSION()` (recording the
//!   flavor) and one `SET NAMES utf8mb4, time_zone = '+00:00', sql_mode =
//!   … NO_BACKSLASH_ESCAPES, <statement timeout>` (standard string literals:
//!   quotes doubled, backslashes plain): MariaDB `max_statement_time`, MySQL `max_execution_time`
//!   (which MySQL applies to `SELECT` only). Connections are not reset when
//!   they return to the pool (a reset would drop these settings and the
//!   statement cache); a connection returned inside a transaction or with an
//!   unread result is rolled back / drained by the driver first.
//! - `CLIENT_FOUND_ROWS` is set, so an UPDATE reports the rows it matched,
//!   not only those it changed.
//! - TLS `prefer`: the first connection tries TLS; if the server does not
//!   offer TLS at all, the pool is built without TLS. That choice is made once
//!   per connector (restart or re-register the source after enabling TLS on
//!   the server). `require` encrypts without checking the certificate;
//!   `verify-full` checks chain and host name, against `tls.ca_file` when set
//!   (instead of the built-in web roots).
//! - Idle connections close after five minutes without use.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::future::BoxFuture;
use mysql_async::prelude::Queryable;
use mysql_async::{
    Conn, Error as MyError, Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts, SslOpts,
    Transaction, TxOpts,
};
use tokio::sync::OnceCell;
use tributary_connector::{
    ConnectorError, PoolOptions, PoolStatus, Result, Secret, SourceConfig, TlsMode, TlsOptions,
    WaitTimeouts,
};

use crate::classify::{classify_connect, is_tls_unsupported};
use crate::flavor::ServerInfo;

/// How long an idle connection stays open.
const IDLE_TTL: Duration = Duration::from_secs(300);

/// The MySQL port when the config names none.
const DEFAULT_PORT: u16 = 3306;

/// A lazily built, bounded connection pool.
pub struct ConnectionPool {
    host: String,
    port: u16,
    user: Option<String>,
    password: Option<Secret>,
    database: Option<String>,
    options: PoolOptions,
    tls: TlsOptions,
    server: Arc<ServerInfo>,
    pool: OnceCell<Pool>,
    wait_timeouts: WaitTimeouts,
}

impl std::fmt::Debug for ConnectionPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionPool")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("database", &self.database)
            .field("options", &self.options)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl ConnectionPool {
    /// Checks the connection settings; opens nothing.
    pub fn new(config: &SourceConfig, server: Arc<ServerInfo>) -> Result<Self> {
        let connection = &config.connection;
        let host = connection
            .host
            .clone()
            .ok_or_else(|| ConnectorError::config("a MySQL source needs `host` (or a URL)"))?;
        if config.tls.mode != TlsMode::Off {
            tributary_connector::tls::install_crypto_provider();
        }
        if let Some(ca_file) = &config.tls.ca_file
            && !ca_file.is_file()
        {
            return Err(ConnectorError::config(format!(
                "tls.ca_file {} is not a readable file",
                ca_file.display()
            )));
        }
        PoolConstraints::new(0, max_size(&config.pool))
            .ok_or_else(|| ConnectorError::config("pool.max_size must be at least 1"))?;
        Ok(Self {
            host,
            port: connection.port.unwrap_or(DEFAULT_PORT),
            user: connection.user.clone(),
            password: connection.password.clone(),
            database: connection.database.clone(),
            options: config.pool.clone(),
            tls: config.tls.clone(),
            server,
            pool: OnceCell::new(),
            wait_timeouts: WaitTimeouts::default(),
        })
    }

    /// A connection from the pool, within the acquire (or connect) timeout.
    pub async fn acquire(&self) -> Result<Conn> {
        let pool = self.pool().await?;
        self.within(pool, pool.get_conn())
            .await?
            .map_err(|e| self.connect_error(e))
    }

    /// A pooled connection inside `START TRANSACTION`. Dropping the
    /// transaction makes the driver roll it back before the connection is
    /// used again.
    pub async fn begin(&self) -> Result<Transaction<'static>> {
        let pool = self.pool().await?;
        self.within(pool, pool.start_transaction(TxOpts::default()))
            .await?
            .map_err(|e| self.connect_error(e))
    }

    fn connect_error(&self, err: MyError) -> ConnectorError {
        classify_connect(err, &format!("{}:{}", self.host, self.port))
    }

    /// The pool's usage now (all zero before the first connection).
    pub fn status(&self) -> PoolStatus {
        let max_size = max_size(&self.options);
        let Some(pool) = self.pool.get() else {
            return PoolStatus {
                max_size,
                wait_timeouts: self.wait_timeouts.count(),
                ..PoolStatus::default()
            };
        };
        let metrics = pool.metrics();
        PoolStatus {
            max_size,
            size: metrics.connection_count.load(Ordering::Relaxed),
            idle: metrics.connections_in_pool.load(Ordering::Relaxed),
            waiting: metrics.active_wait_requests.load(Ordering::Relaxed),
            wait_timeouts: self.wait_timeouts.count(),
        }
    }

    async fn pool(&self) -> Result<&Pool> {
        self.pool.get_or_try_init(|| self.build()).await
    }

    async fn build(&self) -> Result<Pool> {
        let insecure = || {
            SslOpts::default()
                .with_danger_accept_invalid_certs(true)
                .with_danger_skip_domain_validation(true)
        };
        match self.tls.mode {
            TlsMode::Off => Ok(Pool::new(self.opts(None)?)),
            TlsMode::Require => Ok(Pool::new(self.opts(Some(insecure()))?)),
            TlsMode::VerifyFull => {
                let mut ssl = SslOpts::default();
                if let Some(ca_file) = &self.tls.ca_file {
                    ssl = ssl
                        .with_root_certs(vec![ca_file.clone().into()])
                        .with_disable_built_in_roots(true);
                }
                Ok(Pool::new(self.opts(Some(ssl))?))
            }
            TlsMode::Prefer => {
                let with_tls = Pool::new(self.opts(Some(insecure()))?);
                match self.within(&with_tls, with_tls.get_conn()).await? {
                    Ok(conn) => {
                        drop(conn);
                        Ok(with_tls)
                    }
                    Err(err) if is_tls_unsupported(&err) => {
                        tracing::info!(
                            host = %self.host,
                            "the server offers no TLS; tls.mode prefer connects without it"
                        );
                        Ok(Pool::new(self.opts(None)?))
                    }
                    Err(err) => Err(self.connect_error(err)),
                }
            }
        }
    }

    fn opts(&self, ssl: Option<SslOpts>) -> Result<Opts> {
        let password = self.password.as_ref().map(Secret::resolve).transpose()?;
        let constraints = PoolConstraints::new(0, max_size(&self.options))
            .ok_or_else(|| ConnectorError::config("pool.max_size must be at least 1"))?;
        let pool_opts = PoolOpts::new()
            .with_constraints(constraints)
            .with_reset_connection(false)
            .with_inactive_connection_ttl(IDLE_TTL);
        let server = Arc::clone(&self.server);
        let statement_timeout_ms = self.options.statement_timeout_ms;
        let settings = Arc::new(settings_assignment(&self.options.settings));
        let builder = OptsBuilder::default()
            .ip_or_hostname(self.host.clone())
            .tcp_port(self.port)
            .user(self.user.clone())
            .pass(password)
            .db_name(self.database.clone())
            .prefer_socket(false)
            .client_found_rows(true)
            .pool_opts(pool_opts)
            .ssl_opts(ssl)
            .after_connect(
                move |conn: &mut Conn| -> BoxFuture<'_, mysql_async::Result<()>> {
                    Box::pin(prepare_session(
                        conn,
                        Arc::clone(&server),
                        statement_timeout_ms,
                        Arc::clone(&settings),
                    ))
                },
            );
        Ok(builder.into())
    }

    /// Runs a pool request within the acquire timeout — or the connect
    /// timeout when the request will have to open a new connection (no idle
    /// one, room for another). The outer error is the timeout.
    async fn within<T>(
        &self,
        pool: &Pool,
        request: impl Future<Output = mysql_async::Result<T>>,
    ) -> Result<Result<T, MyError>> {
        let metrics = pool.metrics();
        let idle = metrics.connections_in_pool.load(Ordering::Relaxed);
        let open = metrics.connection_count.load(Ordering::Relaxed);
        let connecting = idle == 0 && open < max_size(&self.options);
        let limit = if connecting {
            self.options.connect_timeout()
        } else {
            self.options.acquire_timeout()
        };
        let waited = tokio::time::timeout(limit, request).await.map_err(|_| {
            if connecting {
                ConnectorError::timeout(format!(
                    "connecting to {}:{} took longer than {} ms",
                    self.host,
                    self.port,
                    limit.as_millis()
                ))
            } else {
                ConnectorError::busy(format!(
                    "waiting for a free pooled connection took longer than {} ms \
                     (pool.acquire_timeout_ms)",
                    limit.as_millis()
                ))
            }
        });
        self.wait_timeouts.noted(waited)
    }
}

fn max_size(options: &PoolOptions) -> usize {
    usize::try_from(options.max_size).unwrap_or(usize::MAX)
}

/// `SET SESSION a = 1, SESSION b = 'text'` for a source's own settings
/// (names checked by `PoolOptions::validate`; a number goes unquoted, as
/// numeric variables refuse strings); `None` without settings. Sent after
/// the session's `NO_BACKSLASH_ESCAPES`, so a quote is escaped by doubling.
fn settings_assignment(settings: &BTreeMap<String, String>) -> Option<String> {
    if settings.is_empty() {
        return None;
    }
    let numeric = |value: &str| {
        let digits = value.strip_prefix('-').unwrap_or(value);
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, "0"));
        !whole.is_empty()
            && !fraction.is_empty()
            && whole
                .chars()
                .chain(fraction.chars())
                .all(|c| c.is_ascii_digit())
    };
    let assignments: Vec<String> = settings
        .iter()
        .map(|(name, value)| {
            if numeric(value) {
                format!("SESSION {name} = {value}")
            } else {
                format!("SESSION {name} = '{}'", value.replace('\'', "''"))
            }
        })
        .collect();
    Some(format!("SET {}", assignments.join(", ")))
}

/// Prepares a new session: records the server's flavor and version, then
/// sets the character set, UTC and the statement timeout for that flavor,
/// then the source's own settings.
async fn prepare_session(
    conn: &mut Conn,
    server: Arc<ServerInfo>,
    statement_timeout_ms: u64,
    settings: Arc<Option<String>>,
) -> mysql_async::Result<()> {
    let version: Option<String> = conn.query_first("SELECT VERSION()").await?;
    let flavor = server.record(version.as_deref().unwrap_or_default());
    // NO_BACKSLASH_ESCAPES: a backslash in a string literal is a character,
    // as in standard SQL. Literals the engine writes into federated SQL only
    // double their quotes; with MySQL's default escapes a value ending in a
    // backslash would end the literal early.
    let mut set = String::from(
        "SET NAMES utf8mb4, SESSION time_zone = '+00:00', \
         SESSION sql_mode = CONCAT(@@SESSION.sql_mode, ',NO_BACKSLASH_ESCAPES')",
    );
    if statement_timeout_ms > 0 {
        set.push_str(", ");
        set.push_str(&flavor.statement_timeout_assignment(statement_timeout_ms));
    }
    conn.query_drop(set).await?;
    match settings.as_deref() {
        Some(assignment) => conn.query_drop(assignment).await,
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_one_set_with_numbers_bare_and_quotes_doubled() {
        assert_eq!(settings_assignment(&BTreeMap::new()), None);
        let settings = BTreeMap::from([
            ("sort_buffer_size".to_string(), "262144".to_string()),
            ("lc_messages".to_string(), "it's".to_string()),
            ("long_query_time".to_string(), "1.5".to_string()),
            (
                "optimizer_switch".to_string(),
                "index_merge=off".to_string(),
            ),
        ]);
        assert_eq!(
            settings_assignment(&settings).as_deref(),
            Some(
                "SET SESSION lc_messages = 'it''s', SESSION long_query_time = 1.5, \
                 SESSION optimizer_switch = 'index_merge=off', SESSION sort_buffer_size = 262144"
            )
        );
    }
}
