//! SQLite declared types → Arrow types, table-driven. One function serves
//! introspection (`pragma_table_xinfo.type`) and `query()` without a schema
//! (`sqlite3_column_decltype`), so both always agree.
//!
//! SQLite is dynamically typed: a declared type only gives the column an
//! affinity. Well-known names map to specific Arrow types; other names follow
//! SQLite's own affinity rules; names that give no usable hint (no declared
//! type, `ANY`, NUMERIC affinity) are served as text and flagged.

use arrow_schema::{DataType, TimeUnit};
use tributary_schema_cache::{ServedAs, UnsupportedType};

/// What an untyped column is called in the catalog's `unsupported_type`:
/// SQLite's name for "any storage class" (as in STRICT tables).
pub(crate) const ANY_TYPE: &str = "ANY";

/// The Arrow type a declared type is served as, and whether it is only a
/// text approximation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Mapped {
    pub(crate) data_type: DataType,
    pub(crate) unsupported: Option<UnsupportedType>,
}

impl Mapped {
    fn exact(data_type: DataType) -> Self {
        Self {
            data_type,
            unsupported: None,
        }
    }

    fn text_fallback(native_type: &str) -> Self {
        Self {
            data_type: DataType::Utf8,
            unsupported: Some(UnsupportedType {
                native_type: native_type.to_string(),
                served_as: ServedAs::Text,
            }),
        }
    }
}

/// The families of declared type names we map specifically.
#[derive(Debug, Clone, Copy)]
enum Family {
    Integer,
    Boolean,
    Float,
    Decimal,
    Text,
    Blob,
    Date,
    Timestamp,
    Time,
    Any,
}

/// Declared type names (upper case, single spaces, without modifiers).
const NAMED: &[(&str, Family)] = &[
    ("INT", Family::Integer),
    ("INTEGER", Family::Integer),
    ("TINYINT", Family::Integer),
    ("SMALLINT", Family::Integer),
    ("MEDIUMINT", Family::Integer),
    ("BIGINT", Family::Integer),
    ("UNSIGNED BIG INT", Family::Integer),
    ("INT2", Family::Integer),
    ("INT4", Family::Integer),
    ("INT8", Family::Integer),
    ("BOOLEAN", Family::Boolean),
    ("BOOL", Family::Boolean),
    ("REAL", Family::Float),
    ("DOUBLE", Family::Float),
    ("DOUBLE PRECISION", Family::Float),
    ("FLOAT", Family::Float),
    ("FLOAT4", Family::Float),
    ("FLOAT8", Family::Float),
    ("DECIMAL", Family::Decimal),
    ("NUMERIC", Family::Decimal),
    ("TEXT", Family::Text),
    ("VARCHAR", Family::Text),
    ("CHAR", Family::Text),
    ("CHARACTER", Family::Text),
    ("VARYING CHARACTER", Family::Text),
    ("CHARACTER VARYING", Family::Text),
    ("NCHAR", Family::Text),
    ("NATIVE CHARACTER", Family::Text),
    ("NVARCHAR", Family::Text),
    ("CLOB", Family::Text),
    ("UUID", Family::Text),
    ("JSON", Family::Text),
    ("BLOB", Family::Blob),
    ("DATE", Family::Date),
    ("DATETIME", Family::Timestamp),
    ("TIMESTAMP", Family::Timestamp),
    ("TIME", Family::Time),
    ("ANY", Family::Any),
];

/// Maps a declared column type (as written in `CREATE TABLE`, e.g.
/// `DECIMAL(10,2)`, `varchar(80)`, or empty) to its Arrow type.
pub(crate) fn map_declared_type(declared: &str) -> Mapped {
    let upper = declared.trim().to_ascii_uppercase();
    if upper.is_empty() {
        return Mapped::text_fallback(ANY_TYPE);
    }
    let (base, args) = split_modifiers(&upper);
    match NAMED
        .iter()
        .find(|(name, _)| *name == base)
        .map(|(_, family)| *family)
    {
        Some(Family::Integer) => Mapped::exact(DataType::Int64),
        Some(Family::Boolean) => Mapped::exact(DataType::Boolean),
        Some(Family::Float) => Mapped::exact(DataType::Float64),
        Some(Family::Decimal) => Mapped::exact(decimal_type(&args)),
        Some(Family::Text) => Mapped::exact(DataType::Utf8),
        Some(Family::Blob) => Mapped::exact(DataType::Binary),
        Some(Family::Date) => Mapped::exact(DataType::Date32),
        Some(Family::Timestamp) => Mapped::exact(DataType::Timestamp(TimeUnit::Microsecond, None)),
        Some(Family::Time) => Mapped::exact(DataType::Time64(TimeUnit::Microsecond)),
        Some(Family::Any) => Mapped::text_fallback(declared.trim()),
        None => by_affinity(&upper, declared.trim()),
    }
}

/// SQLite's affinity rules (section 3.1 of "Datatypes In SQLite"), in order.
fn by_affinity(upper: &str, declared: &str) -> Mapped {
    if upper.contains("INT") {
        Mapped::exact(DataType::Int64)
    } else if ["CHAR", "CLOB", "TEXT"].iter().any(|s| upper.contains(s)) {
        Mapped::exact(DataType::Utf8)
    } else if upper.contains("BLOB") {
        Mapped::exact(DataType::Binary)
    } else if ["REAL", "FLOA", "DOUB"].iter().any(|s| upper.contains(s)) {
        Mapped::exact(DataType::Float64)
    } else {
        // NUMERIC affinity without a name we know: values may be of any class.
        Mapped::text_fallback(declared)
    }
}

/// `DECIMAL(p,s)` → `Decimal128`/`Decimal256`; without (usable) precision,
/// or wider than 76 digits, exact decimal text.
fn decimal_type(args: &[u32]) -> DataType {
    let (precision, scale) = match args {
        [p] => (*p, 0),
        [p, s] => (*p, *s),
        _ => return DataType::Utf8,
    };
    if precision == 0 || scale > precision {
        return DataType::Utf8;
    }
    match (u8::try_from(precision), i8::try_from(scale)) {
        (Ok(p), Ok(s)) if p <= 38 => DataType::Decimal128(p, s),
        (Ok(p), Ok(s)) if p <= 76 => DataType::Decimal256(p, s),
        _ => DataType::Utf8,
    }
}

/// Splits `NAME (a, b)` into the normalized name and its numeric modifiers
/// (non-numeric modifiers are ignored).
fn split_modifiers(upper: &str) -> (String, Vec<u32>) {
    let (name, rest) = upper.split_once('(').unwrap_or((upper, ""));
    let base = name.split_whitespace().collect::<Vec<_>>().join(" ");
    let args = rest
        .trim_end()
        .trim_end_matches(')')
        .split(',')
        .filter_map(|a| a.trim().parse().ok())
        .collect();
    (base, args)
}

/// The Arrow type of an expression column without a declared type, from the
/// storage class of its first value (NULL or no rows: text).
pub(crate) fn type_of_storage_class(value: rusqlite::types::ValueRef<'_>) -> DataType {
    use rusqlite::types::ValueRef;
    match value {
        ValueRef::Integer(_) => DataType::Int64,
        ValueRef::Real(_) => DataType::Float64,
        ValueRef::Blob(_) => DataType::Binary,
        ValueRef::Text(_) | ValueRef::Null => DataType::Utf8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use rusqlite::types::ValueRef;

    #[rstest]
    #[case("INTEGER", DataType::Int64)]
    #[case("int", DataType::Int64)]
    #[case("BIGINT", DataType::Int64)]
    #[case("unsigned big int", DataType::Int64)]
    #[case("INT(11)", DataType::Int64)]
    #[case("BOOLEAN", DataType::Boolean)]
    #[case("bool", DataType::Boolean)]
    #[case("REAL", DataType::Float64)]
    #[case("DOUBLE PRECISION", DataType::Float64)]
    #[case("FLOAT", DataType::Float64)]
    #[case("DECIMAL(10,2)", DataType::Decimal128(10, 2))]
    #[case("numeric(12, 4)", DataType::Decimal128(12, 4))]
    #[case("DECIMAL(7)", DataType::Decimal128(7, 0))]
    #[case("DECIMAL(50,10)", DataType::Decimal256(50, 10))]
    #[case("DECIMAL(90,2)", DataType::Utf8)]
    #[case("DECIMAL(2,5)", DataType::Utf8)]
    #[case("NUMERIC", DataType::Utf8)]
    #[case("DECIMAL", DataType::Utf8)]
    #[case("TEXT", DataType::Utf8)]
    #[case("VARCHAR(80)", DataType::Utf8)]
    #[case("character varying(3)", DataType::Utf8)]
    #[case("NCHAR(55)", DataType::Utf8)]
    #[case("CLOB", DataType::Utf8)]
    #[case("UUID", DataType::Utf8)]
    #[case("JSON", DataType::Utf8)]
    #[case("BLOB", DataType::Binary)]
    #[case("DATE", DataType::Date32)]
    #[case("DATETIME", DataType::Timestamp(TimeUnit::Microsecond, None))]
    #[case("timestamp", DataType::Timestamp(TimeUnit::Microsecond, None))]
    #[case("TIME", DataType::Time64(TimeUnit::Microsecond))]
    // Affinity rules for names we do not know.
    #[case("POINT", DataType::Int64)]
    #[case("MYCHARS", DataType::Utf8)]
    #[case("BIGTEXT", DataType::Utf8)]
    #[case("PICTURE BLOB", DataType::Binary)]
    #[case("FLOATY", DataType::Float64)]
    #[case("DOUBLY", DataType::Float64)]
    fn exact_mappings(#[case] declared: &str, #[case] expected: DataType) {
        let mapped = map_declared_type(declared);
        assert_eq!(mapped.data_type, expected, "{declared}");
        assert_eq!(mapped.unsupported, None, "{declared}");
    }

    #[rstest]
    #[case("", "ANY")]
    #[case("  ", "ANY")]
    #[case("ANY", "ANY")]
    #[case("STRING", "STRING")]
    #[case("MONEY(4)", "MONEY(4)")]
    #[case("jsonb", "jsonb")]
    fn flagged_text_fallbacks(#[case] declared: &str, #[case] native: &str) {
        let mapped = map_declared_type(declared);
        assert_eq!(mapped.data_type, DataType::Utf8);
        assert_eq!(
            mapped.unsupported,
            Some(UnsupportedType {
                native_type: native.into(),
                served_as: ServedAs::Text
            })
        );
    }

    #[rstest]
    #[case(ValueRef::Integer(1), DataType::Int64)]
    #[case(ValueRef::Real(1.5), DataType::Float64)]
    #[case(ValueRef::Text(b"x"), DataType::Utf8)]
    #[case(ValueRef::Blob(b"x"), DataType::Binary)]
    #[case(ValueRef::Null, DataType::Utf8)]
    fn storage_classes(#[case] value: ValueRef<'_>, #[case] expected: DataType) {
        assert_eq!(type_of_storage_class(value), expected);
    }
}
