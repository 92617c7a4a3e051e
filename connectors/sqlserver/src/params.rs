//! Bound values: core [`Value`]s as tiberius parameters (`@P1`, `@P2`, …).
//!
//! | Value             | sent as                                               |
//! |-------------------|-------------------------------------------------------|
//! | `Null`            | `nvarchar` NULL (converts implicitly to every type but binary ones) |
//! | `Bool`            | `bit`                                                 |
//! | `Int`             | `int` when it fits, else `bigint`                     |
//! | `UInt`            | `bigint` when it fits, else `decimal(20,0)`           |
//! | `Float`           | `float`                                               |
//! | `Decimal`         | `decimal(p,s)`, exact (more than 38 digits: invalid input) |
//! | `Text`, `Json`    | `nvarchar` (the server converts to the column's type) |
//! | `Bytes`           | `varbinary`                                           |
//! | `Date` / `Time`   | `date` / `time(7)`                                    |
//! | `Timestamp`       | `datetime2(7)`                                        |
//! | `TimestampTz`     | `datetimeoffset(7)` at offset +00:00                  |
//! | `Uuid`            | `uniqueidentifier` (a malformed UUID: invalid input)  |
//! | `Interval`, `List`| refused: SQL Server has no such types                 |
//!
//! Writes render a NULL written to a column as the `NULL` keyword instead
//! (see `render.rs`), so it takes the column's type whatever it is.

use std::borrow::Cow;

use tiberius::numeric::Numeric;
use tiberius::{ColumnData, IntoSql, Uuid};
use tributary_connector::{ConnectorError, Result, Value};

/// SQL Server's widest decimal.
const MAX_PRECISION: usize = 38;

/// The parameter for `value`; `position` (1-based) names it in errors.
pub(crate) fn to_param(value: &Value, position: usize) -> Result<ColumnData<'static>> {
    let refused = |what: &str| {
        ConnectorError::invalid_input(format!(
            "parameter @P{position}: SQL Server has no {what} type"
        ))
    };
    Ok(match value {
        Value::Null => ColumnData::String(None),
        Value::Bool(b) => ColumnData::Bit(Some(*b)),
        Value::Int(i) => match i32::try_from(*i) {
            Ok(small) => ColumnData::I32(Some(small)),
            Err(_) => ColumnData::I64(Some(*i)),
        },
        Value::UInt(u) => match i64::try_from(*u) {
            Ok(i) => ColumnData::I64(Some(i)),
            Err(_) => ColumnData::Numeric(Some(Numeric::new_with_scale(i128::from(*u), 0))),
        },
        Value::Float(f) => ColumnData::F64(Some(*f)),
        Value::Decimal(text) => {
            ColumnData::Numeric(Some(parse_decimal(text).map_err(|e| {
                ConnectorError::invalid_input(format!("parameter @P{position}: {e}"))
            })?))
        }
        Value::Text(text) => ColumnData::String(Some(Cow::Owned(text.clone()))),
        Value::Json(json) => ColumnData::String(Some(Cow::Owned(json.to_string()))),
        Value::Bytes(bytes) => ColumnData::Binary(Some(Cow::Owned(bytes.clone()))),
        Value::Date(d) => d.into_sql(),
        Value::Time(t) => t.into_sql(),
        Value::Timestamp(t) => t.into_sql(),
        Value::TimestampTz(t) => t.fixed_offset().into_sql(),
        Value::Uuid(text) => {
            ColumnData::Guid(Some(Uuid::parse_str(text.trim()).map_err(|_| {
                ConnectorError::invalid_input(format!(
                    "parameter @P{position}: `{text}` is not a UUID"
                ))
            })?))
        }
        Value::Interval(_) => return Err(refused("interval")),
        Value::List(_) => return Err(refused("array")),
    })
}

/// Every parameter of a statement.
pub(crate) fn to_params(values: &[Value]) -> Result<Vec<ColumnData<'static>>> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| to_param(v, i + 1))
        .collect()
}

/// Parses plain or exponent-free decimal text (`-12.50`, `+3`, `.5`) into a
/// `Numeric` exactly.
pub(crate) fn parse_decimal(text: &str) -> Result<Numeric, String> {
    let trimmed = text.trim();
    let (negative, unsigned) = match trimmed.as_bytes().first() {
        Some(b'-') => (true, &trimmed[1..]),
        Some(b'+') => (false, &trimmed[1..]),
        _ => (false, trimmed),
    };
    let (int, frac) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let valid = !(int.is_empty() && frac.is_empty())
        && int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit());
    if !valid {
        return Err(format!("`{text}` is not a decimal number"));
    }
    let digits = format!("{int}{frac}");
    let significant = digits.trim_start_matches('0');
    if significant.len() > MAX_PRECISION || frac.len() > MAX_PRECISION {
        return Err(format!(
            "`{text}` has more than {MAX_PRECISION} digits, SQL Server's widest decimal"
        ));
    }
    let magnitude: i128 = if significant.is_empty() {
        0
    } else {
        significant
            .parse()
            .map_err(|_| format!("`{text}` is not a decimal number"))?
    };
    let scale = u8::try_from(frac.len()).map_err(|_| format!("`{text}` has too many digits"))?;
    Ok(Numeric::new_with_scale(
        if negative { -magnitude } else { magnitude },
        scale,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::numeric_text;
    use chrono::Utc;

    #[test]
    fn decimals_parse_exactly() {
        for (text, expected) in [
            ("-12.50", "-12.50"),
            ("+3", "3"),
            (".5", "0.5"),
            ("0.000", "0.000"),
            (
                "99999999999999999999999999999999999999",
                "99999999999999999999999999999999999999",
            ),
        ] {
            assert_eq!(
                numeric_text(parse_decimal(text).unwrap()),
                expected,
                "{text}"
            );
        }
        for bad in ["", "-", "1e5", "1.2.3", "abc", "NaN", &"9".repeat(39)] {
            assert!(parse_decimal(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn values_become_typed_parameters() {
        assert_eq!(
            to_param(&Value::Int(7), 1).unwrap(),
            ColumnData::I32(Some(7))
        );
        assert_eq!(
            to_param(&Value::Int(1 << 40), 1).unwrap(),
            ColumnData::I64(Some(1 << 40))
        );
        assert_eq!(to_param(&Value::Null, 1).unwrap(), ColumnData::String(None));
        let guid = to_param(
            &Value::Uuid("6F9619FF-8B86-D011-B42D-00C04FC964FF".into()),
            1,
        )
        .unwrap();
        assert_eq!(
            guid,
            ColumnData::Guid(Some(
                Uuid::parse_str("6f9619ff-8b86-d011-b42d-00c04fc964ff").unwrap()
            ))
        );
        let err = to_param(&Value::Uuid("nope".into()), 3).unwrap_err();
        assert!(err.message().contains("@P3"), "{err}");
        let err = to_param(&Value::List(vec![]), 2).unwrap_err();
        assert_eq!(err.kind(), tributary_connector::ErrorKind::InvalidInput);
        let tz = chrono::DateTime::parse_from_rfc3339("2024-05-01T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert!(matches!(
            to_param(&Value::TimestampTz(tz), 1).unwrap(),
            ColumnData::DateTimeOffset(Some(_))
        ));
    }
}
