//! Values across the driver boundary: core `Value`s bound as `mysql_async`
//! parameters (binary protocol), and `mysql_async` values read back as core
//! `Value`s for the Arrow column they go to.

use arrow_schema::DataType;
use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use mysql_async::Value as MyValue;
use mysql_async::consts::ColumnType;
use tributary_connector::{ConnectorError, Result, Value};

/// Converts a core value to a statement parameter. Decimals, JSON and UUIDs
/// travel as text (exact); booleans as 0 / 1; instants as UTC date-times
/// (sessions run in UTC). Intervals and lists have no MySQL counterpart.
pub fn to_param(value: &Value) -> Result<MyValue> {
    Ok(match value {
        Value::Null => MyValue::NULL,
        Value::Bool(b) => MyValue::Int(i64::from(*b)),
        Value::Int(i) => MyValue::Int(*i),
        Value::UInt(u) => MyValue::UInt(*u),
        Value::Float(f) => MyValue::Double(*f),
        Value::Decimal(s) | Value::Text(s) | Value::Uuid(s) => {
            MyValue::Bytes(s.as_bytes().to_vec())
        }
        Value::Bytes(b) => MyValue::Bytes(b.clone()),
        Value::Json(j) => MyValue::Bytes(j.to_string().into_bytes()),
        Value::Date(d) => date_time(&d.and_time(NaiveTime::MIN)),
        Value::Time(t) => {
            let (h, m, s, us) = time_parts(t);
            MyValue::Time(false, 0, h, m, s, us)
        }
        Value::Timestamp(t) => date_time(t),
        Value::TimestampTz(t) => date_time(&t.naive_utc()),
        Value::Interval(_) | Value::List(_) => {
            return Err(ConnectorError::invalid_input(format!(
                "MySQL and MariaDB have no {} values to bind",
                value.type_name()
            )));
        }
    })
}

fn time_parts(t: &NaiveTime) -> (u8, u8, u8, u32) {
    // chrono keeps a leap second as nanosecond >= 1e9: clamp to the last microsecond.
    let micros = (t.nanosecond() / 1_000).min(999_999);
    (
        narrow(t.hour()),
        narrow(t.minute()),
        narrow(t.second()),
        micros,
    )
}

fn narrow(n: u32) -> u8 {
    u8::try_from(n).unwrap_or(u8::MAX)
}

fn date_time(t: &NaiveDateTime) -> MyValue {
    let (h, m, s, us) = time_parts(&t.time());
    let year = u16::try_from(t.year()).unwrap_or(0);
    MyValue::Date(year, narrow(t.month()), narrow(t.day()), h, m, s, us)
}

/// Converts a driver value of a column of `source` type into the core value
/// the Arrow `target` column is built from.
pub fn from_driver(value: MyValue, source: ColumnType, target: &DataType) -> Result<Value> {
    Ok(match value {
        MyValue::NULL => Value::Null,
        MyValue::Int(i) => Value::Int(i),
        MyValue::UInt(u) => Value::UInt(u),
        MyValue::Float(f) if *target == DataType::Utf8 => Value::Text(f.to_string()),
        MyValue::Float(f) => Value::Float(f64::from(f)),
        MyValue::Double(d) if *target == DataType::Utf8 => Value::Text(d.to_string()),
        MyValue::Double(d) => Value::Float(d),
        MyValue::Bytes(bytes) => from_bytes(bytes, source, target),
        MyValue::Date(year, month, day, hour, minute, second, micros) => {
            let date = NaiveDate::from_ymd_opt(i32::from(year), u32::from(month), u32::from(day));
            let time = NaiveTime::from_hms_micro_opt(
                u32::from(hour),
                u32::from(minute),
                u32::from(second),
                micros,
            );
            // Zero dates (`0000-00-00`) and invalid ones allowed by relaxed
            // SQL modes have no calendar value: NULL.
            let (Some(date), Some(time)) = (date, time) else {
                return Ok(Value::Null);
            };
            match target {
                DataType::Date32 => Value::Date(date),
                DataType::Utf8 if source == ColumnType::MYSQL_TYPE_DATE => {
                    Value::Text(date.to_string())
                }
                DataType::Utf8 => Value::Text(
                    date.and_time(time)
                        .format("%Y-%m-%d %H:%M:%S%.f")
                        .to_string(),
                ),
                _ => Value::Timestamp(date.and_time(time)),
            }
        }
        MyValue::Time(negative, days, hours, minutes, seconds, micros) => {
            let of_day = (!negative && days == 0)
                .then(|| {
                    NaiveTime::from_hms_micro_opt(
                        u32::from(hours),
                        u32::from(minutes),
                        u32::from(seconds),
                        micros,
                    )
                })
                .flatten();
            let text = || {
                let sign = if negative { "-" } else { "" };
                let hours = days * 24 + u32::from(hours);
                let fraction = if micros == 0 {
                    String::new()
                } else {
                    format!(".{micros:06}")
                };
                format!("{sign}{hours:02}:{minutes:02}:{seconds:02}{fraction}")
            };
            match (of_day, target) {
                (_, DataType::Utf8) => Value::Text(text()),
                (Some(time), _) => Value::Time(time),
                (None, _) => {
                    return Err(ConnectorError::unsupported(format!(
                        "TIME value {} is not a time of day and cannot be read as {target}; \
                         cast it to CHAR to read it as text",
                        text()
                    )));
                }
            }
        }
    })
}

fn from_bytes(bytes: Vec<u8>, source: ColumnType, target: &DataType) -> Value {
    if source == ColumnType::MYSQL_TYPE_BIT
        && matches!(target, DataType::Boolean | DataType::UInt64)
    {
        // BIT(n) arrives as big-endian bytes.
        let number = bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        return if *target == DataType::Boolean {
            Value::Bool(number != 0)
        } else {
            Value::UInt(number)
        };
    }
    match target {
        DataType::Binary | DataType::LargeBinary => Value::Bytes(bytes),
        DataType::Decimal128(..) | DataType::Decimal256(..) => Value::Decimal(text(bytes)),
        _ => Value::Text(text(bytes)),
    }
}

/// Bytes as text; invalid UTF-8 (only possible for binary data read as
/// text) is replaced rather than failing the row.
fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_schema::TimeUnit;
    use chrono::{DateTime, Utc};
    use rstest::rstest;

    fn utc_timestamp() -> DataType {
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    }

    #[rstest]
    #[case(Value::Null, MyValue::NULL)]
    #[case(Value::Bool(true), MyValue::Int(1))]
    #[case(Value::Int(-5), MyValue::Int(-5))]
    #[case(Value::UInt(u64::MAX), MyValue::UInt(u64::MAX))]
    #[case(Value::Float(1.5), MyValue::Double(1.5))]
    #[case(Value::Decimal("-12.50".into()), MyValue::Bytes(b"-12.50".to_vec()))]
    #[case(Value::Json(serde_json::json!({"a": [1]})), MyValue::Bytes(br#"{"a":[1]}"#.to_vec()))]
    #[case(Value::Uuid("0e5b…".into()), MyValue::Bytes("0e5b…".as_bytes().to_vec()))]
    #[case(Value::Date(NaiveDate::from_ymd_opt(2024, 2, 29).unwrap()), MyValue::Date(2024, 2, 29, 0, 0, 0, 0))]
    #[case(Value::Time(NaiveTime::from_hms_micro_opt(23, 59, 58, 123_456).unwrap()), MyValue::Time(false, 0, 23, 59, 58, 123_456))]
    #[case(
        Value::TimestampTz("2024-05-01T12:00:00.5+02:00".parse::<DateTime<Utc>>().unwrap()),
        MyValue::Date(2024, 5, 1, 10, 0, 0, 500_000)
    )]
    fn params(#[case] value: Value, #[case] expected: MyValue) {
        assert_eq!(to_param(&value).unwrap(), expected);
    }

    #[test]
    fn intervals_and_lists_are_refused() {
        assert!(to_param(&Value::List(vec![])).is_err());
        assert!(to_param(&Value::Interval(Default::default())).is_err());
    }

    #[rstest]
    #[case(MyValue::Bytes(b"12345.6789".to_vec()), ColumnType::MYSQL_TYPE_NEWDECIMAL, DataType::Decimal128(9, 4), Value::Decimal("12345.6789".into()))]
    #[case(MyValue::Bytes(vec![0x01]), ColumnType::MYSQL_TYPE_BIT, DataType::Boolean, Value::Bool(true))]
    #[case(MyValue::Bytes(vec![0x01, 0x02]), ColumnType::MYSQL_TYPE_BIT, DataType::UInt64, Value::UInt(258))]
    #[case(MyValue::Bytes(vec![0xff, 0x00]), ColumnType::MYSQL_TYPE_BLOB, DataType::Binary, Value::Bytes(vec![0xff, 0x00]))]
    #[case(MyValue::Bytes("Zoë".as_bytes().to_vec()), ColumnType::MYSQL_TYPE_VAR_STRING, DataType::Utf8, Value::Text("Zoë".into()))]
    #[case(MyValue::Float(1.1), ColumnType::MYSQL_TYPE_FLOAT, DataType::Utf8, Value::Text("1.1".into()))]
    #[case(
        MyValue::Date(0, 0, 0, 0, 0, 0, 0),
        ColumnType::MYSQL_TYPE_DATE,
        DataType::Date32,
        Value::Null
    )]
    #[case(
        MyValue::Date(2024, 2, 30, 0, 0, 0, 0),
        ColumnType::MYSQL_TYPE_DATE,
        DataType::Date32,
        Value::Null
    )]
    #[case(MyValue::Date(2024, 2, 29, 0, 0, 0, 0), ColumnType::MYSQL_TYPE_DATE, DataType::Date32, Value::Date(NaiveDate::from_ymd_opt(2024, 2, 29).unwrap()))]
    #[case(MyValue::Date(2024, 2, 29, 0, 0, 0, 0), ColumnType::MYSQL_TYPE_DATE, DataType::Utf8, Value::Text("2024-02-29".into()))]
    #[case(MyValue::Date(2024, 2, 29, 1, 2, 3, 4), ColumnType::MYSQL_TYPE_TIMESTAMP, utc_timestamp(), Value::Timestamp(NaiveDate::from_ymd_opt(2024, 2, 29).unwrap().and_hms_micro_opt(1, 2, 3, 4).unwrap()))]
    #[case(MyValue::Time(false, 0, 1, 2, 3, 0), ColumnType::MYSQL_TYPE_TIME, DataType::Time64(TimeUnit::Microsecond), Value::Time(NaiveTime::from_hms_opt(1, 2, 3).unwrap()))]
    #[case(MyValue::Time(true, 1, 2, 0, 0, 5), ColumnType::MYSQL_TYPE_TIME, DataType::Utf8, Value::Text("-26:00:00.000005".into()))]
    fn driver_values(
        #[case] value: MyValue,
        #[case] source: ColumnType,
        #[case] target: DataType,
        #[case] expected: Value,
    ) {
        assert_eq!(from_driver(value, source, &target).unwrap(), expected);
    }

    #[test]
    fn durations_outside_a_day_fail_loudly_as_time() {
        let err = from_driver(
            MyValue::Time(false, 1, 1, 0, 0, 0),
            ColumnType::MYSQL_TYPE_TIME,
            &DataType::Time64(TimeUnit::Microsecond),
        )
        .unwrap_err();
        assert!(err.message().contains("25:00:00"), "{err}");
    }
}
