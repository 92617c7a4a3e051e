//! The federation adapter: runs the SQL that datafusion-federation unparsed
//! for one source through that source's connector, streaming Arrow batches.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::{DataFusionError, Result};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{PhysicalExpr, SendableRecordBatchStream};
use datafusion::sql::unparser::dialect::{Dialect, MySqlDialect, PostgreSqlDialect, SqliteDialect};
use datafusion_federation::sql::SQLExecutor;
use futures::{StreamExt, TryStreamExt};
use tributary_connector::{Connector, ConnectorError, Statement};
use tributary_schema_cache::SourceKind;

/// One source as the federation planner sees it.
pub struct SourceExecutor {
    name: String,
    /// Unique per source: only plans over tables of one source are merged
    /// into one statement (two sources never get a joined query, even if they
    /// point at the same server).
    compute_context: String,
    connector: Arc<dyn Connector>,
    dialect: Arc<dyn Dialect>,
}

impl SourceExecutor {
    pub fn new(name: &str, kind: SourceKind, connector: Arc<dyn Connector>) -> Self {
        Self {
            name: name.to_string(),
            compute_context: format!("tributary-source:{name}"),
            connector,
            dialect: unparser_dialect(kind),
        }
    }
}

/// The SQL dialect DataFusion's unparser writes for a source kind.
pub fn unparser_dialect(kind: SourceKind) -> Arc<dyn Dialect> {
    match kind {
        SourceKind::Postgres => Arc::new(PostgreSqlDialect {}),
        SourceKind::Mysql | SourceKind::Mariadb => Arc::new(MySqlDialect {}),
        SourceKind::Sqlite => Arc::new(SqliteDialect {}),
    }
}

/// Wraps a connector error so the HTTP layer can recover it (and name the
/// source that is down).
pub fn to_datafusion(error: ConnectorError) -> DataFusionError {
    DataFusionError::External(Box::new(error))
}

#[async_trait]
impl SQLExecutor for SourceExecutor {
    fn name(&self) -> &str {
        &self.name
    }

    fn compute_context(&self) -> Option<String> {
        Some(self.compute_context.clone())
    }

    fn dialect(&self) -> Arc<dyn Dialect> {
        self.dialect.clone()
    }

    fn execute(
        &self,
        query: &str,
        schema: SchemaRef,
        _filters: &[Arc<dyn PhysicalExpr>],
    ) -> Result<SendableRecordBatchStream> {
        tracing::debug!(source = %self.name, sql = %query, "federated query");
        let connector = self.connector.clone();
        let statement = Statement::new(query);
        let expected = schema.clone();
        // The connection is checked out when the stream is first polled.
        let rows = futures::stream::once(async move {
            let stream = connector
                .query(&statement, Some(expected))
                .await
                .map_err(to_datafusion)?;
            Ok::<_, DataFusionError>(stream.map_err(to_datafusion))
        })
        .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            schema,
            rows.boxed(),
        )))
    }

    async fn table_names(&self) -> Result<Vec<String>> {
        Err(DataFusionError::NotImplemented(
            "tables come from the catalog, not from the executor".into(),
        ))
    }

    async fn get_table_schema(&self, table_name: &str) -> Result<SchemaRef> {
        Err(DataFusionError::NotImplemented(format!(
            "the schema of {table_name} comes from the catalog, not from the executor"
        )))
    }
}
