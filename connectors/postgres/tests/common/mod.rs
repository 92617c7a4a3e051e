//! Shared helpers of the PostgreSQL integration tests: a fresh schema per
//! test on the test server (`testkit::postgres_url()`), so tests run in
//! parallel, and a connector that sees only that schema.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // each test crate uses a subset

use tokio_postgres::{Client, NoTls};
use tributary_connector::testkit::{postgres_url, unique_name};
use tributary_connector::{SchemaFilter, SourceConfig};
use tributary_connector_postgres::PostgresConnector;

/// A direct connection for fixtures and for changes made "outside" the connector.
pub async fn admin() -> Client {
    let (client, connection) = tokio_postgres::connect(&postgres_url(), NoTls)
        .await
        .expect("connect to the test server");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// A schema that exists as long as the value.
pub struct TestSchema {
    pub name: String,
    pub client: Client,
}

impl TestSchema {
    /// Creates a schema and runs `sql` in it (it is first on the search path).
    pub async fn new(sql: &str) -> Self {
        let name = unique_name("pgt");
        let client = admin().await;
        client
            .batch_execute(&format!(
                "CREATE SCHEMA \"{name}\"; SET search_path TO \"{name}\", public;"
            ))
            .await
            .expect("create schema");
        if !sql.is_empty() {
            client
                .batch_execute(sql)
                .await
                .unwrap_or_else(|e| panic!("fixture SQL failed: {e:?}"));
        }
        Self { name, client }
    }

    /// A config for the test server that selects only this schema.
    pub fn config(&self) -> SourceConfig {
        let mut config = SourceConfig::from_url("pg", &postgres_url()).expect("config");
        config.schemas = SchemaFilter {
            include: vec![self.name.clone()],
            exclude: vec![],
        };
        config
    }

    pub fn connector(&self) -> PostgresConnector {
        PostgresConnector::new(&self.config()).expect("connector")
    }

    /// `"schema"."table"`.
    pub fn table(&self, table: &str) -> String {
        format!("\"{}\".\"{table}\"", self.name)
    }

    /// How many rows `table` of the schema holds, read on the admin client.
    #[allow(dead_code)] // not every test file counts rows
    pub async fn count(&self, table: &str) -> i64 {
        self.client
            .query_one(&format!("SELECT count(*) FROM {}", self.table(table)), &[])
            .await
            .expect("count rows")
            .get(0)
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        let sql = format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.name);
        // The test's runtime may be gone: drop the schema from a thread of its own.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                if let Ok((client, connection)) =
                    tokio_postgres::connect(&postgres_url(), NoTls).await
                {
                    tokio::spawn(connection);
                    let _ = client.batch_execute(&sql).await;
                }
            });
        })
        .join();
    }
}

/// `SELECT 1` through `connector`, answered: on a pool of one connection,
/// whatever that connection was sent before has been answered too.
#[allow(dead_code)] // not every test file reads through a connector
pub async fn select_one(connector: &dyn tributary_connector::Connector) {
    connector
        .query(&tributary_connector::Statement::new("SELECT 1"), None)
        .await
        .expect("SELECT 1")
        .collect_one()
        .await
        .expect("its row");
}

/// Creates an extension unless it exists; tolerates the race of two tests
/// creating it at once.
pub async fn ensure_extension(client: &Client, name: &str) {
    for _ in 0..5 {
        match client
            .batch_execute(&format!(
                "CREATE EXTENSION IF NOT EXISTS {name} SCHEMA public"
            ))
            .await
        {
            Ok(()) => return,
            Err(e)
                if e.code()
                    .is_some_and(|c| c.code() == "23505" || c.code() == "42710") =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(e) => panic!("CREATE EXTENSION {name}: {e:?}"),
        }
    }
}

/// A batch as text cells, like `testkit::batch_to_strings`, with timestamp
/// time zones dropped first (Arrow formats a named zone such as "UTC" only
/// with its `chrono-tz` feature; the values are UTC instants either way).
pub fn cells(batch: &arrow_array::RecordBatch) -> Vec<Vec<Option<String>>> {
    use arrow_array::Array as _;
    use arrow_array::cast::AsArray;
    use arrow_array::types::TimestampMicrosecondType;
    use arrow_schema::{DataType, Field, Schema, TimeUnit};
    use std::sync::Arc;
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if let DataType::Timestamp(TimeUnit::Microsecond, Some(_)) = field.data_type() {
            let naive = column
                .as_primitive::<TimestampMicrosecondType>()
                .clone()
                .with_timezone_opt(None::<String>);
            fields.push(Field::new(field.name(), naive.data_type().clone(), true));
            columns.push(Arc::new(naive) as arrow_array::ArrayRef);
        } else {
            fields.push(Field::new(field.name(), field.data_type().clone(), true));
            columns.push(column.clone());
        }
    }
    let batch =
        arrow_array::RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("batch");
    tributary_connector::testkit::batch_to_strings(&batch)
}
