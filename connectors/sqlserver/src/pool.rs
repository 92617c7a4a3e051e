//! The bounded pool of TDS connections (deadpool's managed pool): opened on
//! first use with the source's connect timeout, prepared with the session
//! settings below, checked when they come back after a long idle, and
//! discarded whenever their state is in doubt.
//!
//! Every new session runs [`SESSION_SETUP`]: the ANSI options SQL Server
//! requires for writes to tables with indexed views or indexed computed
//! columns, `XACT_ABORT ON` (an error inside a transaction rolls it back
//! whole, never half), `TEXTSIZE` at its maximum (the server's default cuts
//! `text`/`ntext` values at 4 KB), `DATEFORMAT ymd` (so a date bound as text
//! reads as ISO whatever the login's language), and English messages (their
//! row values are removed by `error.rs`, which reads them).

use std::time::Duration;

use deadpool::Runtime;
use deadpool::managed::{Metrics, Object, Pool, RecycleError, RecycleResult};
use tokio::net::TcpStream;
use tokio_util::compat::{Compat, TokioAsyncWriteCompatExt};
use tributary_connector::{ConnectorError, PoolOptions, PoolStatus, Result, WaitTimeouts};

use crate::error::{ConnectError, from_pool};
use crate::settings::Settings;

/// A TDS client over tokio's TCP stream.
pub(crate) type Client = tiberius::Client<Compat<TcpStream>>;

/// A pooled connection.
pub(crate) type PooledConn = Object<Manager>;

/// Runs on every new session (see the module docs).
pub(crate) const SESSION_SETUP: &str = "SET LANGUAGE us_english; \
SET ANSI_NULLS ON; SET ANSI_PADDING ON; SET ANSI_WARNINGS ON; SET ARITHABORT ON; \
SET CONCAT_NULL_YIELDS_NULL ON; SET QUOTED_IDENTIFIER ON; SET NUMERIC_ROUNDABORT OFF; \
SET IMPLICIT_TRANSACTIONS OFF; SET XACT_ABORT ON; SET TEXTSIZE 2147483647; SET DATEFORMAT ymd";

/// A connection idle longer than this is checked (`SELECT 1`) before reuse.
const CHECK_AFTER_IDLE: Duration = Duration::from_secs(30);

/// Opens and checks connections for the pool.
#[derive(Debug)]
pub(crate) struct Manager {
    settings: Settings,
    connect_timeout: Duration,
}

impl Manager {
    async fn connect(&self) -> Result<Client, ConnectError> {
        let config = self
            .settings
            .connect_config()
            .map_err(|e| ConnectError::Config(e.message().to_string()))?;
        let tcp = TcpStream::connect((self.settings.host.as_str(), self.settings.port)).await?;
        tcp.set_nodelay(true)?;
        let mut client = Client::connect(config, tcp.compat_write()).await?;
        client
            .simple_query(SESSION_SETUP)
            .await?
            .into_results()
            .await?;
        Ok(client)
    }
}

impl deadpool::managed::Manager for Manager {
    type Type = Client;
    type Error = ConnectError;

    async fn create(&self) -> Result<Client, ConnectError> {
        let limit = self.connect_timeout;
        tokio::time::timeout(limit, self.connect())
            .await
            .map_err(|_| ConnectError::Timeout(limit.as_millis()))?
    }

    async fn recycle(&self, client: &mut Client, metrics: &Metrics) -> RecycleResult<ConnectError> {
        if metrics.last_used() < CHECK_AFTER_IDLE {
            return Ok(());
        }
        match client.simple_query("SELECT 1").await {
            Ok(stream) => stream
                .into_results()
                .await
                .map(drop)
                .map_err(|e| RecycleError::Backend(e.into())),
            Err(e) => Err(RecycleError::Backend(e.into())),
        }
    }
}

/// The pool and where it connects to.
#[derive(Debug)]
pub(crate) struct ConnectionPool {
    pool: Pool<Manager>,
    endpoint: String,
    wait_timeouts: WaitTimeouts,
}

impl ConnectionPool {
    /// Builds the pool; opens nothing.
    pub fn new(settings: Settings, options: &PoolOptions) -> Result<Self> {
        let endpoint = settings.endpoint();
        let manager = Manager {
            settings,
            connect_timeout: options.connect_timeout(),
        };
        let pool = Pool::builder(manager)
            .max_size(usize::try_from(options.max_size).unwrap_or(10))
            .wait_timeout(Some(options.acquire_timeout()))
            // The manager bounds connecting itself (its error names the
            // endpoint); this is the outer guard.
            .create_timeout(Some(options.connect_timeout() + Duration::from_secs(1)))
            .recycle_timeout(Some(options.connect_timeout()))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| {
                ConnectorError::config(format!("cannot build the connection pool: {e}"))
            })?;
        Ok(Self {
            pool,
            endpoint,
            wait_timeouts: WaitTimeouts::default(),
        })
    }

    /// A connection, within the acquire (or connect) timeout.
    pub async fn acquire(&self) -> Result<PooledConn> {
        let acquired = self
            .pool
            .get()
            .await
            .map_err(|e| from_pool(e, &self.endpoint));
        self.wait_timeouts.noted(acquired)
    }

    /// `host:port`, for messages.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn status(&self) -> PoolStatus {
        let status = self.pool.status();
        PoolStatus {
            max_size: status.max_size,
            size: status.size,
            idle: status.available,
            waiting: status.waiting,
            wait_timeouts: self.wait_timeouts.count(),
        }
    }
}

/// Closes a connection instead of returning it to the pool (its state is
/// unknown: a statement abandoned mid-result, a failed rollback, an I/O
/// error). The server ends the session, and any open transaction, when the
/// connection closes.
pub(crate) fn discard(conn: PooledConn) {
    drop(Object::take(conn));
}
