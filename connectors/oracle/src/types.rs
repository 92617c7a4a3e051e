//! Oracle types: how each native type maps to Arrow, how its values are read
//! from the driver and how a column of it is bound as a `RETURNING … INTO`
//! out parameter. Pure: built from catalog rows (introspection) or from the
//! driver's column metadata (queries), no I/O.
//!
//! # Type mapping
//!
//! | Oracle                                        | Arrow                          | Value delivered                                   |
//! |-----------------------------------------------|--------------------------------|---------------------------------------------------|
//! | `NUMBER(p,s)`, 1 ≤ p ≤ 38, 0 ≤ s ≤ p          | `Decimal128(p,s)`              | exact                                             |
//! | `NUMBER(p,s)`, s > p (`NUMBER(3,5)`)          | `Decimal128(s,s)`              | exact (\|v\| < 10^(p-s))                          |
//! | `NUMBER(p,s)`, s < 0 (`NUMBER(5,-2)`)         | `Decimal128(p-s,0)` (`Decimal256` past 38, `Utf8` past 76) | exact (multiples of 10^-s)    |
//! | `NUMBER(p)` = `NUMBER(p,0)`                   | `Decimal128(p,0)`              | exact; kept decimal (see below)                   |
//! | `NUMBER(*,s)`, `INTEGER` (= `NUMBER(*,0)`)    | `Decimal128(38,s)`             | exact                                             |
//! | `NUMBER` (no precision, no scale)             | `Utf8`                         | exact decimal text, never rounded                 |
//! | `FLOAT(b)`                                    | `Float64`                      | nearest double (FLOAT(126) has ~38 digits)        |
//! | `BINARY_FLOAT` / `BINARY_DOUBLE`              | `Float32` / `Float64`          | the float (NaN and ±Inf included)                 |
//! | `VARCHAR2(n)` / `NVARCHAR2(n)`                | `Utf8`                         | the text                                          |
//! | `CHAR(n)` / `NCHAR(n)`                        | `Utf8`                         | the text without its blank padding                |
//! | `CLOB` / `NCLOB` / `LONG`                     | `Utf8`                         | the whole text                                    |
//! | `BLOB` / `RAW(n)` / `LONG RAW`                | `Binary`                       | the bytes                                         |
//! | `DATE`                                        | `Timestamp(µs, None)`          | date and time of day (DATE has seconds)           |
//! | `TIMESTAMP(n)`                                | `Timestamp(µs, None)`          | truncated to microseconds                         |
//! | `TIMESTAMP(n) WITH TIME ZONE`                 | `Timestamp(µs, "UTC")`         | the instant (local time minus its offset)         |
//! | `TIMESTAMP(n) WITH LOCAL TIME ZONE`           | `Timestamp(µs, "UTC")`         | the instant (sessions run with `TIME_ZONE='UTC'`) |
//! | `INTERVAL YEAR TO MONTH`                      | `Interval(MonthDayNano)`       | months                                            |
//! | `INTERVAL DAY TO SECOND`                      | `Interval(MonthDayNano)`       | days and nanoseconds                              |
//! | `BOOLEAN` (23ai)                              | `Boolean`                      |                                                   |
//! | `JSON` (21c+)                                 | `Utf8`, `native_type` `JSON`   | the document as JSON text (`JSON_SERIALIZE`)      |
//! | `ROWID` / `UROWID`                            | `Utf8`                         | the row id text                                   |
//! | anything else (`XMLTYPE`, `BFILE`, object types such as `SDO_GEOMETRY`, …) | `Utf8` (`Binary` for `BFILE`), flagged `unsupported_type` | the driver's text rendering |
//!
//! Choices worth knowing:
//!
//! * `NUMBER(p,0)` stays `Decimal128(p,0)` for every `p`, also small ones:
//!   an Oracle integer column is a decimal (`NUMBER(10)` holds values past
//!   `i32`, `NUMBER(19)` past `i64`), and one rule keeps the catalog stable
//!   when a column is widened.
//! * `NUMBER` without precision holds up to 40 significant digits at any
//!   scale, which no Arrow decimal holds exactly; like PostgreSQL's
//!   unconstrained `numeric` it is delivered as its exact decimal text.
//! * Intervals are Arrow intervals, not text: `YEAR TO MONTH` fills months,
//!   `DAY TO SECOND` days and nanoseconds, as PostgreSQL intervals do.
//! * `JSON` is described with `native_type` `JSON` (the API layer gives
//!   `json` columns a JSON scalar, as for the other connectors' JSON types).
//!   The `oracle` crate 0.6 cannot fetch the JSON type itself, so a query
//!   whose result has a JSON column runs wrapped, each JSON column read as
//!   `JSON_SERIALIZE(… RETURNING CLOB)` text (`json_text.rs`); the first read
//!   of a statement describes it through `DBMS_SQL`, later reads run the
//!   remembered wrapped form directly. Writing a JSON column takes JSON text;
//!   `RETURNING … INTO` cannot return one.
//! * Before 23ai Oracle has no SQL `BOOLEAN`; the convention is `NUMBER(1)`,
//!   which maps like any `NUMBER(1)` (a decimal). Boolean values bound as
//!   parameters are sent as 1 / 0, which both `NUMBER(1)` and 23ai's
//!   `BOOLEAN` accept.
//! * Oracle stores the empty string as NULL: writing `''` stores NULL, and
//!   NULL is what is read back.

use std::sync::Arc;

use arrow_schema::{DataType, IntervalUnit, TimeUnit};
use tributary_schema_cache::{ServedAs, UnsupportedType};

/// An Oracle type as far as the mapping needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NativeType {
    /// `NUMBER(p,s)`; `None` where the column declares none.
    Number {
        precision: Option<u8>,
        scale: Option<i8>,
    },
    /// `FLOAT(b)`: binary precision `b`.
    Float,
    BinaryFloat,
    BinaryDouble,
    Varchar2,
    NVarchar2,
    Char,
    NChar,
    Long,
    Clob,
    NClob,
    Blob,
    Raw,
    LongRaw,
    Bfile,
    Date,
    Timestamp,
    TimestampTz,
    TimestampLtz,
    IntervalYm,
    IntervalDs,
    Boolean,
    Json,
    Rowid,
    Urowid,
    /// Anything else, by its catalog name (`XMLTYPE`, `SDO_GEOMETRY`, …).
    Other(String),
}

/// How the client layer reads one value of a type from the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decode {
    /// NUMBER and FLOAT: the driver's exact decimal text.
    Number,
    BinaryFloat,
    BinaryDouble,
    Text,
    /// CHAR / NCHAR: text whose trailing blanks are padding.
    PaddedText,
    Bytes,
    /// DATE and TIMESTAMP: a wall-clock time.
    Timestamp,
    /// TIMESTAMP WITH (LOCAL) TIME ZONE: an instant with its offset.
    TimestampTz,
    IntervalYm,
    IntervalDs,
    Bool,
    /// The JSON type: the driver cannot fetch it, so reads serialize it to
    /// text in SQL (see the module docs) and never decode one.
    Json,
    /// An unmapped type: the driver's text rendering.
    Fallback,
}

/// The out-bind type of a `RETURNING … INTO` parameter for a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutBind {
    Number,
    BinaryFloat,
    BinaryDouble,
    /// A character column of at most this many characters.
    Varchar(u32),
    NVarchar(u32),
    Clob,
    NClob,
    Raw(u32),
    Blob,
    Date,
    Timestamp,
    TimestampTz,
    TimestampLtz,
    IntervalYm,
    IntervalDs,
    Boolean,
    Rowid,
}

/// The widest VARCHAR2 / RAW an out bind may need (extended string size).
pub const MAX_STRING_BYTES: u32 = 32_767;

impl NativeType {
    /// The type of a catalog column: `ALL_TAB_COLS.DATA_TYPE` (which spells
    /// fractional-second and interval precisions inline, e.g.
    /// `TIMESTAMP(6) WITH TIME ZONE`), `DATA_PRECISION` and `DATA_SCALE`.
    pub fn from_catalog(data_type: &str, precision: Option<i64>, scale: Option<i64>) -> Self {
        let name = strip_precisions(data_type);
        match name.as_str() {
            "NUMBER" => Self::Number {
                precision: precision.and_then(|p| u8::try_from(p).ok()),
                scale: scale.and_then(|s| i8::try_from(s).ok()),
            },
            // The catalog spells INTEGER / SMALLINT / DECIMAL(p,s) as NUMBER;
            // these spellings only come from elsewhere (object attributes).
            "INTEGER" | "SMALLINT" | "INT" => Self::Number {
                precision: None,
                scale: Some(0),
            },
            "FLOAT" | "REAL" | "DOUBLE PRECISION" => Self::Float,
            "BINARY_FLOAT" => Self::BinaryFloat,
            "BINARY_DOUBLE" => Self::BinaryDouble,
            "VARCHAR2" | "VARCHAR" => Self::Varchar2,
            "NVARCHAR2" => Self::NVarchar2,
            "CHAR" => Self::Char,
            "NCHAR" => Self::NChar,
            "LONG" => Self::Long,
            "CLOB" => Self::Clob,
            "NCLOB" => Self::NClob,
            "BLOB" => Self::Blob,
            "RAW" => Self::Raw,
            "LONG RAW" => Self::LongRaw,
            "BFILE" => Self::Bfile,
            "DATE" => Self::Date,
            "TIMESTAMP" => Self::Timestamp,
            "TIMESTAMP WITH TIME ZONE" => Self::TimestampTz,
            "TIMESTAMP WITH LOCAL TIME ZONE" => Self::TimestampLtz,
            "INTERVAL YEAR TO MONTH" => Self::IntervalYm,
            "INTERVAL DAY TO SECOND" => Self::IntervalDs,
            "BOOLEAN" => Self::Boolean,
            "JSON" => Self::Json,
            "ROWID" => Self::Rowid,
            "UROWID" => Self::Urowid,
            _ => Self::Other(data_type.to_string()),
        }
    }

    /// The Arrow type values of this type are delivered as.
    pub fn data_type(&self) -> DataType {
        let utc = || DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC")));
        match self {
            Self::Number { precision, scale } => number_type(*precision, *scale),
            Self::Float | Self::BinaryDouble => DataType::Float64,
            Self::BinaryFloat => DataType::Float32,
            Self::Varchar2
            | Self::NVarchar2
            | Self::Char
            | Self::NChar
            | Self::Long
            | Self::Clob
            | Self::NClob
            | Self::Json
            | Self::Rowid
            | Self::Urowid
            | Self::Other(_) => DataType::Utf8,
            Self::Blob | Self::Raw | Self::LongRaw | Self::Bfile => DataType::Binary,
            Self::Date | Self::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            Self::TimestampTz | Self::TimestampLtz => utc(),
            Self::IntervalYm | Self::IntervalDs => DataType::Interval(IntervalUnit::MonthDayNano),
            Self::Boolean => DataType::Boolean,
        }
    }

    /// Set for types served by a fallback rather than mapped specifically.
    pub fn unsupported(&self, native_type: &str) -> Option<UnsupportedType> {
        let served_as = match self {
            Self::Bfile => ServedAs::Binary,
            Self::Other(_) => ServedAs::Text,
            _ => return None,
        };
        Some(UnsupportedType {
            native_type: native_type.to_string(),
            served_as,
        })
    }

    /// How the client layer reads a value of this type.
    pub fn decode(&self) -> Decode {
        match self {
            Self::Number { .. } | Self::Float => Decode::Number,
            Self::BinaryFloat => Decode::BinaryFloat,
            Self::BinaryDouble => Decode::BinaryDouble,
            Self::Varchar2
            | Self::NVarchar2
            | Self::Long
            | Self::Clob
            | Self::NClob
            | Self::Rowid
            | Self::Urowid => Decode::Text,
            Self::Char | Self::NChar => Decode::PaddedText,
            Self::Blob | Self::Raw | Self::LongRaw | Self::Bfile => Decode::Bytes,
            Self::Date | Self::Timestamp => Decode::Timestamp,
            Self::TimestampTz | Self::TimestampLtz => Decode::TimestampTz,
            Self::IntervalYm => Decode::IntervalYm,
            Self::IntervalDs => Decode::IntervalDs,
            Self::Boolean => Decode::Bool,
            Self::Json => Decode::Json,
            Self::Other(_) => Decode::Fallback,
        }
    }

    /// The out-bind type for returning a column of this type, `length`
    /// being its declared length in characters (bytes for RAW); `None` for
    /// types a `RETURNING … INTO` cannot bind (LONG, LONG RAW, BFILE, JSON,
    /// object types).
    pub fn out_bind(&self, length: Option<u32>) -> Option<OutBind> {
        let chars = length.unwrap_or(4_000).clamp(1, MAX_STRING_BYTES);
        Some(match self {
            Self::Number { .. } | Self::Float => OutBind::Number,
            Self::BinaryFloat => OutBind::BinaryFloat,
            Self::BinaryDouble => OutBind::BinaryDouble,
            Self::Varchar2 | Self::Char => OutBind::Varchar(chars),
            Self::NVarchar2 | Self::NChar => OutBind::NVarchar(chars),
            Self::Clob => OutBind::Clob,
            Self::NClob => OutBind::NClob,
            Self::Raw => OutBind::Raw(chars),
            Self::Blob => OutBind::Blob,
            Self::Date => OutBind::Date,
            Self::Timestamp => OutBind::Timestamp,
            Self::TimestampTz => OutBind::TimestampTz,
            Self::TimestampLtz => OutBind::TimestampLtz,
            Self::IntervalYm => OutBind::IntervalYm,
            Self::IntervalDs => OutBind::IntervalDs,
            Self::Boolean => OutBind::Boolean,
            Self::Rowid | Self::Urowid => OutBind::Rowid,
            Self::Long | Self::LongRaw | Self::Bfile | Self::Json | Self::Other(_) => return None,
        })
    }
}

/// `NUMBER(p,s)` as Arrow: a decimal wide enough for every value the column
/// can hold, or exact text when it has no precision and no scale.
pub fn number_type(precision: Option<u8>, scale: Option<i8>) -> DataType {
    let (precision, scale) = match (precision, scale) {
        (None, None) => return DataType::Utf8,
        // `NUMBER(*,s)`: 38 digits at scale s.
        (None, Some(s)) => (38_i16, i16::from(s)),
        (Some(p), s) => (i16::from(p), i16::from(s.unwrap_or(0))),
    };
    // Scale above precision (`NUMBER(3,5)`: |v| < 0.001) needs `s` digits;
    // a negative scale (`NUMBER(5,-2)`: multiples of 100 below 10^7) needs
    // `p - s` integer digits.
    let (precision, scale) = if scale < 0 {
        (precision - scale, 0)
    } else {
        (precision.max(scale), scale)
    };
    match (u8::try_from(precision), i8::try_from(scale)) {
        (Ok(p @ 1..=38), Ok(s)) => DataType::Decimal128(p, s),
        (Ok(p @ 39..=76), Ok(s)) => DataType::Decimal256(p, s),
        _ => DataType::Utf8,
    }
}

/// `TIMESTAMP(6) WITH TIME ZONE` → `TIMESTAMP WITH TIME ZONE`,
/// `INTERVAL DAY(2) TO SECOND(6)` → `INTERVAL DAY TO SECOND`.
fn strip_precisions(data_type: &str) -> String {
    let mut out = String::with_capacity(data_type.len());
    let mut depth = 0_u32;
    for c in data_type.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The `native_type` shown in the catalog: the declared type with its
/// modifiers, as Oracle's DDL spells it (`NUMBER(12,2)`, `VARCHAR2(80)`,
/// `TIMESTAMP(6) WITH TIME ZONE`).
pub fn native_type_text(
    data_type: &str,
    precision: Option<i64>,
    scale: Option<i64>,
    char_length: Option<i64>,
    data_length: Option<i64>,
) -> String {
    match data_type {
        "NUMBER" => match (precision, scale) {
            (None, None) => "NUMBER".to_string(),
            (None, Some(s)) => format!("NUMBER(*,{s})"),
            (Some(p), None | Some(0)) => format!("NUMBER({p})"),
            (Some(p), Some(s)) => format!("NUMBER({p},{s})"),
        },
        "FLOAT" => match precision {
            Some(b) => format!("FLOAT({b})"),
            None => "FLOAT".to_string(),
        },
        "VARCHAR2" | "NVARCHAR2" | "CHAR" | "NCHAR" => match char_length.filter(|n| *n > 0) {
            Some(n) => format!("{data_type}({n})"),
            None => data_type.to_string(),
        },
        "RAW" => match data_length {
            Some(n) => format!("RAW({n})"),
            None => "RAW".to_string(),
        },
        other => other.to_string(),
    }
}

/// The declared length (characters; bytes for RAW) in a native type text
/// such as `VARCHAR2(80)`, for sizing out binds.
pub fn declared_length(native_type: &str) -> Option<u32> {
    let open = native_type.find('(')?;
    let close = native_type[open..].find(')')? + open;
    let inner = &native_type[open + 1..close];
    if inner.contains(',') {
        return None;
    }
    inner.trim().parse().ok()
}

/// Parses a catalog `native_type` text back into its type (the write path
/// only has the catalog's column model).
pub fn parse_native_type(native_type: &str) -> NativeType {
    let name = strip_precisions(native_type);
    if name == "NUMBER" {
        let inner = native_type
            .find('(')
            .and_then(|open| native_type.get(open + 1..native_type.rfind(')')?));
        let (precision, scale) = match inner {
            None => (None, None),
            Some(inner) => {
                let mut parts = inner.split(',').map(str::trim);
                let p = parts.next().and_then(|p| p.parse::<u8>().ok());
                let s = parts.next().map_or(Some(0), |s| s.parse::<i8>().ok());
                (p, s)
            }
        };
        return NativeType::Number { precision, scale };
    }
    NativeType::from_catalog(&name, None, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn utc() -> DataType {
        DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC")))
    }

    /// Every type of the mapping table: catalog spelling, precision, scale →
    /// Arrow type and whether it is flagged unsupported.
    #[rstest]
    #[case("NUMBER", Some(12), Some(2), DataType::Decimal128(12, 2), false)]
    #[case("NUMBER", Some(38), Some(0), DataType::Decimal128(38, 0), false)]
    #[case("NUMBER", Some(1), Some(0), DataType::Decimal128(1, 0), false)]
    #[case("NUMBER", Some(10), Some(0), DataType::Decimal128(10, 0), false)]
    #[case("NUMBER", Some(3), Some(5), DataType::Decimal128(5, 5), false)]
    #[case("NUMBER", Some(5), Some(-2), DataType::Decimal128(7, 0), false)]
    #[case("NUMBER", Some(38), Some(-84), DataType::Utf8, false)]
    #[case("NUMBER", Some(30), Some(-20), DataType::Decimal256(50, 0), false)]
    #[case("NUMBER", None, Some(0), DataType::Decimal128(38, 0), false)]
    #[case("NUMBER", None, Some(2), DataType::Decimal128(38, 2), false)]
    #[case("NUMBER", None, None, DataType::Utf8, false)]
    #[case("FLOAT", Some(126), None, DataType::Float64, false)]
    #[case("FLOAT", Some(63), None, DataType::Float64, false)]
    #[case("BINARY_FLOAT", None, None, DataType::Float32, false)]
    #[case("BINARY_DOUBLE", None, None, DataType::Float64, false)]
    #[case("VARCHAR2", None, None, DataType::Utf8, false)]
    #[case("NVARCHAR2", None, None, DataType::Utf8, false)]
    #[case("CHAR", None, None, DataType::Utf8, false)]
    #[case("NCHAR", None, None, DataType::Utf8, false)]
    #[case("CLOB", None, None, DataType::Utf8, false)]
    #[case("NCLOB", None, None, DataType::Utf8, false)]
    #[case("LONG", None, None, DataType::Utf8, false)]
    #[case("BLOB", None, None, DataType::Binary, false)]
    #[case("RAW", None, None, DataType::Binary, false)]
    #[case("LONG RAW", None, None, DataType::Binary, false)]
    #[case(
        "DATE",
        None,
        None,
        DataType::Timestamp(TimeUnit::Microsecond, None),
        false
    )]
    #[case(
        "TIMESTAMP(6)",
        None,
        Some(6),
        DataType::Timestamp(TimeUnit::Microsecond, None),
        false
    )]
    #[case(
        "TIMESTAMP(9)",
        None,
        Some(9),
        DataType::Timestamp(TimeUnit::Microsecond, None),
        false
    )]
    #[case("TIMESTAMP(6) WITH TIME ZONE", None, Some(6), utc(), false)]
    #[case("TIMESTAMP(3) WITH LOCAL TIME ZONE", None, Some(3), utc(), false)]
    #[case(
        "INTERVAL YEAR(2) TO MONTH",
        Some(2),
        Some(0),
        DataType::Interval(IntervalUnit::MonthDayNano),
        false
    )]
    #[case(
        "INTERVAL DAY(2) TO SECOND(6)",
        Some(2),
        Some(6),
        DataType::Interval(IntervalUnit::MonthDayNano),
        false
    )]
    #[case("BOOLEAN", None, None, DataType::Boolean, false)]
    #[case("JSON", None, None, DataType::Utf8, false)]
    #[case("ROWID", None, None, DataType::Utf8, false)]
    #[case("UROWID", None, None, DataType::Utf8, false)]
    #[case("XMLTYPE", None, None, DataType::Utf8, true)]
    #[case("SDO_GEOMETRY", None, None, DataType::Utf8, true)]
    #[case("BFILE", None, None, DataType::Binary, true)]
    fn catalog_types_map_to_arrow(
        #[case] data_type: &str,
        #[case] precision: Option<i64>,
        #[case] scale: Option<i64>,
        #[case] arrow: DataType,
        #[case] unsupported: bool,
    ) {
        let native = NativeType::from_catalog(data_type, precision, scale);
        assert_eq!(native.data_type(), arrow, "{data_type}");
        assert_eq!(
            native.unsupported(data_type).is_some(),
            unsupported,
            "{data_type}"
        );
    }

    #[test]
    fn unsupported_types_say_how_they_are_served() {
        let xml = NativeType::from_catalog("XMLTYPE", None, None);
        let marker = xml.unsupported("XMLTYPE").unwrap();
        assert_eq!(marker.native_type, "XMLTYPE");
        assert_eq!(marker.served_as, ServedAs::Text);
        assert_eq!(xml.decode(), Decode::Fallback);
        assert_eq!(
            NativeType::Bfile.unsupported("BFILE").unwrap().served_as,
            ServedAs::Binary
        );
    }

    #[test]
    fn char_types_are_read_without_padding_and_json_is_marked() {
        assert_eq!(NativeType::Char.decode(), Decode::PaddedText);
        assert_eq!(NativeType::NChar.decode(), Decode::PaddedText);
        assert_eq!(NativeType::Varchar2.decode(), Decode::Text);
        // The API layer recognises JSON by the lowercase native type `json`.
        let text = native_type_text("JSON", None, None, None, None);
        assert_eq!(text.to_ascii_lowercase(), "json");
        assert_eq!(NativeType::Json.decode(), Decode::Json);
    }

    #[rstest]
    #[case("NUMBER", Some(12), Some(2), None, None, "NUMBER(12,2)")]
    #[case("NUMBER", Some(10), Some(0), None, None, "NUMBER(10)")]
    #[case("NUMBER", None, Some(0), None, None, "NUMBER(*,0)")]
    #[case("NUMBER", None, None, None, None, "NUMBER")]
    #[case("FLOAT", Some(126), None, None, None, "FLOAT(126)")]
    #[case("VARCHAR2", None, None, Some(80), Some(320), "VARCHAR2(80)")]
    #[case("NCHAR", None, None, Some(3), Some(6), "NCHAR(3)")]
    #[case("RAW", None, None, None, Some(16), "RAW(16)")]
    #[case(
        "TIMESTAMP(6) WITH TIME ZONE",
        None,
        Some(6),
        None,
        Some(13),
        "TIMESTAMP(6) WITH TIME ZONE"
    )]
    fn native_type_texts(
        #[case] data_type: &str,
        #[case] precision: Option<i64>,
        #[case] scale: Option<i64>,
        #[case] char_length: Option<i64>,
        #[case] data_length: Option<i64>,
        #[case] expected: &str,
    ) {
        let text = native_type_text(data_type, precision, scale, char_length, data_length);
        assert_eq!(text, expected);
        // The write path re-reads the catalog text: it must map the same way.
        assert_eq!(
            parse_native_type(&text).data_type(),
            NativeType::from_catalog(data_type, precision, scale).data_type(),
            "{text}"
        );
    }

    #[test]
    fn out_binds_are_sized_by_the_declared_length() {
        assert_eq!(declared_length("VARCHAR2(80)"), Some(80));
        assert_eq!(declared_length("NUMBER(12,2)"), None);
        assert_eq!(declared_length("CLOB"), None);
        assert_eq!(
            NativeType::Varchar2.out_bind(Some(80)),
            Some(OutBind::Varchar(80))
        );
        assert_eq!(
            NativeType::Varchar2.out_bind(Some(100_000)),
            Some(OutBind::Varchar(MAX_STRING_BYTES))
        );
        assert_eq!(NativeType::Long.out_bind(None), None);
        assert_eq!(NativeType::Json.out_bind(None), None);
        assert_eq!(
            NativeType::from_catalog("TIMESTAMP(6) WITH TIME ZONE", None, Some(6)).out_bind(None),
            Some(OutBind::TimestampTz)
        );
    }
}
