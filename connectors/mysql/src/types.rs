//! Type mapping: MySQL / MariaDB column types to Arrow types. Introspection
//! reads `information_schema.COLUMNS.COLUMN_TYPE` (`int(10) unsigned`,
//! `decimal(12,2)`, `enum('a','b')`); `query()` without a schema reads the
//! result's column metadata. Both are first reduced to one [`NativeType`], and
//! only [`NativeType::arrow_type`] decides the Arrow type, so they agree.
//!
//! Choices worth knowing:
//! - `tinyint(1)` (and its aliases `bool` / `boolean`) is Boolean; a value
//!   other than 0 or 1 stored in it reads as `true`. MySQL 8.0.19+ drops
//!   display widths in `COLUMN_TYPE` except for `tinyint(1)`, and reports a
//!   column length of 1 for it in result metadata, so both paths still see it.
//!   `tinyint(1) unsigned` is not a boolean alias and stays UInt8.
//! - `bit(1)` is Boolean, `bit(n)` for n > 1 is UInt64 (the bits as a number).
//! - `mediumint` is Int32 / UInt32 (Arrow has no 24-bit integer).
//! - `decimal(p,s)` is Decimal128 up to p = 38, Decimal256 above (MySQL's
//!   maximum is 65); values travel as exact text.
//! - `time` is Time64(µs); MySQL `TIME` also holds durations outside a day
//!   (-838:59:59 to 838:59:59): such a value fails the query with an error
//!   naming the column (cast it to `CHAR` to read it as text) — never a
//!   silently wrong value.
//! - `timestamp` is Timestamp(µs, "UTC") — sessions run with
//!   `time_zone = '+00:00'`; `datetime` is Timestamp(µs) without zone. Zero
//!   and invalid dates (`0000-00-00`, `2024-02-30` under relaxed SQL modes)
//!   are delivered as NULL.
//! - `json` (MariaDB: `longtext` with a `json_valid` check), `enum`, `set`,
//!   MariaDB `uuid`, `inet4`, `inet6` are Utf8.
//! - The geometry family is Binary in MySQL's internal format: a 4-byte
//!   little-endian SRID followed by WKB.
//! - MySQL 9's `vector` is Binary (its little-endian float32 values) and
//!   flagged as unsupported: served, but not as the list of numbers it is.
//! - Anything else is served as Utf8 and flagged as unsupported.

use arrow_schema::DataType;
use mysql_async::Column;
use mysql_async::consts::{ColumnFlags, ColumnType};
use tributary_schema_cache::{ServedAs, UnsupportedType};

/// The character set number MySQL uses for binary strings.
const BINARY_CHARSET: u16 = 63;

/// A MySQL type reduced to what decides its Arrow type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NativeType {
    Boolean,
    /// `bytes`: 1 tinyint, 2 smallint, 3 mediumint, 4 int, 8 bigint.
    Integer {
        bytes: u8,
        unsigned: bool,
    },
    Decimal {
        precision: u8,
        scale: i8,
    },
    /// A decimal wider than Arrow's 76 digits (only from result metadata).
    WideDecimal,
    Float,
    Double,
    Bit {
        width: u32,
    },
    Year,
    Date,
    Time,
    DateTime,
    Timestamp,
    /// Character data: char, varchar, text family, enum, set, json, uuid, inet.
    Text,
    /// Byte strings: binary, varbinary, blob family.
    Binary,
    Geometry,
    Vector,
    /// A type without a specific mapping, by its native name.
    Unknown {
        name: String,
    },
}

impl NativeType {
    /// Reads an `information_schema.COLUMNS.COLUMN_TYPE` text.
    pub fn from_column_type(column_type: &str) -> Self {
        let lower = column_type.trim().to_ascii_lowercase();
        let base_end = lower.find(['(', ' ']).unwrap_or(lower.len());
        let base = &lower[..base_end];
        let args = lower[base_end..]
            .strip_prefix('(')
            .and_then(|rest| rest.split_once(')'))
            .map(|(inside, _)| inside);
        let unsigned = lower.contains(" unsigned") || lower.contains(" zerofill");
        let numbers: Vec<u32> = args
            .map(|a| a.split(',').filter_map(|n| n.trim().parse().ok()).collect())
            .unwrap_or_default();
        let integer = |bytes| Self::Integer { bytes, unsigned };
        match base {
            "bool" | "boolean" => Self::Boolean,
            "tinyint" if numbers == [1] && !unsigned => Self::Boolean,
            "tinyint" | "int1" => integer(1),
            "smallint" | "int2" => integer(2),
            "mediumint" | "int3" | "middleint" => integer(3),
            "int" | "integer" | "int4" => integer(4),
            "bigint" | "int8" => integer(8),
            "decimal" | "numeric" | "dec" | "fixed" => {
                let precision = numbers.first().copied().unwrap_or(10);
                let scale = numbers.get(1).copied().unwrap_or(0);
                decimal(precision, scale)
            }
            "float" => match numbers.as_slice() {
                [p] if *p > 24 => Self::Double,
                _ => Self::Float,
            },
            "double" | "real" | "float8" => Self::Double,
            "float4" => Self::Float,
            "bit" => Self::Bit {
                width: numbers.first().copied().unwrap_or(1),
            },
            "year" => Self::Year,
            "date" => Self::Date,
            "time" => Self::Time,
            "datetime" => Self::DateTime,
            "timestamp" => Self::Timestamp,
            "char" | "varchar" | "nchar" | "nvarchar" | "tinytext" | "text" | "mediumtext"
            | "longtext" | "long" | "enum" | "set" | "json" | "uuid" | "inet4" | "inet6" => {
                Self::Text
            }
            "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => {
                Self::Binary
            }
            "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring"
            | "multipolygon" | "geometrycollection" | "geomcollection" => Self::Geometry,
            "vector" => Self::Vector,
            _ => Self::Unknown {
                name: column_type.trim().to_string(),
            },
        }
    }

    /// Reads a result column's metadata.
    pub fn from_column(column: &Column) -> Self {
        let flags = column.flags();
        let unsigned = flags.contains(ColumnFlags::UNSIGNED_FLAG);
        let integer = |bytes| Self::Integer { bytes, unsigned };
        let binary = column.character_set() == BINARY_CHARSET;
        match column.column_type() {
            ColumnType::MYSQL_TYPE_TINY if column.column_length() == 1 && !unsigned => {
                Self::Boolean
            }
            ColumnType::MYSQL_TYPE_TINY => integer(1),
            ColumnType::MYSQL_TYPE_SHORT => integer(2),
            ColumnType::MYSQL_TYPE_INT24 => integer(3),
            ColumnType::MYSQL_TYPE_LONG => integer(4),
            ColumnType::MYSQL_TYPE_LONGLONG => integer(8),
            ColumnType::MYSQL_TYPE_DECIMAL | ColumnType::MYSQL_TYPE_NEWDECIMAL => {
                // The display length counts the sign (unless unsigned) and the point.
                let scale = u32::from(column.decimals());
                let overhead = u32::from(scale > 0) + u32::from(!unsigned);
                decimal(column.column_length().saturating_sub(overhead), scale)
            }
            ColumnType::MYSQL_TYPE_FLOAT => Self::Float,
            ColumnType::MYSQL_TYPE_DOUBLE => Self::Double,
            ColumnType::MYSQL_TYPE_BIT => Self::Bit {
                width: column.column_length(),
            },
            ColumnType::MYSQL_TYPE_YEAR => Self::Year,
            ColumnType::MYSQL_TYPE_DATE | ColumnType::MYSQL_TYPE_NEWDATE => Self::Date,
            ColumnType::MYSQL_TYPE_TIME => Self::Time,
            ColumnType::MYSQL_TYPE_DATETIME => Self::DateTime,
            ColumnType::MYSQL_TYPE_TIMESTAMP => Self::Timestamp,
            ColumnType::MYSQL_TYPE_VARCHAR
            | ColumnType::MYSQL_TYPE_VAR_STRING
            | ColumnType::MYSQL_TYPE_STRING
            | ColumnType::MYSQL_TYPE_TINY_BLOB
            | ColumnType::MYSQL_TYPE_BLOB
            | ColumnType::MYSQL_TYPE_MEDIUM_BLOB
            | ColumnType::MYSQL_TYPE_LONG_BLOB
            | ColumnType::MYSQL_TYPE_ENUM
            | ColumnType::MYSQL_TYPE_SET => {
                if binary {
                    Self::Binary
                } else {
                    Self::Text
                }
            }
            ColumnType::MYSQL_TYPE_JSON | ColumnType::MYSQL_TYPE_NULL => Self::Text,
            ColumnType::MYSQL_TYPE_GEOMETRY => Self::Geometry,
            ColumnType::MYSQL_TYPE_VECTOR => Self::Vector,
            other => Self::Unknown {
                name: format!("{other:?}"),
            },
        }
    }

    /// The Arrow type values of this type are delivered as.
    pub fn arrow_type(&self) -> DataType {
        match self {
            Self::Boolean | Self::Bit { width: 1 } => DataType::Boolean,
            Self::Integer {
                bytes: 1,
                unsigned: false,
            } => DataType::Int8,
            Self::Integer {
                bytes: 1,
                unsigned: true,
            } => DataType::UInt8,
            Self::Integer {
                bytes: 2,
                unsigned: false,
            } => DataType::Int16,
            Self::Integer {
                bytes: 2,
                unsigned: true,
            } => DataType::UInt16,
            Self::Integer {
                bytes: 3 | 4,
                unsigned: false,
            } => DataType::Int32,
            Self::Integer {
                bytes: 3 | 4,
                unsigned: true,
            } => DataType::UInt32,
            Self::Integer {
                unsigned: false, ..
            } => DataType::Int64,
            Self::Integer { unsigned: true, .. } | Self::Bit { .. } => DataType::UInt64,
            Self::Decimal { precision, scale } if *precision <= 38 => {
                DataType::Decimal128(*precision, *scale)
            }
            Self::Decimal { precision, scale } => DataType::Decimal256(*precision, *scale),
            Self::Float => DataType::Float32,
            Self::Double => DataType::Float64,
            Self::Year => DataType::Int16,
            Self::Date => DataType::Date32,
            Self::Time => DataType::Time64(arrow_schema::TimeUnit::Microsecond),
            Self::DateTime => DataType::Timestamp(arrow_schema::TimeUnit::Microsecond, None),
            Self::Timestamp => {
                DataType::Timestamp(arrow_schema::TimeUnit::Microsecond, Some("UTC".into()))
            }
            Self::Binary | Self::Geometry | Self::Vector => DataType::Binary,
            Self::WideDecimal | Self::Text | Self::Unknown { .. } => DataType::Utf8,
        }
    }

    /// The unsupported-type flag for the catalog: set for types without a
    /// specific mapping, and for vectors (served as their bytes).
    pub fn unsupported(&self) -> Option<UnsupportedType> {
        match self {
            Self::Unknown { name } => Some(UnsupportedType {
                native_type: name.clone(),
                served_as: ServedAs::Text,
            }),
            Self::Vector => Some(UnsupportedType {
                native_type: "vector".to_string(),
                served_as: ServedAs::Binary,
            }),
            _ => None,
        }
    }
}

/// A decimal type; precisions Arrow cannot hold (over 76) stay exact as text.
fn decimal(precision: u32, scale: u32) -> NativeType {
    let precision = precision.max(scale).max(1);
    match (u8::try_from(precision), i8::try_from(scale)) {
        (Ok(precision), Ok(scale)) if precision <= 76 => NativeType::Decimal { precision, scale },
        _ => NativeType::WideDecimal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_schema::TimeUnit;
    use rstest::rstest;

    const UTF8MB4: u16 = 45;

    fn meta(
        kind: ColumnType,
        flags: ColumnFlags,
        length: u32,
        decimals: u8,
        charset: u16,
    ) -> Column {
        Column::new(kind)
            .with_flags(flags)
            .with_column_length(length)
            .with_decimals(decimals)
            .with_character_set(charset)
    }

    fn none() -> ColumnFlags {
        ColumnFlags::empty()
    }

    fn unsigned() -> ColumnFlags {
        ColumnFlags::UNSIGNED_FLAG
    }

    /// Each row: a `COLUMN_TYPE`, the metadata a result column of that type
    /// carries, and the Arrow type both must give.
    #[rstest]
    #[case(
        "tinyint(4)",
        meta(ColumnType::MYSQL_TYPE_TINY, none(), 4, 0, 63),
        DataType::Int8
    )]
    #[case(
        "tinyint",
        meta(ColumnType::MYSQL_TYPE_TINY, none(), 4, 0, 63),
        DataType::Int8
    )]
    #[case(
        "tinyint(3) unsigned",
        meta(ColumnType::MYSQL_TYPE_TINY, unsigned(), 3, 0, 63),
        DataType::UInt8
    )]
    #[case(
        "tinyint(1)",
        meta(ColumnType::MYSQL_TYPE_TINY, none(), 1, 0, 63),
        DataType::Boolean
    )]
    #[case(
        "tinyint(1) unsigned",
        meta(ColumnType::MYSQL_TYPE_TINY, unsigned(), 1, 0, 63),
        DataType::UInt8
    )]
    #[case(
        "smallint(6)",
        meta(ColumnType::MYSQL_TYPE_SHORT, none(), 6, 0, 63),
        DataType::Int16
    )]
    #[case(
        "smallint unsigned",
        meta(ColumnType::MYSQL_TYPE_SHORT, unsigned(), 5, 0, 63),
        DataType::UInt16
    )]
    #[case(
        "mediumint(9)",
        meta(ColumnType::MYSQL_TYPE_INT24, none(), 9, 0, 63),
        DataType::Int32
    )]
    #[case(
        "mediumint(8) unsigned",
        meta(ColumnType::MYSQL_TYPE_INT24, unsigned(), 8, 0, 63),
        DataType::UInt32
    )]
    #[case(
        "int(11)",
        meta(ColumnType::MYSQL_TYPE_LONG, none(), 11, 0, 63),
        DataType::Int32
    )]
    #[case(
        "int(10) unsigned",
        meta(ColumnType::MYSQL_TYPE_LONG, unsigned(), 10, 0, 63),
        DataType::UInt32
    )]
    #[case("int(10) unsigned zerofill", meta(ColumnType::MYSQL_TYPE_LONG, unsigned() | ColumnFlags::ZEROFILL_FLAG, 10, 0, 63), DataType::UInt32)]
    #[case(
        "bigint(20)",
        meta(ColumnType::MYSQL_TYPE_LONGLONG, none(), 20, 0, 63),
        DataType::Int64
    )]
    #[case(
        "bigint(20) unsigned",
        meta(ColumnType::MYSQL_TYPE_LONGLONG, unsigned(), 20, 0, 63),
        DataType::UInt64
    )]
    #[case(
        "decimal(12,2)",
        meta(ColumnType::MYSQL_TYPE_NEWDECIMAL, none(), 14, 2, 63),
        DataType::Decimal128(12, 2)
    )]
    #[case(
        "decimal(10,0) unsigned",
        meta(ColumnType::MYSQL_TYPE_NEWDECIMAL, unsigned(), 10, 0, 63),
        DataType::Decimal128(10, 0)
    )]
    #[case(
        "decimal(38,10)",
        meta(ColumnType::MYSQL_TYPE_NEWDECIMAL, none(), 40, 10, 63),
        DataType::Decimal128(38, 10)
    )]
    #[case(
        "decimal(65,30)",
        meta(ColumnType::MYSQL_TYPE_NEWDECIMAL, none(), 67, 30, 63),
        DataType::Decimal256(65, 30)
    )]
    #[case(
        "float",
        meta(ColumnType::MYSQL_TYPE_FLOAT, none(), 12, 31, 63),
        DataType::Float32
    )]
    #[case(
        "float(10,2)",
        meta(ColumnType::MYSQL_TYPE_FLOAT, none(), 10, 2, 63),
        DataType::Float32
    )]
    #[case(
        "double",
        meta(ColumnType::MYSQL_TYPE_DOUBLE, none(), 22, 31, 63),
        DataType::Float64
    )]
    #[case(
        "bit(1)",
        meta(ColumnType::MYSQL_TYPE_BIT, unsigned(), 1, 0, 63),
        DataType::Boolean
    )]
    #[case(
        "bit(12)",
        meta(ColumnType::MYSQL_TYPE_BIT, unsigned(), 12, 0, 63),
        DataType::UInt64
    )]
    #[case("year(4)", meta(ColumnType::MYSQL_TYPE_YEAR, unsigned() | ColumnFlags::ZEROFILL_FLAG, 4, 0, 63), DataType::Int16)]
    #[case(
        "date",
        meta(ColumnType::MYSQL_TYPE_DATE, ColumnFlags::BINARY_FLAG, 10, 0, 63),
        DataType::Date32
    )]
    #[case(
        "time(6)",
        meta(ColumnType::MYSQL_TYPE_TIME, ColumnFlags::BINARY_FLAG, 17, 6, 63),
        DataType::Time64(TimeUnit::Microsecond)
    )]
    #[case(
        "datetime(3)",
        meta(ColumnType::MYSQL_TYPE_DATETIME, ColumnFlags::BINARY_FLAG, 23, 3, 63),
        DataType::Timestamp(TimeUnit::Microsecond, None)
    )]
    #[case("timestamp", meta(ColumnType::MYSQL_TYPE_TIMESTAMP, ColumnFlags::BINARY_FLAG, 19, 0, 63), DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())))]
    #[case(
        "char(3)",
        meta(ColumnType::MYSQL_TYPE_STRING, none(), 12, 0, UTF8MB4),
        DataType::Utf8
    )]
    #[case(
        "varchar(80)",
        meta(
            ColumnType::MYSQL_TYPE_VAR_STRING,
            ColumnFlags::BINARY_FLAG,
            320,
            0,
            46
        ),
        DataType::Utf8
    )]
    #[case(
        "text",
        meta(
            ColumnType::MYSQL_TYPE_BLOB,
            ColumnFlags::BLOB_FLAG,
            262_140,
            0,
            UTF8MB4
        ),
        DataType::Utf8
    )]
    #[case(
        "longtext",
        meta(
            ColumnType::MYSQL_TYPE_BLOB,
            ColumnFlags::BLOB_FLAG,
            u32::MAX,
            0,
            UTF8MB4
        ),
        DataType::Utf8
    )]
    #[case(
        "enum('a','b')",
        meta(ColumnType::MYSQL_TYPE_STRING, ColumnFlags::ENUM_FLAG, 4, 0, UTF8MB4),
        DataType::Utf8
    )]
    #[case(
        "set('x','y')",
        meta(ColumnType::MYSQL_TYPE_STRING, ColumnFlags::SET_FLAG, 12, 0, UTF8MB4),
        DataType::Utf8
    )]
    #[case("json", meta(ColumnType::MYSQL_TYPE_JSON, ColumnFlags::BLOB_FLAG | ColumnFlags::BINARY_FLAG, u32::MAX, 0, 63), DataType::Utf8)]
    #[case(
        "uuid",
        meta(ColumnType::MYSQL_TYPE_STRING, none(), 144, 0, UTF8MB4),
        DataType::Utf8
    )]
    #[case(
        "inet6",
        meta(ColumnType::MYSQL_TYPE_STRING, none(), 156, 0, UTF8MB4),
        DataType::Utf8
    )]
    #[case(
        "inet4",
        meta(ColumnType::MYSQL_TYPE_STRING, none(), 60, 0, UTF8MB4),
        DataType::Utf8
    )]
    #[case(
        "binary(16)",
        meta(ColumnType::MYSQL_TYPE_STRING, ColumnFlags::BINARY_FLAG, 16, 0, 63),
        DataType::Binary
    )]
    #[case(
        "varbinary(255)",
        meta(
            ColumnType::MYSQL_TYPE_VAR_STRING,
            ColumnFlags::BINARY_FLAG,
            255,
            0,
            63
        ),
        DataType::Binary
    )]
    #[case("blob", meta(ColumnType::MYSQL_TYPE_BLOB, ColumnFlags::BLOB_FLAG | ColumnFlags::BINARY_FLAG, 65_535, 0, 63), DataType::Binary)]
    #[case("longblob", meta(ColumnType::MYSQL_TYPE_BLOB, ColumnFlags::BLOB_FLAG | ColumnFlags::BINARY_FLAG, u32::MAX, 0, 63), DataType::Binary)]
    #[case("geometry", meta(ColumnType::MYSQL_TYPE_GEOMETRY, ColumnFlags::BLOB_FLAG | ColumnFlags::BINARY_FLAG, u32::MAX, 0, 63), DataType::Binary)]
    #[case("point", meta(ColumnType::MYSQL_TYPE_GEOMETRY, ColumnFlags::BLOB_FLAG | ColumnFlags::BINARY_FLAG, u32::MAX, 0, 63), DataType::Binary)]
    #[case("multipolygon", meta(ColumnType::MYSQL_TYPE_GEOMETRY, ColumnFlags::BLOB_FLAG | ColumnFlags::BINARY_FLAG, u32::MAX, 0, 63), DataType::Binary)]
    fn introspection_and_metadata_agree(
        #[case] column_type: &str,
        #[case] column: Column,
        #[case] expected: DataType,
    ) {
        let from_catalog = NativeType::from_column_type(column_type);
        let from_result = NativeType::from_column(&column);
        assert_eq!(
            from_catalog.arrow_type(),
            expected,
            "{column_type}: {from_catalog:?}"
        );
        assert_eq!(
            from_result.arrow_type(),
            expected,
            "{column_type} metadata: {from_result:?}"
        );
        assert_eq!(from_catalog.unsupported(), None);
    }

    #[rstest]
    #[case("bool", DataType::Boolean)]
    #[case("BIGINT(20) UNSIGNED", DataType::UInt64)]
    #[case("numeric", DataType::Decimal128(10, 0))]
    #[case("decimal(5)", DataType::Decimal128(5, 0))]
    #[case("float(30)", DataType::Float64)]
    #[case("double precision", DataType::Float64)]
    #[case("real", DataType::Float64)]
    #[case("bit", DataType::Boolean)]
    #[case("linestring", DataType::Binary)]
    #[case("geomcollection", DataType::Binary)]
    #[case("mediumtext", DataType::Utf8)]
    fn catalog_spellings(#[case] column_type: &str, #[case] expected: DataType) {
        assert_eq!(
            NativeType::from_column_type(column_type).arrow_type(),
            expected
        );
    }

    #[test]
    fn unknown_types_are_text_and_flagged() {
        let native = NativeType::from_column_type("xmltype");
        assert_eq!(native.arrow_type(), DataType::Utf8);
        assert_eq!(
            native.unsupported(),
            Some(UnsupportedType {
                native_type: "xmltype".into(),
                served_as: ServedAs::Text
            })
        );
        let column = meta(ColumnType::MYSQL_TYPE_TYPED_ARRAY, none(), 0, 0, 63);
        assert_eq!(
            NativeType::from_column(&column).arrow_type(),
            DataType::Utf8
        );
    }

    #[test]
    fn vectors_are_bytes_and_flagged() {
        let expected = Some(UnsupportedType {
            native_type: "vector".into(),
            served_as: ServedAs::Binary,
        });
        let from_catalog = NativeType::from_column_type("vector(3)");
        let column = meta(
            ColumnType::MYSQL_TYPE_VECTOR,
            ColumnFlags::BINARY_FLAG,
            12,
            0,
            63,
        );
        let from_result = NativeType::from_column(&column);
        for native in [from_catalog, from_result] {
            assert_eq!(native.arrow_type(), DataType::Binary, "{native:?}");
            assert_eq!(native.unsupported(), expected, "{native:?}");
        }
    }

    #[test]
    fn decimals_wider_than_arrow_stay_text() {
        assert_eq!(decimal(90, 2).arrow_type(), DataType::Utf8);
        assert_eq!(decimal(0, 0).arrow_type(), DataType::Decimal128(1, 0));
        assert_eq!(decimal(2, 4).arrow_type(), DataType::Decimal128(4, 4));
    }
}
