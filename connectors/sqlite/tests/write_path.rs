//! The shared write-path conformance suite against a SQLite file.

mod common;

use common::TestDb;
use tributary_connector::testkit::write_path_conformance;

#[tokio::test]
async fn write_path_conformance_main_schema() {
    let db = TestDb::new(
        "CREATE TABLE items (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL UNIQUE,
            qty INTEGER,
            price DECIMAL(10,2)
        );",
    );
    let connector = db.connector();
    write_path_conformance(&connector, "main").await;
    let status = tributary_connector::Connector::pool_status(&connector);
    assert_eq!(
        status.idle, status.size,
        "every connection is back in the pool: {status:?}"
    );
}
