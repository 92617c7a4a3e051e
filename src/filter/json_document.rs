//! Tests on JSON documents held as text (PostgreSQL `json`/`jsonb`, MySQL
//! `JSON`), with PostgreSQL's `jsonb` meaning on every source:
//! `json_contains(doc, pattern)` is `doc @> pattern`,
//! `json_contained_in(doc, pattern)` is `doc <@ pattern`, and
//! `json_has_any_key` / `json_has_all_keys(doc, keys)` are `?|` / `?&`
//! (a key is a top-level object key, or a string element of a top-level
//! array, or the document's own string). The second argument is a literal:
//! the pattern's JSON, or a JSON array of keys. A NULL or unreadable
//! document answers NULL. They run in DataFusion, except on PostgreSQL
//! sources, which receive jsonb's own operators (`postgres_sql`): the same
//! meaning, numbers compared exactly, and a GIN index on the column can
//! serve them. `json_text(doc)` is the document's text, for the string
//! comparisons (`CAST(doc AS TEXT)` on PostgreSQL).

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, AsArray, BooleanArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility, lit,
};
use datafusion::sql::sqlparser::ast::{self, ArrayElemTypeDef, BinaryOperator, CastKind};
use datafusion::sql::unparser::Unparser;
use serde_json::Value;

/// What a function tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Test {
    Contains,
    ContainedIn,
    HasAnyKey,
    HasAllKeys,
}

impl Test {
    fn name(self) -> &'static str {
        match self {
            Self::Contains => "json_contains",
            Self::ContainedIn => "json_contained_in",
            Self::HasAnyKey => "json_has_any_key",
            Self::HasAllKeys => "json_has_all_keys",
        }
    }

    const ALL: [Self; 4] = [
        Self::Contains,
        Self::ContainedIn,
        Self::HasAnyKey,
        Self::HasAllKeys,
    ];

    fn named(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|test| test.name() == name)
    }

    /// Whether `doc` passes, against the operand.
    fn holds(self, doc: &Value, operand: &Value) -> bool {
        match self {
            Self::Contains => contains(doc, operand, true),
            Self::ContainedIn => contains(operand, doc, true),
            Self::HasAnyKey => keys(operand).any(|key| has_key(doc, key)),
            Self::HasAllKeys => keys(operand).all(|key| has_key(doc, key)),
        }
    }
}

/// `test(expr, operand)`; `operand` is the pattern, or the array of keys.
pub fn call(test: Test, expr: Expr, operand: &Value) -> Expr {
    static UDFS: LazyLock<[Arc<ScalarUDF>; 4]> = LazyLock::new(|| {
        Test::ALL.map(|test| Arc::new(ScalarUDF::new_from_impl(JsonDocument::new(test))))
    });
    // The variants' discriminants are their places in `ALL`.
    UDFS[test as usize].call(vec![expr, lit(operand.to_string())])
}

/// `json_text(doc)`: a JSON column's document as its text, to compare as
/// a string (`$like`, `$eq`, …; GraphQL's `_cast: {String: …}`). The
/// engine holds JSON as text already, so it is that text; PostgreSQL is
/// sent `CAST(doc AS TEXT)`, as a `jsonb` column has no string operators
/// and would compare `=` as jsonb.
pub fn text(doc: Expr) -> Expr {
    static UDF: LazyLock<Arc<ScalarUDF>> =
        LazyLock::new(|| Arc::new(ScalarUDF::new_from_impl(JsonText::default())));
    UDF.call(vec![doc])
}

/// [`text`]'s name in a plan (`mysql_sql` writes it for MySQL and MariaDB).
pub const TEXT: &str = JsonText::NAME;

/// [`text`]'s call for MySQL (`cast`) and MariaDB: MariaDB's `JSON` is
/// `LONGTEXT`, so the document itself; Oracle MySQL's is a type of its own,
/// compared as JSON, so `CAST(doc AS CHAR)` — the text it answers for the
/// column.
pub fn mysql_sql(
    unparser: &Unparser,
    name: &str,
    args: &[Expr],
    cast: bool,
) -> Result<Option<ast::Expr>> {
    let (JsonText::NAME, [doc]) = (name, args) else {
        return Ok(None);
    };
    let doc = unparser.expr_to_sql(doc)?;
    Ok(Some(if cast {
        cast_to(doc, ast::DataType::Char(None))
    } else {
        doc
    }))
}

/// `CAST(expr AS data_type)`.
fn cast_to(expr: ast::Expr, data_type: ast::DataType) -> ast::Expr {
    ast::Expr::Cast {
        kind: CastKind::Cast,
        expr: Box::new(expr),
        data_type,
        array: false,
        format: None,
    }
}

/// Whether `name` is `json_text` or one of the tests: functions given a
/// JSON document.
pub fn reads_documents(name: &str) -> bool {
    name == JsonText::NAME || Test::named(name).is_some()
}

/// Whether `name` is one of these functions whose operand is a literal
/// (how the filter compiler calls them): what a PostgreSQL source may be
/// sent.
pub fn pushable_to_postgres(name: &str, args: &[Expr]) -> bool {
    if name == JsonText::NAME {
        return args.len() == 1;
    }
    Test::named(name).is_some() && matches!(args, [_, operand] if literal_text(operand).is_some())
}

/// PostgreSQL's spelling of a call (None for other functions):
/// `(CAST(doc AS JSONB) @> CAST('pattern' AS JSONB))`, `<@`, and `?|` /
/// `?&` with `CAST(ARRAY['key', …] AS TEXT[])` (the cast types an empty
/// array). The cast is no cast on a `jsonb` column, so its GIN index serves;
/// a `json` column is always valid JSON, so the cast cannot fail. The
/// pattern and keys are string literals, escaped by the unparser.
pub fn postgres_sql(unparser: &Unparser, name: &str, args: &[Expr]) -> Result<Option<ast::Expr>> {
    if let (JsonText::NAME, [doc]) = (name, args) {
        return Ok(Some(cast_to(
            unparser.expr_to_sql(doc)?,
            ast::DataType::Text,
        )));
    }
    let Some(test) = Test::named(name) else {
        return Ok(None);
    };
    let [doc, operand] = args else {
        return plan_err!("{name} takes two arguments");
    };
    let Some(operand) = literal_text(operand) else {
        return plan_err!("{name} takes a literal as its second argument");
    };
    let string = |text: &str| ast::Expr::value(ast::Value::SingleQuotedString(text.to_string()));
    let jsonb = |expr: ast::Expr| cast_to(expr, ast::DataType::JSONB);
    let key_array = || -> Result<ast::Expr> {
        let Ok(operand) = serde_json::from_str::<Value>(operand) else {
            return plan_err!("{name}: the operand is not JSON");
        };
        let elem = keys(&operand).map(string).collect();
        Ok(cast_to(
            ast::Expr::Array(ast::Array { elem, named: true }),
            ast::DataType::Array(ArrayElemTypeDef::SquareBracket(
                Box::new(ast::DataType::Text),
                None,
            )),
        ))
    };
    let (op, right) = match test {
        Test::Contains => (BinaryOperator::AtArrow, jsonb(string(operand))),
        Test::ContainedIn => (BinaryOperator::ArrowAt, jsonb(string(operand))),
        Test::HasAnyKey => (BinaryOperator::QuestionPipe, key_array()?),
        Test::HasAllKeys => (BinaryOperator::QuestionAnd, key_array()?),
    };
    Ok(Some(ast::Expr::Nested(Box::new(ast::Expr::BinaryOp {
        left: Box::new(jsonb(unparser.expr_to_sql(doc)?)),
        op,
        right: Box::new(right),
    }))))
}

fn literal_text(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Literal(ScalarValue::Utf8(Some(text)), _) => Some(text),
        _ => None,
    }
}

/// PostgreSQL's `a @> b` for jsonb: objects contain the pairs of the
/// pattern (recursively), arrays contain each of the pattern's elements
/// in some element, and at the top level an array contains a scalar it
/// holds.
fn contains(a: &Value, b: &Value, top: bool) -> bool {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => b.iter().all(|(key, inner)| {
            a.get(key)
                .is_some_and(|value| contains(value, inner, false))
        }),
        (Value::Array(a), Value::Array(b)) => b
            .iter()
            .all(|inner| a.iter().any(|value| contains(value, inner, false))),
        (Value::Array(a), scalar) if top && !scalar.is_object() => {
            a.iter().any(|value| same_scalar(value, scalar))
        }
        (a, b) => same_scalar(a, b),
    }
}

/// Equal scalars; numbers by value (`1` is `1.0`, as in jsonb).
fn same_scalar(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(_) | Value::Object(_), _) | (_, Value::Array(_) | Value::Object(_)) => false,
        (a, b) => a == b,
    }
}

fn keys(operand: &Value) -> impl Iterator<Item = &str> {
    operand
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

/// PostgreSQL's `doc ? key` for jsonb.
fn has_key(doc: &Value, key: &str) -> bool {
    match doc {
        Value::Object(entries) => entries.contains_key(key),
        Value::Array(items) => items.iter().any(|item| item.as_str() == Some(key)),
        Value::String(text) => text == key,
        _ => false,
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonDocument {
    test: Test,
    signature: Signature,
}

impl JsonDocument {
    fn new(test: Test) -> Self {
        let text = [DataType::Utf8, DataType::LargeUtf8, DataType::Utf8View];
        let signatures = text
            .iter()
            .map(|doc| {
                datafusion::logical_expr::TypeSignature::Exact(vec![doc.clone(), DataType::Utf8])
            })
            .collect();
        Self {
            test,
            signature: Signature::one_of(signatures, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for JsonDocument {
    fn name(&self) -> &'static str {
        self.test.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [doc, operand] = args.args.as_slice() else {
            return exec_err!("{} takes two arguments", self.name());
        };
        let ColumnarValue::Scalar(ScalarValue::Utf8(Some(operand))) = operand else {
            return exec_err!("{} takes a literal as its second argument", self.name());
        };
        let Ok(operand) = serde_json::from_str::<Value>(operand) else {
            return exec_err!("{}: the operand is not JSON", self.name());
        };
        let docs = doc.to_array(args.number_rows)?;
        let texts: Vec<Option<&str>> = match docs.data_type() {
            DataType::Utf8 => docs.as_string::<i32>().iter().collect(),
            DataType::LargeUtf8 => docs.as_string::<i64>().iter().collect(),
            DataType::Utf8View => docs.as_string_view().iter().collect(),
            other => return exec_err!("{} reads text, not {other}", self.name()),
        };
        let answers: BooleanArray = texts
            .into_iter()
            .map(|text| {
                let doc = serde_json::from_str::<Value>(text?).ok()?;
                Some(self.test.holds(&doc, &operand))
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(answers)))
    }
}

/// [`text`]'s function: its argument, unchanged.
#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonText {
    signature: Signature,
}

impl JsonText {
    const NAME: &str = "json_text";
}

impl Default for JsonText {
    fn default() -> Self {
        Self {
            signature: Signature::uniform(
                1,
                vec![DataType::Utf8, DataType::LargeUtf8, DataType::Utf8View],
                Volatility::Immutable,
            ),
        }
    }
}

impl ScalarUDFImpl for JsonText {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(args.first().cloned().unwrap_or(DataType::Utf8))
    }

    /// The document's field, nullable as it is: a plan whose JSON columns
    /// are replaced by their text keeps its schema.
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        match args.arg_fields {
            [doc] => Ok(Arc::new(Field::new(
                self.name(),
                doc.data_type().clone(),
                doc.is_nullable(),
            ))),
            _ => plan_err!("{} takes one argument", Self::NAME),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        match <[ColumnarValue; 1]>::try_from(args.args) {
            Ok([doc]) => Ok(doc),
            Err(_) => exec_err!("{} takes one argument", Self::NAME),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn containment_is_jsonbs() {
        let cases = [
            (
                json!({"a": 1, "b": {"c": [1, 2]}}),
                json!({"b": {"c": [2]}}),
                true,
            ),
            (json!({"a": 1}), json!({"a": 1.0}), true),
            (json!({"a": 1}), json!({"a": "1"}), false),
            (json!({"a": 1}), json!({}), true),
            (json!([1, 2, [3, 4]]), json!([[3]]), true),
            (json!([1, 2]), json!([2, 2, 1]), true),
            (json!([1, 2]), json!([3]), false),
            // A scalar in a top-level array only.
            (json!(["foo", "bar"]), json!("foo"), true),
            (json!({"x": ["foo"]}), json!({"x": "foo"}), false),
            (json!("foo"), json!("foo"), true),
            (json!([{"a": 1, "b": 2}]), json!([{"a": 1}]), true),
            (json!({"a": null}), json!({"a": null}), true),
            (json!({"a": null}), json!({"b": null}), false),
        ];
        for (doc, pattern, expected) in cases {
            assert_eq!(
                Test::Contains.holds(&doc, &pattern),
                expected,
                "{doc} @> {pattern}"
            );
            assert_eq!(
                Test::ContainedIn.holds(&pattern, &doc),
                expected,
                "{pattern} <@ {doc}"
            );
        }
    }

    #[test]
    fn postgresql_is_sent_jsonbs_operators_with_escaped_literals() {
        use datafusion::logical_expr::col;
        use datafusion::sql::unparser::dialect::PostgreSqlDialect;

        let unparser = Unparser::new(&PostgreSqlDialect {});
        let sql = |test: Test, operand: Value| {
            let Expr::ScalarFunction(call) = call(test, col("tags"), &operand) else {
                panic!("not a call");
            };
            assert!(pushable_to_postgres(call.name(), &call.args));
            postgres_sql(&unparser, call.name(), &call.args)
                .unwrap()
                .unwrap()
                .to_string()
        };
        assert_eq!(
            sql(Test::Contains, json!({"it's": [1]})),
            r#"(CAST("tags" AS JSONB) @> CAST('{"it''s":[1]}' AS JSONB))"#
        );
        assert_eq!(
            sql(Test::ContainedIn, json!("a\\b")),
            r#"(CAST("tags" AS JSONB) <@ CAST('"a\\b"' AS JSONB))"#
        );
        assert_eq!(
            sql(Test::HasAnyKey, json!(["a", "b'c"])),
            r#"(CAST("tags" AS JSONB) ?| CAST(ARRAY['a', 'b''c'] AS TEXT[]))"#
        );
        assert_eq!(
            sql(Test::HasAllKeys, json!([])),
            r#"(CAST("tags" AS JSONB) ?& CAST(ARRAY[] AS TEXT[]))"#
        );
        // A document as text, for string comparisons.
        let Expr::ScalarFunction(as_text) = text(col("tags")) else {
            panic!("not a call");
        };
        assert!(pushable_to_postgres(as_text.name(), &as_text.args));
        assert_eq!(
            postgres_sql(&unparser, as_text.name(), &as_text.args)
                .unwrap()
                .unwrap()
                .to_string(),
            r#"CAST("tags" AS TEXT)"#
        );
        // Other functions are not ours; an operand that is no literal is not sent.
        assert!(
            postgres_sql(&unparser, "upper", &[col("a")])
                .unwrap()
                .is_none()
        );
        assert!(!pushable_to_postgres(
            "json_contains",
            &[col("a"), col("b")]
        ));
    }

    #[test]
    fn keys_are_top_level_keys_or_strings() {
        let doc = json!({"a": 1, "b": {"c": 2}});
        assert!(Test::HasAnyKey.holds(&doc, &json!(["x", "b"])));
        assert!(!Test::HasAnyKey.holds(&doc, &json!(["c"])));
        assert!(Test::HasAllKeys.holds(&doc, &json!(["a", "b"])));
        assert!(!Test::HasAllKeys.holds(&doc, &json!(["a", "c"])));
        assert!(Test::HasAllKeys.holds(&json!(["a", 1, "b"]), &json!(["a", "b"])));
        assert!(!Test::HasAnyKey.holds(&json!([1]), &json!(["1"])));
        assert!(Test::HasAnyKey.holds(&json!("a"), &json!(["a"])));
    }
}
