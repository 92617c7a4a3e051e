//! The rows a read keeps, in their order: sort keys on the collection's
//! own columns, on a related object's column (left joins along object
//! relations, e.g. orders by their customer's name) or on an aggregate of
//! an array relation's rows (a grouped read of the related table,
//! left-joined on the relation's keys, e.g. customers by their number of
//! orders); then `distinct_on` (the first row of each distinct value in
//! that order, as PostgreSQL's `DISTINCT ON`), offset and limit — over all
//! rows, or within each group of rows of the same key (a nested
//! relation's distinct rows and page per parent; windows `row_number()`).
//! Related tables are scanned as the caller sees them, so the engine adds
//! the caller's row filters to them too: a role orders only by what it may
//! read.

use datafusion::common::{Column, TableReference};
use datafusion::datasource::provider_as_source;
use datafusion::functions::expr_fn::coalesce;
use datafusion::functions_window::expr_fn::row_number;
use datafusion::logical_expr::{
    Expr, ExprFunctionExt, JoinType, LogicalPlanBuilder, SortExpr, lit,
};
use tributary_schema_cache::TableRef;

use super::Target;
use super::aggregate::Aggregation;
use super::params::{SortKey, SortVia};
use super::read::{full_name, internal};
use crate::engine::PlanScope;
use crate::error::ApiError;
use crate::filter::{Link, find_relation};

/// Which rows of the filtered collection a read keeps, in what order.
#[derive(Debug, Clone, Default)]
pub struct RowWindow {
    /// Keep the first row of each distinct value of these columns.
    pub distinct_on: Vec<String>,
    pub sort: Vec<SortKey>,
    pub offset: u64,
    pub limit: Option<u64>,
    /// When set, `distinct_on`, `offset` and `limit` hold within each
    /// group of rows with the same values of these columns (a nested
    /// relation's rows per parent), not over all rows: the first row of
    /// each distinct value of each group, then each group's page.
    pub per: Vec<String>,
}

impl RowWindow {
    /// True when the window keeps every row in no particular order.
    pub fn is_whole(&self) -> bool {
        self.distinct_on.is_empty()
            && self.sort.is_empty()
            && self.offset == 0
            && self.limit.is_none()
    }
}

/// The names the window's row numbers are given (they begin with no column's).
const FIRST: &str = "__first_of_distinct";
const PLACE: &str = "__place_in_group";

/// Applies `window` to `builder`, the collection scanned as `name` (and
/// filtered): the rows it picks, in its order. The answer still holds
/// every column of the collection under `name`; joined tables' columns are
/// under aliases no column has.
pub fn apply(
    scope: &PlanScope<'_>,
    target: &Target,
    name: &TableReference,
    builder: LogicalPlanBuilder,
    window: &RowWindow,
) -> Result<LogicalPlanBuilder, ApiError> {
    picked(scope, target, name, builder, window, true)
}

/// The rows `window` picks in no particular order (those an aggregate
/// aggregates): sorted only where a limit over all rows needs the order.
/// (An unneeded sort under a `GROUP BY` would also be written beside it
/// by the SQL unparser, naming columns the grouped rows lack.)
pub fn pick(
    scope: &PlanScope<'_>,
    target: &Target,
    name: &TableReference,
    builder: LogicalPlanBuilder,
    window: &RowWindow,
) -> Result<LogicalPlanBuilder, ApiError> {
    picked(scope, target, name, builder, window, false)
}

fn picked(
    scope: &PlanScope<'_>,
    target: &Target,
    name: &TableReference,
    mut builder: LogicalPlanBuilder,
    window: &RowWindow,
    ordered: bool,
) -> Result<LogicalPlanBuilder, ApiError> {
    let own = |column: &str| Expr::Column(Column::new(Some(name.clone()), column));
    let mut order: Vec<SortExpr> = Vec::with_capacity(window.sort.len());
    for (index, key) in window.sort.iter().enumerate() {
        let expr = match &key.via {
            None => own(&key.column),
            Some(via) => {
                let (joined, expr) = join_for(scope, target, name, builder, via, key, index)?;
                builder = joined;
                expr
            }
        };
        order.push(expr.sort(!key.descending, key.nulls_first()));
    }
    if !window.distinct_on.is_empty() {
        check_distinct_order(&window.distinct_on, &window.sort)?;
        // Each row's place among the rows of its distinct value (within
        // its group, with `per`): the first is kept. The window runs in
        // DataFusion or in PostgreSQL (see `engine::pushdown`), so text
        // values are told apart by their bytes on every source.
        let partition: Vec<Expr> = window
            .per
            .iter()
            .chain(
                window
                    .distinct_on
                    .iter()
                    .filter(|c| !window.per.contains(c)),
            )
            .map(|c| own(c))
            .collect();
        let first = row_number()
            .partition_by(partition)
            .order_by(order.clone())
            .build()
            .map_err(internal)?
            .alias(FIRST);
        builder = builder
            .window(vec![first])
            .and_then(|b| b.filter(Expr::Column(Column::from_name(FIRST)).eq(lit(1u64))))
            .map_err(internal)?;
    }
    let paged = window.offset > 0 || window.limit.is_some();
    if paged && !window.per.is_empty() {
        // Each group's rows numbered in the order; its page kept.
        let place = row_number()
            .partition_by(window.per.iter().map(|c| own(c)).collect())
            .order_by(order.clone())
            .build()
            .map_err(internal)?
            .alias(PLACE);
        let number = Expr::Column(Column::from_name(PLACE));
        let mut keep = number.clone().gt(lit(window.offset));
        if let Some(limit) = window.limit {
            keep = keep.and(number.lt_eq(lit(window.offset.saturating_add(limit))));
        }
        builder = builder
            .window(vec![place])
            .and_then(|b| b.filter(keep))
            .map_err(internal)?;
    }
    let limited = paged && window.per.is_empty();
    if !order.is_empty() && (ordered || limited) {
        builder = builder.sort(order).map_err(internal)?;
    }
    if limited {
        builder = builder
            .limit(
                usize::try_from(window.offset).unwrap_or(usize::MAX),
                window.limit.and_then(|l| usize::try_from(l).ok()),
            )
            .map_err(internal)?;
    }
    Ok(builder)
}

/// PostgreSQL's rule for `DISTINCT ON`: an order, when given, begins with
/// the distinct columns (in any order), so "the first row" is defined.
pub(crate) fn check_distinct_order(
    distinct_on: &[String],
    sort: &[SortKey],
) -> Result<(), ApiError> {
    let leading = sort.iter().take(distinct_on.len());
    let matches = sort.len() >= distinct_on.len()
        && leading
            .clone()
            .all(|k| k.via.is_none() && distinct_on.contains(&k.column));
    if matches {
        return Ok(());
    }
    Err(ApiError::bad_request(format!(
        "`distinct_on` ({}) must be the first columns of the order",
        distinct_on.join(", ")
    ))
    .at("distinct_on"))
}

/// Joins what `via` orders by to `builder`; the expression to order by.
fn join_for(
    scope: &PlanScope<'_>,
    target: &Target,
    name: &TableReference,
    builder: LogicalPlanBuilder,
    via: &SortVia,
    key: &SortKey,
    index: usize,
) -> Result<(LogicalPlanBuilder, Expr), ApiError> {
    let at = "sort";
    match via {
        SortVia::Related(path) => {
            let mut builder = builder;
            let mut table = target.collection.table.clone();
            let mut qualifier = name.clone();
            for (hop, relation) in path.iter().enumerate() {
                let link = link(scope, &table, relation)?;
                if link.many {
                    return Err(ApiError::bad_request(format!(
                        "cannot sort by `{relation}`: it relates many rows (sort by an aggregate of them)"
                    ))
                    .at(at));
                }
                let alias = TableReference::bare(format!("__sort{index}_{hop}"));
                let right = scan(scope, &link.target)?
                    .alias(alias.clone())
                    .and_then(LogicalPlanBuilder::build)
                    .map_err(internal)?;
                let (left_keys, right_keys) = keys(&qualifier, &alias, &link);
                builder = builder
                    .join(right, JoinType::Left, (left_keys, right_keys), None)
                    .map_err(internal)?;
                table = link.target;
                qualifier = alias;
            }
            let column = Column::new(Some(qualifier), key.column.as_str());
            readable(&builder, &column, &table)?;
            Ok((builder, Expr::Column(column)))
        }
        SortVia::Aggregate {
            relation,
            aggregation,
        } => {
            let link = link(scope, &target.collection.table, relation)?;
            if !link.many {
                return Err(ApiError::bad_request(format!(
                    "cannot sort by an aggregate of `{relation}`: it relates one row"
                ))
                .at(at));
            }
            let related = full_name(&link.target);
            let theirs = |c: &str| Expr::Column(Column::new(Some(related.clone()), c));
            let related_scan = scan(scope, &link.target)?;
            let value = match aggregation {
                Aggregation::Count => aggregation.of(lit(1)),
                other => {
                    let column = Column::new(Some(related.clone()), key.column.as_str());
                    readable(&related_scan, &column, &link.target)?;
                    other.of(Expr::Column(column))
                }
            }
            .alias("value");
            let alias = TableReference::bare(format!("__sort{index}"));
            let right = related_scan
                .aggregate(link.pairs.iter().map(|(_, t)| theirs(t)), vec![value])
                .and_then(|b| b.alias(alias.clone()))
                .and_then(LogicalPlanBuilder::build)
                .map_err(internal)?;
            let (left_keys, right_keys) = keys(name, &alias, &link);
            let builder = builder
                .join(right, JoinType::Left, (left_keys, right_keys), None)
                .map_err(internal)?;
            let value = Expr::Column(Column::new(Some(alias), "value"));
            // A row without related rows has a count of 0, not NULL.
            let expr = match aggregation {
                Aggregation::Count => coalesce(vec![value, lit(0i64)]),
                _ => value,
            };
            Ok((builder, expr))
        }
    }
}

fn link(scope: &PlanScope<'_>, table: &TableRef, relation: &str) -> Result<Link, ApiError> {
    find_relation(scope.snapshot, table, relation).ok_or_else(|| {
        ApiError::bad_request(format!("{table} has no relation `{relation}`")).at("sort")
    })
}

/// A related column to order by must be one the caller may read.
fn readable(
    builder: &LogicalPlanBuilder,
    column: &Column,
    table: &TableRef,
) -> Result<(), ApiError> {
    if builder.schema().has_column(column) {
        return Ok(());
    }
    Err(ApiError::bad_request(format!(
        "cannot sort by `{}`: {table} has no column of that name the caller may read",
        column.name
    ))
    .at("sort"))
}

/// The related table as the caller may read it, under its full name.
pub(super) fn scan(
    scope: &PlanScope<'_>,
    table: &TableRef,
) -> Result<LogicalPlanBuilder, ApiError> {
    let provider = (scope.tables)(table)
        .ok_or_else(|| ApiError::forbidden(format!("{table} cannot be read here")).at("sort"))?;
    LogicalPlanBuilder::scan(full_name(table), provider_as_source(provider), None).map_err(internal)
}

/// The join's key columns: this side's under `left`, the related side's
/// under `right`.
fn keys(left: &TableReference, right: &TableReference, link: &Link) -> (Vec<Column>, Vec<Column>) {
    link.pairs
        .iter()
        .map(|(own, theirs)| {
            (
                Column::new(Some(left.clone()), own.as_str()),
                Column::new(Some(right.clone()), theirs.as_str()),
            )
        })
        .unzip()
}
