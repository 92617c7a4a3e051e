//! Introspection from `pg_catalog`: a handful of batched queries (relations,
//! columns, the types they use, constraints, indexes, drift descriptors) run
//! together in one read-only repeatable-read transaction, so they all see
//! the same catalog.

use std::collections::{BTreeMap, HashMap};

use chrono::Utc;
use deadpool_postgres::{Object, Transaction};
use tokio_postgres::IsolationLevel;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use tributary_connector::drift::fingerprints_from_rows;
use tributary_connector::{Result, SchemaFilter, TableKey};
use tributary_schema_cache::{
    CheckDef, ColumnDef, ForeignKeyDef, Generated, IndexDef, KeyDef, ReferentialAction, SchemaDef,
    SourceKind, SourceSchema, TableDef, TableKind,
};

use crate::error::from_pg;
use crate::types::{PgKind, PgType, column_type};

/// The relation kinds introspected: tables, partitioned tables, views,
/// materialized views and foreign tables.
const RELKINDS: &str = "('r', 'p', 'v', 'm', 'f')";

/// Which schemas are selected: by the filter, never the per-session temporary
/// ones or TOAST, and `pg_catalog` / `information_schema` only when an
/// `include` pattern names them exactly.
pub(crate) fn schema_selected(filter: &SchemaFilter, schema: &str) -> bool {
    let temporary = schema == "pg_toast"
        || schema.starts_with("pg_temp_")
        || schema.starts_with("pg_toast_temp_");
    if temporary {
        return false;
    }
    if schema == "pg_catalog" || schema == "information_schema" {
        return filter.include.iter().any(|p| p == schema) && filter.matches(schema);
    }
    filter.matches(schema)
}

async fn selected_schemas(client: &Transaction<'_>, filter: &SchemaFilter) -> Result<Vec<String>> {
    let rows = client
        .query(
            "SELECT nspname::text FROM pg_catalog.pg_namespace ORDER BY 1",
            &[],
        )
        .await
        .map_err(from_pg)?;
    Ok(rows
        .iter()
        .map(|r| r.get::<_, String>(0))
        .filter(|s| schema_selected(filter, s))
        .collect())
}

fn relations_sql() -> String {
    format!(
        "SELECT c.oid, n.nspname::text, c.relname::text, c.relkind::text, c.reltuples::float8, d.description
         FROM pg_catalog.pg_class c
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         LEFT JOIN pg_catalog.pg_description d
           ON d.objoid = c.oid AND d.classoid = 'pg_catalog.pg_class'::regclass AND d.objsubid = 0
         WHERE c.relkind IN {RELKINDS} AND n.nspname::text = ANY($1::text[])"
    )
}

fn columns_sql() -> String {
    format!(
        "SELECT a.attrelid, a.attnum::int4, a.attname::text, a.atttypid, a.atttypmod,
                pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull,
                pg_catalog.pg_get_expr(ad.adbin, ad.adrelid), a.attidentity::text, a.attgenerated::text,
                d.description
         FROM pg_catalog.pg_attribute a
         JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
         LEFT JOIN pg_catalog.pg_description d
           ON d.objoid = a.attrelid AND d.classoid = 'pg_catalog.pg_class'::regclass AND d.objsubid = a.attnum
         WHERE c.relkind IN {RELKINDS} AND n.nspname::text = ANY($1::text[])
           AND a.attnum > 0 AND NOT a.attisdropped
         ORDER BY a.attrelid, a.attnum"
    )
}

/// Every type the columns use, with the element types of arrays and the
/// base types of domains, recursively.
fn types_sql() -> String {
    format!(
        "WITH RECURSIVE used(oid) AS (
           SELECT DISTINCT a.atttypid
           FROM pg_catalog.pg_attribute a
           JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relkind IN {RELKINDS} AND n.nspname::text = ANY($1::text[])
             AND a.attnum > 0 AND NOT a.attisdropped
           UNION
           SELECT x.oid
           FROM used u
           JOIN pg_catalog.pg_type t ON t.oid = u.oid
           CROSS JOIN LATERAL (VALUES (CASE WHEN t.typcategory = 'A' THEN t.typelem ELSE 0 END),
                                      (t.typbasetype)) AS x(oid)
           WHERE x.oid <> 0
         )
         SELECT t.oid, t.typname::text, t.typtype::text, t.typcategory::text, t.typelem, t.typbasetype,
                t.typtypmod
         FROM pg_catalog.pg_type t JOIN used u ON u.oid = t.oid"
    )
}

fn constraints_sql() -> String {
    format!(
        "SELECT con.conrelid, con.conname::text, con.contype::text,
                ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, i)
                      JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n
                      ORDER BY k.i),
                rn.nspname::text, rc.relname::text,
                ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(n, i)
                      JOIN pg_catalog.pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n
                      ORDER BY k.i),
                con.confupdtype::text, con.confdeltype::text,
                CASE WHEN con.contype = 'c' THEN pg_catalog.pg_get_expr(con.conbin, con.conrelid) END
         FROM pg_catalog.pg_constraint con
         JOIN pg_catalog.pg_class c ON c.oid = con.conrelid
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         LEFT JOIN pg_catalog.pg_class rc ON rc.oid = con.confrelid
         LEFT JOIN pg_catalog.pg_namespace rn ON rn.oid = rc.relnamespace
         WHERE con.contype IN ('p', 'u', 'f', 'c') AND c.relkind IN {RELKINDS}
           AND n.nspname::text = ANY($1::text[])
         ORDER BY con.conrelid, con.conname"
    )
}

fn indexes_sql() -> String {
    format!(
        "SELECT i.indrelid, ic.relname::text, i.indisunique, i.indisprimary, am.amname::text,
                ARRAY(SELECT CASE WHEN k.n > 0 THEN a.attname::text
                                  ELSE pg_catalog.pg_get_indexdef(i.indexrelid, k.i::int4, true) END
                      FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(n, i)
                      LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n
                      WHERE k.i <= i.indnkeyatts
                      ORDER BY k.i)
         FROM pg_catalog.pg_index i
         JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
         JOIN pg_catalog.pg_am am ON am.oid = ic.relam
         JOIN pg_catalog.pg_class c ON c.oid = i.indrelid
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN {RELKINDS} AND n.nspname::text = ANY($1::text[])
         ORDER BY i.indrelid, ic.relname"
    )
}

/// The schema `source.table` means: `public` when selected, else the only
/// selected schema, else none.
pub(crate) fn default_schema<T>(schemas: &BTreeMap<String, T>) -> Option<String> {
    if schemas.contains_key("public") {
        return Some("public".to_string());
    }
    let mut names = schemas.keys();
    match (names.next(), names.next()) {
        (Some(only), None) => Some(only.clone()),
        _ => None,
    }
}

/// The drift descriptors: one line per relation (kind, comment), column
/// (name, type, nullability, default, identity, generation, comment),
/// constraint and index, in a stable order. Row estimates are left out:
/// they move without the table changing. Only raw catalog columns are read
/// (the stored expression trees rather than `pg_get_constraintdef` and
/// friends): that keeps the check about four times cheaper than the
/// introspection it guards.
fn drift_sql() -> String {
    format!(
        "WITH rels AS (
           SELECT c.oid, n.nspname, c.relname, c.relkind
           FROM pg_catalog.pg_class c
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relkind IN {RELKINDS} AND n.nspname::text = ANY($1::text[])
         ), descriptors (nspname, relname, section, pos, name, descriptor) AS (
           SELECT r.nspname, r.relname, 0, 0, ''::text,
                  concat_ws(' ', 'rel', r.relkind, pg_catalog.quote_nullable(d.description))
           FROM rels r
           LEFT JOIN pg_catalog.pg_description d
             ON d.objoid = r.oid AND d.classoid = 'pg_catalog.pg_class'::regclass AND d.objsubid = 0
           UNION ALL
           SELECT r.nspname, r.relname, 1, a.attnum, '',
                  concat_ws(' ', 'col', a.attnum, pg_catalog.quote_ident(a.attname), a.atttypid, a.atttypmod,
                            a.attnotnull, pg_catalog.quote_nullable(ad.adbin::text), a.attidentity,
                            a.attgenerated, pg_catalog.quote_nullable(d.description))
           FROM rels r
           JOIN pg_catalog.pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
           LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
           LEFT JOIN pg_catalog.pg_description d
             ON d.objoid = r.oid AND d.classoid = 'pg_catalog.pg_class'::regclass AND d.objsubid = a.attnum
           UNION ALL
           SELECT r.nspname, r.relname, 2, 0, con.conname::text,
                  concat_ws(' ', 'con', pg_catalog.quote_ident(con.conname), con.contype, con.conkey::text,
                            con.confrelid, con.confkey::text, con.confupdtype, con.confdeltype,
                            pg_catalog.quote_nullable(con.conbin::text))
           FROM rels r
           JOIN pg_catalog.pg_constraint con ON con.conrelid = r.oid AND con.contype IN ('p', 'u', 'f', 'c')
           UNION ALL
           SELECT r.nspname, r.relname, 3, 0, ic.relname::text,
                  concat_ws(' ', 'idx', pg_catalog.quote_ident(ic.relname), ic.relam, i.indkey::text,
                            i.indisunique, i.indisprimary, pg_catalog.quote_nullable(i.indexprs::text),
                            pg_catalog.quote_nullable(i.indpred::text))
           FROM rels r
           JOIN pg_catalog.pg_index i ON i.indrelid = r.oid
           JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
         )
         SELECT nspname::text, relname::text, descriptor
         FROM descriptors
         ORDER BY nspname, relname, section, pos, name COLLATE \"C\""
    )
}

async fn drift_rows(
    client: &Transaction<'_>,
    schemas: &[String],
) -> Result<BTreeMap<TableKey, String>> {
    let rows = client
        .query(&drift_sql(), &[&schemas])
        .await
        .map_err(from_pg)?;
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

/// A read-only transaction in which every query sees the same snapshot. If
/// it is dropped unfinished, tokio-postgres queues its rollback ahead of the
/// connection's next use.
pub(crate) async fn read_only(conn: &mut Object) -> Result<Transaction<'_>> {
    conn.build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(from_pg)
}

/// Reads the whole model of the selected schemas.
pub(crate) async fn introspect(
    mut conn: Object,
    source: &str,
    filter: &SchemaFilter,
) -> Result<SourceSchema> {
    let tx = read_only(&mut conn).await?;
    let server_version: String = tx
        .query_one("SELECT pg_catalog.current_setting('server_version')", &[])
        .await
        .map_err(from_pg)?
        .get(0);
    let schemas = selected_schemas(&tx, filter).await?;
    let params: [&(dyn ToSql + Sync); 1] = [&schemas];
    let (relations, columns, types, constraints, indexes, fingerprints) = futures::try_join!(
        async { tx.query(&relations_sql(), &params).await.map_err(from_pg) },
        async { tx.query(&columns_sql(), &params).await.map_err(from_pg) },
        async { tx.query(&types_sql(), &params).await.map_err(from_pg) },
        async { tx.query(&constraints_sql(), &params).await.map_err(from_pg) },
        async { tx.query(&indexes_sql(), &params).await.map_err(from_pg) },
        drift_rows(&tx, &schemas),
    )?;
    tx.commit().await.map_err(from_pg)?;

    let types = TypeTable::new(&types);
    let mut tables: HashMap<u32, (String, TableDef)> = HashMap::new();
    for row in &relations {
        let oid: u32 = row.get(0);
        let schema: String = row.get(1);
        let name: String = row.get(2);
        let relkind: String = row.get(3);
        let reltuples: f64 = row.get(4);
        let kind = match relkind.as_str() {
            "v" => TableKind::View,
            "m" => TableKind::MaterializedView,
            "f" => TableKind::ForeignTable,
            "p" => TableKind::PartitionedTable,
            _ => TableKind::Table,
        };
        // -1 means never analyzed; views have no statistics of their own.
        let row_estimate =
            (kind != TableKind::View && reltuples >= 0.0).then(|| float_to_count(reltuples));
        let drift_fingerprint = fingerprints
            .get(&(schema.clone(), name.clone()))
            .cloned()
            .unwrap_or_default();
        let table = TableDef {
            name,
            kind,
            comment: row.get(5),
            columns: Vec::new(),
            primary_key: None,
            unique_constraints: Vec::new(),
            foreign_keys: Vec::new(),
            indexes: Vec::new(),
            check_constraints: Vec::new(),
            row_estimate,
            drift_fingerprint,
        };
        tables.insert(oid, (schema, table));
    }
    for row in &columns {
        let oid: u32 = row.get(0);
        if let Some((_, table)) = tables.get_mut(&oid) {
            let ordinal = u32::try_from(table.columns.len() + 1).unwrap_or(u32::MAX);
            table.columns.push(column_def(row, ordinal, &types));
        }
    }
    for row in &constraints {
        let oid: u32 = row.get(0);
        if let Some((_, table)) = tables.get_mut(&oid) {
            add_constraint(table, row);
        }
    }
    for row in &indexes {
        let oid: u32 = row.get(0);
        if let Some((_, table)) = tables.get_mut(&oid) {
            table.indexes.push(IndexDef {
                name: row.get(1),
                unique: row.get(2),
                primary: row.get(3),
                method: Some(row.get(4)),
                columns: row.get(5),
            });
        }
    }

    Ok(source_schema(
        source,
        SourceKind::Postgres,
        server_version,
        &schemas,
        tables.into_values(),
    ))
}

/// The source model from its selected schemas and their tables (a table
/// of a schema not selected is left out); the same for both flavors.
pub(crate) fn source_schema(
    source: &str,
    kind: SourceKind,
    server_version: String,
    schemas: &[String],
    tables: impl IntoIterator<Item = (String, TableDef)>,
) -> SourceSchema {
    let mut model: BTreeMap<String, SchemaDef> = schemas
        .iter()
        .map(|s| {
            (
                s.clone(),
                SchemaDef {
                    name: s.clone(),
                    tables: BTreeMap::new(),
                },
            )
        })
        .collect();
    for (schema, table) in tables {
        if let Some(def) = model.get_mut(&schema) {
            def.tables.insert(table.name.clone(), table);
        }
    }
    SourceSchema {
        source: source.to_string(),
        kind,
        server_version,
        default_schema: default_schema(&model),
        schemas: model,
        introspected_at: Utc::now(),
    }
}

#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // a non-negative statistic, rounded
pub(crate) fn float_to_count(value: f64) -> u64 {
    value.max(0.0).round() as u64
}

fn column_def(row: &Row, ordinal: u32, types: &TypeTable) -> ColumnDef {
    let name: String = row.get(2);
    let type_oid: u32 = row.get(3);
    let typmod: i32 = row.get(4);
    let native_type: String = row.get(5);
    let not_null: bool = row.get(6);
    let default_expr: Option<String> = row.get(7);
    let identity: String = row.get(8);
    let generated_kind: String = row.get(9);
    let comment: Option<String> = row.get(10);

    let ty = types.resolve(type_oid);
    let mapped = column_type(&ty, typmod, &native_type);
    let (default, generated) = match (identity.as_str(), generated_kind.as_str()) {
        ("a", _) => (None, Some(Generated::Identity { always: true })),
        ("d", _) => (None, Some(Generated::Identity { always: false })),
        (_, "s") => (
            None,
            Some(Generated::Computed {
                expression: default_expr.unwrap_or_default(),
                stored: true,
            }),
        ),
        _ => {
            let serial = default_expr
                .as_deref()
                .is_some_and(|d| d.starts_with("nextval("));
            (default_expr, serial.then_some(Generated::AutoIncrement))
        }
    };
    ColumnDef {
        name,
        ordinal,
        native_type,
        data_type: mapped.data_type,
        nullable: !not_null,
        default,
        generated,
        comment,
        unsupported_type: mapped.unsupported,
    }
}

fn add_constraint(table: &mut TableDef, row: &Row) {
    let name: String = row.get(1);
    let kind: String = row.get(2);
    let columns: Vec<String> = row.get(3);
    match kind.as_str() {
        "p" => {
            table.primary_key = Some(KeyDef {
                name: Some(name),
                columns,
            })
        }
        "u" => table.unique_constraints.push(KeyDef {
            name: Some(name),
            columns,
        }),
        "f" => {
            let on_update: String = row.get(7);
            let on_delete: String = row.get(8);
            table.foreign_keys.push(ForeignKeyDef {
                name: Some(name),
                columns,
                referenced_schema: row.get::<_, Option<String>>(4).unwrap_or_default(),
                referenced_table: row.get::<_, Option<String>>(5).unwrap_or_default(),
                referenced_columns: row.get(6),
                on_update: ReferentialAction::parse(&on_update),
                on_delete: ReferentialAction::parse(&on_delete),
            });
        }
        "c" => table.check_constraints.push(CheckDef {
            name: Some(name),
            expression: row.get::<_, Option<String>>(9).unwrap_or_default(),
        }),
        _ => {}
    }
}

/// The `pg_type` rows the columns use, resolved into [`PgType`] trees.
struct TypeTable {
    rows: HashMap<u32, TypeRow>,
}

struct TypeRow {
    name: String,
    typtype: String,
    category: String,
    elem: u32,
    base: u32,
    typmod: i32,
}

impl TypeTable {
    fn new(rows: &[Row]) -> Self {
        let rows = rows
            .iter()
            .map(|r| {
                (
                    r.get::<_, u32>(0),
                    TypeRow {
                        name: r.get(1),
                        typtype: r.get(2),
                        category: r.get(3),
                        elem: r.get(4),
                        base: r.get(5),
                        typmod: r.get(6),
                    },
                )
            })
            .collect();
        Self { rows }
    }

    fn resolve(&self, oid: u32) -> PgType {
        self.resolve_depth(oid, 0)
    }

    fn resolve_depth(&self, oid: u32, depth: u32) -> PgType {
        let Some(row) = self.rows.get(&oid).filter(|_| depth < 16) else {
            return PgType {
                oid,
                name: String::new(),
                kind: PgKind::Other,
            };
        };
        let kind = match row.typtype.as_str() {
            "d" => PgKind::Domain {
                base: Box::new(self.resolve_depth(row.base, depth + 1)),
                typmod: row.typmod,
            },
            "e" => PgKind::Enum,
            "p" => PgKind::Pseudo,
            "b" if row.category == "A" && row.elem != 0 => {
                PgKind::Array(Box::new(self.resolve_depth(row.elem, depth + 1)))
            }
            "b" => PgKind::Base,
            _ => PgKind::Other,
        };
        PgType {
            oid,
            name: row.name.clone(),
            kind,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_schemas_skip_system_ones() {
        let all = SchemaFilter::default();
        assert!(schema_selected(&all, "public"));
        assert!(schema_selected(&all, "sales"));
        for system in [
            "pg_catalog",
            "information_schema",
            "pg_toast",
            "pg_temp_3",
            "pg_toast_temp_3",
        ] {
            assert!(!schema_selected(&all, system), "{system}");
        }
        let star = SchemaFilter {
            include: vec!["*".into()],
            exclude: vec![],
        };
        assert!(!schema_selected(&star, "pg_catalog"));
        let named = SchemaFilter {
            include: vec!["pg_catalog".into()],
            exclude: vec![],
        };
        assert!(schema_selected(&named, "pg_catalog"));
        assert!(!schema_selected(&named, "public"));
    }
}
