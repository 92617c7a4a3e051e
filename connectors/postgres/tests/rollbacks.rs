//! No `ROLLBACK` goes out where no transaction is open: the server answers
//! one with nothing but a warning ("there is no transaction in progress"),
//! which would land in its log for every failed or abandoned write. A test
//! binary of its own: it listens to every notice the driver logs in the
//! process.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

mod common;

use std::sync::Mutex;

use common::{TestSchema, select_one};
use futures::FutureExt as _;
use tributary_connector::testkit::insert_name;
use tributary_connector::{Connector, ErrorKind, WriteTarget};

/// What tokio-postgres logged: it logs each notice the server sends
/// ("WARNING: …") at info level.
static LOGGED: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Listener;

impl log::Log for Listener {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.target().starts_with("tokio_postgres")
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            logged().push(record.args().to_string());
        }
    }

    fn flush(&self) {}
}

fn logged() -> std::sync::MutexGuard<'static, Vec<String>> {
    LOGGED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Asserts how many of the server's "no transaction in progress" warnings
/// the driver has logged so far.
fn assert_stray_rollbacks(expected: usize, after: &str) {
    let logged = logged().clone();
    let strays = logged
        .iter()
        .filter(|line| line.contains("there is no transaction in progress"))
        .count();
    assert_eq!(strays, expected, "after {after}: {logged:?}");
}

#[tokio::test]
async fn no_rollback_goes_out_where_no_transaction_is_open() {
    log::set_logger(&Listener).expect("the only logger of this test binary");
    log::set_max_level(log::LevelFilter::Info);
    let schema = TestSchema::new(
        "CREATE TABLE items (id serial PRIMARY KEY, name text UNIQUE); \
         CREATE TABLE gone (id serial PRIMARY KEY, name text);",
    )
    .await;
    let mut config = schema.config();
    config.pool.max_size = 1;
    let connector = tributary_connector_postgres::PostgresConnector::new(&config).unwrap();
    let model = connector.introspect().await.unwrap();
    let target = |table: &str| WriteTarget {
        schema: schema.name.clone(),
        table: model.table(&schema.name, table).unwrap().clone().into(),
    };
    let items = target("items");

    // The listener hears the warning: a ROLLBACK sent on its own.
    schema.client.batch_execute("ROLLBACK").await.unwrap();
    assert_stray_rollbacks(1, "a ROLLBACK on its own");

    // The last statement fails after the first went out: its COMMIT went
    // with it and ended the transaction (rolled back).
    let mut tx = connector.begin().await.unwrap();
    tx.execute(&insert_name(&items, "a")).await.unwrap();
    let err = tx
        .execute_and_commit(&insert_name(&items, "a"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Constraint, "{err}");
    select_one(&connector).await;
    assert_eq!(schema.count("items").await, 0);
    assert_stray_rollbacks(1, "a failed last statement");

    // The caller stops waiting once the last statement and its COMMIT are
    // out (one poll: the statement is prepared already): they commit.
    let mut tx = connector.begin().await.unwrap();
    tx.execute(&insert_name(&items, "b")).await.unwrap();
    let last = insert_name(&items, "c");
    let abandoned = tx.execute_and_commit(&last).now_or_never();
    assert!(abandoned.is_none(), "answered within its first poll");
    select_one(&connector).await;
    assert_eq!(schema.count("items").await, 2);
    assert_stray_rollbacks(1, "a transaction abandoned after its COMMIT went out");

    // The first statement fails before BEGIN went out (its table is gone):
    // nothing began, so nothing is rolled back.
    schema
        .client
        .batch_execute(&format!("DROP TABLE {}", schema.table("gone")))
        .await
        .unwrap();
    let mut tx = connector.begin().await.unwrap();
    tx.execute(&insert_name(&target("gone"), "x"))
        .await
        .unwrap_err();
    tx.commit().await.unwrap_err();
    select_one(&connector).await;
    assert_stray_rollbacks(1, "a first statement failing before BEGIN went out");
}
