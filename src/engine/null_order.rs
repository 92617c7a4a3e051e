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
pub fn misplaced(key: &Sort, schema: &DFSchema) -> bool {
    key.nulls_first != key.asc && key.expr.nullable(schema).unwrap_or(true)
}

/// The key that places `key`'s NULLs, to go before it: a value (`false`,
/// 0) sorts before a NULL (`true`, 1) ascending.
pub fn placing(key: &Sort, flag: NullFlag) -> Result<Sort> {
    Ok(Sort::new(
        flag(key.expr.clone())?,
        !key.nulls_first,
        key.asc,
    ))
}

/// Every sort of `plan` with its misplaced NULLs placed (SQL Server; its
/// windows are not pushed).
pub fn place_nulls(plan: LogicalPlan, flag: NullFlag) -> Result<LogicalPlan> {
    plan.transform_up(|node| {
        let LogicalPlan::Sort(mut sort) = node else {
            return Ok(Transformed::no(node));
        };
        let schema = sort.input.schema().clone();
        if !sort.expr.iter().any(|key| misplaced(key, &schema)) {
            return Ok(Transformed::no(LogicalPlan::Sort(sort)));
        }
        let mut keys = Vec::with_capacity(sort.expr.len() + 1);
        for key in sort.expr.drain(..) {
            if misplaced(&key, &schema) {
                keys.push(placing(&key, flag)?);
            }
            keys.push(key);
        }
        sort.expr = keys;
        Ok(Transformed::yes(LogicalPlan::Sort(sort)))
    })
    .map(|t| t.data)
}
