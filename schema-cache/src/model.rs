//! The catalog model: what a connector's introspection produces for one source.
//!
//! source → schema → table / view → column, with keys, foreign keys, indexes,
//! checks and row estimates. Everything is plain serde data so the catalog can be
//! persisted, diffed and served by the admin API without touching a database.

use std::collections::BTreeMap;
use std::fmt;

use arrow_schema::DataType;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The database family (and flavor) behind a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Postgres,
    Mysql,
    Mariadb,
    Sqlite,
    /// Microsoft SQL Server (and Azure SQL), over TDS.
    Sqlserver,
    /// Oracle Database (needs Oracle Instant Client at run time).
    Oracle,
    /// KingbaseES: the PostgreSQL protocol with its own catalog flavor.
    Kingbase,
}

impl SourceKind {
    /// Every kind this build knows, for error messages.
    pub const ALL: [SourceKind; 7] = [
        Self::Postgres,
        Self::Mysql,
        Self::Mariadb,
        Self::Sqlite,
        Self::Sqlserver,
        Self::Oracle,
        Self::Kingbase,
    ];

    /// The lowercase name used in URLs, config and the admin API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Mysql => "mysql",
            Self::Mariadb => "mariadb",
            Self::Sqlite => "sqlite",
            Self::Sqlserver => "sqlserver",
            Self::Oracle => "oracle",
            Self::Kingbase => "kingbase",
        }
    }

    /// Parses a kind or URL scheme (`postgresql` and `postgres` are the same
    /// kind, as are `mssql` and `sqlserver`).
    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "postgres" | "postgresql" | "pg" => Some(Self::Postgres),
            "mysql" => Some(Self::Mysql),
            "mariadb" => Some(Self::Mariadb),
            "sqlite" | "sqlite3" => Some(Self::Sqlite),
            "sqlserver" | "mssql" => Some(Self::Sqlserver),
            "oracle" => Some(Self::Oracle),
            "kingbase" | "kingbasees" | "kingbase8" => Some(Self::Kingbase),
            _ => None,
        }
    }
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything introspected from one source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceSchema {
    /// The registered source name.
    pub source: String,
    pub kind: SourceKind,
    /// The server's version string as it reported it.
    pub server_version: String,
    /// The schema that `source.table` (without a schema) resolves to.
    pub default_schema: Option<String>,
    /// Schemas by name (for MySQL and MariaDB a schema is a database).
    pub schemas: BTreeMap<String, SchemaDef>,
    pub introspected_at: DateTime<Utc>,
}

impl SourceSchema {
    /// Iterates over all tables and views with their schema name.
    pub fn tables(&self) -> impl Iterator<Item = (&str, &TableDef)> {
        self.schemas
            .iter()
            .flat_map(|(schema, def)| def.tables.values().map(move |t| (schema.as_str(), t)))
    }

    /// Looks a table up by schema and name.
    pub fn table(&self, schema: &str, table: &str) -> Option<&TableDef> {
        self.schemas.get(schema)?.tables.get(table)
    }

    /// A hash of the whole source's model; changes when anything in it changes.
    pub fn fingerprint(&self) -> String {
        crate::fingerprint::hash_iter(
            self.tables()
                .map(|(schema, table)| format!("{schema}.{}={}", table.name, table.fingerprint())),
        )
    }
}

/// One schema (namespace) of a source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SchemaDef {
    pub name: String,
    /// Tables and views by name.
    pub tables: BTreeMap<String, TableDef>,
}

/// What kind of relation a table entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableKind {
    Table,
    View,
    MaterializedView,
    ForeignTable,
    PartitionedTable,
}

impl TableKind {
    /// True for kinds that can be written to directly.
    pub fn is_writable(self) -> bool {
        matches!(
            self,
            Self::Table | Self::PartitionedTable | Self::ForeignTable
        )
    }
}

/// A table or view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableDef {
    pub name: String,
    pub kind: TableKind,
    pub comment: Option<String>,
    /// Columns in their ordinal order.
    pub columns: Vec<ColumnDef>,
    pub primary_key: Option<KeyDef>,
    #[serde(default)]
    pub unique_constraints: Vec<KeyDef>,
    #[serde(default)]
    pub foreign_keys: Vec<ForeignKeyDef>,
    #[serde(default)]
    pub indexes: Vec<IndexDef>,
    #[serde(default)]
    pub check_constraints: Vec<CheckDef>,
    /// The database's row-count estimate (statistics, not an exact count).
    pub row_estimate: Option<u64>,
    /// The drift fingerprint: a hash of what the source's cheap per-table
    /// fingerprint query returned when this table was introspected. A later
    /// run of the same query that hashes differently means the table changed.
    pub drift_fingerprint: String,
}

impl TableDef {
    /// Looks a column up by name.
    pub fn column(&self, name: &str) -> Option<&ColumnDef> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// A hash of this table's model (columns, keys, indexes, checks, kind and
    /// comment). Row estimates and timestamps are left out: they move without
    /// the table's shape changing.
    pub fn fingerprint(&self) -> String {
        let shape = TableShape {
            kind: self.kind,
            comment: self.comment.as_deref(),
            columns: &self.columns,
            primary_key: self.primary_key.as_ref(),
            unique_constraints: &self.unique_constraints,
            foreign_keys: &self.foreign_keys,
            indexes: &self.indexes,
            check_constraints: &self.check_constraints,
        };
        crate::fingerprint::hash_json(&shape)
    }
}

#[derive(Serialize)]
struct TableShape<'a> {
    kind: TableKind,
    comment: Option<&'a str>,
    columns: &'a [ColumnDef],
    primary_key: Option<&'a KeyDef>,
    unique_constraints: &'a [KeyDef],
    foreign_keys: &'a [ForeignKeyDef],
    indexes: &'a [IndexDef],
    check_constraints: &'a [CheckDef],
}

/// One column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnDef {
    pub name: String,
    /// 1-based position in the table.
    pub ordinal: u32,
    /// The type as the database spells it, with modifiers (`numeric(12,2)`,
    /// `varchar(80)`, `int(10) unsigned`, `enum('a','b')`).
    pub native_type: String,
    /// The Arrow type rows of this column are delivered as.
    pub data_type: DataType,
    pub nullable: bool,
    /// The default expression as the database reports it.
    pub default: Option<String>,
    pub generated: Option<Generated>,
    pub comment: Option<String>,
    /// Set when the native type is not one we map specifically: the column is
    /// still served (as text or binary), never dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsupported_type: Option<UnsupportedType>,
}

/// How a column's value is produced by the database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Generated {
    /// SQL-standard identity (`GENERATED ALWAYS|BY DEFAULT AS IDENTITY`).
    Identity { always: bool },
    /// A sequence default (`serial`) or MySQL `AUTO_INCREMENT` / SQLite rowid alias.
    AutoIncrement,
    /// A computed column (`GENERATED ALWAYS AS (expr) STORED|VIRTUAL`).
    Computed { expression: String, stored: bool },
}

/// A native type the connector does not map specifically.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnsupportedType {
    /// The native type name, for admins to see what was approximated.
    pub native_type: String,
    /// How values are delivered instead.
    pub served_as: ServedAs,
}

/// The fallback representation of an unsupported type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServedAs {
    Text,
    Binary,
}

/// A primary key or unique constraint (columns in key order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyDef {
    pub name: Option<String>,
    pub columns: Vec<String>,
}

/// What a foreign key does when the referenced row changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReferentialAction {
    NoAction,
    Restrict,
    Cascade,
    SetNull,
    SetDefault,
}

impl ReferentialAction {
    /// Parses the spelling used by information_schema (`NO ACTION`, `SET NULL`, ...)
    /// and PostgreSQL's one-letter codes (`a r c n d`).
    pub fn parse(text: &str) -> Self {
        match text.trim().to_ascii_uppercase().as_str() {
            "RESTRICT" | "R" => Self::Restrict,
            "CASCADE" | "C" => Self::Cascade,
            "SET NULL" | "N" => Self::SetNull,
            "SET DEFAULT" | "D" => Self::SetDefault,
            _ => Self::NoAction,
        }
    }
}

/// A foreign key, possibly composite (`columns[i]` references `referenced_columns[i]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignKeyDef {
    pub name: Option<String>,
    pub columns: Vec<String>,
    pub referenced_schema: String,
    pub referenced_table: String,
    pub referenced_columns: Vec<String>,
    pub on_update: ReferentialAction,
    pub on_delete: ReferentialAction,
}

/// An index (expression indexes list their expression text as a column).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexDef {
    pub name: String,
    pub columns: Vec<String>,
    pub unique: bool,
    pub primary: bool,
    /// The access method where the database reports one (`btree`, `hash`, `gin`, ...).
    pub method: Option<String>,
}

/// A CHECK constraint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckDef {
    pub name: Option<String>,
    pub expression: String,
}

/// A table's full name inside the catalog: `source.schema.table`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TableRef {
    pub source: String,
    pub schema: String,
    pub table: String,
}

impl TableRef {
    pub fn new(
        source: impl Into<String>,
        schema: impl Into<String>,
        table: impl Into<String>,
    ) -> Self {
        Self {
            source: source.into(),
            schema: schema.into(),
            table: table.into(),
        }
    }
}

impl fmt::Display for TableRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.source, self.schema, self.table)
    }
}
