//! Introspection of KingbaseES without `pg_catalog` (V8R3 has none; V8R6
//! keeps its catalog in `sys_catalog`): tables, views, columns, types,
//! defaults, nullability and constraints from `information_schema`; comments,
//! indexes and row estimates from `sys_catalog` (`sys_class`, `sys_namespace`,
//! `sys_attribute`, `sys_description`, `sys_index`, `sys_am`, the twins of
//! `pg_class` and friends). All queries run in one read-only
//! repeatable-read transaction, like the PostgreSQL flavor's.
//!
//! Names are kept exactly as stored: in Oracle compatibility mode they are
//! upper case, and the dialect quotes them as they are.
//!
//! What `information_schema` cannot say, and so this flavor does not report:
//! materialized views (absent from its views), tables the connecting role
//! has no privilege on (the views filter them out), expression members of
//! indexes (reported as `(expression)`), and the element type modifier of
//! arrays other than from `sys_attribute.atttypmod`. Types other than
//! PostgreSQL's built-in ones (`USER-DEFINED` in `information_schema`:
//! enums, composites, extension and Kingbase-specific types) are served as
//! text flagged `unsupported_type`, because the driver cannot decode them
//! without `pg_catalog` (see `flavor.rs`).

use std::collections::{BTreeMap, HashMap};

use deadpool_postgres::{Object, Transaction};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use tributary_connector::drift::fingerprints_from_rows;
use tributary_connector::{Result, SchemaFilter, TableKey};
use tributary_schema_cache::{
    CheckDef, ColumnDef, ForeignKeyDef, Generated, IndexDef, KeyDef, ReferentialAction, SourceKind,
    SourceSchema, TableDef, TableKind,
};

use crate::error::from_pg;
use crate::flavor::Flavor;
use crate::introspect::{float_to_count, read_only, source_schema};
use crate::types::{PgType, builtin_by_name, column_type, numeric_precision_scale, numeric_typmod};

/// Which schemas are selected: by the filter, and the system ones — `SYS*`
/// in any case (`SYS`, `SYS_CATALOG`, `SYSAUDIT`, `SYSLOGICAL`, ...),
/// `pg_*` and `information_schema` — only when an `include` pattern names
/// them exactly.
pub(crate) fn schema_selected(filter: &SchemaFilter, schema: &str) -> bool {
    let lower = schema.to_ascii_lowercase();
    let system =
        lower.starts_with("sys") || lower.starts_with("pg_") || lower == "information_schema";
    if system {
        return filter.include.iter().any(|p| p == schema) && filter.matches(schema);
    }
    filter.matches(schema)
}

/// Every schema of the database (`information_schema.schemata` lists only
/// those the role owns on older servers).
pub(crate) const SCHEMAS_SQL: &str =
    "SELECT n.nspname::text FROM sys_catalog.sys_namespace n ORDER BY 1";

/// The relations, as `information_schema` lists them.
pub(crate) const TABLES_SQL: &str = "\
SELECT t.table_schema::text, t.table_name::text, t.table_type::text
FROM information_schema.tables t
WHERE t.table_schema::text = ANY($1::text[])
ORDER BY 1, 2";

/// The columns. Every value is cast to a built-in type: the driver would
/// look the `information_schema` domains up in `pg_catalog`.
pub(crate) const COLUMNS_SQL: &str = "\
SELECT c.table_schema::text, c.table_name::text, c.column_name::text, c.ordinal_position::int4,
       c.data_type::text, c.udt_name::text, c.domain_name::text,
       c.character_maximum_length::int4, c.numeric_precision::int4, c.numeric_scale::int4,
       c.datetime_precision::int4, c.is_nullable::text, c.column_default::text,
       c.is_identity::text, c.identity_generation::text, c.is_generated::text,
       c.generation_expression::text, c.udt_schema::text, c.domain_schema::text
FROM information_schema.columns c
WHERE c.table_schema::text = ANY($1::text[])
ORDER BY 1, 2, 4";

/// Primary key, unique, foreign key and check constraints, with the rules
/// and referenced constraint of foreign keys and the clause of checks.
/// (`referential_constraints` and `check_constraints` are keyed by schema
/// and name only; PostgreSQL lets two tables of a schema use one constraint
/// name, which these views cannot tell apart.)
pub(crate) const CONSTRAINTS_SQL: &str = "\
SELECT tc.table_schema::text, tc.table_name::text, tc.constraint_name::text, tc.constraint_type::text,
       rc.unique_constraint_schema::text, rc.unique_constraint_name::text,
       uc.table_schema::text, uc.table_name::text,
       rc.update_rule::text, rc.delete_rule::text, cc.check_clause::text
FROM information_schema.table_constraints tc
LEFT JOIN information_schema.referential_constraints rc
  ON tc.constraint_type = 'FOREIGN KEY'
 AND rc.constraint_schema = tc.constraint_schema AND rc.constraint_name = tc.constraint_name
LEFT JOIN information_schema.table_constraints uc
  ON uc.constraint_schema = rc.unique_constraint_schema AND uc.constraint_name = rc.unique_constraint_name
 AND uc.constraint_type IN ('PRIMARY KEY', 'UNIQUE')
LEFT JOIN information_schema.check_constraints cc
  ON tc.constraint_type = 'CHECK'
 AND cc.constraint_schema = tc.constraint_schema AND cc.constraint_name = tc.constraint_name
WHERE tc.table_schema::text = ANY($1::text[])
  AND tc.constraint_type IN ('PRIMARY KEY', 'UNIQUE', 'FOREIGN KEY', 'CHECK')
ORDER BY 1, 2, 3";

/// The key columns of the selected schemas' constraints and of the unique
/// constraints their foreign keys reference (possibly in other schemas).
pub(crate) const KEY_COLUMNS_SQL: &str = "\
SELECT k.constraint_schema::text, k.constraint_name::text, k.table_schema::text, k.table_name::text,
       k.column_name::text, k.ordinal_position::int4, k.position_in_unique_constraint::int4
FROM information_schema.key_column_usage k
WHERE k.table_schema::text = ANY($1::text[])
   OR (k.constraint_schema::text, k.constraint_name::text) IN (
        SELECT rc.unique_constraint_schema::text, rc.unique_constraint_name::text
        FROM information_schema.referential_constraints rc
        WHERE rc.constraint_schema::text = ANY($1::text[]))
ORDER BY 1, 2, 3, 4, 6";

/// Relation kinds, row estimates and comments. A comment on a relation is
/// the `sys_description` row whose `classoid` is `sys_class` itself: the
/// `tableoid` of the relation's own `sys_class` row.
pub(crate) const RELATIONS_SQL: &str = "\
SELECT n.nspname::text, c.relname::text, c.relkind::text, c.reltuples::float8, d.description::text
FROM sys_catalog.sys_class c
JOIN sys_catalog.sys_namespace n ON n.oid = c.relnamespace
LEFT JOIN sys_catalog.sys_description d
  ON d.objoid = c.oid AND d.classoid = c.tableoid AND d.objsubid = 0
WHERE n.nspname::text = ANY($1::text[]) AND c.relkind IN ('r', 'p', 'v', 'f')";

/// Column comments and type modifiers (`information_schema` gives no
/// modifier for array elements).
pub(crate) const ATTRIBUTES_SQL: &str = "\
SELECT n.nspname::text, c.relname::text, a.attname::text, a.atttypmod::int4, d.description::text
FROM sys_catalog.sys_attribute a
JOIN sys_catalog.sys_class c ON c.oid = a.attrelid
JOIN sys_catalog.sys_namespace n ON n.oid = c.relnamespace
LEFT JOIN sys_catalog.sys_description d
  ON d.objoid = c.oid AND d.classoid = c.tableoid AND d.objsubid = a.attnum
WHERE n.nspname::text = ANY($1::text[]) AND c.relkind IN ('r', 'p', 'v', 'f')
  AND a.attnum > 0 AND NOT a.attisdropped";

/// Indexes with their key columns. `indnkeyatts` (key columns without the
/// `INCLUDE`d ones) is read through `row_to_json` so servers older than it
/// (which have no `INCLUDE`) fall back to `indnatts`.
pub(crate) const INDEXES_SQL: &str = "\
SELECT n.nspname::text, c.relname::text, ic.relname::text, i.indisunique, i.indisprimary, am.amname::text,
       ARRAY(SELECT CASE WHEN k.attnum > 0 THEN a.attname::text ELSE '(expression)' END
             FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, pos)
             LEFT JOIN sys_catalog.sys_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
             WHERE k.pos <= coalesce((row_to_json(i) ->> 'indnkeyatts')::int4, i.indnatts::int4)
             ORDER BY k.pos)
FROM sys_catalog.sys_index i
JOIN sys_catalog.sys_class ic ON ic.oid = i.indexrelid
JOIN sys_catalog.sys_am am ON am.oid = ic.relam
JOIN sys_catalog.sys_class c ON c.oid = i.indrelid
JOIN sys_catalog.sys_namespace n ON n.oid = c.relnamespace
WHERE n.nspname::text = ANY($1::text[]) AND c.relkind IN ('r', 'p', 'v', 'f')
ORDER BY 1, 2, 3";

/// The drift descriptors: one line per relation, column, constraint, key
/// column, comment and index of the relations `information_schema.tables`
/// lists (the ones introspection reports), in a stable order. Row estimates
/// are left out: they move without the table changing.
pub(crate) const DRIFT_SQL: &str = "\
WITH rels AS (
  SELECT t.table_schema::text AS s, t.table_name::text AS r, t.table_type::text AS tt
  FROM information_schema.tables t
  WHERE t.table_schema::text = ANY($1::text[])
), descriptors (s, r, section, pos, name, descriptor) AS (
  SELECT rels.s, rels.r, 0, 0, ''::text, concat_ws(' ', 'rel', rels.tt)
  FROM rels
  UNION ALL
  SELECT rels.s, rels.r, 1, c.ordinal_position::int4, ''::text,
         concat_ws(' ', 'col', c.ordinal_position, quote_ident(c.column_name::text), c.data_type,
                   c.udt_schema, c.udt_name, quote_nullable(c.domain_name::text),
                   quote_nullable(c.character_maximum_length::int4), quote_nullable(c.numeric_precision::int4),
                   quote_nullable(c.numeric_scale::int4), quote_nullable(c.datetime_precision::int4),
                   c.is_nullable, quote_nullable(c.column_default::text), c.is_identity,
                   quote_nullable(c.identity_generation::text), c.is_generated,
                   quote_nullable(c.generation_expression::text))
  FROM rels
  JOIN information_schema.columns c ON c.table_schema::text = rels.s AND c.table_name::text = rels.r
  UNION ALL
  SELECT rels.s, rels.r, 2, 0, tc.constraint_name::text,
         concat_ws(' ', 'con', quote_ident(tc.constraint_name::text), tc.constraint_type,
                   quote_nullable(cc.check_clause::text), quote_nullable(rc.unique_constraint_schema::text),
                   quote_nullable(rc.unique_constraint_name::text), rc.update_rule, rc.delete_rule)
  FROM rels
  JOIN information_schema.table_constraints tc
    ON tc.table_schema::text = rels.s AND tc.table_name::text = rels.r
  LEFT JOIN information_schema.referential_constraints rc
    ON tc.constraint_type = 'FOREIGN KEY'
   AND rc.constraint_schema = tc.constraint_schema AND rc.constraint_name = tc.constraint_name
  LEFT JOIN information_schema.check_constraints cc
    ON tc.constraint_type = 'CHECK'
   AND cc.constraint_schema = tc.constraint_schema AND cc.constraint_name = tc.constraint_name
  UNION ALL
  SELECT rels.s, rels.r, 3, k.ordinal_position::int4, k.constraint_name::text,
         concat_ws(' ', 'key', quote_ident(k.constraint_name::text), k.ordinal_position,
                   quote_ident(k.column_name::text), quote_nullable(k.position_in_unique_constraint::int4))
  FROM rels
  JOIN information_schema.key_column_usage k
    ON k.table_schema::text = rels.s AND k.table_name::text = rels.r
  UNION ALL
  SELECT rels.s, rels.r, 4, d.objsubid::int4, ''::text,
         concat_ws(' ', 'comment', d.objsubid, quote_literal(d.description::text))
  FROM rels
  JOIN sys_catalog.sys_namespace n ON n.nspname::text = rels.s
  JOIN sys_catalog.sys_class c ON c.relnamespace = n.oid AND c.relname::text = rels.r
  JOIN sys_catalog.sys_description d ON d.objoid = c.oid AND d.classoid = c.tableoid
  UNION ALL
  SELECT rels.s, rels.r, 5, 0, ic.relname::text,
         concat_ws(' ', 'idx', quote_ident(ic.relname::text), ic.relam, i.indkey::text, i.indisunique,
                   i.indisprimary, quote_nullable(i.indexprs::text), quote_nullable(i.indpred::text))
  FROM rels
  JOIN sys_catalog.sys_namespace n ON n.nspname::text = rels.s
  JOIN sys_catalog.sys_class c ON c.relnamespace = n.oid AND c.relname::text = rels.r
  JOIN sys_catalog.sys_index i ON i.indrelid = c.oid
  JOIN sys_catalog.sys_class ic ON ic.oid = i.indexrelid
)
SELECT s, r, descriptor
FROM descriptors
ORDER BY s, r, section, pos, name COLLATE \"C\", descriptor COLLATE \"C\"";

/// Every statement this flavor sends, for the test that none reads
/// `pg_catalog`.
#[cfg(test)]
pub(crate) const ALL_SQL: [&str; 9] = [
    SCHEMAS_SQL,
    TABLES_SQL,
    COLUMNS_SQL,
    CONSTRAINTS_SQL,
    KEY_COLUMNS_SQL,
    RELATIONS_SQL,
    ATTRIBUTES_SQL,
    INDEXES_SQL,
    DRIFT_SQL,
];

async fn selected_schemas(tx: &Transaction<'_>, filter: &SchemaFilter) -> Result<Vec<String>> {
    let rows = tx.query(SCHEMAS_SQL, &[]).await.map_err(from_pg)?;
    Ok(rows
        .iter()
        .map(|r| r.get::<_, String>(0))
        .filter(|s| schema_selected(filter, s))
        .collect())
}

async fn drift_rows(
    tx: &Transaction<'_>,
    schemas: &[String],
) -> Result<BTreeMap<TableKey, String>> {
    let rows = tx.query(DRIFT_SQL, &[&schemas]).await.map_err(from_pg)?;
    Ok(fingerprints_from_rows(
        rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))),
    ))
}

/// The drift fingerprints of every selected table.
pub(crate) async fn drift_fingerprints(
    mut conn: Object,
    filter: &SchemaFilter,
) -> Result<BTreeMap<TableKey, String>> {
    let tx = read_only(&mut conn).await?;
    let schemas = selected_schemas(&tx, filter).await?;
    let fingerprints = drift_rows(&tx, &schemas).await?;
    tx.commit().await.map_err(from_pg)?;
    Ok(fingerprints)
}

/// `(schema, table)` of a row's first two columns.
fn table_key(row: &Row) -> TableKey {
    (row.get(0), row.get(1))
}

/// Reads the whole model of the selected schemas.
pub(crate) async fn introspect(
    mut conn: Object,
    source: &str,
    filter: &SchemaFilter,
) -> Result<SourceSchema> {
    let tx = read_only(&mut conn).await?;
    let server_version: String = tx
        .query_one(Flavor::Kingbase.version_sql(), &[])
        .await
        .map_err(from_pg)?
        .get(0);
    let schemas = selected_schemas(&tx, filter).await?;
    let params: [&(dyn ToSql + Sync); 1] = [&schemas];
    let (tables, columns, constraints, key_columns, relations, attributes, indexes) = futures::try_join!(
        async { tx.query(TABLES_SQL, &params).await.map_err(from_pg) },
        async { tx.query(COLUMNS_SQL, &params).await.map_err(from_pg) },
        async { tx.query(CONSTRAINTS_SQL, &params).await.map_err(from_pg) },
        async { tx.query(KEY_COLUMNS_SQL, &params).await.map_err(from_pg) },
        async { tx.query(RELATIONS_SQL, &params).await.map_err(from_pg) },
        async { tx.query(ATTRIBUTES_SQL, &params).await.map_err(from_pg) },
        async { tx.query(INDEXES_SQL, &params).await.map_err(from_pg) },
    )?;
    let fingerprints = drift_rows(&tx, &schemas).await?;
    tx.commit().await.map_err(from_pg)?;

    // (relkind, reltuples, comment) by table.
    let relations: HashMap<TableKey, (String, f64, Option<String>)> = relations
        .iter()
        .map(|r| (table_key(r), (r.get(2), r.get(3), r.get(4))))
        .collect();
    // (atttypmod, comment) by (schema, table, column).
    let attributes: HashMap<(String, String, String), (i32, Option<String>)> = attributes
        .iter()
        .map(|r| ((r.get(0), r.get(1), r.get(2)), (r.get(3), r.get(4))))
        .collect();
    let keys = KeyColumns::new(&key_columns);

    let mut model: BTreeMap<TableKey, TableDef> = BTreeMap::new();
    for row in &tables {
        let key = table_key(row);
        let table_type: String = row.get(2);
        let relation = relations.get(&key);
        let kind = match (table_type.as_str(), relation.map(|r| r.0.as_str())) {
            ("VIEW", _) => TableKind::View,
            (t, _) if t.starts_with("FOREIGN") => TableKind::ForeignTable,
            (_, Some("p")) => TableKind::PartitionedTable,
            _ => TableKind::Table,
        };
        // -1 means never analyzed; views have no statistics of their own.
        let row_estimate = relation
            .map(|r| r.1)
            .filter(|tuples| kind != TableKind::View && *tuples >= 0.0)
            .map(float_to_count);
        let table = TableDef {
            name: key.1.clone(),
            kind,
            comment: relation.and_then(|r| r.2.clone()),
            columns: Vec::new(),
            primary_key: None,
            unique_constraints: Vec::new(),
            foreign_keys: Vec::new(),
            indexes: Vec::new(),
            check_constraints: Vec::new(),
            row_estimate,
            drift_fingerprint: fingerprints.get(&key).cloned().unwrap_or_default(),
        };
        model.insert(key, table);
    }
    for row in &columns {
        let key = table_key(row);
        if let Some(table) = model.get_mut(&key) {
            let name: String = row.get(2);
            let attribute = attributes.get(&(key.0, key.1, name));
            let ordinal = u32::try_from(table.columns.len() + 1).unwrap_or(u32::MAX);
            table.columns.push(column_def(row, ordinal, attribute));
        }
    }
    for row in &constraints {
        if let Some(table) = model.get_mut(&table_key(row)) {
            add_constraint(table, row, &keys);
        }
    }
    for row in &indexes {
        if let Some(table) = model.get_mut(&table_key(row)) {
            table.indexes.push(IndexDef {
                name: row.get(2),
                unique: row.get(3),
                primary: row.get(4),
                method: Some(row.get(5)),
                columns: row.get(6),
            });
        }
    }

    Ok(source_schema(
        source,
        SourceKind::Kingbase,
        server_version,
        &schemas,
        model
            .into_iter()
            .map(|((schema, _), table)| (schema, table)),
    ))
}

/// One column from `information_schema.columns` (see [`COLUMNS_SQL`]), with
/// its `sys_attribute` type modifier and comment.
fn column_def(row: &Row, ordinal: u32, attribute: Option<&(i32, Option<String>)>) -> ColumnDef {
    let name: String = row.get(2);
    let info = TypeInfo {
        data_type: row.get(4),
        udt_name: row.get(5),
        domain_name: row.get(6),
        char_length: row.get(7),
        numeric_precision: row.get(8),
        numeric_scale: row.get(9),
        datetime_precision: row.get(10),
        atttypmod: attribute.map_or(-1, |a| a.0),
        udt_schema: row.get(17),
        domain_schema: row.get(18),
    };
    let nullable = row.get::<_, String>(11) == "YES";
    let default_expr: Option<String> = row.get(12);
    let is_identity: Option<String> = row.get(13);
    let identity_generation: Option<String> = row.get(14);
    let is_generated: Option<String> = row.get(15);
    let generation_expression: Option<String> = row.get(16);

    let ty = PgType::from_information_schema(&info.data_type, &info.udt_name);
    let native_type = info.native_type();
    let mapped = column_type(&ty, info.typmod(), &native_type);
    let (default, generated) = if is_identity.as_deref() == Some("YES") {
        let always = identity_generation.as_deref() == Some("ALWAYS");
        (None, Some(Generated::Identity { always }))
    } else if is_generated.as_deref() == Some("ALWAYS") {
        let expression = generation_expression.or(default_expr).unwrap_or_default();
        (
            None,
            Some(Generated::Computed {
                expression,
                stored: true,
            }),
        )
    } else {
        let serial = default_expr
            .as_deref()
            .is_some_and(|d| d.starts_with("nextval("));
        (default_expr, serial.then_some(Generated::AutoIncrement))
    };
    ColumnDef {
        name,
        ordinal,
        native_type,
        data_type: mapped.data_type,
        nullable,
        default,
        generated,
        comment: attribute.and_then(|a| a.1.clone()),
        unsupported_type: mapped.unsupported,
    }
}

/// A column's type as `information_schema` describes it.
#[derive(Debug, Clone, Default)]
struct TypeInfo {
    data_type: String,
    udt_name: String,
    domain_name: Option<String>,
    char_length: Option<i32>,
    numeric_precision: Option<i32>,
    numeric_scale: Option<i32>,
    datetime_precision: Option<i32>,
    /// `sys_attribute.atttypmod`, -1 when unknown.
    atttypmod: i32,
    udt_schema: Option<String>,
    domain_schema: Option<String>,
}

/// A type name as `format_type` prints it from a session with the default
/// search path: qualified unless it lives in `public` or a system catalog,
/// quoted where it has to be.
fn type_name(schema: Option<&str>, name: &str) -> String {
    let quote = |ident: &str| {
        let plain = ident.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && ident
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if plain {
            ident.to_string()
        } else {
            format!("\"{}\"", ident.replace('"', "\"\""))
        }
    };
    match schema {
        Some(s)
            if !matches!(
                s,
                "public" | "pg_catalog" | "sys_catalog" | "information_schema"
            ) =>
        {
            format!("{}.{}", quote(s), quote(name))
        }
        _ => quote(name),
    }
}

impl TypeInfo {
    /// The type modifier the mapping needs (only `numeric` uses one): from
    /// precision and scale for a scalar column (a domain's when the column
    /// is of a domain), from `sys_attribute` for an array.
    fn typmod(&self) -> i32 {
        match (self.data_type.as_str(), self.numeric_precision) {
            ("numeric", Some(precision)) => {
                numeric_typmod(precision, self.numeric_scale.unwrap_or(0))
            }
            ("ARRAY", _) => self.atttypmod,
            _ => -1,
        }
    }

    /// The type as `format_type` would print it (`character varying(20)`,
    /// `numeric(12,2)`, `timestamp(3) without time zone`, `integer[]`, a
    /// domain's or user-defined type's name).
    fn native_type(&self) -> String {
        if let Some(domain) = &self.domain_name {
            return type_name(self.domain_schema.as_deref(), domain);
        }
        match self.data_type.as_str() {
            "USER-DEFINED" => type_name(self.udt_schema.as_deref(), &self.udt_name),
            "ARRAY" => {
                let elem = self.udt_name.strip_prefix('_').unwrap_or(&self.udt_name);
                let sql = builtin_by_name(elem).map_or_else(
                    || type_name(self.udt_schema.as_deref(), elem),
                    |(_, sql)| sql.to_string(),
                );
                let modifier = match elem {
                    "numeric" => {
                        numeric_precision_scale(self.atttypmod).map(|(p, s)| format!("({p},{s})"))
                    }
                    "varchar" | "bpchar" if self.atttypmod >= 4 => {
                        Some(format!("({})", self.atttypmod - 4))
                    }
                    _ => None,
                };
                format!("{sql}{}[]", modifier.unwrap_or_default())
            }
            "numeric" => match self.numeric_precision {
                Some(precision) => {
                    let typmod = numeric_typmod(precision, self.numeric_scale.unwrap_or(0));
                    numeric_precision_scale(typmod).map_or_else(
                        || "numeric".to_string(),
                        |(p, s)| format!("numeric({p},{s})"),
                    )
                }
                None => "numeric".to_string(),
            },
            "character varying" | "character" | "bit" | "bit varying" => match self.char_length {
                Some(length) => format!("{}({length})", self.data_type),
                None => self.data_type.clone(),
            },
            time if time.starts_with("time") => match self.datetime_precision {
                // 6 is also what an unconstrained column reports.
                Some(precision) if precision != 6 => match time.split_once(' ') {
                    Some((head, rest)) => format!("{head}({precision}) {rest}"),
                    None => format!("{time}({precision})"),
                },
                _ => time.to_string(),
            },
            other => other.to_string(),
        }
    }
}

/// `(constraint schema, constraint name, table schema, table name)`.
type ConstraintKey = (String, String, String, String);

/// The key columns of every constraint, by constraint.
struct KeyColumns {
    /// Each constraint's `(column, position in the referenced unique
    /// constraint)` in key order.
    by_constraint: HashMap<ConstraintKey, Vec<(String, Option<i32>)>>,
    /// `(constraint schema, constraint name)` to the columns in key order
    /// (unique and primary key constraint names are unique per schema).
    by_name: HashMap<(String, String), Vec<String>>,
}

impl KeyColumns {
    fn new(rows: &[Row]) -> Self {
        let mut by_constraint: HashMap<_, Vec<(String, Option<i32>)>> = HashMap::new();
        let mut by_name: HashMap<_, Vec<String>> = HashMap::new();
        // The rows come in key order (`ORDER BY ..., ordinal_position`).
        for row in rows {
            let (schema, name, table_schema, table): (String, String, String, String) =
                (row.get(0), row.get(1), row.get(2), row.get(3));
            let column: String = row.get(4);
            let position: Option<i32> = row.get(6);
            by_name
                .entry((schema.clone(), name.clone()))
                .or_default()
                .push(column.clone());
            by_constraint
                .entry((schema, name, table_schema, table))
                .or_default()
                .push((column, position));
        }
        Self {
            by_constraint,
            by_name,
        }
    }

    fn of(
        &self,
        schema: &str,
        name: &str,
        table_schema: &str,
        table: &str,
    ) -> &[(String, Option<i32>)] {
        self.by_constraint
            .get(&(
                schema.to_string(),
                name.to_string(),
                table_schema.to_string(),
                table.to_string(),
            ))
            .map_or(&[], Vec::as_slice)
    }
}

/// The expression of a check clause: `information_schema` gives
/// `pg_get_constraintdef` without its `CHECK ` prefix, one pair of
/// parentheses more than the expression itself.
fn check_expression(clause: &str) -> String {
    clause
        .strip_prefix('(')
        .and_then(|c| c.strip_suffix(')'))
        .filter(|inner| balanced(inner))
        .unwrap_or(clause)
        .to_string()
}

/// Whether the parentheses of `text` pair up (ignoring quoted text).
fn balanced(text: &str) -> bool {
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    for c in text.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '(') => depth += 1,
            (None, ')') => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            _ => {}
        }
    }
    depth == 0
}

/// `information_schema` lists NOT NULL as check constraints (`col IS NOT
/// NULL`, unparenthesized, unlike a declared check's clause); nullability
/// is reported on the column instead.
fn is_not_null_clause(clause: &str) -> bool {
    !clause.starts_with('(') && clause.ends_with(" IS NOT NULL")
}

fn add_constraint(table: &mut TableDef, row: &Row, keys: &KeyColumns) {
    let table_schema: String = row.get(0);
    let table_name: String = row.get(1);
    let name: String = row.get(2);
    let kind: String = row.get(3);
    let key = keys.of(&table_schema, &name, &table_schema, &table_name);
    let columns: Vec<String> = key.iter().map(|(c, _)| c.clone()).collect();
    match kind.as_str() {
        "PRIMARY KEY" => {
            table.primary_key = Some(KeyDef {
                name: Some(name),
                columns,
            });
        }
        "UNIQUE" => table.unique_constraints.push(KeyDef {
            name: Some(name),
            columns,
        }),
        "FOREIGN KEY" => {
            let unique_schema: Option<String> = row.get(4);
            let unique_name: Option<String> = row.get(5);
            let referenced = match (&unique_schema, &unique_name) {
                (Some(s), Some(n)) => keys.by_name.get(&(s.clone(), n.clone())),
                _ => None,
            };
            // `columns[i]` references the unique constraint's column at
            // `position_in_unique_constraint`.
            let referenced_columns = key
                .iter()
                .map(|(_, position)| {
                    position
                        .and_then(|p| usize::try_from(p).ok())
                        .and_then(|p| referenced.and_then(|cols| cols.get(p.checked_sub(1)?)))
                        .cloned()
                        .unwrap_or_default()
                })
                .collect();
            let on_update: Option<String> = row.get(8);
            let on_delete: Option<String> = row.get(9);
            table.foreign_keys.push(ForeignKeyDef {
                name: Some(name),
                columns,
                referenced_schema: row.get::<_, Option<String>>(6).unwrap_or_default(),
                referenced_table: row.get::<_, Option<String>>(7).unwrap_or_default(),
                referenced_columns,
                on_update: ReferentialAction::parse(on_update.as_deref().unwrap_or_default()),
                on_delete: ReferentialAction::parse(on_delete.as_deref().unwrap_or_default()),
            });
        }
        "CHECK" => {
            let clause: Option<String> = row.get(10);
            let Some(clause) = clause else { return };
            if is_not_null_clause(&clause) {
                return;
            }
            table.check_constraints.push(CheckDef {
                name: Some(name),
                expression: check_expression(&clause),
            });
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_statement_reads_pg_catalog() {
        for sql in ALL_SQL {
            assert!(
                !sql.to_ascii_lowercase().contains("pg_"),
                "a Kingbase statement mentions pg_: {sql}"
            );
        }
        for sql in [&TABLES_SQL, &COLUMNS_SQL, &CONSTRAINTS_SQL] {
            assert!(sql.contains("information_schema."), "{sql}");
        }
        for sql in [&RELATIONS_SQL, &ATTRIBUTES_SQL, &INDEXES_SQL] {
            assert!(sql.contains("sys_catalog.sys_class"), "{sql}");
        }
    }

    #[test]
    fn system_schemas_are_left_out() {
        let all = SchemaFilter::default();
        for user in ["public", "sales", "ORDERS", "Sy", "s_ys"] {
            assert!(schema_selected(&all, user), "{user}");
        }
        for system in [
            "SYS",
            "sys",
            "SYS_CATALOG",
            "sys_catalog",
            "SYSAUDIT",
            "SYSLOGICAL",
            "SYSMAC",
            "SYS_HM",
            "SYS_SOMETHING",
            "information_schema",
            "pg_catalog",
            "pg_toast",
            "pg_temp_3",
        ] {
            assert!(!schema_selected(&all, system), "{system}");
        }
        let star = SchemaFilter {
            include: vec!["*".into()],
            exclude: vec![],
        };
        assert!(!schema_selected(&star, "SYS_CATALOG"));
        let named = SchemaFilter {
            include: vec!["SYSAUDIT".into()],
            exclude: vec![],
        };
        assert!(schema_selected(&named, "SYSAUDIT"));
        assert!(!schema_selected(&named, "public"));
    }

    #[test]
    fn check_clauses_and_not_nulls() {
        let cases = [
            ("((qty > 0))", "(qty > 0)"),
            ("(((a > 0) AND (b > 0)))", "((a > 0) AND (b > 0))"),
            ("(a > 0) OR (b > 0)", "(a > 0) OR (b > 0)"),
            ("((note <> ')'::text))", "(note <> ')'::text)"),
        ];
        for (clause, expression) in cases {
            assert_eq!(check_expression(clause), expression, "{clause}");
        }
        assert!(is_not_null_clause("qty IS NOT NULL"));
        assert!(is_not_null_clause("\"ID\" IS NOT NULL"));
        assert!(!is_not_null_clause("((qty IS NOT NULL))"));
    }

    #[test]
    fn native_types_read_like_format_type() {
        let info = |data_type: &str, udt: &str| TypeInfo {
            data_type: data_type.into(),
            udt_name: udt.into(),
            atttypmod: -1,
            ..TypeInfo::default()
        };
        let cases = [
            (info("integer", "int4"), "integer"),
            (
                TypeInfo {
                    char_length: Some(20),
                    ..info("character varying", "varchar")
                },
                "character varying(20)",
            ),
            (
                TypeInfo {
                    numeric_precision: Some(12),
                    numeric_scale: Some(2),
                    ..info("numeric", "numeric")
                },
                "numeric(12,2)",
            ),
            (
                TypeInfo {
                    numeric_precision: Some(3),
                    numeric_scale: Some(2046),
                    ..info("numeric", "numeric")
                },
                "numeric(3,-2)",
            ),
            (info("numeric", "numeric"), "numeric"),
            (
                TypeInfo {
                    datetime_precision: Some(3),
                    ..info("timestamp without time zone", "timestamp")
                },
                "timestamp(3) without time zone",
            ),
            (
                TypeInfo {
                    datetime_precision: Some(6),
                    ..info("timestamp with time zone", "timestamptz")
                },
                "timestamp with time zone",
            ),
            (info("ARRAY", "_int4"), "integer[]"),
            (
                TypeInfo {
                    atttypmod: numeric_typmod(8, 3),
                    ..info("ARRAY", "_numeric")
                },
                "numeric(8,3)[]",
            ),
            (info("USER-DEFINED", "mood"), "mood"),
            (
                TypeInfo {
                    udt_schema: Some("shop".into()),
                    ..info("USER-DEFINED", "mood")
                },
                "shop.mood",
            ),
            (
                TypeInfo {
                    udt_schema: Some("SHOP".into()),
                    ..info("ARRAY", "_Mood")
                },
                "\"SHOP\".\"Mood\"[]",
            ),
            (
                TypeInfo {
                    udt_schema: Some("pg_catalog".into()),
                    ..info("ARRAY", "_int8")
                },
                "bigint[]",
            ),
            (
                TypeInfo {
                    domain_name: Some("price".into()),
                    domain_schema: Some("public".into()),
                    numeric_precision: Some(10),
                    numeric_scale: Some(2),
                    ..info("numeric", "numeric")
                },
                "price",
            ),
        ];
        for (info, native) in cases {
            assert_eq!(info.native_type(), native, "{info:?}");
        }
    }
}
