//! Exact string semantics inside MySQL and MariaDB. Their collations ignore
//! case and trailing spaces (the default ones accents too); ours compare the
//! UTF-8 bytes. Before a plan goes to such a source, every string
//! comparison, grouping and sort key is made exact by also comparing the
//! bytes, written `CAST(CONVERT(x USING utf8mb4) AS BINARY)` — whatever the
//! column's character set:
//!
//! - `a = b` becomes `a = b AND bytes(a) = bytes(b)` (the collation's
//!   equality, a superset of the exact one, keeps indexes usable), `a IN
//!   (…)` likewise; `<>`, `<`, `BETWEEN`, `NOT IN` compare the bytes only;
//! - a join on string keys adds the bytes equality to its condition;
//! - `GROUP BY s` becomes `GROUP BY s, bytes(s)`, so groups are exact;
//! - `ORDER BY s` becomes `ORDER BY bytes(s)`: code point order, as ours;
//!   a window's `PARTITION BY s` and `ORDER BY s` likewise;
//! - `s LIKE 'p%'` compares the bytes (only for patterns without `_` and
//!   backslashes, see [`byte_like_pattern`]).
//!
//! CHAR columns come out of MySQL without their padding, as PostgreSQL
//! compares them, so the bytes of `'R'` in a CHAR(1) equal those of `'R'`.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, ScalarValue, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::expr::{InList, Like, ScalarFunction, Sort};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{
    Aggregate, Between, BinaryExpr, ColumnarValue, Expr, ExprSchemable, Join, LogicalPlan,
    Operator, Projection, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
    Window,
};
use datafusion::sql::sqlparser::ast::{self, CastKind, Ident, ObjectName};
use datafusion::sql::unparser::Unparser;

/// The function standing for "the UTF-8 bytes of a string" in a plan bound
/// for MySQL; [`bytes_to_sql`] writes it out.
const BYTES: &str = "tributary_utf8_bytes";

/// `bytes(string)`: the string's UTF-8 bytes. Only ever unparsed; it also
/// evaluates (a cast) should a plan holding it run in DataFusion.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Utf8Bytes {
    signature: Signature,
}

impl ScalarUDFImpl for Utf8Bytes {
    fn name(&self) -> &str {
        BYTES
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match args {
            [DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View] => Ok(DataType::Binary),
            other => plan_err!("{BYTES} takes one string, not {other:?}"),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        match args.args.as_slice() {
            [ColumnarValue::Array(array)] => {
                Ok(ColumnarValue::Array(cast(array, &DataType::Binary)?))
            }
            [ColumnarValue::Scalar(scalar)] => {
                Ok(ColumnarValue::Scalar(scalar.cast_to(&DataType::Binary)?))
            }
            _ => plan_err!("{BYTES} takes one argument"),
        }
    }
}

/// The one instance of the bytes function.
static BYTES_UDF: LazyLock<Arc<ScalarUDF>> = LazyLock::new(|| {
    Arc::new(ScalarUDF::from(Utf8Bytes {
        signature: Signature::any(1, Volatility::Immutable),
    }))
});

fn bytes(expr: Expr) -> Expr {
    Expr::ScalarFunction(ScalarFunction::new_udf(BYTES_UDF.clone(), vec![expr]))
}

fn is_string_type(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

fn is_string(expr: &Expr, schema: &DFSchema) -> bool {
    expr.get_type(schema).is_ok_and(|t| is_string_type(&t))
}

/// The plan with every string comparison, grouping and sort made exact for
/// MySQL (see the module documentation). Applied once per plan: a plan that
/// already holds the bytes function is returned as it is.
pub fn exact_strings(plan: LogicalPlan) -> Result<LogicalPlan> {
    if holds_bytes(&plan)? {
        return Ok(plan);
    }
    plan.transform_up(|node| {
        let node = match node {
            LogicalPlan::Join(join) => exact_join(join)?,
            other => other,
        };
        let node = rewrite_expressions(node)?;
        match node {
            LogicalPlan::Aggregate(aggregate) => exact_groups(aggregate),
            LogicalPlan::Window(window) => exact_window(window),
            LogicalPlan::Sort(mut sort) => {
                let changed = exact_order(&mut sort.expr, sort.input.schema());
                Ok(Transformed::new_transformed(
                    LogicalPlan::Sort(sort),
                    changed,
                ))
            }
            other => Ok(Transformed::yes(other)),
        }
    })?
    .data
    .transform_up(lift_group_projection)
    .map(|t| t.data)
}

/// Moves the projection `exact_groups` put over an aggregate up through
/// the HAVING filter, sort and limit above it, and merges it into the
/// projection above those: the unparser writes one query block for
/// `projection → filter → aggregate`, but a second projection would make
/// it a derived table whose aggregates have no names.
fn lift_group_projection(node: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    let Some(LogicalPlan::Projection(inner)) = node.inputs().first().copied() else {
        return Ok(Transformed::no(node));
    };
    if !(inner.expr.iter().all(|e| matches!(e, Expr::Column(_))) && groups_by_bytes(&inner.input)) {
        return Ok(Transformed::no(node));
    }
    let inner = inner.clone();
    match node {
        LogicalPlan::Projection(outer) => Ok(Transformed::yes(LogicalPlan::Projection(
            Projection::try_new_with_schema(outer.expr, inner.input, outer.schema)?,
        ))),
        LogicalPlan::Filter(_) | LogicalPlan::Sort(_) | LogicalPlan::Limit(_) => {
            let below =
                node.with_new_exprs(node.expressions(), vec![Arc::unwrap_or_clone(inner.input)])?;
            Ok(Transformed::yes(LogicalPlan::Projection(
                Projection::try_new(inner.expr, Arc::new(below))?,
            )))
        }
        other => Ok(Transformed::no(other)),
    }
}

/// True for an aggregate that `exact_groups` made, possibly under the
/// filter, sort and limit already lifted above it.
fn groups_by_bytes(plan: &LogicalPlan) -> bool {
    match plan {
        LogicalPlan::Aggregate(aggregate) => aggregate
            .group_expr
            .iter()
            .any(|e| matches!(e, Expr::ScalarFunction(f) if f.name() == BYTES)),
        LogicalPlan::Filter(_) | LogicalPlan::Sort(_) | LogicalPlan::Limit(_) => {
            plan.inputs().into_iter().all(groups_by_bytes)
        }
        _ => false,
    }
}

fn holds_bytes(plan: &LogicalPlan) -> Result<bool> {
    let mut found = false;
    plan.apply(|node| {
        node.apply_expressions(|e| {
            e.apply(|e| {
                if matches!(e, Expr::ScalarFunction(f) if f.name() == BYTES) {
                    found = true;
                    return Ok(TreeNodeRecursion::Stop);
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })?;
        Ok(if found {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    })?;
    Ok(found)
}

/// Sort keys in MySQL's order as ours: each string key by its bytes (true
/// when any was). Their NULLs are placed by [`null_order`].
fn exact_order(keys: &mut [Sort], schema: &DFSchema) -> bool {
    let mut changed = false;
    for key in keys {
        if is_string(&key.expr, schema) {
            *key = Sort::new(bytes(key.expr.clone()), key.asc, key.nulls_first);
            changed = true;
        }
    }
    changed
}

/// A window partitions and orders by the bytes of its string keys: `'a'`
/// and `'A'` are two partitions, rows are numbered in code point order.
/// Its outputs keep their names and types.
fn exact_window(mut window: Window) -> Result<Transformed<LogicalPlan>> {
    let schema = window.input.schema().clone();
    let mut changed = false;
    for expr in &mut window.window_expr {
        *expr = std::mem::take(expr)
            .transform_up(|e| {
                let Expr::WindowFunction(mut function) = e else {
                    return Ok(Transformed::no(e));
                };
                let params = &mut function.params;
                let mut exact = false;
                for key in &mut params.partition_by {
                    if is_string(key, &schema) {
                        *key = bytes(std::mem::take(key));
                        exact = true;
                    }
                }
                exact |= exact_order(&mut params.order_by, &schema);
                changed |= exact;
                Ok(Transformed::new_transformed(
                    Expr::WindowFunction(function),
                    exact,
                ))
            })?
            .data;
    }
    Ok(Transformed::new_transformed(
        LogicalPlan::Window(window),
        changed,
    ))
}

/// A join on string keys also compares their bytes.
fn exact_join(mut join: Join) -> Result<LogicalPlan> {
    let checks: Vec<Expr> = join
        .on
        .iter()
        .filter(|(left, _)| is_string(left, join.left.schema()))
        .map(|(left, right)| bytes(left.clone()).eq(bytes(right.clone())))
        .collect();
    if !checks.is_empty() {
        join.filter = conjunction(join.filter.take().into_iter().chain(checks));
    }
    Ok(LogicalPlan::Join(join))
}

/// Rewrites the comparisons in a node's expressions, typed against the
/// schema its expressions see (its input's; a join's own).
fn rewrite_expressions(node: LogicalPlan) -> Result<LogicalPlan> {
    let schema = match &node {
        LogicalPlan::Join(join) => join.schema.clone(),
        other => match other.inputs().as_slice() {
            [input] => input.schema().clone(),
            _ => return Ok(node),
        },
    };
    // Output names stay as they were (a projected `s = 'x'` keeps its name).
    let names = NamePreserver::new(&node);
    node.map_expressions(|expr| {
        let saved = names.save(&expr);
        Ok(expr
            .transform_up(|e| exact_comparison(e, &schema))?
            .update_data(|e| saved.restore(e)))
    })
    .map(|t| t.data)
}

fn exact_comparison(expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right })
            if is_string(&left, schema) || is_string(&right, schema) =>
        {
            let exact = |op| {
                Expr::BinaryExpr(BinaryExpr::new(
                    Box::new(bytes(*left.clone())),
                    op,
                    Box::new(bytes(*right.clone())),
                ))
            };
            Ok(Transformed::yes(match op {
                // Equality keeps the collation's own (index-friendly) test too.
                Operator::Eq => Expr::BinaryExpr(BinaryExpr::new(left.clone(), op, right.clone()))
                    .and(exact(op)),
                Operator::NotEq
                | Operator::Lt
                | Operator::LtEq
                | Operator::Gt
                | Operator::GtEq
                | Operator::IsDistinctFrom
                | Operator::IsNotDistinctFrom => exact(op),
                _ => {
                    return Ok(Transformed::no(Expr::BinaryExpr(BinaryExpr {
                        left,
                        op,
                        right,
                    })));
                }
            }))
        }
        Expr::InList(InList {
            expr,
            list,
            negated,
        }) if is_string(&expr, schema) => {
            let exact = Expr::InList(InList::new(
                Box::new(bytes(*expr.clone())),
                list.iter().cloned().map(bytes).collect(),
                negated,
            ));
            Ok(Transformed::yes(if negated {
                exact
            } else {
                Expr::InList(InList::new(expr, list, false)).and(exact)
            }))
        }
        Expr::Between(Between {
            expr,
            negated,
            low,
            high,
        }) if is_string(&expr, schema) => Ok(Transformed::yes(Expr::Between(Between::new(
            Box::new(bytes(*expr)),
            negated,
            Box::new(bytes(*low)),
            Box::new(bytes(*high)),
        )))),
        Expr::Like(Like {
            negated,
            expr,
            pattern,
            escape_char: None,
            case_insensitive: false,
        }) if byte_like_pattern(&pattern) => Ok(Transformed::yes(Expr::Like(Like::new(
            negated,
            Box::new(bytes(*expr)),
            Box::new(bytes(*pattern)),
            None,
            false,
        )))),
        other => Ok(Transformed::no(other)),
    }
}

/// True for a LIKE pattern that matches the same compared as bytes: a
/// string literal without `_` (one byte there, one character here) and
/// without backslashes (escapes).
pub fn byte_like_pattern(pattern: &Expr) -> bool {
    match pattern {
        Expr::Literal(
            ScalarValue::Utf8(Some(p))
            | ScalarValue::LargeUtf8(Some(p))
            | ScalarValue::Utf8View(Some(p)),
            _,
        ) => !p.contains('_') && !p.contains('\\'),
        _ => false,
    }
}

/// `GROUP BY s` → `GROUP BY s, bytes(s)` under a projection that drops the
/// extra keys again (same output as before).
fn exact_groups(aggregate: Aggregate) -> Result<Transformed<LogicalPlan>> {
    let schema = aggregate.input.schema().clone();
    let extra: Vec<Expr> = aggregate
        .group_expr
        .iter()
        .filter(|e| is_string(e, &schema))
        .map(|e| bytes(e.clone().unalias()))
        .collect();
    if extra.is_empty() {
        return Ok(Transformed::no(LogicalPlan::Aggregate(aggregate)));
    }
    let output: Vec<Expr> = aggregate
        .schema
        .columns()
        .into_iter()
        .map(Expr::Column)
        .collect();
    let group_expr = aggregate.group_expr.iter().cloned().chain(extra).collect();
    let grouped = Aggregate::try_new(aggregate.input, group_expr, aggregate.aggr_expr)?;
    // The aggregate's own schema, functional dependencies included: the
    // federation planner insists the plan's schema stays exactly the same.
    Ok(Transformed::yes(LogicalPlan::Projection(
        Projection::try_new_with_schema(
            output,
            Arc::new(LogicalPlan::Aggregate(grouped)),
            aggregate.schema,
        )?,
    )))
}

/// The bytes function written for MySQL, `CAST(CONVERT(x USING utf8mb4)
/// AS BINARY)`; `None` for any other function (the unparser's dialect asks
/// for every function it writes).
pub fn bytes_to_sql(
    unparser: &Unparser,
    func_name: &str,
    args: &[Expr],
) -> Result<Option<ast::Expr>> {
    let (BYTES, [arg]) = (func_name, args) else {
        return Ok(None);
    };
    let converted = ast::Expr::Convert {
        is_try: false,
        expr: Box::new(unparser.expr_to_sql(arg)?),
        data_type: None,
        charset: Some(ObjectName::from(vec![Ident::new("utf8mb4")])),
        target_before_value: false,
        styles: vec![],
    };
    Ok(Some(ast::Expr::Cast {
        kind: CastKind::Cast,
        expr: Box::new(converted),
        data_type: ast::DataType::Binary(None),
        array: false,
        format: None,
    }))
}
