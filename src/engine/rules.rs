//! The optimizer rules of the engine: DataFusion's own, then federation —
//! and the plan rewrites that make the federated SQL correct.

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, LogicalPlan, Projection, SubqueryAlias};
use datafusion::optimizer::extract_equijoin_predicate::ExtractEquijoinPredicate;
use datafusion::optimizer::optimizer::{Optimizer, OptimizerRule};
use datafusion::sql::sqlparser::ast::{self, VisitMut, VisitorMut};
use tributary_schema_cache::SourceKind;

use super::federate::FederateSources;

/// DataFusion's optimizer rules with federation placed last: filter and
/// projection pushdown (and the other rules) shape the plan first, so the
/// filters and column pruning of a cross-source query sit right above each
/// table scan and go into that source's SQL. (datafusion-federation inserts
/// its rule before them, which leaves those filters in DataFusion and
/// fetches whole tables.) `kinds` maps each source's federation compute
/// context to its kind, for the pushdown rules; `keys` lists every
/// one-column key (`source.schema.table.column`), for join regrouping.
pub fn optimizer_rules(
    kinds: HashMap<String, SourceKind>,
    keys: HashSet<String>,
) -> Vec<Arc<dyn OptimizerRule + Send + Sync>> {
    let mut rules = Optimizer::new().rules;
    // Joins written `FROM a, b WHERE a.k = b.k` become inner joins after
    // DataFusion's own equi-join extraction ran in a pass: extracted again
    // here, their keys are keys when FederateSources regroups them by
    // source, before it federates each table alone.
    rules.push(Arc::new(ExtractEquijoinPredicate::new()));
    rules.push(Arc::new(FederateSources::new(kinds, keys)));
    rules
}

/// Before a federated plan is unparsed, derived tables get the names the
/// rest of the statement uses for them (and a limit over a top-N sort is
/// made unambiguous for the unparser):
///
/// - an alias over anything but a projection gets a projection in between,
///   so the unparser writes a derived table (otherwise a filter that
///   pushdown moved below the alias is written with the table's own name:
///   `FROM orders AS o WHERE orders.id > 2`, which PostgreSQL and MySQL
///   reject);
/// - a join input over one table that is more than a plain scan (a filtered
///   scan) becomes a derived table named after that table, so the join's
///   `ON part.p_partkey = …` still resolves (the unparser would otherwise
///   call it `derived_projection`).
pub fn alias_derived_tables(plan: LogicalPlan) -> Result<LogicalPlan> {
    let plan = name_derived_tables(plan)?;
    name_root(plan)
}

/// The root too: its select list must be in the plan's column order, with
/// every computed column named. Under a sort or limit, the projection (or
/// aggregate) below is named in place: a projection put over the sort
/// would make the unparser write the sorted part as a derived table whose
/// unnamed aggregates the outer select could not refer to. A join at the
/// root (its projection of every column was optimized away) gets its
/// columns listed: left to the unparser, a side that is a derived table
/// becomes `*`, and `SELECT *, t2.a, …` repeats columns (`*, *` is not
/// even MySQL syntax).
fn name_root(plan: LogicalPlan) -> Result<LogicalPlan> {
    match plan {
        LogicalPlan::Aggregate(_) | LogicalPlan::Projection(_) | LogicalPlan::Join(_) => {
            Ok(named_projection(plan)?.0)
        }
        LogicalPlan::Sort(_) | LogicalPlan::Limit(_) => match name_below(&plan)? {
            Some(named) => Ok(named),
            None if matches!(plan, LogicalPlan::Sort(_)) => Ok(named_projection(plan)?.0),
            None => Ok(plan),
        },
        other => Ok(other),
    }
}

/// A chain of sorts and limits with the projection or aggregate under it
/// named in place; `None` when the chain ends in anything else.
fn name_below(plan: &LogicalPlan) -> Result<Option<LogicalPlan>> {
    let Some(below) = plan.inputs().first().copied() else {
        return Ok(None);
    };
    let named = match below {
        LogicalPlan::Aggregate(_) | LogicalPlan::Projection(_) | LogicalPlan::Join(_) => {
            named_projection(below.clone())?.0
        }
        LogicalPlan::Sort(_) | LogicalPlan::Limit(_) => match name_below(below)? {
            Some(named) => named,
            None => return Ok(None),
        },
        _ => return Ok(None),
    };
    Ok(Some(plan.with_new_exprs(plan.expressions(), vec![named])?))
}

/// What a projection of no columns (what `count(*)` needs) selects: written
/// `SELECT FROM …`, it would be PostgreSQL syntax only.
fn one_column() -> Expr {
    datafusion::prelude::lit(1_i64).alias("tributary_one")
}

fn name_derived_tables(plan: LogicalPlan) -> Result<LogicalPlan> {
    plan.transform_up(|node| match node {
        LogicalPlan::Projection(projection) if projection.expr.is_empty() => {
            Ok(Transformed::yes(LogicalPlan::Projection(Projection::try_new(vec![one_column()], projection.input)?)))
        }
        LogicalPlan::SubqueryAlias(alias) => {
            let (input, changed) = named_projection(Arc::unwrap_or_clone(alias.input))?;
            let rebuilt =
                LogicalPlan::SubqueryAlias(SubqueryAlias::try_new(Arc::new(input), alias.alias)?);
            Ok(if changed {
                Transformed::yes(rebuilt)
            } else {
                Transformed::no(rebuilt)
            })
        }
        // `LIMIT f OFFSET s` over a top-N sort that pushdown gave `fetch =
        // s + f`: the unparser folds both into `LIMIT s + f OFFSET s`, which
        // returns too many rows. The limit above says all; the sort needs no fetch.
        LogicalPlan::Limit(mut limit)
            if matches!(limit.input.as_ref(), LogicalPlan::Sort(sort) if sort.fetch.is_some()) =>
        {
            if let LogicalPlan::Sort(sort) = limit.input.as_ref() {
                let mut sort = sort.clone();
                sort.fetch = None;
                limit.input = Arc::new(LogicalPlan::Sort(sort));
            }
            Ok(Transformed::yes(LogicalPlan::Limit(limit)))
        }
        // `LIMIT f OFFSET s` over a scan that pushdown gave `fetch = s + f`:
        // the unparser writes both into one query block, the scan's fetch
        // over the limit's (`LIMIT s + f OFFSET s`), and returns too many
        // rows. The limit above says all.
        LogicalPlan::Limit(mut limit)
            if matches!(limit.input.as_ref(), LogicalPlan::TableScan(scan) if scan.fetch.is_some()) =>
        {
            if let LogicalPlan::TableScan(scan) = limit.input.as_ref() {
                let mut scan = scan.clone();
                scan.fetch = None;
                limit.input = Arc::new(LogicalPlan::TableScan(scan));
            }
            Ok(Transformed::yes(LogicalPlan::Limit(limit)))
        }
        LogicalPlan::Join(mut join) => {
            let mut changed = false;
            for side in [&mut join.left, &mut join.right] {
                if let Some(named) = name_after_its_table(side)? {
                    *side = Arc::new(named);
                    changed = true;
                }
            }
            Ok(if changed {
                Transformed::yes(LogicalPlan::Join(join))
            } else {
                Transformed::no(LogicalPlan::Join(join))
            })
        }
        other => Ok(Transformed::no(other)),
    })
    .map(|t| t.data)
}

/// `input` as a derived table named after the one table all its columns
/// come from, when it is more than a scan or an alias.
fn name_after_its_table(input: &LogicalPlan) -> Result<Option<LogicalPlan>> {
    if matches!(
        input,
        LogicalPlan::TableScan(_) | LogicalPlan::SubqueryAlias(_)
    ) {
        return Ok(None);
    }
    let mut qualifiers = input.schema().iter().map(|(q, _)| q);
    let Some(Some(first)) = qualifiers.next() else {
        return Ok(None);
    };
    if !qualifiers.all(|q| q == Some(first)) {
        return Ok(None);
    }
    let (projected, _) = named_projection(input.clone())?;
    Ok(Some(LogicalPlan::SubqueryAlias(SubqueryAlias::try_new(
        Arc::new(projected),
        first.clone(),
    )?)))
}

/// The input of a derived table (or a federated plan's root) as a
/// projection whose every column has a name in the SQL: a column named by
/// its expression (`min(ps.supplycost)`) gets that name as an alias, so the
/// statement around can refer to it, and the select list follows the
/// plan's column order (the unparser otherwise writes an aggregate's
/// functions before its keys). Qualifiers are kept, so the schema is the
/// same. Returns whether anything changed.
fn named_projection(input: LogicalPlan) -> Result<(LogicalPlan, bool)> {
    let plain = |name: &str| name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    match input {
        LogicalPlan::Projection(projection) => {
            let needs_alias = |e: &Expr| match e {
                Expr::Column(c) => !plain(&c.name),
                Expr::Alias(_) => false,
                _ => true,
            };
            if !projection.expr.iter().any(needs_alias) {
                return Ok((LogicalPlan::Projection(projection), false));
            }
            let exprs: Vec<Expr> = projection
                .expr
                .iter()
                .zip(projection.schema.iter())
                .map(|(e, (qualifier, field))| {
                    if needs_alias(e) {
                        e.clone().alias_qualified(qualifier.cloned(), field.name())
                    } else {
                        e.clone()
                    }
                })
                .collect();
            let projection =
                Projection::try_new_with_schema(exprs, projection.input, projection.schema)?;
            Ok((LogicalPlan::Projection(projection), true))
        }
        LogicalPlan::TableScan(_) => Ok((input, false)),
        other => {
            let exprs: Vec<Expr> = other
                .schema()
                .iter()
                .map(|(qualifier, field)| {
                    let column = Expr::Column(datafusion::common::Column::new(
                        qualifier.cloned(),
                        field.name(),
                    ));
                    if plain(field.name()) {
                        column
                    } else {
                        column.alias_qualified(qualifier.cloned(), field.name())
                    }
                })
                .collect();
            let exprs = if exprs.is_empty() {
                vec![one_column()]
            } else {
                exprs
            };
            Ok((
                LogicalPlan::Projection(Projection::try_new(exprs, Arc::new(other))?),
                true,
            ))
        }
    }
}

/// After unparsing: in a query block that reads one relation (no join),
/// column references need no qualifier — and the unparser's qualifiers can
/// name a table that a derived table hid (`SELECT customers.id FROM (SELECT
/// … FROM customers …) AS derived_limit`). Dropping them in such blocks makes
/// every reference resolve — except, inside an `EXISTS` / `IN` / scalar
/// subquery, a reference to a relation of an enclosing block (a correlated
/// one: `l1.l_suppkey` in `EXISTS (SELECT 1 FROM lineitem l2 WHERE
/// l2.l_suppkey <> l1.l_suppkey)` would otherwise bind to `l2`). Then an
/// ORDER BY inside a lone derived table is repeated outside, where it binds.
pub fn resolve_references(mut statement: ast::Statement) -> Result<ast::Statement> {
    let _ = statement.visit(&mut UnqualifySingleRelationBlocks::default());
    hoist_derived_order(&mut statement);
    Ok(statement)
}

/// One query block while its expressions are visited.
struct Block {
    /// The name its one relation goes by, when it reads exactly one.
    single: Option<String>,
    /// Every relation name it reads (for correlated references below it).
    names: Vec<String>,
    /// Entered through an expression (`EXISTS`, `IN`, scalar subquery).
    in_expression: bool,
}

#[derive(Default)]
struct UnqualifySingleRelationBlocks {
    blocks: Vec<Block>,
    /// The next query block is an expression's subquery.
    entering_expression: bool,
}

fn relation_name(factor: &ast::TableFactor) -> Option<String> {
    match factor {
        ast::TableFactor::Table { alias: Some(a), .. }
        | ast::TableFactor::Derived { alias: Some(a), .. } => Some(a.name.value.clone()),
        ast::TableFactor::Table { name, .. } => name
            .0
            .last()
            .and_then(|part| part.as_ident())
            .map(|ident| ident.value.clone()),
        _ => None,
    }
}

impl VisitorMut for UnqualifySingleRelationBlocks {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut ast::Query) -> ControlFlow<()> {
        let (single, names) = match query.body.as_ref() {
            ast::SetExpr::Select(select) => {
                let names = select
                    .from
                    .iter()
                    .flat_map(|from| {
                        std::iter::once(&from.relation)
                            .chain(from.joins.iter().map(|j| &j.relation))
                    })
                    .filter_map(relation_name)
                    .collect::<Vec<_>>();
                let single = match select.from.as_slice() {
                    [from] if from.joins.is_empty() => {
                        Some(relation_name(&from.relation).unwrap_or_default())
                    }
                    _ => None,
                };
                (single, names)
            }
            _ => (None, Vec::new()),
        };
        self.blocks.push(Block {
            single,
            names,
            in_expression: std::mem::take(&mut self.entering_expression),
        });
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &mut ast::Query) -> ControlFlow<()> {
        self.blocks.pop();
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &mut ast::Expr) -> ControlFlow<()> {
        if matches!(
            expr,
            ast::Expr::Exists { .. } | ast::Expr::Subquery(_) | ast::Expr::InSubquery { .. }
        ) {
            self.entering_expression = true;
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut ast::Expr) -> ControlFlow<()> {
        let Some((block, outer)) = self.blocks.split_last() else {
            return ControlFlow::Continue(());
        };
        let Some(own) = &block.single else {
            return ControlFlow::Continue(());
        };
        let ast::Expr::CompoundIdentifier(parts) = expr else {
            return ControlFlow::Continue(());
        };
        let Some((column, qualifier)) = parts.split_last() else {
            return ControlFlow::Continue(());
        };
        let correlated = block.in_expression
            && qualifier.last().is_some_and(|q| {
                q.value != *own && outer.iter().any(|b| b.names.contains(&q.value))
            });
        if !correlated {
            *expr = ast::Expr::Identifier(column.clone());
        }
        ControlFlow::Continue(())
    }
}

/// `SELECT a FROM (SELECT a, b FROM t ORDER BY b) AS d` promises no order:
/// a database may drop an ORDER BY inside a derived table. When the outer
/// query has no ORDER BY of its own and reads one derived table ordered by
/// its columns (plain, or in expressions of them: `b IS NULL`, MySQL's
/// bytes of `b`), the order is repeated outside, where it binds.
fn hoist_derived_order(statement: &mut ast::Statement) {
    let ast::Statement::Query(query) = statement else {
        return;
    };
    if query.order_by.is_some() {
        return;
    }
    let ast::SetExpr::Select(select) = query.body.as_ref() else {
        return;
    };
    let [from] = select.from.as_slice() else {
        return;
    };
    if !from.joins.is_empty() {
        return;
    }
    let ast::TableFactor::Derived { subquery, .. } = &from.relation else {
        return;
    };
    let Some(order) = &subquery.order_by else {
        return;
    };
    let ast::OrderByKind::Expressions(exprs) = &order.kind else {
        return;
    };
    if exprs.iter().all(|e| of_own_columns(&e.expr)) {
        query.order_by = Some(order.clone());
    }
}

/// True for an expression of unqualified columns only (at least one; no
/// subquery), which binds outside the derived table as inside it.
fn of_own_columns(expr: &ast::Expr) -> bool {
    let mut columns = 0;
    let visited = ast::visit_expressions(expr, |e| match e {
        ast::Expr::Identifier(_) => {
            columns += 1;
            ControlFlow::Continue(())
        }
        ast::Expr::CompoundIdentifier(_)
        | ast::Expr::Subquery(_)
        | ast::Expr::Exists { .. }
        | ast::Expr::InSubquery { .. } => ControlFlow::Break(()),
        _ => ControlFlow::Continue(()),
    });
    visited.is_continue() && columns > 0
}
