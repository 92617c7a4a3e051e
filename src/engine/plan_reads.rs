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
use datafusion::datasource::{MemTable, TableProvider, provider_as_source, source_as_provider};
use datafusion::error::DataFusionError;
use datafusion::functions_aggregate::expr_fn::count;
use datafusion::logical_expr::expr::Placeholder;
use datafusion::logical_expr::{Expr, Filter};
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder, lit};
use datafusion::physical_plan::execute_stream;
use datafusion::scalar::ScalarValue;
use serde_json::Value;
use tributary_schema_cache::{CatalogSnapshot, TableRef};

use super::request_key::{Markers, RequestKey};
use super::{
    Caller, Engine, EngineError, QueryOutput, checked_plan, denied, executor, fast_path,
    permission_rewrite,
};
use crate::filter::{self, Providers, Variables};
use crate::metrics::ReadPath;

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

/// A read as its request (see `request_key`): a text naming everything
/// about it but its filter's values (`None`: a read planned each time),
/// and the filter.
pub struct Request<'a> {
    pub shape: Option<String>,
    pub filter: Option<&'a Value>,
}

impl Engine {
    /// Builds a plan with `build` for `caller`, applies the caller's
    /// permissions and starts it. A `Count` plan answers one row with one
    /// Int64 column.
    pub async fn query_plan<E>(
        &self,
        caller: &Caller,
        shape: ReadShape,
        mut build: impl FnMut(&PlanScope<'_>) -> Result<LogicalPlan, E>,
    ) -> Result<QueryOutput, E>
    where
        E: From<EngineError>,
    {
        self.query_read(caller, shape, None, |scope, _| build(scope))
            .await
    }

    /// [`Self::query_plan`] for a read whose request is known: `build`
    /// plans with the filter it is given (always the request's, or a copy
    /// with markers for its values while the request's shape is learned),
    /// and a request of a learned shape skips planning altogether.
    pub async fn query_read<E>(
        &self,
        caller: &Caller,
        shape: ReadShape,
        request: Option<Request<'_>>,
        mut build: impl FnMut(&PlanScope<'_>, Option<&Value>) -> Result<LogicalPlan, E>,
    ) -> Result<QueryOutput, E>
    where
        E: From<EngineError>,
    {
        let session = self.session()?;
        let role = self.role_session(&session, caller)?;
        let variables = match caller {
            Caller::Role { variables, .. } => Some(variables),
            Caller::Admin => None,
        };
        // The fast path, as for SQL texts (see `fast_path`): the plan with
        // its filter values as parameters is the key, or the request's
        // shape once learned; a role's answers are learned per user, and
        // not when they depend on the clock or are capped.
        let learnable = match &role {
            Some(role) => (!role.policy.uses_now).then_some(&role.shapes),
            None => Some(&session.shapes),
        };
        let user_key = |text: String| match variables {
            Some(variables) => super::user_key(variables, &text),
            None => text,
        };
        let keyed = learnable
            .zip(request.as_ref())
            .and_then(|(shapes, request)| {
                let shape = request.shape.clone()?;
                let key = RequestKey::of(&user_key(shape), request.filter)?;
                Some((shapes, key, request.filter))
            });
        // A value the database refused here is the plan shape's too: the
        // planner decides.
        let mut refused = false;
        if let Some((shapes, key, _)) = &keyed
            && let Some(fast_path::RequestShape::Direct(direct, mapping)) =
                shapes.request(&key.text)
            && let Some(values) = key.values(&mapping)
            && let Some(bound) = direct.bind(&values)
        {
            match self
                .start_direct(&direct, bound, ReadPath::RequestShape)
                .await
            {
                Some(answer) => return answer.map_err(E::from),
                None => refused = true,
            }
        }
        // The planner's part, boxed: its state (DataFusion's session and
        // planning futures) is large, and a read answered above would
        // otherwise carry it too, copied at each await on the way up.
        Box::pin(async {
            let planning = super::planning(&session, role.as_ref(), caller, self.time_zone);
            let mut plan_with = |filter: Option<&Value>| -> Result<(LogicalPlan, Option<u64>), E> {
                let raw = |table: &TableRef| (session.providers)(table);
                let visible = |table: &TableRef| -> Option<Arc<dyn TableProvider>> {
                    let whole = (session.providers)(table)?;
                    match &role {
                        None => Some(whole),
                        Some(role) => permission_rewrite::role_table(&role.policy, table, whole),
                    }
                };
                let plan = build(
                    &PlanScope {
                        snapshot: &session.snapshot,
                        tables: &visible,
                        raw_tables: &raw,
                        variables,
                        time_zone: self.time_zone,
                    },
                    filter,
                )?;
                let (mut plan, mut row_limit) = checked_plan(&planning, plan)?;
                if shape == ReadShape::Count {
                    row_limit = None;
                    plan = LogicalPlanBuilder::from(plan)
                        .aggregate(Vec::<Expr>::new(), vec![count(lit(1)).alias("count")])
                        .and_then(LogicalPlanBuilder::build)
                        .map_err(|e| denied(e, &planning))?;
                }
                Ok((plan, row_limit))
            };
            let (plan, row_limit) = plan_with(request.as_ref().and_then(|r| r.filter))?;
            let open = learnable
                .filter(|_| row_limit.is_none())
                .and_then(|shapes| {
                    let (open, values) = parametrize(&plan)?;
                    let key = user_key(open.display_indent().to_string());
                    Some((shapes, key, open, values))
                });
            // The request's shape is learned from its plan's (see
            // `note_request`): planned once more with markers for its values.
            let mut probe = |marked: Option<&Value>, plan_key: &str| {
                let (plan, row_limit) = plan_with(marked).ok()?;
                let (open, values) = parametrize(&plan).filter(|_| row_limit.is_none())?;
                (user_key(open.display_indent().to_string()) == plan_key).then_some(values)
            };
            let mut noted = false;
            if let Some((shapes, plan_key, _, values)) = &open
                && let Some(fast_path::Shape::Direct(direct)) = shapes.get(plan_key)
            {
                if let Some((_, key, filter)) = &keyed {
                    let plan_shape = fast_path::Shape::Direct(direct.clone());
                    note_request(shapes, key, *filter, Some(plan_shape), values, |marked| {
                        probe(marked, plan_key)
                    });
                    noted = true;
                }
                if !refused
                    && let Some(bound) = direct.bind(values)
                    && let Some(answer) =
                        self.start_direct(&direct, bound, ReadPath::PlanShape).await
                {
                    return answer.map_err(E::from);
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
            if let Some((shapes, plan_key, open, values)) = open {
                match shapes.get(&plan_key) {
                    None => shapes.insert(&plan_key, fast_path::Shape::Seen),
                    Some(fast_path::Shape::Seen) => {
                        let open = DataFrame::new(state.clone(), open);
                        let learned = self
                            .learn_frame(&planning, open, physical.as_ref(), &schema)
                            .await;
                        shapes.insert(&plan_key, learned);
                    }
                    Some(_) => {}
                }
                if !noted && let Some((_, key, filter)) = &keyed {
                    note_request(
                        shapes,
                        key,
                        *filter,
                        shapes.get(&plan_key),
                        &values,
                        |marked| probe(marked, &plan_key),
                    );
                }
            }
            let physical =
                super::as_caller::as_current_caller(physical).map_err(EngineError::from)?;
            let stream = execute_stream(physical, task).map_err(EngineError::from)?;
            self.metrics.read(ReadPath::Planner);
            Ok(QueryOutput {
                schema,
                stream,
                row_limit,
            })
        })
        .await
    }

    /// Sends a learned statement with its values bound; `None` when the
    /// database refused a value (the planner then decides).
    async fn start_direct(
        &self,
        direct: &fast_path::Direct,
        values: Vec<tributary_connector::Value>,
        path: ReadPath,
    ) -> Option<Result<QueryOutput, EngineError>> {
        match direct.start(values, &self.metrics).await {
            Ok(output) => {
                self.metrics.read(path);
                Some(Ok(output))
            }
            Err(e) if fast_path::refused_value(&e) => None,
            Err(e) => Some(Err(EngineError::DataFusion(executor::to_datafusion(e)))),
        }
    }

    /// How many of `rows` (rows of `table` just written) fail the filter
    /// `check`: not true for them. Related tables in the filter are read
    /// from their sources as they are (outside the write's transaction).
    pub async fn failing_rows(
        &self,
        table: &TableRef,
        rows: RecordBatch,
        check: &Value,
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

/// Notes a keyed request among `shapes`: its shape is seen the first time
/// and learned the next time its plan's shape (`plan_shape`) is known.
/// `values` are its plan's parameter values; `marked` plans the request
/// with the marked filter (none without a filter: the plan's values are
/// then all constants) and answers that plan's parameter values when it
/// has the same key as the request's plan. A request whose value holds its
/// own marker leaves the shape to the next one.
fn note_request(
    shapes: &fast_path::Shapes,
    key: &RequestKey,
    filter: Option<&Value>,
    plan_shape: Option<fast_path::Shape>,
    values: &[ScalarValue],
    marked: impl FnOnce(Option<&Value>) -> Option<Vec<ScalarValue>>,
) {
    let learned = match (shapes.request(&key.text), plan_shape) {
        (None, _) => fast_path::RequestShape::Seen,
        (Some(fast_path::RequestShape::Seen), Some(fast_path::Shape::Direct(direct))) => {
            let (filter, markers) = match filter {
                Some(filter) => match key.markers(filter) {
                    Some((marked, markers)) => (Some(marked), markers),
                    None => return,
                },
                None => (None, Markers::none()),
            };
            match marked(filter.as_ref()).and_then(|probe| key.mapping(&markers, values, &probe)) {
                Some(mapping) => fast_path::RequestShape::Direct(direct, Arc::new(mapping)),
                None => fast_path::RequestShape::Planned,
            }
        }
        (Some(fast_path::RequestShape::Seen), Some(fast_path::Shape::Planned)) => {
            fast_path::RequestShape::Planned
        }
        _ => return,
    };
    shapes.insert_request(&key.text, learned);
}

/// The plan with the values its filters compare with as parameters (`$1`…,
/// typed), and those values; `None` when a filter holds a subquery (its
/// text would not show it whole, so it cannot be a key), a value the fast
/// path cannot bind, or when the plan scans rows held in memory (a scan's
/// text names its table, not its provider: keyed, it would take the
/// statement learned for the table's source and read the source instead).
fn parametrize(plan: &LogicalPlan) -> Option<(LogicalPlan, Vec<ScalarValue>)> {
    let mut values = Vec::new();
    let mut bindable = true;
    let open = plan
        .clone()
        .transform_up(|node| {
            if let LogicalPlan::TableScan(scan) = &node
                && source_as_provider(&scan.source)
                    .is_ok_and(|p| p.downcast_ref::<MemTable>().is_some())
            {
                bindable = false;
                return Ok(Transformed::no(node));
            }
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
    // A plan without values (a list or a group-by without a filter) is
    // its own key: learned the same way, it skips the physical planning.
    bindable.then_some((open.data, values))
}
