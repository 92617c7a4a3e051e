//! The federation adapter: runs the SQL that datafusion-federation unparsed
//! for one source through that source's connector, streaming Arrow batches.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::datatypes::TimeUnit;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{PhysicalExpr, SendableRecordBatchStream};
use datafusion::sql::sqlparser::ast;
use datafusion::sql::unparser::Unparser;
use datafusion::sql::unparser::dialect::{
    CharacterLengthStyle, DateFieldExtractStyle, Dialect, DistinctFromStyle, MySqlDialect,
    PostgreSqlDialect, SqliteDialect,
};
use datafusion_federation::sql::{AstAnalyzer, SQLExecutor};
use futures::{StreamExt, TryStreamExt};
use tributary_connector::{Connector, ConnectorError, Statement};
use tributary_schema_cache::{CatalogSnapshot, SourceKind};

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
            compute_context: compute_context(name),
            connector,
            dialect: unparser_dialect(kind),
        }
    }
}

/// The federation compute context of a source: unique per source.
pub fn compute_context(source: &str) -> String {
    format!("tributary-source:{source}")
}

/// Every source's kind by its compute context (for the pushdown rules).
pub fn compute_contexts(snapshot: &CatalogSnapshot) -> HashMap<String, SourceKind> {
    snapshot
        .sources
        .iter()
        .filter_map(|(name, entry)| {
            entry
                .schema
                .as_ref()
                .map(|m| (compute_context(name), m.kind))
        })
        .collect()
}

/// The SQL dialect DataFusion's unparser writes for a source kind.
pub fn unparser_dialect(kind: SourceKind) -> Arc<dyn Dialect> {
    match kind {
        SourceKind::Postgres => Arc::new(PostgreSqlDialect {}),
        SourceKind::Mysql | SourceKind::Mariadb => Arc::new(MySqlDialect {}),
        SourceKind::Sqlite => Arc::new(SqliteUnparser(SqliteDialect {})),
    }
}

/// DataFusion's SQLite dialect, but naming every derived table (as its
/// PostgreSQL and MySQL dialects do): without a name, the unparser's
/// qualified references to a derived table's columns do not resolve.
struct SqliteUnparser(SqliteDialect);

impl Dialect for SqliteUnparser {
    fn requires_derived_table_alias(&self) -> bool {
        true
    }
    fn supports_qualify(&self) -> bool {
        self.0.supports_qualify()
    }
    fn identifier_quote_style(&self, identifier: &str) -> Option<char> {
        self.0.identifier_quote_style(identifier)
    }
    fn date_field_extract_style(&self) -> DateFieldExtractStyle {
        self.0.date_field_extract_style()
    }
    fn date32_cast_dtype(&self) -> ast::DataType {
        self.0.date32_cast_dtype()
    }
    fn character_length_style(&self) -> CharacterLengthStyle {
        self.0.character_length_style()
    }
    fn distinct_from_style(&self) -> DistinctFromStyle {
        self.0.distinct_from_style()
    }
    fn supports_column_alias_in_table_alias(&self) -> bool {
        self.0.supports_column_alias_in_table_alias()
    }
    fn timestamp_cast_dtype(&self, time_unit: &TimeUnit, tz: &Option<Arc<str>>) -> ast::DataType {
        self.0.timestamp_cast_dtype(time_unit, tz)
    }
    fn scalar_function_to_sql_overrides(
        &self,
        unparser: &Unparser,
        func_name: &str,
        args: &[Expr],
    ) -> Result<Option<ast::Expr>> {
        self.0
            .scalar_function_to_sql_overrides(unparser, func_name, args)
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

    fn ast_analyzer(&self) -> Option<AstAnalyzer> {
        Some(Box::new(super::rules::unqualify_single_table))
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
