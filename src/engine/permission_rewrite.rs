//! Row-level permissions in the plan. A role plans against catalogs that
//! show only the tables it may read, each with only its readable columns
//! ([`role_catalogs`]), so `SELECT *` means the readable columns and a
//! hidden column is unknown. Before optimization, [`enforce`] replaces
//! every scan of such a table — in joins, subqueries, CTEs, unions, EXISTS,
//! EXPLAIN — by the real table wrapped in the role's row filter (variables
//! bound for the request) and a projection to the readable columns.
//! Federation then carries the filter into the source's SQL.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::catalog::{
    CatalogProvider, CatalogProviderList, MemoryCatalogProvider, MemorySchemaProvider,
    SchemaProvider, Session,
};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, TableReference};
use datafusion::datasource::{TableProvider, TableType, provider_as_source, source_as_provider};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, TableScan};
use datafusion::physical_plan::ExecutionPlan;
use tributary_schema_cache::{CatalogSnapshot, TableRef};

use super::catalog::DEFAULT_CATALOG;
use crate::filter::{self, Variables};
use crate::permissions::{RolePolicy, Rule, TableRules};

/// Catalogs as one role sees them: the sources' catalogs with only the
/// tables the role has a select or aggregate rule for, each narrowed to its
/// readable columns. The default catalog (bare names) is empty: the engine
/// names every table in full before planning.
pub fn role_catalogs(
    base: Arc<dyn CatalogProviderList>,
    policy: Arc<RolePolicy>,
) -> Result<Arc<dyn CatalogProviderList>> {
    let empty = MemoryCatalogProvider::new();
    empty.register_schema(super::DEFAULT_SCHEMA, Arc::new(MemorySchemaProvider::new()))?;
    Ok(Arc::new(RoleCatalogs {
        base,
        policy,
        empty: Arc::new(empty),
    }))
}

#[derive(Debug)]
struct RoleCatalogs {
    base: Arc<dyn CatalogProviderList>,
    policy: Arc<RolePolicy>,
    empty: Arc<dyn CatalogProvider>,
}

impl CatalogProviderList for RoleCatalogs {
    fn register_catalog(
        &self,
        _name: String,
        _catalog: Arc<dyn CatalogProvider>,
    ) -> Option<Arc<dyn CatalogProvider>> {
        None
    }

    fn catalog_names(&self) -> Vec<String> {
        self.base.catalog_names()
    }

    fn catalog(&self, name: &str) -> Option<Arc<dyn CatalogProvider>> {
        if name == DEFAULT_CATALOG {
            return Some(self.empty.clone());
        }
        let inner = self.base.catalog(name)?;
        Some(Arc::new(RoleCatalog {
            source: name.to_string(),
            inner,
            policy: self.policy.clone(),
        }))
    }
}

#[derive(Debug)]
struct RoleCatalog {
    source: String,
    inner: Arc<dyn CatalogProvider>,
    policy: Arc<RolePolicy>,
}

impl CatalogProvider for RoleCatalog {
    fn schema_names(&self) -> Vec<String> {
        self.inner.schema_names()
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        let inner = self.inner.schema(name)?;
        Some(Arc::new(RoleSchema {
            source: self.source.clone(),
            schema: name.to_string(),
            inner,
            policy: self.policy.clone(),
        }))
    }
}

#[derive(Debug)]
struct RoleSchema {
    source: String,
    schema: String,
    inner: Arc<dyn SchemaProvider>,
    policy: Arc<RolePolicy>,
}

impl RoleSchema {
    fn rules(&self, table: &str) -> Option<&Arc<TableRules>> {
        self.policy
            .tables
            .get(&TableRef::new(&self.source, &self.schema, table))
    }
}

#[async_trait]
impl SchemaProvider for RoleSchema {
    fn table_names(&self) -> Vec<String> {
        self.inner
            .table_names()
            .into_iter()
            .filter(|t| self.rules(t).is_some())
            .collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        if self.rules(name).is_none() {
            return Ok(None);
        }
        let Some(inner) = self.inner.table(name).await? else {
            return Ok(None);
        };
        let table = TableRef::new(&self.source, &self.schema, name);
        Ok(role_table(&self.policy, &table, inner))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.rules(name).is_some() && self.inner.table_exist(name)
    }
}

/// `inner` (the table whole) as the role sees it: only its readable
/// columns, and its row filter added by [`enforce`]. `None` when the role
/// may not read the table.
pub fn role_table(
    policy: &RolePolicy,
    table: &TableRef,
    inner: Arc<dyn TableProvider>,
) -> Option<Arc<dyn TableProvider>> {
    let rules = policy.tables.get(table)?;
    let full = inner.schema();
    let fields = rules
        .readable
        .iter()
        .filter_map(|c| full.field_with_name(c).ok().cloned())
        .collect::<Vec<_>>();
    Some(Arc::new(RoleTable {
        inner,
        schema: Arc::new(Schema::new(fields)),
        rules: rules.clone(),
    }))
}

/// A table as a role sees it. Only planned against: [`enforce`] puts the
/// real table (filtered and narrowed) in its place before anything runs.
#[derive(Debug)]
struct RoleTable {
    inner: Arc<dyn TableProvider>,
    schema: SchemaRef,
    rules: Arc<TableRules>,
}

#[async_trait]
impl TableProvider for RoleTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        _projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Err(DataFusionError::Internal(
            "a role's table reached execution without its permission filter".into(),
        ))
    }
}

/// Why a role may not run a plan.
#[derive(Debug, thiserror::Error)]
pub enum Denied {
    #[error("role `{role}` may not {action} `{collection}`")]
    Action {
        role: String,
        action: &'static str,
        collection: String,
    },
    #[error("the permission filter of `{collection}` cannot be applied: {message}")]
    Filter { collection: String, message: String },
}

/// What a role's plan is rewritten with.
pub struct Enforcement<'a> {
    pub policy: &'a RolePolicy,
    pub variables: &'a Variables,
    pub snapshot: &'a CatalogSnapshot,
    pub providers: &'a filter::Providers<'a>,
    /// The zone of date filters' days and months.
    pub time_zone: Option<datafusion::arrow::array::timezone::Tz>,
}

/// The rewritten plan, and the smallest select `limit` of the tables it
/// reads (the answer is capped to it).
pub fn enforce(plan: LogicalPlan, with: &Enforcement<'_>) -> Result<(LogicalPlan, Option<u64>)> {
    let mut limit = None;
    let plan = rewrite(plan, with, false, &mut limit)?;
    Ok((plan.data, limit))
}

fn rewrite(
    plan: LogicalPlan,
    with: &Enforcement<'_>,
    under_aggregate: bool,
    limit: &mut Option<u64>,
) -> Result<Transformed<LogicalPlan>> {
    let under_aggregate = under_aggregate
        || matches!(
            plan,
            LogicalPlan::Aggregate(_) | LogicalPlan::Window(_) | LogicalPlan::Distinct(_)
        );
    if let LogicalPlan::TableScan(scan) = &plan
        && let Ok(provider) = source_as_provider(&scan.source)
        && let Some(table) = provider.downcast_ref::<RoleTable>()
    {
        let replaced = replace_scan(scan, table, with, under_aggregate, limit)?;
        return Ok(Transformed::new(replaced, true, TreeNodeRecursion::Jump));
    }
    plan.map_subqueries(|sub| rewrite(sub, with, under_aggregate, limit))?
        .transform_sibling(|node| node.map_children(|c| rewrite(c, with, under_aggregate, limit)))
}

fn replace_scan(
    scan: &TableScan,
    table: &RoleTable,
    with: &Enforcement<'_>,
    under_aggregate: bool,
    limit: &mut Option<u64>,
) -> Result<LogicalPlan> {
    let rules = &table.rules;
    let denied = |action| {
        DataFusionError::External(Box::new(Denied::Action {
            role: with.policy.role.clone(),
            action,
            collection: rules.collection.clone(),
        }))
    };
    let rule: &Rule = if under_aggregate {
        rules
            .aggregate
            .as_ref()
            .ok_or_else(|| denied("aggregate"))?
    } else {
        let rule = rules.select.as_ref().ok_or_else(|| denied("select"))?;
        if let Some(cap) = rule.limit {
            *limit = Some(limit.map_or(cap, |l| l.min(cap)));
        }
        rule
    };
    let table_ref = table_ref(&scan.table_name).ok_or_else(|| {
        DataFusionError::Internal(format!("{} is not a full table name", scan.table_name))
    })?;
    // The columns the plan reads of this table, in the role's view.
    let visible = table.schema.fields();
    let wanted: Vec<&str> = match &scan.projection {
        Some(indices) => indices
            .iter()
            .filter_map(|i| visible.get(*i))
            .map(|f| f.name().as_str())
            .collect(),
        None => visible.iter().map(|f| f.name().as_str()).collect(),
    };
    let predicate = match &rule.filter {
        Some(filter) => {
            let cx = filter::Context {
                snapshot: with.snapshot,
                providers: with.providers,
                variables: Some(with.variables),
                time_zone: with.time_zone,
            };
            Some(
                filter::compile(filter, &table_ref, &scan.table_name, &cx).map_err(|e| {
                    DataFusionError::External(Box::new(Denied::Filter {
                        collection: rules.collection.clone(),
                        message: e.to_string(),
                    }))
                })?,
            )
        }
        None => None,
    };
    // The real table is scanned with a projection (as DataFusion's own
    // pushdown would), so the plan keeps the shape the unparser knows:
    // Filter over TableScan. Columns only the filter reads (hidden ones)
    // are scanned too and projected away above the filter.
    let filter_columns = predicate
        .as_ref()
        .map(filter::columns_read)
        .unwrap_or_default();
    let full = table.inner.schema();
    let indices: Vec<usize> = full
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| {
            wanted.contains(&f.name().as_str()) || filter_columns.contains(f.name().as_str())
        })
        .map(|(i, _)| i)
        .collect();
    let mut builder = LogicalPlanBuilder::scan_with_filters(
        scan.table_name.clone(),
        provider_as_source(table.inner.clone()),
        Some(indices.clone()),
        scan.filters.clone(),
    )?;
    if let Some(predicate) = predicate {
        builder = builder.filter(predicate)?;
    }
    if let Some(fetch) = scan.fetch {
        builder = builder.limit(0, Some(fetch))?;
    }
    // Above the filter: exactly the columns (and order) the role's table had.
    let in_order: Vec<&str> = indices
        .iter()
        .map(|i| full.field(*i).name().as_str())
        .collect();
    if in_order != wanted {
        builder = builder.project(wanted.iter().map(|c| column(&scan.table_name, c)))?;
    }
    builder.build()
}

fn column(qualifier: &TableReference, name: &str) -> Expr {
    Expr::Column(Column::new(Some(qualifier.clone()), name))
}

fn table_ref(name: &TableReference) -> Option<TableRef> {
    match name {
        TableReference::Full {
            catalog,
            schema,
            table,
        } => Some(TableRef::new(
            catalog.as_ref(),
            schema.as_ref(),
            table.as_ref(),
        )),
        _ => None,
    }
}

/// When a role's query names a column it may not read, DataFusion says the
/// field is unknown; say which rule hides it instead.
pub fn hidden_column_message(error: &DataFusionError, policy: &RolePolicy) -> Option<String> {
    let DataFusionError::SchemaError(inner, _) = error.find_root() else {
        return None;
    };
    let datafusion::common::SchemaError::FieldNotFound { field, .. } = inner.as_ref() else {
        return None;
    };
    let mut hiding: Vec<&str> = policy
        .tables
        .values()
        .filter(|t| t.hidden.iter().any(|c| c == &field.name))
        .map(|t| t.collection.as_str())
        .collect();
    hiding.sort_unstable();
    (!hiding.is_empty()).then(|| {
        format!(
            "column `{}` of `{}` is not readable by role `{}`",
            field.name,
            hiding.join("`, `"),
            policy.role
        )
    })
}

/// Providers of every source table, for relation filters' subqueries.
pub type TableProviders = HashMap<TableRef, Arc<dyn TableProvider>>;
