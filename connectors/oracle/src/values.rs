//! Value conversion between core [`Value`]s and what the Oracle driver reads
//! and binds, kept free of the driver so it is unit-tested in every build:
//! the client layer only moves driver values into and out of these shapes.

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, Timelike, Utc};
use tributary_connector::{ConnectorError, Interval, Result, Value};

/// A DATE or TIMESTAMP value as the driver reports its parts. For `TIMESTAMP
/// WITH (LOCAL) TIME ZONE` the parts are the local time at `offset_minutes`
/// east of UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampParts {
    pub year: i32,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub nanosecond: u32,
    pub offset_minutes: i32,
}

impl TimestampParts {
    fn naive(self) -> Result<NaiveDateTime> {
        NaiveDate::from_ymd_opt(self.year, self.month, self.day)
            .and_then(|d| d.and_hms_nano_opt(self.hour, self.minute, self.second, self.nanosecond))
            .ok_or_else(|| ConnectorError::internal(format!("invalid date or time {self:?}")))
    }

    /// A wall-clock value (DATE, TIMESTAMP): the offset is ignored.
    pub fn to_timestamp(self) -> Result<Value> {
        Ok(Value::Timestamp(self.naive()?))
    }

    /// An instant (WITH TIME ZONE, WITH LOCAL TIME ZONE): the local time
    /// minus its offset.
    pub fn to_instant(self) -> Result<Value> {
        let utc = self.naive()? - Duration::minutes(i64::from(self.offset_minutes));
        Ok(Value::TimestampTz(DateTime::from_naive_utc_and_offset(
            utc, Utc,
        )))
    }

    /// The parts of a wall-clock value to bind.
    pub fn from_naive(t: &NaiveDateTime) -> Self {
        use chrono::Datelike;
        Self {
            year: t.year(),
            month: t.month(),
            day: t.day(),
            hour: t.hour(),
            minute: t.minute(),
            second: t.second(),
            nanosecond: t.nanosecond(),
            offset_minutes: 0,
        }
    }
}

/// The value of a NUMBER / FLOAT column: the driver's decimal text (plain
/// notation, no exponent), kept exact.
pub fn number(text: String) -> Value {
    Value::Decimal(text)
}

/// The value of a CHAR / NCHAR column without its blank padding, as the
/// PostgreSQL connector delivers `char(n)`: equality outside Oracle (a join
/// or filter in the engine) then answers as Oracle's blank-padded comparison does.
pub fn unpadded(mut text: String) -> Value {
    let kept = text.trim_end_matches(' ').len();
    text.truncate(kept);
    Value::Text(text)
}

/// `INTERVAL YEAR TO MONTH` as a calendar interval.
pub fn interval_ym(years: i32, months: i32) -> Result<Value> {
    let months = years
        .checked_mul(12)
        .and_then(|m| m.checked_add(months))
        .ok_or_else(|| ConnectorError::internal("interval out of range"))?;
    Ok(Value::Interval(Interval {
        months,
        days: 0,
        nanoseconds: 0,
    }))
}

/// `INTERVAL DAY TO SECOND` as days plus nanoseconds (the driver gives every
/// part with the interval's sign).
pub fn interval_ds(days: i32, hours: i32, minutes: i32, seconds: i32, nanos: i32) -> Value {
    let nanoseconds = ((i64::from(hours) * 60 + i64::from(minutes)) * 60 + i64::from(seconds))
        * 1_000_000_000
        + i64::from(nanos);
    Value::Interval(Interval {
        months: 0,
        days,
        nanoseconds,
    })
}

/// A parameter as the client layer binds it.
#[derive(Debug, Clone, PartialEq)]
pub enum Bind {
    /// NULL (bound as a NULL VARCHAR2; Oracle converts it to any type).
    Null,
    Text(String),
    Int(i64),
    Float(f64),
    /// Exact decimal text; the session's `NLS_NUMERIC_CHARACTERS='.,'`
    /// makes Oracle read the `.` as the decimal point.
    Number(String),
    Bytes(Vec<u8>),
    /// A wall-clock time (DATE and TIMESTAMP parameters).
    Timestamp(TimestampParts),
    /// An instant, bound as TIMESTAMP WITH TIME ZONE at offset 0.
    TimestampUtc(TimestampParts),
    IntervalYm {
        years: i32,
        months: i32,
    },
    IntervalDs {
        days: i32,
        hours: i32,
        minutes: i32,
        seconds: i32,
        nanos: i32,
    },
}

/// Converts a core value into what the client binds. Booleans become 1 / 0
/// (`NUMBER(1)` before 23ai, accepted by 23ai's BOOLEAN too); JSON, UUIDs
/// and times of day become text. The empty string is bound as is — Oracle
/// stores it as NULL.
pub fn to_bind(value: &Value) -> Result<Bind> {
    Ok(match value {
        Value::Null => Bind::Null,
        Value::Bool(b) => Bind::Int(i64::from(*b)),
        Value::Int(i) => Bind::Int(*i),
        Value::UInt(u) => match i64::try_from(*u) {
            Ok(i) => Bind::Int(i),
            Err(_) => Bind::Number(u.to_string()),
        },
        Value::Float(f) => Bind::Float(*f),
        Value::Decimal(d) => Bind::Number(d.trim().to_string()),
        Value::Text(t) | Value::Uuid(t) => Bind::Text(t.clone()),
        Value::Bytes(b) => Bind::Bytes(b.clone()),
        Value::Date(d) => Bind::Timestamp(TimestampParts::from_naive(
            &d.and_hms_opt(0, 0, 0).unwrap_or_default(),
        )),
        Value::Time(t) => Bind::Text(t.format("%H:%M:%S%.f").to_string()),
        Value::Timestamp(t) => Bind::Timestamp(TimestampParts::from_naive(t)),
        Value::TimestampTz(t) => Bind::TimestampUtc(TimestampParts::from_naive(&t.naive_utc())),
        Value::Interval(i) => interval_bind(*i)?,
        Value::Json(j) => Bind::Text(j.to_string()),
        Value::List(_) => {
            return Err(ConnectorError::invalid_input(
                "Oracle has no array parameters; bind each element separately",
            ));
        }
    })
}

/// Oracle's two interval types cannot mix months with days or time.
fn interval_bind(i: Interval) -> Result<Bind> {
    if i.days == 0 && i.nanoseconds == 0 {
        return Ok(Bind::IntervalYm {
            years: i.months / 12,
            months: i.months % 12,
        });
    }
    if i.months != 0 {
        return Err(ConnectorError::invalid_input(format!(
            "the interval `{i}` mixes months with days or time; Oracle has INTERVAL YEAR TO \
             MONTH or INTERVAL DAY TO SECOND, not both"
        )));
    }
    let total_seconds = i.nanoseconds / 1_000_000_000;
    let nanos = i.nanoseconds % 1_000_000_000;
    let days_from_time = total_seconds / 86_400;
    let rest = total_seconds % 86_400;
    let out_of_range = || ConnectorError::invalid_input(format!("the interval `{i}` is too long"));
    let days = i64::from(i.days) + days_from_time;
    // Every part carries the sign of the whole interval: mixed signs
    // (1 day minus 1 hour) are normalised through the total.
    let total = days * 86_400_000_000_000 + rest * 1_000_000_000 + nanos;
    let sign = if total < 0 { -1 } else { 1 };
    let abs = total.unsigned_abs();
    let to_i32 = |v: u64| i32::try_from(v).map_err(|_| out_of_range());
    let day_nanos = 86_400_000_000_000_u64;
    Ok(Bind::IntervalDs {
        days: sign * to_i32(abs / day_nanos)?,
        hours: sign * to_i32(abs % day_nanos / 3_600_000_000_000)?,
        minutes: sign * to_i32(abs % 3_600_000_000_000 / 60_000_000_000)?,
        seconds: sign * to_i32(abs % 60_000_000_000 / 1_000_000_000)?,
        nanos: sign * to_i32(abs % 1_000_000_000)?,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::cast::AsArray;
    use arrow_array::types::{Decimal128Type, IntervalMonthDayNanoType, TimestampMicrosecondType};
    use arrow_schema::{DataType, Field, IntervalUnit, Schema, TimeUnit};
    use tributary_connector::BatchBuilder;

    use super::*;
    use crate::types::NativeType;

    fn parts(
        (year, month, day): (i32, u32, u32),
        (hour, minute, second): (u32, u32, u32),
        nanosecond: u32,
        offset_minutes: i32,
    ) -> TimestampParts {
        TimestampParts {
            year,
            month,
            day,
            hour,
            minute,
            second,
            nanosecond,
            offset_minutes,
        }
    }

    /// Builds a one-row, one-column batch of the catalog type of `native`.
    fn through_arrow(native: &NativeType, value: Value) -> arrow_array::ArrayRef {
        let schema = Arc::new(Schema::new(vec![Field::new("c", native.data_type(), true)]));
        let mut builder = BatchBuilder::new(schema, 1).unwrap();
        builder.push_row([value]).unwrap();
        builder.finish().unwrap().column(0).clone()
    }

    #[test]
    fn number_without_precision_stays_exact_text() {
        let text = "123456789012345678901234567890.123456789";
        let native = NativeType::from_catalog("NUMBER", None, None);
        let column = through_arrow(&native, number(text.to_string()));
        assert_eq!(column.as_string::<i32>().value(0), text);
        let negative = "-0.000000000000000000000000000000000001";
        let column = through_arrow(&native, number(negative.to_string()));
        assert_eq!(column.as_string::<i32>().value(0), negative);
    }

    #[test]
    fn constrained_numbers_are_exact_decimals() {
        let native = NativeType::from_catalog("NUMBER", Some(38), Some(10));
        let column = through_arrow(
            &native,
            number("1234567890123456789012345678.0123456789".into()),
        );
        assert_eq!(
            column.as_primitive::<Decimal128Type>().value(0),
            12_345_678_901_234_567_890_123_456_780_123_456_789
        );
        // Negative scale: NUMBER(5,-2) holds 1234500.
        let native = NativeType::from_catalog("NUMBER", Some(5), Some(-2));
        let column = through_arrow(&native, number("1234500".into()));
        assert_eq!(column.as_primitive::<Decimal128Type>().value(0), 1_234_500);
    }

    #[test]
    fn timestamp_with_time_zone_becomes_the_utc_instant() {
        // 2024-03-01 10:00:00.123456 +05:30 is 04:30:00.123456 UTC.
        let value = parts((2024, 3, 1), (10, 0, 0), 123_456_789, 330)
            .to_instant()
            .unwrap();
        let native = NativeType::from_catalog("TIMESTAMP(9) WITH TIME ZONE", None, Some(9));
        let column = through_arrow(&native, value);
        let micros = column.as_primitive::<TimestampMicrosecondType>().value(0);
        let expected = NaiveDate::from_ymd_opt(2024, 3, 1)
            .unwrap()
            .and_hms_micro_opt(4, 30, 0, 123_456)
            .unwrap()
            .and_utc()
            .timestamp_micros();
        assert_eq!(micros, expected);
        assert_eq!(
            column.data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC")))
        );
        // A negative offset crosses midnight backwards: 23:00 -08:00 is 07:00 next day.
        let value = parts((2023, 12, 31), (23, 0, 0), 0, -480)
            .to_instant()
            .unwrap();
        assert_eq!(
            value,
            Value::TimestampTz(
                NaiveDate::from_ymd_opt(2024, 1, 1)
                    .unwrap()
                    .and_hms_opt(7, 0, 0)
                    .unwrap()
                    .and_utc()
            )
        );
    }

    #[test]
    fn date_keeps_its_time_part() {
        let value = parts((1999, 12, 31), (23, 59, 58), 0, 0)
            .to_timestamp()
            .unwrap();
        let native = NativeType::Date;
        let column = through_arrow(&native, value);
        let micros = column.as_primitive::<TimestampMicrosecondType>().value(0);
        let expected = NaiveDate::from_ymd_opt(1999, 12, 31)
            .unwrap()
            .and_hms_opt(23, 59, 58)
            .unwrap()
            .and_utc()
            .timestamp_micros();
        assert_eq!(micros, expected);
        assert!(
            parts((2023, 2, 30), (0, 0, 0), 0, 0)
                .to_timestamp()
                .is_err()
        );
    }

    #[test]
    fn char_padding_is_removed_but_inner_blanks_stay() {
        assert_eq!(unpadded("ab c   ".into()), Value::Text("ab c".into()));
        assert_eq!(unpadded("   ".into()), Value::Text(String::new()));
    }

    #[test]
    fn intervals_become_month_day_nano() {
        let native = NativeType::IntervalYm;
        let column = through_arrow(&native, interval_ym(2, 3).unwrap());
        let v = column.as_primitive::<IntervalMonthDayNanoType>().value(0);
        assert_eq!((v.months, v.days, v.nanoseconds), (27, 0, 0));
        let value = interval_ds(-1, -2, -3, -4, -500_000_000);
        assert_eq!(
            value,
            Value::Interval(Interval {
                months: 0,
                days: -1,
                nanoseconds: -(2 * 3_600 + 3 * 60 + 4) * 1_000_000_000 - 500_000_000,
            })
        );
        assert_eq!(
            NativeType::IntervalDs.data_type(),
            DataType::Interval(IntervalUnit::MonthDayNano)
        );
    }

    #[test]
    fn binds() {
        assert_eq!(to_bind(&Value::Bool(true)).unwrap(), Bind::Int(1));
        assert_eq!(
            to_bind(&Value::UInt(u64::MAX)).unwrap(),
            Bind::Number("18446744073709551615".into())
        );
        assert_eq!(
            to_bind(&Value::Decimal("12.50".into())).unwrap(),
            Bind::Number("12.50".into())
        );
        assert_eq!(
            to_bind(&Value::Text(String::new())).unwrap(),
            Bind::Text(String::new())
        );
        assert!(to_bind(&Value::List(vec![])).is_err());
        let instant = NaiveDate::from_ymd_opt(2024, 1, 2)
            .unwrap()
            .and_hms_opt(3, 4, 5)
            .unwrap()
            .and_utc();
        let Bind::TimestampUtc(p) = to_bind(&Value::TimestampTz(instant)).unwrap() else {
            panic!("expected a UTC timestamp bind");
        };
        assert_eq!((p.year, p.hour, p.offset_minutes), (2024, 3, 0));
        assert_eq!(
            to_bind(&Value::Interval(Interval {
                months: 14,
                days: 0,
                nanoseconds: 0
            }))
            .unwrap(),
            Bind::IntervalYm {
                years: 1,
                months: 2
            }
        );
        assert_eq!(
            to_bind(&Value::Interval(Interval {
                months: 0,
                days: 1,
                nanoseconds: -3_600_000_000_000
            }))
            .unwrap(),
            Bind::IntervalDs {
                days: 0,
                hours: 23,
                minutes: 0,
                seconds: 0,
                nanos: 0
            }
        );
        let mixed = to_bind(&Value::Interval(Interval {
            months: 1,
            days: 1,
            nanoseconds: 0,
        }))
        .unwrap_err();
        assert!(mixed.message().contains("mixes months"), "{mixed}");
    }
}
