//! Connecting: ping, flavor detection, classified connection errors, the
//! statement / acquire timeouts, TLS modes and pool status.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

mod common;

use std::time::{Duration, Instant};

use common::TestDb;
use tributary_connector::testkit;
use tributary_connector::{Connector, ErrorKind, Secret, SourceConfig, Statement, TlsMode};
use tributary_connector_mysql::MySqlConnector;
use tributary_schema_cache::SourceKind;

#[tokio::test]
async fn ping_reports_version_and_detects_the_flavor() {
    let db = TestDb::create("conn_ping", &[]).await;
    let connector = MySqlConnector::new(&db.config("ping")).unwrap();
    assert_eq!(
        connector.kind(),
        SourceKind::Mysql,
        "the configured kind before connecting"
    );
    assert_eq!(connector.pool_status().size, 0, "new() opens nothing");
    let info = connector.ping().await.unwrap();
    assert!(!info.server_version.is_empty());
    assert!(info.latency_ms >= 0.0);
    let expected = if db.mariadb {
        SourceKind::Mariadb
    } else {
        SourceKind::Mysql
    };
    assert_eq!(connector.kind(), expected, "{}", info.server_version);
    let status = connector.pool_status();
    assert_eq!(status.max_size, 10);
    assert!(status.size >= 1, "{status:?}");
    db.drop_db().await;
}

/// A pool that may open more connections than the account or the server
/// accepts gets advice with its ping, naming the tightest limit: the
/// account's `MAX_USER_CONNECTIONS`, or the server's `max_connections`. A
/// pool that fits gets none.
#[tokio::test]
async fn ping_advises_when_the_pool_can_outgrow_a_connection_limit() {
    let mut db = TestDb::create("conn_limit", &[]).await;
    let user = testkit::unique_name("limited");
    db.exec(&[
        &format!("CREATE USER '{user}'@'%' IDENTIFIED BY 'limited' WITH MAX_USER_CONNECTIONS 3"),
        &format!("GRANT SELECT ON `{}`.* TO '{user}'@'%'", db.name),
    ])
    .await;
    let as_user = |max_size: u32| {
        let mut config = db.config("limited");
        config.connection.user = Some(user.clone());
        config.connection.password = Some(Secret::Plain("limited".into()));
        config.pool.max_size = max_size;
        MySqlConnector::new(&config).unwrap()
    };

    let fits = as_user(2).ping().await.unwrap();
    assert_eq!(
        fits.advice,
        Vec::<String>::new(),
        "2 connections under a limit of 3"
    );
    let info = as_user(10).ping().await.unwrap();
    let wanted = format!(
        "pool.max_size is 10, but account {user}@%'s max_user_connections allows 3 connections"
    );
    assert_eq!(info.advice.len(), 1, "{:?}", info.advice);
    assert!(
        info.advice[0].starts_with(&wanted),
        "{}\nwanted: {wanted}",
        info.advice[0]
    );

    let mut config = db.config("big");
    config.pool.max_size = 1_000;
    let info = MySqlConnector::new(&config).unwrap().ping().await.unwrap();
    let server = if db.mariadb { "MariaDB" } else { "MySQL" };
    let wanted = format!("pool.max_size is 1000, but {server}'s max_connections allows");
    assert_eq!(info.advice.len(), 1, "{:?}", info.advice);
    assert!(info.advice[0].starts_with(&wanted), "{}", info.advice[0]);

    db.exec(&[&format!("DROP USER '{user}'@'%'")]).await;
    db.drop_db().await;
}

#[tokio::test]
async fn construction_does_no_io_and_validates() {
    let config = SourceConfig::from_url("lazy", "mysql://u:p@203.0.113.1:3306/db").unwrap();
    MySqlConnector::new(&config).expect("no connection is attempted at construction");
    let mut postgres = config.clone();
    postgres.kind = SourceKind::Postgres;
    let err = MySqlConnector::new(&postgres).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert_eq!(err.source_name(), Some("lazy"));
    let mut bad_ca = config;
    bad_ca.tls.mode = TlsMode::VerifyFull;
    bad_ca.tls.ca_file = Some("/nonexistent/ca.pem".into());
    let err = MySqlConnector::new(&bad_ca).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
}

#[tokio::test]
async fn wrong_password_is_an_authentication_error_naming_the_source() {
    let db = TestDb::create("conn_auth", &[]).await;
    let mut config = db.config("badpass");
    config.connection.password = Some(Secret::Plain("not-the-password".into()));
    let connector = MySqlConnector::new(&config).unwrap();
    let err = connector.ping().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Authentication, "{err}");
    assert_eq!(err.source_name(), Some("badpass"));
    assert!(err.to_string().contains("badpass"), "{err}");
    db.drop_db().await;
}

#[tokio::test]
async fn unreachable_port_is_unavailable_quickly() {
    let mut config = SourceConfig::from_url("down", "mysql://u:p@127.0.0.1:1/db").unwrap();
    config.pool.connect_timeout_ms = 2_000;
    let connector = MySqlConnector::new(&config).unwrap();
    let started = Instant::now();
    let err = connector.ping().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert_eq!(err.source_name(), Some("down"));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn long_statements_time_out() {
    let mut db = TestDb::create("conn_stmt_timeout", &[]).await;
    db.exec(&[
        "CREATE TABLE digits (d INT)",
        "INSERT INTO digits VALUES (0),(1),(2),(3),(4),(5),(6),(7),(8),(9)",
    ])
    .await;
    let mut config = db.config("slow");
    config.pool.statement_timeout_ms = 300;
    let connector = MySqlConnector::new(&config).unwrap();
    // 10^9 combinations: far longer than the timeout on either flavor.
    let statement = Statement::new(
        "SELECT SUM(a.d + b.d + c.d + d.d + e.d + f.d + g.d + h.d + i.d) FROM digits a, digits b, digits c, digits d, digits e, digits f, \
         digits g, digits h, digits i",
    );
    let started = Instant::now();
    let err = match connector.query(&statement, None).await {
        Ok(stream) => stream.collect_one().await.unwrap_err(),
        Err(err) => err,
    };
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert_eq!(err.source_name(), Some("slow"));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    db.drop_db().await;
}

#[tokio::test]
async fn waiting_for_the_only_connection_times_out() {
    let db = TestDb::create("conn_acquire", &[]).await;
    let mut config = db.config("tiny");
    config.pool.max_size = 1;
    config.pool.acquire_timeout_ms = 300;
    let connector = MySqlConnector::new(&config).unwrap();
    let tx = connector.begin().await.unwrap();
    let status = connector.pool_status();
    assert_eq!(
        (status.max_size, status.size, status.idle),
        (1, 1, 0),
        "{status:?}"
    );
    let started = Instant::now();
    let err = connector
        .query(&Statement::new("SELECT 1"), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Busy, "{err}");
    assert_eq!(err.source_name(), Some("tiny"));
    assert_eq!(connector.pool_status().wait_timeouts, 1);
    assert!(err.message().contains("free pooled connection"), "{err}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    drop(tx);
    // Once the transaction is gone (rolled back), the connection serves again.
    let batch = connector
        .query(&Statement::new("SELECT 1 AS one"), None)
        .await
        .unwrap();
    assert_eq!(batch.collect_one().await.unwrap().num_rows(), 1);
    db.drop_db().await;
}

#[tokio::test]
async fn tls_prefer_falls_back_and_require_fails_clearly_without_server_tls() {
    let db = TestDb::create("conn_tls", &[]).await;
    let mut prefer = db.config("prefer");
    prefer.tls.mode = TlsMode::Prefer;
    let connector = MySqlConnector::new(&prefer).unwrap();
    let mut require = db.config("require");
    require.tls.mode = TlsMode::Require;
    let required = MySqlConnector::new(&require).unwrap();
    if server_offers_tls(&connector).await {
        // A server with TLS: both modes connect (encrypted).
        required.ping().await.unwrap();
    } else {
        connector
            .ping()
            .await
            .expect("prefer connects without TLS when the server has none");
        let err = required.ping().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "{err}");
        assert!(err.to_string().contains("does not support TLS"), "{err}");
        assert_eq!(err.source_name(), Some("require"));
    }
    db.drop_db().await;
}

/// Whether the server encrypts a `prefer` connection (`Ssl_cipher` is set).
async fn server_offers_tls(connector: &MySqlConnector) -> bool {
    let stream = connector
        .query(
            &Statement::new("SHOW SESSION STATUS LIKE 'Ssl_cipher'"),
            None,
        )
        .await
        .unwrap();
    let rows = testkit::batch_to_strings(&stream.collect_one().await.unwrap());
    rows.first()
        .and_then(|r| r[1].clone())
        .is_some_and(|cipher| !cipher.is_empty())
}
