//! Values between core and SQLite: bound parameters (`Value` → SQLite storage
//! class) and result cells (SQLite storage class → `Value` of a column's
//! Arrow type).
//!
//! SQLite is dynamically typed, so a stored value may not fit its column's
//! declared type (`'abc'` in an INTEGER column). [`decode`] then reports a
//! [`Mismatch`]; the row reader turns it into NULL with a warning (or an error
//! for a NOT NULL column). Within a type, values are read exactly:
//! integers stay integers, decimals are rendered from the stored INTEGER,
//! REAL or TEXT and rounded (half away from zero) to the column's scale,
//! text is exact, blobs shown in a text column are `\x`-prefixed hex.

use arrow_schema::{DataType, TimeUnit};
use chrono::{NaiveDateTime, NaiveTime};
use rusqlite::types::{Value as SqlValue, ValueRef};
use tributary_connector::{ConnectorError, Result, Value};

use crate::temporal;

/// Converts a bound parameter to what SQLite stores. Dates and times become
/// ISO-8601 text (the format SQLite's date functions produce), decimals text
/// (the column's affinity converts them like a literal would), JSON its text.
pub(crate) fn to_sql(value: &Value) -> Result<SqlValue> {
    Ok(match value {
        Value::Null => SqlValue::Null,
        Value::Bool(b) => SqlValue::Integer(i64::from(*b)),
        Value::Int(i) => SqlValue::Integer(*i),
        Value::UInt(u) => SqlValue::Integer(i64::try_from(*u).map_err(|_| {
            ConnectorError::invalid_input(format!(
                "{u} does not fit SQLite's 64-bit signed integers"
            ))
        })?),
        Value::Float(f) => SqlValue::Real(*f),
        Value::Decimal(t) | Value::Text(t) | Value::Uuid(t) => SqlValue::Text(t.clone()),
        Value::Bytes(b) => SqlValue::Blob(b.clone()),
        Value::Date(d) => SqlValue::Text(d.format("%Y-%m-%d").to_string()),
        Value::Time(t) => SqlValue::Text(t.format("%H:%M:%S%.f").to_string()),
        Value::Timestamp(t) => SqlValue::Text(t.format("%Y-%m-%d %H:%M:%S%.f").to_string()),
        Value::TimestampTz(t) => {
            SqlValue::Text(t.naive_utc().format("%Y-%m-%d %H:%M:%S%.f").to_string())
        }
        Value::Interval(i) => SqlValue::Text(i.to_string()),
        Value::Json(j) => SqlValue::Text(j.to_string()),
        Value::List(_) => {
            return Err(ConnectorError::unsupported(
                "SQLite has no array values to bind a list to",
            ));
        }
    })
}

/// A stored value that does not fit the column's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mismatch;

/// Fails unless [`decode`] can produce values of `data_type` (checked once
/// per query, so decoding never meets a type it cannot build).
pub(crate) fn check_target(name: &str, data_type: &DataType) -> Result<()> {
    let supported = matches!(
        data_type,
        DataType::Null
            | DataType::Boolean
            | DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Float32
            | DataType::Float64
            | DataType::Decimal128(..)
            | DataType::Decimal256(..)
            | DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Binary
            | DataType::LargeBinary
            | DataType::Date32
            | DataType::Time64(TimeUnit::Microsecond)
            | DataType::Timestamp(TimeUnit::Microsecond, _)
    );
    if supported {
        Ok(())
    } else {
        Err(ConnectorError::invalid_input(format!(
            "column `{name}`: SQLite values cannot be delivered as {data_type}"
        )))
    }
}

/// Reads one cell as a value of `data_type` (one [`check_target`] accepted).
pub(crate) fn decode(cell: ValueRef<'_>, data_type: &DataType) -> Result<Value, Mismatch> {
    if matches!(cell, ValueRef::Null) || *data_type == DataType::Null {
        return Ok(Value::Null);
    }
    match data_type {
        DataType::Boolean => to_bool(cell).map(Value::Bool),
        DataType::Int8 => to_int::<i8>(cell),
        DataType::Int16 => to_int::<i16>(cell),
        DataType::Int32 => to_int::<i32>(cell),
        DataType::Int64 => to_int::<i64>(cell),
        DataType::UInt8 => to_int::<u8>(cell),
        DataType::UInt16 => to_int::<u16>(cell),
        DataType::UInt32 => to_int::<u32>(cell),
        DataType::UInt64 => to_int::<u64>(cell),
        DataType::Float32 | DataType::Float64 => to_float(cell).map(Value::Float),
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => {
            to_decimal(cell, *p, *s).map(Value::Decimal)
        }
        DataType::Binary | DataType::LargeBinary => Ok(Value::Bytes(to_bytes(cell))),
        DataType::Date32 => {
            let at = to_datetime(cell)?;
            if at.time() == NaiveTime::MIN {
                Ok(Value::Date(at.date()))
            } else {
                Err(Mismatch)
            }
        }
        DataType::Time64(_) => match cell {
            ValueRef::Text(t) => {
                temporal::parse_time(std::str::from_utf8(t).map_err(|_| Mismatch)?)
                    .map(Value::Time)
                    .ok_or(Mismatch)
            }
            _ => Err(Mismatch),
        },
        DataType::Timestamp(_, None) => to_datetime(cell).map(Value::Timestamp),
        DataType::Timestamp(_, Some(_)) => {
            to_datetime(cell).map(|t| Value::TimestampTz(t.and_utc()))
        }
        // Utf8, LargeUtf8 (and anything check_target let through as text).
        _ => Ok(Value::Text(to_text(cell))),
    }
}

fn text_of<'a>(cell: &ValueRef<'a>) -> Option<&'a str> {
    match cell {
        ValueRef::Text(t) => std::str::from_utf8(t).ok().map(str::trim),
        _ => None,
    }
}

fn to_bool(cell: ValueRef<'_>) -> Result<bool, Mismatch> {
    match cell {
        ValueRef::Integer(i) => Ok(i != 0),
        ValueRef::Real(f) => Ok(f != 0.0),
        ValueRef::Text(_) => match text_of(&cell).map(str::to_ascii_lowercase).as_deref() {
            Some("1" | "t" | "true" | "y" | "yes" | "on") => Ok(true),
            Some("0" | "f" | "false" | "n" | "no" | "off") => Ok(false),
            _ => Err(Mismatch),
        },
        _ => Err(Mismatch),
    }
}

fn to_int<T>(cell: ValueRef<'_>) -> Result<Value, Mismatch>
where
    T: TryFrom<i64>,
{
    let wide = match cell {
        ValueRef::Integer(i) => i,
        // -2^63 ..= 2^63 (exclusive): every integral float in there converts exactly.
        #[allow(clippy::cast_possible_truncation)]
        ValueRef::Real(f)
            if f.fract() == 0.0
                && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&f) =>
        {
            f as i64
        }
        ValueRef::Text(_) => text_of(&cell)
            .and_then(|t| t.parse().ok())
            .ok_or(Mismatch)?,
        _ => return Err(Mismatch),
    };
    T::try_from(wide)
        .map(|_| Value::Int(wide))
        .map_err(|_| Mismatch)
}

fn to_float(cell: ValueRef<'_>) -> Result<f64, Mismatch> {
    #[allow(clippy::cast_precision_loss)] // the column is a float column
    match cell {
        ValueRef::Integer(i) => Ok(i as f64),
        ValueRef::Real(f) => Ok(f),
        ValueRef::Text(_) => text_of(&cell).and_then(|t| t.parse().ok()).ok_or(Mismatch),
        _ => Err(Mismatch),
    }
}

/// The text of a cell as SQLite's `CAST(x AS TEXT)` would give it (reals in
/// shortest round-trip form), except blobs, which become `\x` + hex.
fn to_text(cell: ValueRef<'_>) -> String {
    match cell {
        ValueRef::Null => String::new(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => format!("{f:?}"),
        ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
        ValueRef::Blob(b) => {
            let mut out = String::with_capacity(2 + b.len() * 2);
            out.push_str("\\x");
            for byte in b {
                out.push_str(&format!("{byte:02x}"));
            }
            out
        }
    }
}

/// Bytes of a cell: blobs as they are, anything else as its text (SQLite's
/// `CAST(x AS BLOB)`).
fn to_bytes(cell: ValueRef<'_>) -> Vec<u8> {
    match cell {
        ValueRef::Blob(b) | ValueRef::Text(b) => b.to_vec(),
        other => to_text(other).into_bytes(),
    }
}

fn to_datetime(cell: ValueRef<'_>) -> Result<NaiveDateTime, Mismatch> {
    match cell {
        ValueRef::Text(_) => text_of(&cell).and_then(temporal::parse_datetime),
        ValueRef::Integer(i) => temporal::from_unix_seconds(i),
        ValueRef::Real(f) => temporal::from_julian_day(f),
        _ => None,
    }
    .ok_or(Mismatch)
}

/// Renders a stored number as decimal text with at most `scale` fraction
/// digits that fits `precision`.
fn to_decimal(cell: ValueRef<'_>, precision: u8, scale: i8) -> Result<String, Mismatch> {
    let text = match cell {
        ValueRef::Integer(i) => i.to_string(),
        // Display prints the shortest text that reads back as the same f64, never an exponent.
        ValueRef::Real(f) if f.is_finite() => format!("{f}"),
        ValueRef::Text(_) => text_of(&cell).ok_or(Mismatch)?.to_string(),
        _ => return Err(Mismatch),
    };
    let number = DecimalText::parse(&text).ok_or(Mismatch)?;
    number.render(precision, scale).ok_or(Mismatch)
}

/// A decimal number as its sign and digits, with the position of the point.
struct DecimalText {
    negative: bool,
    /// All digits, without leading zeros of the integer part.
    digits: Vec<u8>,
    /// How many of `digits` are before the point (may be negative or exceed the length).
    point: i64,
}

impl DecimalText {
    /// Reads `[+-]digits[.digits][e[+-]digits]`.
    fn parse(text: &str) -> Option<Self> {
        let (negative, rest) = match text.as_bytes().first()? {
            b'-' => (true, &text[1..]),
            b'+' => (false, &text[1..]),
            _ => (false, text),
        };
        let (mantissa, exponent) = match rest.find(['e', 'E']) {
            Some(i) => (&rest[..i], rest[i + 1..].parse::<i64>().ok()?),
            None => (rest, 0),
        };
        let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if (int_part.is_empty() && frac_part.is_empty())
            || !all_digits(int_part)
            || !all_digits(frac_part)
        {
            return None;
        }
        if !(-1_000..=1_000).contains(&exponent) {
            return None;
        }
        let int_part = int_part.trim_start_matches('0');
        let digits: Vec<u8> = int_part
            .bytes()
            .chain(frac_part.bytes())
            .map(|b| b - b'0')
            .collect();
        let point = i64::try_from(int_part.len()).ok()? + exponent;
        Some(Self {
            negative,
            digits,
            point,
        })
    }

    /// The digit at `position` (0 = first digit after the point is `point`).
    fn digit(&self, index: i64) -> u8 {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.digits.get(i))
            .copied()
            .unwrap_or(0)
    }

    /// Text rounded half away from zero to `scale` fraction digits; `None`
    /// when the integer part has more than `precision - scale` digits.
    fn render(&self, precision: u8, scale: i8) -> Option<String> {
        let scale = i64::from(scale.max(0));
        // Digits of the result, from the first integer digit to the last kept fraction digit.
        let first = self.point.min(0);
        let last = self.point + scale; // exclusive index into `digits`
        let mut kept: Vec<u8> = (first..last).map(|i| self.digit(i)).collect();
        if self.digit(last) >= 5 {
            let mut i = kept.len();
            loop {
                if i == 0 {
                    kept.insert(0, 1);
                    break;
                }
                i -= 1;
                if kept[i] == 9 {
                    kept[i] = 0;
                } else {
                    kept[i] += 1;
                    break;
                }
            }
        }
        let frac_len = usize::try_from(scale).ok()?;
        let split = kept.len().checked_sub(frac_len)?;
        let (int_digits, frac_digits) = kept.split_at(split);
        let int_text: String = int_digits.iter().map(|d| char::from(b'0' + d)).collect();
        let int_text = int_text.trim_start_matches('0');
        if int_text.len() as i64 > i64::from(precision) - scale {
            return None;
        }
        let frac_text: String = frac_digits.iter().map(|d| char::from(b'0' + d)).collect();
        let zero = int_text.is_empty() && frac_text.bytes().all(|b| b == b'0');
        let mut out = String::new();
        if self.negative && !zero {
            out.push('-');
        }
        out.push_str(if int_text.is_empty() { "0" } else { int_text });
        if !frac_text.is_empty() {
            out.push('.');
            out.push_str(&frac_text);
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, NaiveDate};
    use rstest::rstest;

    #[rstest]
    #[case(Value::Null, SqlValue::Null)]
    #[case(Value::Bool(true), SqlValue::Integer(1))]
    #[case(Value::Int(-5), SqlValue::Integer(-5))]
    #[case(Value::UInt(7), SqlValue::Integer(7))]
    #[case(Value::Float(1.5), SqlValue::Real(1.5))]
    #[case(Value::Decimal("12.50".into()), SqlValue::Text("12.50".into()))]
    #[case(Value::Bytes(vec![0, 255]), SqlValue::Blob(vec![0, 255]))]
    #[case(Value::Date(NaiveDate::from_ymd_opt(2024, 2, 29).unwrap()), SqlValue::Text("2024-02-29".into()))]
    #[case(Value::Time(NaiveTime::from_hms_micro_opt(1, 2, 3, 4).unwrap()), SqlValue::Text("01:02:03.000004".into()))]
    #[case(
        Value::Timestamp(NaiveDate::from_ymd_opt(2024, 5, 1).unwrap().and_hms_opt(12, 0, 0).unwrap()),
        SqlValue::Text("2024-05-01 12:00:00".into())
    )]
    #[case(
        Value::TimestampTz(DateTime::parse_from_rfc3339("2024-05-01T12:00:00+02:00").unwrap().to_utc()),
        SqlValue::Text("2024-05-01 10:00:00".into())
    )]
    #[case(Value::Json(serde_json::json!({"a": [1]})), SqlValue::Text(r#"{"a":[1]}"#.into()))]
    fn binds(#[case] value: Value, #[case] expected: SqlValue) {
        assert_eq!(to_sql(&value).unwrap(), expected);
    }

    #[test]
    fn unbindable_values_are_refused() {
        assert!(to_sql(&Value::UInt(u64::MAX)).is_err());
        assert!(to_sql(&Value::List(vec![])).is_err());
    }

    #[rstest]
    #[case(ValueRef::Integer(1234), 10, 2, Some("1234.00"))]
    #[case(ValueRef::Real(1.25), 10, 2, Some("1.25"))]
    #[case(ValueRef::Real(0.5), 10, 2, Some("0.50"))]
    #[case(ValueRef::Real(99_999_999.99), 10, 2, Some("99999999.99"))]
    #[case(ValueRef::Real(-0.125), 10, 2, Some("-0.13"))]
    #[case(ValueRef::Real(9.999), 10, 2, Some("10.00"))]
    #[case(ValueRef::Real(-0.001), 10, 2, Some("0.00"))]
    #[case(ValueRef::Real(1e20), 30, 0, Some("100000000000000000000"))]
    #[case(ValueRef::Real(1e-7), 10, 8, Some("0.00000010"))]
    #[case(ValueRef::Text(b" 123.4500 "), 10, 4, Some("123.4500"))]
    #[case(ValueRef::Text(b"1.5e3"), 10, 2, Some("1500.00"))]
    #[case(ValueRef::Text(b"-.5"), 10, 1, Some("-0.5"))]
    #[case(ValueRef::Integer(123_456_789), 10, 2, None)]
    #[case(ValueRef::Real(99_999_999.999), 10, 2, None)]
    #[case(ValueRef::Text(b"abc"), 10, 2, None)]
    #[case(ValueRef::Text(b"1.2.3"), 10, 2, None)]
    #[case(ValueRef::Text(b""), 10, 2, None)]
    #[case(ValueRef::Real(f64::INFINITY), 10, 2, None)]
    #[case(ValueRef::Blob(b"1"), 10, 2, None)]
    fn decimals(
        #[case] cell: ValueRef<'_>,
        #[case] p: u8,
        #[case] s: i8,
        #[case] expected: Option<&str>,
    ) {
        assert_eq!(to_decimal(cell, p, s).ok().as_deref(), expected, "{cell:?}");
    }

    #[rstest]
    #[case(ValueRef::Integer(42), DataType::Int64, Some(Value::Int(42)))]
    #[case(ValueRef::Real(3.0), DataType::Int64, Some(Value::Int(3)))]
    #[case(ValueRef::Real(3.5), DataType::Int64, None)]
    #[case(ValueRef::Text(b"abc"), DataType::Int64, None)]
    #[case(ValueRef::Text(b" 17 "), DataType::Int64, Some(Value::Int(17)))]
    #[case(ValueRef::Integer(300), DataType::Int8, None)]
    #[case(ValueRef::Integer(-1), DataType::UInt32, None)]
    #[case(ValueRef::Blob(b"x"), DataType::Int64, None)]
    #[case(ValueRef::Integer(2), DataType::Boolean, Some(Value::Bool(true)))]
    #[case(ValueRef::Text(b"false"), DataType::Boolean, Some(Value::Bool(false)))]
    #[case(ValueRef::Text(b"maybe"), DataType::Boolean, None)]
    #[case(ValueRef::Integer(2), DataType::Float64, Some(Value::Float(2.0)))]
    #[case(ValueRef::Text(b"x"), DataType::Float64, None)]
    #[case(ValueRef::Real(0.1), DataType::Utf8, Some(Value::Text("0.1".into())))]
    #[case(ValueRef::Real(1e20), DataType::Utf8, Some(Value::Text("1e20".into())))]
    #[case(ValueRef::Integer(-3), DataType::Utf8, Some(Value::Text("-3".into())))]
    #[case(ValueRef::Blob(&[0xde, 0xad]), DataType::Utf8, Some(Value::Text("\\xdead".into())))]
    #[case(ValueRef::Text(b"ab"), DataType::Binary, Some(Value::Bytes(b"ab".to_vec())))]
    #[case(ValueRef::Integer(5), DataType::Binary, Some(Value::Bytes(b"5".to_vec())))]
    #[case(ValueRef::Null, DataType::Int64, Some(Value::Null))]
    #[case(ValueRef::Text(b"x"), DataType::Null, Some(Value::Null))]
    fn cells(
        #[case] cell: ValueRef<'_>,
        #[case] data_type: DataType,
        #[case] expected: Option<Value>,
    ) {
        assert_eq!(
            decode(cell, &data_type).ok(),
            expected,
            "{cell:?} as {data_type}"
        );
    }

    #[rstest]
    #[case(
        ValueRef::Text(b"2024-05-01 12:34:56.5+01:00"),
        Some("2024-05-01 11:34:56.500")
    )]
    #[case(ValueRef::Integer(1_714_566_896), Some("2024-05-01 12:34:56"))]
    #[case(ValueRef::Real(2_460_432.024_268_391), Some("2024-05-01 12:34:56.789"))]
    #[case(ValueRef::Text(b"soon"), None)]
    #[case(ValueRef::Blob(b"2024-05-01"), None)]
    fn timestamps(#[case] cell: ValueRef<'_>, #[case] expected: Option<&str>) {
        let expected = expected.map(|t| {
            Value::Timestamp(NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f").unwrap())
        });
        let ts = DataType::Timestamp(TimeUnit::Microsecond, None);
        assert_eq!(decode(cell, &ts).ok(), expected, "{cell:?}");
    }

    #[rstest]
    #[case(ValueRef::Text(b"2024-02-29"), Some("2024-02-29"))]
    #[case(ValueRef::Text(b"2024-02-29 00:00:00"), Some("2024-02-29"))]
    #[case(ValueRef::Text(b"2024-02-29 10:00:00"), None)]
    #[case(ValueRef::Integer(86_400), Some("1970-01-02"))]
    #[case(ValueRef::Integer(86_401), None)]
    fn dates(#[case] cell: ValueRef<'_>, #[case] expected: Option<&str>) {
        let expected = expected.map(|d| Value::Date(d.parse().unwrap()));
        assert_eq!(decode(cell, &DataType::Date32).ok(), expected, "{cell:?}");
    }

    #[test]
    fn targets_without_a_decoder_are_refused_up_front() {
        assert!(check_target("a", &DataType::Int64).is_ok());
        assert!(
            check_target(
                "a",
                &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
            )
            .is_ok()
        );
        let err = check_target("a", &DataType::Timestamp(TimeUnit::Nanosecond, None)).unwrap_err();
        assert!(err.to_string().contains("`a`"), "{err}");
        assert!(check_target("l", &DataType::new_list(DataType::Int64, true)).is_err());
    }
}
