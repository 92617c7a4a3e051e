//! Golden SQL per dialect: the statement each kind of source receives for a
//! suite of plans (filters, aggregates with HAVING, same-source joins, sorts
//! with NULL order, LIMIT/OFFSET, DISTINCT, literals that need escaping, and
//! what must stay in DataFusion). Planning only: no database is contacted.
//! `INSTA_UPDATE=always cargo test -p tributary --lib golden` regenerates.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use tributary_connector::{Connector, SourceConfig};
use tributary_connector_mysql::MySqlConnector;
use tributary_connector_postgres::PostgresConnector;
use tributary_connector_sqlite::SqliteConnector;
use tributary_schema_cache::{
    ColumnDef, KeyDef, MemoryCatalogStore, SchemaCache, SchemaDef, SourceKind, SourceSchema,
    TableDef, TableKind,
};

use super::{Planning, explain, plan_query, session_state};
use crate::metrics::Metrics;

fn column(name: &str, data_type: DataType, nullable: bool) -> ColumnDef {
    ColumnDef {
        name: name.into(),
        ordinal: 1,
        native_type: String::new(),
        data_type,
        nullable,
        default: None,
        generated: None,
        comment: None,
        unsupported_type: None,
    }
}

fn table(name: &str, columns: Vec<ColumnDef>) -> TableDef {
    TableDef {
        name: name.into(),
        kind: TableKind::Table,
        comment: None,
        columns,
        primary_key: Some(KeyDef {
            name: None,
            columns: vec!["id".into()],
        }),
        unique_constraints: vec![],
        foreign_keys: vec![],
        indexes: vec![],
        check_constraints: vec![],
        row_estimate: Some(1_000),
        drift_fingerprint: String::new(),
    }
}

fn model(source: &str, kind: SourceKind, schema: &str) -> SourceSchema {
    let customers = table(
        "customers",
        vec![
            column("id", DataType::Int64, false),
            column("name", DataType::Utf8, true),
            column("country", DataType::Utf8, true),
            column("credit", DataType::Decimal128(12, 2), true),
            column("vip", DataType::Boolean, true),
        ],
    );
    let orders = table(
        "orders",
        vec![
            column("id", DataType::Int64, false),
            column("customer_id", DataType::Int64, true),
            column("total", DataType::Decimal128(12, 2), true),
            column("status", DataType::Utf8, true),
            column("placed", DataType::Date32, true),
            column(
                "updated",
                DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Microsecond, None),
                true,
            ),
        ],
    );
    let tables = BTreeMap::from([
        ("customers".to_string(), customers),
        ("orders".to_string(), orders),
    ]);
    SourceSchema {
        source: source.into(),
        kind,
        server_version: String::new(),
        default_schema: Some(schema.into()),
        schemas: BTreeMap::from([(
            schema.to_string(),
            SchemaDef {
                name: schema.into(),
                tables,
            },
        )]),
        introspected_at: chrono::DateTime::UNIX_EPOCH,
    }
}

/// The suite; `S` stands for the source's name.
const QUERIES: &[&str] = &[
    "SELECT name FROM S.customers WHERE country = 'DE' AND credit > 100",
    "SELECT country, count(*) AS n, sum(credit) AS credit FROM S.customers GROUP BY country HAVING count(*) > 1",
    "SELECT c.name, o.total FROM S.orders o JOIN S.customers c ON c.id = o.customer_id WHERE o.status = 'open'",
    "SELECT id FROM S.orders ORDER BY placed DESC NULLS LAST, id LIMIT 10 OFFSET 5",
    "SELECT id FROM S.orders ORDER BY id DESC LIMIT 3",
    "SELECT DISTINCT status FROM S.orders",
    "SELECT name FROM S.customers WHERE name = 'O''Brien; DROP TABLE x' OR name LIKE 'Zoë%'",
    "SELECT id, total / 2 AS half FROM S.orders WHERE id % 2 = 0",
    "SELECT count(*), min(placed), max(total), avg(total) FROM S.orders WHERE placed >= DATE '2024-01-01'",
    "SELECT country, sum(credit) FROM S.customers GROUP BY country ORDER BY country",
    "SELECT name FROM S.customers WHERE country IN ('DE', 'FR', 'IT', 'NL') ORDER BY name NULLS FIRST LIMIT 5",
    "SELECT country, count(*), sum(credit) FROM S.customers GROUP BY country ORDER BY 1 LIMIT 3",
    "SELECT id FROM S.customers WHERE vip",
    "SELECT id, vip FROM S.customers WHERE name <> '' AND credit IS NOT NULL",
    "SELECT id FROM S.orders LIMIT 5 OFFSET 10",
    "SELECT id FROM S.orders WHERE updated < TIMESTAMP '2024-06-01 12:30:00' ORDER BY id DESC LIMIT 2",
    "SELECT customer_id, count(*) FROM S.orders WHERE id / 3 > 10 AND total / 3 > 10 GROUP BY customer_id",
    "SELECT c.id, count(o.id) AS n FROM S.customers c LEFT JOIN S.orders o ON o.customer_id = c.id GROUP BY c.id ORDER BY n DESC, c.id LIMIT 3",
    "SELECT DISTINCT customer_id FROM S.orders ORDER BY customer_id",
];

async fn statements(source: &str, kind: SourceKind, schema: &str, url: &str) -> String {
    let cache = SchemaCache::open(Box::<MemoryCatalogStore>::default()).unwrap();
    cache.install(model(source, kind, schema)).unwrap();
    let config = SourceConfig::from_url(source, url).unwrap();
    let connector: Arc<dyn Connector> = match kind {
        SourceKind::Postgres => Arc::new(PostgresConnector::new(&config).unwrap()),
        SourceKind::Mysql | SourceKind::Mariadb => Arc::new(MySqlConnector::new(&config).unwrap()),
        SourceKind::Sqlite => Arc::new(SqliteConnector::new(&config).unwrap()),
        // The statements come from the model's kind (the executor's dialect
        // and pushdown rules); the connector is never contacted.
        SourceKind::Sqlserver | SourceKind::Oracle | SourceKind::Kingbase => Arc::new(
            PostgresConnector::new(
                &SourceConfig::from_url(source, "postgres://u@127.0.0.1:1/db").unwrap(),
            )
            .unwrap(),
        ),
    };
    let connectors = BTreeMap::from([(source.to_string(), connector)]);
    let snapshot = cache.snapshot();
    let (state, _) = session_state(&snapshot, &connectors, &Arc::new(Metrics::new())).unwrap();
    let context = datafusion::prelude::SessionContext::new_with_state(state);
    let planning = Planning {
        context: &context,
        snapshot: &snapshot,
        enforcement: None,
    };
    let mut out = String::new();
    for query in QUERIES {
        let sql = query.replace("S.", &format!("{source}."));
        let (frame, _) = plan_query(&planning, &sql, vec![]).await.unwrap();
        let physical = frame.create_physical_plan().await.unwrap();
        out.push_str(&format!("-- {sql}\n"));
        for statement in explain::source_queries(physical.as_ref()) {
            out.push_str(&statement.sql);
            out.push('\n');
        }
        out.push('\n');
    }
    out
}

#[tokio::test]
async fn golden_postgres() {
    let sql = statements(
        "pg",
        SourceKind::Postgres,
        "app",
        "postgres://u@127.0.0.1:1/db",
    )
    .await;
    insta::assert_snapshot!(sql);
}

#[tokio::test]
async fn golden_mysql() {
    let sql = statements("my", SourceKind::Mysql, "app", "mysql://u@127.0.0.1:1/app").await;
    insta::assert_snapshot!(sql);
}

#[tokio::test]
async fn golden_sqlite() {
    let sql = statements(
        "lite",
        SourceKind::Sqlite,
        "main",
        "sqlite:///nonexistent/lite.db",
    )
    .await;
    insta::assert_snapshot!(sql);
}

#[tokio::test]
async fn golden_sqlserver() {
    let sql = statements(
        "ms",
        SourceKind::Sqlserver,
        "dbo",
        "sqlserver://u@127.0.0.1:1/app",
    )
    .await;
    insta::assert_snapshot!(sql);
}

#[tokio::test]
async fn golden_oracle() {
    let sql = statements(
        "ora",
        SourceKind::Oracle,
        "APP",
        "oracle://u@127.0.0.1:1/FREE",
    )
    .await;
    insta::assert_snapshot!(sql);
}

#[tokio::test]
async fn golden_kingbase() {
    let sql = statements(
        "kb",
        SourceKind::Kingbase,
        "public",
        "kingbase://u@127.0.0.1:1/app",
    )
    .await;
    insta::assert_snapshot!(sql);
}
