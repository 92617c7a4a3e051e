//! The federation adapter: runs the SQL that datafusion-federation unparsed
//! for one source through that source's connector, streaming Arrow batches.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::Statistics;
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{PhysicalExpr, SendableRecordBatchStream};
use datafusion::sql::unparser::dialect::Dialect;
use datafusion_federation::sql::{AstAnalyzer, SQLExecutor};
use futures::{StreamExt, TryStreamExt};
use tributary_connector::{Connector, ConnectorError, Statement};

use super::runtime_filter::JoinFilters;
use super::{dialect, runtime_filter, statement_log};
use crate::metrics::Metrics;
use tributary_schema_cache::{CatalogSnapshot, SourceKind, SourceSchema};

/// One source as the federation planner sees it.
pub struct SourceExecutor {
    name: String,
    /// Unique per source: only plans over tables of one source are merged
    /// into one statement (two sources never get a joined query, even if they
    /// point at the same server).
    compute_context: String,
    connector: Arc<dyn Connector>,
    dialect: Arc<dyn Dialect>,
    /// The catalog's row estimate of each table, by `(schema, table)`.
    row_estimates: HashMap<(String, String), u64>,
    kind: SourceKind,
    metrics: Arc<Metrics>,
    /// The hash joins' filters a statement waits for.
    joins: Arc<JoinFilters>,
}

impl SourceExecutor {
    pub fn new(
        model: &SourceSchema,
        connector: Arc<dyn Connector>,
        metrics: Arc<Metrics>,
        joins: Arc<JoinFilters>,
    ) -> Self {
        let row_estimates = model
            .tables()
            .filter_map(|(schema, t)| {
                t.row_estimate
                    .map(|n| ((schema.to_string(), t.name.clone()), n))
            })
            .collect();
        Self {
            name: model.source.clone(),
            compute_context: compute_context(&model.source),
            connector,
            dialect: dialect::for_kind(model.kind),
            row_estimates,
            kind: model.kind,
            metrics,
            joins,
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
        let kind = self.kind;
        Some(Box::new(move |statement| {
            let statement = super::rules::resolve_references(statement)?;
            Ok(super::dialect_ast::respell(statement, kind))
        }))
    }

    fn execute(
        &self,
        query: &str,
        schema: SchemaRef,
        filters: &[Arc<dyn PhysicalExpr>],
    ) -> Result<SendableRecordBatchStream> {
        let connector = self.connector.clone();
        let dialect = self.dialect.clone();
        let (query, expected, filters, kind) = (
            query.to_string(),
            schema.clone(),
            filters.to_vec(),
            self.kind,
        );
        let (source, metrics) = (self.name.clone(), self.metrics.clone());
        let joins = self.joins.clone();
        // The connection is checked out when the stream is first polled; by
        // then a join's build side has finished, so its runtime filter is
        // ready to narrow this query.
        let rows = futures::stream::once(async move {
            let sql =
                runtime_filter::narrow(&query, &expected, &filters, &joins, kind, dialect.as_ref())
                    .await;
            tracing::debug!(source = %source, sql = %sql, "federated query");
            statement_log::note_sent(&sql);
            metrics.source_statement(&source);
            let stream = connector
                .query(&Statement::new(sql), Some(expected))
                .await
                .map_err(to_datafusion)?;
            statement_log::note_connected(stream.connected());
            Ok::<_, DataFusionError>(stream.map_err(to_datafusion).inspect_ok(move |batch| {
                metrics.source_rows(&source, batch.num_rows());
            }))
        })
        .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            schema,
            rows.boxed(),
        )))
    }

    /// Row estimates for join ordering: a sub-plan over one table is
    /// estimated from the catalog (a third of it when filtered or grouped,
    /// the usual guess); anything else is unknown.
    async fn statistics(&self, plan: &LogicalPlan) -> Result<Statistics> {
        let mut statistics = Statistics::new_unknown(plan.schema().as_arrow());
        let mut tables = Vec::new();
        let mut narrowed = false;
        let mut shaped = false;
        plan.apply(|node| {
            match node {
                LogicalPlan::TableScan(scan) => tables.push(scan.table_name.clone()),
                // A grouped table has at most as many rows as the table: the
                // estimate stays an upper bound (partial aggregates are that).
                LogicalPlan::Filter(_) | LogicalPlan::Aggregate(_) => narrowed = true,
                LogicalPlan::Join(_) | LogicalPlan::Limit(_) | LogicalPlan::Distinct(_) => {
                    shaped = true;
                }
                _ => {}
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        if let ([table], false) = (tables.as_slice(), shaped) {
            let key = (
                table.schema().unwrap_or_default().to_string(),
                table.table().to_string(),
            );
            if let Some(rows) = self.row_estimates.get(&key) {
                let rows = usize::try_from(*rows).unwrap_or(usize::MAX);
                statistics.num_rows = Precision::Inexact(if narrowed { rows / 3 } else { rows });
            }
        }
        Ok(statistics)
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
