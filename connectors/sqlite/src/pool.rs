//! A small bounded pool of blocking rusqlite connections to one database file.
//!
//! Connections are opened lazily (read-write, never creating the file), with
//! foreign keys on, WAL journaling where the file allows it, a busy timeout
//! equal to the pool's acquire timeout, and a progress handler that interrupts
//! a statement past its deadline (the statement timeout). All work on a
//! connection runs on a blocking thread ([`run_blocking`]); a connection that
//! returns to the pool with an open transaction is rolled back first.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tributary_connector::{ConnectorError, PoolOptions, PoolStatus, Result, WaitTimeouts};

use crate::classify::classify;

/// How many SQLite VM instructions run between deadline checks.
const PROGRESS_INTERVAL: i32 = 1_000;

/// The bounded pool. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Pool {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    path: PathBuf,
    options: PoolOptions,
    permits: Arc<Semaphore>,
    idle: Mutex<Vec<Conn>>,
    open: AtomicUsize,
    waiting: AtomicUsize,
    wait_timeouts: WaitTimeouts,
}

impl Pool {
    /// A pool that opens nothing until the first [`Pool::acquire`].
    pub(crate) fn new(path: PathBuf, options: PoolOptions) -> Self {
        let max = usize::try_from(options.max_size).unwrap_or(1).max(1);
        Self {
            shared: Arc::new(Shared {
                path,
                options,
                permits: Arc::new(Semaphore::new(max)),
                idle: Mutex::new(Vec::new()),
                open: AtomicUsize::new(0),
                wait_timeouts: WaitTimeouts::default(),
                waiting: AtomicUsize::new(0),
            }),
        }
    }

    /// Waits (at most the acquire timeout) for a free connection, opening one
    /// if none is idle.
    pub(crate) async fn acquire(&self) -> Result<PooledConn> {
        let shared = &self.shared;
        let wait = shared.options.acquire_timeout();
        let permit = {
            let _waiting = WaitingGuard::enter(&shared.waiting);
            tokio::time::timeout(wait, shared.permits.clone().acquire_owned()).await
        };
        let permit = match permit {
            Ok(Ok(permit)) => permit,
            Ok(Err(_closed)) => return Err(ConnectorError::internal("the SQLite pool is closed")),
            Err(_elapsed) => {
                return shared.wait_timeouts.noted(Err(ConnectorError::busy(format!(
                    "no SQLite connection became free within {} ms (pool max_size {})",
                    wait.as_millis(),
                    shared.options.max_size
                ))));
            }
        };
        let reused = shared
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let conn = match reused {
            Some(conn) => conn,
            None => self.open().await?,
        };
        Ok(PooledConn {
            conn: Some(conn),
            shared: shared.clone(),
            _permit: permit,
        })
    }

    /// Opens a new connection on a blocking thread, bounded by the connect timeout.
    async fn open(&self) -> Result<Conn> {
        let shared = self.shared.clone();
        let limit = shared.options.connect_timeout();
        let task = tokio::task::spawn_blocking(move || Conn::open(&shared.path, &shared.options));
        let conn = match tokio::time::timeout(limit, task).await {
            Ok(Ok(opened)) => opened?,
            Ok(Err(join)) => {
                return Err(ConnectorError::internal(format!(
                    "opening the SQLite database failed: {join}"
                )));
            }
            Err(_elapsed) => {
                return Err(ConnectorError::timeout(format!(
                    "opening the SQLite database `{}` took longer than {} ms",
                    self.shared.path.display(),
                    limit.as_millis()
                )));
            }
        };
        self.shared.open.fetch_add(1, Ordering::SeqCst);
        Ok(conn)
    }

    pub(crate) fn status(&self) -> PoolStatus {
        let shared = &self.shared;
        PoolStatus {
            max_size: usize::try_from(shared.options.max_size).unwrap_or(usize::MAX),
            size: shared.open.load(Ordering::SeqCst),
            idle: shared
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .len(),
            waiting: shared.waiting.load(Ordering::SeqCst),
            wait_timeouts: shared.wait_timeouts.count(),
        }
    }
}

/// Counts a waiter for as long as it waits (also when its future is dropped).
struct WaitingGuard<'a>(&'a AtomicUsize);

impl<'a> WaitingGuard<'a> {
    fn enter(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Self(counter)
    }
}

impl Drop for WaitingGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One open connection and the deadline its progress handler enforces.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) db: Connection,
    deadline: Arc<Mutex<Option<Instant>>>,
    statement_timeout: Option<Duration>,
}

impl Conn {
    fn open(path: &Path, options: &PoolOptions) -> Result<Self> {
        check_file(path)?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let db = Connection::open_with_flags(path, flags).map_err(|e| unavailable(path, e))?;
        db.busy_timeout(options.acquire_timeout())
            .map_err(classify)?;
        // Reading the schema proves the file is a database (SQLITE_NOTADB otherwise).
        db.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))
            .map_err(|e| unavailable(path, e))?;
        db.execute_batch("PRAGMA foreign_keys = ON")
            .map_err(classify)?;
        // WAL lets readers and the writer work at once; a read-only file keeps its mode.
        let mode = db.query_row("PRAGMA journal_mode = WAL", [], |row| {
            row.get::<_, String>(0)
        });
        match mode {
            Ok(mode) if mode.eq_ignore_ascii_case("wal") => {}
            Ok(mode) => {
                tracing::debug!(path = %path.display(), %mode, "SQLite database stays in its journal mode")
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot switch SQLite database to WAL")
            }
        }
        let deadline = Arc::new(Mutex::new(None::<Instant>));
        let watched = deadline.clone();
        db.progress_handler(
            PROGRESS_INTERVAL,
            Some(move || {
                watched
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .is_some_and(|at| Instant::now() >= at)
            }),
        );
        Ok(Self {
            db,
            deadline,
            statement_timeout: options.statement_timeout(),
        })
    }

    /// Starts the statement timeout: work on this connection is interrupted
    /// (SQLITE_INTERRUPT) once it has run that long.
    pub(crate) fn arm_deadline(&self) {
        if let Some(limit) = self.statement_timeout {
            *self.deadline.lock().unwrap_or_else(PoisonError::into_inner) =
                Some(Instant::now() + limit);
        }
    }

    /// Moves the deadline later by `pause` (time spent waiting for the
    /// consumer of a stream does not count as statement time).
    pub(crate) fn extend_deadline(&self, pause: Duration) {
        if let Some(at) = self
            .deadline
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
        {
            *at += pause;
        }
    }

    pub(crate) fn disarm_deadline(&self) {
        *self.deadline.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// Runs `work` under the statement timeout.
    pub(crate) fn timed<T>(&self, work: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        self.arm_deadline();
        let result = work(&self.db);
        self.disarm_deadline();
        result
    }
}

/// Fails with a clear message unless `path` is an existing file (SQLite
/// would say only "unable to open database file").
fn check_file(path: &Path) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => Ok(()),
        Ok(_) => Err(ConnectorError::unavailable(format!(
            "the SQLite database path `{}` is not a file",
            path.display()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(ConnectorError::unavailable(format!(
                "the SQLite database file `{}` does not exist (sources never create one)",
                path.display()
            )))
        }
        Err(e) => Err(ConnectorError::unavailable(format!(
            "cannot open the SQLite database file `{}`: {e}",
            path.display()
        ))
        .with_cause(e)),
    }
}

/// An error opening the file, naming it.
fn unavailable(path: &Path, err: rusqlite::Error) -> ConnectorError {
    let classified = classify(err);
    let kind = match classified.kind() {
        tributary_connector::ErrorKind::Internal => tributary_connector::ErrorKind::Unavailable,
        other => other,
    };
    ConnectorError::new(
        kind,
        format!(
            "cannot open the SQLite database `{}`: {}",
            path.display(),
            classified.message()
        ),
    )
    .with_cause(classified)
}

/// A connection taken from the pool; it goes back when dropped (rolled back
/// first if a transaction is open, closed if that fails).
#[derive(Debug)]
pub(crate) struct PooledConn {
    /// Always `Some` until `drop` takes it.
    conn: Option<Conn>,
    shared: Arc<Shared>,
    _permit: OwnedSemaphorePermit,
}

impl std::ops::Deref for PooledConn {
    type Target = Conn;

    fn deref(&self) -> &Conn {
        match &self.conn {
            Some(conn) => conn,
            None => unreachable!("a pooled connection is only taken when it is dropped"),
        }
    }
}

impl Drop for PooledConn {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        conn.disarm_deadline();
        let clean = conn.db.is_autocommit() || {
            if let Err(e) = conn.db.execute_batch("ROLLBACK") {
                tracing::warn!(error = %e, "rolling back an abandoned SQLite transaction failed");
            }
            conn.db.is_autocommit()
        };
        if clean {
            self.shared
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(conn);
        } else {
            self.shared.open.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Runs `work` with the connection on a blocking thread and hands both back.
/// If the caller stops waiting, the connection is released (rolled back)
/// when `work` finishes.
pub(crate) async fn run_blocking<T, F>(conn: PooledConn, work: F) -> Result<(PooledConn, T)>
where
    T: Send + 'static,
    F: FnOnce(&PooledConn) -> T + Send + 'static,
{
    tokio::task::spawn_blocking(move || {
        let out = work(&conn);
        (conn, out)
    })
    .await
    .map_err(|e| ConnectorError::internal(format!("a SQLite worker thread failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(max_size: u32) -> PoolOptions {
        PoolOptions {
            max_size,
            acquire_timeout_ms: 100,
            ..PoolOptions::default()
        }
    }

    #[tokio::test]
    async fn bounded_lazy_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE t(a)")
            .unwrap();
        let pool = Pool::new(path, options(2));
        assert_eq!(pool.status().size, 0);
        let a = pool.acquire().await.unwrap();
        let b = pool.acquire().await.unwrap();
        let status = pool.status();
        assert_eq!((status.max_size, status.size, status.idle), (2, 2, 0));
        let err = pool.acquire().await.unwrap_err();
        assert_eq!(err.kind(), tributary_connector::ErrorKind::Busy);
        drop(a);
        assert_eq!(pool.status().idle, 1);
        let c = pool.acquire().await.unwrap();
        assert_eq!(pool.status().size, 2);
        drop((b, c));
        assert_eq!(pool.status().idle, 2);
    }

    #[tokio::test]
    async fn an_open_transaction_is_rolled_back_on_release() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE t(a)")
            .unwrap();
        let pool = Pool::new(path, options(1));
        let conn = pool.acquire().await.unwrap();
        conn.db
            .execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES (1);")
            .unwrap();
        drop(conn);
        let conn = pool.acquire().await.unwrap();
        assert!(conn.db.is_autocommit());
        let rows: i64 = conn
            .db
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 0);
    }

    #[tokio::test]
    async fn a_missing_file_is_never_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.db");
        let pool = Pool::new(path.clone(), options(1));
        let err = pool.acquire().await.unwrap_err();
        assert_eq!(err.kind(), tributary_connector::ErrorKind::Unavailable);
        assert!(err.message().contains("absent.db"), "{err}");
        assert!(!path.exists());
        assert_eq!(pool.status().size, 0);
    }

    #[tokio::test]
    async fn a_file_that_is_not_a_database_is_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junk.db");
        std::fs::write(&path, vec![b'x'; 4096]).unwrap();
        let err = Pool::new(path, options(1)).acquire().await.unwrap_err();
        assert_eq!(err.kind(), tributary_connector::ErrorKind::Unavailable);
        assert!(err.message().contains("junk.db"), "{err}");
    }
}
