//! JSON Schemas of column values, as `crate::results` writes them: each
//! Arrow type maps to the JSON the server actually sends, not to the type's
//! SQL meaning (exact decimals are text, binary is `\x`-hex text).

use arrow_schema::DataType;
use serde_json::{Value, json};

/// Exact decimals: the text `format_decimal` writes (`-12.50`, `300`).
pub(super) const DECIMAL_PATTERN: &str = r"^-?[0-9]+(\.[0-9]+)?$";
/// A date and time without an offset: chrono's `NaiveDateTime` debug form,
/// which `results` sends for timestamps without a time zone and `Date64`
/// (fractions have 3, 6 or 9 digits, and only when not zero; years past
/// 9999 carry a sign).
const LOCAL_DATE_TIME_PATTERN: &str =
    r"^[+-]?[0-9]{4,}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?$";
/// A time of day without an offset (`NaiveTime`'s debug form).
const LOCAL_TIME_PATTERN: &str = r"^[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?$";

/// The schema of a non-null value of `data_type`.
pub(super) fn value(data_type: &DataType) -> Value {
    match data_type {
        DataType::Null => json!({ "type": "null" }),
        DataType::Boolean => json!({ "type": "boolean" }),
        DataType::Int8 => integer("int32", i64::from(i8::MIN), i64::from(i8::MAX)),
        DataType::Int16 => integer("int32", i64::from(i16::MIN), i64::from(i16::MAX)),
        DataType::Int32 => json!({ "type": "integer", "format": "int32" }),
        DataType::Int64 => json!({ "type": "integer", "format": "int64" }),
        DataType::UInt8 => integer("int32", 0, i64::from(u8::MAX)),
        DataType::UInt16 => integer("int32", 0, i64::from(u16::MAX)),
        DataType::UInt32 => integer("int64", 0, i64::from(u32::MAX)),
        // `int64` is signed: the upper half of UInt64 would break that format.
        DataType::UInt64 => json!({ "type": "integer", "minimum": 0, "maximum": u64::MAX }),
        DataType::Float16 | DataType::Float32 => float("float"),
        DataType::Float64 => float("double"),
        DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => json!({
            "type": "string",
            "pattern": DECIMAL_PATTERN,
            "description": "An exact decimal number, sent as text to keep its precision.",
        }),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => json!({
            "type": "string",
            "pattern": r"^\\x([0-9a-f]{2})*$",
            "description": "Bytes as `\\x` followed by lower-case hex.",
        }),
        // Arrow's display form, which `results` falls back to: bare hex.
        DataType::FixedSizeBinary(_) => json!({
            "type": "string",
            "pattern": "^([0-9a-f]{2})*$",
            "description": "Bytes as lower-case hex.",
        }),
        DataType::Date32 => json!({ "type": "string", "format": "date" }),
        // Milliseconds since the epoch: Arrow displays them as a date and time.
        DataType::Date64 | DataType::Timestamp(_, None) => json!({
            "type": "string",
            "pattern": LOCAL_DATE_TIME_PATTERN,
            "description": "A date and time without a UTC offset (ISO 8601, `YYYY-MM-DDTHH:MM:SS[.fff]`).",
        }),
        DataType::Timestamp(_, Some(_)) => json!({ "type": "string", "format": "date-time" }),
        // Not `format: time`: RFC 3339's full-time requires an offset, which
        // these values do not have.
        DataType::Time32(_) | DataType::Time64(_) => json!({
            "type": "string",
            "pattern": LOCAL_TIME_PATTERN,
            "description": "A time of day without a UTC offset (`HH:MM:SS[.fff]`).",
        }),
        DataType::List(item) | DataType::LargeList(item) => json!({
            "type": "array",
            "items": nullable(value(item.data_type()), item.is_nullable()),
        }),
        // Text (`Utf8` and friends), and everything `results` sends in
        // Arrow's display form: intervals, durations, structs, maps,
        // dictionaries, fixed-size lists and list views.
        _ => json!({ "type": "string" }),
    }
}

/// `schema`, also admitting null when `nullable`: `type: [X, "null"]` where
/// the schema has one type, another alternative where it has several.
pub(super) fn nullable(mut schema: Value, nullable: bool) -> Value {
    if !nullable {
        return schema;
    }
    if let Some(Value::String(single)) = schema.get("type") {
        if single != "null" {
            let both = json!([single, "null"]);
            schema["type"] = both;
        }
        return schema;
    }
    if let Some(Value::Array(alternatives)) = schema.get_mut("anyOf") {
        alternatives.push(json!({ "type": "null" }));
        return schema;
    }
    json!({ "anyOf": [schema, { "type": "null" }] })
}

fn integer(format: &str, minimum: i64, maximum: i64) -> Value {
    json!({
        "type": "integer",
        "format": format,
        "minimum": minimum,
        "maximum": maximum,
    })
}

/// JSON has no NaN or infinities: `results` sends those as text.
fn float(format: &str) -> Value {
    json!({
        "anyOf": [
            { "type": "number", "format": format },
            { "type": "string", "enum": ["NaN", "inf", "-inf"] },
        ]
    })
}
