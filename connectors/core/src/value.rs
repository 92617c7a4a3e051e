//! `Value`: one SQL value on its way to a database (a bound parameter, a value
//! to write) or on its way from a driver into an Arrow column.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use serde::{Deserialize, Serialize};

/// A SQL value. Drivers convert to their own types at bind time, guided by the
/// parameter type the database reports, so a `Text("2024-05-01")` bound to a
/// `date` parameter arrives as a date.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    /// An exact decimal in plain notation (`-12.50`), never rounded through a float.
    Decimal(String),
    Text(String),
    Bytes(Vec<u8>),
    Date(NaiveDate),
    /// A time of day with microseconds.
    Time(NaiveTime),
    /// A timestamp without time zone.
    Timestamp(NaiveDateTime),
    /// An instant, normalized to UTC.
    TimestampTz(DateTime<Utc>),
    Interval(Interval),
    Json(serde_json::Value),
    Uuid(String),
    List(Vec<Value>),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Self::Null)
    }

    /// The value as text, the way it would be written in SQL without quotes
    /// (used for the text fallback of unmapped types and for messages).
    pub fn to_text(&self) -> Option<String> {
        Some(match self {
            Self::Null => return None,
            Self::Bool(b) => b.to_string(),
            Self::Int(i) => i.to_string(),
            Self::UInt(u) => u.to_string(),
            Self::Float(f) => f.to_string(),
            Self::Decimal(s) | Self::Text(s) | Self::Uuid(s) => s.clone(),
            Self::Bytes(b) => format!("\\x{}", hex::encode(b)),
            Self::Date(d) => d.to_string(),
            Self::Time(t) => t.format("%H:%M:%S%.f").to_string(),
            Self::Timestamp(t) => t.format("%Y-%m-%d %H:%M:%S%.f").to_string(),
            Self::TimestampTz(t) => t.format("%Y-%m-%d %H:%M:%S%.f+00").to_string(),
            Self::Interval(i) => i.to_string(),
            Self::Json(j) => j.to_string(),
            Self::List(items) => {
                let inner: Vec<String> = items
                    .iter()
                    .map(|v| v.to_text().unwrap_or_else(|| "NULL".into()))
                    .collect();
                format!("{{{}}}", inner.join(","))
            }
        })
    }

    /// A short name of the variant, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Bool(_) => "boolean",
            Self::Int(_) => "integer",
            Self::UInt(_) => "unsigned integer",
            Self::Float(_) => "float",
            Self::Decimal(_) => "decimal",
            Self::Text(_) => "text",
            Self::Bytes(_) => "bytes",
            Self::Date(_) => "date",
            Self::Time(_) => "time",
            Self::Timestamp(_) => "timestamp",
            Self::TimestampTz(_) => "timestamptz",
            Self::Interval(_) => "interval",
            Self::Json(_) => "json",
            Self::Uuid(_) => "uuid",
            Self::List(_) => "list",
        }
    }
}

/// A calendar interval, as PostgreSQL and Arrow's `MonthDayNano` keep it:
/// months and days are not converted to a fixed length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Interval {
    pub months: i32,
    pub days: i32,
    pub nanoseconds: i64,
}

impl std::fmt::Display for Interval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let micros = self.nanoseconds / 1_000;
        let sign = if micros < 0 { "-" } else { "" };
        let micros = micros.unsigned_abs();
        let (h, m, s, us) = (
            micros / 3_600_000_000,
            micros / 60_000_000 % 60,
            micros / 1_000_000 % 60,
            micros % 1_000_000,
        );
        write!(
            f,
            "{} mons {} days {sign}{h:02}:{m:02}:{s:02}",
            self.months, self.days
        )?;
        if us != 0 {
            write!(f, ".{us:06}")?;
        }
        Ok(())
    }
}
