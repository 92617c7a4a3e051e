//! Join regrouping: in a tree of inner joins, the tables of one source are
//! joined with each other first, so that source gets one statement for its
//! whole part of the join. `customer ⋈ orders ⋈ lineitem` with customer in
//! PostgreSQL and orders and lineitem in MariaDB is written, as SQL writes
//! it, `(customer ⋈ orders) ⋈ lineitem`: every table would be fetched on
//! its own (all of lineitem) and joined here. Regrouped, it becomes
//! `customer ⋈ (orders ⋈ lineitem)` and MariaDB runs orders ⋈ lineitem.
//!
//! Semi and anti joins (`IN`, `EXISTS`) over such a tree are first moved
//! onto the one table they filter.
//!
//! Only inner equi-joins are reordered (where order never changes the
//! answer); tables of one source are grouped only when they join on a key
//! (so a group's statement never returns more rows than its tables), never
//! into a cross join. The regrouped tree ends in a
//! projection, so its output is what it was.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema, NullEquality};
use datafusion::error::Result;
use datafusion::logical_expr::utils::{conjunction, split_conjunction};
use datafusion::logical_expr::{Expr, Join, JoinConstraint, JoinType, LogicalPlan, Projection};

/// Which source a plan reads (`None`: several, or none to federate).
pub type SourceOf<'a> = &'a dyn Fn(&LogicalPlan) -> Result<Option<String>>;

/// True when a column of a join input is a key of it (no two rows share a
/// value): its table's one-column primary key or unique constraint.
pub type IsKey<'a> = &'a dyn Fn(&LogicalPlan, &Column) -> bool;

/// Every inner-join tree of `plan`, regrouped by source where that puts
/// tables of one source together.
pub fn group_by_source(
    plan: LogicalPlan,
    source_of: SourceOf<'_>,
    is_key: IsKey<'_>,
) -> Result<LogicalPlan> {
    plan.transform_up(|node| {
        let node = semi_join_to_leaf(node)?;
        regroup(node.data, source_of, is_key).map(|t| {
            let changed = node.transformed || t.transformed;
            Transformed::new_transformed(t.data, changed)
        })
    })
    .map(|t| t.data)
}

/// A semi or anti join over an inner-join tree whose left-side columns all
/// come from one table of the tree is moved onto that table: `(customer ⋈
/// orders) ⋉ big_orders` becomes `customer ⋈ (orders ⋉ big_orders)`. It
/// filters that table's rows only, so the answer is the same, and the
/// table with its semi join can then go to its source in one statement.
fn semi_join_to_leaf(node: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    let LogicalPlan::Join(join) = &node else {
        return Ok(Transformed::no(node));
    };
    let semi = join.join_type == JoinType::LeftSemi
        || join.join_type == JoinType::LeftAnti && !join.null_aware;
    if !semi || join.null_equality != NullEquality::NullEqualsNothing {
        return Ok(Transformed::no(node));
    }
    let mut flat = Flat::default();
    flatten(&join.left, &mut flat);
    if flat.leaves.len() < 2 {
        return Ok(Transformed::no(node));
    }
    // The columns of the left side the semi join reads.
    let right = join.right.schema();
    let mut used: Vec<&Column> = Vec::new();
    for (left, _) in &join.on {
        used.extend(left.column_refs());
    }
    if let Some(filter) = &join.filter {
        used.extend(
            filter
                .column_refs()
                .into_iter()
                .filter(|c| !right.has_column(c)),
        );
    }
    let Some(target) = flat
        .leaves
        .iter()
        .position(|leaf| used.iter().all(|c| leaf.schema().has_column(c)))
    else {
        return Ok(Transformed::no(node));
    };
    let moved = with_inputs(
        join,
        Arc::new(flat.leaves[target].clone()),
        join.right.clone(),
    )?;
    let mut next = 0;
    let rebuilt = replace_leaf(&join.left, &mut next, target, &moved)?;
    Ok(Transformed::yes(rebuilt))
}

/// `join` over other inputs, its conditions and kind kept.
fn with_inputs(
    join: &Join,
    left: Arc<LogicalPlan>,
    right: Arc<LogicalPlan>,
) -> Result<LogicalPlan> {
    Ok(LogicalPlan::Join(Join::try_new(
        left,
        right,
        join.on.clone(),
        join.filter.clone(),
        join.join_type,
        join.join_constraint,
        join.null_equality,
        join.null_aware,
    )?))
}

/// `plan` (an inner-join tree, as [`flatten`] walks it) with its leaf number
/// `target` replaced by `new`.
fn replace_leaf(
    plan: &LogicalPlan,
    next: &mut usize,
    target: usize,
    new: &LogicalPlan,
) -> Result<LogicalPlan> {
    match plan {
        LogicalPlan::Projection(projection)
            if projection.expr.iter().all(|e| matches!(e, Expr::Column(_)))
                && matches!(below_pruning(plan), LogicalPlan::Join(j) if reorderable(j)) =>
        {
            let input = replace_leaf(&projection.input, next, target, new)?;
            Ok(LogicalPlan::Projection(Projection::try_new(
                projection.expr.clone(),
                Arc::new(input),
            )?))
        }
        LogicalPlan::Join(join) if reorderable(join) => {
            let left = replace_leaf(&join.left, next, target, new)?;
            let right = replace_leaf(&join.right, next, target, new)?;
            with_inputs(join, Arc::new(left), Arc::new(right))
        }
        leaf => {
            let index = *next;
            *next += 1;
            Ok(if index == target {
                new.clone()
            } else {
                leaf.clone()
            })
        }
    }
}

/// A join condition of the flattened tree.
#[derive(Clone)]
enum Condition {
    /// `left = right`, a hash-join key.
    Equal(Expr, Expr),
    /// Any other condition.
    Other(Expr),
}

/// An inner-join tree as its inputs (leaves), its conditions, and the
/// leaf ranges its joins cover.
#[derive(Default)]
struct Flat {
    leaves: Vec<LogicalPlan>,
    conditions: Vec<Condition>,
    subtrees: Vec<(usize, usize)>,
}

fn reorderable(join: &Join) -> bool {
    join.join_type == JoinType::Inner
        && join.null_equality == NullEquality::NullEqualsNothing
        && !join.null_aware
}

fn flatten(plan: &LogicalPlan, flat: &mut Flat) {
    match below_pruning(plan) {
        LogicalPlan::Join(join) if reorderable(join) => {
            let start = flat.leaves.len();
            flatten(&join.left, flat);
            flatten(&join.right, flat);
            flat.subtrees.push((start, flat.leaves.len()));
            flat.conditions.extend(
                join.on
                    .iter()
                    .map(|(l, r)| Condition::Equal(l.clone(), r.clone())),
            );
            if let Some(filter) = &join.filter {
                flat.conditions.extend(
                    split_conjunction(filter)
                        .into_iter()
                        .map(|e| Condition::Other(e.clone())),
                );
            }
        }
        _ => flat.leaves.push(plan.clone()),
    }
}

/// What is below the column pruning (projections of plain columns) that
/// sits between joins: those columns are still there below.
fn below_pruning(plan: &LogicalPlan) -> &LogicalPlan {
    match plan {
        LogicalPlan::Projection(projection)
            if projection.expr.iter().all(|e| matches!(e, Expr::Column(_))) =>
        {
            below_pruning(&projection.input)
        }
        other => other,
    }
}

fn within(expr: &Expr, schema: &DFSchema) -> bool {
    expr.column_refs().iter().all(|c| schema.has_column(c))
}

/// The one leaf all of `expr`'s columns come from.
fn leaf_of(expr: &Expr, leaves: &[LogicalPlan]) -> Option<usize> {
    if expr.column_refs().is_empty() {
        return None;
    }
    leaves.iter().position(|leaf| within(expr, leaf.schema()))
}

fn regroup(
    node: LogicalPlan,
    source_of: SourceOf<'_>,
    is_key: IsKey<'_>,
) -> Result<Transformed<LogicalPlan>> {
    let LogicalPlan::Join(join) = &node else {
        return Ok(Transformed::no(node));
    };
    if !reorderable(join) {
        return Ok(Transformed::no(node));
    }
    let mut flat = Flat::default();
    flatten(&node, &mut flat);
    if flat.leaves.len() < 3 {
        return Ok(Transformed::no(node));
    }
    let sources = flat
        .leaves
        .iter()
        .map(source_of)
        .collect::<Result<Vec<_>>>()?;

    // Leaves of one source joined on a key: one group. A group only takes
    // a table that matches at most one row per row of the group (its join
    // column is a key of it, or the group is one table joined on its own
    // key), so a group's statement never returns more rows than its
    // tables: customer and supplier joined on their nation keys (TPC-H q05)
    // would multiply, and stay apart.
    let n = flat.leaves.len();
    let key =
        |leaf: usize, expr: &Expr| matches!(expr, Expr::Column(c) if is_key(&flat.leaves[leaf], c));
    let mut assigned = vec![false; n];
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for start in 0..n {
        if assigned[start] {
            continue;
        }
        assigned[start] = true;
        let mut group = vec![start];
        while sources[start].is_some() {
            let joins_on_a_key = |x: usize| {
                flat.conditions.iter().any(|condition| {
                    let Condition::Equal(l, r) = condition else {
                        return false;
                    };
                    let (Some(a), Some(b)) = (leaf_of(l, &flat.leaves), leaf_of(r, &flat.leaves))
                    else {
                        return false;
                    };
                    let (inside, inside_expr, outside_expr) = if group.contains(&a) && b == x {
                        (a, l, r)
                    } else if group.contains(&b) && a == x {
                        (b, r, l)
                    } else {
                        return false;
                    };
                    key(x, outside_expr) || (group.len() == 1 && key(inside, inside_expr))
                })
            };
            let next =
                (0..n).find(|&x| !assigned[x] && sources[x] == sources[start] && joins_on_a_key(x));
            let Some(x) = next else {
                break;
            };
            assigned[x] = true;
            group.push(x);
        }
        group.sort_unstable();
        groups.push(group);
    }
    // Nothing to gain when every group already is a subtree of the join.
    let already = |g: &Vec<usize>| {
        g.len() == 1
            || (flat.subtrees.contains(&(g[0], g[g.len() - 1] + 1))
                && g.windows(2).all(|w| w[1] == w[0] + 1))
    };
    if groups.iter().all(already) {
        return Ok(Transformed::no(node));
    }

    let mut conditions = flat.conditions;
    let parts = groups
        .iter()
        .map(|g| {
            join_all(
                g.iter().map(|&i| flat.leaves[i].clone()).collect(),
                &mut conditions,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    let joined = join_all(parts, &mut conditions)?;
    if !conditions.is_empty() {
        // A condition found no place (cannot happen for a valid join tree):
        // keep the tree as written.
        return Ok(Transformed::no(node));
    }
    let output: Vec<Expr> = join
        .schema
        .iter()
        .map(|(qualifier, field)| Expr::Column(Column::new(qualifier.cloned(), field.name())))
        .collect();
    let schema = join.schema.clone();
    Ok(Transformed::yes(LogicalPlan::Projection(
        Projection::try_new_with_schema(output, Arc::new(joined), schema)?,
    )))
}

/// Joins `items` left to right, each next one chosen among those a
/// condition connects to what is joined so far; every condition is placed
/// at the first join that has its columns (and removed from `conditions`).
fn join_all(mut items: Vec<LogicalPlan>, conditions: &mut Vec<Condition>) -> Result<LogicalPlan> {
    let mut joined = items.remove(0);
    while !items.is_empty() {
        let connected = |item: &LogicalPlan| {
            conditions.iter().any(|c| match c {
                Condition::Equal(l, r) => {
                    within(l, joined.schema()) && within(r, item.schema())
                        || within(r, joined.schema()) && within(l, item.schema())
                }
                Condition::Other(_) => false,
            })
        };
        let next = items.iter().position(connected).unwrap_or(0);
        let item = items.remove(next);
        let mut on = Vec::new();
        let mut filters = Vec::new();
        let mut rest = Vec::new();
        for condition in conditions.drain(..) {
            match condition {
                Condition::Equal(l, r)
                    if within(&l, joined.schema()) && within(&r, item.schema()) =>
                {
                    on.push((l, r));
                }
                Condition::Equal(l, r)
                    if within(&r, joined.schema()) && within(&l, item.schema()) =>
                {
                    on.push((r, l));
                }
                Condition::Equal(l, r) if placeable(&[&l, &r], &joined, &item) => {
                    filters.push(l.eq(r));
                }
                Condition::Other(e) if placeable(&[&e], &joined, &item) => filters.push(e),
                other => rest.push(other),
            }
        }
        *conditions = rest;
        joined = LogicalPlan::Join(Join::try_new(
            Arc::new(joined),
            Arc::new(item),
            on,
            conjunction(filters),
            JoinType::Inner,
            JoinConstraint::On,
            NullEquality::NullEqualsNothing,
            false,
        )?);
    }
    Ok(joined)
}

/// True when every column of `exprs` is in one of the two join inputs.
fn placeable(exprs: &[&Expr], left: &LogicalPlan, right: &LogicalPlan) -> bool {
    exprs.iter().all(|e| {
        e.column_refs()
            .iter()
            .all(|c| left.schema().has_column(c) || right.schema().has_column(c))
    })
}
