//! Values from the wire: tiberius' `ColumnData` into core [`Value`]s, typed
//! by the Arrow type of the column they go to (`BatchBuilder` then builds
//! the arrays). See `types.rs` for what each SQL Server type becomes.

use arrow_schema::{DataType, SchemaRef};
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use tiberius::numeric::Numeric;
use tiberius::{ColumnData, FromSql, Row};
use tributary_connector::{ConnectorError, Result, Value};

/// Money arrives as `scaled / 10⁴` in an `f64`; rounding back to the scaled
/// integer is exact while it stays below 2⁵².
const MONEY_EXACT_LIMIT: f64 = 4_503_599_627_370_496.0;

/// Decodes one value for a column of Arrow type `target`.
pub(crate) fn to_value(data: ColumnData<'static>, target: &DataType) -> Result<Value> {
    let value = match data {
        ColumnData::U8(v) => v.map(|v| Value::Int(i64::from(v))),
        ColumnData::I16(v) => v.map(|v| Value::Int(i64::from(v))),
        ColumnData::I32(v) => v.map(|v| Value::Int(i64::from(v))),
        ColumnData::I64(v) => v.map(Value::Int),
        ColumnData::F32(v) => v.map(|v| Value::Float(f64::from(v))),
        ColumnData::F64(v) => match (v, target) {
            (Some(v), DataType::Decimal128(..) | DataType::Decimal256(..)) => Some(money(v)?),
            (v, _) => v.map(Value::Float),
        },
        ColumnData::Bit(v) => v.map(Value::Bool),
        ColumnData::String(v) => v.map(|s| Value::Text(s.into_owned())),
        ColumnData::Guid(v) => v.map(|g| Value::Uuid(g.hyphenated().to_string())),
        ColumnData::Binary(v) => v.map(|b| Value::Bytes(b.into_owned())),
        ColumnData::Numeric(v) => v.map(|n| Value::Decimal(numeric_text(n))),
        ColumnData::Xml(v) => v.map(|x| Value::Text(x.into_owned().into_string())),
        data @ (ColumnData::DateTime(_)
        | ColumnData::SmallDateTime(_)
        | ColumnData::DateTime2(_)) => NaiveDateTime::from_sql(&data)
            .map_err(conversion)?
            .map(Value::Timestamp),
        data @ ColumnData::Time(_) => NaiveTime::from_sql(&data)
            .map_err(conversion)?
            .map(Value::Time),
        data @ ColumnData::Date(_) => NaiveDate::from_sql(&data)
            .map_err(conversion)?
            .map(Value::Date),
        // On the wire a datetimeoffset is the UTC date and time plus the
        // offset it was written with; the `FixedOffset` conversion reads it
        // so (tiberius' `DateTime<Utc>` conversion subtracts the offset a
        // second time, so it is not used).
        data @ ColumnData::DateTimeOffset(_) => DateTime::<FixedOffset>::from_sql(&data)
            .map_err(conversion)?
            .map(|t| Value::TimestampTz(t.with_timezone(&Utc))),
    };
    Ok(value.unwrap_or(Value::Null))
}

fn conversion(err: tiberius::error::Error) -> ConnectorError {
    ConnectorError::internal(format!("cannot decode: {err}"))
}

/// A `money` value's exact decimal text (four fractional digits).
fn money(value: f64) -> Result<Value> {
    let scaled = (value * 1e4).round();
    if !scaled.is_finite() || scaled.abs() >= MONEY_EXACT_LIMIT {
        return Err(ConnectorError::invalid_input(
            "a money value beyond ±450 billion cannot be read exactly through the driver; \
             cast the column to decimal(19,4) in SQL",
        ));
    }
    #[allow(clippy::cast_possible_truncation)] // bounded by MONEY_EXACT_LIMIT above
    let scaled = scaled as i64;
    Ok(Value::Decimal(scaled_text(i128::from(scaled), 4)))
}

/// A decimal's plain text (`-12.50`), exact.
pub(crate) fn numeric_text(n: Numeric) -> String {
    scaled_text(n.value(), n.scale())
}

/// `value / 10^scale` in plain notation.
fn scaled_text(value: i128, scale: u8) -> String {
    let digits = value.unsigned_abs().to_string();
    let sign = if value < 0 { "-" } else { "" };
    let scale = usize::from(scale);
    if scale == 0 {
        return format!("{sign}{digits}");
    }
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{sign}{int}.{frac}")
}

/// Decodes a result row for `schema` (one field per column), naming the
/// column in errors.
pub(crate) fn row_values(row: Row, schema: &SchemaRef) -> Result<Vec<Value>> {
    row.into_iter()
        .zip(schema.fields())
        .map(|(data, field)| {
            to_value(data, field.data_type()).map_err(|e| {
                ConnectorError::new(
                    e.kind(),
                    format!("column `{}`: {}", field.name(), e.message()),
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;
    use std::sync::Arc;

    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Decimal128Type, TimestampMicrosecondType};
    use arrow_schema::{Field, Schema};
    use tiberius::time::{Date, DateTime2, DateTimeOffset, Time};
    use tiberius::xml::XmlData;
    use tiberius::{IntoSql, Uuid};
    use tributary_connector::BatchBuilder;
    use tributary_connector::testkit::batch_to_strings;

    use crate::types::{NativeType, column_type};

    fn text(s: &str) -> ColumnData<'static> {
        ColumnData::String(Some(Cow::Owned(s.to_string())))
    }

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    /// Days since 0001-01-01, as TDS counts `date` and `datetime2` days.
    fn tds_days(date: NaiveDate) -> u32 {
        u32::try_from(date.signed_duration_since(day(1, 1, 1)).num_days()).unwrap()
    }

    /// Decodes `values` into one column of the type the catalog gives
    /// `native`, and returns the array's cells as text.
    fn decoded(native: &NativeType, values: Vec<ColumnData<'static>>) -> arrow_array::RecordBatch {
        let data_type = column_type(native).data_type;
        let schema = Arc::new(Schema::new(vec![Field::new("c", data_type.clone(), true)]));
        let mut builder = BatchBuilder::new(schema, values.len()).unwrap();
        for value in values {
            builder
                .push_row([to_value(value, &data_type).unwrap()])
                .unwrap();
        }
        builder.finish().unwrap()
    }

    fn cells(batch: &arrow_array::RecordBatch) -> Vec<Option<String>> {
        batch_to_strings(batch)
            .into_iter()
            .map(|mut r| r.remove(0))
            .collect()
    }

    /// Every SQL Server type: wire values (and a NULL) → the Arrow array of
    /// the column's catalog type.
    #[test]
    fn every_type_decodes_into_its_arrow_type() {
        let long = "ß".repeat(70_000);
        let dt2 = |d: NaiveDate, secs: u64, scale: u8| {
            ColumnData::DateTime2(Some(DateTime2::new(
                Date::new(tds_days(d)),
                Time::new(secs * 10u64.pow(u32::from(scale)), scale),
            )))
        };
        type Case<'a> = (NativeType, Vec<ColumnData<'static>>, Vec<Option<&'a str>>);
        let cases: Vec<Case<'_>> = vec![
            (
                NativeType::new("bit", 1, 1, 0),
                vec![ColumnData::Bit(Some(true)), ColumnData::Bit(None)],
                vec![Some("true"), None],
            ),
            (
                NativeType::new("tinyint", 1, 3, 0),
                vec![ColumnData::U8(Some(255)), ColumnData::U8(None)],
                vec![Some("255"), None],
            ),
            (
                NativeType::new("smallint", 2, 5, 0),
                vec![ColumnData::I16(Some(-32768)), ColumnData::I16(None)],
                vec![Some("-32768"), None],
            ),
            (
                NativeType::new("int", 4, 10, 0),
                vec![ColumnData::I32(Some(i32::MAX)), ColumnData::I32(None)],
                vec![Some("2147483647"), None],
            ),
            (
                NativeType::new("bigint", 8, 19, 0),
                vec![ColumnData::I64(Some(i64::MIN)), ColumnData::I64(None)],
                vec![Some("-9223372036854775808"), None],
            ),
            (
                NativeType::new("decimal", 9, 10, 2),
                vec![
                    ColumnData::Numeric(Some(Numeric::new_with_scale(-123_456, 2))),
                    ColumnData::Numeric(None),
                ],
                vec![Some("-1234.56"), None],
            ),
            (
                NativeType::new("numeric", 17, 38, 0),
                vec![ColumnData::Numeric(Some(Numeric::new_with_scale(
                    99_999_999_999_999_999_999_999_999_999_999_999_999,
                    0,
                )))],
                vec![Some("99999999999999999999999999999999999999")],
            ),
            (
                NativeType::new("money", 8, 19, 4),
                vec![
                    ColumnData::F64(Some(-922_337_203.580_8)),
                    ColumnData::F64(Some(0.0001)),
                    ColumnData::F64(None),
                ],
                vec![Some("-922337203.5808"), Some("0.0001"), None],
            ),
            (
                NativeType::new("smallmoney", 4, 10, 4),
                vec![ColumnData::F64(Some(214_748.364_7)), ColumnData::F64(None)],
                vec![Some("214748.3647"), None],
            ),
            (
                NativeType::new("float", 8, 53, 0),
                vec![ColumnData::F64(Some(0.1)), ColumnData::F64(None)],
                vec![Some("0.1"), None],
            ),
            (
                NativeType::new("real", 4, 24, 0),
                vec![ColumnData::F32(Some(1.5)), ColumnData::F32(None)],
                vec![Some("1.5"), None],
            ),
            (
                NativeType::new("date", 3, 10, 0),
                vec![day(2024, 2, 29).into_sql(), ColumnData::Date(None)],
                vec![Some("2024-02-29"), None],
            ),
            (
                NativeType::new("time", 5, 16, 7),
                vec![
                    ColumnData::Time(Some(Time::new(450_000_001_234, 7))),
                    ColumnData::Time(None),
                ],
                // 12:30:00.0001234: the 100 ns digit is truncated.
                vec![Some("12:30:00.000123"), None],
            ),
            (
                NativeType::new("datetime", 8, 23, 3),
                vec![
                    // Days since 1900-01-01 and 1/300 s since midnight.
                    ColumnData::DateTime(Some(tiberius::time::DateTime::new(
                        45_411,
                        12 * 3600 * 300 + 150,
                    ))),
                    ColumnData::DateTime(None),
                ],
                vec![Some("2024-05-01T12:00:00.500"), None],
            ),
            (
                NativeType::new("datetime2", 8, 27, 7),
                vec![
                    dt2(day(1, 1, 1), 0, 7),
                    dt2(day(9999, 12, 31), 86_399, 7),
                    ColumnData::DateTime2(None),
                ],
                vec![
                    Some("0001-01-01T00:00:00"),
                    Some("9999-12-31T23:59:59"),
                    None,
                ],
            ),
            (
                NativeType::new("smalldatetime", 4, 16, 0),
                vec![
                    ColumnData::SmallDateTime(Some(tiberius::time::SmallDateTime::new(45_411, 61))),
                    ColumnData::SmallDateTime(None),
                ],
                vec![Some("2024-05-01T01:01:00"), None],
            ),
            (
                NativeType::new("char", 10, 0, 0),
                vec![text("padded    "), ColumnData::String(None)],
                vec![Some("padded    "), None],
            ),
            (
                NativeType::new("varchar", -1, 0, 0),
                vec![text(&long)],
                vec![Some(long.as_str())],
            ),
            (
                NativeType::new("nvarchar", -1, 0, 0),
                vec![text("Zoë 🚀"), text(""), ColumnData::String(None)],
                vec![Some("Zoë 🚀"), Some(""), None],
            ),
            (
                NativeType::new("ntext", 16, 0, 0),
                vec![text("legacy")],
                vec![Some("legacy")],
            ),
            (
                NativeType::new("varbinary", -1, 0, 0),
                vec![
                    ColumnData::Binary(Some(Cow::Owned(vec![0, 255, 16]))),
                    ColumnData::Binary(None),
                ],
                vec![Some("00ff10"), None],
            ),
            (
                NativeType::new("timestamp", 8, 0, 0),
                vec![ColumnData::Binary(Some(Cow::Owned(vec![
                    0, 0, 0, 0, 0, 0, 7, 209,
                ])))],
                vec![Some("00000000000007d1")],
            ),
            (
                NativeType::new("geography", -1, 0, 0),
                vec![ColumnData::Binary(Some(Cow::Owned(vec![0xe6, 0x10])))],
                vec![Some("e610")],
            ),
            (
                NativeType::new("uniqueidentifier", 16, 0, 0),
                vec![
                    ColumnData::Guid(Some(
                        Uuid::parse_str("6F9619FF-8B86-D011-B42D-00C04FC964FF").unwrap(),
                    )),
                    ColumnData::Guid(None),
                ],
                vec![Some("6f9619ff-8b86-d011-b42d-00c04fc964ff"), None],
            ),
            (
                NativeType::new("xml", -1, 0, 0),
                vec![
                    ColumnData::Xml(Some(Cow::Owned(XmlData::new("<a b=\"1\"/>")))),
                    ColumnData::Xml(None),
                ],
                vec![Some("<a b=\"1\"/>"), None],
            ),
            (
                NativeType::new("json", -1, 0, 0),
                vec![text(r#"{"a":[1,2]}"#)],
                vec![Some(r#"{"a":[1,2]}"#)],
            ),
            (
                // A sql_variant holding an int, a date and a NULL: served as text.
                NativeType::new("sql_variant", 8016, 0, 0),
                vec![
                    ColumnData::I32(Some(7)),
                    day(2024, 5, 1).into_sql(),
                    ColumnData::String(None),
                ],
                vec![Some("7"), Some("2024-05-01"), None],
            ),
        ];
        for (native, values, expected) in cases {
            let batch = decoded(&native, values);
            assert_eq!(
                batch.schema().field(0).data_type(),
                &column_type(&native).data_type
            );
            let got = cells(&batch);
            let expected: Vec<Option<String>> = expected
                .into_iter()
                .map(|e| e.map(str::to_string))
                .collect();
            assert_eq!(got, expected, "{}", native.spelled());
        }
    }

    /// A datetimeoffset is the UTC date and time plus the writer's offset:
    /// the instant is kept, whatever the offset.
    #[test]
    fn datetimeoffset_keeps_the_instant() {
        let noon_utc = day(2024, 5, 1);
        let value = |offset_minutes: i16| {
            ColumnData::DateTimeOffset(Some(DateTimeOffset::new(
                DateTime2::new(
                    Date::new(tds_days(noon_utc)),
                    Time::new(12 * 3600 * 10_000_000 + 5, 7),
                ),
                offset_minutes,
            )))
        };
        let native = NativeType::new("datetimeoffset", 10, 34, 7);
        let batch = decoded(
            &native,
            vec![
                value(120),
                value(-330),
                value(0),
                ColumnData::DateTimeOffset(None),
            ],
        );
        let column = batch.column(0).as_primitive::<TimestampMicrosecondType>();
        let expected = noon_utc
            .and_hms_opt(12, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp_micros();
        for row in 0..3 {
            assert_eq!(column.value(row), expected, "row {row}");
        }
        assert!(column.is_null(3));
        assert_eq!(cells(&batch)[0].as_deref(), Some("2024-05-01T12:00:00Z"));
        // Written through tiberius as `10:00+02:00`, read back as 08:00 UTC.
        let written: DateTime<FixedOffset> =
            DateTime::parse_from_rfc3339("2024-05-01T10:00:00+02:00").unwrap();
        let value = to_value(written.into_sql(), &column_type(&native).data_type).unwrap();
        assert_eq!(
            value,
            Value::TimestampTz(
                DateTime::parse_from_rfc3339("2024-05-01T08:00:00Z")
                    .unwrap()
                    .with_timezone(&Utc)
            )
        );
    }

    #[test]
    fn money_is_exact_and_refuses_what_it_cannot_read_exactly() {
        let money = NativeType::new("money", 8, 19, 4);
        let batch = decoded(&money, vec![ColumnData::F64(Some(1234.5678))]);
        assert_eq!(
            batch.column(0).as_primitive::<Decimal128Type>().value(0),
            12_345_678
        );
        let err = to_value(
            ColumnData::F64(Some(922_337_203_685_477.6)),
            &column_type(&money).data_type,
        )
        .unwrap_err();
        assert!(err.message().contains("decimal(19,4)"), "{err}");
    }

    #[test]
    fn values_that_do_not_fit_name_the_column() {
        let schema = Arc::new(Schema::new(vec![Field::new(
            "price",
            DataType::Decimal128(5, 2),
            true,
        )]));
        let row = Row::builder()
            .column(
                "price",
                tiberius::ColumnType::Numericn,
                ColumnData::Numeric(Some(Numeric::new_with_scale(123_456_789, 2))),
            )
            .build();
        let values = row_values(row, &schema).unwrap();
        let mut builder = BatchBuilder::new(schema, 1).unwrap();
        let err = builder.push_row(values).unwrap_err();
        assert!(err.message().contains("`price`"), "{err}");
    }

    #[test]
    fn scaled_text_pads_and_signs() {
        assert_eq!(scaled_text(0, 0), "0");
        assert_eq!(scaled_text(5, 2), "0.05");
        assert_eq!(scaled_text(-5, 2), "-0.05");
        assert_eq!(scaled_text(12_345, 2), "123.45");
        assert_eq!(scaled_text(-1_234_567_890, 4), "-123456.7890");
        assert_eq!(scaled_text(i128::MAX, 0), i128::MAX.to_string());
    }

    #[test]
    fn money_limits() {
        assert_eq!(money(1.2345).unwrap(), Value::Decimal("1.2345".into()));
        assert_eq!(money(-0.0001).unwrap(), Value::Decimal("-0.0001".into()));
        assert_eq!(
            money(450_359_962_737.049_5).unwrap(),
            Value::Decimal("450359962737.0495".into())
        );
        assert!(money(922_337_203_685_477.0).is_err());
        assert!(money(f64::NAN).is_err());
    }
}
