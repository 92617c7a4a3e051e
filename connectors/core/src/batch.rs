//! Builds Arrow record batches from driver values, converting each `Value` to
//! the column's Arrow type without losing precision (or failing loudly).

use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Decimal256Builder,
    FixedSizeBinaryBuilder, Float32Builder, Float64Builder, Int8Builder, Int16Builder,
    Int32Builder, Int64Builder, IntervalMonthDayNanoBuilder, LargeStringBuilder, StringBuilder,
    Time64MicrosecondBuilder, TimestampMicrosecondBuilder, UInt8Builder, UInt16Builder,
    UInt32Builder, UInt64Builder,
};
use arrow_array::types::{Decimal128Type, Decimal256Type, IntervalMonthDayNano};
use arrow_array::{ArrayRef, ListArray, NullArray, RecordBatch, RecordBatchOptions};
use arrow_buffer::{NullBufferBuilder, OffsetBuffer};
use arrow_cast::parse::parse_decimal;
use arrow_schema::{DataType, FieldRef, SchemaRef, TimeUnit};
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc};
use std::borrow::Cow;

use crate::error::{ConnectorError, Result};
use crate::value::Value;

/// Rows per batch the connectors aim for when streaming.
pub const BATCH_ROWS: usize = 8_192;

/// Rows a streaming read's builder makes room for up front: most reads (by
/// key, a page) answer a few rows, and reserving [`BATCH_ROWS`] for each
/// cost more than their decoding. Builders grow as rows come.
pub const FIRST_BATCH_CAPACITY: usize = 64;

/// Collects rows of values into a `RecordBatch` of a fixed schema.
pub struct BatchBuilder {
    schema: SchemaRef,
    columns: Vec<ColumnBuilder>,
    rows: usize,
}

impl BatchBuilder {
    /// A builder for `schema`. Types without a specific builder are built as
    /// text (`Utf8`) — the schema itself says what each column is.
    pub fn new(schema: SchemaRef, capacity: usize) -> Result<Self> {
        let columns = schema
            .fields()
            .iter()
            .map(|f| ColumnBuilder::new(f.data_type(), capacity))
            .collect::<Result<_>>()?;
        Ok(Self {
            schema,
            columns,
            rows: 0,
        })
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Rows appended since the last `finish`.
    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Appends one row; `values` has one value per column.
    pub fn push_row(&mut self, values: impl IntoIterator<Item = Value>) -> Result<()> {
        let mut count = 0;
        for (i, value) in values.into_iter().enumerate() {
            let builder = self.columns.get_mut(i).ok_or_else(|| {
                ConnectorError::internal(format!(
                    "row has more values than the {} columns",
                    self.schema.fields().len()
                ))
            })?;
            builder
                .append(value)
                .map_err(|e| named(self.schema.field(i).name(), &e))?;
            count += 1;
        }
        if count != self.columns.len() {
            return Err(ConnectorError::internal(format!(
                "row has {count} values for {} columns",
                self.columns.len()
            )));
        }
        self.rows += 1;
        Ok(())
    }

    /// Appends one row column by column: `cell(i, sink)` gives column `i`
    /// its value through `sink`, straight from the driver's buffers where
    /// the sink takes them (no [`Value`] per cell, no row vector).
    pub fn push_row_with(
        &mut self,
        mut cell: impl FnMut(usize, CellSink<'_>) -> Result<()>,
    ) -> Result<()> {
        for (i, (column, field)) in self
            .columns
            .iter_mut()
            .zip(self.schema.fields())
            .enumerate()
        {
            cell(
                i,
                CellSink {
                    column,
                    name: field.name(),
                },
            )?;
        }
        self.rows += 1;
        Ok(())
    }

    /// Takes the rows so far as a batch and starts over.
    pub fn finish(&mut self) -> Result<RecordBatch> {
        let arrays: Vec<ArrayRef> = self
            .columns
            .iter_mut()
            .map(ColumnBuilder::finish)
            .collect::<Result<_>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(self.rows));
        self.rows = 0;
        RecordBatch::try_new_with_options(self.schema.clone(), arrays, &options)
            .map_err(|e| ConnectorError::internal(format!("cannot build a batch: {e}")))
    }
}

/// Where [`BatchBuilder::push_row_with`] takes one column's value: text
/// and exact decimals borrowed from the driver (appended without a copy of
/// their own to a column of their kind), anything else as a [`Value`]
/// converted as [`BatchBuilder::push_row`] converts it.
pub struct CellSink<'a> {
    column: &'a mut ColumnBuilder,
    name: &'a str,
}

impl CellSink<'_> {
    pub fn null(self) {
        self.column.append_null();
    }

    pub fn value(self, value: Value) -> Result<()> {
        let name = self.name;
        self.column.append(value).map_err(|e| named(name, &e))
    }

    /// Text, as [`Value::Text`] means it.
    pub fn text(self, text: &str) -> Result<()> {
        match self.column {
            ColumnBuilder::Utf8(b) => b.append_value(text),
            ColumnBuilder::LargeUtf8(b) => b.append_value(text),
            _ => return self.value(Value::Text(text.to_string())),
        }
        Ok(())
    }

    /// A decimal number's exact text, as [`Value::Decimal`] means it.
    pub fn decimal(self, text: &str) -> Result<()> {
        let name = self.name;
        match self.column {
            ColumnBuilder::Decimal128(b, p, s) => {
                b.append_value(decimal128(text, *p, *s).map_err(|e| named(name, &e))?);
                Ok(())
            }
            _ => self.value(Value::Decimal(text.to_string())),
        }
    }
}

/// `error` prefixed with the column it happened in.
fn named(column: &str, error: &ConnectorError) -> ConnectorError {
    ConnectorError::new(
        error.kind(),
        format!("column `{column}`: {}", error.message()),
    )
}

/// The unscaled value of a decimal's text in a `Decimal128(precision, scale)`.
fn decimal128(text: &str, precision: u8, scale: i8) -> Result<i128> {
    parse_decimal::<Decimal128Type>(&rounded(text, scale), precision, scale).map_err(|e| {
        ConnectorError::internal(format!(
            "decimal {text} does not fit ({precision},{scale}): {e}"
        ))
    })
}

/// `text` with its fraction rounded to `scale` digits, half away from
/// zero as PostgreSQL rounds a numeric (arrow's parser cuts the digits
/// past the scale: an `avg` PostgreSQL answered as 141377.946352928331
/// would read 141377.946352, not 141377.946353). Text in e-notation or
/// without digits past the scale is left as it is.
fn rounded(text: &str, scale: i8) -> Cow<'_, str> {
    let (Ok(scale), Some(point)) = (usize::try_from(scale), text.find('.')) else {
        return Cow::Borrowed(text);
    };
    let fraction = &text[point + 1..];
    if fraction.len() <= scale || text.contains(['e', 'E']) {
        return Cow::Borrowed(text);
    }
    let kept = if scale == 0 {
        &text[..point]
    } else {
        &text[..=point + scale]
    };
    if fraction.as_bytes()[scale] < b'5' {
        return Cow::Borrowed(kept);
    }
    // One more in the last place kept, carried leftwards.
    let mut digits = kept.as_bytes().to_vec();
    let mut carry = true;
    for digit in digits.iter_mut().rev() {
        match *digit {
            b'.' => {}
            b'9' => *digit = b'0',
            b'0'..=b'8' => {
                *digit += 1;
                carry = false;
                break;
            }
            // The sign.
            _ => break,
        }
    }
    if carry {
        let at = usize::from(matches!(digits.first(), Some(b'-' | b'+')));
        digits.insert(at, b'1');
    }
    Cow::Owned(String::from_utf8_lossy(&digits).into_owned())
}

/// One column's builder.
enum ColumnBuilder {
    Null(usize),
    Bool(BooleanBuilder),
    Int8(Int8Builder),
    Int16(Int16Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    UInt8(UInt8Builder),
    UInt16(UInt16Builder),
    UInt32(UInt32Builder),
    UInt64(UInt64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Decimal128(Decimal128Builder, u8, i8),
    Decimal256(Decimal256Builder, u8, i8),
    Utf8(StringBuilder),
    LargeUtf8(LargeStringBuilder),
    Binary(BinaryBuilder),
    FixedBinary(FixedSizeBinaryBuilder, i32),
    Date32(Date32Builder),
    Time64(Time64MicrosecondBuilder),
    Timestamp(TimestampMicrosecondBuilder, bool),
    Interval(IntervalMonthDayNanoBuilder),
    List(Box<ListColumn>),
}

struct ListColumn {
    field: FieldRef,
    child: ColumnBuilder,
    offsets: Vec<i32>,
    nulls: NullBufferBuilder,
}

fn convert_err(value: &Value, target: &str) -> ConnectorError {
    ConnectorError::internal(format!(
        "cannot read a {} value as {target}",
        value.type_name()
    ))
}

impl ColumnBuilder {
    fn new(data_type: &DataType, capacity: usize) -> Result<Self> {
        Ok(match data_type {
            DataType::Null => Self::Null(0),
            DataType::Boolean => Self::Bool(BooleanBuilder::with_capacity(capacity)),
            DataType::Int8 => Self::Int8(Int8Builder::with_capacity(capacity)),
            DataType::Int16 => Self::Int16(Int16Builder::with_capacity(capacity)),
            DataType::Int32 => Self::Int32(Int32Builder::with_capacity(capacity)),
            DataType::Int64 => Self::Int64(Int64Builder::with_capacity(capacity)),
            DataType::UInt8 => Self::UInt8(UInt8Builder::with_capacity(capacity)),
            DataType::UInt16 => Self::UInt16(UInt16Builder::with_capacity(capacity)),
            DataType::UInt32 => Self::UInt32(UInt32Builder::with_capacity(capacity)),
            DataType::UInt64 => Self::UInt64(UInt64Builder::with_capacity(capacity)),
            DataType::Float32 => Self::Float32(Float32Builder::with_capacity(capacity)),
            DataType::Float64 => Self::Float64(Float64Builder::with_capacity(capacity)),
            DataType::Decimal128(p, s) => Self::Decimal128(
                Decimal128Builder::with_capacity(capacity)
                    .with_precision_and_scale(*p, *s)
                    .map_err(|e| ConnectorError::internal(e.to_string()))?,
                *p,
                *s,
            ),
            DataType::Decimal256(p, s) => Self::Decimal256(
                Decimal256Builder::with_capacity(capacity)
                    .with_precision_and_scale(*p, *s)
                    .map_err(|e| ConnectorError::internal(e.to_string()))?,
                *p,
                *s,
            ),
            DataType::LargeUtf8 => Self::LargeUtf8(LargeStringBuilder::new()),
            DataType::Binary | DataType::LargeBinary => Self::Binary(BinaryBuilder::new()),
            DataType::FixedSizeBinary(n) => Self::FixedBinary(FixedSizeBinaryBuilder::new(*n), *n),
            DataType::Date32 => Self::Date32(Date32Builder::with_capacity(capacity)),
            DataType::Time64(TimeUnit::Microsecond) => {
                Self::Time64(Time64MicrosecondBuilder::with_capacity(capacity))
            }
            DataType::Timestamp(TimeUnit::Microsecond, tz) => Self::Timestamp(
                TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone_opt(tz.clone()),
                tz.is_some(),
            ),
            DataType::Interval(arrow_schema::IntervalUnit::MonthDayNano) => {
                Self::Interval(IntervalMonthDayNanoBuilder::with_capacity(capacity))
            }
            DataType::List(field) => Self::List(Box::new(ListColumn {
                field: field.clone(),
                child: Self::new(field.data_type(), capacity)?,
                offsets: vec![0],
                nulls: NullBufferBuilder::new(capacity),
            })),
            DataType::Utf8 => Self::Utf8(StringBuilder::new()),
            other => {
                return Err(ConnectorError::internal(format!(
                    "no row builder for Arrow type {other}; connectors map every native type to a supported one"
                )));
            }
        })
    }

    #[allow(clippy::too_many_lines)] // one arm per Arrow type reads best as one match
    fn append(&mut self, value: Value) -> Result<()> {
        if value.is_null() {
            self.append_null();
            return Ok(());
        }
        match self {
            Self::Null(n) => *n += 1,
            Self::Bool(b) => b.append_value(to_bool(&value)?),
            Self::Int8(b) => b.append_value(to_int(&value, "int8")?),
            Self::Int16(b) => b.append_value(to_int(&value, "int16")?),
            Self::Int32(b) => b.append_value(to_int(&value, "int32")?),
            Self::Int64(b) => b.append_value(to_int(&value, "int64")?),
            Self::UInt8(b) => b.append_value(to_int(&value, "uint8")?),
            Self::UInt16(b) => b.append_value(to_int(&value, "uint16")?),
            Self::UInt32(b) => b.append_value(to_int(&value, "uint32")?),
            Self::UInt64(b) => b.append_value(to_int(&value, "uint64")?),
            #[allow(clippy::cast_possible_truncation)] // a float4 column holds f32 values
            Self::Float32(b) => b.append_value(to_f64(&value)? as f32),
            Self::Float64(b) => b.append_value(to_f64(&value)?),
            Self::Decimal128(b, p, s) => {
                b.append_value(decimal128(&decimal_text(&value)?, *p, *s)?)
            }
            Self::Decimal256(b, p, s) => {
                let text = decimal_text(&value)?;
                let v =
                    parse_decimal::<Decimal256Type>(&rounded(&text, *s), *p, *s).map_err(|e| {
                        ConnectorError::internal(format!(
                            "decimal {text} does not fit ({p},{s}): {e}"
                        ))
                    })?;
                b.append_value(v);
            }
            Self::Utf8(b) => b.append_value(to_text(value)),
            Self::LargeUtf8(b) => b.append_value(to_text(value)),
            Self::Binary(b) => match value {
                Value::Bytes(bytes) => b.append_value(bytes),
                other => b.append_value(to_text(other).as_bytes()),
            },
            Self::FixedBinary(b, n) => {
                let bytes = match value {
                    Value::Bytes(bytes) => bytes,
                    Value::Uuid(text) | Value::Text(text) => parse_uuid(&text)?,
                    other => return Err(convert_err(&other, "fixed-size binary")),
                };
                if i32::try_from(bytes.len()).ok() != Some(*n) {
                    return Err(ConnectorError::internal(format!(
                        "expected {n} bytes, got {}",
                        bytes.len()
                    )));
                }
                b.append_value(bytes)
                    .map_err(|e| ConnectorError::internal(e.to_string()))?;
            }
            Self::Date32(b) => b.append_value(to_date32(&value)?),
            Self::Time64(b) => b.append_value(to_time_micros(&value)?),
            Self::Timestamp(b, with_tz) => b.append_value(to_timestamp_micros(&value, *with_tz)?),
            Self::Interval(b) => match value {
                Value::Interval(i) => {
                    b.append_value(IntervalMonthDayNano::new(i.months, i.days, i.nanoseconds))
                }
                other => return Err(convert_err(&other, "interval")),
            },
            Self::List(list) => match value {
                Value::List(items) => {
                    for item in items {
                        list.child.append(item)?;
                    }
                    let len = i32::try_from(list.child.len())
                        .map_err(|_| ConnectorError::internal("list column too large"))?;
                    list.offsets.push(len);
                    list.nulls.append_non_null();
                }
                other => return Err(convert_err(&other, "list")),
            },
        }
        Ok(())
    }

    fn append_null(&mut self) {
        match self {
            Self::Null(n) => *n += 1,
            Self::Bool(b) => b.append_null(),
            Self::Int8(b) => b.append_null(),
            Self::Int16(b) => b.append_null(),
            Self::Int32(b) => b.append_null(),
            Self::Int64(b) => b.append_null(),
            Self::UInt8(b) => b.append_null(),
            Self::UInt16(b) => b.append_null(),
            Self::UInt32(b) => b.append_null(),
            Self::UInt64(b) => b.append_null(),
            Self::Float32(b) => b.append_null(),
            Self::Float64(b) => b.append_null(),
            Self::Decimal128(b, ..) => b.append_null(),
            Self::Decimal256(b, ..) => b.append_null(),
            Self::Utf8(b) => b.append_null(),
            Self::LargeUtf8(b) => b.append_null(),
            Self::Binary(b) => b.append_null(),
            Self::FixedBinary(b, _) => b.append_null(),
            Self::Date32(b) => b.append_null(),
            Self::Time64(b) => b.append_null(),
            Self::Timestamp(b, _) => b.append_null(),
            Self::Interval(b) => b.append_null(),
            Self::List(list) => {
                let last = list.offsets.last().copied().unwrap_or(0);
                list.offsets.push(last);
                list.nulls.append_null();
            }
        }
    }

    fn len(&self) -> usize {
        use arrow_array::builder::ArrayBuilder;
        match self {
            Self::Null(n) => *n,
            Self::Bool(b) => b.len(),
            Self::Int8(b) => b.len(),
            Self::Int16(b) => b.len(),
            Self::Int32(b) => b.len(),
            Self::Int64(b) => b.len(),
            Self::UInt8(b) => b.len(),
            Self::UInt16(b) => b.len(),
            Self::UInt32(b) => b.len(),
            Self::UInt64(b) => b.len(),
            Self::Float32(b) => b.len(),
            Self::Float64(b) => b.len(),
            Self::Decimal128(b, ..) => b.len(),
            Self::Decimal256(b, ..) => b.len(),
            Self::Utf8(b) => b.len(),
            Self::LargeUtf8(b) => b.len(),
            Self::Binary(b) => b.len(),
            Self::FixedBinary(b, _) => b.len(),
            Self::Date32(b) => b.len(),
            Self::Time64(b) => b.len(),
            Self::Timestamp(b, _) => b.len(),
            Self::Interval(b) => b.len(),
            Self::List(list) => list.offsets.len() - 1,
        }
    }

    fn finish(&mut self) -> Result<ArrayRef> {
        Ok(match self {
            Self::Null(n) => {
                let array = Arc::new(NullArray::new(*n));
                *n = 0;
                array
            }
            Self::Bool(b) => Arc::new(b.finish()),
            Self::Int8(b) => Arc::new(b.finish()),
            Self::Int16(b) => Arc::new(b.finish()),
            Self::Int32(b) => Arc::new(b.finish()),
            Self::Int64(b) => Arc::new(b.finish()),
            Self::UInt8(b) => Arc::new(b.finish()),
            Self::UInt16(b) => Arc::new(b.finish()),
            Self::UInt32(b) => Arc::new(b.finish()),
            Self::UInt64(b) => Arc::new(b.finish()),
            Self::Float32(b) => Arc::new(b.finish()),
            Self::Float64(b) => Arc::new(b.finish()),
            Self::Decimal128(b, ..) => Arc::new(b.finish()),
            Self::Decimal256(b, ..) => Arc::new(b.finish()),
            Self::Utf8(b) => Arc::new(b.finish()),
            Self::LargeUtf8(b) => Arc::new(b.finish()),
            Self::Binary(b) => Arc::new(b.finish()),
            Self::FixedBinary(b, _) => Arc::new(b.finish()),
            Self::Date32(b) => Arc::new(b.finish()),
            Self::Time64(b) => Arc::new(b.finish()),
            Self::Timestamp(b, _) => Arc::new(b.finish()),
            Self::Interval(b) => Arc::new(b.finish()),
            Self::List(list) => {
                let child = list.child.finish()?;
                let offsets =
                    OffsetBuffer::new(std::mem::replace(&mut list.offsets, vec![0]).into());
                let nulls = list.nulls.finish();
                Arc::new(
                    ListArray::try_new(list.field.clone(), offsets, child, nulls).map_err(|e| {
                        ConnectorError::internal(format!("cannot build a list: {e}"))
                    })?,
                )
            }
        })
    }
}

fn to_bool(value: &Value) -> Result<bool> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::Int(i) => Ok(*i != 0),
        Value::UInt(u) => Ok(*u != 0),
        Value::Text(t) | Value::Decimal(t) => match t.trim().to_ascii_lowercase().as_str() {
            "t" | "true" | "1" | "yes" | "on" => Ok(true),
            "f" | "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(convert_err(value, "boolean")),
        },
        _ => Err(convert_err(value, "boolean")),
    }
}

fn to_int<T>(value: &Value, target: &str) -> Result<T>
where
    T: TryFrom<i64> + TryFrom<u64> + std::str::FromStr,
{
    let out = match value {
        Value::Int(i) => T::try_from(*i).ok(),
        Value::UInt(u) => T::try_from(*u).ok(),
        Value::Bool(b) => T::try_from(i64::from(*b)).ok(),
        Value::Text(t) | Value::Decimal(t) => t.trim().parse::<T>().ok(),
        _ => None,
    };
    out.ok_or_else(|| ConnectorError::internal(format!("{value:?} is out of range for {target}")))
}

fn to_f64(value: &Value) -> Result<f64> {
    #[allow(clippy::cast_precision_loss)] // the target column is a float
    match value {
        Value::Float(f) => Ok(*f),
        Value::Int(i) => Ok(*i as f64),
        Value::UInt(u) => Ok(*u as f64),
        Value::Text(t) | Value::Decimal(t) => match t.trim() {
            "NaN" => Ok(f64::NAN),
            "Infinity" | "inf" => Ok(f64::INFINITY),
            "-Infinity" | "-inf" => Ok(f64::NEG_INFINITY),
            s => s.parse().map_err(|_| convert_err(value, "float")),
        },
        _ => Err(convert_err(value, "float")),
    }
}

fn decimal_text(value: &Value) -> Result<String> {
    match value {
        Value::Decimal(t) | Value::Text(t) => {
            if t.eq_ignore_ascii_case("nan") || t.to_ascii_lowercase().contains("inf") {
                return Err(ConnectorError::internal(format!(
                    "{t} cannot be stored in a decimal column"
                )));
            }
            Ok(t.trim().to_string())
        }
        Value::Int(i) => Ok(i.to_string()),
        Value::UInt(u) => Ok(u.to_string()),
        _ => Err(convert_err(value, "decimal")),
    }
}

/// Text for a `Utf8` column: JSON compact, bytes as UTF-8 where they are.
fn to_text(value: Value) -> String {
    match value {
        Value::Text(t) | Value::Decimal(t) | Value::Uuid(t) => t,
        Value::Json(j) => j.to_string(),
        Value::Bytes(b) => String::from_utf8(b)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        other => other.to_text().unwrap_or_default(),
    }
}

fn parse_uuid(text: &str) -> Result<Vec<u8>> {
    let hex_digits: String = text.chars().filter(|c| *c != '-').collect();
    hex::decode(&hex_digits)
        .map_err(|_| ConnectorError::invalid_input(format!("`{text}` is not a UUID")))
}

const UNIX_EPOCH_DAY: NaiveDate = match NaiveDate::from_ymd_opt(1970, 1, 1) {
    Some(d) => d,
    None => NaiveDate::MIN,
};

fn to_date32(value: &Value) -> Result<i32> {
    let date = match value {
        Value::Date(d) => *d,
        Value::Timestamp(t) => t.date(),
        Value::Text(t) => NaiveDate::parse_from_str(t.trim(), "%Y-%m-%d")
            .map_err(|_| convert_err(value, "date"))?,
        _ => return Err(convert_err(value, "date")),
    };
    i32::try_from(date.signed_duration_since(UNIX_EPOCH_DAY).num_days())
        .map_err(|_| convert_err(value, "date"))
}

fn to_time_micros(value: &Value) -> Result<i64> {
    let time = match value {
        Value::Time(t) => *t,
        Value::Text(t) => NaiveTime::parse_from_str(t.trim(), "%H:%M:%S%.f")
            .map_err(|_| convert_err(value, "time"))?,
        _ => return Err(convert_err(value, "time")),
    };
    Ok(i64::from(time.num_seconds_from_midnight()) * 1_000_000
        + i64::from(time.nanosecond() / 1_000))
}

fn to_timestamp_micros(value: &Value, with_tz: bool) -> Result<i64> {
    let naive: NaiveDateTime = match value {
        Value::Timestamp(t) => *t,
        Value::TimestampTz(t) => t.naive_utc(),
        Value::Date(d) => d.and_hms_opt(0, 0, 0).unwrap_or_default(),
        Value::Text(t) => {
            let t = t.trim();
            if with_tz {
                DateTime::parse_from_rfc3339(t)
                    .map(|d| d.with_timezone(&Utc).naive_utc())
                    .or_else(|_| NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f"))
                    .map_err(|_| convert_err(value, "timestamp"))?
            } else {
                NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f")
                    .or_else(|_| NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f"))
                    .map_err(|_| convert_err(value, "timestamp"))?
            }
        }
        _ => return Err(convert_err(value, "timestamp")),
    };
    Ok(naive.and_utc().timestamp_micros())
}

#[cfg(test)]
mod tests {

    #[test]
    fn decimals_past_their_scale_round_half_away_from_zero() {
        for (text, scale, expected) in [
            ("141377.946352928331", 6, "141377.946353"),
            ("141729.938533285769", 6, "141729.938533"),
            ("12.344", 2, "12.34"),
            ("12.345", 2, "12.35"),
            ("-12.345", 2, "-12.35"),
            ("9.96", 1, "10.0"),
            ("-99.5", 0, "-100"),
            ("0.9999995", 6, "1.000000"),
            ("12.5", 2, "12.5"),
            ("7", 2, "7"),
            ("1.55e2", 0, "1.55e2"),
        ] {
            assert_eq!(rounded(text, scale), expected, "{text} to {scale}");
        }
        assert_eq!(
            decimal128("141377.946352928331", 19, 6).unwrap(),
            141_377_946_353
        );
    }

    use super::*;
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Date32Type, Int64Type};
    use arrow_schema::{Field, Schema};

    #[test]
    fn cells_pushed_from_borrowed_text_convert_as_values_do() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, true),
            Field::new("price", DataType::Decimal128(12, 2), true),
            Field::new("n", DataType::Int32, true),
            Field::new("ratio", DataType::Float64, true),
        ]));
        let mut builder = BatchBuilder::new(schema, 2).unwrap();
        builder
            .push_row_with(|i, sink| match i {
                0 => sink.text("ab"),
                1 => sink.decimal("1234567890.25"),
                2 => sink.text("42"),
                _ => sink.decimal("0.5"),
            })
            .unwrap();
        builder
            .push_row_with(|_, sink| {
                sink.null();
                Ok(())
            })
            .unwrap();
        let batch = builder.finish().unwrap();
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(batch.column(0).as_string::<i32>().value(0), "ab");
        assert_eq!(
            batch.column(1).as_primitive::<Decimal128Type>().value(0),
            123_456_789_025
        );
        assert_eq!(
            batch
                .column(2)
                .as_primitive::<arrow_array::types::Int32Type>()
                .value(0),
            42
        );
        assert_eq!(
            batch
                .column(3)
                .as_primitive::<arrow_array::types::Float64Type>()
                .value(0),
            0.5
        );
        assert!((0..4).all(|c| batch.column(c).is_null(1)));

        // A misfit names its column, as `push_row` does.
        let schema = Arc::new(Schema::new(vec![Field::new(
            "price",
            DataType::Decimal128(4, 2),
            true,
        )]));
        let mut builder = BatchBuilder::new(schema, 1).unwrap();
        let error = builder
            .push_row_with(|_, sink| sink.decimal("12345.6"))
            .unwrap_err();
        assert!(
            error
                .message()
                .starts_with("column `price`: decimal 12345.6 does not fit"),
            "{}",
            error.message()
        );
        let error = builder.push_row_with(|_, sink| sink.text("x")).unwrap_err();
        assert!(
            error.message().starts_with("column `price`: "),
            "{}",
            error.message()
        );
    }

    #[test]
    fn builds_typed_columns_and_lists() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("price", DataType::Decimal128(12, 2), true),
            Field::new(
                "tags",
                DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
                true,
            ),
            Field::new("day", DataType::Date32, true),
        ]));
        let mut builder = BatchBuilder::new(schema, 4).unwrap();
        builder
            .push_row([
                Value::Int(1),
                Value::Decimal("1234567890.25".into()),
                Value::List(vec![Value::Text("a".into()), Value::Null]),
                Value::Date(NaiveDate::from_ymd_opt(2024, 2, 29).unwrap()),
            ])
            .unwrap();
        builder
            .push_row([Value::Int(2), Value::Null, Value::Null, Value::Null])
            .unwrap();
        let batch = builder.finish().unwrap();
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(batch.column(0).as_primitive::<Int64Type>().value(1), 2);
        assert_eq!(
            batch.column(1).as_primitive::<Decimal128Type>().value(0),
            123_456_789_025
        );
        let tags = batch.column(2).as_list::<i32>();
        assert_eq!(tags.value(0).len(), 2);
        assert!(tags.is_null(1));
        assert_eq!(
            batch.column(3).as_primitive::<Date32Type>().value(0),
            19_782
        );
        assert!(builder.is_empty());
    }

    #[test]
    fn out_of_range_values_fail_with_the_column_name() {
        let schema = Arc::new(Schema::new(vec![Field::new("small", DataType::Int8, true)]));
        let mut builder = BatchBuilder::new(schema, 1).unwrap();
        let err = builder.push_row([Value::Int(300)]).unwrap_err();
        assert!(err.to_string().contains("small"), "{err}");
    }
}
