//! Bound parameters: [`PgParam`] wraps a [`Value`] and converts it according
//! to the type PostgreSQL reports for its placeholder. Typed values are sent
//! in binary (with range checks); a text value bound to a non-text type is
//! sent in text format for the server's own input function to parse; values
//! bound to types the connector does not map are sent as their text.

use std::error::Error;
use std::fmt;
use std::sync::OnceLock;

use bytes::BytesMut;
use chrono::{NaiveTime, Timelike};
use postgres_types::{Format, IsNull, ToSql, Type, to_sql_checked};
use tributary_connector::Value;

use crate::decode::{PG_EPOCH_DATE, PG_EPOCH_UNIX_MICROS};
use crate::types::{PgKind, PgType, Scalar, classify};

/// A value that could not be converted to its parameter's type.
#[derive(Debug, Clone)]
pub(crate) struct ParamError {
    /// 1-based, as in `$1`.
    pub position: usize,
    pub message: String,
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "parameter ${}: {}", self.position, self.message)
    }
}

impl Error for ParamError {}

/// One bound value with its (1-based) position.
pub struct PgParam<'a> {
    position: usize,
    value: &'a Value,
    encoded: OnceLock<Result<Encoded, String>>,
}

impl<'a> PgParam<'a> {
    pub fn new(position: usize, value: &'a Value) -> Self {
        Self {
            position,
            value,
            encoded: OnceLock::new(),
        }
    }

    /// Wraps every value of a statement, numbering from `$1`.
    pub fn all(values: &'a [Value]) -> Vec<Self> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| Self::new(i + 1, v))
            .collect()
    }

    fn encoded(&self, ty: &Type) -> &Result<Encoded, String> {
        self.encoded
            .get_or_init(|| encode(self.value, &PgType::from_driver(ty)))
    }

    /// Converts the value now, reporting a failure the way binding would.
    pub(crate) fn check(&self, ty: &Type) -> Result<(), ParamError> {
        match self.encoded(ty) {
            Ok(_) => Ok(()),
            Err(message) => Err(ParamError {
                position: self.position,
                message: message.clone(),
            }),
        }
    }
}

impl fmt::Debug for PgParam<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values may be secrets of the caller's data: show only their kind.
        write!(f, "${} ({})", self.position, self.value.type_name())
    }
}

impl ToSql for PgParam<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        match self.encoded(ty) {
            Ok(Encoded { bytes: None, .. }) => Ok(IsNull::Yes),
            Ok(Encoded {
                bytes: Some(bytes), ..
            }) => {
                out.extend_from_slice(bytes);
                Ok(IsNull::No)
            }
            Err(message) => Err(Box::new(ParamError {
                position: self.position,
                message: message.clone(),
            })),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    fn encode_format(&self, ty: &Type) -> Format {
        match self.encoded(ty) {
            Ok(encoded) if encoded.text => Format::Text,
            _ => Format::Binary,
        }
    }

    to_sql_checked!();
}

/// A converted parameter: its bytes (`None` for NULL) and their format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Encoded {
    pub text: bool,
    pub bytes: Option<Vec<u8>>,
}

impl Encoded {
    fn binary(bytes: Vec<u8>) -> Self {
        Self {
            text: false,
            bytes: Some(bytes),
        }
    }
    fn text(text: String) -> Self {
        Self {
            text: true,
            bytes: Some(text.into_bytes()),
        }
    }
}

/// Why a value was not encoded in binary.
enum Fail {
    /// The server should parse the value's text (a string for a non-text type).
    NeedsText,
    Invalid(String),
}

impl From<String> for Fail {
    fn from(message: String) -> Self {
        Self::Invalid(message)
    }
}

/// Converts `value` for a parameter of type `ty`.
pub(crate) fn encode(value: &Value, ty: &PgType) -> Result<Encoded, String> {
    if value.is_null() {
        return Ok(Encoded {
            text: false,
            bytes: None,
        });
    }
    if classify(ty).is_none() {
        // A type without a mapping: raw bytes stay binary, anything else is
        // handed to the type's input function as text.
        return match value {
            Value::Bytes(bytes) => Ok(Encoded::binary(bytes.clone())),
            other => Ok(Encoded::text(text_literal(other)?)),
        };
    }
    let mut buf = Vec::new();
    match write_binary(value, ty, &mut buf) {
        Ok(()) => Ok(Encoded::binary(buf)),
        Err(Fail::NeedsText) => Ok(Encoded::text(text_literal(value)?)),
        Err(Fail::Invalid(message)) => Err(message),
    }
}

fn mismatch(value: &Value, ty: &PgType) -> Fail {
    Fail::Invalid(format!(
        "cannot bind a {} value to a parameter of type {}",
        value.type_name(),
        ty.name
    ))
}

fn base_of(ty: &PgType) -> &PgType {
    match &ty.kind {
        PgKind::Domain { base, .. } => base_of(base),
        _ => ty,
    }
}

#[allow(clippy::too_many_lines)] // one arm per target type reads best as one match
fn write_binary(value: &Value, ty: &PgType, out: &mut Vec<u8>) -> Result<(), Fail> {
    let ty = base_of(ty);
    let scalar = classify(ty).ok_or(Fail::NeedsText)?;
    let textual_target = matches!(
        scalar,
        Scalar::Text | Scalar::PaddedText | Scalar::Json | Scalar::Jsonb
    );
    if matches!(value, Value::Text(_)) && !textual_target {
        return Err(Fail::NeedsText);
    }
    match scalar {
        Scalar::Bool => out.push(match value {
            Value::Bool(b) => u8::from(*b),
            Value::Int(0) | Value::UInt(0) => 0,
            Value::Int(1) | Value::UInt(1) => 1,
            _ => return Err(mismatch(value, ty)),
        }),
        Scalar::Int2 => {
            let v = integer(value, ty)?;
            let v =
                i16::try_from(v).map_err(|_| format!("{v} is out of range for type smallint"))?;
            out.extend_from_slice(&v.to_be_bytes());
        }
        Scalar::Int4 => {
            let v = integer(value, ty)?;
            let v =
                i32::try_from(v).map_err(|_| format!("{v} is out of range for type integer"))?;
            out.extend_from_slice(&v.to_be_bytes());
        }
        Scalar::Int8 => {
            let v = integer(value, ty)?;
            let v = i64::try_from(v).map_err(|_| format!("{v} is out of range for type bigint"))?;
            out.extend_from_slice(&v.to_be_bytes());
        }
        Scalar::Oid => {
            let v = integer(value, ty)?;
            let v = u32::try_from(v).map_err(|_| format!("{v} is out of range for type oid"))?;
            out.extend_from_slice(&v.to_be_bytes());
        }
        Scalar::Float4 => {
            let v = float(value, ty)?;
            if v.is_finite() && v.abs() > f64::from(f32::MAX) {
                return Err(Fail::Invalid(format!("{v} is out of range for type real")));
            }
            #[allow(clippy::cast_possible_truncation)] // range checked above; precision is real's
            out.extend_from_slice(&(v as f32).to_be_bytes());
        }
        Scalar::Float8 => out.extend_from_slice(&float(value, ty)?.to_be_bytes()),
        Scalar::Numeric => {
            let text = match value {
                Value::Decimal(s) => s.clone(),
                Value::Int(i) => i.to_string(),
                Value::UInt(u) => u.to_string(),
                Value::Float(f) if f.is_nan() => "NaN".into(),
                Value::Float(f) if f.is_infinite() => {
                    if *f > 0.0 { "Infinity" } else { "-Infinity" }.into()
                }
                Value::Float(f) => f.to_string(),
                _ => return Err(mismatch(value, ty)),
            };
            out.extend_from_slice(&numeric_binary(&text)?);
        }
        Scalar::Money => {
            let text = match value {
                Value::Decimal(s) => s.clone(),
                Value::Int(i) => i.to_string(),
                Value::UInt(u) => u.to_string(),
                Value::Float(f) if f.is_finite() => f.to_string(),
                _ => return Err(mismatch(value, ty)),
            };
            out.extend_from_slice(&money_cents(&text)?.to_be_bytes());
        }
        Scalar::Text | Scalar::PaddedText => match value {
            Value::Bytes(b) => {
                let s = std::str::from_utf8(b)
                    .map_err(|_| "the bytes are not UTF-8 text".to_string())?;
                out.extend_from_slice(s.as_bytes());
            }
            Value::List(_) => return Err(mismatch(value, ty)),
            other => out.extend_from_slice(text_literal(other)?.as_bytes()),
        },
        Scalar::Json | Scalar::Jsonb => {
            let text = match value {
                Value::Json(j) => j.to_string(),
                Value::Text(t) => t.clone(),
                Value::Decimal(d) => d.clone(),
                Value::Int(i) => i.to_string(),
                Value::UInt(u) => u.to_string(),
                Value::Bool(b) => b.to_string(),
                Value::Float(f) => serde_json::Number::from_f64(*f)
                    .ok_or_else(|| format!("{f} is not a JSON number"))?
                    .to_string(),
                _ => return Err(mismatch(value, ty)),
            };
            if scalar == Scalar::Jsonb {
                out.push(1);
            }
            out.extend_from_slice(text.as_bytes());
        }
        Scalar::Bytea | Scalar::Ewkb => match value {
            Value::Bytes(b) => out.extend_from_slice(b),
            _ => return Err(mismatch(value, ty)),
        },
        Scalar::Uuid => match value {
            Value::Uuid(s) | Value::Decimal(s) => {
                let uuid =
                    uuid::Uuid::parse_str(s.trim()).map_err(|_| format!("`{s}` is not a UUID"))?;
                out.extend_from_slice(uuid.as_bytes());
            }
            Value::Bytes(b) if b.len() == 16 => out.extend_from_slice(b),
            _ => return Err(mismatch(value, ty)),
        },
        Scalar::Date => {
            let date = match value {
                Value::Date(d) => *d,
                Value::Timestamp(t) if t.time() == NaiveTime::MIN => t.date(),
                Value::TimestampTz(t) if t.time() == NaiveTime::MIN => t.date_naive(),
                _ => return Err(mismatch(value, ty)),
            };
            let days = i32::try_from(date.signed_duration_since(PG_EPOCH_DATE).num_days())
                .map_err(|_| format!("{date} is out of range for type date"))?;
            out.extend_from_slice(&days.to_be_bytes());
        }
        Scalar::Time => match value {
            Value::Time(t) => out.extend_from_slice(&time_micros(*t).to_be_bytes()),
            _ => return Err(mismatch(value, ty)),
        },
        Scalar::Timestamp | Scalar::TimestampTz => {
            let micros = match value {
                Value::Timestamp(t) => t.and_utc().timestamp_micros(),
                Value::TimestampTz(t) => t.timestamp_micros(),
                Value::Date(d) => d.and_time(NaiveTime::MIN).and_utc().timestamp_micros(),
                _ => return Err(mismatch(value, ty)),
            };
            let micros = micros.checked_sub(PG_EPOCH_UNIX_MICROS).ok_or_else(|| {
                format!(
                    "{} is out of range for type {}",
                    value.to_text().unwrap_or_default(),
                    ty.name
                )
            })?;
            out.extend_from_slice(&micros.to_be_bytes());
        }
        Scalar::Interval => match value {
            Value::Interval(i) => {
                if i.nanoseconds % 1_000 != 0 {
                    return Err(Fail::Invalid(format!(
                        "interval {i} has sub-microsecond precision, which PostgreSQL cannot store"
                    )));
                }
                out.extend_from_slice(&(i.nanoseconds / 1_000).to_be_bytes());
                out.extend_from_slice(&i.days.to_be_bytes());
                out.extend_from_slice(&i.months.to_be_bytes());
            }
            _ => return Err(mismatch(value, ty)),
        },
        // Sent as text for the server to parse: a time of day to timetz
        // (the session's zone is UTC), and the textual network and bit types.
        Scalar::TimeTz => match value {
            Value::Time(_) => return Err(Fail::NeedsText),
            _ => return Err(mismatch(value, ty)),
        },
        Scalar::Bit | Scalar::Inet | Scalar::MacAddr | Scalar::Char | Scalar::Void => {
            return Err(mismatch(value, ty));
        }
        Scalar::Array(_) => {
            let PgKind::Array(elem) = &ty.kind else {
                return Err(mismatch(value, ty));
            };
            match value {
                Value::List(items) => write_array(items, elem, out)?,
                _ => return Err(mismatch(value, ty)),
            }
        }
    }
    Ok(())
}

/// A one- or more-dimensional array in binary (nested lists must be rectangular).
fn write_array(items: &[Value], elem: &PgType, out: &mut Vec<u8>) -> Result<(), Fail> {
    let mut dims = Vec::new();
    let mut level = items;
    loop {
        dims.push(level.len());
        match level.first() {
            Some(Value::List(inner)) => level = inner,
            _ => break,
        }
    }
    let mut body = Vec::new();
    let mut has_nulls = false;
    write_elements(items, &dims, elem, &mut body, &mut has_nulls)?;
    let ndim = if items.is_empty() { 0 } else { dims.len() };
    let to_i32 = |n: usize| i32::try_from(n).map_err(|_| Fail::Invalid("array too large".into()));
    out.extend_from_slice(&to_i32(ndim)?.to_be_bytes());
    out.extend_from_slice(&i32::from(has_nulls).to_be_bytes());
    out.extend_from_slice(&elem.oid.to_be_bytes());
    if ndim > 0 {
        for len in &dims {
            out.extend_from_slice(&to_i32(*len)?.to_be_bytes());
            out.extend_from_slice(&1i32.to_be_bytes());
        }
    }
    out.extend_from_slice(&body);
    Ok(())
}

fn write_elements(
    items: &[Value],
    dims: &[usize],
    elem: &PgType,
    out: &mut Vec<u8>,
    has_nulls: &mut bool,
) -> Result<(), Fail> {
    let Some((len, rest)) = dims.split_first() else {
        return Ok(());
    };
    if items.len() != *len {
        return Err(Fail::Invalid(
            "nested lists of a multi-dimensional array must have equal lengths".into(),
        ));
    }
    for item in items {
        match (item, rest.is_empty()) {
            (Value::List(inner), false) => write_elements(inner, rest, elem, out, has_nulls)?,
            (_, false) | (Value::List(_), true) => {
                return Err(Fail::Invalid(
                    "nested lists of a multi-dimensional array must have equal depths".into(),
                ));
            }
            (Value::Null, true) => {
                *has_nulls = true;
                out.extend_from_slice(&(-1i32).to_be_bytes());
            }
            (value, true) => {
                let mut bytes = Vec::new();
                write_binary(value, elem, &mut bytes)?;
                let len = i32::try_from(bytes.len())
                    .map_err(|_| Fail::Invalid("array element too large".into()))?;
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(&bytes);
            }
        }
    }
    Ok(())
}

fn time_micros(t: NaiveTime) -> i64 {
    i64::from(t.num_seconds_from_midnight()) * 1_000_000 + i64::from(t.nanosecond() / 1_000)
}

fn integer(value: &Value, ty: &PgType) -> Result<i128, Fail> {
    match value {
        Value::Int(i) => Ok(i128::from(*i)),
        Value::UInt(u) => Ok(i128::from(*u)),
        #[allow(clippy::cast_possible_truncation)]
        // checked to be integral and in i64's range first
        Value::Float(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.2e18 => {
            Ok(i128::from(*f as i64))
        }
        Value::Float(f) => Err(Fail::Invalid(format!(
            "{f} is not an integer (type {})",
            ty.name
        ))),
        Value::Decimal(s) => {
            let d = DecimalParts::parse(s)?;
            if d.frac_digits().iter().any(|c| *c != b'0') {
                return Err(Fail::Invalid(format!(
                    "{s} is not an integer (type {})",
                    ty.name
                )));
            }
            let int = std::str::from_utf8(d.int_digits()).unwrap_or("0");
            let magnitude: i128 = if int.is_empty() {
                0
            } else {
                int.parse()
                    .map_err(|_| format!("{s} is out of range for type {}", ty.name))?
            };
            Ok(if d.negative { -magnitude } else { magnitude })
        }
        _ => Err(mismatch(value, ty)),
    }
}

fn float(value: &Value, ty: &PgType) -> Result<f64, Fail> {
    #[allow(clippy::cast_precision_loss)]
    // binding an integer to a float parameter rounds as PostgreSQL would
    match value {
        Value::Float(f) => Ok(*f),
        Value::Int(i) => Ok(*i as f64),
        Value::UInt(u) => Ok(*u as f64),
        Value::Decimal(s) => match s.trim() {
            "NaN" => Ok(f64::NAN),
            "Infinity" => Ok(f64::INFINITY),
            "-Infinity" => Ok(f64::NEG_INFINITY),
            t => t
                .parse()
                .map_err(|_| Fail::Invalid(format!("`{s}` is not a number"))),
        },
        _ => Err(mismatch(value, ty)),
    }
}

/// A decimal number split into sign and digits, with `scale` digits after
/// the decimal point (never negative: exponents are applied).
struct DecimalParts {
    negative: bool,
    digits: Vec<u8>,
    scale: usize,
}

impl DecimalParts {
    /// Parses `-123.45`, `1e5`, `.5`, `+7.`; at most 131 072 digits each side.
    fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("`{text}` is not a decimal number");
        let t = text.trim();
        let (negative, t) = match t.as_bytes().first() {
            Some(b'-') => (true, &t[1..]),
            Some(b'+') => (false, &t[1..]),
            _ => (false, t),
        };
        let (mantissa, exponent) = match t.find(['e', 'E']) {
            Some(i) => (&t[..i], t[i + 1..].parse::<i64>().map_err(|_| bad())?),
            None => (t, 0),
        };
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        if int.is_empty() && frac.is_empty() {
            return Err(bad());
        }
        if !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        if !(-200_000..=200_000).contains(&exponent) {
            return Err(format!("`{text}` is out of range for type numeric"));
        }
        let mut digits: Vec<u8> = int.bytes().chain(frac.bytes()).collect();
        let mut scale = i64::try_from(frac.len()).map_err(|_| bad())? - exponent;
        if scale < 0 {
            digits.extend(std::iter::repeat_n(
                b'0',
                usize::try_from(-scale).map_err(|_| bad())?,
            ));
            scale = 0;
        }
        let scale = usize::try_from(scale).map_err(|_| bad())?;
        if digits.len() < scale {
            let pad = scale - digits.len();
            digits.splice(0..0, std::iter::repeat_n(b'0', pad));
        }
        if digits.len() - scale > 131_072 || scale > 16_383 {
            return Err(format!("`{text}` is out of range for type numeric"));
        }
        Ok(Self {
            negative,
            digits,
            scale,
        })
    }

    fn int_digits(&self) -> &[u8] {
        let int = &self.digits[..self.digits.len() - self.scale];
        let first = int.iter().position(|c| *c != b'0').unwrap_or(int.len());
        &int[first..]
    }

    fn frac_digits(&self) -> &[u8] {
        &self.digits[self.digits.len() - self.scale..]
    }
}

/// `numeric`'s binary format from decimal text (`NaN`, `Infinity` and
/// `-Infinity` included).
fn numeric_binary(text: &str) -> Result<Vec<u8>, String> {
    let special = match text.trim().to_ascii_lowercase().as_str() {
        "nan" => Some(0xC000u16),
        "infinity" | "+infinity" | "inf" | "+inf" => Some(0xD000),
        "-infinity" | "-inf" => Some(0xF000),
        _ => None,
    };
    let mut out = Vec::with_capacity(16);
    if let Some(sign) = special {
        for word in [0u16, 0, sign, 0] {
            out.extend_from_slice(&word.to_be_bytes());
        }
        return Ok(out);
    }
    let d = DecimalParts::parse(text)?;
    let int = d.int_digits();
    let frac = d.frac_digits();
    let group = |chunk: &[u8]| {
        chunk
            .iter()
            .fold(0i16, |acc, c| acc * 10 + i16::from(c - b'0'))
    };
    let mut groups: Vec<i16> = Vec::with_capacity(int.len() / 4 + frac.len() / 4 + 2);
    let lead = int.len() % 4;
    if lead > 0 {
        groups.push(group(&int[..lead]));
    }
    groups.extend(int[lead..].chunks(4).map(group));
    let int_groups = groups.len();
    for chunk in frac.chunks(4) {
        let mut g = group(chunk);
        for _ in chunk.len()..4 {
            g *= 10;
        }
        groups.push(g);
    }
    let mut weight = i64::try_from(int_groups).map_err(|e| e.to_string())? - 1;
    let leading = groups.iter().take_while(|g| **g == 0).count();
    groups.drain(..leading);
    weight -= i64::try_from(leading).map_err(|e| e.to_string())?;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    let too_large = || format!("`{text}` is out of range for type numeric");
    let ndigits = i16::try_from(groups.len()).map_err(|_| too_large())?;
    let weight = i16::try_from(weight).map_err(|_| too_large())?;
    let sign: u16 = if d.negative && !groups.is_empty() {
        0x4000
    } else {
        0
    };
    let dscale = u16::try_from(d.scale).map_err(|_| too_large())?;
    out.extend_from_slice(&ndigits.to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&dscale.to_be_bytes());
    for g in groups {
        out.extend_from_slice(&g.to_be_bytes());
    }
    Ok(out)
}

/// `money` in cents; more than two fractional digits is an error, not a rounding.
fn money_cents(text: &str) -> Result<i64, String> {
    let d = DecimalParts::parse(text)?;
    let frac = d.frac_digits();
    if frac.iter().skip(2).any(|c| *c != b'0') {
        return Err(format!(
            "{text} has more than 2 decimal places, which type money cannot hold"
        ));
    }
    let mut cents_text = String::from_utf8_lossy(d.int_digits()).into_owned();
    for i in 0..2 {
        cents_text.push(char::from(frac.get(i).copied().unwrap_or(b'0')));
    }
    let cents: i64 = cents_text
        .parse()
        .map_err(|_| format!("{text} is out of range for type money"))?;
    Ok(if d.negative { -cents } else { cents })
}

/// The value as PostgreSQL's text input would take it.
fn text_literal(value: &Value) -> Result<String, String> {
    Ok(match value {
        Value::Json(j) => j.to_string(),
        Value::Bytes(b) => {
            let mut out = String::with_capacity(2 + b.len() * 2);
            out.push_str("\\x");
            for byte in b {
                out.push_str(&format!("{byte:02x}"));
            }
            out
        }
        Value::TimestampTz(t) => t.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string(),
        Value::Timestamp(t) => t.format("%Y-%m-%d %H:%M:%S%.6f").to_string(),
        Value::Time(t) => t.format("%H:%M:%S%.6f").to_string(),
        Value::Float(f) if f.is_nan() => "NaN".into(),
        Value::Float(f) if f.is_infinite() => {
            if *f > 0.0 { "Infinity" } else { "-Infinity" }.into()
        }
        Value::List(items) => {
            let mut out = String::from("{");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                match item {
                    Value::Null => out.push_str("NULL"),
                    Value::List(_) => out.push_str(&text_literal(item)?),
                    other => {
                        out.push('"');
                        for c in text_literal(other)?.chars() {
                            if c == '"' || c == '\\' {
                                out.push('\\');
                            }
                            out.push(c);
                        }
                        out.push('"');
                    }
                }
            }
            out.push('}');
            out
        }
        other => other
            .to_text()
            .ok_or_else(|| "NULL has no text".to_string())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::decode;
    use chrono::NaiveDate;

    fn pg(ty: &Type) -> PgType {
        PgType::from_driver(ty)
    }

    fn roundtrip_numeric(text: &str) -> Value {
        decode(&Scalar::Numeric, &numeric_binary(text).unwrap()).unwrap()
    }

    #[test]
    fn numerics_roundtrip_exactly() {
        for (input, expected) in [
            ("12345.6789", "12345.6789"),
            ("-0.50", "-0.50"),
            ("0.000012", "0.000012"),
            ("99999999.99", "99999999.99"),
            ("1e3", "1000"),
            ("1.5E-3", "0.0015"),
            ("0", "0"),
            ("-0.000", "0.000"),
            (
                "123456789012345678901234567890.123456789",
                "123456789012345678901234567890.123456789",
            ),
            (".5", "0.5"),
            ("10000", "10000"),
        ] {
            assert_eq!(
                roundtrip_numeric(input),
                Value::Decimal(expected.into()),
                "{input}"
            );
        }
        assert_eq!(roundtrip_numeric("NaN"), Value::Text("NaN".into()));
        assert_eq!(
            roundtrip_numeric("-Infinity"),
            Value::Text("-Infinity".into())
        );
        assert!(numeric_binary("1.2.3").is_err());
        assert!(numeric_binary("12a").is_err());
        assert!(numeric_binary("").is_err());
    }

    #[test]
    fn integers_are_range_checked() {
        let int2 = pg(&Type::INT2);
        assert_eq!(
            encode(&Value::Int(7), &int2).unwrap(),
            Encoded::binary(vec![0, 7])
        );
        let err = encode(&Value::Int(70_000), &int2).unwrap_err();
        assert!(err.contains("out of range for type smallint"), "{err}");
        assert_eq!(
            encode(&Value::Decimal("42.000".into()), &pg(&Type::INT4)).unwrap(),
            Encoded::binary(42i32.to_be_bytes().to_vec())
        );
        assert!(encode(&Value::Decimal("42.5".into()), &pg(&Type::INT4)).is_err());
        assert!(encode(&Value::Float(1.5), &pg(&Type::INT8)).is_err());
        assert!(
            encode(&Value::Bool(true), &pg(&Type::INT8))
                .unwrap_err()
                .contains("cannot bind a boolean")
        );
        assert!(encode(&Value::UInt(u64::MAX), &pg(&Type::INT8)).is_err());
    }

    #[test]
    fn text_goes_to_the_server_as_text() {
        let date = encode(&Value::Text("2024-05-01".into()), &pg(&Type::DATE)).unwrap();
        assert!(date.text);
        assert_eq!(date.bytes.as_deref(), Some(b"2024-05-01".as_slice()));
        let text = encode(&Value::Text("x".into()), &pg(&Type::VARCHAR)).unwrap();
        assert!(!text.text);
        let day = NaiveDate::from_ymd_opt(2000, 1, 2).unwrap();
        assert_eq!(
            encode(&Value::Date(day), &pg(&Type::DATE)).unwrap(),
            Encoded::binary(1i32.to_be_bytes().to_vec())
        );
        // An unmapped type takes the value's text.
        let point = encode(&Value::Text("(1,2)".into()), &pg(&Type::POINT)).unwrap();
        assert!(point.text);
    }

    #[test]
    fn lists_become_arrays() {
        let encoded = encode(
            &Value::List(vec![Value::Int(1), Value::Null]),
            &pg(&Type::INT4_ARRAY),
        )
        .unwrap();
        let bytes = encoded.bytes.unwrap();
        assert_eq!(
            decode(&Scalar::Array(Box::new(Scalar::Int4)), &bytes).unwrap(),
            Value::List(vec![Value::Int(1), Value::Null])
        );
        // Strings for a date array: the whole array goes as a text literal.
        let dates = encode(
            &Value::List(vec![
                Value::Text("2024-01-01".into()),
                Value::Text("a\"b".into()),
            ]),
            &pg(&Type::DATE_ARRAY),
        )
        .unwrap();
        assert!(dates.text);
        assert_eq!(
            String::from_utf8(dates.bytes.unwrap()).unwrap(),
            r#"{"2024-01-01","a\"b"}"#
        );
        let empty = encode(&Value::List(vec![]), &pg(&Type::TEXT_ARRAY)).unwrap();
        assert_eq!(
            decode(
                &Scalar::Array(Box::new(Scalar::Text)),
                &empty.bytes.unwrap()
            )
            .unwrap(),
            Value::List(vec![])
        );
    }

    #[test]
    fn money_json_uuid() {
        assert_eq!(money_cents("12.5").unwrap(), 1250);
        assert_eq!(money_cents("-0.05").unwrap(), -5);
        assert!(money_cents("0.001").is_err());
        let jsonb = encode(&Value::Json(serde_json::json!({"a": 1})), &pg(&Type::JSONB)).unwrap();
        assert_eq!(jsonb.bytes.unwrap(), b"\x01{\"a\":1}".to_vec());
        let uuid = encode(
            &Value::Uuid("67e55044-10b1-426f-9247-bb680e5fe0c8".into()),
            &pg(&Type::UUID),
        )
        .unwrap();
        assert_eq!(uuid.bytes.unwrap().len(), 16);
        assert!(encode(&Value::Uuid("nope".into()), &pg(&Type::UUID)).is_err());
    }
}
