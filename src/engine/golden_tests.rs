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
use tributary_connector_sqlserver::SqlServerConnector;
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
    "SELECT id FROM S.orders ORDER BY placed, total DESC, id LIMIT 4",
    "SELECT id, n FROM (SELECT id, row_number() OVER (PARTITION BY customer_id ORDER BY placed, id) AS n FROM S.orders) AS t WHERE n <= 2",
];

/// The golden text of every statement the suite sends a source of `kind`.
async fn statements(source: &str, kind: SourceKind, schema: &str, url: &str) -> String {
    source_statements(source, kind, schema, url)
        .await
        .into_iter()
        .map(|(query, statements)| {
            let mut block = format!("-- {query}\n");
            for statement in statements {
                block.push_str(&statement);
                block.push('\n');
            }
            block.push('\n');
            block
        })
        .collect()
}

/// Each query of the suite with the statements its source receives.
async fn source_statements(
    source: &str,
    kind: SourceKind,
    schema: &str,
    url: &str,
) -> Vec<(String, Vec<String>)> {
    let cache = SchemaCache::open(Box::<MemoryCatalogStore>::default()).unwrap();
    cache.install(model(source, kind, schema)).unwrap();
    let config = SourceConfig::from_url(source, url).unwrap();
    let connector: Arc<dyn Connector> = match kind {
        SourceKind::Postgres | SourceKind::Kingbase => {
            Arc::new(PostgresConnector::new(&config).unwrap())
        }
        SourceKind::Mysql | SourceKind::Mariadb => Arc::new(MySqlConnector::new(&config).unwrap()),
        SourceKind::Sqlite => Arc::new(SqliteConnector::new(&config).unwrap()),
        SourceKind::Sqlserver => Arc::new(SqlServerConnector::new(&config).unwrap()),
        // Without the `oracle` feature there is no Oracle connector; the
        // statements come from the model's kind (the executor's dialect and
        // pushdown rules) and no connector is ever contacted here.
        SourceKind::Oracle => Arc::new(
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
    let mut out = Vec::new();
    for query in QUERIES {
        let sql = query.replace("S.", &format!("{source}."));
        let (frame, _) = plan_query(&planning, &sql, vec![]).await.unwrap();
        let physical = frame.create_physical_plan().await.unwrap();
        let statements = explain::source_queries(physical.as_ref())
            .into_iter()
            .map(|statement| statement.sql)
            .collect();
        out.push((sql, statements));
    }
    out
}

/// Counts table aliases written with `AS`.
#[derive(Default)]
struct TableAliases {
    with_as: usize,
}

impl datafusion::sql::sqlparser::ast::Visitor for TableAliases {
    type Break = ();

    fn pre_visit_table_factor(
        &mut self,
        factor: &datafusion::sql::sqlparser::ast::TableFactor,
    ) -> std::ops::ControlFlow<()> {
        use datafusion::sql::sqlparser::ast::TableFactor;
        if let TableFactor::Table {
            alias: Some(alias), ..
        }
        | TableFactor::Derived {
            alias: Some(alias), ..
        } = factor
            && alias.explicit
        {
            self.with_as += 1;
        }
        std::ops::ControlFlow::Continue(())
    }
}

/// Every statement parses in its database's own grammar (sqlparser's
/// parsers for T-SQL and Oracle), and reads back to the same text.
#[tokio::test]
async fn sqlserver_and_oracle_statements_parse_in_their_dialects() {
    use datafusion::sql::sqlparser::ast::Visit;
    use datafusion::sql::sqlparser::dialect::{Dialect, MsSqlDialect, OracleDialect};
    use datafusion::sql::sqlparser::parser::Parser;
    let cases: [(SourceKind, &str, &str, Box<dyn Dialect>); 2] = [
        (
            SourceKind::Sqlserver,
            "dbo",
            "sqlserver://u@127.0.0.1:1/app",
            Box::new(MsSqlDialect {}),
        ),
        (
            SourceKind::Oracle,
            "APP",
            "oracle://u@127.0.0.1:1/FREE",
            Box::new(OracleDialect {}),
        ),
    ];
    for (kind, schema, url, dialect) in cases {
        let mut checked = 0;
        for (query, statements) in source_statements("s", kind, schema, url).await {
            for sql in statements {
                let parsed = Parser::parse_sql(dialect.as_ref(), &sql)
                    .unwrap_or_else(|e| panic!("{kind}: {e}\n{query}\n{sql}"));
                assert_eq!(parsed.len(), 1, "{kind}: {sql}");
                assert_eq!(parsed[0].to_string(), sql, "{kind}: {query}");
                // sqlparser reads LIMIT and `AS t` in any dialect; these two don't.
                assert!(!sql.contains(" LIMIT "), "{kind}: {sql}");
                let mut aliases = TableAliases::default();
                let _ = parsed[0].visit(&mut aliases);
                if kind == SourceKind::Oracle {
                    assert_eq!(aliases.with_as, 0, "{kind}: {sql}");
                }
                checked += 1;
            }
        }
        assert!(
            checked >= QUERIES.len(),
            "{kind}: only {checked} statements"
        );
    }
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
