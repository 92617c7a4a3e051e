//! Streaming in batches, the pool's bounds and timeouts, statement
//! timeouts, TLS modes, and the classification of failures.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

mod common;

use std::time::{Duration, Instant};

use arrow_array::cast::AsArray;
use arrow_array::types::Int32Type;
use common::TestSchema;
use futures::StreamExt;
use tributary_connector::testkit::{batch_to_strings, postgres_url};
use tributary_connector::{
    BATCH_ROWS, Connector, ErrorKind, Insert, Secret, SourceConfig, Statement, TlsMode, Value,
    WriteOp, WriteTarget,
};
use tributary_connector_postgres::PostgresConnector;

fn connector_with(
    schema: &TestSchema,
    change: impl FnOnce(&mut SourceConfig),
) -> PostgresConnector {
    let mut config = schema.config();
    change(&mut config);
    PostgresConnector::new(&config).expect("connector")
}

#[tokio::test]
async fn rows_stream_in_batches() {
    let schema = TestSchema::new("").await;
    let connector = schema.connector();
    let total = 2 * BATCH_ROWS + 100;
    let mut stream = connector
        .query(
            &Statement::with_params(
                "SELECT g::int4 FROM generate_series(1, $1) g",
                vec![Value::Int(total as i64)],
            ),
            None,
        )
        .await
        .unwrap();
    let mut sizes = Vec::new();
    let mut sum = 0i64;
    while let Some(batch) = stream.next().await {
        let batch = batch.unwrap();
        sizes.push(batch.num_rows());
        sum += batch
            .column(0)
            .as_primitive::<Int32Type>()
            .values()
            .iter()
            .map(|v| i64::from(*v))
            .sum::<i64>();
    }
    assert_eq!(sizes, vec![BATCH_ROWS, BATCH_ROWS, 100]);
    assert_eq!(sum, (total * (total + 1) / 2) as i64);

    // No rows: no batch, the schema is still known.
    let stream = connector
        .query(&Statement::new("SELECT 1 AS one WHERE false"), None)
        .await
        .unwrap();
    assert_eq!(stream.schema().field(0).name(), "one");
    assert!(stream.collect_batches().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_stream_dropped_early_does_not_block_the_pool() {
    let schema = TestSchema::new("").await;
    let connector = connector_with(&schema, |c| {
        c.pool.max_size = 1;
        c.pool.acquire_timeout_ms = 2_000;
    });
    let mut stream = connector
        .query(
            &Statement::new("SELECT g, repeat('x', 100) FROM generate_series(1, 5000000) g"),
            None,
        )
        .await
        .unwrap();
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(first.num_rows(), BATCH_ROWS);
    drop(stream);
    let started = Instant::now();
    let batch = connector
        .query(&Statement::new("SELECT 42"), None)
        .await
        .unwrap()
        .collect_one()
        .await
        .unwrap();
    assert_eq!(batch_to_strings(&batch), vec![vec![Some("42".into())]]);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(connector.pool_status().max_size, 1);
}

/// A reader may give up at any moment: while the connection is made, while
/// the statement is prepared, just after it was sent (when the server may
/// not have read it yet and ignores a cancel), or while it runs. Whenever
/// it does, the statement must not go on running on the server.
#[tokio::test]
async fn a_read_given_up_at_any_moment_does_not_go_on_running() {
    let schema = TestSchema::new("").await;
    let connector = schema.connector();
    let tag = format!("given_up_{}", schema.name);
    for round in 0..40u64 {
        let sql = format!("SELECT pg_sleep(60) AS {tag}_{round}");
        let give_up = Duration::from_micros(round * 500);
        let statement = Statement::new(sql);
        let read = connector.query(&statement, None);
        assert!(
            tokio::time::timeout(give_up, read).await.is_err(),
            "the sleep ended within {give_up:?}"
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let running: i64 = schema
                .client
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE query LIKE $1 AND state <> 'idle'",
                    &[&format!("%AS {tag}_{round}")],
                )
                .await
                .unwrap()
                .get(0);
            if running == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: the statement given up after {give_up:?} still runs"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test]
async fn statement_timeout_is_a_timeout() {
    let schema = TestSchema::new("").await;
    let connector = connector_with(&schema, |c| c.pool.statement_timeout_ms = 200);
    let started = Instant::now();
    let result = match connector
        .query(&Statement::new("SELECT pg_sleep(5)"), None)
        .await
    {
        Ok(stream) => stream.collect_batches().await.map(|_| ()),
        Err(e) => Err(e),
    };
    let err = result.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(started.elapsed() < Duration::from_secs(4));
    // The connection is fine afterwards.
    let batch = connector
        .query(&Statement::new("SHOW statement_timeout"), None)
        .await
        .unwrap()
        .collect_one()
        .await
        .unwrap();
    assert_eq!(batch_to_strings(&batch), vec![vec![Some("200ms".into())]]);
}

#[tokio::test]
async fn waiting_for_a_busy_pool_times_out() {
    let schema = TestSchema::new("").await;
    let connector = connector_with(&schema, |c| {
        c.pool.max_size = 1;
        c.pool.acquire_timeout_ms = 200;
    });
    let tx = connector.begin().await.unwrap();
    let status = connector.pool_status();
    assert_eq!((status.max_size, status.size, status.idle), (1, 1, 0));
    let err = connector
        .query(&Statement::new("SELECT 1"), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Busy, "{err}");
    assert_eq!(err.source_name(), Some("pg"));
    assert_eq!(connector.pool_status().wait_timeouts, 1);
    tx.rollback().await.unwrap();
    common::select_one(&connector).await;
    assert_eq!(connector.pool_status().idle, 1);
}

#[tokio::test]
async fn unreachable_and_refused_connections() {
    // Nothing listens on port 1.
    let mut config = SourceConfig::from_url(
        "down",
        "postgres://tributary:tributary@127.0.0.1:1/tributary_test",
    )
    .unwrap();
    config.pool.connect_timeout_ms = 2_000;
    let connector = PostgresConnector::new(&config).expect("building the pool does not connect");
    let err = connector.ping().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert_eq!(err.source_name(), Some("down"));

    // A role that does not exist: 28000 under `trust` (as on the test
    // machines' loopback), 28P01 under password authentication.
    let mut config = SourceConfig::from_url("pg", &postgres_url()).unwrap();
    config.connection.user = Some("tributary_no_such_role".into());
    config.connection.password = Some(Secret::Plain("wrong".into()));
    let err = PostgresConnector::new(&config)
        .unwrap()
        .ping()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Authentication, "{err}");

    let mut config = SourceConfig::from_url("pg", &postgres_url()).unwrap();
    config.connection.database = Some("tributary_no_such_db".into());
    let err = PostgresConnector::new(&config)
        .unwrap()
        .ping()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");

    let mut config = SourceConfig::from_url("pg", &postgres_url()).unwrap();
    config.connection.password = Some(Secret::Env {
        env: "TRIBUTARY_TEST_SURELY_UNSET".into(),
    });
    let err = PostgresConnector::new(&config).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
}

#[tokio::test]
async fn ping_reports_version_and_latency() {
    let schema = TestSchema::new("").await;
    let info = schema.connector().ping().await.unwrap();
    assert!(
        info.server_version
            .starts_with(|c: char| c.is_ascii_digit()),
        "{}",
        info.server_version
    );
    assert!(info.latency_ms >= 0.0 && info.latency_ms < 5_000.0);
}

/// A pool that may open more connections than PostgreSQL accepts gets
/// advice with its ping, naming the tightest limit: a role's `CONNECTION
/// LIMIT`, or the server's `max_connections`. A pool that fits gets none.
#[tokio::test]
async fn ping_advises_when_the_pool_can_outgrow_a_connection_limit() {
    let schema = TestSchema::new("").await;
    let role = tributary_connector::testkit::unique_name("pglimited");
    schema
        .client
        .batch_execute(&format!(
            "CREATE ROLE \"{role}\" LOGIN PASSWORD 'limited' CONNECTION LIMIT 3"
        ))
        .await
        .unwrap();
    let as_role = |max_size: u32| {
        let mut config = schema.config();
        config.connection.user = Some(role.clone());
        config.connection.password = Some(Secret::Plain("limited".into()));
        config.pool.max_size = max_size;
        PostgresConnector::new(&config).unwrap()
    };

    let fits = as_role(2).ping().await.unwrap();
    assert_eq!(
        fits.advice,
        Vec::<String>::new(),
        "2 connections under a limit of 3"
    );
    let info = as_role(10).ping().await.unwrap();
    let wanted =
        format!("pool.max_size is 10, but role {role}'s CONNECTION LIMIT allows 3 connections");
    assert_eq!(info.advice.len(), 1, "{:?}", info.advice);
    assert!(
        info.advice[0].starts_with(&wanted),
        "{}\nwanted: {wanted}",
        info.advice[0]
    );

    let mut config = schema.config();
    config.pool.max_size = 1_000;
    let info = PostgresConnector::new(&config)
        .unwrap()
        .ping()
        .await
        .unwrap();
    let wanted = "pool.max_size is 1000, but PostgreSQL's max_connections (less its reserved connections) allows";
    assert_eq!(info.advice.len(), 1, "{:?}", info.advice);
    assert!(info.advice[0].starts_with(wanted), "{}", info.advice[0]);

    schema
        .client
        .batch_execute(&format!("DROP ROLE \"{role}\""))
        .await
        .unwrap();
}

#[tokio::test]
async fn server_errors_are_classified_by_sqlstate() {
    let schema = TestSchema::new(
        "CREATE FUNCTION boom(code text) RETURNS int LANGUAGE plpgsql AS
         $$ BEGIN RAISE EXCEPTION 'boom %', code USING ERRCODE = code; END $$;
         CREATE TABLE t (id int);",
    )
    .await;
    let connector = schema.connector();
    let run = |sql: String| {
        let connector = &connector;
        async move {
            match connector.query(&Statement::new(sql), None).await {
                Ok(stream) => stream.collect_batches().await.map(|_| ()),
                Err(e) => Err(e),
            }
        }
    };
    let cases = [
        ("40001", ErrorKind::Conflict),
        ("40P01", ErrorKind::Conflict),
        ("23505", ErrorKind::Constraint),
        ("23503", ErrorKind::Constraint),
        ("28P01", ErrorKind::Authentication),
        ("22023", ErrorKind::InvalidInput),
        ("57014", ErrorKind::Timeout),
        ("57P01", ErrorKind::Unavailable),
        ("08006", ErrorKind::Unavailable),
    ];
    for (code, kind) in cases {
        let err = run(format!("SELECT \"{}\".boom('{code}')", schema.name))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), kind, "{code}: {err}");
        assert!(err.to_string().contains(code), "{err}");
    }
    let err = run("SELECT * FROM no_such_table_anywhere".into())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let err = run(format!("SELECT nope FROM {}", schema.table("t")))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let err = run("SELEC 1".into()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    let err = run("SELECT 1 / (random() * 0)::int".into())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    let err = run("SELECT 1; SELECT 2".into()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
}

async fn ssl_in_use(
    connector: &PostgresConnector,
) -> Result<bool, tributary_connector::ConnectorError> {
    let stream = connector
        .query(
            &Statement::new(
                "SELECT ssl FROM pg_catalog.pg_stat_ssl WHERE pid = pg_catalog.pg_backend_pid()",
            ),
            None,
        )
        .await?;
    let batch = stream.collect_one().await?;
    Ok(batch_to_strings(&batch)[0][0].as_deref() == Some("true"))
}

#[tokio::test]
async fn tls_modes() {
    let schema = TestSchema::new("").await;
    let server_ssl: String = schema
        .client
        .query_one("SHOW ssl", &[])
        .await
        .unwrap()
        .get(0);
    let off = connector_with(&schema, |c| c.tls.mode = TlsMode::Off);
    assert!(!ssl_in_use(&off).await.unwrap());
    let prefer = connector_with(&schema, |c| c.tls.mode = TlsMode::Prefer);
    assert_eq!(ssl_in_use(&prefer).await.unwrap(), server_ssl == "on");
    let require = connector_with(&schema, |c| c.tls.mode = TlsMode::Require);
    match ssl_in_use(&require).await {
        Ok(ssl) => assert!(ssl && server_ssl == "on"),
        Err(e) => assert!(
            server_ssl == "off" && e.kind() == ErrorKind::Unavailable,
            "{e}"
        ),
    }
    // The test server's certificate is not signed by a public root.
    let verify = connector_with(&schema, |c| {
        c.tls.mode = TlsMode::VerifyFull;
        c.pool.connect_timeout_ms = 3_000;
    });
    let err = verify.ping().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
}

#[test]
fn a_transaction_dropped_without_a_runtime_is_discarded() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (schema, connector, target, tx) = runtime.block_on(async {
        let schema = TestSchema::new(
            "CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL UNIQUE);",
        )
        .await;
        let connector = schema.connector();
        let model = connector.introspect().await.unwrap();
        let target = WriteTarget {
            schema: schema.name.clone(),
            table: model.table(&schema.name, "items").unwrap().clone().into(),
        };
        let mut tx = connector.begin().await.unwrap();
        tx.execute(&WriteOp::Insert(Insert {
            target: target.clone(),
            columns: vec!["name".into()],
            rows: vec![vec![Value::Text("held".into())]],
            returning: vec![],
        }))
        .await
        .unwrap();
        (schema, connector, target, tx)
    });
    drop(runtime);
    drop(tx);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let connector2 = schema.connector();
        let mut tx = connector2.begin().await.unwrap();
        let insert = WriteOp::Insert(Insert {
            target: target.clone(),
            columns: vec!["name".into()],
            rows: vec![vec![Value::Text("held".into())]],
            returning: vec![],
        });
        tokio::time::timeout(Duration::from_secs(10), tx.execute(&insert))
            .await
            .expect("the dropped transaction's locks were released")
            .unwrap();
        tx.commit().await.unwrap();
        let _ = &connector;
        let batch = connector2
            .query(
                &Statement::new(format!("SELECT count(*) FROM {}", schema.table("items"))),
                None,
            )
            .await
            .unwrap()
            .collect_one()
            .await
            .unwrap();
        assert_eq!(batch_to_strings(&batch), vec![vec![Some("1".into())]]);
    });
    drop(connector);
    drop(schema);
}

#[tokio::test]
async fn cached_statements_follow_table_changes() {
    let schema = TestSchema::new("CREATE TABLE t (a int); INSERT INTO t VALUES (1);").await;
    // One connection, so the second query meets the first one's cached statement.
    let connector = connector_with(&schema, |c| c.pool.max_size = 1);
    let sql = format!("SELECT * FROM {}", schema.table("t"));
    let batch = connector
        .query(&Statement::new(sql.clone()), None)
        .await
        .unwrap()
        .collect_one()
        .await
        .unwrap();
    assert_eq!(batch.num_columns(), 1);
    schema
        .client
        .batch_execute(&format!("ALTER TABLE {0} ADD COLUMN b text DEFAULT 'x'; ALTER TABLE {0} ALTER COLUMN a TYPE bigint", schema.table("t")))
        .await
        .unwrap();
    let batch = connector
        .query(&Statement::new(sql), None)
        .await
        .unwrap()
        .collect_one()
        .await
        .unwrap();
    assert_eq!(
        batch_to_strings(&batch),
        vec![vec![Some("1".into()), Some("x".into())]]
    );
    assert_eq!(
        batch.schema().field(0).data_type(),
        &arrow_schema::DataType::Int64
    );
}
