//! Decodes PostgreSQL's binary wire format into [`Value`]s. tokio-postgres
//! asks for binary results; [`Raw`] takes any column's bytes as they are and
//! [`decode`] turns them into a value by the column's [`Scalar`].

use std::error::Error;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

use chrono::{DateTime, Days, NaiveDate, NaiveTime, Utc};
use postgres_types::{FromSql, Type};
use tributary_connector::{Interval, Value};

use crate::types::Scalar;

/// Any column's raw binary value (`None` for SQL NULL).
pub(crate) struct Raw<'a>(pub Option<&'a [u8]>);

impl<'a> FromSql<'a> for Raw<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        Ok(Self(Some(raw)))
    }

    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn Error + Sync + Send>> {
        Ok(Self(None))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// PostgreSQL's epoch, 2000-01-01, as days from the Common Era and as Unix seconds.
pub(crate) const PG_EPOCH_DATE: NaiveDate = match NaiveDate::from_ymd_opt(2000, 1, 1) {
    Some(d) => d,
    None => NaiveDate::MIN,
};
pub(crate) const PG_EPOCH_UNIX_MICROS: i64 = 946_684_800_000_000;
const MICROS_PER_DAY: i64 = 86_400_000_000;

type DecodeResult<T> = Result<T, String>;

/// A big-endian reader over one value's bytes.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    fn take(&mut self, n: usize) -> DecodeResult<&'a [u8]> {
        if self.buf.len() < n {
            return Err(format!(
                "value truncated: needed {n} more bytes, have {}",
                self.buf.len()
            ));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> DecodeResult<[u8; N]> {
        let bytes = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn u8(&mut self) -> DecodeResult<u8> {
        Ok(self.array::<1>()?[0])
    }
    fn i16(&mut self) -> DecodeResult<i16> {
        Ok(i16::from_be_bytes(self.array()?))
    }
    fn u16(&mut self) -> DecodeResult<u16> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    fn i32(&mut self) -> DecodeResult<i32> {
        Ok(i32::from_be_bytes(self.array()?))
    }
    fn u32(&mut self) -> DecodeResult<u32> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    fn i64(&mut self) -> DecodeResult<i64> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    fn finish(&self) -> DecodeResult<()> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(format!("{} unexpected trailing bytes", self.buf.len()))
        }
    }
}

/// Decodes one non-NULL value.
pub(crate) fn decode(scalar: &Scalar, raw: &[u8]) -> DecodeResult<Value> {
    let mut r = Reader::new(raw);
    let value = match scalar {
        Scalar::Bool => Value::Bool(r.u8()? != 0),
        Scalar::Int2 => Value::Int(i64::from(r.i16()?)),
        Scalar::Int4 => Value::Int(i64::from(r.i32()?)),
        Scalar::Int8 => Value::Int(r.i64()?),
        Scalar::Oid => Value::Int(i64::from(r.u32()?)),
        Scalar::Float4 => Value::Float(f64::from(f32::from_bits(r.u32()?))),
        Scalar::Float8 => Value::Float(f64::from_bits(r.i64()?.cast_unsigned())),
        Scalar::Numeric => return decode_numeric(raw),
        Scalar::Money => Value::Decimal(money_text(r.i64()?)),
        Scalar::Text => return text(raw).map(Value::Text),
        Scalar::PaddedText => {
            return text(raw).map(|t| Value::Text(t.trim_end_matches(' ').to_string()));
        }
        Scalar::Char => return Ok(Value::Text(char_text(raw))),
        Scalar::Bytea | Scalar::Ewkb => return Ok(Value::Bytes(raw.to_vec())),
        Scalar::Date => date_value(r.i32()?),
        Scalar::Time => time_value(r.i64()?),
        Scalar::TimeTz => {
            let micros = r.i64()?;
            let zone = r.i32()?;
            r.finish()?;
            return Ok(Value::Text(timetz_text(micros, zone)));
        }
        Scalar::Timestamp => timestamp_value(r.i64()?, false),
        Scalar::TimestampTz => timestamp_value(r.i64()?, true),
        Scalar::Interval => {
            let micros = r.i64()?;
            let days = r.i32()?;
            let months = r.i32()?;
            interval_value(micros, days, months)
        }
        Scalar::Uuid => {
            let bytes: [u8; 16] = r.array()?;
            Value::Uuid(uuid::Uuid::from_bytes(bytes).hyphenated().to_string())
        }
        Scalar::Json => return text(raw).map(Value::Text),
        Scalar::Jsonb => {
            let version = r.u8()?;
            if version != 1 {
                return Err(format!("unknown jsonb format version {version}"));
            }
            return text(r.buf).map(Value::Text);
        }
        Scalar::Bit => return decode_bits(raw).map(Value::Text),
        Scalar::Inet => return decode_inet(raw).map(Value::Text),
        Scalar::MacAddr => {
            if raw.len() != 6 && raw.len() != 8 {
                return Err(format!("a MAC address has 6 or 8 bytes, not {}", raw.len()));
            }
            let parts: Vec<String> = raw.iter().map(|b| format!("{b:02x}")).collect();
            return Ok(Value::Text(parts.join(":")));
        }
        Scalar::Void => return Ok(Value::Text(String::new())),
        Scalar::Array(elem) => return decode_array(elem, raw),
    };
    r.finish()?;
    Ok(value)
}

fn text(raw: &[u8]) -> DecodeResult<String> {
    String::from_utf8(raw.to_vec()).map_err(|e| format!("text is not UTF-8: {e}"))
}

/// `"char"`: one byte; bytes above 127 are printed the way PostgreSQL does (`\ooo`).
fn char_text(raw: &[u8]) -> String {
    match raw.first() {
        None => String::new(),
        Some(&b) if b.is_ascii() => char::from(b).to_string(),
        Some(&b) => format!("\\{b:03o}"),
    }
}

fn money_text(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// `numeric`: base-10000 digits to exact plain-notation text with the
/// value's display scale; NaN and ±Infinity as PostgreSQL spells them
/// (they are text, so a decimal column refuses them loudly).
fn decode_numeric(raw: &[u8]) -> DecodeResult<Value> {
    let mut text = String::new();
    Ok(if numeric_into(raw, &mut text)? {
        Value::Decimal(text)
    } else {
        Value::Text(text)
    })
}

/// Writes a `numeric`'s exact text into `out` (cleared first): `true` for
/// a number, `false` for `NaN` and `±Infinity`, which no decimal holds.
/// Reads the base-10000 digits where they lie, so a reused `out` makes
/// decoding a price allocate nothing.
pub(crate) fn numeric_into(raw: &[u8], out: &mut String) -> DecodeResult<bool> {
    out.clear();
    let mut r = Reader::new(raw);
    let ndigits = r.i16()?;
    let weight = i32::from(r.i16()?);
    let sign = r.u16()?;
    let dscale = usize::from(r.u16()?);
    let ndigits =
        usize::try_from(ndigits).map_err(|_| "negative numeric digit count".to_string())?;
    let digits = r.take(ndigits * 2)?;
    r.finish()?;
    let digit_at = |i: i32| -> u16 {
        usize::try_from(i)
            .ok()
            .and_then(|i| digits.get(i * 2..i * 2 + 2))
            .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]))
    };
    let mut nonzero = false;
    for i in 0..ndigits {
        let d = i16::from_be_bytes([digits[i * 2], digits[i * 2 + 1]]);
        if !(0..10_000).contains(&d) {
            return Err(format!("numeric digit {d} out of range"));
        }
        nonzero |= d != 0;
    }
    let special = match sign {
        0x0000 | 0x4000 => None,
        0xC000 => Some("NaN"),
        0xD000 => Some("Infinity"),
        0xF000 => Some("-Infinity"),
        other => return Err(format!("unknown numeric sign {other:#06x}")),
    };
    if let Some(special) = special {
        out.push_str(special);
        return Ok(false);
    }
    // Four decimal digits of `d`, or without its leading zeros (`lead`).
    let push_group = |out: &mut String, d: u16, lead: bool| {
        let group = [d / 1000, d / 100 % 10, d / 10 % 10, d % 10];
        let skip = if lead {
            group.iter().take(3).take_while(|g| **g == 0).count()
        } else {
            0
        };
        for g in &group[skip..] {
            out.push(char::from(b'0' + u8::try_from(*g).unwrap_or(0)));
        }
    };
    if sign == 0x4000 && nonzero {
        out.push('-');
    }
    if weight < 0 {
        out.push('0');
    } else {
        for i in 0..=weight {
            push_group(out, digit_at(i), i == 0);
        }
    }
    if dscale > 0 {
        out.push('.');
        let fraction = out.len();
        let mut position = weight + 1;
        while out.len() - fraction < dscale {
            push_group(out, digit_at(position), false);
            position += 1;
        }
        out.truncate(fraction + dscale);
    }
    Ok(true)
}

fn date_value(days: i32) -> Value {
    match days {
        i32::MAX => Value::Text("infinity".into()),
        i32::MIN => Value::Text("-infinity".into()),
        _ => date_from_days(days).map_or_else(
            || Value::Text(format!("date {days} days from 2000-01-01")),
            Value::Date,
        ),
    }
}

pub(crate) fn date_from_days(days: i32) -> Option<NaiveDate> {
    if days >= 0 {
        PG_EPOCH_DATE.checked_add_days(Days::new(u64::from(days.unsigned_abs())))
    } else {
        PG_EPOCH_DATE.checked_sub_days(Days::new(u64::from(days.unsigned_abs())))
    }
}

fn time_from_micros(micros: i64) -> Option<NaiveTime> {
    if !(0..MICROS_PER_DAY).contains(&micros) {
        return None;
    }
    let secs = u32::try_from(micros / 1_000_000).ok()?;
    let nanos = u32::try_from(micros % 1_000_000).ok()? * 1_000;
    NaiveTime::from_num_seconds_from_midnight_opt(secs, nanos)
}

fn time_value(micros: i64) -> Value {
    time_from_micros(micros).map_or_else(|| Value::Text(time_text(micros)), Value::Time)
}

/// `HH:MM:SS[.ffffff]` with trailing zeros of the fraction dropped, as PostgreSQL prints.
fn time_text(micros: i64) -> String {
    let (h, m, s, us) = (
        micros / 3_600_000_000,
        micros / 60_000_000 % 60,
        micros / 1_000_000 % 60,
        micros % 1_000_000,
    );
    let mut out = format!("{h:02}:{m:02}:{s:02}");
    if us != 0 {
        let frac = format!("{us:06}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out
}

/// `timetz`: the local time and the offset (PostgreSQL stores seconds *west* of UTC).
fn timetz_text(micros: i64, zone_west: i32) -> String {
    let mut out = time_text(micros);
    let east = -i64::from(zone_west);
    out.push(if east < 0 { '-' } else { '+' });
    let east = east.unsigned_abs();
    let (h, m, s) = (east / 3600, east / 60 % 60, east % 60);
    let _ = write!(out, "{h:02}");
    if m != 0 || s != 0 {
        let _ = write!(out, ":{m:02}");
    }
    if s != 0 {
        let _ = write!(out, ":{s:02}");
    }
    out
}

fn timestamp_value(micros: i64, with_tz: bool) -> Value {
    match micros {
        i64::MAX => return Value::Text("infinity".into()),
        i64::MIN => return Value::Text("-infinity".into()),
        _ => {}
    }
    match micros
        .checked_add(PG_EPOCH_UNIX_MICROS)
        .and_then(DateTime::<Utc>::from_timestamp_micros)
    {
        Some(t) if with_tz => Value::TimestampTz(t),
        Some(t) => Value::Timestamp(t.naive_utc()),
        None => Value::Text(format!(
            "timestamp {micros} µs from 2000-01-01 is out of range"
        )),
    }
}

fn interval_value(micros: i64, days: i32, months: i32) -> Value {
    match micros.checked_mul(1_000) {
        Some(nanoseconds) => Value::Interval(Interval {
            months,
            days,
            nanoseconds,
        }),
        None => Value::Text(format!(
            "{months} mons {days} days {micros} µs (time part overflows nanoseconds)"
        )),
    }
}

/// `bit` / `varbit`: a bit count and the bits, most significant first.
fn decode_bits(raw: &[u8]) -> DecodeResult<String> {
    let mut r = Reader::new(raw);
    let len = usize::try_from(r.i32()?).map_err(|_| "negative bit length".to_string())?;
    let bytes = r.take(len.div_ceil(8))?;
    r.finish()?;
    Ok((0..len)
        .map(|i| {
            if bytes[i / 8] & (0x80 >> (i % 8)) != 0 {
                '1'
            } else {
                '0'
            }
        })
        .collect())
}

/// `inet` / `cidr`: family, mask bits, is-cidr flag, address length, address.
fn decode_inet(raw: &[u8]) -> DecodeResult<String> {
    let mut r = Reader::new(raw);
    let family = r.u8()?;
    let bits = r.u8()?;
    let is_cidr = r.u8()? != 0;
    let len = usize::from(r.u8()?);
    let addr = r.take(len)?;
    r.finish()?;
    let (text, max_bits) = match (family, addr.len()) {
        (2, 4) => (
            Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]).to_string(),
            32,
        ),
        (3, 16) => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(addr);
            (Ipv6Addr::from(octets).to_string(), 128)
        }
        _ => {
            return Err(format!(
                "unknown inet family {family} with {len} address bytes"
            ));
        }
    };
    Ok(if is_cidr || bits != max_bits {
        format!("{text}/{bits}")
    } else {
        text
    })
}

/// Arrays: dimensions, a null flag, the element type and each element
/// (length-prefixed, -1 for NULL). One dimension becomes a list; more become
/// nested lists (which a `List<T>` column refuses, loudly).
fn decode_array(elem: &Scalar, raw: &[u8]) -> DecodeResult<Value> {
    let mut r = Reader::new(raw);
    let ndim =
        usize::try_from(r.i32()?).map_err(|_| "negative array dimension count".to_string())?;
    let _has_nulls = r.i32()?;
    let _elem_oid = r.u32()?;
    if ndim == 0 {
        r.finish()?;
        return Ok(Value::List(Vec::new()));
    }
    if ndim > 6 {
        return Err(format!("array with {ndim} dimensions"));
    }
    let mut dims = Vec::with_capacity(ndim);
    for _ in 0..ndim {
        let len = usize::try_from(r.i32()?).map_err(|_| "negative array length".to_string())?;
        let _lower_bound = r.i32()?;
        dims.push(len);
    }
    let value = array_level(elem, &dims, &mut r)?;
    r.finish()?;
    Ok(value)
}

fn array_level(elem: &Scalar, dims: &[usize], r: &mut Reader<'_>) -> DecodeResult<Value> {
    let (len, rest) = dims
        .split_first()
        .ok_or_else(|| "array without dimensions".to_string())?;
    let mut items = Vec::with_capacity((*len).min(65_536));
    for _ in 0..*len {
        if rest.is_empty() {
            let size = r.i32()?;
            if size < 0 {
                items.push(Value::Null);
            } else {
                let bytes = r.take(size.unsigned_abs() as usize)?;
                items.push(decode(elem, bytes)?);
            }
        } else {
            items.push(array_level(elem, rest, r)?);
        }
    }
    Ok(Value::List(items))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDateTime;

    fn numeric(ndigits: &[i16], weight: i16, sign: u16, dscale: u16) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&i16::try_from(ndigits.len()).unwrap().to_be_bytes());
        out.extend_from_slice(&weight.to_be_bytes());
        out.extend_from_slice(&sign.to_be_bytes());
        out.extend_from_slice(&dscale.to_be_bytes());
        for d in ndigits {
            out.extend_from_slice(&d.to_be_bytes());
        }
        out
    }

    #[test]
    fn numerics_are_exact() {
        let cases: &[(&[i16], i16, u16, u16, &str)] = &[
            (&[1, 2345, 6789], 1, 0, 4, "12345.6789"),
            (&[1, 2345, 6789], 1, 0x4000, 4, "-12345.6789"),
            (&[5000], -1, 0, 2, "0.50"),
            (&[1200], -2, 0, 6, "0.000012"),
            (&[], 0, 0, 0, "0"),
            (&[], 0, 0, 3, "0.000"),
            (&[1], 3, 0, 0, "1000000000000"),
            (
                &[9999, 9999, 9999, 9999, 9999, 9999, 9999, 9999, 9999, 9999],
                9,
                0,
                0,
                "9999999999999999999999999999999999999999",
            ),
            (&[99, 9999, 9900], 1, 0, 2, "999999.99"),
            (&[12, 34], 1, 0, 0, "120034"),
            (&[7], 0, 0x4000, 2, "-7.00"),
            (&[], 0, 0x4000, 2, "0.00"),
        ];
        for (digits, weight, sign, dscale, expected) in cases {
            let raw = numeric(digits, *weight, *sign, *dscale);
            assert_eq!(
                decode(&Scalar::Numeric, &raw).unwrap(),
                Value::Decimal((*expected).to_string()),
                "{expected}"
            );
        }
        assert_eq!(
            decode(&Scalar::Numeric, &numeric(&[], 0, 0xC000, 0)).unwrap(),
            Value::Text("NaN".into())
        );
        assert_eq!(
            decode(&Scalar::Numeric, &numeric(&[], 0, 0xD000, 0)).unwrap(),
            Value::Text("Infinity".into())
        );
        assert_eq!(
            decode(&Scalar::Numeric, &numeric(&[], 0, 0xF000, 0)).unwrap(),
            Value::Text("-Infinity".into())
        );
        assert!(decode(&Scalar::Numeric, &[0, 1]).is_err());
    }

    #[test]
    fn times_and_intervals() {
        let ts = decode(&Scalar::Timestamp, &0i64.to_be_bytes()).unwrap();
        assert_eq!(
            ts,
            Value::Timestamp(
                NaiveDateTime::parse_from_str("2000-01-01 00:00:00", "%Y-%m-%d %H:%M:%S").unwrap()
            )
        );
        assert_eq!(
            decode(&Scalar::Timestamp, &i64::MAX.to_be_bytes()).unwrap(),
            Value::Text("infinity".into())
        );
        assert_eq!(
            decode(&Scalar::Date, &(-1i32).to_be_bytes()).unwrap(),
            Value::Date(NaiveDate::from_ymd_opt(1999, 12, 31).unwrap())
        );
        let mut raw = 45_296_500_000i64.to_be_bytes().to_vec();
        raw.extend_from_slice(&(-19_800i32).to_be_bytes());
        assert_eq!(
            decode(&Scalar::TimeTz, &raw).unwrap(),
            Value::Text("12:34:56.5+05:30".into())
        );
        let mut raw = 1_500_000i64.to_be_bytes().to_vec();
        raw.extend_from_slice(&3i32.to_be_bytes());
        raw.extend_from_slice(&(-14i32).to_be_bytes());
        assert_eq!(
            decode(&Scalar::Interval, &raw).unwrap(),
            Value::Interval(Interval {
                months: -14,
                days: 3,
                nanoseconds: 1_500_000_000
            })
        );
        assert_eq!(
            decode(&Scalar::Time, &MICROS_PER_DAY.to_be_bytes()).unwrap(),
            Value::Text("24:00:00".into())
        );
    }

    #[test]
    fn network_bits_and_arrays() {
        assert_eq!(
            decode(&Scalar::Inet, &[2, 32, 0, 4, 10, 0, 0, 1]).unwrap(),
            Value::Text("10.0.0.1".into())
        );
        assert_eq!(
            decode(&Scalar::Inet, &[2, 8, 1, 4, 10, 0, 0, 0]).unwrap(),
            Value::Text("10.0.0.0/8".into())
        );
        let mut v6 = vec![3, 64, 0, 16];
        v6.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        assert_eq!(
            decode(&Scalar::Inet, &v6).unwrap(),
            Value::Text("2001:db8::1/64".into())
        );
        let mut bits = 10i32.to_be_bytes().to_vec();
        bits.extend_from_slice(&[0b1010_0000, 0b1100_0000]);
        assert_eq!(
            decode(&Scalar::Bit, &bits).unwrap(),
            Value::Text("1010000011".into())
        );
        // int4[] {1,NULL,3}
        let mut arr = Vec::new();
        for word in [1i32, 1, 23, 3, 1] {
            arr.extend_from_slice(&word.to_be_bytes());
        }
        arr.extend_from_slice(&4i32.to_be_bytes());
        arr.extend_from_slice(&1i32.to_be_bytes());
        arr.extend_from_slice(&(-1i32).to_be_bytes());
        arr.extend_from_slice(&4i32.to_be_bytes());
        arr.extend_from_slice(&3i32.to_be_bytes());
        assert_eq!(
            decode(&Scalar::Array(Box::new(Scalar::Int4)), &arr).unwrap(),
            Value::List(vec![Value::Int(1), Value::Null, Value::Int(3)])
        );
        assert_eq!(
            decode(&Scalar::Jsonb, b"\x01{\"a\": 1}").unwrap(),
            Value::Text("{\"a\": 1}".into())
        );
        assert_eq!(
            decode(&Scalar::Money, &(-5i64).to_be_bytes()).unwrap(),
            Value::Decimal("-0.05".into())
        );
    }
}
