//! JSON columns compare, sort and group as their text on every source, as
//! they do in the engine (which holds a document as its text). Left to the
//! sources, a PostgreSQL `jsonb` column has no string operators (`LIKE`
//! fails), compares and sorts as jsonb (shorter arrays first), and `json`
//! has no equality at all (no `GROUP BY`, no `DISTINCT`); Oracle MySQL's
//! `JSON` compares as JSON. So before federation every use of such a
//! column but its plain selection becomes a use of its text,
//! [`json_text`](crate::filter::json_text): `CAST(doc AS TEXT)` for
//! PostgreSQL, `CAST(doc AS CHAR)` for Oracle MySQL, the column itself for
//! MariaDB (whose `JSON` is `LONGTEXT`), and evaluated in the engine for the
//! other sources (see `pushdown`):
//!
//! - filters (also those pushed into a table scan), sort keys and join
//!   conditions wrap the column in place (their output is their input's);
//! - aggregates, windows and projections computing over a JSON column read
//!   it from a projection put under them that replaces the column with its
//!   text under the same name, so their own output names stay as they were
//!   (a renamed aggregate would not survive the federation's renaming).
//!
//! What reads a document as such — our containment and key tests, the array
//! items — is given the column (for PostgreSQL's jsonb operators, whose GIN
//! index then serves), and so is `IS [NOT] NULL` of the bare column.

use std::collections::HashSet;

use datafusion::common::Column;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, LogicalPlan, Projection};

use super::catalog;
use crate::filter;

/// `plan` with its JSON columns compared, sorted and grouped as their text.
pub fn as_text(plan: LogicalPlan) -> Result<LogicalPlan> {
    Ok(rewrite(plan)?.0)
}

/// `plan` rewritten, and which of its output columns are JSON documents.
fn rewrite(plan: LogicalPlan) -> Result<(LogicalPlan, HashSet<Column>)> {
    if let LogicalPlan::TableScan(mut scan) = plan {
        let names = catalog::json_columns(&scan);
        if names.is_empty() {
            return Ok((LogicalPlan::TableScan(scan), HashSet::new()));
        }
        // Filters pushed into the scan may name columns it does not project.
        let every: HashSet<Column> = names
            .iter()
            .map(|name| Column::new(Some(scan.table_name.clone()), name))
            .collect();
        scan.filters = std::mem::take(&mut scan.filters)
            .into_iter()
            .map(|f| wrap(f, &every, &mut HashSet::new()))
            .collect::<Result<_>>()?;
        let json = scan
            .projected_schema
            .columns()
            .into_iter()
            .filter(|c| names.contains(&c.name))
            .collect();
        return Ok((LogicalPlan::TableScan(scan), json));
    }
    let mut json = HashSet::new();
    let plan = plan
        .map_children(|child| {
            let (child, below) = rewrite(child)?;
            json.extend(below);
            Ok(Transformed::yes(child))
        })?
        .data
        .map_subqueries(|subquery| Ok(Transformed::yes(rewrite(subquery)?.0)))?
        .data;
    if json.is_empty() {
        return Ok((plan, json));
    }
    // The columns now read as their text from a projection below.
    let mut wrapped = HashSet::new();
    let plan = match plan {
        LogicalPlan::Filter(_) | LogicalPlan::Sort(_) | LogicalPlan::Join(_) => {
            plan.map_expressions(|e| Ok(Transformed::yes(wrap(e, &json, &mut HashSet::new())?)))?
                .data
        }
        LogicalPlan::Aggregate(_) | LogicalPlan::Window(_) | LogicalPlan::Projection(_) => {
            let projection = matches!(plan, LogicalPlan::Projection(_));
            for expr in plan.expressions() {
                if !(projection && bare_column(&expr).is_some()) {
                    wrap(expr, &json, &mut wrapped)?;
                }
            }
            if wrapped.is_empty() {
                plan
            } else {
                let inputs = plan
                    .inputs()
                    .into_iter()
                    .map(|input| texts_of(input.clone(), &wrapped))
                    .collect::<Result<_>>()?;
                plan.with_new_exprs(plan.expressions(), inputs)?
            }
        }
        other => other,
    };
    let json: HashSet<Column> = json.difference(&wrapped).cloned().collect();
    let output = match &plan {
        // A projection passes a document on under its own name; an alias
        // renames its input's columns, in order.
        LogicalPlan::Projection(projection) => projection
            .expr
            .iter()
            .zip(plan.schema().columns())
            .filter(|(e, _)| bare_column(e).is_some_and(|c| json.contains(c)))
            .map(|(_, c)| c)
            .collect(),
        LogicalPlan::SubqueryAlias(alias) => alias
            .input
            .schema()
            .columns()
            .into_iter()
            .zip(plan.schema().columns())
            .filter(|(inner, _)| json.contains(inner))
            .map(|(_, c)| c)
            .collect(),
        // A union's column is a document when it is one in any input.
        LogicalPlan::Union(union) => plan
            .schema()
            .columns()
            .into_iter()
            .enumerate()
            .filter(|(i, _)| {
                union.inputs.iter().any(|input| {
                    input
                        .schema()
                        .columns()
                        .get(*i)
                        .is_some_and(|c| json.contains(c))
                })
            })
            .map(|(_, c)| c)
            .collect(),
        LogicalPlan::Aggregate(_) => HashSet::new(),
        _ => plan
            .schema()
            .columns()
            .into_iter()
            .filter(|c| json.contains(c))
            .collect(),
    };
    Ok((plan, output))
}

/// The column a projection's plain selection (aliased or not) selects.
fn bare_column(expr: &Expr) -> Option<&Column> {
    match expr {
        Expr::Column(c) => Some(c),
        Expr::Alias(alias) => bare_column(&alias.expr),
        _ => None,
    }
}

/// `expr` with its JSON columns (of `json`) as their text, noting each
/// column so wrapped in `wrapped`.
fn wrap(expr: Expr, json: &HashSet<Column>, wrapped: &mut HashSet<Column>) -> Result<Expr> {
    Ok(expr
        .transform_down(|e| match e {
            Expr::Column(c) if json.contains(&c) => {
                wrapped.insert(c.clone());
                Ok(Transformed::new(
                    filter::json_text(Expr::Column(c)),
                    true,
                    TreeNodeRecursion::Jump,
                ))
            }
            Expr::ScalarFunction(ref f) if filter::reads_documents(f.name()) => {
                Ok(Transformed::new(e, false, TreeNodeRecursion::Jump))
            }
            Expr::IsNull(ref inner) | Expr::IsNotNull(ref inner)
                if matches!(**inner, Expr::Column(_)) =>
            {
                Ok(Transformed::new(e, false, TreeNodeRecursion::Jump))
            }
            other => Ok(Transformed::no(other)),
        })?
        .data)
}

/// `input` with each column of `texts` replaced by its text, under its own
/// qualified name.
fn texts_of(input: LogicalPlan, texts: &HashSet<Column>) -> Result<LogicalPlan> {
    let exprs = input
        .schema()
        .columns()
        .into_iter()
        .map(|c| {
            if texts.contains(&c) {
                let (relation, name) = (c.relation.clone(), c.name.clone());
                filter::json_text(Expr::Column(c)).alias_qualified(relation, name)
            } else {
                Expr::Column(c)
            }
        })
        .collect();
    Ok(LogicalPlan::Projection(Projection::try_new(
        exprs,
        input.into(),
    )?))
}
