//! The seam to the `oracle` crate: binds parameters ([`Param`]), reads
//! values by their [`Decode`] kind, maps the driver's column types onto
//! [`NativeType`], and turns driver errors into classified connector errors.

use oracle::sql_type::{FromSql, IntervalDS, IntervalYM, OracleType, Timestamp, ToSql};
use oracle::{Connection, SqlValue, Statement};
use tributary_connector::{ConnectorError, ErrorKind, Result, Value};

use crate::classify::classify;
use crate::types::{Decode, NativeType, OutBind};
use crate::values::{self, Bind, TimestampParts};

/// Strings and byte strings longer than this are bound as LOBs.
const MAX_INLINE_BYTES: usize = 32_767;

/// One bound parameter: an in value or a `RETURNING … INTO` out bind.
#[derive(Debug)]
pub enum Param {
    In(Bind),
    Out(OracleType),
}

impl Param {
    /// The in binds of a statement's values.
    pub fn binds(values: &[Value]) -> Result<Vec<Param>> {
        values
            .iter()
            .map(|v| values::to_bind(v).map(Param::In))
            .collect()
    }
}

fn timestamp(parts: &TimestampParts) -> oracle::Result<Timestamp> {
    Timestamp::new(
        parts.year,
        parts.month,
        parts.day,
        parts.hour,
        parts.minute,
        parts.second,
        parts.nanosecond,
    )
}

impl ToSql for Param {
    fn oratype(&self, _conn: &Connection) -> oracle::Result<OracleType> {
        let bind = match self {
            Self::In(bind) => bind,
            Self::Out(oratype) => return Ok(oratype.clone()),
        };
        Ok(match bind {
            Bind::Null => OracleType::Varchar2(1),
            Bind::Text(s) if s.len() > MAX_INLINE_BYTES => OracleType::CLOB,
            // VARCHAR2, not the driver's default NVARCHAR2: an NVARCHAR2
            // bind compared with a VARCHAR2 column converts the column and
            // keeps its index from being used.
            Bind::Text(s) => {
                OracleType::Varchar2(u32::try_from(s.chars().count().max(1)).unwrap_or(u32::MAX))
            }
            Bind::Int(_) | Bind::Number(_) => OracleType::Number(0, 0),
            Bind::Float(f) if f.is_finite() => OracleType::Number(0, 0),
            Bind::Float(_) => OracleType::BinaryDouble,
            Bind::Bytes(b) if b.len() > MAX_INLINE_BYTES => OracleType::BLOB,
            Bind::Bytes(b) => OracleType::Raw(u32::try_from(b.len().max(1)).unwrap_or(u32::MAX)),
            Bind::Timestamp(_) => OracleType::Timestamp(9),
            Bind::TimestampUtc(_) => OracleType::TimestampTZ(9),
            Bind::IntervalYm { .. } => OracleType::IntervalYM(9),
            Bind::IntervalDs { .. } => OracleType::IntervalDS(9, 9),
        })
    }

    fn to_sql(&self, val: &mut SqlValue) -> oracle::Result<()> {
        let Self::In(bind) = self else {
            return val.set_null();
        };
        match bind {
            Bind::Null => val.set_null(),
            Bind::Text(s) | Bind::Number(s) => val.set(s),
            Bind::Int(i) => val.set(i),
            Bind::Float(f) => val.set(f),
            Bind::Bytes(b) => val.set(b),
            Bind::Timestamp(parts) => val.set(&timestamp(parts)?),
            Bind::TimestampUtc(parts) => val.set(&timestamp(parts)?.and_tz_offset(0)?),
            Bind::IntervalYm { years, months } => val.set(&IntervalYM::new(*years, *months)?),
            Bind::IntervalDs {
                days,
                hours,
                minutes,
                seconds,
                nanos,
            } => val.set(&IntervalDS::new(*days, *hours, *minutes, *seconds, *nanos)?),
        }
    }
}

/// The driver type of an out bind.
pub fn out_type(bind: OutBind) -> OracleType {
    match bind {
        OutBind::Number => OracleType::Number(0, 0),
        OutBind::BinaryFloat => OracleType::BinaryFloat,
        OutBind::BinaryDouble => OracleType::BinaryDouble,
        OutBind::Varchar(n) => OracleType::Varchar2(n),
        OutBind::NVarchar(n) => OracleType::NVarchar2(n),
        OutBind::Clob => OracleType::CLOB,
        OutBind::NClob => OracleType::NCLOB,
        OutBind::Raw(n) => OracleType::Raw(n),
        OutBind::Blob => OracleType::BLOB,
        OutBind::Date => OracleType::Date,
        OutBind::Timestamp => OracleType::Timestamp(9),
        OutBind::TimestampTz => OracleType::TimestampTZ(9),
        OutBind::TimestampLtz => OracleType::TimestampLTZ(9),
        OutBind::IntervalYm => OracleType::IntervalYM(9),
        OutBind::IntervalDs => OracleType::IntervalDS(9, 9),
        OutBind::Boolean => OracleType::Boolean,
        OutBind::Rowid => OracleType::Rowid,
    }
}

/// The mapping's view of a result column's driver type.
pub fn native_of(oratype: &OracleType) -> NativeType {
    match oratype {
        OracleType::Varchar2(_) => NativeType::Varchar2,
        OracleType::NVarchar2(_) => NativeType::NVarchar2,
        OracleType::Char(_) => NativeType::Char,
        OracleType::NChar(_) => NativeType::NChar,
        OracleType::Rowid => NativeType::Rowid,
        OracleType::Raw(_) => NativeType::Raw,
        OracleType::BinaryFloat => NativeType::BinaryFloat,
        OracleType::BinaryDouble => NativeType::BinaryDouble,
        // The driver reports an unconstrained NUMBER (and any computed
        // number) as precision 0, scale -127.
        OracleType::Number(0, -127) => NativeType::Number {
            precision: None,
            scale: None,
        },
        OracleType::Number(0, scale) => NativeType::Number {
            precision: None,
            scale: Some(*scale),
        },
        OracleType::Number(precision, scale) => NativeType::Number {
            precision: Some(*precision),
            scale: Some(*scale),
        },
        OracleType::Int64 | OracleType::UInt64 => NativeType::Number {
            precision: None,
            scale: Some(0),
        },
        OracleType::Float(_) => NativeType::Float,
        OracleType::Date => NativeType::Date,
        OracleType::Timestamp(_) => NativeType::Timestamp,
        OracleType::TimestampTZ(_) => NativeType::TimestampTz,
        OracleType::TimestampLTZ(_) => NativeType::TimestampLtz,
        OracleType::IntervalDS(..) => NativeType::IntervalDs,
        OracleType::IntervalYM(_) => NativeType::IntervalYm,
        OracleType::CLOB => NativeType::Clob,
        OracleType::NCLOB => NativeType::NClob,
        OracleType::BLOB => NativeType::Blob,
        OracleType::BFILE => NativeType::Bfile,
        OracleType::Boolean => NativeType::Boolean,
        OracleType::Long => NativeType::Long,
        OracleType::LongRaw => NativeType::LongRaw,
        OracleType::Json => NativeType::Json,
        other => NativeType::Other(other.to_string()),
    }
}

fn parts(t: &Timestamp) -> TimestampParts {
    TimestampParts {
        year: t.year(),
        month: t.month(),
        day: t.day(),
        hour: t.hour(),
        minute: t.minute(),
        second: t.second(),
        nanosecond: t.nanosecond(),
        offset_minutes: t.tz_hour_offset() * 60 + t.tz_minute_offset(),
    }
}

/// Values of one column to read: a result cell, or the values a
/// `RETURNING … INTO` out bind received (one per affected row).
pub trait Cells {
    fn cells<T: FromSql>(&self) -> oracle::Result<Vec<Option<T>>>;
}

impl Cells for SqlValue<'_> {
    fn cells<T: FromSql>(&self) -> oracle::Result<Vec<Option<T>>> {
        Ok(vec![self.get::<Option<T>>()?])
    }
}

/// The values of out bind `index` (1-based) of an executed statement.
pub struct Returned<'a> {
    pub statement: &'a Statement,
    pub index: usize,
}

impl Cells for Returned<'_> {
    fn cells<T: FromSql>(&self) -> oracle::Result<Vec<Option<T>>> {
        self.statement
            .returned_values::<usize, Option<T>>(self.index)
    }
}

/// Reads cells as core values, by the column's [`Decode`] kind.
pub fn decode<C: Cells>(cells: &C, decode: Decode) -> Result<Vec<Value>> {
    fn each<T>(cells: Vec<Option<T>>, f: impl Fn(T) -> Result<Value>) -> Result<Vec<Value>> {
        cells
            .into_iter()
            .map(|cell| cell.map_or(Ok(Value::Null), &f))
            .collect()
    }
    let read = |e: oracle::Error| ConnectorError::internal(format!("cannot read a value: {e}"));
    match decode {
        Decode::Number => each(cells.cells::<String>().map_err(read)?, |s| {
            Ok(values::number(s))
        }),
        Decode::BinaryFloat => each(cells.cells::<f32>().map_err(read)?, |f| {
            Ok(Value::Float(f64::from(f)))
        }),
        Decode::BinaryDouble => each(cells.cells::<f64>().map_err(read)?, |f| Ok(Value::Float(f))),
        Decode::Text | Decode::Fallback => each(cells.cells::<String>().map_err(read)?, |s| {
            Ok(Value::Text(s))
        }),
        Decode::PaddedText => each(cells.cells::<String>().map_err(read)?, |s| {
            Ok(values::unpadded(s))
        }),
        Decode::Bytes => each(cells.cells::<Vec<u8>>().map_err(read)?, |b| {
            Ok(Value::Bytes(b))
        }),
        Decode::Timestamp => each(cells.cells::<Timestamp>().map_err(read)?, |t| {
            parts(&t).to_timestamp()
        }),
        Decode::TimestampTz => each(cells.cells::<Timestamp>().map_err(read)?, |t| {
            parts(&t).to_instant()
        }),
        Decode::IntervalYm => each(cells.cells::<IntervalYM>().map_err(read)?, |i| {
            values::interval_ym(i.years(), i.months())
        }),
        Decode::IntervalDs => each(cells.cells::<IntervalDS>().map_err(read)?, |i| {
            Ok(values::interval_ds(
                i.days(),
                i.hours(),
                i.minutes(),
                i.seconds(),
                i.nanoseconds(),
            ))
        }),
        Decode::Bool => each(cells.cells::<bool>().map_err(read)?, |b| Ok(Value::Bool(b))),
        // Reads wrap JSON columns in JSON_SERIALIZE (`json_text.rs`), so
        // the driver never hands over a JSON value.
        Decode::Json => Err(json_unsupported()),
    }
}

/// The driver's refusal to fetch a JSON column: it defines no fetch buffer
/// for the type (nor does it show the column metadata first).
pub fn is_json_fetch_failure(err: &oracle::Error) -> bool {
    err.db_error().is_none() && err.to_string().contains("unsupported Oracle type JSON")
}

/// What a JSON value the driver cannot read answers.
pub fn json_unsupported() -> ConnectorError {
    ConnectorError::unsupported(
        "a JSON value cannot be fetched by this build's Oracle driver; select \
         JSON_SERIALIZE(<column> RETURNING CLOB) instead",
    )
}

/// Classifies a driver error; `host` is the `host:port` named when the
/// database cannot be reached.
pub fn error(err: oracle::Error, host: &str) -> ConnectorError {
    let Some(db) = err.db_error() else {
        let message = err.to_string();
        // Left over where no JSON wrapping applies (reads wrap JSON columns).
        if is_json_fetch_failure(&err) {
            return json_unsupported().with_cause(err);
        }
        // Raised by the driver before anything reached the database: a
        // bound value it cannot convert is the caller's input.
        let kind = match err.kind() {
            oracle::ErrorKind::ParseError
            | oracle::ErrorKind::OutOfRange
            | oracle::ErrorKind::InvalidTypeConversion
            | oracle::ErrorKind::InvalidBindIndex
            | oracle::ErrorKind::InvalidBindName => ErrorKind::InvalidInput,
            _ => ErrorKind::Internal,
        };
        return ConnectorError::new(kind, message).with_cause(err);
    };
    let classified = classify(db.code(), db.message(), host);
    classified.with_cause(err)
}
