//! Health and limits: ping, a missing file, the statement timeout, a read
//! given up (interrupted), the pool acquire timeout, a second writer, and TLS
//! options (ignored).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

mod common;

use std::time::{Duration, Instant};

use common::TestDb;
use futures::StreamExt;
use tributary_connector::{BATCH_ROWS, Connector, ErrorKind, SourceConfig, Statement, TlsMode};
use tributary_connector_sqlite::SqliteConnector;

const TABLE: &str = "CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT);";

/// Counts forever; only the statement timeout stops it.
const ENDLESS: &str =
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c";

#[tokio::test]
async fn ping_reports_the_version() {
    let db = TestDb::new(TABLE);
    let connector = db.connector();
    let info = connector.ping().await.expect("ping");
    assert!(
        info.server_version.starts_with("3."),
        "{}",
        info.server_version
    );
    assert!(info.latency_ms >= 0.0);
    assert_eq!(connector.pool_status().size, 1);
}

#[tokio::test]
async fn a_file_in_a_missing_directory_is_unavailable_and_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing-dir").join("demo.db");
    let config = SourceConfig::from_url("lite", &format!("sqlite://{}", path.display())).unwrap();
    let connector = SqliteConnector::new(&config).expect("construction does no I/O");
    let err = connector.ping().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert_eq!(err.source_name(), Some("lite"));
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    let err = connector.introspect().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(!path.exists() && !path.parent().unwrap().exists());

    // A missing file in an existing directory is not created either.
    let path = dir.path().join("absent.db");
    let config = SourceConfig::from_url("lite", &format!("sqlite://{}", path.display())).unwrap();
    let err = SqliteConnector::new(&config)
        .unwrap()
        .ping()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.message().contains("does not exist"), "{err}");
    assert!(!path.exists());
}

#[tokio::test]
async fn statement_timeout_interrupts_a_slow_query() {
    let db = TestDb::new(TABLE);
    let mut config = db.config();
    config.pool.statement_timeout_ms = 200;
    let connector = SqliteConnector::new(&config).unwrap();
    let started = Instant::now();
    let err = connector
        .query(&Statement::new(ENDLESS), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert_eq!(err.source_name(), Some("lite"));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // The connection is fine afterwards (its deadline was cleared).
    connector.ping().await.expect("ping after timeout");
    let batch = connector
        .query(&Statement::new("SELECT 1"), None)
        .await
        .unwrap()
        .collect_one()
        .await
        .unwrap();
    assert_eq!(batch.num_rows(), 1);
}

/// `SELECT 41 + 1` answers 42 — on the pool's only connection, which a
/// statement still running would hold past the acquire timeout.
async fn assert_serves(connector: &SqliteConnector) {
    let batch = connector
        .query(&Statement::new("SELECT 41 + 1"), None)
        .await
        .expect("the connection is free and usable")
        .collect_one()
        .await
        .unwrap();
    assert_eq!(
        tributary_connector::testkit::batch_to_strings(&batch),
        [[Some("42".to_string())]]
    );
}

#[tokio::test]
async fn a_read_given_up_interrupts_the_statement() {
    let db = TestDb::new(TABLE);
    let mut config = db.config();
    config.pool.max_size = 1;
    config.pool.acquire_timeout_ms = 10_000;
    // Only a fallback, so a regression fails this test instead of hanging it.
    config.pool.statement_timeout_ms = 60_000;
    let connector = SqliteConnector::new(&config).unwrap();

    // Before the first row: `count(*)` of an endless series answers nothing
    // until its end; the reader stops waiting for it.
    let waited = tokio::time::timeout(
        Duration::from_millis(300),
        connector.query(&Statement::new(ENDLESS), None),
    )
    .await;
    assert!(waited.is_err(), "the endless count answered");
    assert_serves(&connector).await;

    // After the first batch: two batches of rows, then the series goes on
    // without a row passing the filter.
    let stalling = Statement::new(format!(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) \
         SELECT x FROM c WHERE x <= {}",
        2 * BATCH_ROWS
    ));
    let mut stream = connector.query(&stalling, None).await.unwrap();
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(first.num_rows(), BATCH_ROWS);
    drop(stream);
    assert_serves(&connector).await;
    // The interrupted connection was reused, not replaced.
    assert_eq!(connector.pool_status().size, 1);
}

#[tokio::test]
async fn acquire_timeout_while_a_transaction_holds_the_only_connection() {
    let db = TestDb::new(TABLE);
    let mut config = db.config();
    config.pool.max_size = 1;
    config.pool.acquire_timeout_ms = 200;
    let connector = SqliteConnector::new(&config).unwrap();
    let tx = connector.begin().await.unwrap();
    let started = Instant::now();
    let err = connector
        .query(&Statement::new("SELECT 1"), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Busy, "{err}");
    assert_eq!(err.source_name(), Some("lite"));
    assert_eq!(connector.pool_status().wait_timeouts, 1);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(connector.pool_status().waiting, 0);
    drop(tx);
    connector
        .query(&Statement::new("SELECT 1"), None)
        .await
        .expect("free again after the tx");
}

#[tokio::test]
async fn a_second_writer_gets_a_conflict() {
    let db = TestDb::new(TABLE);
    let mut config = db.config();
    config.pool.acquire_timeout_ms = 200; // also the busy timeout
    let connector = SqliteConnector::new(&config).unwrap();
    let first = connector.begin().await.unwrap();
    let err = connector
        .begin()
        .await
        .err()
        .expect("the write lock is taken");
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    // Readers are not blocked by the writer (WAL).
    connector
        .query(&Statement::new("SELECT count(*) FROM t"), None)
        .await
        .expect("read during write");
    first.rollback().await.unwrap();
    connector
        .begin()
        .await
        .expect("free after rollback")
        .commit()
        .await
        .unwrap();
}

#[tokio::test]
async fn tls_options_are_ignored() {
    let db = TestDb::new(TABLE);
    for mode in [
        TlsMode::Off,
        TlsMode::Prefer,
        TlsMode::Require,
        TlsMode::VerifyFull,
    ] {
        let mut config = db.config();
        config.tls.mode = mode;
        SqliteConnector::new(&config)
            .unwrap()
            .ping()
            .await
            .expect("TLS does not apply to a file");
    }
}
