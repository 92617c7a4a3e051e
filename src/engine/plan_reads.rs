//! Reads built as plans rather than SQL text (the REST API): the builder
//! gets the caller's view of the catalog, and the plan then takes the same
//! road as a SQL query — the role's permissions applied before
//! optimization, federation, streaming. Also the check of written rows
//! against a permission rule's `check` filter.

use std::sync::Arc;

use datafusion::arrow::array::timezone::Tz;
use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Field, Int64Type};
use datafusion::common::TableReference;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::dataframe::DataFrame;
use datafusion::datasource::{MemTable, TableProvider, provider_as_source};
use datafusion::error::DataFusionError;
use datafusion::functions_aggregate::expr_fn::count;
use datafusion::logical_expr::expr::Placeholder;
use datafusion::logical_expr::{Expr, Filter};
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder, lit};
use datafusion::physical_plan::execute_stream;
use datafusion::scalar::ScalarValue;
use tributary_schema_cache::{CatalogSnapshot, TableRef};

use super::{
    Caller, Engine, EngineError, QueryOutput, checked_plan, denied, executor, fast_path,
    permission_rewrite,
};
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
        let (mut plan, mut row_limit) = checked_plan(&planning, plan)?;
        if shape == ReadShape::Count {
            row_limit = None;
            plan = LogicalPlanBuilder::from(plan)
                .aggregate(Vec::<Expr>::new(), vec![count(lit(1)).alias("count")])
                .and_then(LogicalPlanBuilder::build)
                .map_err(|e| denied(e, &planning))?;
        }
        // The fast path, as for SQL texts (see `fast_path`): the plan with
        // its filter values as parameters is the key; a role's answers are
        // learned per user, and not when they depend on the clock or are
        // capped.
        let learnable = match (&role, caller) {
            (Some(role), Caller::Role { variables, .. }) => {
                (!role.policy.uses_now).then(|| (&role.shapes, Some(variables)))
            }
            _ => Some((&session.shapes, None)),
        }
        .filter(|_| row_limit.is_none());
        let open = learnable.and_then(|(shapes, variables)| {
            let (open, values) = parametrize(&plan)?;
            let text = open.display_indent().to_string();
            let key = match variables {
                Some(variables) => super::user_key(variables, &text),
                None => text,
            };
            Some((shapes, key, open, values))
        });
        if let Some((shapes, key, _, values)) = &open
            && let Some(fast_path::Shape::Direct(direct)) = shapes.get(key)
            && let Some(bound) = direct.bind(values)
        {
            match direct.start(bound, &self.metrics).await {
                Ok(output) => return Ok(output),
                Err(e) if fast_path::refused_value(&e) => {}
                Err(e) => return Err(EngineError::DataFusion(executor::to_datafusion(e)).into()),
            }
        }
        let state = planning.context.state();
        let frame = DataFrame::new(state.clone(), plan);
        let schema = Arc::new(frame.schema().as_arrow().clone());
        let task = Arc::new(frame.task_ctx());
        let physical = frame
            .create_physical_plan()
            .await
            .map_err(EngineError::from)?;
        if let Some((shapes, key, open, _)) = open {
            match shapes.get(&key) {
                None => shapes.insert(&key, fast_path::Shape::Seen),
                Some(fast_path::Shape::Seen) => {
                    let open = DataFrame::new(state.clone(), open);
                    let learned = self
                        .learn_frame(&planning, open, physical.as_ref(), &schema)
                        .await;
                    shapes.insert(&key, learned);
                }
                Some(_) => {}
            }
        }
        let stream = execute_stream(physical, task).map_err(EngineError::from)?;
        Ok(QueryOutput {
            schema,
            stream,
            row_limit,
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
            .aggregate(Vec::<Expr>::new(), vec![count(lit(1))])?
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

/// The plan with the values its filters compare with as parameters (`$1`…,
/// typed), and those values; `None` when a filter holds a subquery (its
/// text would not show it whole, so it cannot be a key) or a value the
/// fast path cannot bind.
fn parametrize(plan: &LogicalPlan) -> Option<(LogicalPlan, Vec<ScalarValue>)> {
    let mut values = Vec::new();
    let mut bindable = true;
    let open = plan
        .clone()
        .transform_up(|node| {
            let LogicalPlan::Filter(filter) = &node else {
                return Ok(Transformed::no(node));
            };
            let predicate = filter.predicate.clone().transform_up(|e| match e {
                Expr::Exists(_) | Expr::InSubquery(_) | Expr::ScalarSubquery(_) => {
                    bindable = false;
                    Ok(Transformed::no(e))
                }
                Expr::Literal(value, _) if fast_path::bindable(&value) => {
                    values.push(value.clone());
                    let field = Arc::new(Field::new("", value.data_type(), true));
                    Ok(Transformed::yes(Expr::Placeholder(
                        Placeholder::new_with_field(format!("${}", values.len()), Some(field)),
                    )))
                }
                Expr::Literal(..) => {
                    bindable = false;
                    Ok(Transformed::no(e))
                }
                other => Ok(Transformed::no(other)),
            })?;
            if !predicate.transformed {
                return Ok(Transformed::no(node));
            }
            Filter::try_new(predicate.data, filter.input.clone())
                .map(|f| Transformed::yes(LogicalPlan::Filter(f)))
        })
        .ok()?;
    (bindable && !values.is_empty()).then_some((open.data, values))
}
