//! Introspection of a fixture with every supported type, composite keys, a
//! view, unique constraints, indexes, checks, AUTOINCREMENT and generated
//! columns (insta snapshot), and drift detection after external changes.

mod common;

use common::TestDb;
use tributary_connector::{Connector, Drift};

const FIXTURE: &str = r#"
CREATE TABLE customers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    email VARCHAR(200) NOT NULL CONSTRAINT customers_email_key UNIQUE,
    name TEXT NOT NULL,
    vip BOOLEAN NOT NULL DEFAULT 0,
    created_at DATETIME DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE warehouses (
    region CHAR(2) NOT NULL,
    code INT NOT NULL,
    label TEXT,
    PRIMARY KEY (region, code)
) WITHOUT ROWID;
CREATE TABLE stock (
    region CHAR(2) NOT NULL,
    code INT NOT NULL,
    sku TEXT NOT NULL,
    quantity INT NOT NULL DEFAULT 0,
    CONSTRAINT stock_pk PRIMARY KEY (region, code, sku),
    CONSTRAINT stock_warehouse_fk FOREIGN KEY (region, code)
        REFERENCES warehouses (region, code) ON DELETE CASCADE ON UPDATE RESTRICT,
    CONSTRAINT stock_quantity_check CHECK (quantity >= 0)
);
CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers ON DELETE CASCADE,
    placed_on DATE NOT NULL,
    note TEXT,
    UNIQUE (customer_id, placed_on)
);
CREATE TABLE all_types (
    id INTEGER PRIMARY KEY,
    small_int SMALLINT,
    big_int BIGINT,
    flag BOOLEAN,
    ratio REAL,
    score DOUBLE PRECISION,
    amount DECIMAL(12,2),
    huge DECIMAL(50,4),
    plain_numeric NUMERIC,
    title VARCHAR(80),
    body TEXT,
    code CHAR(3),
    uid UUID,
    doc JSON,
    raw BLOB,
    day DATE,
    at DATETIME,
    stamp TIMESTAMP,
    clock TIME,
    anything,
    odd MONEY,
    qty INT CHECK (qty >= 0),
    total DECIMAL(14,2) GENERATED ALWAYS AS (amount * 2) STORED,
    title_upper TEXT AS (upper(title)) VIRTUAL
);
CREATE INDEX orders_placed_idx ON orders (placed_on DESC);
CREATE INDEX customers_lower_email_idx ON customers (lower(email));
CREATE VIEW customer_orders AS
    SELECT c.name, o.placed_on, o.id AS order_id FROM customers c JOIN orders o ON o.customer_id = c.id;
INSERT INTO customers (email, name) VALUES ('ann@example.com', 'Ann'), ('bob@example.com', 'Bob');
INSERT INTO warehouses VALUES ('EU', 1, 'Berlin');
"#;

#[tokio::test]
async fn fixture_catalog() {
    let db = TestDb::new(FIXTURE);
    let connector = db.connector();
    let model = connector.introspect().await.expect("introspection");
    assert_eq!(model.source, "lite");
    assert_eq!(model.default_schema.as_deref(), Some("main"));
    assert!(
        model.server_version.starts_with("3."),
        "{}",
        model.server_version
    );
    // Row estimates are exact counts here (no sqlite_stat1), so they stay in the snapshot.
    insta::assert_json_snapshot!("fixture_catalog", model, {
        ".introspected_at" => "[introspected_at]",
        ".server_version" => "[server_version]",
        ".schemas.*.tables.*.drift_fingerprint" => "[fingerprint]",
    });
}

#[tokio::test]
async fn row_estimates_come_from_sqlite_stat1_after_analyze() {
    let db = TestDb::new(FIXTURE);
    db.raw()
        .execute_batch(
            "INSERT INTO orders (customer_id, placed_on) VALUES (1, '2024-01-01'); ANALYZE;",
        )
        .unwrap();
    let model = db.connector().introspect().await.unwrap();
    assert_eq!(
        model.table("main", "customers").unwrap().row_estimate,
        Some(2)
    );
    assert_eq!(model.table("main", "orders").unwrap().row_estimate, Some(1));
    assert_eq!(model.table("main", "stock").unwrap().row_estimate, Some(0));
    assert_eq!(
        model.table("main", "customer_orders").unwrap().row_estimate,
        None
    );
}

#[tokio::test]
async fn excluded_main_schema_gives_an_empty_catalog() {
    let db = TestDb::new(FIXTURE);
    let mut config = db.config();
    config.schemas.exclude = vec!["main".into()];
    let connector = tributary_connector_sqlite::SqliteConnector::new(&config).unwrap();
    let model = connector.introspect().await.unwrap();
    assert!(model.schemas.is_empty());
    assert!(connector.drift_fingerprints().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_broken_view_does_not_break_the_source() {
    let db = TestDb::new(&format!(
        "{FIXTURE}\nCREATE TABLE gone(a); CREATE VIEW broken AS SELECT a FROM gone;"
    ));
    db.raw().execute_batch("DROP TABLE gone").unwrap();
    let model = db.connector().introspect().await.expect("introspection");
    assert!(model.table("main", "broken").is_none());
    assert!(model.table("main", "customer_orders").is_some());
}

#[tokio::test]
async fn drift_after_external_changes() {
    let db = TestDb::new(FIXTURE);
    let connector = db.connector();
    let model = connector.introspect().await.unwrap();
    let now = connector.drift_fingerprints().await.unwrap();
    for (schema, table) in model.tables() {
        assert_eq!(
            now.get(&(schema.to_string(), table.name.clone())),
            Some(&table.drift_fingerprint),
            "{}",
            table.name
        );
        assert!(!table.drift_fingerprint.is_empty());
    }
    assert_eq!(now.len(), model.tables().count());
    assert!(Drift::detect(&model, &now).is_empty());

    db.raw()
        .execute_batch("ALTER TABLE customers ADD COLUMN nickname TEXT")
        .unwrap();
    let after = connector.drift_fingerprints().await.unwrap();
    let changed: Vec<_> = after
        .iter()
        .filter(|(k, v)| now.get(*k) != Some(*v))
        .map(|(k, _)| k.1.clone())
        .collect();
    assert_eq!(changed, vec!["customers".to_string()]);
    let drift = Drift::detect(&model, &after);
    assert_eq!(drift.changed, vec!["main.customers".to_string()]);
    assert!(drift.added.is_empty() && drift.removed.is_empty());

    // A new index changes its table's fingerprint too; a new table is added.
    db.raw()
        .execute_batch("CREATE INDEX stock_sku_idx ON stock (sku); CREATE TABLE extra (a)")
        .unwrap();
    let drift = Drift::detect(&model, &connector.drift_fingerprints().await.unwrap());
    assert_eq!(
        drift.changed,
        vec!["main.customers".to_string(), "main.stock".to_string()]
    );
    assert_eq!(drift.added, vec!["main.extra".to_string()]);

    // Re-introspection stores the same fingerprints the cheap query returns.
    let model = connector.introspect().await.unwrap();
    assert!(Drift::detect(&model, &connector.drift_fingerprints().await.unwrap()).is_empty());
    assert!(
        model
            .table("main", "customers")
            .unwrap()
            .column("nickname")
            .is_some()
    );
}

#[tokio::test]
async fn introspection_of_many_tables_is_batched() {
    let mut sql = String::from("BEGIN;\n");
    for t in 0..1000 {
        sql.push_str(&format!("CREATE TABLE t{t} (id INTEGER PRIMARY KEY"));
        for c in 0..20 {
            sql.push_str(&format!(", c{c} TEXT"));
        }
        sql.push_str(&format!(
            ", parent INTEGER REFERENCES t{t}(id));\nCREATE INDEX t{t}_c0 ON t{t}(c0);\n"
        ));
    }
    sql.push_str("COMMIT;");
    let db = TestDb::new(&sql);
    let connector = db.connector();
    let started = std::time::Instant::now();
    let model = connector.introspect().await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(model.tables().count(), 1000);
    let t7 = model.table("main", "t7").unwrap();
    assert_eq!(t7.columns.len(), 22);
    assert_eq!(t7.foreign_keys.len(), 1);
    assert_eq!(t7.indexes.len(), 1);
    assert!(elapsed < std::time::Duration::from_secs(2), "{elapsed:?}");
}

#[tokio::test]
async fn virtual_tables_without_their_shadow_tables() {
    let db = TestDb::new(
        "CREATE VIRTUAL TABLE docs USING fts5(title, body);
         INSERT INTO docs VALUES ('Hello', 'full text search');",
    );
    let connector = db.connector();
    let model = connector.introspect().await.unwrap();
    let names: Vec<&str> = model.tables().map(|(_, t)| t.name.as_str()).collect();
    assert_eq!(names, vec!["docs"]);
    let docs = model.table("main", "docs").unwrap();
    let columns: Vec<&str> = docs.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(columns, vec!["title", "body"]);
    let fingerprints = connector.drift_fingerprints().await.unwrap();
    assert_eq!(
        fingerprints
            .keys()
            .map(|k| k.1.as_str())
            .collect::<Vec<_>>(),
        vec!["docs"]
    );
    let sql =
        tributary_connector::Statement::new("SELECT title FROM docs WHERE docs MATCH 'search'");
    let batch = connector
        .query(&sql, None)
        .await
        .unwrap()
        .collect_one()
        .await
        .unwrap();
    assert_eq!(batch.num_rows(), 1);
}
