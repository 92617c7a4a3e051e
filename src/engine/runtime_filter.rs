//! Semi-join reduction: the runtime filters DataFusion derives while a query
//! runs — the key bounds or key list of a hash join's build side, a TopK
//! threshold — are added to the SQL a source receives, so the probe side
//! reads only rows that can match instead of the whole table.
//!
//! Only conditions the source evaluates exactly (or as a superset, which
//! the join re-checks) are added: comparisons and IN lists over numbers and
//! dates everywhere; equality and IN lists over strings (MySQL's
//! case-insensitive equality only widens them); string ranges only on
//! SQLite, whose comparison is by bytes like ours. Whatever cannot be
//! rendered is left out — a conjunction missing a part is a wider filter.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::logical_expr::{Expr, Operator, binary_expr};
use datafusion::physical_expr::expressions::{
    BinaryExpr, Column, DynamicFilterPhysicalExpr, InListExpr, Literal,
};
use datafusion::physical_expr_common::physical_expr::snapshot_physical_expr;
use datafusion::physical_plan::PhysicalExpr;
use datafusion::sql::sqlparser::ast::Ident;
use datafusion::sql::unparser::Unparser;
use datafusion::sql::unparser::dialect::Dialect;
use tributary_schema_cache::SourceKind;

use super::dialect_ast;

/// The most join keys sent to a source as a list; larger build sides send
/// their key bounds only.
pub const MAX_KEYS: usize = 50_000;

/// Keys per `IN (…)` list; longer lists are several lists joined by OR
/// (some databases cap a list at 1,000 items, and parsers handle short
/// lists better).
const KEYS_PER_LIST: usize = 1_000;

/// How long a probe side waits for its join's build side to finish the
/// filter (normally it already has: the build side runs first).
const WAIT_FOR_BUILD: Duration = Duration::from_millis(500);

/// `sql`, narrowed by whatever of `filters` can be written for this source;
/// `sql` unchanged when nothing can.
pub async fn narrow(
    sql: &str,
    schema: &SchemaRef,
    filters: &[Arc<dyn PhysicalExpr>],
    kind: SourceKind,
    dialect: &dyn Dialect,
) -> String {
    let mut conditions = Vec::new();
    for filter in filters {
        let any: &dyn Any = filter.as_ref();
        if let Some(dynamic) = any.downcast_ref::<DynamicFilterPhysicalExpr>() {
            let _ = tokio::time::timeout(WAIT_FOR_BUILD, dynamic.wait_complete()).await;
        }
        let Ok(snapshot) = snapshot_physical_expr(filter.clone()) else {
            continue;
        };
        if let Some(condition) = convert(&snapshot, schema, kind) {
            conditions.push(condition);
        }
    }
    let Some(condition) = conditions.into_iter().reduce(Expr::and) else {
        return sql.to_string();
    };
    let Ok(rendered) = Unparser::new(dialect).expr_to_sql(&condition) else {
        return sql.to_string();
    };
    let rendered = dialect_ast::respell_expr(rendered, kind);
    let alias = Ident::with_quote(
        dialect
            .identifier_quote_style("tributary_runtime")
            .unwrap_or('"'),
        "tributary_runtime",
    );
    let as_ = dialect_ast::derived_table_alias(kind);
    format!("SELECT * FROM ({sql}){as_}{alias} WHERE {rendered}")
}

/// The logical condition for a physical one, or `None` when (a needed part
/// of) it cannot be rendered safely.
fn convert(expr: &Arc<dyn PhysicalExpr>, schema: &SchemaRef, kind: SourceKind) -> Option<Expr> {
    let any: &dyn Any = expr.as_ref();
    if let Some(binary) = any.downcast_ref::<BinaryExpr>() {
        return match binary.op() {
            // Any convertible part of a conjunction is a (wider) filter.
            Operator::And => {
                match (
                    convert(binary.left(), schema, kind),
                    convert(binary.right(), schema, kind),
                ) {
                    (Some(l), Some(r)) => Some(l.and(r)),
                    (one, other) => one.or(other),
                }
            }
            Operator::Or => Some(convert(binary.left(), schema, kind)?.or(convert(
                binary.right(),
                schema,
                kind,
            )?)),
            op @ (Operator::Eq | Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq) => {
                let (column, data_type) = column(binary.left(), schema)?;
                let value = literal(binary.right())?;
                let allowed = if *op == Operator::Eq {
                    comparable(&data_type)
                } else {
                    orderable(&data_type, kind)
                };
                allowed.then(|| binary_expr(column, *op, value))
            }
            _ => None,
        };
    }
    if let Some(list) = any.downcast_ref::<InListExpr>() {
        let (column, data_type) = column(list.expr(), schema)?;
        if list.negated() || !comparable(&data_type) {
            return None;
        }
        let values = list
            .list()
            .iter()
            .map(literal)
            .collect::<Option<Vec<_>>>()?;
        return values
            .chunks(KEYS_PER_LIST)
            .map(|chunk| column.clone().in_list(chunk.to_vec(), false))
            .reduce(Expr::or);
    }
    None
}

fn column(expr: &Arc<dyn PhysicalExpr>, schema: &SchemaRef) -> Option<(Expr, DataType)> {
    let any: &dyn Any = expr.as_ref();
    let column = any.downcast_ref::<Column>()?;
    let field = schema.fields().get(column.index())?;
    // A name the derived table has twice cannot be referenced.
    let unique = schema
        .fields()
        .iter()
        .filter(|f| f.name() == field.name())
        .count()
        == 1;
    unique.then(|| {
        (
            Expr::Column(datafusion::common::Column::new_unqualified(field.name())),
            field.data_type().clone(),
        )
    })
}

fn literal(expr: &Arc<dyn PhysicalExpr>) -> Option<Expr> {
    let any: &dyn Any = expr.as_ref();
    let value = any.downcast_ref::<Literal>()?.value();
    (!value.is_null()).then(|| Expr::Literal(value.clone(), None))
}

/// Types whose equality the sources decide as we do (or more widely).
fn comparable(data_type: &DataType) -> bool {
    data_type.is_numeric()
        || matches!(
            data_type,
            DataType::Date32 | DataType::Utf8 | DataType::LargeUtf8
        )
}

/// Types whose order the source shares with us.
fn orderable(data_type: &DataType, kind: SourceKind) -> bool {
    data_type.is_numeric()
        || matches!(data_type, DataType::Date32)
        || (kind == SourceKind::Sqlite && matches!(data_type, DataType::Utf8 | DataType::LargeUtf8))
}
