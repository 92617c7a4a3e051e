//! Short names for a SQL query's window functions, so that a source can run
//! them. The SQL planner leaves `row_number() OVER (…)` unnamed in its
//! window node, and the plan above refers to its output by its display
//! name (`row_number() PARTITION BY [t.g] ORDER BY …`): written out for a
//! source, that is an identifier too long for MySQL and cut to 63 bytes by
//! PostgreSQL (two windows could then share one). Each is named
//! `tributary_window_N` in its window node instead, the nodes above refer
//! to it by that name, and the plan's own output keeps its names; the
//! window then goes to its source wherever `pushdown` allows it (a top-N
//! per group).

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchema, DFSchemaRef};
use datafusion::error::Result;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{EmptyRelation, Expr, LogicalPlan, Projection, Window};

/// The plan with its unnamed window functions named, or as it was where a
/// node other than a projection, filter, sort, limit, alias or window
/// reads one of them (an aggregate's output names would change).
pub fn name_windows(plan: LogicalPlan) -> Result<LogicalPlan> {
    if !has_unnamed_window(&plan)? {
        return Ok(plan);
    }
    let original = plan.schema().clone();
    let mut renamed = HashMap::new();
    let mut readable = true;
    let named = plan.clone().transform_up(|node| {
        // A window's display names as the nodes above know them (before its
        // own references to a window below are renamed).
        let displays: Vec<String> = match &node {
            LogicalPlan::Window(window) => window
                .window_expr
                .iter()
                .map(|e| e.schema_name().to_string())
                .collect(),
            _ => Vec::new(),
        };
        let node = if renamed.is_empty() {
            node
        } else {
            match rename_references(node, &renamed)? {
                Some(node) => node,
                None => {
                    readable = false;
                    // Given up: the original plan is kept.
                    let nothing = LogicalPlan::EmptyRelation(EmptyRelation {
                        produce_one_row: false,
                        schema: Arc::new(DFSchema::empty()),
                    });
                    return Ok(Transformed::new(nothing, true, TreeNodeRecursion::Stop));
                }
            }
        };
        let LogicalPlan::Window(window) = node else {
            return Ok(Transformed::yes(node));
        };
        let mut exprs = Vec::with_capacity(window.window_expr.len());
        for (expr, display) in window.window_expr.into_iter().zip(displays) {
            if matches!(expr, Expr::WindowFunction(_)) {
                let name = format!("tributary_window_{}", renamed.len());
                renamed.insert(display, name.clone());
                exprs.push(expr.alias(name));
            } else {
                exprs.push(expr);
            }
        }
        Ok(Transformed::yes(LogicalPlan::Window(Window::try_new(
            exprs,
            window.input,
        )?)))
    })?;
    if !readable {
        return Ok(plan);
    }
    restore_names(named.data, &original)
}

fn has_unnamed_window(plan: &LogicalPlan) -> Result<bool> {
    plan.exists(|node| {
        Ok(matches!(node, LogicalPlan::Window(w)
            if w.window_expr.iter().any(|e| matches!(e, Expr::WindowFunction(_)))))
    })
}

/// `node` reading the renamed columns by their new names (its schema
/// recomputed); `None` for a node whose own output names would change (an
/// aggregate grouping by one, a join on one…).
fn rename_references(
    node: LogicalPlan,
    renamed: &HashMap<String, String>,
) -> Result<Option<LogicalPlan>> {
    let rename = |expr: Expr| {
        expr.transform_up(|e| match e {
            Expr::Column(Column {
                relation,
                name,
                spans,
            }) if renamed.contains_key(&name) => Ok(Transformed::yes(Expr::Column(Column {
                relation,
                name: renamed[&name].clone(),
                spans,
            }))),
            other => Ok(Transformed::no(other)),
        })
    };
    match node {
        LogicalPlan::Projection(projection) => {
            // Computed outputs keep their names; a bare renamed column
            // passes its new name on.
            let names = NamePreserver::new_for_projection();
            let exprs = projection
                .expr
                .into_iter()
                .map(|expr| {
                    let bare = matches!(expr, Expr::Column(_));
                    let saved = names.save(&expr);
                    let expr = rename(expr)?.data;
                    Ok(if bare { expr } else { saved.restore(expr) })
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(Some(LogicalPlan::Projection(Projection::try_new(
                exprs,
                projection.input,
            )?)))
        }
        LogicalPlan::Filter(_)
        | LogicalPlan::Sort(_)
        | LogicalPlan::Limit(_)
        | LogicalPlan::SubqueryAlias(_)
        | LogicalPlan::Window(_) => {
            Ok(Some(node.map_expressions(rename)?.data.recompute_schema()?))
        }
        other => {
            let reads = other.expressions().iter().any(|e| {
                e.column_refs()
                    .iter()
                    .any(|c| renamed.contains_key(&c.name))
            });
            // Other nodes pass the renamed columns on under their new names.
            (!reads).then(|| other.recompute_schema()).transpose()
        }
    }
}

/// A projection giving `plan`'s columns the names of `original` where
/// they changed.
fn restore_names(plan: LogicalPlan, original: &DFSchemaRef) -> Result<LogicalPlan> {
    if plan.schema().field_names() == original.field_names() {
        return Ok(plan);
    }
    let exprs = plan
        .schema()
        .columns()
        .into_iter()
        .zip(original.iter())
        .map(|(now, (qualifier, field))| {
            Expr::Column(now).alias_qualified(qualifier.cloned(), field.name())
        })
        .collect();
    Ok(LogicalPlan::Projection(Projection::try_new(
        exprs,
        Arc::new(plan),
    )?))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests fail loudly

    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::functions_aggregate::expr_fn::count;
    use datafusion::functions_window::expr_fn::row_number;
    use datafusion::logical_expr::{ExprFunctionExt, LogicalPlanBuilder, col, lit, table_scan};

    use super::*;

    fn scan() -> LogicalPlanBuilder {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("g", DataType::Int64, true),
        ]);
        table_scan(Some("t"), &schema, None).unwrap()
    }

    /// The scan numbered per `g`, and the number's column name.
    fn numbered() -> (LogicalPlanBuilder, String) {
        let number = row_number()
            .partition_by(vec![col("g")])
            .order_by(vec![col("id").sort(true, false)])
            .build()
            .unwrap();
        let window = scan().window(vec![number]).unwrap();
        let display = window.schema().field(2).name().clone();
        (window, display)
    }

    /// Named in the window, read by that name above, and the plan's output
    /// named as it was.
    #[test]
    fn windows_are_named_and_the_answer_keeps_its_names() {
        let (window, display) = numbered();
        let plan = window
            .filter(col(display.as_str()).eq(lit(1_u64)))
            .unwrap()
            .project(vec![col("id"), col(display.as_str())])
            .unwrap()
            .build()
            .unwrap();
        let named = name_windows(plan.clone()).unwrap();
        assert_eq!(named.schema().field_names(), plan.schema().field_names());
        let text = named.display_indent().to_string();
        assert!(text.contains("AS tributary_window_0"), "{text}");
        assert!(
            text.contains("Filter: tributary_window_0 = UInt64(1)"),
            "{text}"
        );
        // Named once: a second pass changes nothing.
        assert_eq!(name_windows(named.clone()).unwrap(), named);
    }

    /// An aggregate grouping by a window's output would name its own
    /// output after the new name: the plan stays as it was.
    #[test]
    fn a_plan_grouping_by_a_window_output_is_left_alone() {
        let (window, display) = numbered();
        let plan = window
            .aggregate(vec![col(display.as_str())], vec![count(lit(1))])
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(name_windows(plan.clone()).unwrap(), plan);
    }
}
