//! Request JSON → values to write, by the column's type in the catalog: a
//! value that is not one of the column's type is a 400 naming the field,
//! before anything reaches the database. The forms read are the ones the
//! API answers with (src/results.rs): exact decimals as strings or
//! numbers, dates and times as ISO 8601 text, binary as `\x`-hex text.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use datafusion::arrow::datatypes::DataType;
use serde_json::Value as Json;
use tributary_connector::Value;
use tributary_schema_cache::ColumnDef;

use crate::error::ApiError;

/// The value `json` means for `column`.
pub fn to_value(json: &Json, column: &ColumnDef, path: &str) -> Result<Value, ApiError> {
    typed(
        json,
        &column.data_type,
        crate::filter::is_json_column(column),
        path,
    )
}

fn typed(
    json: &Json,
    data_type: &DataType,
    json_column: bool,
    path: &str,
) -> Result<Value, ApiError> {
    let wrong = || {
        ApiError::bad_request(format!(
            "`{}` is not a value of type {}",
            text_of(json),
            if json_column {
                "json".to_string()
            } else {
                data_type.to_string()
            }
        ))
        .at(path.to_string())
    };
    if json.is_null() {
        return Ok(Value::Null);
    }
    if json_column {
        return Ok(Value::Json(json.clone()));
    }
    Ok(match data_type {
        DataType::Boolean => Value::Bool(json.as_bool().ok_or_else(wrong)?),
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
            let n = match json {
                Json::Number(n) => n.as_i64(),
                Json::String(s) => s.trim().parse().ok(),
                _ => None,
            }
            .ok_or_else(wrong)?;
            let fits = match data_type {
                DataType::Int8 => i8::try_from(n).is_ok(),
                DataType::Int16 => i16::try_from(n).is_ok(),
                DataType::Int32 => i32::try_from(n).is_ok(),
                _ => true,
            };
            if !fits {
                return Err(wrong());
            }
            Value::Int(n)
        }
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
            let n = match json {
                Json::Number(n) => n.as_u64(),
                Json::String(s) => s.trim().parse().ok(),
                _ => None,
            }
            .ok_or_else(wrong)?;
            let fits = match data_type {
                DataType::UInt8 => u8::try_from(n).is_ok(),
                DataType::UInt16 => u16::try_from(n).is_ok(),
                DataType::UInt32 => u32::try_from(n).is_ok(),
                _ => true,
            };
            if !fits {
                return Err(wrong());
            }
            Value::UInt(n)
        }
        DataType::Float16 | DataType::Float32 | DataType::Float64 => match json {
            Json::Number(n) => Value::Float(n.as_f64().ok_or_else(wrong)?),
            Json::String(s) => Value::Float(s.trim().parse().map_err(|_| wrong())?),
            _ => return Err(wrong()),
        },
        DataType::Decimal32(precision, scale)
        | DataType::Decimal64(precision, scale)
        | DataType::Decimal128(precision, scale)
        | DataType::Decimal256(precision, scale) => {
            let text = match json {
                Json::Number(n) => n.to_string(),
                Json::String(s) => s.trim().to_string(),
                _ => return Err(wrong()),
            };
            if !is_decimal(&text) {
                return Err(wrong());
            }
            // As PostgreSQL stores numeric(p, s) — rounded to s places, an
            // error past p digits — on every source (SQLite would keep any
            // number, which the column's type then cannot hold).
            let scale = usize::try_from(*scale).unwrap_or(0);
            let rounded = round_decimal(&text, scale);
            let whole_digits = rounded
                .trim_start_matches('-')
                .split('.')
                .next()
                .unwrap_or("")
                .trim_start_matches('0')
                .len();
            if whole_digits > usize::from(*precision).saturating_sub(scale) {
                return Err(ApiError::bad_request(format!(
                    "`{text}` is out of range for numeric({precision}, {scale})"
                ))
                .at(path.to_string()));
            }
            Value::Decimal(rounded)
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            Value::Text(json.as_str().ok_or_else(wrong)?.to_string())
        }
        DataType::Date32 | DataType::Date64 => {
            let text = json.as_str().ok_or_else(wrong)?;
            Value::Date(NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| wrong())?)
        }
        DataType::Time32(_) | DataType::Time64(_) => {
            let text = json.as_str().ok_or_else(wrong)?;
            Value::Time(NaiveTime::parse_from_str(text, "%H:%M:%S%.f").map_err(|_| wrong())?)
        }
        DataType::Timestamp(_, None) => {
            let text = json.as_str().ok_or_else(wrong)?;
            Value::Timestamp(naive_timestamp(text).ok_or_else(wrong)?)
        }
        DataType::Timestamp(_, Some(_)) => {
            let text = json.as_str().ok_or_else(wrong)?;
            let instant = DateTime::parse_from_rfc3339(text)
                .map(|t| t.with_timezone(&Utc))
                .ok()
                // A time without offset is read as UTC.
                .or_else(|| naive_timestamp(text).map(|t| t.and_utc()))
                .ok_or_else(wrong)?;
            Value::TimestampTz(instant)
        }
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => {
            let text = json.as_str().ok_or_else(wrong)?;
            let hex_digits = text.strip_prefix("\\x").ok_or_else(wrong)?;
            Value::Bytes(hex::decode(hex_digits).map_err(|_| wrong())?)
        }
        DataType::List(item) | DataType::LargeList(item) => {
            let Json::Array(items) = json else {
                return Err(wrong());
            };
            Value::List(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| typed(v, item.data_type(), false, &format!("{path}[{i}]")))
                    .collect::<Result<_, _>>()?,
            )
        }
        // Intervals and types served as text: the database reads the text.
        _ => match json {
            Json::String(s) => Value::Text(s.clone()),
            Json::Number(n) => Value::Text(n.to_string()),
            _ => return Err(wrong()),
        },
    })
}

fn naive_timestamp(text: &str) -> Option<NaiveDateTime> {
    [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ]
    .iter()
    .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
    .or_else(|| {
        NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
    })
}

/// `text` (plain decimal notation) rounded half away from zero to `scale`
/// fraction digits, as PostgreSQL rounds numeric values.
fn round_decimal(text: &str, scale: usize) -> String {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let padded = fraction.bytes().chain(std::iter::repeat(b'0')).take(scale);
    let mut kept: Vec<u8> = whole.bytes().chain(padded).collect();
    if fraction.as_bytes().get(scale).is_some_and(|d| *d >= b'5') {
        // Carry the rounding up through the kept digits.
        let mut carry = true;
        for digit in kept.iter_mut().rev() {
            if *digit == b'9' {
                *digit = b'0';
            } else {
                *digit += 1;
                carry = false;
                break;
            }
        }
        if carry {
            kept.insert(0, b'1');
        }
    }
    let split = kept.len() - scale;
    let whole = String::from_utf8_lossy(&kept[..split]);
    let whole = match whole.trim_start_matches('0') {
        "" => "0",
        trimmed => trimmed,
    };
    let fraction = String::from_utf8_lossy(&kept[split..]);
    let is_zero = whole == "0" && fraction.bytes().all(|b| b == b'0');
    let sign = if negative && !is_zero { "-" } else { "" };
    if scale == 0 {
        format!("{sign}{whole}")
    } else {
        format!("{sign}{whole}.{fraction}")
    }
}

/// Plain decimal notation: `-12`, `3.50`, `.5`.
fn is_decimal(text: &str) -> bool {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    !(whole.is_empty() && fraction.is_empty())
        && whole.bytes().all(|b| b.is_ascii_digit())
        && fraction.bytes().all(|b| b.is_ascii_digit())
}

fn text_of(json: &Json) -> String {
    match json {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{Field, TimeUnit};
    use std::sync::Arc;

    fn column(data_type: DataType, native: &str) -> ColumnDef {
        ColumnDef {
            name: "c".into(),
            ordinal: 1,
            native_type: native.into(),
            data_type,
            nullable: true,
            default: None,
            generated: None,
            comment: None,
            unsupported_type: None,
        }
    }

    #[test]
    fn values_follow_the_column_type() {
        let cases: Vec<(DataType, &str, Json, Value)> = vec![
            (DataType::Int32, "int4", Json::from(7), Value::Int(7)),
            (DataType::Int64, "int8", Json::from("8"), Value::Int(8)),
            (
                DataType::Decimal128(12, 2),
                "numeric",
                Json::from("12.50"),
                Value::Decimal("12.50".into()),
            ),
            (
                DataType::Decimal128(12, 2),
                "numeric",
                Json::from(3),
                Value::Decimal("3.00".into()),
            ),
            (
                DataType::Utf8,
                "jsonb",
                serde_json::json!({"a": 1}),
                Value::Json(serde_json::json!({"a": 1})),
            ),
            (
                DataType::Date32,
                "date",
                Json::from("2024-05-01"),
                Value::Date(NaiveDate::from_ymd_opt(2024, 5, 1).unwrap_or_default()),
            ),
            (
                DataType::Binary,
                "bytea",
                Json::from("\\x0aff"),
                Value::Bytes(vec![10, 255]),
            ),
            (
                DataType::List(Arc::new(Field::new("item", DataType::Int32, true))),
                "_int4",
                serde_json::json!([1, null]),
                Value::List(vec![Value::Int(1), Value::Null]),
            ),
            (DataType::Boolean, "bool", Json::Null, Value::Null),
        ];
        for (data_type, native, json, expected) in cases {
            let got = to_value(&json, &column(data_type.clone(), native), "c").unwrap();
            assert_eq!(got, expected, "{data_type} {json}");
        }
        let instant = to_value(
            &Json::from("2024-05-01T10:00:00+02:00"),
            &column(
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                "timestamptz",
            ),
            "c",
        )
        .unwrap();
        assert_eq!(instant.to_text().unwrap(), "2024-05-01 08:00:00+00");
    }

    #[test]
    fn decimals_are_rounded_to_their_scale_and_checked_against_their_precision() {
        let numeric = column(DataType::Decimal128(6, 2), "numeric");
        for (given, stored) in [
            ("1.234", "1.23"),
            ("1.235", "1.24"),
            ("-1.235", "-1.24"),
            ("9.999", "10.00"),
            ("-0.001", "0.00"),
            (".5", "0.50"),
            ("0012", "12.00"),
            ("9999.994", "9999.99"),
        ] {
            let got = to_value(&Json::from(given), &numeric, "c").unwrap();
            assert_eq!(got, Value::Decimal(stored.into()), "{given}");
        }
        for too_big in ["10000", "9999.995", "-12345.6"] {
            let error = to_value(&Json::from(too_big), &numeric, "c").unwrap_err();
            assert!(
                error.message.contains("out of range"),
                "{too_big}: {error:?}"
            );
        }
        let whole = column(DataType::Decimal128(5, 0), "numeric");
        let got = to_value(&Json::from("2.5"), &whole, "c").unwrap();
        assert_eq!(got, Value::Decimal("3".into()));
    }

    #[test]
    fn wrong_values_name_the_field() {
        let cases: Vec<(DataType, Json)> = vec![
            (DataType::Int32, Json::from("seven")),
            (DataType::Int16, Json::from(70_000)),
            (DataType::Int32, Json::from(1.5)),
            (DataType::Decimal128(12, 2), Json::from("1e5x")),
            (DataType::Boolean, Json::from("yes")),
            (DataType::Utf8, Json::from(5)),
            (DataType::Date32, Json::from("2024-13-01")),
            (DataType::Binary, Json::from("abc")),
        ];
        for (data_type, json) in cases {
            let error = to_value(&json, &column(data_type.clone(), "x"), "[0].c").unwrap_err();
            assert_eq!(error.path.as_deref(), Some("[0].c"), "{data_type} {json}");
            assert_eq!(error.status, axum::http::StatusCode::BAD_REQUEST);
        }
    }
}
