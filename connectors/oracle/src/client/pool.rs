//! A small bounded pool of Oracle sessions. The driver is synchronous, so
//! connecting and every call run on `spawn_blocking`; the pool itself is
//! async (a semaphore of `pool.max_size` permits, waited for within
//! `pool.acquire_timeout_ms`).
//!
//! - Lazy: nothing is loaded or opened before the first request, so a server
//!   without Oracle Instant Client starts; the first request answers the
//!   install message (`DPI-1047`).
//! - Each new session gets the call timeout (`pool.statement_timeout_ms`,
//!   per round trip) and runs the session settings (`settings.rs`).
//! - A session goes back to the pool only when no blocking call still uses
//!   it and nothing marked it broken (a lost connection, an abandoned
//!   statement); otherwise it is closed on a blocking thread.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use oracle::Connection;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tributary_connector::{ConnectorError, ErrorKind, PoolStatus, Result, WaitTimeouts};

use crate::client::driver;
use crate::settings::{ConnectSettings, SESSION_SQL};

/// Sessions kept and handed out.
#[derive(Debug)]
pub struct SessionPool {
    settings: ConnectSettings,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    idle: Mutex<Vec<Arc<Connection>>>,
    permits: Arc<Semaphore>,
    max_size: usize,
    /// Sessions open now (idle or in use).
    open: AtomicUsize,
    waiting: AtomicUsize,
    wait_timeouts: WaitTimeouts,
}

impl Shared {
    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Connection>>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl SessionPool {
    pub fn new(settings: ConnectSettings) -> Self {
        let max_size = usize::try_from(settings.pool.max_size).unwrap_or(1).max(1);
        Self {
            settings,
            shared: Arc::new(Shared {
                idle: Mutex::new(Vec::new()),
                permits: Arc::new(Semaphore::new(max_size)),
                max_size,
                open: AtomicUsize::new(0),
                waiting: AtomicUsize::new(0),
                wait_timeouts: WaitTimeouts::default(),
            }),
        }
    }

    pub fn settings(&self) -> &ConnectSettings {
        &self.settings
    }

    /// A session: an idle one, or a new one within the connect timeout.
    pub async fn acquire(&self) -> Result<Session> {
        let limit = self.settings.pool.acquire_timeout();
        self.shared.waiting.fetch_add(1, Ordering::Relaxed);
        let permit =
            tokio::time::timeout(limit, Arc::clone(&self.shared.permits).acquire_owned()).await;
        self.shared.waiting.fetch_sub(1, Ordering::Relaxed);
        let permit = permit.map_err(|_| {
            ConnectorError::busy(format!(
                "waiting for a free Oracle session took longer than {} ms \
                 (pool.acquire_timeout_ms)",
                limit.as_millis()
            ))
        });
        let permit = self
            .shared
            .wait_timeouts
            .noted(permit)?
            .map_err(|_| ConnectorError::unavailable("the Oracle session pool is closed"))?;
        let reused = self.shared.idle().pop();
        let conn = match reused {
            Some(conn) => conn,
            None => self.connect().await?,
        };
        Ok(Session {
            conn: Some(conn),
            shared: Arc::clone(&self.shared),
            broken: false,
            _permit: permit,
        })
    }

    /// Opens and prepares a new session on a blocking thread.
    async fn connect(&self) -> Result<Arc<Connection>> {
        let settings = self.settings.clone();
        let password = settings.password()?;
        let address = settings.address();
        let limit = settings.pool.connect_timeout();
        let task = tokio::task::spawn_blocking(move || open(&settings, &password));
        // The connect string carries the same timeout; this one also covers
        // loading the client library and the session setup.
        let slack = std::time::Duration::from_secs(2);
        let conn = tokio::time::timeout(limit + slack, task)
            .await
            .map_err(|_| {
                ConnectorError::timeout(format!(
                    "connecting to Oracle at {address} took longer than {} ms \
                     (pool.connect_timeout_ms)",
                    limit.as_millis()
                ))
            })?
            .map_err(|e| ConnectorError::internal(format!("the connect task failed: {e}")))?
            .map_err(|e| {
                let err = driver::error(e, &address);
                match err.kind() {
                    // A session that cannot be made means the database
                    // cannot be reached, whatever the driver's code.
                    ErrorKind::Internal => ConnectorError::unavailable(format!(
                        "cannot connect to Oracle at {address}: {}",
                        err.message()
                    )),
                    _ => err,
                }
            })?;
        self.shared.open.fetch_add(1, Ordering::Relaxed);
        Ok(conn)
    }

    pub fn status(&self) -> PoolStatus {
        let idle = self.shared.idle().len();
        PoolStatus {
            max_size: self.shared.max_size,
            size: self.shared.open.load(Ordering::Relaxed),
            idle,
            waiting: self.shared.waiting.load(Ordering::Relaxed),
            wait_timeouts: self.shared.wait_timeouts.count(),
        }
    }
}

/// Connects and prepares one session (blocking).
fn open(settings: &ConnectSettings, password: &str) -> oracle::Result<Arc<Connection>> {
    let mut connector = oracle::Connector::new(&settings.user, password, settings.connect_string());
    connector.driver_name("tributary");
    let conn = connector.connect()?;
    conn.set_call_timeout(settings.statement_timeout())?;
    conn.execute(SESSION_SQL, &[])?;
    Ok(Arc::new(conn))
}

/// One session on loan from the pool.
#[derive(Debug)]
pub struct Session {
    conn: Option<Arc<Connection>>,
    shared: Arc<Shared>,
    broken: bool,
    _permit: OwnedSemaphorePermit,
}

impl Session {
    /// The connection, for a blocking call (only `Drop` takes it out).
    pub fn connection(&self) -> Result<Arc<Connection>> {
        self.conn
            .clone()
            .ok_or_else(|| ConnectorError::internal("the Oracle session is closed"))
    }

    /// Marks the session as not to be reused (its state is unknown).
    pub fn mark_broken(&mut self) {
        self.broken = true;
    }

    /// Runs `call` with the connection on a blocking thread. A failure that
    /// says the connection is gone marks the session broken.
    pub async fn run<T, F>(&mut self, call: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let conn = self.connection()?;
        let outcome = tokio::task::spawn_blocking(move || call(&conn))
            .await
            .map_err(|e| ConnectorError::internal(format!("an Oracle call failed: {e}")))?;
        if let Err(err) = &outcome
            && matches!(err.kind(), ErrorKind::Unavailable | ErrorKind::Timeout)
        {
            self.broken = true;
        }
        outcome
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        // A blocking call that outlived its caller still holds a reference.
        if !self.broken && Arc::strong_count(&conn) == 1 {
            self.shared.idle().push(conn);
            return;
        }
        self.shared.open.fetch_sub(1, Ordering::Relaxed);
        // Closing is a round trip: not on an async worker thread.
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn_blocking(move || drop(conn));
            }
            Err(_) => drop(conn),
        }
    }
}
