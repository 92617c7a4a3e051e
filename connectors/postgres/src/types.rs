//! PostgreSQL types: how each native type maps to Arrow, and which ones the
//! connector decodes itself from the binary wire format.
//!
//! # Type mapping
//!
//! Types are recognised by OID for built-in types and by name for extension
//! types; domains map through to their base type (and take the domain's type
//! modifier when the column has none); arrays map to `List` of their element
//! type's mapping.
//!
//! | PostgreSQL                                   | Arrow                                  | Value delivered                                  |
//! |----------------------------------------------|----------------------------------------|--------------------------------------------------|
//! | `smallint` / `integer` / `bigint`            | `Int16` / `Int32` / `Int64`            | the integer                                      |
//! | `oid`                                        | `Int64`                                | the unsigned 32-bit value                        |
//! | `real` / `double precision`                  | `Float32` / `Float64`                  | the float (NaN and ±Infinity included)           |
//! | `numeric(p,s)`, p ≤ 38                       | `Decimal128(p,s)`                      | exact, from the base-10000 digits                |
//! | `numeric(p,s)`, 38 < p ≤ 76                  | `Decimal256(p,s)`                      | exact                                            |
//! | `numeric` (unconstrained) or p > 76          | `Utf8`                                 | exact decimal text (`NaN`, `Infinity` as words)  |
//! | `money`                                      | `Decimal128(19,2)`                     | exact (assumes 2 fractional digits, `lc_monetary` C/en) |
//! | `boolean`                                    | `Boolean`                              |                                                  |
//! | `"char"`, `char(n)`, `varchar`, `text`, `name`, `citext` | `Utf8`                     | the text (`char(n)` keeps its padding)           |
//! | `bytea`                                      | `Binary`                               | the bytes                                        |
//! | `date`                                       | `Date32`                               |                                                  |
//! | `time`                                       | `Time64(µs)`                           |                                                  |
//! | `timetz`                                     | `Utf8`                                 | `HH:MM:SS[.ffffff]±HH[:MM[:SS]]` (see below)     |
//! | `timestamp`                                  | `Timestamp(µs, None)`                  |                                                  |
//! | `timestamptz`                                | `Timestamp(µs, "UTC")`                 | the instant, in UTC                              |
//! | `interval`                                   | `Interval(MonthDayNano)`               | months, days and microseconds kept apart         |
//! | `uuid`                                       | `Utf8`                                 | lowercase hyphenated                             |
//! | `json` / `jsonb`                             | `Utf8`                                 | the JSON text as the server sends it             |
//! | enum types                                   | `Utf8`                                 | the label; `native_type` is the enum's name      |
//! | `bit(n)` / `varbit`                          | `Utf8`                                 | `0`/`1` digits                                   |
//! | `inet` / `cidr`                              | `Utf8`                                 | as PostgreSQL prints it (`10.0.0.1`, `10.0.0.0/8`) |
//! | `macaddr` / `macaddr8`                       | `Utf8`                                 | `08:00:2b:01:02:03`                              |
//! | `xml`                                        | `Utf8`                                 | the document text                                |
//! | PostGIS `geometry` / `geography`             | `Binary`                               | EWKB (the types' binary wire format)             |
//! | `T[]` for any mapped `T`                     | `List<T's mapping>`                    | one-dimensional lists (see below)                |
//! | domains                                      | the base type's mapping                |                                                  |
//! | anything else (ranges, geometric types, `tsvector`, composites, `hstore`, `reg*`, arrays of those, ...) | `Utf8`, flagged `unsupported_type` (served as text) | the type's text output |
//!
//! Choices worth knowing:
//!
//! * `timetz` is delivered as text, not flagged unsupported: Arrow has no
//!   time-of-day-with-offset type and dropping or normalising the offset would
//!   change the value, while the text is lossless and sorts as PostgreSQL
//!   prints it.
//! * Values that the Arrow type cannot hold are errors, never approximations:
//!   a `NaN` (or `Infinity`) in a constrained `numeric(p,s)` column, an
//!   `infinity` date or timestamp, `24:00:00`, an interval whose time part
//!   overflows nanoseconds, and multi-dimensional arrays (decoded as nested
//!   lists, which a `List<T>` column refuses) fail the query with the column
//!   named. Cast such columns to `text` in SQL to read them anyway.
//! * The connector's sessions run with `TimeZone=UTC` and `DateStyle=ISO`,
//!   so every text rendering of dates and times is stable.
//!
//! # Text fallback
//!
//! tokio-postgres asks for every result column in binary format, and the
//! connector decodes the binary format of every mapped type itself (see
//! `decode.rs`). For a column of any other type there is no decoder, so the
//! statement is rewritten to have the server send that column as text: after
//! preparing the statement and finding an undecodable column, the connector
//! prepares instead
//!
//! ```sql
//! WITH "tributary_fallback"("c1", "c2", "c3") AS (
//! <original statement>
//! ) SELECT "c1", "c2"::text, "c3" FROM "tributary_fallback"
//! ```
//!
//! The positional aliases keep every column even when the original has
//! duplicate or unnamed columns, the result keeps the original column names
//! (taken from the first preparation), and the parameters keep their
//! positions and types. A CTE rather than `FROM (<original>) AS t(...)` is
//! used because it also accepts data-modifying statements, so `INSERT …
//! RETURNING` of such a column works the same way. Statements that cannot be
//! wrapped (`SHOW`, `EXPLAIN`) only return text columns and never need it.
//!
//! # Parameters
//!
//! Bound values are converted by the type PostgreSQL infers for each
//! parameter (`encode.rs`): typed values (integers with range checks, floats,
//! exact decimals, dates and times, intervals, UUIDs, JSON, bytes, lists as
//! arrays) are encoded in binary; a `Text` value bound to a non-text
//! parameter is sent in text format for the server to parse with the type's
//! own input function (so `"2024-05-01"` becomes a date and a malformed value
//! fails with PostgreSQL's message); values bound to unmapped types are sent
//! as their text. A value that cannot be converted fails with
//! `InvalidInput` naming the parameter position.

use std::sync::Arc;

use arrow_schema::{DataType, Field, IntervalUnit, TimeUnit};
use postgres_types::{Kind, Type};
use tributary_schema_cache::{ServedAs, UnsupportedType};

/// Built-in type OIDs (stable across PostgreSQL versions).
pub(crate) mod oid {
    pub const BOOL: u32 = 16;
    pub const BYTEA: u32 = 17;
    pub const CHAR: u32 = 18;
    pub const NAME: u32 = 19;
    pub const INT8: u32 = 20;
    pub const INT2: u32 = 21;
    pub const INT4: u32 = 23;
    pub const TEXT: u32 = 25;
    pub const OID: u32 = 26;
    pub const JSON: u32 = 114;
    pub const XML: u32 = 142;
    pub const CIDR: u32 = 650;
    pub const FLOAT4: u32 = 700;
    pub const FLOAT8: u32 = 701;
    pub const UNKNOWN: u32 = 705;
    pub const MACADDR8: u32 = 774;
    pub const MONEY: u32 = 790;
    pub const MACADDR: u32 = 829;
    pub const INET: u32 = 869;
    pub const BPCHAR: u32 = 1042;
    pub const VARCHAR: u32 = 1043;
    pub const DATE: u32 = 1082;
    pub const TIME: u32 = 1083;
    pub const TIMESTAMP: u32 = 1114;
    pub const TIMESTAMPTZ: u32 = 1184;
    pub const INTERVAL: u32 = 1186;
    pub const TIMETZ: u32 = 1266;
    pub const BIT: u32 = 1560;
    pub const VARBIT: u32 = 1562;
    pub const NUMERIC: u32 = 1700;
    pub const VOID: u32 = 2278;
    pub const UUID: u32 = 2950;
    pub const JSONB: u32 = 3802;
}

/// PostgreSQL's built-in mapped types by internal name (`pg_type.typname`,
/// `information_schema`'s `udt_name`), with the SQL name `format_type`
/// prints: for catalogs that name types rather than give their OIDs.
const BUILTIN_NAMES: [(&str, u32, &str); 32] = [
    ("bool", oid::BOOL, "boolean"),
    ("bytea", oid::BYTEA, "bytea"),
    ("char", oid::CHAR, "\"char\""),
    ("name", oid::NAME, "name"),
    ("int8", oid::INT8, "bigint"),
    ("int2", oid::INT2, "smallint"),
    ("int4", oid::INT4, "integer"),
    ("text", oid::TEXT, "text"),
    ("oid", oid::OID, "oid"),
    ("json", oid::JSON, "json"),
    ("xml", oid::XML, "xml"),
    ("cidr", oid::CIDR, "cidr"),
    ("float4", oid::FLOAT4, "real"),
    ("float8", oid::FLOAT8, "double precision"),
    ("unknown", oid::UNKNOWN, "unknown"),
    ("macaddr8", oid::MACADDR8, "macaddr8"),
    ("money", oid::MONEY, "money"),
    ("macaddr", oid::MACADDR, "macaddr"),
    ("inet", oid::INET, "inet"),
    ("bpchar", oid::BPCHAR, "character"),
    ("varchar", oid::VARCHAR, "character varying"),
    ("date", oid::DATE, "date"),
    ("time", oid::TIME, "time without time zone"),
    ("timestamp", oid::TIMESTAMP, "timestamp without time zone"),
    ("timestamptz", oid::TIMESTAMPTZ, "timestamp with time zone"),
    ("interval", oid::INTERVAL, "interval"),
    ("timetz", oid::TIMETZ, "time with time zone"),
    ("bit", oid::BIT, "bit"),
    ("varbit", oid::VARBIT, "bit varying"),
    ("numeric", oid::NUMERIC, "numeric"),
    ("uuid", oid::UUID, "uuid"),
    ("jsonb", oid::JSONB, "jsonb"),
];

/// The OID and SQL name of a built-in mapped type, by internal name.
pub(crate) fn builtin_by_name(name: &str) -> Option<(u32, &'static str)> {
    BUILTIN_NAMES
        .iter()
        .find(|(udt, _, _)| *udt == name)
        .map(|(_, oid, sql)| (*oid, *sql))
}

/// Whether the driver knows `oid` without asking the server (it looks any
/// other type up in `pg_catalog.pg_type`).
pub(crate) fn driver_knows(oid: u32) -> bool {
    Type::from_oid(oid).is_some()
}

/// `numeric(p,s)`'s type modifier (the inverse of [`numeric_precision_scale`]);
/// the scale keeps its 11-bit two's complement form, so negative scales
/// round-trip.
pub(crate) fn numeric_typmod(precision: i32, scale: i32) -> i32 {
    ((precision << 16) | (scale & 0x7ff)) + 4
}

/// A PostgreSQL type as far as the mapping needs it, built either from the
/// catalog (introspection) or from the driver's type (queries, parameters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PgType {
    pub oid: u32,
    /// `pg_type.typname`.
    pub name: String,
    pub kind: PgKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PgKind {
    /// A base type (built-in or from an extension).
    Base,
    Enum,
    /// A domain over `base`; `typmod` is the domain's own type modifier.
    Domain {
        base: Box<PgType>,
        typmod: i32,
    },
    Array(Box<PgType>),
    /// Pseudo-types (`void`, `record`, `unknown`, ...).
    Pseudo,
    /// Composites, ranges, multiranges.
    Other,
}

impl PgType {
    #[cfg(test)]
    pub fn base(oid: u32, name: &str) -> Self {
        Self {
            oid,
            name: name.to_string(),
            kind: PgKind::Base,
        }
    }

    /// A type as `information_schema` describes it: `data_type` is the SQL
    /// name, `ARRAY` or `USER-DEFINED`, and `udt_name` the internal name
    /// (`_elem` for arrays; a domain's base type for domains). Types that
    /// are not built in are [`PgKind::Other`]: served as text.
    pub fn from_information_schema(data_type: &str, udt_name: &str) -> Self {
        let named = |name: &str| match builtin_by_name(name) {
            Some((oid, _)) => Self {
                oid,
                name: name.to_string(),
                kind: PgKind::Base,
            },
            None => Self {
                oid: 0,
                name: name.to_string(),
                kind: PgKind::Other,
            },
        };
        match data_type {
            "ARRAY" => {
                let elem = udt_name.strip_prefix('_').unwrap_or(udt_name);
                Self {
                    oid: 0,
                    name: udt_name.to_string(),
                    kind: PgKind::Array(Box::new(named(elem))),
                }
            }
            "USER-DEFINED" => Self {
                oid: 0,
                name: udt_name.to_string(),
                kind: PgKind::Other,
            },
            _ => named(udt_name),
        }
    }

    /// The driver's view of a type (domains carry no type modifier here).
    pub fn from_driver(ty: &Type) -> Self {
        let kind = match ty.kind() {
            Kind::Simple => PgKind::Base,
            Kind::Enum(_) => PgKind::Enum,
            Kind::Domain(base) => PgKind::Domain {
                base: Box::new(Self::from_driver(base)),
                typmod: -1,
            },
            Kind::Array(elem) => PgKind::Array(Box::new(Self::from_driver(elem))),
            Kind::Pseudo => PgKind::Pseudo,
            _ => PgKind::Other,
        };
        Self {
            oid: ty.oid(),
            name: ty.name().to_string(),
            kind,
        }
    }
}

/// The representations the connector encodes and decodes itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scalar {
    Bool,
    Int2,
    Int4,
    Int8,
    Oid,
    Float4,
    Float8,
    Numeric,
    Money,
    /// Any type whose binary format is its UTF-8 text (text, varchar,
    /// name, citext, xml, enum labels, unknown).
    Text,
    /// `char(n)`: text whose trailing blanks are padding. PostgreSQL ignores
    /// them in comparisons and drops them when casting to text; we deliver
    /// the value without them, so equality outside PostgreSQL (a join or
    /// filter in the engine) answers as PostgreSQL would.
    PaddedText,
    /// The one-byte `"char"`.
    Char,
    Bytea,
    Date,
    Time,
    TimeTz,
    Timestamp,
    TimestampTz,
    Interval,
    Uuid,
    Json,
    Jsonb,
    Bit,
    Inet,
    MacAddr,
    /// PostGIS geometry / geography: EWKB bytes.
    Ewkb,
    /// `void`: no value.
    Void,
    Array(Box<Scalar>),
}

impl Scalar {
    /// The Arrow type of this representation; `typmod` is the column's (or
    /// domain's) type modifier, which only `numeric` uses.
    pub fn data_type(&self, typmod: i32) -> DataType {
        match self {
            Self::Bool => DataType::Boolean,
            Self::Int2 => DataType::Int16,
            Self::Int4 => DataType::Int32,
            Self::Int8 | Self::Oid => DataType::Int64,
            Self::Float4 => DataType::Float32,
            Self::Float8 => DataType::Float64,
            Self::Numeric => numeric_type(typmod),
            Self::Money => DataType::Decimal128(19, 2),
            Self::Bytea | Self::Ewkb => DataType::Binary,
            Self::Date => DataType::Date32,
            Self::Time => DataType::Time64(TimeUnit::Microsecond),
            Self::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            Self::TimestampTz => DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC"))),
            Self::Interval => DataType::Interval(IntervalUnit::MonthDayNano),
            Self::Text
            | Self::PaddedText
            | Self::Char
            | Self::TimeTz
            | Self::Uuid
            | Self::Json
            | Self::Jsonb
            | Self::Bit
            | Self::Inet
            | Self::MacAddr
            | Self::Void => DataType::Utf8,
            Self::Array(elem) => list_of(elem.data_type(typmod)),
        }
    }
}

fn list_of(item: DataType) -> DataType {
    DataType::List(Arc::new(Field::new("item", item, true)))
}

/// `numeric(p,s)` as Arrow: a decimal wide enough for every value the column
/// can hold, or exact text when it is unconstrained or too wide.
pub(crate) fn numeric_type(typmod: i32) -> DataType {
    let Some((precision, scale)) = numeric_precision_scale(typmod) else {
        return DataType::Utf8;
    };
    // PostgreSQL 15 allows scale > precision (`numeric(3,5)`: |v| < 0.001) and
    // negative scales (`numeric(3,-2)`: multiples of 100 below 100000).
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

/// Decodes `numeric`'s type modifier into (precision, scale).
pub(crate) fn numeric_precision_scale(typmod: i32) -> Option<(i32, i32)> {
    if typmod < 4 {
        return None;
    }
    let t = typmod - 4;
    let precision = (t >> 16) & 0xffff;
    // The scale is an 11-bit two's complement number since PostgreSQL 15.
    let scale = ((t & 0x7ff) ^ 1024) - 1024;
    Some((precision, scale))
}

/// The representation of `ty`, or `None` when the connector has no binary
/// decoder for it (the column is then read as text, see the module docs).
pub(crate) fn classify(ty: &PgType) -> Option<Scalar> {
    match &ty.kind {
        PgKind::Domain { base, .. } => classify(base),
        PgKind::Array(elem) => classify(elem).map(|e| Scalar::Array(Box::new(e))),
        PgKind::Enum => Some(Scalar::Text),
        PgKind::Other => None,
        PgKind::Base | PgKind::Pseudo => classify_base(ty),
    }
}

fn classify_base(ty: &PgType) -> Option<Scalar> {
    Some(match ty.oid {
        oid::BOOL => Scalar::Bool,
        oid::INT2 => Scalar::Int2,
        oid::INT4 => Scalar::Int4,
        oid::INT8 => Scalar::Int8,
        oid::OID => Scalar::Oid,
        oid::FLOAT4 => Scalar::Float4,
        oid::FLOAT8 => Scalar::Float8,
        oid::NUMERIC => Scalar::Numeric,
        oid::MONEY => Scalar::Money,
        oid::TEXT | oid::VARCHAR | oid::NAME | oid::XML | oid::UNKNOWN => Scalar::Text,
        oid::BPCHAR => Scalar::PaddedText,
        oid::CHAR => Scalar::Char,
        oid::BYTEA => Scalar::Bytea,
        oid::DATE => Scalar::Date,
        oid::TIME => Scalar::Time,
        oid::TIMETZ => Scalar::TimeTz,
        oid::TIMESTAMP => Scalar::Timestamp,
        oid::TIMESTAMPTZ => Scalar::TimestampTz,
        oid::INTERVAL => Scalar::Interval,
        oid::UUID => Scalar::Uuid,
        oid::JSON => Scalar::Json,
        oid::JSONB => Scalar::Jsonb,
        oid::BIT | oid::VARBIT => Scalar::Bit,
        oid::INET | oid::CIDR => Scalar::Inet,
        oid::MACADDR | oid::MACADDR8 => Scalar::MacAddr,
        oid::VOID => Scalar::Void,
        // Extension types have no fixed OID.
        _ if ty.kind == PgKind::Base => match ty.name.as_str() {
            "citext" => Scalar::Text,
            "geometry" | "geography" => Scalar::Ewkb,
            _ => return None,
        },
        _ => return None,
    })
}

/// The type modifier that applies to `ty`'s values: the column's, else the
/// innermost domain's that sets one.
fn effective_typmod(ty: &PgType, typmod: i32) -> (&PgType, i32) {
    match &ty.kind {
        PgKind::Domain {
            base,
            typmod: domain_typmod,
        } => effective_typmod(base, if typmod == -1 { *domain_typmod } else { typmod }),
        _ => (ty, typmod),
    }
}

/// The Arrow type of a value of `ty` with modifier `typmod`; `None` when the
/// type is not mapped (served as text).
pub(crate) fn data_type(ty: &PgType, typmod: i32) -> Option<DataType> {
    let (ty, typmod) = effective_typmod(ty, typmod);
    match &ty.kind {
        PgKind::Array(elem) => data_type(elem, typmod).map(list_of),
        _ => classify(ty).map(|s| s.data_type(typmod)),
    }
}

/// How a catalog column of type `ty` is delivered.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ColumnType {
    pub data_type: DataType,
    pub unsupported: Option<UnsupportedType>,
}

/// The mapping of a column: its Arrow type, or text flagged as unsupported.
pub(crate) fn column_type(ty: &PgType, typmod: i32, native_type: &str) -> ColumnType {
    match data_type(ty, typmod) {
        Some(data_type) => ColumnType {
            data_type,
            unsupported: None,
        },
        None => ColumnType {
            data_type: DataType::Utf8,
            unsupported: Some(UnsupportedType {
                native_type: native_type.to_string(),
                served_as: ServedAs::Text,
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_modifiers() {
        assert_eq!(numeric_type(-1), DataType::Utf8);
        assert_eq!(
            numeric_type(numeric_typmod(12, 2)),
            DataType::Decimal128(12, 2)
        );
        assert_eq!(
            numeric_type(numeric_typmod(38, 0)),
            DataType::Decimal128(38, 0)
        );
        assert_eq!(
            numeric_type(numeric_typmod(39, 4)),
            DataType::Decimal256(39, 4)
        );
        assert_eq!(
            numeric_type(numeric_typmod(76, 10)),
            DataType::Decimal256(76, 10)
        );
        assert_eq!(numeric_type(numeric_typmod(77, 10)), DataType::Utf8);
        assert_eq!(numeric_type(numeric_typmod(1000, 0)), DataType::Utf8);
        assert_eq!(
            numeric_type(numeric_typmod(3, 5)),
            DataType::Decimal128(5, 5)
        );
        assert_eq!(
            numeric_type(numeric_typmod(3, -2)),
            DataType::Decimal128(5, 0)
        );
    }

    #[test]
    fn domains_arrays_and_extensions() {
        let numeric = PgType::base(oid::NUMERIC, "numeric");
        let domain = PgType {
            oid: 90_000,
            name: "price".into(),
            kind: PgKind::Domain {
                base: Box::new(numeric),
                typmod: numeric_typmod(10, 2),
            },
        };
        assert_eq!(data_type(&domain, -1), Some(DataType::Decimal128(10, 2)));
        let array = PgType {
            oid: 90_001,
            name: "_price".into(),
            kind: PgKind::Array(Box::new(domain)),
        };
        assert_eq!(
            data_type(&array, -1),
            Some(list_of(DataType::Decimal128(10, 2)))
        );
        assert_eq!(
            classify(&PgType::base(90_002, "citext")),
            Some(Scalar::Text)
        );
        assert_eq!(
            classify(&PgType::base(90_003, "geometry")),
            Some(Scalar::Ewkb)
        );
        let unknown = PgType::base(90_004, "hstore");
        let mapped = column_type(&unknown, -1, "hstore");
        assert_eq!(mapped.data_type, DataType::Utf8);
        assert_eq!(
            mapped.unsupported.map(|u| u.served_as),
            Some(ServedAs::Text)
        );
        let range = PgType {
            oid: 3904,
            name: "int4range".into(),
            kind: PgKind::Other,
        };
        let ranges = PgType {
            oid: 3905,
            name: "_int4range".into(),
            kind: PgKind::Array(Box::new(range)),
        };
        assert_eq!(classify(&ranges), None);
    }

    #[test]
    fn information_schema_types_map_like_catalog_types() {
        // (data_type, udt_name, typmod) against the OID-built type.
        let cases: [(&str, &str, i32, PgType); 6] = [
            ("integer", "int4", -1, PgType::base(oid::INT4, "int4")),
            (
                "numeric",
                "numeric",
                numeric_typmod(12, 2),
                PgType::base(oid::NUMERIC, "numeric"),
            ),
            (
                "timestamp with time zone",
                "timestamptz",
                -1,
                PgType::base(oid::TIMESTAMPTZ, "timestamptz"),
            ),
            (
                "character",
                "bpchar",
                -1,
                PgType::base(oid::BPCHAR, "bpchar"),
            ),
            ("jsonb", "jsonb", -1, PgType::base(oid::JSONB, "jsonb")),
            (
                "ARRAY",
                "_numeric",
                numeric_typmod(8, 3),
                PgType {
                    oid: 1231,
                    name: "_numeric".into(),
                    kind: PgKind::Array(Box::new(PgType::base(oid::NUMERIC, "numeric"))),
                },
            ),
        ];
        for (data_type_name, udt, typmod, catalog) in cases {
            let named = PgType::from_information_schema(data_type_name, udt);
            assert_eq!(
                data_type(&named, typmod),
                data_type(&catalog, typmod),
                "{udt}"
            );
            assert!(data_type(&named, typmod).is_some(), "{udt}");
        }
        for (data_type_name, udt) in [
            ("USER-DEFINED", "mood"),
            ("USER-DEFINED", "citext"),
            ("ARRAY", "_mood"),
            ("tsvector", "tsvector"),
        ] {
            let named = PgType::from_information_schema(data_type_name, udt);
            let mapped = column_type(&named, -1, udt);
            assert_eq!(mapped.data_type, DataType::Utf8, "{udt}");
            assert!(mapped.unsupported.is_some(), "{udt}");
        }
        // A negative scale survives information_schema's unsigned rendering.
        assert_eq!(
            numeric_type(numeric_typmod(3, 2046)),
            DataType::Decimal128(5, 0)
        );
        assert!(driver_knows(oid::JSONB) && !driver_knows(90_000));
        for (udt, oid, _) in BUILTIN_NAMES {
            assert!(driver_knows(oid), "{udt}");
            assert_eq!(
                Type::from_oid(oid).map(|t| t.name().to_string()),
                Some(udt.to_string())
            );
        }
    }

    #[test]
    fn driver_types() {
        assert_eq!(
            classify(&PgType::from_driver(&Type::INT4_ARRAY)),
            Some(Scalar::Array(Box::new(Scalar::Int4)))
        );
        assert_eq!(classify(&PgType::from_driver(&Type::TS_VECTOR)), None);
        assert_eq!(classify(&PgType::from_driver(&Type::POINT)), None);
        assert_eq!(classify(&PgType::from_driver(&Type::INT4_RANGE)), None);
        assert_eq!(classify(&PgType::from_driver(&Type::REGCLASS)), None);
        assert_eq!(
            data_type(&PgType::from_driver(&Type::TIMESTAMPTZ), -1),
            Some(DataType::Timestamp(
                TimeUnit::Microsecond,
                Some(Arc::from("UTC"))
            ))
        );
    }
}
