//! SQL Server types: how each native type maps to Arrow, how the catalog
//! spells it, and the Arrow type of a result column when the caller gives no
//! schema.
//!
//! # Type mapping
//!
//! Alias types (`CREATE TYPE dbo.phone FROM nvarchar(20)`) map as their base
//! system type; `native_type` spells the base type with its length,
//! precision or scale (`nvarchar(20)`, `decimal(10,2)`, `datetime2(7)`).
//!
//! | SQL Server                                     | Arrow                        | Value delivered                                          |
//! |------------------------------------------------|------------------------------|----------------------------------------------------------|
//! | `bit`                                          | `Boolean`                    |                                                          |
//! | `tinyint` (unsigned, 0–255)                    | `Int16`                      | widened: arithmetic in the engine cannot wrap at 255/0   |
//! | `smallint` / `int` / `bigint`                  | `Int16` / `Int32` / `Int64`  |                                                          |
//! | `decimal(p,s)` / `numeric(p,s)` (p ≤ 38)       | `Decimal128(p,s)`            | exact                                                    |
//! | `money`                                        | `Decimal128(19,4)`           | exact up to ±450 billion (see below)                     |
//! | `smallmoney`                                   | `Decimal128(10,4)`           | exact                                                    |
//! | `float` (`float(25..53)`)                      | `Float64`                    |                                                          |
//! | `real` (`float(1..24)`)                        | `Float32`                    |                                                          |
//! | `date`                                         | `Date32`                     |                                                          |
//! | `time(n)`                                      | `Time64(µs)`                 | the 7th fractional digit (100 ns) is truncated           |
//! | `datetime`, `datetime2(n)`, `smalldatetime`    | `Timestamp(µs, None)`        | as stored (no zone); `datetime2(7)`'s 100 ns truncated   |
//! | `datetimeoffset(n)`                            | `Timestamp(µs, "UTC")`       | the instant, converted to UTC (the offset is not kept)   |
//! | `char`, `varchar`, `nchar`, `nvarchar` (n or `max`), `text`, `ntext`, `sysname` | `Utf8` | the text, whole (`TEXTSIZE` is raised per session) |
//! | `binary`, `varbinary` (n or `max`), `image`, `rowversion`/`timestamp` | `Binary` | the bytes                                  |
//! | `uniqueidentifier`                             | `Utf8`                       | lowercase hyphenated, as the PostgreSQL connector's `uuid` |
//! | `xml`                                          | `Utf8`                       | the document text                                        |
//! | `json` (SQL Server 2025)                       | `Utf8`, `native_type` `json` | the JSON text; the server's JSON handling keys on `json` |
//! | `geography`, `geometry`, `hierarchyid`         | `Binary`                     | SQL Server's own serialization (`CAST(c AS varbinary(max))`) |
//! | `sql_variant`, `vector`, anything else         | `Utf8`, flagged `unsupported_type` (served as text) | the value's text  |
//! | user-defined CLR types                         | `Binary`, flagged `unsupported_type` (served as binary) | the serialized bytes |
//!
//! Choices worth knowing:
//!
//! * `money` reaches the connector as a float (tiberius decodes it so); the
//!   exact value is recovered by rounding to four decimals, which is exact
//!   while |value| · 10⁴ < 2⁵² (about ±450 billion). A larger value fails
//!   the query naming the column rather than being delivered approximated:
//!   cast such a column to `decimal(19,4)` in SQL to read it.
//! * `json` and `vector` values arrive as text: the connector does not
//!   negotiate those types' TDS features, so the server sends them as
//!   `nvarchar(max)` / `varchar(max)`.
//! * A value the Arrow type cannot hold (a decimal too wide for the catalog's
//!   precision after a schema change, a wrong UUID) fails the query with the
//!   column named.
//!
//! # Results without a schema
//!
//! A query run without the catalog's schema is typed from the TDS column
//! metadata, which carries no precision or scale: `decimal`/`numeric`
//! columns are then delivered as exact text (`Utf8`); every other type maps
//! as above (`money` as `Decimal128(19,4)`).

use std::sync::Arc;

use arrow_schema::{DataType, TimeUnit};
use tiberius::ColumnType as TdsType;
use tributary_schema_cache::{ServedAs, UnsupportedType};

/// A column's type as the catalog describes it (`sys.columns` joined with
/// `sys.types`): the base system type name and its size attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NativeType {
    /// The system type name, lowercase (`nvarchar`, `decimal`, `geography`).
    pub name: String,
    /// `sys.columns.max_length`: bytes, `-1` for `max`.
    pub max_length: i16,
    pub precision: u8,
    pub scale: u8,
    /// A CLR type created by a user (`CREATE TYPE … EXTERNAL NAME`).
    pub user_clr: bool,
}

impl NativeType {
    #[cfg(test)]
    pub fn new(name: &str, max_length: i16, precision: u8, scale: u8) -> Self {
        Self {
            name: name.to_string(),
            max_length,
            precision,
            scale,
            user_clr: false,
        }
    }

    /// The type as SQL Server spells it in DDL.
    pub fn spelled(&self) -> String {
        let name = self.name.as_str();
        let length = |per_char: i16| {
            if self.max_length < 0 {
                "max".to_string()
            } else {
                (self.max_length / per_char).to_string()
            }
        };
        match name {
            "char" | "varchar" | "binary" | "varbinary" => format!("{name}({})", length(1)),
            "nchar" | "nvarchar" => format!("{name}({})", length(2)),
            "decimal" | "numeric" => format!("{name}({},{})", self.precision, self.scale),
            "time" | "datetime2" | "datetimeoffset" => format!("{name}({})", self.scale),
            _ => name.to_string(),
        }
    }
}

/// How a catalog column is delivered.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ColumnType {
    pub data_type: DataType,
    pub unsupported: Option<UnsupportedType>,
}

fn utc() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC")))
}

fn naive_timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, None)
}

/// The mapping of a catalog column (see the module docs).
pub(crate) fn column_type(ty: &NativeType) -> ColumnType {
    let mapped = |data_type| ColumnType {
        data_type,
        unsupported: None,
    };
    let flagged = |data_type, served_as| ColumnType {
        data_type,
        unsupported: Some(UnsupportedType {
            native_type: ty.spelled(),
            served_as,
        }),
    };
    if ty.user_clr {
        return flagged(DataType::Binary, ServedAs::Binary);
    }
    match ty.name.as_str() {
        "bit" => mapped(DataType::Boolean),
        "tinyint" | "smallint" => mapped(DataType::Int16),
        "int" => mapped(DataType::Int32),
        "bigint" => mapped(DataType::Int64),
        "decimal" | "numeric" => match ty.precision {
            p @ 1..=38 => mapped(DataType::Decimal128(p, i8::try_from(ty.scale).unwrap_or(0))),
            _ => flagged(DataType::Utf8, ServedAs::Text),
        },
        "money" => mapped(DataType::Decimal128(19, 4)),
        "smallmoney" => mapped(DataType::Decimal128(10, 4)),
        "float" => mapped(DataType::Float64),
        "real" => mapped(DataType::Float32),
        "date" => mapped(DataType::Date32),
        "time" => mapped(DataType::Time64(TimeUnit::Microsecond)),
        "datetime" | "datetime2" | "smalldatetime" => mapped(naive_timestamp()),
        "datetimeoffset" => mapped(utc()),
        "char" | "varchar" | "nchar" | "nvarchar" | "text" | "ntext" | "sysname"
        | "uniqueidentifier" | "xml" | "json" => mapped(DataType::Utf8),
        "binary" | "varbinary" | "image" | "timestamp" | "rowversion" | "geography"
        | "geometry" | "hierarchyid" => mapped(DataType::Binary),
        _ => flagged(DataType::Utf8, ServedAs::Text),
    }
}

/// The Arrow type of a result column from its TDS metadata alone (queries
/// without a schema).
pub(crate) fn result_type(ty: TdsType) -> DataType {
    match ty {
        TdsType::Bit | TdsType::Bitn => DataType::Boolean,
        TdsType::Int1 | TdsType::Int2 => DataType::Int16,
        TdsType::Int4 => DataType::Int32,
        TdsType::Int8 | TdsType::Intn => DataType::Int64,
        TdsType::Float4 => DataType::Float32,
        TdsType::Float8 | TdsType::Floatn => DataType::Float64,
        TdsType::Money => DataType::Decimal128(19, 4),
        TdsType::Money4 => DataType::Decimal128(10, 4),
        TdsType::Daten => DataType::Date32,
        TdsType::Timen => DataType::Time64(TimeUnit::Microsecond),
        TdsType::Datetime | TdsType::Datetime4 | TdsType::Datetimen | TdsType::Datetime2 => {
            naive_timestamp()
        }
        TdsType::DatetimeOffsetn => utc(),
        TdsType::BigVarBin | TdsType::BigBinary | TdsType::Image | TdsType::Udt => DataType::Binary,
        TdsType::Null => DataType::Null,
        // Exact text for decimals (no precision in the metadata), and text
        // for strings, GUIDs, XML and variants.
        TdsType::Decimaln
        | TdsType::Numericn
        | TdsType::Guid
        | TdsType::BigVarChar
        | TdsType::BigChar
        | TdsType::NVarchar
        | TdsType::NChar
        | TdsType::Xml
        | TdsType::Text
        | TdsType::NText
        | TdsType::SSVariant => DataType::Utf8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(p: u8, s: i8) -> DataType {
        DataType::Decimal128(p, s)
    }

    /// Every native type: (name, max_length, precision, scale) → spelled
    /// native type, Arrow type, and how an unsupported one is served.
    #[test]
    fn every_native_type_maps() {
        let time = DataType::Time64(TimeUnit::Microsecond);
        let cases: Vec<(NativeType, &str, DataType, Option<ServedAs>)> = vec![
            (
                NativeType::new("bit", 1, 1, 0),
                "bit",
                DataType::Boolean,
                None,
            ),
            (
                NativeType::new("tinyint", 1, 3, 0),
                "tinyint",
                DataType::Int16,
                None,
            ),
            (
                NativeType::new("smallint", 2, 5, 0),
                "smallint",
                DataType::Int16,
                None,
            ),
            (
                NativeType::new("int", 4, 10, 0),
                "int",
                DataType::Int32,
                None,
            ),
            (
                NativeType::new("bigint", 8, 19, 0),
                "bigint",
                DataType::Int64,
                None,
            ),
            (
                NativeType::new("decimal", 9, 10, 2),
                "decimal(10,2)",
                dec(10, 2),
                None,
            ),
            (
                NativeType::new("numeric", 17, 38, 0),
                "numeric(38,0)",
                dec(38, 0),
                None,
            ),
            (
                NativeType::new("numeric", 17, 38, 38),
                "numeric(38,38)",
                dec(38, 38),
                None,
            ),
            (
                NativeType::new("money", 8, 19, 4),
                "money",
                dec(19, 4),
                None,
            ),
            (
                NativeType::new("smallmoney", 4, 10, 4),
                "smallmoney",
                dec(10, 4),
                None,
            ),
            (
                NativeType::new("float", 8, 53, 0),
                "float",
                DataType::Float64,
                None,
            ),
            (
                NativeType::new("real", 4, 24, 0),
                "real",
                DataType::Float32,
                None,
            ),
            (
                NativeType::new("date", 3, 10, 0),
                "date",
                DataType::Date32,
                None,
            ),
            (
                NativeType::new("time", 5, 16, 7),
                "time(7)",
                time.clone(),
                None,
            ),
            (NativeType::new("time", 3, 8, 0), "time(0)", time, None),
            (
                NativeType::new("datetime", 8, 23, 3),
                "datetime",
                naive_timestamp(),
                None,
            ),
            (
                NativeType::new("datetime2", 8, 27, 7),
                "datetime2(7)",
                naive_timestamp(),
                None,
            ),
            (
                NativeType::new("datetime2", 6, 19, 0),
                "datetime2(0)",
                naive_timestamp(),
                None,
            ),
            (
                NativeType::new("smalldatetime", 4, 16, 0),
                "smalldatetime",
                naive_timestamp(),
                None,
            ),
            (
                NativeType::new("datetimeoffset", 10, 34, 7),
                "datetimeoffset(7)",
                utc(),
                None,
            ),
            (
                NativeType::new("char", 10, 0, 0),
                "char(10)",
                DataType::Utf8,
                None,
            ),
            (
                NativeType::new("varchar", 255, 0, 0),
                "varchar(255)",
                DataType::Utf8,
                None,
            ),
            (
                NativeType::new("varchar", -1, 0, 0),
                "varchar(max)",
                DataType::Utf8,
                None,
            ),
            (
                NativeType::new("nchar", 20, 0, 0),
                "nchar(10)",
                DataType::Utf8,
                None,
            ),
            (
                NativeType::new("nvarchar", 160, 0, 0),
                "nvarchar(80)",
                DataType::Utf8,
                None,
            ),
            (
                NativeType::new("nvarchar", -1, 0, 0),
                "nvarchar(max)",
                DataType::Utf8,
                None,
            ),
            (
                NativeType::new("text", 16, 0, 0),
                "text",
                DataType::Utf8,
                None,
            ),
            (
                NativeType::new("ntext", 16, 0, 0),
                "ntext",
                DataType::Utf8,
                None,
            ),
            (
                NativeType::new("sysname", 256, 0, 0),
                "sysname",
                DataType::Utf8,
                None,
            ),
            (
                NativeType::new("binary", 16, 0, 0),
                "binary(16)",
                DataType::Binary,
                None,
            ),
            (
                NativeType::new("varbinary", 100, 0, 0),
                "varbinary(100)",
                DataType::Binary,
                None,
            ),
            (
                NativeType::new("varbinary", -1, 0, 0),
                "varbinary(max)",
                DataType::Binary,
                None,
            ),
            (
                NativeType::new("image", 16, 0, 0),
                "image",
                DataType::Binary,
                None,
            ),
            (
                NativeType::new("timestamp", 8, 0, 0),
                "timestamp",
                DataType::Binary,
                None,
            ),
            (
                NativeType::new("uniqueidentifier", 16, 0, 0),
                "uniqueidentifier",
                DataType::Utf8,
                None,
            ),
            (
                NativeType::new("xml", -1, 0, 0),
                "xml",
                DataType::Utf8,
                None,
            ),
            (
                NativeType::new("json", -1, 0, 0),
                "json",
                DataType::Utf8,
                None,
            ),
            (
                NativeType::new("geography", -1, 0, 0),
                "geography",
                DataType::Binary,
                None,
            ),
            (
                NativeType::new("geometry", -1, 0, 0),
                "geometry",
                DataType::Binary,
                None,
            ),
            (
                NativeType::new("hierarchyid", 892, 0, 0),
                "hierarchyid",
                DataType::Binary,
                None,
            ),
            (
                NativeType::new("sql_variant", 8016, 0, 0),
                "sql_variant",
                DataType::Utf8,
                Some(ServedAs::Text),
            ),
            (
                NativeType::new("vector", 1000, 0, 0),
                "vector",
                DataType::Utf8,
                Some(ServedAs::Text),
            ),
            (
                NativeType {
                    user_clr: true,
                    ..NativeType::new("point3d", -1, 0, 0)
                },
                "point3d",
                DataType::Binary,
                Some(ServedAs::Binary),
            ),
        ];
        for (native, spelled, data_type, served_as) in cases {
            let mapped = column_type(&native);
            assert_eq!(native.spelled(), spelled, "{native:?}");
            assert_eq!(mapped.data_type, data_type, "{native:?}");
            assert_eq!(
                mapped.unsupported.as_ref().map(|u| u.served_as),
                served_as,
                "{native:?}"
            );
            if let Some(unsupported) = mapped.unsupported {
                assert_eq!(unsupported.native_type, spelled);
            }
        }
    }

    /// Result columns without a schema: the TDS metadata type → Arrow.
    #[test]
    fn every_wire_type_has_a_result_type() {
        let cases = [
            (TdsType::Bit, DataType::Boolean),
            (TdsType::Bitn, DataType::Boolean),
            (TdsType::Int1, DataType::Int16),
            (TdsType::Int2, DataType::Int16),
            (TdsType::Int4, DataType::Int32),
            (TdsType::Int8, DataType::Int64),
            (TdsType::Intn, DataType::Int64),
            (TdsType::Float4, DataType::Float32),
            (TdsType::Float8, DataType::Float64),
            (TdsType::Floatn, DataType::Float64),
            (TdsType::Money, dec(19, 4)),
            (TdsType::Money4, dec(10, 4)),
            (TdsType::Decimaln, DataType::Utf8),
            (TdsType::Numericn, DataType::Utf8),
            (TdsType::Daten, DataType::Date32),
            (TdsType::Timen, DataType::Time64(TimeUnit::Microsecond)),
            (TdsType::Datetime, naive_timestamp()),
            (TdsType::Datetime4, naive_timestamp()),
            (TdsType::Datetimen, naive_timestamp()),
            (TdsType::Datetime2, naive_timestamp()),
            (TdsType::DatetimeOffsetn, utc()),
            (TdsType::Guid, DataType::Utf8),
            (TdsType::BigVarChar, DataType::Utf8),
            (TdsType::BigChar, DataType::Utf8),
            (TdsType::NVarchar, DataType::Utf8),
            (TdsType::NChar, DataType::Utf8),
            (TdsType::Text, DataType::Utf8),
            (TdsType::NText, DataType::Utf8),
            (TdsType::Xml, DataType::Utf8),
            (TdsType::SSVariant, DataType::Utf8),
            (TdsType::BigVarBin, DataType::Binary),
            (TdsType::BigBinary, DataType::Binary),
            (TdsType::Image, DataType::Binary),
            (TdsType::Udt, DataType::Binary),
            (TdsType::Null, DataType::Null),
        ];
        for (wire, expected) in cases {
            assert_eq!(result_type(wire), expected, "{wire:?}");
        }
    }
}
