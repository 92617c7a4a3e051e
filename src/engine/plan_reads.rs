//! Reads built as plans rather than SQL text (the REST API): the builder
//! gets the caller's view of the catalog, and the plan then takes the same
//! road as a SQL query — the role's permissions applied before
//! optimization, federation, streaming. Also the check of written rows
//! against a permission rule's `check` filter.

use std::sync::Arc;

use datafusion::arrow::array::timezone::Tz;
use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::Int64Type;
use datafusion::common::TableReference;
use datafusion::dataframe::DataFrame;
use datafusion::datasource::{MemTable, TableProvider, provider_as_source};
use datafusion::error::DataFusionError;
use datafusion::functions_aggregate::expr_fn::count;
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder, lit};
use datafusion::physical_plan::execute_stream;
use tributary_schema_cache::{CatalogSnapshot, TableRef};

use super::{Caller, Engine, EngineError, QueryOutput, checked_plan, denied, permission_rewrite};
use crate::filter::{self, Providers, Variables};

/// What a plan builder sees.
pub struct PlanScope<'a> {
    pub snapshot: &'a CatalogSnapshot,
    /// Each table as the caller may read it: for a role only its tables,
    /// with their readable columns (its row filters are added after the
    /// builder, to every scan of these, subqueries included).
    pub tables: &'a Providers<'a>,
    /// Each table whole, unfiltered: for the rows a write targets, whose
    /// own rule's filter the builder adds.
    pub raw_tables: &'a Providers<'a>,
    /// The request's variables (a role's; `None` for the admin).
    pub variables: Option<&'a Variables>,
    /// The zone date filters read days and months in.
    pub time_zone: Option<Tz>,
}

/// What to do with the rows of a built plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadShape {
    Rows,
    /// Only how many rows there are: counted after the permissions are
    /// applied, so a role that may select rows may count them.
    Count,
}

impl Engine {
    /// Builds a plan with `build` for `caller`, applies the caller's
    /// permissions and starts it. A `Count` plan answers one row with one
    /// Int64 column.
    pub async fn query_plan<E>(
        &self,
        caller: &Caller,
        shape: ReadShape,
        build: impl FnOnce(&PlanScope<'_>) -> Result<LogicalPlan, E>,
    ) -> Result<QueryOutput, E>
    where
        E: From<EngineError>,
    {
        let session = self.session()?;
        let role = self.role_session(&session, caller)?;
        let planning = super::planning(&session, role.as_ref(), caller, self.time_zone);
        let plan = {
            let raw = |table: &TableRef| (session.providers)(table);
            let visible = |table: &TableRef| -> Option<Arc<dyn TableProvider>> {
                let whole = (session.providers)(table)?;
                match &role {
                    None => Some(whole),
                    Some(role) => permission_rewrite::role_table(&role.policy, table, whole),
                }
            };
            let variables = match caller {
                Caller::Role { variables, .. } => Some(variables),
                Caller::Admin => None,
            };
            build(&PlanScope {
                snapshot: &session.snapshot,
                tables: &visible,
                raw_tables: &raw,
                variables,
                time_zone: self.time_zone,
            })?
        };
        let (mut plan, row_limit) = checked_plan(&planning, plan)?;
        if shape == ReadShape::Count {
            plan = LogicalPlanBuilder::from(plan)
                .aggregate(
                    Vec::<datafusion::logical_expr::Expr>::new(),
                    vec![count(lit(1)).alias("count")],
                )
                .and_then(LogicalPlanBuilder::build)
                .map_err(|e| denied(e, &planning))?;
        }
        let frame = DataFrame::new(planning.context.state(), plan);
        let schema = Arc::new(frame.schema().as_arrow().clone());
        let task = Arc::new(frame.task_ctx());
        let physical = frame
            .create_physical_plan()
            .await
            .map_err(EngineError::from)?;
        let stream = execute_stream(physical, task).map_err(EngineError::from)?;
        Ok(QueryOutput {
            schema,
            stream,
            row_limit: if shape == ReadShape::Count {
                None
            } else {
                row_limit
            },
        })
    }

    /// How many of `rows` (rows of `table` just written) fail the filter
    /// `check`: not true for them. Related tables in the filter are read
    /// from their sources as they are (outside the write's transaction).
    pub async fn failing_rows(
        &self,
        table: &TableRef,
        rows: RecordBatch,
        check: &serde_json::Value,
        variables: Option<&Variables>,
    ) -> Result<u64, EngineError> {
        let session = self.session()?;
        let name = TableReference::full(
            table.source.as_str(),
            table.schema.as_str(),
            table.table.as_str(),
        );
        let written = MemTable::try_new(rows.schema(), vec![vec![rows]])?;
        let cx = filter::Context {
            snapshot: &session.snapshot,
            providers: session.providers.as_ref(),
            variables,
            time_zone: self.time_zone,
        };
        let predicate = filter::compile(check, table, &name, &cx)
            .map_err(|e| EngineError::Denied(format!("the check rule cannot be applied: {e}")))?;
        let plan = LogicalPlanBuilder::scan(name, provider_as_source(Arc::new(written)), None)?
            .filter(predicate.is_not_true())?
            .aggregate(
                Vec::<datafusion::logical_expr::Expr>::new(),
                vec![count(lit(1))],
            )?
            .build()?;
        let batches = DataFrame::new(session.context.state(), plan)
            .collect()
            .await?;
        let failing = batches
            .first()
            .and_then(|b| b.column(0).as_primitive_opt::<Int64Type>())
            .map(|c| c.value(0))
            .ok_or_else(|| DataFusionError::Internal("count(*) answered no row".into()))?;
        Ok(u64::try_from(failing).unwrap_or(0))
    }
}
