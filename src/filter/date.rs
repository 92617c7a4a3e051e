//! The date operators' operands, read as NocoBase reads them: a partial
//! date (`2024`, `2024Q2`, `2024W18`, `2024-05`, `2024-05-01`,
//! `2024-05-01T10`, `…T10:30`, `…T10:30:15`, `…T10:30:15.250`) names a
//! period in a time zone (the configured one, or the value's own trailing
//! `+02:00`); a value ending in `Z` names one instant; an array of two names
//! everything from the first's start to the second's end. Boundaries become
//! literals of the column's type, so every operator is a plain comparison
//! the source database can evaluate.

use chrono::{
    DateTime, Days, FixedOffset, LocalResult, Months, NaiveDate, NaiveDateTime, NaiveTime, Offset,
    TimeDelta, TimeZone, Utc, Weekday,
};
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::logical_expr::{Expr, lit};
use datafusion::scalar::ScalarValue;
use serde_json::Value;

/// The instants an operand covers: `[start, end)`, or `[start, end]` when
/// `closed` (an instant is the closed range from itself to itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Range {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub closed: bool,
}

/// One comparison of a column with an instant.
#[derive(Debug, Clone, Copy)]
pub(super) enum Cmp {
    Lt,
    Le,
    Gt,
    Ge,
}

/// Reads a single value or an array of two (from the first's start to the
/// second's end, both included).
pub(super) fn range(value: &Value, zone: &impl TimeZone) -> Result<Range, String> {
    match value {
        Value::String(text) => one(text, zone),
        Value::Array(items) => {
            let [first, last] = items.as_slice() else {
                return Err(format!(
                    "expected a date or an array of two dates, got {} items",
                    items.len()
                ));
            };
            let (Value::String(first), Value::String(last)) = (first, last) else {
                return Err("expected an array of two dates written as strings".into());
            };
            let first = one(first, zone)?;
            let last = one(last, zone)?;
            Ok(Range {
                start: first.start,
                end: last.end,
                closed: last.closed,
            })
        }
        other => Err(format!("`{other}` is not a date")),
    }
}

/// One string: an instant (`…Z`) or a period.
fn one(text: &str, zone: &impl TimeZone) -> Result<Range, String> {
    let invalid = || {
        format!(
            "`{text}` is not a date (use 2024, 2024Q2, 2024W18, 2024-05, 2024-05-01, \
             2024-05-01T10:30:00, or an instant ending in Z)"
        )
    };
    if let Some(utc) = text.strip_suffix('Z') {
        let (start, _) = period(utc).ok_or_else(invalid)?;
        let at = start.and_utc();
        return Ok(Range {
            start: at,
            end: at,
            closed: true,
        });
    }
    // A trailing offset (`2024-05-01+08:00`) is the value's own time zone.
    if let Some((local, offset)) = text
        .len()
        .checked_sub(6)
        .and_then(|at| Some((text.get(..at)?, offset(text.get(at..)?)?)))
    {
        return bounds(local, &offset).ok_or_else(invalid);
    }
    bounds(text, zone).ok_or_else(invalid)
}

/// `+HH:MM` or `-HH:MM`.
fn offset(text: &str) -> Option<FixedOffset> {
    let sign = match text.get(..1)? {
        "+" => 1,
        "-" => -1,
        _ => return None,
    };
    let (hours, minutes) = text.get(1..)?.split_once(':')?;
    let seconds = (number(hours, 2)? * 60 + number(minutes, 2)?) * 60;
    FixedOffset::east_opt(sign * i32::try_from(seconds).ok()?)
}

/// The period `text` names, as instants in `zone`.
fn bounds(text: &str, zone: &impl TimeZone) -> Option<Range> {
    let (start, step) = period(text)?;
    let end = match step {
        Step::Months(n) => start.checked_add_months(Months::new(n)),
        Step::Days(n) => start.checked_add_days(Days::new(n)),
        Step::Nanos(n) => start.checked_add_signed(TimeDelta::nanoseconds(n)),
    }?;
    Some(Range {
        start: instant(zone, start)?,
        end: instant(zone, end)?,
        closed: false,
    })
}

/// How long a period lasts.
#[derive(Debug, Clone, Copy)]
enum Step {
    Months(u32),
    Days(u64),
    Nanos(i64),
}

/// A partial date's first wall-clock moment and length.
fn period(text: &str) -> Option<(NaiveDateTime, Step)> {
    let midnight = |date: NaiveDate| date.and_time(NaiveTime::MIN);
    if let Some((year, quarter)) = text.split_once('Q') {
        let quarter = number(quarter, 1).filter(|q| (1..=4).contains(q))?;
        let date = NaiveDate::from_ymd_opt(year_of(year)?, quarter * 3 - 2, 1)?;
        return Some((midnight(date), Step::Months(3)));
    }
    if let Some((year, week)) = text.split_once('W') {
        let date = NaiveDate::from_isoywd_opt(year_of(year)?, number(week, 2)?, Weekday::Mon)?;
        return Some((midnight(date), Step::Days(7)));
    }
    let (date, time) = match text.split_once(['T', ' ']) {
        Some((date, time)) => (date, Some(time)),
        None => (text, None),
    };
    let parts: Vec<&str> = date.split('-').collect();
    let (year, month, day) = match parts.as_slice() {
        [year] => (year_of(year)?, None, None),
        [year, month] => (year_of(year)?, Some(number(month, 2)?), None),
        [year, month, day] => (
            year_of(year)?,
            Some(number(month, 2)?),
            Some(number(day, 2)?),
        ),
        _ => return None,
    };
    let date = NaiveDate::from_ymd_opt(year, month.unwrap_or(1), day.unwrap_or(1))?;
    let Some(time) = time else {
        let step = match (month, day) {
            (None, _) => Step::Months(12),
            (Some(_), None) => Step::Months(1),
            (Some(_), Some(_)) => Step::Days(1),
        };
        return Some((midnight(date), step));
    };
    // A time needs the whole date before it.
    day?;
    let (clock, fraction) = match time.split_once('.') {
        Some((clock, fraction)) => (clock, Some(fraction)),
        None => (time, None),
    };
    let fields = clock
        .split(':')
        .map(|f| number(f, 2))
        .collect::<Option<Vec<_>>>()?;
    let (hour, minute, second, step) = match (fields.as_slice(), fraction) {
        ([h], None) => (*h, 0, 0, 3_600_000_000_000),
        ([h, m], None) => (*h, *m, 0, 60_000_000_000),
        ([h, m, s], None) => (*h, *m, *s, 1_000_000_000),
        ([h, m, s], Some(_)) => (*h, *m, *s, 0),
        _ => return None,
    };
    // `.25` lasts a hundredth of a second; its start is 250 ms in.
    let (nanos, step) = match fraction {
        Some(digits) if (1..=9).contains(&digits.len()) => {
            let places = u32::try_from(digits.len()).ok()?;
            let scale = 10u32.pow(9 - places);
            (number(digits, digits.len())? * scale, i64::from(scale))
        }
        Some(_) => return None,
        None => (0, step),
    };
    let time = NaiveTime::from_hms_nano_opt(hour, minute, second, nanos)?;
    Some((date.and_time(time), Step::Nanos(step)))
}

fn year_of(text: &str) -> Option<i32> {
    i32::try_from(number(text, 4)?).ok()
}

/// Exactly `width` ASCII digits.
fn number(text: &str, width: usize) -> Option<u32> {
    if text.len() != width || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The instant a wall-clock time names in `zone`. Of a time the clocks
/// pass twice, the first; of one they skip, the moment they jump (the wall
/// time read with the offset in force before the jump), which is where a
/// period starting in the gap really starts.
fn instant(zone: &impl TimeZone, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    match zone.from_local_datetime(&local) {
        LocalResult::Single(at) | LocalResult::Ambiguous(at, _) => Some(at.with_timezone(&Utc)),
        LocalResult::None => {
            let before = zone
                .offset_from_utc_datetime(&local.checked_sub_days(Days::new(1))?)
                .fix();
            Some(local.checked_sub_offset(before)?.and_utc())
        }
    }
}

/// `column <cmp> at`, against a literal of the column's type. Where `at`
/// falls between two values of the column (a date column and an instant
/// after midnight, a seconds column and a fraction of one), the literal is
/// the value on the right side of it, so the comparison stays exact: a date
/// stands for the instant its day begins in `zone`, and a plain timestamp
/// for its wall-clock time in `zone`.
pub(super) fn compare(
    column: Expr,
    cmp: Cmp,
    at: DateTime<Utc>,
    data_type: &DataType,
    zone: &impl TimeZone,
) -> Result<Expr, String> {
    let (below, exact) = place(at, data_type, zone).ok_or_else(|| {
        format!(
            "{} cannot be compared with a {data_type} column",
            at.to_rfc3339()
        )
    })?;
    let above = if exact {
        Some(below)
    } else {
        below.checked_add(1)
    };
    let literal = |value: Option<i64>| {
        value
            .and_then(|v| scalar(v, data_type))
            .map(lit)
            .ok_or_else(|| format!("{} is out of range for {data_type}", at.to_rfc3339()))
    };
    Ok(match cmp {
        Cmp::Lt => column.lt(literal(above)?),
        Cmp::Ge => column.gt_eq(literal(above)?),
        Cmp::Gt => column.gt(literal(Some(below))?),
        Cmp::Le => column.lt_eq(literal(Some(below))?),
    })
}

/// The column's value at or before `at` (in the column's own units), and
/// whether it is exactly `at`.
fn place(at: DateTime<Utc>, data_type: &DataType, zone: &impl TimeZone) -> Option<(i64, bool)> {
    match data_type {
        DataType::Date32 | DataType::Date64 => {
            let day = at.with_timezone(zone).date_naive();
            let days = day
                .signed_duration_since(DateTime::UNIX_EPOCH.date_naive())
                .num_days();
            let exact = instant(zone, day.and_time(NaiveTime::MIN)) == Some(at);
            let units = if *data_type == DataType::Date64 {
                days.checked_mul(86_400_000)?
            } else {
                days
            };
            Some((units, exact))
        }
        DataType::Timestamp(unit, tz) => {
            let wall = if tz.is_some() {
                at.naive_utc()
            } else {
                at.with_timezone(zone).naive_local()
            };
            let (per_second, nanos_per_unit) = match unit {
                TimeUnit::Second => (1, 1_000_000_000),
                TimeUnit::Millisecond => (1_000, 1_000_000),
                TimeUnit::Microsecond => (1_000_000, 1_000),
                TimeUnit::Nanosecond => (1_000_000_000, 1),
            };
            let utc = wall.and_utc();
            let nanos = i64::from(utc.timestamp_subsec_nanos());
            let units = utc
                .timestamp()
                .checked_mul(per_second)?
                .checked_add(nanos / nanos_per_unit)?;
            Some((units, nanos % nanos_per_unit == 0))
        }
        _ => None,
    }
}

fn scalar(value: i64, data_type: &DataType) -> Option<ScalarValue> {
    Some(match data_type {
        DataType::Date32 => ScalarValue::Date32(Some(i32::try_from(value).ok()?)),
        DataType::Date64 => ScalarValue::Date64(Some(value)),
        DataType::Timestamp(TimeUnit::Second, tz) => {
            ScalarValue::TimestampSecond(Some(value), tz.clone())
        }
        DataType::Timestamp(TimeUnit::Millisecond, tz) => {
            ScalarValue::TimestampMillisecond(Some(value), tz.clone())
        }
        DataType::Timestamp(TimeUnit::Microsecond, tz) => {
            ScalarValue::TimestampMicrosecond(Some(value), tz.clone())
        }
        DataType::Timestamp(TimeUnit::Nanosecond, tz) => {
            ScalarValue::TimestampNanosecond(Some(value), tz.clone())
        }
        _ => return None,
    })
}
