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
use std::collections::HashSet;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use datafusion::arrow::array::Array;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::utils::split_conjunction_owned;
use datafusion::logical_expr::{Expr, Operator, binary_expr};
use datafusion::physical_expr::ScalarFunctionExpr;
use datafusion::physical_expr::expressions::{
    BinaryExpr, CaseExpr, CastExpr, Column, DynamicFilterPhysicalExpr, InListExpr, Literal,
};
use datafusion::physical_expr_common::physical_expr::snapshot_physical_expr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::joins::HashJoinExec;
use datafusion::physical_plan::{ExecutionPlan, PhysicalExpr};
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

/// The dynamic filters of the hash joins in the plans that exist now (each
/// noted by [`NoteJoinFilters`], forgotten once its plan is dropped): a
/// statement waits for these, which its join's build side completes.
/// Other dynamic filters — a TopK's threshold, an aggregate's bounds — are
/// filled by the rows the statement itself returns: waiting for them only
/// held it back (TPC-H q18's lineitem statement waited out
/// [`WAIT_FOR_BUILD`] for the final `ORDER BY … LIMIT 100`).
#[derive(Debug, Default)]
pub struct JoinFilters(Mutex<Vec<(u64, Weak<dyn PhysicalExpr>)>>);

impl JoinFilters {
    fn entries(&self) -> std::sync::MutexGuard<'_, Vec<(u64, Weak<dyn PhysicalExpr>)>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn note(&self, filter: &Arc<dyn PhysicalExpr>) {
        let Some(id) = filter.expression_id() else {
            return;
        };
        let mut entries = self.entries();
        entries.retain(|(_, filter)| filter.strong_count() > 0);
        if !entries.iter().any(|(noted, _)| *noted == id) {
            entries.push((id, Arc::downgrade(filter)));
        }
    }

    /// Whether `filter` (or a copy of it pushed down the plan, which keeps
    /// its expression id) is a hash join's.
    fn contains(&self, filter: &DynamicFilterPhysicalExpr) -> bool {
        let Some(id) = filter.expression_id() else {
            return false;
        };
        self.entries()
            .iter()
            .any(|(noted, live)| *noted == id && live.strong_count() > 0)
    }
}

/// The last physical optimizer rule: notes each hash join's dynamic filter
/// in [`JoinFilters`].
#[derive(Debug)]
pub struct NoteJoinFilters(pub Arc<JoinFilters>);

impl PhysicalOptimizerRule for NoteJoinFilters {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        plan.apply(|node| {
            if let Some(join) = node.downcast_ref::<HashJoinExec>() {
                for filter in join.dynamic_expressions_produced() {
                    self.0.note(&filter);
                }
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        Ok(plan)
    }

    fn name(&self) -> &str {
        "note_join_filters"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// `sql`, narrowed by whatever of `filters` can be written for this source;
/// `sql` unchanged when nothing can. A hash join's filter ([`JoinFilters`])
/// is waited for; the others are taken as they are.
pub async fn narrow(
    sql: &str,
    schema: &SchemaRef,
    filters: &[Arc<dyn PhysicalExpr>],
    joins: &JoinFilters,
    kind: SourceKind,
    dialect: &dyn Dialect,
) -> String {
    let mut conditions = Vec::new();
    for filter in filters {
        let any: &dyn Any = filter.as_ref();
        if let Some(dynamic) = any.downcast_ref::<DynamicFilterPhysicalExpr>()
            && joins.contains(dynamic)
        {
            let _ = tokio::time::timeout(WAIT_FOR_BUILD, dynamic.wait_complete()).await;
        }
        let Ok(snapshot) = snapshot_physical_expr(filter.clone()) else {
            continue;
        };
        if let Some(condition) = convert(&snapshot, schema, kind, true) {
            // Each condition once: keys sent as their range repeat the
            // filter's own bounds.
            for part in split_conjunction_owned(condition) {
                if !conditions.contains(&part) {
                    conditions.push(part);
                }
            }
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
/// of) it cannot be rendered safely. Without `lists`, key lists are left
/// out (bounds remain).
fn convert(
    expr: &Arc<dyn PhysicalExpr>,
    schema: &SchemaRef,
    kind: SourceKind,
    lists: bool,
) -> Option<Expr> {
    let any: &dyn Any = expr.as_ref();
    if let Some(binary) = any.downcast_ref::<BinaryExpr>() {
        return match binary.op() {
            // Any convertible part of a conjunction is a (wider) filter.
            Operator::And => {
                match (
                    convert(binary.left(), schema, kind, lists),
                    convert(binary.right(), schema, kind, lists),
                ) {
                    (Some(l), Some(r)) => Some(l.and(r)),
                    (one, other) => one.or(other),
                }
            }
            Operator::Or => Some(convert(binary.left(), schema, kind, lists)?.or(convert(
                binary.right(),
                schema,
                kind,
                lists,
            )?)),
            op @ (Operator::Eq | Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq) => {
                let tested = column(binary.left(), schema)?;
                let value = bound_as_integer(&tested, *op, value(binary.right())?);
                let allowed = if *op == Operator::Eq {
                    comparable(&tested.compared_as)
                } else {
                    orderable(&tested.compared_as, kind)
                };
                allowed.then(|| binary_expr(tested.column, *op, Expr::Literal(value, None)))
            }
            _ => None,
        };
    }
    if let Some(case) = any.downcast_ref::<CaseExpr>() {
        // A partitioned hash join's filter routes each row to its
        // partition's keys: `CASE hash(key) % n WHEN 0 THEN f0 … ELSE e END`.
        // Whatever the conditions, a row the CASE keeps passes one of its
        // results, so their disjunction is a wider filter (branches that
        // keep nothing drop out; one that keeps everything leaves none).
        // Each partition may list up to MAX_KEYS keys; past that in all,
        // their bounds stand for them.
        let results = || {
            case.when_then_expr()
                .iter()
                .map(|(_, then)| then)
                .chain(case.else_expr())
                .filter(|result| !is_false(result))
        };
        let lists = lists && results().map(listed_keys).sum::<usize>() <= MAX_KEYS;
        return results()
            .map(|result| convert(result, schema, kind, lists))
            .collect::<Option<Vec<_>>>()?
            .into_iter()
            .reduce(Expr::or);
    }
    if let Some(list) = any.downcast_ref::<InListExpr>() {
        if list.negated() || !lists {
            return None;
        }
        if let Some(columns) = struct_fields(list.expr()) {
            return key_tuples(columns, list.list(), schema);
        }
        let tested = column(list.expr(), schema)?;
        if !comparable(&tested.compared_as) {
            return None;
        }
        let values = list.list().iter().map(value).collect::<Option<Vec<_>>>()?;
        return in_lists(&tested, values);
    }
    None
}

/// Keys compared as decimals with an integer column (an `int` key joined
/// to a `numeric` one) as that column's integers, the ones with a fraction
/// left out: no integer equals them. PostgreSQL compares an integer column
/// with numeric values as numerics, which its index on the column cannot
/// serve. A value that cannot be said as an integer stays as it is.
fn as_integers(tested: &Tested, values: Vec<ScalarValue>) -> Vec<ScalarValue> {
    values
        .into_iter()
        .filter_map(|value| match integer_of(tested, &value) {
            Some(Integral::Whole(integer)) => Some(integer),
            Some(Integral::Between(..)) => None,
            None => Some(value),
        })
        .collect()
}

/// A bound of the keys (`column >= low`, sent for more keys than a list
/// takes) on an integer column compared as decimals, as the integer that
/// keeps the same rows — `k >= 7.5` is `k >= 8`, `k <= 7.5` is `k <= 7` —
/// for the index's sake, as in [`as_integers`].
fn bound_as_integer(tested: &Tested, op: Operator, value: ScalarValue) -> ScalarValue {
    match (integer_of(tested, &value), op) {
        (Some(Integral::Whole(integer)), _) => integer,
        (Some(Integral::Between(floor, _)), Operator::Gt | Operator::LtEq) => floor,
        (Some(Integral::Between(_, ceiling)), Operator::GtEq | Operator::Lt) => ceiling,
        _ => value,
    }
}

/// A decimal said as integers: itself, or the two it lies between.
enum Integral {
    Whole(ScalarValue),
    Between(ScalarValue, ScalarValue),
}

/// `value` as integers when `tested` is an integer column compared as
/// decimals; `None` for anything else, or past `i64`.
fn integer_of(tested: &Tested, value: &ScalarValue) -> Option<Integral> {
    if !tested.integers || !matches!(tested.compared_as, DataType::Decimal128(..)) {
        return None;
    }
    let ScalarValue::Decimal128(Some(scaled), _, scale) = value else {
        return None;
    };
    let unit = 10i128.checked_pow(u32::try_from(*scale).ok()?)?;
    let integer = |n: i128| Some(ScalarValue::Int64(Some(i64::try_from(n).ok()?)));
    let floor = scaled.div_euclid(unit);
    if scaled.rem_euclid(unit) == 0 {
        Some(Integral::Whole(integer(floor)?))
    } else {
        Some(Integral::Between(integer(floor)?, integer(floor + 1)?))
    }
}

/// How many keys a filter lists (in its IN lists).
fn listed_keys(expr: &Arc<dyn PhysicalExpr>) -> usize {
    let any: &dyn Any = expr.as_ref();
    if let Some(list) = any.downcast_ref::<InListExpr>() {
        return list.list().len();
    }
    expr.children().into_iter().map(listed_keys).sum()
}

/// `column IN (…)` for `values`, each once (a build side's keys repeat),
/// as several lists past [`KEYS_PER_LIST`] — or as their range, when they
/// are integers that fill much of it ([`filled_range`]).
fn in_lists(tested: &Tested, values: Vec<ScalarValue>) -> Option<Expr> {
    let column = &tested.column;
    let mut seen = HashSet::new();
    let values: Vec<ScalarValue> = as_integers(tested, values)
        .into_iter()
        .filter(|value| seen.insert(value.clone()))
        .collect();
    if let Some((low, high)) = filled_range(&values) {
        let at_least = column.clone().gt_eq(Expr::Literal(low, None));
        return Some(at_least.and(column.clone().lt_eq(Expr::Literal(high, None))));
    }
    let values: Vec<Expr> = values
        .into_iter()
        .map(|value| Expr::Literal(value, None))
        .collect();
    values
        .chunks(KEYS_PER_LIST)
        .map(|chunk| column.clone().in_list(chunk.to_vec(), false))
        .reduce(Expr::or)
}

/// The least and greatest of distinct integer `values` when there are more
/// than [`KEYS_PER_LIST`] of them and they fill nine tenths of their range
/// or more (a whole table's serial keys, a few deleted): the source then
/// reads at most a ninth more rows than the lists would let through (the
/// join drops them) and is spared parsing and testing thousands of keys.
/// Sparser keys stay lists: they narrow the read much more.
fn filled_range(values: &[ScalarValue]) -> Option<(ScalarValue, ScalarValue)> {
    if values.len() <= KEYS_PER_LIST {
        return None;
    }
    let integer = |value: &ScalarValue| -> Option<i128> {
        Some(match value {
            ScalarValue::Int8(Some(v)) => i128::from(*v),
            ScalarValue::Int16(Some(v)) => i128::from(*v),
            ScalarValue::Int32(Some(v)) => i128::from(*v),
            ScalarValue::Int64(Some(v)) => i128::from(*v),
            ScalarValue::UInt8(Some(v)) => i128::from(*v),
            ScalarValue::UInt16(Some(v)) => i128::from(*v),
            ScalarValue::UInt32(Some(v)) => i128::from(*v),
            ScalarValue::UInt64(Some(v)) => i128::from(*v),
            _ => return None,
        })
    };
    let keys = values
        .iter()
        .map(|value| Some((integer(value)?, value)))
        .collect::<Option<Vec<_>>>()?;
    let (least, low) = keys.iter().min_by_key(|(n, _)| *n)?;
    let (greatest, high) = keys.iter().max_by_key(|(n, _)| *n)?;
    let count = i128::try_from(values.len()).ok()?;
    (10 * count >= 9 * (greatest - least + 1)).then(|| ((*low).clone(), (*high).clone()))
}

/// The join keys of a join on several columns, which DataFusion tests as
/// `struct(a, b) IN (…)`.
fn struct_fields(expr: &Arc<dyn PhysicalExpr>) -> Option<&[Arc<dyn PhysicalExpr>]> {
    let any: &dyn Any = expr.as_ref();
    let function = any.downcast_ref::<ScalarFunctionExpr>()?;
    (function.name() == "struct").then(|| function.args())
}

/// `(a, b) IN ((1, 2), (3, 4))` as `a IN (1, 3) AND b IN (2, 4)`: each
/// column's own values (a wider filter, but one every dialect can say and
/// an index on either column serves). A column whose values cannot be said
/// is left out.
fn key_tuples(
    columns: &[Arc<dyn PhysicalExpr>],
    tuples: &[Arc<dyn PhysicalExpr>],
    schema: &SchemaRef,
) -> Option<Expr> {
    let tuples = tuples
        .iter()
        .map(|tuple| {
            let any: &dyn Any = tuple.as_ref();
            match any.downcast_ref::<Literal>()?.value() {
                ScalarValue::Struct(array) if array.len() == 1 => Some(array.clone()),
                _ => None,
            }
        })
        .collect::<Option<Vec<_>>>()?;
    let mut lists = Vec::new();
    for (index, field) in columns.iter().enumerate() {
        let Some(tested) = column(field, schema) else {
            continue;
        };
        if !comparable(&tested.compared_as) {
            continue;
        }
        let Some(values) = tuples
            .iter()
            .map(|tuple| {
                let value = ScalarValue::try_from_array(tuple.columns().get(index)?, 0).ok()?;
                (!value.is_null()).then_some(value)
            })
            .collect::<Option<Vec<_>>>()
        else {
            continue;
        };
        lists.extend(in_lists(&tested, values));
    }
    lists.into_iter().reduce(Expr::and)
}

/// A source column a filter tests.
struct Tested {
    column: Expr,
    /// The type its values are compared as: its own, or one it widens to.
    compared_as: DataType,
    /// Whether the column itself holds integers.
    integers: bool,
}

/// The source's column a filter tests. A join of keys of different widths
/// (`int` in one source, `bigint` or `numeric` in the other) compares the
/// narrower one widened: a cast that keeps every value and its order
/// ([`widens`]) is seen through, so the column itself is tested.
fn column(expr: &Arc<dyn PhysicalExpr>, schema: &SchemaRef) -> Option<Tested> {
    let any: &dyn Any = expr.as_ref();
    if let Some(cast) = any.downcast_ref::<CastExpr>() {
        let tested = column(cast.expr(), schema)?;
        return widens(&tested.compared_as, cast.cast_type()).then(|| Tested {
            compared_as: cast.cast_type().clone(),
            ..tested
        });
    }
    let column = any.downcast_ref::<Column>()?;
    let field = schema.fields().get(column.index())?;
    // A name the derived table has twice cannot be referenced.
    let unique = schema
        .fields()
        .iter()
        .filter(|f| f.name() == field.name())
        .count()
        == 1;
    unique.then(|| Tested {
        column: Expr::Column(datafusion::common::Column::new_unqualified(field.name())),
        compared_as: field.data_type().clone(),
        integers: field.data_type().is_integer(),
    })
}

/// A literal's value, unless it is NULL.
fn value(expr: &Arc<dyn PhysicalExpr>) -> Option<ScalarValue> {
    let any: &dyn Any = expr.as_ref();
    let value = any.downcast_ref::<Literal>()?.value();
    (!value.is_null()).then(|| value.clone())
}

/// The literal `false`: a condition no row passes.
fn is_false(expr: &Arc<dyn PhysicalExpr>) -> bool {
    let any: &dyn Any = expr.as_ref();
    any.downcast_ref::<Literal>()
        .is_some_and(|l| l.value() == &ScalarValue::Boolean(Some(false)))
}

/// True when every `from` value is a `to` value equal to it, in the same
/// order: integers into wider integers, or into decimals with room for all
/// their digits; decimals into decimals with at least their integer
/// digits and scale.
fn widens(from: &DataType, to: &DataType) -> bool {
    use DataType::{Decimal128, Int8, Int16, Int32, Int64, UInt8, UInt16, UInt32, UInt64};
    // Bits, and the decimal digits the largest value has.
    let integer = |t: &DataType| match t {
        Int8 | UInt8 => Some((8, 3)),
        Int16 | UInt16 => Some((16, 5)),
        Int32 | UInt32 => Some((32, 10)),
        Int64 => Some((64, 19)),
        UInt64 => Some((64, 20)),
        _ => None,
    };
    match (from, to) {
        (Decimal128(p1, s1), Decimal128(p2, s2)) => {
            s2 >= s1 && i16::from(*p2) - i16::from(*s2) >= i16::from(*p1) - i16::from(*s1)
        }
        (_, Decimal128(p, s)) => {
            integer(from).is_some_and(|(_, digits)| i16::from(*p) - i16::from(*s) >= digits)
        }
        _ => match (integer(from), integer(to)) {
            (Some((from_bits, _)), Some((to_bits, _))) => {
                match (from.is_signed_integer(), to.is_signed_integer()) {
                    (true, true) | (false, false) => from_bits <= to_bits,
                    (false, true) => from_bits < to_bits,
                    (true, false) => false,
                }
            }
            _ => false,
        },
    }
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

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{ArrayRef, BinaryArray, Int64Array, StructArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::physical_expr::expressions::{IsNullExpr, lit};

    use super::*;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("j", DataType::Int64, true),
            Field::new("b", DataType::Binary, true),
        ]))
    }

    fn key() -> Arc<dyn PhysicalExpr> {
        Arc::new(Column::new("k", 0))
    }

    fn keys(values: &[i64]) -> Arc<dyn PhysicalExpr> {
        let list = values.iter().map(|v| lit(*v)).collect();
        Arc::new(InListExpr::try_new(key(), list, false, &schema()).unwrap())
    }

    /// `CASE k % n WHEN 0 THEN f0 WHEN 1 THEN f1 … ELSE otherwise END`, the shape
    /// of a partitioned hash join's filter.
    fn routed(
        partitions: Vec<Arc<dyn PhysicalExpr>>,
        otherwise: Arc<dyn PhysicalExpr>,
    ) -> Arc<dyn PhysicalExpr> {
        let n = partitions.len() as i64;
        let routing = Arc::new(BinaryExpr::new(key(), Operator::Modulo, lit(n)));
        let branches = partitions
            .into_iter()
            .enumerate()
            .map(|(i, filter)| (lit(ScalarValue::UInt64(Some(i as u64))), filter))
            .collect();
        Arc::new(CaseExpr::try_new(Some(routing), branches, Some(otherwise)).unwrap())
    }

    /// `struct(k, j[, b]) IN (…)`, a join on several columns' key list.
    fn tuples(columns: &[&str], rows: &[(i64, Option<i64>)]) -> Arc<dyn PhysicalExpr> {
        let schema = schema();
        let args: Vec<Arc<dyn PhysicalExpr>> = columns
            .iter()
            .map(|name| Arc::new(Column::new_with_schema(name, &schema).unwrap()) as _)
            .collect();
        let fields: Vec<Field> = columns
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let data_type = schema.field_with_name(name).unwrap().data_type().clone();
                Field::new(format!("c{i}"), data_type, true)
            })
            .collect();
        let list = rows
            .iter()
            .map(|(k, j)| {
                let values = columns.iter().map(|name| -> ArrayRef {
                    match *name {
                        "k" => Arc::new(Int64Array::from(vec![*k])),
                        "j" => Arc::new(Int64Array::from(vec![*j])),
                        _ => Arc::new(BinaryArray::from(vec![&b"x"[..]])),
                    }
                });
                let parts = fields
                    .iter()
                    .cloned()
                    .map(Arc::new)
                    .zip(values)
                    .collect::<Vec<_>>();
                lit(ScalarValue::Struct(Arc::new(StructArray::from(parts))))
            })
            .collect();
        let return_field = Arc::new(Field::new("struct", DataType::Struct(fields.into()), true));
        let function = ScalarFunctionExpr::new(
            "struct",
            datafusion::functions::core::r#struct(),
            args,
            return_field,
            Arc::new(Default::default()),
        );
        Arc::new(InListExpr::try_new(Arc::new(function), list, false, &schema).unwrap())
    }

    fn rendered(expr: &Arc<dyn PhysicalExpr>) -> Option<String> {
        convert(expr, &schema(), SourceKind::Mysql, true).map(|e| e.to_string())
    }

    #[test]
    fn a_partitioned_join_filter_becomes_the_union_of_its_partitions_keys() {
        let filter = routed(vec![keys(&[2, 4, 2]), keys(&[1])], lit(false));
        assert_eq!(
            rendered(&filter).as_deref(),
            Some("k IN ([Int64(2), Int64(4)]) OR k IN ([Int64(1)])")
        );
        // A partition without rows keeps nothing and adds nothing.
        let filter = routed(vec![lit(false), keys(&[7])], lit(false));
        assert_eq!(rendered(&filter).as_deref(), Some("k IN ([Int64(7)])"));
    }

    #[test]
    fn partitions_listing_more_keys_than_a_source_takes_send_their_bounds() {
        let bounded = |low: i64, values: Vec<i64>| -> Arc<dyn PhysicalExpr> {
            let at_least = Arc::new(BinaryExpr::new(key(), Operator::GtEq, lit(low)));
            Arc::new(BinaryExpr::new(at_least, Operator::And, keys(&values)))
        };
        let half = (MAX_KEYS / 2 + 1) as i64;
        let filter = routed(
            vec![
                bounded(0, (0..half).collect()),
                bounded(half, (half..2 * half).collect()),
            ],
            lit(false),
        );
        assert_eq!(
            rendered(&filter).as_deref(),
            Some(format!("k >= Int64(0) OR k >= Int64({half})").as_str())
        );
    }

    #[test]
    fn thousands_of_keys_that_fill_their_range_are_sent_as_the_range() {
        // Every key from 1 to 20,000 (a whole table's): the same rows.
        let all: Vec<i64> = (1..=20_000).rev().collect();
        assert_eq!(
            rendered(&keys(&all)).as_deref(),
            Some("k >= Int64(1) AND k <= Int64(20000)")
        );
        // Nine tenths of it (every twentieth deleted): at most a ninth more rows.
        let most: Vec<i64> = (0..3000).filter(|i| i % 20 != 7).collect();
        assert_eq!(
            rendered(&keys(&most)).as_deref(),
            Some("k >= Int64(0) AND k <= Int64(2999)")
        );
        // A short list stays the keys, however dense.
        assert_eq!(
            rendered(&keys(&[3, 4, 5])).as_deref(),
            Some("k IN ([Int64(3), Int64(4), Int64(5)])")
        );
        // Sparser ones stay lists (of KEYS_PER_LIST keys each).
        let sparse: Vec<i64> = (0..3000).map(|i| i * 2).collect();
        let text = rendered(&keys(&sparse)).unwrap();
        assert_eq!(text.matches(" IN ").count(), 3, "{text}");
    }

    #[tokio::test]
    async fn a_range_standing_for_keys_is_not_sent_twice_beside_the_bounds() {
        let all: Vec<i64> = (1..=3000).collect();
        let bounds = Arc::new(BinaryExpr::new(
            Arc::new(BinaryExpr::new(key(), Operator::GtEq, lit(1_i64))),
            Operator::And,
            Arc::new(BinaryExpr::new(key(), Operator::LtEq, lit(3000_i64))),
        ));
        let filter: Arc<dyn PhysicalExpr> =
            Arc::new(BinaryExpr::new(bounds, Operator::And, keys(&all)));
        let dialect = datafusion::sql::unparser::dialect::MySqlDialect {};
        let sql = narrow(
            "SELECT k FROM t",
            &schema(),
            &[filter],
            &JoinFilters::default(),
            SourceKind::Mysql,
            &dialect,
        )
        .await;
        assert_eq!(
            sql,
            "SELECT * FROM (SELECT k FROM t) AS `tributary_runtime` WHERE ((`k` >= 1) AND (`k` <= 3000))"
        );
    }

    fn pending() -> Arc<DynamicFilterPhysicalExpr> {
        Arc::new(DynamicFilterPhysicalExpr::new(vec![key()], lit(true)))
    }

    async fn narrowed(filter: Arc<DynamicFilterPhysicalExpr>, joins: &JoinFilters) -> String {
        let dialect = datafusion::sql::unparser::dialect::MySqlDialect {};
        let filters = [filter as Arc<dyn PhysicalExpr>];
        narrow(
            "SELECT k FROM t",
            &schema(),
            &filters,
            joins,
            SourceKind::Mysql,
            &dialect,
        )
        .await
    }

    /// A TopK's or an aggregate's filter is filled by the statement's own
    /// rows: the statement goes out at once, as it is (time is paused: a
    /// wait would pass the 100 ms first).
    #[tokio::test(start_paused = true)]
    async fn a_statement_does_not_wait_for_a_filter_its_own_rows_fill() {
        let joins = JoinFilters::default();
        let sent = tokio::time::timeout(Duration::from_millis(100), narrowed(pending(), &joins));
        assert_eq!(sent.await.as_deref(), Ok("SELECT k FROM t"));
    }

    /// A hash join's filter is waited for: its build side completes it.
    #[tokio::test(start_paused = true)]
    async fn a_statement_waits_for_its_joins_build_side() {
        let filter = pending();
        let joins = JoinFilters::default();
        joins.note(&(filter.clone() as Arc<dyn PhysicalExpr>));
        let built = filter.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            built.update(keys(&[1, 2])).unwrap();
            built.mark_complete();
        });
        assert_eq!(
            narrowed(filter, &joins).await,
            "SELECT * FROM (SELECT k FROM t) AS `tributary_runtime` WHERE `k` IN (1, 2)"
        );
    }

    /// The rule notes hash joins' filters, not a TopK's; a dropped plan's
    /// are forgotten.
    #[tokio::test]
    async fn the_rule_notes_the_filters_of_hash_joins_only() {
        use datafusion::datasource::MemTable;
        use datafusion::execution::session_state::SessionStateBuilder;
        use datafusion::prelude::SessionContext;

        let joins = Arc::new(JoinFilters::default());
        let state = SessionStateBuilder::new()
            .with_default_features()
            .with_physical_optimizer_rule(Arc::new(NoteJoinFilters(joins.clone())))
            .build();
        let context = SessionContext::new_with_state(state);
        let table = |name: &str| {
            let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, true)]));
            let rows = datafusion::arrow::array::RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(Int64Array::from(vec![1, 2, 3]))],
            )
            .unwrap();
            let table = MemTable::try_new(schema, vec![vec![rows]]).unwrap();
            context.register_table(name, Arc::new(table)).unwrap();
        };
        table("a");
        table("b");
        let plan = |sql: &'static str| {
            let context = &context;
            async move {
                let frame = context.sql(sql).await.unwrap();
                frame.create_physical_plan().await.unwrap()
            }
        };
        let topk = plan("SELECT k FROM a ORDER BY k DESC LIMIT 1").await;
        assert_eq!(joins.entries().len(), 0);
        let join = plan("SELECT a.k FROM a JOIN b ON a.k = b.k").await;
        assert_eq!(joins.entries().len(), 1);
        drop((topk, join));
        let _again = plan("SELECT a.k FROM a JOIN b ON a.k = b.k").await;
        assert_eq!(
            joins.entries().len(),
            1,
            "the dropped plan's filter is forgotten"
        );
    }

    #[test]
    fn only_casts_that_keep_every_value_are_seen_through() {
        use DataType::{Decimal128, Float64, Int16, Int32, Int64, UInt8, UInt32, UInt64};
        let keeping = [
            (Int32, Int64),
            (Int16, Int32),
            (UInt8, Int16),
            (UInt32, Int64),
            (UInt32, UInt64),
            (Int64, Int64),
            (Int32, Decimal128(10, 0)),
            (Int64, Decimal128(21, 2)),
            (Decimal128(10, 0), Decimal128(12, 2)),
        ];
        for (from, to) in keeping {
            assert!(widens(&from, &to), "{from} -> {to}");
        }
        let losing = [
            (Int64, Int32),
            (UInt64, Int64),
            (Int32, UInt64),
            (Int32, Float64),
            (Float64, Int64),
            (Int64, Decimal128(19, 1)),
            (Decimal128(12, 2), Decimal128(12, 0)),
            (Decimal128(12, 2), Decimal128(12, 3)),
            (Decimal128(10, 0), Int64),
        ];
        for (from, to) in losing {
            assert!(!widens(&from, &to), "{from} -> {to}");
        }
        // `CAST(k AS Int64) IN (…)` tests `k` itself; a narrowing cast is not rendered.
        let widened: Arc<dyn PhysicalExpr> = Arc::new(CastExpr::new(key(), Int64, None));
        let list: Arc<dyn PhysicalExpr> = Arc::new(
            InListExpr::try_new(widened, vec![lit(7i64), lit(4000i64)], false, &schema()).unwrap(),
        );
        assert_eq!(
            rendered(&list).as_deref(),
            Some("k IN ([Int64(7), Int64(4000)])")
        );
        // Keys compared as decimals go to the integer column as integers; a
        // key with a fraction cannot match and is left out.
        let as_decimal: Arc<dyn PhysicalExpr> =
            Arc::new(CastExpr::new(key(), Decimal128(21, 2), None));
        let decimals = [700, 750, 400_000]
            .map(|v| Arc::new(Literal::new(ScalarValue::Decimal128(Some(v), 21, 2))) as _);
        let list: Arc<dyn PhysicalExpr> =
            Arc::new(InListExpr::try_new(as_decimal, decimals.to_vec(), false, &schema()).unwrap());
        assert_eq!(
            rendered(&list).as_deref(),
            Some("k IN ([Int64(7), Int64(4000)])")
        );
        // So do the bounds sent for more keys than a list takes, as the
        // integers that keep the same rows.
        let bound = |op: Operator, scaled: i128| -> Arc<dyn PhysicalExpr> {
            let as_decimal = Arc::new(CastExpr::new(key(), Decimal128(21, 2), None));
            let value = Arc::new(Literal::new(ScalarValue::Decimal128(Some(scaled), 21, 2)));
            Arc::new(BinaryExpr::new(as_decimal, op, value))
        };
        let cases = [
            (Operator::GtEq, 700, "k >= Int64(7)"),
            (Operator::GtEq, 750, "k >= Int64(8)"),
            (Operator::Gt, 750, "k > Int64(7)"),
            (Operator::LtEq, 750, "k <= Int64(7)"),
            (Operator::Lt, 750, "k < Int64(8)"),
            (Operator::GtEq, -750, "k >= Int64(-7)"),
            (Operator::LtEq, -750, "k <= Int64(-8)"),
            (Operator::Eq, 700, "k = Int64(7)"),
            // No integer equals 7.5: the comparison stays as it is (true to
            // the rows, if not to the index).
            (Operator::Eq, 750, "k = Decimal128(7.50,21,2)"),
        ];
        for (op, scaled, wanted) in cases {
            assert_eq!(
                rendered(&bound(op, scaled)).as_deref(),
                Some(wanted),
                "{op} {scaled}"
            );
        }
        let narrowed: Arc<dyn PhysicalExpr> = Arc::new(CastExpr::new(key(), Int16, None));
        let list: Arc<dyn PhysicalExpr> =
            Arc::new(InListExpr::try_new(narrowed, vec![lit(7i16)], false, &schema()).unwrap());
        assert_eq!(rendered(&list), None);
    }

    #[test]
    fn keys_of_several_columns_reach_the_source_as_one_list_per_column() {
        let filter = tuples(&["k", "j"], &[(1, Some(10)), (2, Some(10)), (1, Some(30))]);
        assert_eq!(
            rendered(&filter).as_deref(),
            Some("k IN ([Int64(1), Int64(2)]) AND j IN ([Int64(10), Int64(30)])")
        );
        // A column with a NULL key or of a type we do not compare at the
        // source is left out; the others still narrow the query.
        let filter = tuples(&["k", "j"], &[(1, Some(10)), (2, None)]);
        assert_eq!(
            rendered(&filter).as_deref(),
            Some("k IN ([Int64(1), Int64(2)])")
        );
        let filter = tuples(&["k", "b"], &[(5, Some(1))]);
        assert_eq!(rendered(&filter).as_deref(), Some("k IN ([Int64(5)])"));
    }

    #[test]
    fn a_partition_that_keeps_rows_it_cannot_say_leaves_the_query_unfiltered() {
        // A canceled partition (`ELSE true`), a partition whose filter has no
        // SQL (a hash table lookup stands for it here), a NULL-keeping filter.
        let everything = routed(vec![keys(&[1]), keys(&[2])], lit(true));
        assert_eq!(rendered(&everything), None);
        let unsaid: Arc<dyn PhysicalExpr> = Arc::new(IsNullExpr::new(key()));
        assert_eq!(
            rendered(&routed(vec![keys(&[1]), unsaid], lit(false))),
            None
        );
    }
}
