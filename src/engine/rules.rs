//! The optimizer rules of the engine: DataFusion's own, then federation —
//! and the plan rewrites that make the federated SQL correct.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::Result;
use datafusion::logical_expr::{LogicalPlan, SubqueryAlias};
use datafusion::optimizer::optimizer::{Optimizer, OptimizerRule};
use datafusion::sql::sqlparser::ast::{self, visit_expressions_mut, visit_relations};
use tributary_schema_cache::SourceKind;

use super::federate::{FederateSources, project_all};

/// DataFusion's optimizer rules with federation placed last: filter and
/// projection pushdown (and the other rules) shape the plan first, so the
/// filters and column pruning of a cross-source query sit right above each
/// table scan and go into that source's SQL. (datafusion-federation inserts
/// its rule before them, which leaves those filters in DataFusion and
/// fetches whole tables.) `kinds` maps each source's federation compute
/// context to its kind, for the pushdown rules.
pub fn optimizer_rules(
    kinds: HashMap<String, SourceKind>,
) -> Vec<Arc<dyn OptimizerRule + Send + Sync>> {
    let mut rules = Optimizer::new().rules;
    rules.push(Arc::new(FederateSources::new(kinds)));
    rules
}

/// Before a federated plan is unparsed: an alias over anything but a
/// projection gets a projection in between, so the unparser writes a derived
/// table. Otherwise a filter that pushdown moved below the alias is written
/// with the table's own name (`FROM orders AS o WHERE orders.id > 2`), which
/// PostgreSQL and MySQL reject.
pub fn alias_derived_tables(plan: LogicalPlan) -> Result<LogicalPlan> {
    plan.transform_up(|node| match node {
        LogicalPlan::SubqueryAlias(alias) if needs_projection(&alias.input) => {
            let input = project_all(Arc::unwrap_or_clone(alias.input))?;
            Ok(Transformed::yes(LogicalPlan::SubqueryAlias(
                SubqueryAlias::try_new(Arc::new(input), alias.alias)?,
            )))
        }
        other => Ok(Transformed::no(other)),
    })
    .map(|t| t.data)
}

fn needs_projection(input: &LogicalPlan) -> bool {
    !matches!(
        input,
        LogicalPlan::Projection(_) | LogicalPlan::TableScan(_)
    )
}

/// After unparsing: in a statement over one table (no join), column
/// references need no qualifier, and the unparser's qualifiers can point at
/// a name a derived table hid (`SELECT customers.id FROM (SELECT … FROM
/// customers …) AS derived_limit`). Dropping them makes every such
/// reference resolve.
pub fn unqualify_single_table(mut statement: ast::Statement) -> Result<ast::Statement> {
    hoist_derived_order(&mut statement);
    let mut tables = 0;
    let _ = visit_relations(&statement, |_| {
        tables += 1;
        ControlFlow::<()>::Continue(())
    });
    if tables == 1 {
        let _ = visit_expressions_mut(&mut statement, |expr| {
            if let Some(column) = match expr {
                ast::Expr::CompoundIdentifier(parts) => parts.last().cloned(),
                _ => None,
            } {
                *expr = ast::Expr::Identifier(column);
            }
            ControlFlow::<()>::Continue(())
        });
    }
    Ok(statement)
}

/// `SELECT a FROM (SELECT a, b FROM t ORDER BY b) AS d` promises no order:
/// a database may drop an ORDER BY inside a derived table. When the outer
/// query has no ORDER BY of its own and reads one derived table ordered by
/// plain columns, the order is repeated outside, where it binds.
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
    if exprs
        .iter()
        .all(|e| matches!(e.expr, ast::Expr::Identifier(_)))
    {
        query.order_by = Some(order.clone());
    }
}
