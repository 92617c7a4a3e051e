//! Introspection of a fixture with every supported type, composite keys, a
//! view, comments, unique / index / check constraints, auto-increment and
//! generated columns — compared with a reviewed JSON snapshot per flavor —
//! and drift detection.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

mod common;

use common::TestDb;
use tributary_connector::{Connector, Drift};
use tributary_connector_mysql::MySqlConnector;

/// The fixture, in both flavors' SQL.
pub const FIXTURE: &[&str] = &[
    "CREATE TABLE customers (
        region CHAR(2) NOT NULL COMMENT 'ISO region',
        id INT UNSIGNED NOT NULL,
        email VARCHAR(120) NOT NULL,
        name VARCHAR(80) NOT NULL DEFAULT 'it''s anonymous',
        PRIMARY KEY (region, id),
        UNIQUE KEY customers_email (email)
    ) COMMENT 'People who buy'",
    "CREATE TABLE orders (
        id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        region CHAR(2) NOT NULL,
        customer_id INT UNSIGNED NOT NULL,
        quantity INT NOT NULL DEFAULT 1,
        unit_price DECIMAL(12,2) NOT NULL,
        total DECIMAL(24,2) AS (quantity * unit_price) STORED,
        doubled INT AS (quantity * 2) VIRTUAL,
        status ENUM('new','paid','shipped') NOT NULL DEFAULT 'new',
        placed_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
        note VARCHAR(20) NULL DEFAULT NULL,
        CONSTRAINT orders_customer FOREIGN KEY (region, customer_id)
            REFERENCES customers (region, id) ON UPDATE CASCADE ON DELETE RESTRICT,
        CONSTRAINT orders_quantity_positive CHECK (quantity > 0),
        KEY orders_placed (placed_at, status)
    )",
    "CREATE TABLE all_types (
        id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        t_tinyint TINYINT, t_tinyint_u TINYINT UNSIGNED, t_bool BOOL,
        t_smallint SMALLINT, t_smallint_u SMALLINT UNSIGNED,
        t_mediumint MEDIUMINT, t_mediumint_u MEDIUMINT UNSIGNED,
        t_int INT, t_int_u INT UNSIGNED, t_bigint BIGINT, t_bigint_u BIGINT UNSIGNED,
        t_decimal DECIMAL(12,2), t_decimal_wide DECIMAL(65,30),
        t_float FLOAT, t_double DOUBLE, t_bit1 BIT(1), t_bit BIT(12), t_year YEAR,
        t_date DATE, t_time TIME(6), t_datetime DATETIME(6), t_timestamp TIMESTAMP(6) NULL,
        t_char CHAR(3), t_varchar VARCHAR(80), t_text TEXT, t_longtext LONGTEXT,
        t_binary BINARY(4), t_varbinary VARBINARY(16), t_blob BLOB,
        t_enum ENUM('a','b'), t_set SET('x','y','z'), t_json JSON,
        t_geometry GEOMETRY, t_point POINT
    )",
    "CREATE VIEW order_totals AS
        SELECT region, customer_id, SUM(total) AS spent FROM orders GROUP BY region, customer_id",
];

/// MariaDB-only types.
pub const MARIADB_FIXTURE: &[&str] =
    &["CREATE TABLE mariadb_types (id INT PRIMARY KEY, t_uuid UUID, t_inet4 INET4, t_inet6 INET6)"];

async fn fixture_db(prefix: &str) -> TestDb {
    let mut db = TestDb::create(prefix, FIXTURE).await;
    if db.mariadb {
        db.exec(MARIADB_FIXTURE).await;
    }
    db
}

#[tokio::test]
async fn introspection_matches_the_reviewed_catalog() {
    let db = fixture_db("introspect").await;
    let connector = MySqlConnector::new(&db.config("shop")).unwrap();
    let model = connector.introspect().await.unwrap();
    assert_eq!(
        model.schemas.keys().collect::<Vec<_>>(),
        vec![&db.name],
        "only the configured database"
    );
    let orders = model.table(&db.name, "orders").unwrap();
    assert!(orders.row_estimate.is_some());
    assert!(
        model
            .table(&db.name, "order_totals")
            .unwrap()
            .row_estimate
            .is_none()
    );
    // Fingerprints come from the same query as drift_fingerprints().
    let current = connector.drift_fingerprints().await.unwrap();
    assert!(
        Drift::detect(&model, &current).is_empty(),
        "{:?}",
        Drift::detect(&model, &current)
    );

    let text = serde_json::to_string(&model)
        .unwrap()
        .replace(&db.name, "<db>");
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let snapshot = if db.mariadb {
        "catalog_mariadb"
    } else {
        "catalog_mysql"
    };
    insta::assert_json_snapshot!(snapshot, value, {
        ".introspected_at" => "[introspected_at]",
        ".server_version" => "[server_version]",
        ".schemas.*.tables.*.row_estimate" => "[row_estimate]",
        ".schemas.*.tables.*.drift_fingerprint" => "[drift_fingerprint]",
    });
    db.drop_db().await;
}

#[tokio::test]
async fn schema_selection_without_a_database() {
    let db = fixture_db("introspect_sel").await;
    let mut config = db.config("all");
    config.connection.database = None;
    config.schemas.include = vec![db.name.clone()];
    let connector = MySqlConnector::new(&config).unwrap();
    let model = connector.introspect().await.unwrap();
    assert_eq!(model.schemas.keys().collect::<Vec<_>>(), vec![&db.name]);
    assert_eq!(model.default_schema, None);
    assert!(model.table(&db.name, "all_types").is_some());
    config.schemas.include.clear();
    config.schemas.exclude = vec![db.name.clone()];
    let connector = MySqlConnector::new(&config).unwrap();
    let model = connector.introspect().await.unwrap();
    assert!(!model.schemas.contains_key(&db.name));
    for system in ["mysql", "information_schema", "performance_schema", "sys"] {
        assert!(!model.schemas.contains_key(system), "{system}");
    }
    db.drop_db().await;
}

#[tokio::test]
async fn drift_is_detected_for_the_altered_table_only() {
    let mut db = fixture_db("drift").await;
    let connector = MySqlConnector::new(&db.config("drifty")).unwrap();
    let model = connector.introspect().await.unwrap();
    let before = connector.drift_fingerprints().await.unwrap();
    for (schema, table) in model.tables() {
        let key = (schema.to_string(), table.name.clone());
        assert_eq!(before.get(&key), Some(&table.drift_fingerprint), "{key:?}");
    }
    db.exec(&["ALTER TABLE customers ADD COLUMN phone VARCHAR(20)"])
        .await;
    let after = connector.drift_fingerprints().await.unwrap();
    let changed: Vec<_> = before
        .keys()
        .filter(|k| before.get(*k) != after.get(*k))
        .collect();
    assert_eq!(changed, vec![&(db.name.clone(), "customers".to_string())]);
    let drift = Drift::detect(&model, &after);
    assert_eq!(drift.changed, vec![format!("{}.customers", db.name)]);
    assert!(
        drift.added.is_empty() && drift.removed.is_empty(),
        "{drift:?}"
    );

    // An added index and an added foreign key change their table too.
    db.exec(&[
        "CREATE INDEX all_types_int ON all_types (t_int)",
        "ALTER TABLE all_types ADD CONSTRAINT all_types_order FOREIGN KEY (t_bigint) REFERENCES orders (id)",
    ])
    .await;
    let last = connector.drift_fingerprints().await.unwrap();
    let key = (db.name.clone(), "all_types".to_string());
    assert_ne!(after.get(&key), last.get(&key));
    db.drop_db().await;
}
