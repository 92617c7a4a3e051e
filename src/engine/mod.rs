//! The SQL engine: a DataFusion session whose catalogs are the registered
//! sources. Federation turns the largest sub-plan touching only one source
//! into one SQL statement in that source's dialect; cross-source joins and
//! aggregates run in DataFusion. Every API that reads data comes through
//! [`Engine::query`].

mod catalog;
mod dialect;
mod executor;
mod explain;
mod fast_path;
mod federate;
#[cfg(test)]
mod golden_tests;
mod join_groups;
mod mysql_strings;
mod names;
mod partial_aggregates;
mod pushdown;
mod rules;
mod runtime_filter;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::ParamValues;
use datafusion::dataframe::DataFrame;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::physical_plan::{ExecutionPlan, execute_stream};
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use datafusion::scalar::ScalarValue;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion_federation::FederatedQueryPlanner;
use tributary_connector::ConnectorError;
use tributary_schema_cache::{CatalogSnapshot, SchemaCache, SourceKind};

use crate::metrics::Metrics;
use crate::sources::SourceManager;

pub use catalog::{DEFAULT_CATALOG, DEFAULT_SCHEMA, table_schema};
pub use explain::SourceQuery;

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
}

impl EngineError {
    /// The connector error inside, if a source failed (down, refused, timed out).
    pub fn connector_error(&self) -> Option<&ConnectorError> {
        let Self::DataFusion(error) = self else {
            return None;
        };
        find_connector_error(error)
    }
}

/// Walks a DataFusion error (and what it wraps) for a connector error.
fn find_connector_error(error: &DataFusionError) -> Option<&ConnectorError> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<ConnectorError>() {
            return Some(found);
        }
        if let Some(found) = e.downcast_ref::<DataFusionError>().and_then(|d| match d {
            DataFusionError::Shared(inner) => find_connector_error(inner),
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
}

/// A session and the catalog it was built from (names are resolved against
/// the same catalog the session plans with).
struct Session {
    context: SessionContext,
    snapshot: Arc<CatalogSnapshot>,
    /// What is known of each query text planned with this session.
    shapes: fast_path::Shapes,
}

/// The engine. Its session is rebuilt from the catalog whenever the catalog
/// changes (checked per query, so a new source is usable at once); queries
/// in flight keep the session they started with.
pub struct Engine {
    cache: Arc<SchemaCache>,
    sources: Arc<SourceManager>,
    metrics: Arc<Metrics>,
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
        metrics: Arc<Metrics>,
    ) -> Result<Self, EngineError> {
        let engine = Self {
            cache,
            sources,
            metrics,
            session: ArcSwap::from_pointee(Session {
                context: SessionContext::new(),
                snapshot: Arc::default(),
                shapes: fast_path::Shapes::default(),
            }),
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
        let state = session_state(&snapshot, &connectors, &self.metrics)?;
        let context = SessionContext::new_with_state(state);
        self.session.store(Arc::new(Session {
            context,
            snapshot: snapshot.clone(),
            shapes: fast_path::Shapes::default(),
        }));
        self.built_version
            .store(snapshot.version, Ordering::Release);
        Ok(())
    }

    /// Plans and starts one read-only query (`$1`, `$2`… bound to `params`).
    /// DDL, DML and session statements are refused.
    pub async fn query(
        &self,
        sql: &str,
        params: Vec<ScalarValue>,
    ) -> Result<QueryOutput, EngineError> {
        let session = self.session()?;
        let shape = session.shapes.get(sql);
        if let Some(fast_path::Shape::Direct(direct)) = &shape
            && let Some(values) = direct.bind(&params)
        {
            match direct.start(values, &self.metrics).await {
                Ok(output) => return Ok(output),
                Err(e) if fast_path::refused_value(&e) => {}
                Err(e) => return Err(EngineError::DataFusion(executor::to_datafusion(e))),
            }
        }
        let frame = plan_query(session.context.state(), &session.snapshot, sql, params).await?;
        let schema = Arc::new(frame.schema().as_arrow().clone());
        let task = Arc::new(frame.task_ctx());
        let physical = frame.create_physical_plan().await?;
        match shape {
            None => session.shapes.insert(sql, fast_path::Shape::Seen),
            Some(fast_path::Shape::Seen) => {
                let learned = self.learn(&session, sql, physical.as_ref(), &schema).await;
                session.shapes.insert(sql, learned);
            }
            Some(_) => {}
        }
        let stream = execute_stream(physical, task)?;
        Ok(QueryOutput { schema, stream })
    }

    /// The shape of a query text, from its plan with open parameters and
    /// the plan just made with the request's values (see [`fast_path`]).
    async fn learn(
        &self,
        session: &Session,
        sql: &str,
        bound: &dyn ExecutionPlan,
        schema: &SchemaRef,
    ) -> fast_path::Shape {
        let planned = fast_path::Shape::Planned;
        let Ok(open) = plan_query(session.context.state(), &session.snapshot, sql, vec![]).await
        else {
            return planned;
        };
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
            let entry = session.snapshot.sources.get(name)?;
            (entry.schema.as_ref()?.kind == SourceKind::Postgres)
                .then(|| self.sources.connector(name).ok())
                .flatten()
        };
        fast_path::learn(open.as_ref(), types, bound, postgres)
    }

    /// The optimized plan of a query as text, and the exact SQL each source
    /// will receive.
    pub async fn explain(
        &self,
        sql: &str,
        params: Vec<ScalarValue>,
    ) -> Result<(String, Vec<SourceQuery>), EngineError> {
        let frame = self.plan(sql, params).await?;
        let physical = frame.create_physical_plan().await?;
        Ok((
            explain::plan_text(physical.as_ref()),
            explain::source_queries(physical.as_ref()),
        ))
    }

    /// Parses, names the tables explicitly, plans and checks a query.
    async fn plan(&self, sql: &str, params: Vec<ScalarValue>) -> Result<DataFrame, EngineError> {
        let session = self.session()?;
        plan_query(session.context.state(), &session.snapshot, sql, params).await
    }
}

/// A DataFusion session over the sources of `snapshot`: one catalog per
/// source, our optimizer rules (federation last) and the federation planner.
fn session_state(
    snapshot: &CatalogSnapshot,
    connectors: &BTreeMap<String, Arc<dyn tributary_connector::Connector>>,
    metrics: &Arc<Metrics>,
) -> Result<SessionState, DataFusionError> {
    let catalogs = catalog::build(snapshot, connectors, metrics)?;
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
    Ok(SessionStateBuilder::new()
        .with_config(config)
        .with_default_features()
        .with_catalog_list(catalogs)
        .with_optimizer_rules(rules::optimizer_rules(
            executor::compute_contexts(snapshot),
            catalog::one_column_keys(snapshot),
        ))
        .with_query_planner(Arc::new(FederatedQueryPlanner::new()))
        .build())
}

/// Parses, names the tables explicitly ([`names`]), plans and checks a query.
async fn plan_query(
    state: SessionState,
    snapshot: &CatalogSnapshot,
    sql: &str,
    params: Vec<ScalarValue>,
) -> Result<DataFrame, EngineError> {
    let dialect = state.config().options().sql_parser.dialect;
    let mut statement = state.sql_to_statement(sql, &dialect)?;
    qualify_statement(&mut statement, snapshot)?;
    let plan = state.statement_to_plan(statement).await?;
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
        .verify_plan(&plan)
        .map_err(not_allowed)?;
    let frame = DataFrame::new(state, plan);
    Ok(if params.is_empty() {
        frame
    } else {
        frame.with_param_values(ParamValues::List(
            params.into_iter().map(Into::into).collect(),
        ))?
    })
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
