//! The SQL engine: a DataFusion session whose catalogs are the registered
//! sources. Federation turns the largest sub-plan touching only one source
//! into one SQL statement in that source's dialect; cross-source joins and
//! aggregates run in DataFusion. Every API that reads data comes through
//! [`Engine::query`].

mod around_statement;
mod as_caller;
mod catalog;
mod decimal_avg;
mod dialect;
mod dialect_ast;
mod executor;
mod explain;
mod fast_path;
mod federate;
#[cfg(test)]
mod golden_tests;
mod join_groups;
mod json_columns;
mod mysql_strings;
mod names;
mod null_order;
mod partial_aggregates;
mod permission_rewrite;
mod plan_reads;
mod pushdown;
mod request_key;
mod rules;
mod runtime_filter;
mod statement_log;
mod window_names;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use datafusion::arrow::array::timezone::Tz;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::ParamValues;
use datafusion::dataframe::DataFrame;
use datafusion::error::DataFusionError;
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::execution::{FunctionRegistry, SendableRecordBatchStream};
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::{ExecutionPlan, execute_stream};
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use datafusion::scalar::ScalarValue;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion_federation::FederatedQueryPlanner;
use futures::StreamExt;
use tributary_connector::ConnectorError;
use tributary_schema_cache::{CatalogSnapshot, SchemaCache, SourceKind};

use crate::filter::Variables;
use crate::metrics::Metrics;
use crate::permissions::{Permissions, RolePolicy};
use crate::sources::SourceManager;

pub use catalog::{DEFAULT_CATALOG, DEFAULT_SCHEMA, table_schema};
pub use decimal_avg::avg;
pub use explain::SourceQuery;
pub use plan_reads::{PlanScope, ReadShape, Request};
pub use statement_log::{Analysis, SourceRun};

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The statement is not something this endpoint runs (DDL, DML, several statements).
    #[error("{0}")]
    NotAllowed(String),
    /// Parsing, planning or execution failed.
    #[error("{0}")]
    DataFusion(#[from] DataFusionError),
    #[error("the query took longer than {0:?}")]
    Timeout(Duration),
    /// The caller's role may not read what the query reads.
    #[error("{0}")]
    Denied(String),
}

/// Who a query runs for.
#[derive(Debug, Clone)]
pub enum Caller {
    /// Every table, every row.
    Admin,
    /// A role's permissions, with the request's variables for its filters.
    Role { role: String, variables: Variables },
}

impl EngineError {
    /// The connector error inside, if a source failed (down, refused, timed out).
    pub fn connector_error(&self) -> Option<&ConnectorError> {
        let Self::DataFusion(error) = self else {
            return None;
        };
        find_error::<ConnectorError>(error)
    }
}

/// Walks a DataFusion error (and what it wraps, shared errors included)
/// for an error of type `T`: a connector's, or a permission refusal.
fn find_error<T: std::error::Error + 'static>(error: &DataFusionError) -> Option<&T> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        if let Some(found) = e.downcast_ref::<DataFusionError>().and_then(|d| match d {
            DataFusionError::Shared(inner) => find_error::<T>(inner),
            _ => None,
        }) {
            return Some(found);
        }
        current = e.source();
    }
    None
}

/// A running query: its result schema and its batches, streamed.
pub struct QueryOutput {
    pub schema: SchemaRef,
    pub stream: SendableRecordBatchStream,
    /// The smallest row limit of the role's select rules for the tables read.
    pub row_limit: Option<u64>,
}

/// A session and the catalog it was built from (names are resolved against
/// the same catalog the session plans with).
struct Session {
    context: SessionContext,
    snapshot: Arc<CatalogSnapshot>,
    /// What is known of each query text planned with this session.
    shapes: fast_path::Shapes,
    /// Every source table's provider, by table (relation filters scan them).
    providers: Box<crate::filter::Providers<'static>>,
    /// Per role: its policy and a context planning against its catalogs.
    roles: std::sync::Mutex<std::collections::HashMap<String, Arc<RoleSession>>>,
}

/// One role's planning context within a [`Session`].
struct RoleSession {
    policy: Arc<RolePolicy>,
    context: SessionContext,
    shapes: fast_path::Shapes,
}

impl Session {
    fn new(
        context: SessionContext,
        snapshot: Arc<CatalogSnapshot>,
        providers: permission_rewrite::TableProviders,
    ) -> Self {
        Self {
            context,
            snapshot,
            shapes: fast_path::Shapes::default(),
            providers: Box::new(move |table| providers.get(table).cloned()),
            roles: std::sync::Mutex::default(),
        }
    }

    /// The role's context, built on first use and again when the rules change.
    fn role(&self, role: &str, permissions: &Permissions) -> Result<Arc<RoleSession>, EngineError> {
        let mut roles = self
            .roles
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(found) = roles.get(role)
            && found.policy.version == permissions.version()
        {
            return Ok(found.clone());
        }
        let policy = Arc::new(permissions.for_role(role, &self.snapshot));
        let base = self.context.state();
        let catalogs =
            permission_rewrite::role_catalogs(base.catalog_list().clone(), policy.clone())?;
        let state = SessionStateBuilder::new_from_existing(base)
            .with_catalog_list(catalogs)
            .build();
        let session = Arc::new(RoleSession {
            policy,
            context: SessionContext::new_with_state(state),
            shapes: fast_path::Shapes::default(),
        });
        roles.insert(role.to_string(), session.clone());
        Ok(session)
    }
}

/// What one query plans with: the admin's or a role's context, and for a
/// role the rewrite that applies its permissions.
struct Planning<'a> {
    context: &'a SessionContext,
    snapshot: &'a CatalogSnapshot,
    enforcement: Option<permission_rewrite::Enforcement<'a>>,
}

/// The engine. Its session is rebuilt from the catalog whenever the catalog
/// changes (checked per query, so a new source is usable at once); queries
/// in flight keep the session they started with.
pub struct Engine {
    cache: Arc<SchemaCache>,
    sources: Arc<SourceManager>,
    permissions: Arc<Permissions>,
    metrics: Arc<Metrics>,
    /// The zone date filters read days and months in (`None`: UTC).
    time_zone: Option<Tz>,
    session: ArcSwap<Session>,
    built_version: AtomicU64,
    rebuild: std::sync::Mutex<()>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field(
                "catalog_version",
                &self.built_version.load(Ordering::Relaxed),
            )
            .finish()
    }
}

impl Engine {
    pub fn new(
        cache: Arc<SchemaCache>,
        sources: Arc<SourceManager>,
        permissions: Arc<Permissions>,
        metrics: Arc<Metrics>,
        time_zone: Option<Tz>,
    ) -> Result<Self, EngineError> {
        let engine = Self {
            cache,
            sources,
            permissions,
            metrics,
            time_zone,
            session: ArcSwap::from_pointee(Session::new(
                SessionContext::new(),
                Arc::default(),
                permission_rewrite::TableProviders::new(),
            )),
            built_version: AtomicU64::new(0),
            rebuild: std::sync::Mutex::new(()),
        };
        engine.refresh_context()?;
        Ok(engine)
    }

    /// The session for the current catalog, rebuilt if the catalog moved on.
    fn session(&self) -> Result<Arc<Session>, EngineError> {
        if self.cache.snapshot().version != self.built_version.load(Ordering::Acquire) {
            self.refresh_context()?;
        }
        Ok(self.session.load_full())
    }

    fn refresh_context(&self) -> Result<(), EngineError> {
        let _guard = self
            .rebuild
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let snapshot = self.cache.snapshot();
        if snapshot.version == self.built_version.load(Ordering::Acquire) {
            return Ok(());
        }
        let connectors = self.sources.connectors().into_iter().collect();
        let (state, providers) = session_state(&snapshot, &connectors, &self.metrics)?;
        let context = SessionContext::new_with_state(state);
        self.session
            .store(Arc::new(Session::new(context, snapshot.clone(), providers)));
        self.built_version
            .store(snapshot.version, Ordering::Release);
        Ok(())
    }

    /// Plans and starts one read-only query (`$1`, `$2`… bound to `params`)
    /// for `caller`. DDL, DML and session statements are refused.
    pub async fn query(
        &self,
        sql: &str,
        params: Vec<ScalarValue>,
        caller: &Caller,
    ) -> Result<QueryOutput, EngineError> {
        let session = self.session()?;
        let role = self.role_session(&session, caller)?;
        let planning = planning(&session, role.as_ref(), caller, self.time_zone);
        // A role's answers depend on the request's variables: learned
        // statements are kept per user, and not at all when a filter reads
        // the clock.
        let (shapes, key) = match (&role, caller) {
            (Some(role), Caller::Role { variables, .. }) => {
                if role.policy.uses_now {
                    (None, String::new())
                } else {
                    (Some(&role.shapes), user_key(variables, sql))
                }
            }
            _ => (Some(&session.shapes), sql.to_string()),
        };
        let shape = shapes.and_then(|s| s.get(&key));
        if let Some(fast_path::Shape::Direct(direct)) = &shape
            && let Some(values) = direct.bind(&params)
        {
            match direct.start(values, &self.metrics).await {
                Ok(output) => return Ok(output),
                Err(e) if fast_path::refused_value(&e) => {}
                Err(e) => return Err(EngineError::DataFusion(executor::to_datafusion(e))),
            }
        }
        // The planner's part, boxed (see `query_read`).
        Box::pin(async {
            let (frame, row_limit) = plan_query(&planning, sql, params).await?;
            let schema = Arc::new(frame.schema().as_arrow().clone());
            let task = Arc::new(frame.task_ctx());
            let physical = frame.create_physical_plan().await?;
            if let Some(shapes) = shapes {
                match shape {
                    None => shapes.insert(&key, fast_path::Shape::Seen),
                    // A capped answer is not one statement's whole answer.
                    Some(fast_path::Shape::Seen) if row_limit.is_some() => {
                        shapes.insert(&key, fast_path::Shape::Planned);
                    }
                    Some(fast_path::Shape::Seen) => {
                        let learned = self.learn(&planning, sql, physical.as_ref(), &schema).await;
                        shapes.insert(&key, learned);
                    }
                    Some(_) => {}
                }
            }
            let stream = execute_stream(as_caller::as_current_caller(physical)?, task)?;
            Ok(QueryOutput {
                schema,
                stream,
                row_limit,
            })
        })
        .await
    }

    /// A role's read rules for the current catalog, as its queries use
    /// them (built once per rules and catalog version, not per request).
    pub fn role_policy(&self, role: &str) -> Result<Arc<RolePolicy>, EngineError> {
        let session = self.session()?;
        Ok(session.role(role, &self.permissions)?.policy.clone())
    }

    /// The role's planning context (none for the admin).
    fn role_session(
        &self,
        session: &Session,
        caller: &Caller,
    ) -> Result<Option<Arc<RoleSession>>, EngineError> {
        match caller {
            Caller::Admin => Ok(None),
            Caller::Role { role, .. } => session.role(role, &self.permissions).map(Some),
        }
    }

    /// The shape of a query text, from its plan with open parameters and
    /// the plan just made with the request's values (see [`fast_path`]).
    async fn learn(
        &self,
        planning: &Planning<'_>,
        sql: &str,
        bound: &dyn ExecutionPlan,
        schema: &SchemaRef,
    ) -> fast_path::Shape {
        match plan_query(planning, sql, vec![]).await {
            Ok((open, _)) => self.learn_frame(planning, open, bound, schema).await,
            Err(_) => fast_path::Shape::Planned,
        }
    }

    /// The shape of a plan with open parameters (`open`), given the plan
    /// made with the request's values (`bound`) and its result schema.
    async fn learn_frame(
        &self,
        planning: &Planning<'_>,
        open: DataFrame,
        bound: &dyn ExecutionPlan,
        schema: &SchemaRef,
    ) -> fast_path::Shape {
        let planned = fast_path::Shape::Planned;
        let Ok(types) = open.logical_plan().get_parameter_types() else {
            return planned;
        };
        let Ok(open) = open.create_physical_plan().await else {
            return planned;
        };
        if open.schema() != *schema {
            return planned;
        }
        let postgres = |name: &str| {
            let entry = planning.snapshot.sources.get(name)?;
            (entry.schema.as_ref()?.kind == SourceKind::Postgres)
                .then(|| self.sources.connector(name).ok())
                .flatten()
        };
        fast_path::learn(open.as_ref(), types, bound, postgres)
    }

    /// Runs a query to its end without keeping its rows: the plan with
    /// every node's metrics, the rows it answered, and what each source
    /// statement did ([`SourceRun`]: the SQL as sent, runtime filters
    /// included, its rows and times). Always planned (never the fast path).
    pub async fn analyze(
        &self,
        sql: &str,
        params: Vec<ScalarValue>,
        caller: &Caller,
    ) -> Result<Analysis, EngineError> {
        let session = self.session()?;
        let role = self.role_session(&session, caller)?;
        let planning = planning(&session, role.as_ref(), caller, self.time_zone);
        Box::pin(async {
            let (frame, row_limit) = plan_query(&planning, sql, params).await?;
            let task = Arc::new(frame.task_ctx());
            let log = statement_log::StatementLog::new();
            let physical = statement_log::record(frame.create_physical_plan().await?, &log)?;
            let physical = as_caller::as_current_caller(physical)?;
            let mut stream = execute_stream(physical.clone(), task)?;
            let cap = row_limit.unwrap_or(u64::MAX);
            let mut rows: u64 = 0;
            while let Some(batch) = stream.next().await {
                rows += batch?.num_rows() as u64;
                if rows >= cap {
                    // A role's cap ends its answer there, as in a query.
                    rows = cap;
                    break;
                }
            }
            drop(stream);
            let mut sources = log.runs();
            sources.sort_by(|a, b| {
                a.sent_at
                    .unwrap_or(f64::MAX)
                    .total_cmp(&b.sent_at.unwrap_or(f64::MAX))
            });
            Ok(Analysis {
                plan: statement_log::plan_with_metrics(physical.as_ref()),
                rows,
                seconds: log.elapsed(),
                sources,
            })
        })
        .await
    }

    /// The optimized plan of a query as text, and the exact SQL each source
    /// will receive.
    pub async fn explain(
        &self,
        sql: &str,
        params: Vec<ScalarValue>,
        caller: &Caller,
    ) -> Result<(String, Vec<SourceQuery>), EngineError> {
        let session = self.session()?;
        let role = self.role_session(&session, caller)?;
        let (frame, _) = plan_query(
            &planning(&session, role.as_ref(), caller, self.time_zone),
            sql,
            params,
        )
        .await?;
        let physical = frame.create_physical_plan().await?;
        Ok((
            explain::plan_text(physical.as_ref()),
            explain::source_queries(physical.as_ref()),
        ))
    }
}

/// The planning context for a caller: a role plans against its own
/// catalogs and has its permissions applied.
fn planning<'a>(
    session: &'a Session,
    role: Option<&'a Arc<RoleSession>>,
    caller: &'a Caller,
    time_zone: Option<Tz>,
) -> Planning<'a> {
    match (role, caller) {
        (Some(role), Caller::Role { variables, .. }) => Planning {
            context: &role.context,
            snapshot: &session.snapshot,
            enforcement: Some(permission_rewrite::Enforcement {
                policy: &role.policy,
                variables,
                snapshot: &session.snapshot,
                providers: session.providers.as_ref(),
                time_zone,
            }),
        },
        _ => Planning {
            context: &session.context,
            snapshot: &session.snapshot,
            enforcement: None,
        },
    }
}

/// A query text's key among a role's learned shapes: the user's variables
/// are part of the statement a filter produces.
fn user_key(variables: &Variables, sql: &str) -> String {
    format!(
        "{}\u{1f}{}\u{1f}{sql}",
        variables.user_id.as_deref().unwrap_or(""),
        variables.claims
    )
}

/// A DataFusion session over the sources of `snapshot`: one catalog per
/// source, our optimizer rules (federation last) and the federation planner.
fn session_state(
    snapshot: &CatalogSnapshot,
    connectors: &BTreeMap<String, Arc<dyn tributary_connector::Connector>>,
    metrics: &Arc<Metrics>,
) -> Result<(SessionState, permission_rewrite::TableProviders), DataFusionError> {
    // Which dynamic filters are hash joins' (a statement waits for those).
    let joins = Arc::new(runtime_filter::JoinFilters::default());
    let (catalogs, providers) = catalog::build(snapshot, connectors, metrics, &joins)?;
    // Our catalog list already holds the default catalog (with the
    // `source.table` schemas and bare names); DataFusion must not replace it
    // with an empty one.
    let mut config = SessionConfig::new()
        .with_create_default_catalog_and_schema(false)
        .with_information_schema(true)
        .with_default_catalog_and_schema(DEFAULT_CATALOG, DEFAULT_SCHEMA);
    // Semi-join reduction: a hash join's build side of up to this many keys
    // becomes an IN list for the other source's SQL (DataFusion's default,
    // 150, would leave most cross-source joins with key bounds only).
    let optimizer = &mut config.options_mut().optimizer;
    optimizer.hash_join_inlist_pushdown_max_distinct_values = runtime_filter::MAX_KEYS;
    optimizer.hash_join_inlist_pushdown_max_size = runtime_filter::MAX_KEYS * 64;
    let mut state = SessionStateBuilder::new()
        .with_config(config)
        .with_default_features()
        .with_catalog_list(catalogs)
        .with_optimizer_rules(rules::optimizer_rules(
            executor::compute_contexts(snapshot),
            catalog::one_column_keys(snapshot),
        ))
        .with_query_planner(Arc::new(FederatedQueryPlanner::new()))
        .with_physical_optimizer_rule(Arc::new(runtime_filter::NoteJoinFilters(joins)))
        .build();
    // In place of DataFusion's `avg` (registered under the same names).
    state.register_udaf(decimal_avg::udaf())?;
    Ok((state, providers))
}

/// Parses, names the tables explicitly ([`names`]), plans, applies a
/// role's permissions and checks a query. Also returns the role's row cap.
async fn plan_query(
    planning: &Planning<'_>,
    sql: &str,
    params: Vec<ScalarValue>,
) -> Result<(DataFrame, Option<u64>), EngineError> {
    let state = planning.context.state();
    let dialect = state.config().options().sql_parser.dialect;
    let mut statement = state.sql_to_statement(sql, &dialect)?;
    qualify_statement(&mut statement, planning.snapshot)?;
    let mut plan = state
        .statement_to_plan(statement)
        .await
        .map_err(|e| denied(e, planning))?;
    let row_limit;
    (plan, row_limit) = checked_plan(planning, plan)?;
    let frame = DataFrame::new(state, plan);
    let frame = if params.is_empty() {
        frame
    } else {
        frame.with_param_values(ParamValues::List(
            params.into_iter().map(Into::into).collect(),
        ))?
    };
    Ok((frame, row_limit))
}

/// Applies a role's permissions to a plan (returning its row cap) and
/// checks that the plan only reads.
fn checked_plan(
    planning: &Planning<'_>,
    mut plan: LogicalPlan,
) -> Result<(LogicalPlan, Option<u64>), EngineError> {
    let mut row_limit = None;
    if let Some(enforcement) = &planning.enforcement {
        (plan, row_limit) =
            permission_rewrite::enforce(plan, enforcement).map_err(|e| denied(e, planning))?;
    }
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
        .verify_plan(&plan)
        .map_err(not_allowed)?;
    Ok((plan, row_limit))
}

/// A role's planning error that is about its permissions, said as such.
fn denied(error: DataFusionError, planning: &Planning<'_>) -> EngineError {
    if let Some(denied) = find_error::<permission_rewrite::Denied>(&error) {
        return EngineError::Denied(denied.to_string());
    }
    if let Some(enforcement) = &planning.enforcement
        && let Some(message) = permission_rewrite::hidden_column_message(&error, enforcement.policy)
    {
        return EngineError::Denied(message);
    }
    EngineError::DataFusion(error)
}

/// Applies [`names::qualify_tables`] to a statement (and to the one an
/// EXPLAIN wraps).
fn qualify_statement(
    statement: &mut DFStatement,
    snapshot: &CatalogSnapshot,
) -> Result<(), DataFusionError> {
    match statement {
        DFStatement::Statement(inner) => names::qualify_tables(inner, snapshot),
        DFStatement::Explain(explain) => qualify_statement(&mut explain.statement, snapshot),
        _ => Ok(()),
    }
}

/// SQLOptions' refusals are plan errors; say plainly that this endpoint is read-only.
fn not_allowed(error: DataFusionError) -> EngineError {
    let text = error.to_string();
    if text.contains("not supported")
        && (text.contains("DDL") || text.contains("DML") || text.contains("Statement"))
    {
        EngineError::NotAllowed(format!(
            "only queries can run here (SELECT, WITH, EXPLAIN): {text}"
        ))
    } else {
        EngineError::DataFusion(error)
    }
}
