//! Partial aggregates through cross-source joins (eager aggregation). An
//! aggregate over `other ⋈ side`, whose functions read only `side`, and
//! `side` one source: that source first aggregates its rows per join key
//! (and per grouping column of its own), the join then meets far fewer
//! rows, and DataFusion combines the partial results:
//!
//! ```text
//! SELECT c.name, sum(l.price) FROM pg.customer c JOIN my.lineitem l ON … GROUP BY c.name
//!   → my: SELECT l.custkey, sum(l.price) AS p FROM lineitem GROUP BY l.custkey
//!   → here: sum(p) per c.name over customer ⋈ that
//! ```
//!
//! Each joined row repeats its partial once per match, exactly as the
//! original rows were repeated, so `count` → `sum` of counts, `sum` →
//! `sum`, `min`/`max` → themselves, `avg` → the sum of sums over the sum
//! of counts (for decimals merged as `avg`'s own state, so its type and
//! rounding hold: `decimal_avg::avg_of_partials`). DISTINCT aggregates, aggregate
//! filters and ordered aggregates are left alone, as are outer joins.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema, NullEquality};
use datafusion::error::Result;
use datafusion::functions::core::expr_fn::{coalesce, nullif};
use datafusion::functions_aggregate::expr_fn::{count, max, min, sum};
use datafusion::logical_expr::expr::{AggregateFunction, Alias};
use datafusion::logical_expr::{
    Aggregate, Cast, Expr, ExprSchemable, Join, JoinType, LogicalPlan, Projection, lit,
};

use super::decimal_avg::avg_of_partials;

/// True when `side` reads exactly one source, which can run `partial` (the
/// partial aggregate) itself, and `other` is not all of that same source
/// (then the whole aggregate goes there anyway).
pub type PushesAggregate<'a> = &'a dyn Fn(&LogicalPlan, &LogicalPlan, &LogicalPlan) -> Result<bool>;

/// Every aggregate of `plan` over a cross-source join, with its partial
/// aggregate pushed to the side its functions read (where that side is one
/// source that can run it).
pub fn push_partials(plan: LogicalPlan, pushes: PushesAggregate<'_>) -> Result<LogicalPlan> {
    plan.transform_up(|node| match node {
        LogicalPlan::Aggregate(aggregate) => eager(aggregate, pushes),
        other => Ok(Transformed::no(other)),
    })
    .map(|t| t.data)
}

/// What is below projections of plain columns.
fn below_pruning(plan: &LogicalPlan) -> &LogicalPlan {
    match plan {
        LogicalPlan::Projection(p) if p.expr.iter().all(|e| matches!(e, Expr::Column(_))) => {
            below_pruning(&p.input)
        }
        other => other,
    }
}

fn within(expr: &Expr, schema: &DFSchema) -> bool {
    expr.column_refs().iter().all(|c| schema.has_column(c))
}

/// One aggregate function split in two: the partial one (run at the
/// source) and how to combine the partials (`Column`s named `p{i}`).
struct Split {
    partials: Vec<Expr>,
    combine: Expr,
}

fn split(index: usize, expr: &Expr, side: &DFSchema) -> Option<Split> {
    let inner = match expr {
        Expr::Alias(Alias { expr, .. }) => expr.as_ref(),
        other => other,
    };
    let Expr::AggregateFunction(AggregateFunction { func, params }) = inner else {
        return None;
    };
    if params.distinct || params.filter.is_some() || !params.order_by.is_empty() {
        return None;
    }
    let [arg] = params.args.as_slice() else {
        return None;
    };
    if !within(arg, side) {
        return None;
    }
    let name = |k: usize| format!("tributary_partial_{index}_{k}");
    let column = |k: usize| Expr::Column(Column::from_name(name(k)));
    let (partials, combine) = match func.name() {
        "count" => (
            vec![count(arg.clone()).alias(name(0))],
            coalesce(vec![sum(column(0)), lit(0_i64)]),
        ),
        "sum" => (vec![sum(arg.clone()).alias(name(0))], sum(column(0))),
        "min" => (vec![min(arg.clone()).alias(name(0))], min(column(0))),
        "max" => (vec![max(arg.clone()).alias(name(0))], max(column(0))),
        "avg" => {
            let data_type = arg.get_type(side).ok()?;
            if matches!(
                data_type,
                DataType::Decimal128(..) | DataType::Decimal256(..)
            ) {
                // Merged as `avg`'s own state: its type and rounding.
                return Some(Split {
                    partials: vec![
                        sum(arg.clone()).alias(name(0)),
                        count(arg.clone()).alias(name(1)),
                    ],
                    combine: avg_of_partials(column(0), column(1), data_type),
                });
            }
            if !(data_type.is_integer() || data_type.is_floating()) {
                return None;
            }
            let float = |e: Expr| Expr::Cast(Cast::new(Box::new(e), DataType::Float64));
            (
                vec![
                    sum(float(arg.clone())).alias(name(0)),
                    count(arg.clone()).alias(name(1)),
                ],
                sum(column(0)) / float(nullif(sum(column(1)), lit(0_i64))),
            )
        }
        _ => return None,
    };
    Some(Split { partials, combine })
}

fn eager(aggregate: Aggregate, pushes: PushesAggregate<'_>) -> Result<Transformed<LogicalPlan>> {
    let LogicalPlan::Join(join) = below_pruning(&aggregate.input) else {
        return Ok(Transformed::no(LogicalPlan::Aggregate(aggregate)));
    };
    if join.join_type != JoinType::Inner
        || join.null_equality != NullEquality::NullEqualsNothing
        || join.filter.is_some()
        || join.on.is_empty()
        || aggregate.aggr_expr.is_empty()
    {
        return Ok(Transformed::no(LogicalPlan::Aggregate(aggregate)));
    }
    for side_is_right in [true, false] {
        let (side, other) = if side_is_right {
            (&join.right, &join.left)
        } else {
            (&join.left, &join.right)
        };
        let Some(splits) = aggregate
            .aggr_expr
            .iter()
            .enumerate()
            .map(|(i, e)| split(i, e, side.schema()))
            .collect::<Option<Vec<_>>>()
        else {
            continue;
        };
        // The side's join keys and its own grouping columns, as plain columns.
        let keys: Vec<&Expr> = join
            .on
            .iter()
            .map(|(l, r)| if side_is_right { r } else { l })
            .collect();
        let own_groups: Vec<&Expr> = aggregate
            .group_expr
            .iter()
            .filter(|g| within(g, side.schema()))
            .collect();
        let groups_elsewhere_ok = aggregate
            .group_expr
            .iter()
            .all(|g| within(g, side.schema()) || within(g, other.schema()));
        if !groups_elsewhere_ok
            || !keys
                .iter()
                .chain(&own_groups)
                .all(|e| matches!(e, Expr::Column(_)))
        {
            continue;
        }
        let mut group_expr: Vec<Expr> = Vec::new();
        for e in keys.iter().chain(&own_groups) {
            if !group_expr.contains(e) {
                group_expr.push((*e).clone());
            }
        }
        let partial = LogicalPlan::Aggregate(Aggregate::try_new(
            side.clone(),
            group_expr,
            splits.iter().flat_map(|s| s.partials.clone()).collect(),
        )?);
        if !pushes(side, other, &partial)? {
            continue;
        }
        let (left, right) = if side_is_right {
            (other.clone(), Arc::new(partial))
        } else {
            (Arc::new(partial), other.clone())
        };
        let joined = LogicalPlan::Join(Join::try_new(
            left,
            right,
            join.on.clone(),
            None,
            JoinType::Inner,
            join.join_constraint,
            NullEquality::NullEqualsNothing,
            false,
        )?);
        let combined = Aggregate::try_new(
            Arc::new(joined),
            aggregate.group_expr.clone(),
            splits
                .iter()
                .enumerate()
                .map(|(i, s)| s.combine.clone().alias(format!("tributary_combined_{i}")))
                .collect(),
        )?;
        // The original names (and order) again.
        let output: Vec<Expr> = combined
            .schema
            .columns()
            .into_iter()
            .zip(aggregate.schema.iter())
            .map(|(column, (qualifier, field))| {
                if column.relation.as_ref() == qualifier && column.name == *field.name() {
                    Expr::Column(column)
                } else {
                    Expr::Column(column).alias_qualified(qualifier.cloned(), field.name())
                }
            })
            .collect();
        return Ok(Transformed::yes(LogicalPlan::Projection(
            Projection::try_new(output, Arc::new(LogicalPlan::Aggregate(combined)))?,
        )));
    }
    Ok(Transformed::no(LogicalPlan::Aggregate(aggregate)))
}
