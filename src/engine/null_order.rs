//! NULLs placed as ours in sources that cannot be told where they go.
//! MySQL, MariaDB and SQL Server sort NULLs first ascending and last
//! descending, and have no `NULLS FIRST`/`LAST`; a sort key whose NULLs we
//! put elsewhere (PostgreSQL's default: last ascending, first descending)
//! goes after a key that places them — `k IS NULL` (MySQL compares
//! booleans), `CASE WHEN k IS NULL THEN 1 ELSE 0 END` (SQL Server has no
//! boolean values) — so the sort can run in the source.

use datafusion::common::DFSchema;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::Result;
use datafusion::logical_expr::expr::Sort;
use datafusion::logical_expr::{Expr, ExprSchemable, LogicalPlan, lit, when};

/// How a source is told whether a key is NULL, as a sortable value that is
/// never NULL itself.
pub type NullFlag = fn(Expr) -> Result<Expr>;

/// `k IS NULL`: MySQL and MariaDB.
pub fn is_null(key: Expr) -> Result<Expr> {
    Ok(key.is_null())
}

/// `CASE WHEN k IS NULL THEN 1 ELSE 0 END`: SQL Server.
pub fn null_as_one(key: Expr) -> Result<Expr> {
    when(key.is_null(), lit(1_i32)).otherwise(lit(0_i32))
}

/// True when `key`'s NULLs go where such a source would not put them.
fn misplaced(key: &Sort, schema: &DFSchema) -> bool {
    key.nulls_first != key.asc && key.expr.nullable(schema).unwrap_or(true)
}

/// The key that places `key`'s NULLs, to go before it: a value (`false`,
/// 0) sorts before a NULL (`true`, 1) ascending.
fn placing(key: &Sort, flag: NullFlag) -> Result<Sort> {
    Ok(Sort::new(
        flag(key.expr.clone())?,
        !key.nulls_first,
        key.asc,
    ))
}

/// Every sort and window order of `plan` with its misplaced NULLs placed
/// (MySQL, MariaDB, SQL Server). Placed once: a plan placed already is
/// left as it is.
pub fn place_nulls(plan: LogicalPlan, flag: NullFlag) -> Result<LogicalPlan> {
    plan.transform_up(|node| match node {
        LogicalPlan::Sort(mut sort) => {
            let changed = placed(&mut sort.expr, sort.input.schema(), flag)?;
            Ok(Transformed::new_transformed(
                LogicalPlan::Sort(sort),
                changed,
            ))
        }
        LogicalPlan::Window(mut window) => {
            let schema = window.input.schema().clone();
            let mut changed = false;
            for expr in &mut window.window_expr {
                *expr = std::mem::take(expr)
                    .transform_up(|e| match e {
                        Expr::WindowFunction(mut function) => {
                            let placed = placed(&mut function.params.order_by, &schema, flag)?;
                            changed |= placed;
                            Ok(Transformed::new_transformed(
                                Expr::WindowFunction(function),
                                placed,
                            ))
                        }
                        other => Ok(Transformed::no(other)),
                    })?
                    .data;
            }
            Ok(Transformed::new_transformed(
                LogicalPlan::Window(window),
                changed,
            ))
        }
        other => Ok(Transformed::no(other)),
    })
    .map(|t| t.data)
}

/// `keys` with a placing key before each misplaced one; true when any was.
fn placed(keys: &mut Vec<Sort>, schema: &DFSchema, flag: NullFlag) -> Result<bool> {
    if !keys.iter().any(|key| misplaced(key, schema)) {
        return Ok(false);
    }
    let mut placed: Vec<Sort> = Vec::with_capacity(keys.len() + 1);
    let mut changed = false;
    for key in keys.drain(..) {
        if misplaced(&key, schema) {
            let placing = placing(&key, flag)?;
            if placed.last() != Some(&placing) {
                placed.push(placing);
                changed = true;
            }
        }
        placed.push(key);
    }
    *keys = placed;
    Ok(changed)
}
