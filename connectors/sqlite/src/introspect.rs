//! Reads the catalog model of the `main` database: tables, views and virtual
//! tables with their columns, keys, foreign keys, indexes, CHECK constraints
//! and row counts, plus the drift fingerprints.
//!
//! A fixed number of catalog queries, each batched over every table with
//! SQLite's table-valued pragma functions (`pragma_table_xinfo`,
//! `pragma_foreign_key_list`, `pragma_index_list` + `pragma_index_xinfo`),
//! all in one read transaction. What the pragmas do not say (CHECK
//! constraints, generated expressions, constraint names, AUTOINCREMENT) comes
//! from the stored `CREATE` text ([`crate::ddl`]). Row estimates come from
//! `sqlite_stat1` where `ANALYZE` has run, otherwise from an exact
//! `count(*)` (one statement per 100 tables; best effort: a count that
//! fails or runs out of time leaves the estimate empty).

use std::collections::{BTreeMap, HashMap};

use chrono::Utc;
use rusqlite::{Connection, Params, Row};
use tributary_connector::drift::fingerprints_from_rows;
use tributary_connector::{ErrorKind, Result, SchemaFilter, TableKey};
use tributary_schema_cache::{
    CheckDef, ColumnDef, ForeignKeyDef, Generated, IndexDef, KeyDef, ReferentialAction, SchemaDef,
    SourceKind, SourceSchema, TableDef, TableKind,
};

use crate::classify::classify;
use crate::ddl::{self, Constraint, TableDdl};
use crate::types;

/// The one schema a SQLite source has (attached databases are per connection
/// and never attached by the pool).
pub(crate) const SCHEMA: &str = "main";

/// Tables per `count(*)` statement.
const COUNT_CHUNK: usize = 100;

/// Relations we model (as `t`, a `pragma_table_list` row): not SQLite's own
/// tables (`sqlite_%`), not FTS shadow tables (their type is `shadow`).
const MODELED: &str = "t.schema = 'main' AND t.name NOT LIKE 'sqlite\\_%' ESCAPE '\\'";

/// The drift fingerprint rows: each table's and view's `CREATE` text and the
/// text of its indexes (`(schema, table, descriptor)`, in a stable order).
fn fingerprint_rows(db: &Connection) -> Result<Vec<(String, String, String)>> {
    let sql = format!(
        "SELECT m.tbl_name, m.type, m.name, coalesce(m.sql, '') \
         FROM main.sqlite_master AS m \
         JOIN (SELECT t.name FROM pragma_table_list AS t \
               WHERE {MODELED} AND t.type IN ('table', 'view', 'virtual')) AS r ON r.name = m.tbl_name \
         WHERE m.type IN ('table', 'view', 'index') \
         ORDER BY m.tbl_name, m.type, m.name"
    );
    query(db, &sql, [], |row| {
        let (kind, name, text): (String, String, String) = (row.get(1)?, row.get(2)?, row.get(3)?);
        Ok((
            SCHEMA.to_string(),
            row.get(0)?,
            format!("{kind} {name}: {text}"),
        ))
    })
}

/// The per-table drift fingerprints (empty when `main` is not selected).
pub(crate) fn drift_fingerprints(
    db: &Connection,
    filter: &SchemaFilter,
) -> Result<BTreeMap<TableKey, String>> {
    if !filter.matches(SCHEMA) {
        return Ok(BTreeMap::new());
    }
    Ok(fingerprints_from_rows(fingerprint_rows(db)?))
}

/// Runs `sql` and maps every row.
fn query<T>(
    db: &Connection,
    sql: &str,
    params: impl Params,
    map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>> {
    let mut statement = db.prepare(sql).map_err(classify)?;
    let rows = statement.query_map(params, map).map_err(classify)?;
    rows.collect::<rusqlite::Result<Vec<T>>>().map_err(classify)
}

/// One row of `pragma_table_xinfo`.
struct RawColumn {
    name: String,
    declared: String,
    not_null: bool,
    default: Option<String>,
    /// 1-based position in the primary key, 0 when not part of it.
    pk: i64,
    /// 0 normal, 1 hidden (virtual tables), 2 virtual generated, 3 stored generated.
    hidden: i64,
}

fn raw_column(row: &Row<'_>) -> rusqlite::Result<(String, RawColumn)> {
    Ok((
        row.get(0)?,
        RawColumn {
            name: row.get(1)?,
            declared: row.get::<_, Option<String>>(2)?.unwrap_or_default(),
            not_null: row.get(3)?,
            default: row.get(4)?,
            pk: row.get(5)?,
            hidden: row.get(6)?,
        },
    ))
}

const COLUMNS: &str = "c.name, c.type, c.\"notnull\", c.dflt_value, c.pk, c.hidden";

/// Columns of every relation of `kinds`, batched; for views and virtual
/// tables a broken one (a view over a dropped table, a missing module) is
/// skipped with a warning instead of failing the whole source.
fn read_columns(
    db: &Connection,
    kinds: &str,
    fallible: bool,
) -> Result<HashMap<String, Vec<RawColumn>>> {
    let batched = format!(
        "SELECT t.name, {COLUMNS} FROM pragma_table_list AS t, pragma_table_xinfo(t.name, t.schema) AS c \
         WHERE {MODELED} AND t.type IN ({kinds}) ORDER BY t.name, c.cid"
    );
    let mut out: HashMap<String, Vec<RawColumn>> = HashMap::new();
    match query(db, &batched, [], raw_column) {
        Ok(rows) => {
            for (table, column) in rows {
                out.entry(table).or_default().push(column);
            }
        }
        Err(e) if fallible && e.kind() != ErrorKind::Timeout => {
            tracing::debug!(error = %e, "batched view columns failed; reading views one by one");
            let names = query(
                db,
                &format!(
                    "SELECT t.name FROM pragma_table_list AS t WHERE {MODELED} AND t.type IN ({kinds})"
                ),
                [],
                |r| r.get::<_, String>(0),
            )?;
            let single = format!(
                "SELECT ?1, {COLUMNS} FROM pragma_table_xinfo(?1, 'main') AS c ORDER BY c.cid"
            );
            for name in names {
                match query(db, &single, [&name], raw_column) {
                    Ok(rows) => out
                        .entry(name)
                        .or_default()
                        .extend(rows.into_iter().map(|(_, c)| c)),
                    Err(e) => {
                        tracing::warn!(relation = %name, error = %e, "skipping a SQLite view or virtual table that cannot be read")
                    }
                }
            }
        }
        Err(e) => return Err(e),
    }
    Ok(out)
}

/// One foreign key column pair.
struct RawForeignKey {
    id: i64,
    table: String,
    from: String,
    to: Option<String>,
    on_update: String,
    on_delete: String,
}

/// One column of one index.
struct RawIndexColumn {
    index: String,
    unique: bool,
    origin: String,
    seqno: i64,
    cid: i64,
    column: Option<String>,
}

/// Everything the catalog queries returned.
struct Raw {
    relations: Vec<(String, String, bool)>,
    columns: HashMap<String, Vec<RawColumn>>,
    foreign_keys: HashMap<String, Vec<RawForeignKey>>,
    indexes: HashMap<String, Vec<RawIndexColumn>>,
    /// `CREATE` text by object name (tables, views, indexes).
    sql: HashMap<String, String>,
    fingerprints: BTreeMap<TableKey, String>,
    rows: HashMap<String, u64>,
}

fn read_raw(db: &Connection) -> Result<Raw> {
    let relations: Vec<(String, String, bool)> = query(
        db,
        &format!(
            "SELECT t.name, t.type, t.wr FROM pragma_table_list AS t \
             WHERE {MODELED} AND t.type IN ('table', 'view', 'virtual') ORDER BY t.name"
        ),
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let fingerprint = fingerprint_rows(db)?;
    let sql = query(
        db,
        "SELECT name, sql FROM main.sqlite_master WHERE sql IS NOT NULL",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?
    .into_iter()
    .collect();
    let mut columns = read_columns(db, "'table'", false)?;
    columns.extend(read_columns(db, "'view', 'virtual'", true)?);
    let mut foreign_keys: HashMap<String, Vec<RawForeignKey>> = HashMap::new();
    let fk_sql = format!(
        "SELECT t.name, f.id, f.\"table\", f.\"from\", f.\"to\", f.on_update, f.on_delete \
         FROM pragma_table_list AS t, pragma_foreign_key_list(t.name, t.schema) AS f \
         WHERE {MODELED} AND t.type = 'table' ORDER BY t.name, f.id DESC, f.seq"
    );
    for (table, fk) in query(db, &fk_sql, [], |r| {
        Ok((
            r.get::<_, String>(0)?,
            RawForeignKey {
                id: r.get(1)?,
                table: r.get(2)?,
                from: r.get(3)?,
                to: r.get(4)?,
                on_update: r.get(5)?,
                on_delete: r.get(6)?,
            },
        ))
    })? {
        foreign_keys.entry(table).or_default().push(fk);
    }
    let mut indexes: HashMap<String, Vec<RawIndexColumn>> = HashMap::new();
    let index_sql = format!(
        "SELECT t.name, il.name, il.\"unique\", il.origin, ii.seqno, ii.cid, ii.name \
         FROM pragma_table_list AS t, pragma_index_list(t.name, t.schema) AS il, pragma_index_xinfo(il.name, t.schema) AS ii \
         WHERE {MODELED} AND t.type = 'table' AND ii.\"key\" = 1 ORDER BY t.name, il.name, ii.seqno"
    );
    for (table, column) in query(db, &index_sql, [], |r| {
        Ok((
            r.get::<_, String>(0)?,
            RawIndexColumn {
                index: r.get(1)?,
                unique: r.get(2)?,
                origin: r.get(3)?,
                seqno: r.get(4)?,
                cid: r.get(5)?,
                column: r.get(6)?,
            },
        ))
    })? {
        indexes.entry(table).or_default().push(column);
    }
    let tables: Vec<&str> = relations
        .iter()
        .filter(|(_, kind, _)| kind == "table")
        .map(|(n, _, _)| n.as_str())
        .collect();
    let rows = row_counts(db, &tables)?;
    Ok(Raw {
        fingerprints: fingerprints_from_rows(fingerprint),
        relations,
        columns,
        foreign_keys,
        indexes,
        sql,
        rows,
    })
}

/// Row counts: `sqlite_stat1` where analyzed, exact counts for the rest.
fn row_counts(db: &Connection, tables: &[&str]) -> Result<HashMap<String, u64>> {
    let mut counts = HashMap::new();
    let analyzed: bool = db
        .query_row("SELECT count(*) > 0 FROM main.sqlite_master WHERE type = 'table' AND name = 'sqlite_stat1'", [], |r| r.get(0))
        .map_err(classify)?;
    if analyzed {
        for (table, stat) in query(db, "SELECT tbl, stat FROM main.sqlite_stat1", [], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
        })? {
            let rows = stat
                .as_deref()
                .and_then(|s| s.split_whitespace().next())
                .and_then(|n| n.parse::<u64>().ok());
            if let Some(rows) = rows {
                let entry = counts.entry(table).or_insert(0);
                *entry = rows.max(*entry);
            }
        }
    }
    let missing: Vec<&str> = tables
        .iter()
        .copied()
        .filter(|t| !counts.contains_key(*t))
        .collect();
    for chunk in missing.chunks(COUNT_CHUNK) {
        let terms: Vec<String> = chunk
            .iter()
            .map(|t| {
                format!(
                    "(SELECT count(*) FROM \"main\".\"{}\")",
                    t.replace('"', "\"\"")
                )
            })
            .collect();
        let sql = format!("SELECT {}", terms.join(", "));
        let result = db.query_row(&sql, [], |row| {
            (0..chunk.len())
                .map(|i| row.get::<_, i64>(i))
                .collect::<rusqlite::Result<Vec<_>>>()
        });
        match result {
            Ok(values) => {
                for (table, n) in chunk.iter().zip(values) {
                    counts.insert((*table).to_string(), u64::try_from(n).unwrap_or(0));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, tables = chunk.len(), "counting SQLite rows failed; row estimates left empty")
            }
        }
    }
    Ok(counts)
}

/// Introspects the `main` database (nothing when the filter excludes it).
pub(crate) fn introspect(
    db: &Connection,
    source: &str,
    filter: &SchemaFilter,
) -> Result<SourceSchema> {
    let server_version: String = db
        .query_row("SELECT sqlite_version()", [], |r| r.get(0))
        .map_err(classify)?;
    let mut schemas = BTreeMap::new();
    if filter.matches(SCHEMA) {
        db.execute_batch("BEGIN").map_err(classify)?;
        let raw = read_raw(db)?;
        db.execute_batch("COMMIT").map_err(classify)?;
        let tables = raw
            .relations
            .iter()
            .filter_map(|(name, kind, without_rowid)| build_table(&raw, name, kind, *without_rowid))
            .map(|t| (t.name.clone(), t))
            .collect();
        schemas.insert(
            SCHEMA.to_string(),
            SchemaDef {
                name: SCHEMA.to_string(),
                tables,
            },
        );
    }
    Ok(SourceSchema {
        source: source.to_string(),
        kind: SourceKind::Sqlite,
        server_version,
        default_schema: filter.matches(SCHEMA).then(|| SCHEMA.to_string()),
        schemas,
        introspected_at: Utc::now(),
    })
}

/// The model of one relation (`None` for a view whose columns cannot be read).
fn build_table(raw: &Raw, name: &str, kind: &str, without_rowid: bool) -> Option<TableDef> {
    let raw_columns = raw.columns.get(name)?;
    let is_table = kind == "table";
    let ddl = match raw.sql.get(name) {
        Some(sql) if is_table => ddl::parse_create_table(sql),
        _ => TableDdl::default(),
    };
    let mut pk: Vec<&RawColumn> = raw_columns.iter().filter(|c| c.pk > 0).collect();
    pk.sort_by_key(|c| c.pk);
    let rowid_alias = match pk.as_slice() {
        [only]
            if is_table
                && !without_rowid
                && only.declared.trim().eq_ignore_ascii_case("INTEGER") =>
        {
            let desc = ddl.column(&only.name).is_some_and(|c| c.primary_key_desc);
            (!desc).then(|| only.name.clone())
        }
        _ => None,
    };
    let columns = raw_columns
        .iter()
        .filter(|c| c.hidden != 1)
        .enumerate()
        .map(|(i, c)| {
            let mapped = types::map_declared_type(&c.declared);
            let is_alias = rowid_alias.as_deref() == Some(c.name.as_str());
            let generated = if is_alias {
                Some(Generated::AutoIncrement)
            } else if c.hidden == 2 || c.hidden == 3 {
                let expression = ddl
                    .column(&c.name)
                    .and_then(|d| d.generated.clone())
                    .unwrap_or_default();
                Some(Generated::Computed {
                    expression,
                    stored: c.hidden == 3,
                })
            } else {
                None
            };
            ColumnDef {
                name: c.name.clone(),
                ordinal: u32::try_from(i + 1).unwrap_or(u32::MAX),
                native_type: c.declared.clone(),
                data_type: mapped.data_type,
                nullable: !(c.not_null || is_alias || (without_rowid && c.pk > 0)),
                default: c.default.clone(),
                generated,
                comment: None,
                unsupported_type: mapped.unsupported,
            }
        })
        .collect();
    let named = |wanted: &[String], primary: bool| {
        ddl.constraints.iter().find_map(|c| match c {
            Constraint::PrimaryKey { name, columns }
                if primary && same_columns(columns, wanted) =>
            {
                name.clone()
            }
            Constraint::Unique { name, columns } if !primary && same_columns(columns, wanted) => {
                name.clone()
            }
            _ => None,
        })
    };
    let primary_key = (!pk.is_empty()).then(|| {
        let columns: Vec<String> = pk.iter().map(|c| c.name.clone()).collect();
        KeyDef {
            name: named(&columns, true),
            columns,
        }
    });
    let indexes = build_indexes(raw, name);
    let from_unique_constraint = |index: &IndexDef| {
        raw.indexes.get(name).is_some_and(|rows| {
            rows.iter()
                .any(|r| r.index == index.name && r.origin == "u")
        })
    };
    let unique_constraints = indexes
        .iter()
        .filter(|index| from_unique_constraint(index))
        .map(|index| KeyDef {
            name: named(&index.columns, false),
            columns: index.columns.clone(),
        })
        .collect();
    Some(TableDef {
        name: name.to_string(),
        kind: if kind == "view" {
            TableKind::View
        } else {
            TableKind::Table
        },
        comment: None,
        columns,
        primary_key,
        unique_constraints,
        foreign_keys: build_foreign_keys(raw, name, &ddl),
        indexes,
        check_constraints: ddl
            .constraints
            .iter()
            .filter_map(|c| match c {
                Constraint::Check { name, expression } => Some(CheckDef {
                    name: name.clone(),
                    expression: expression.clone(),
                }),
                _ => None,
            })
            .collect(),
        row_estimate: if is_table {
            raw.rows.get(name).copied()
        } else {
            None
        },
        drift_fingerprint: raw
            .fingerprints
            .get(&(SCHEMA.to_string(), name.to_string()))
            .cloned()
            .unwrap_or_default(),
    })
}

fn same_columns(a: &[String], b: &[String]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.eq_ignore_ascii_case(y))
}

/// Indexes of a table, by name; expression terms as written in `CREATE INDEX`.
fn build_indexes(raw: &Raw, table: &str) -> Vec<IndexDef> {
    let mut out: Vec<IndexDef> = Vec::new();
    for row in raw
        .indexes
        .get(table)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        if out.last().is_none_or(|i| i.name != row.index) {
            out.push(IndexDef {
                name: row.index.clone(),
                columns: Vec::new(),
                unique: row.unique,
                primary: row.origin == "pk",
                method: None,
            });
        }
        let column = match (row.cid, &row.column) {
            (-1, _) => "rowid".to_string(),
            (_, Some(name)) => name.clone(),
            _ => raw
                .sql
                .get(&row.index)
                .and_then(|sql| {
                    usize::try_from(row.seqno)
                        .ok()
                        .and_then(|i| ddl::index_terms(sql).into_iter().nth(i))
                })
                .unwrap_or_else(|| "<expression>".to_string()),
        };
        if let Some(index) = out.last_mut() {
            index.columns.push(column);
        }
    }
    out
}

/// Foreign keys in declaration order; a reference without columns means
/// the referenced table's primary key.
fn build_foreign_keys(raw: &Raw, table: &str, ddl: &TableDdl) -> Vec<ForeignKeyDef> {
    let mut out: Vec<(i64, ForeignKeyDef)> = Vec::new();
    for row in raw
        .foreign_keys
        .get(table)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        if out.last().is_none_or(|(id, _)| *id != row.id) {
            let referenced = raw
                .relations
                .iter()
                .find(|(name, _, _)| name.eq_ignore_ascii_case(&row.table))
                .map_or_else(|| row.table.clone(), |(name, _, _)| name.clone());
            out.push((
                row.id,
                ForeignKeyDef {
                    name: None,
                    columns: Vec::new(),
                    referenced_schema: SCHEMA.to_string(),
                    referenced_table: referenced,
                    referenced_columns: Vec::new(),
                    on_update: ReferentialAction::parse(&row.on_update),
                    on_delete: ReferentialAction::parse(&row.on_delete),
                },
            ));
        }
        if let Some((_, fk)) = out.last_mut() {
            fk.columns.push(row.from.clone());
            if let Some(to) = &row.to {
                fk.referenced_columns.push(to.clone());
            }
        }
    }
    out.into_iter()
        .map(|(_, mut fk)| {
            if fk.referenced_columns.is_empty() {
                fk.referenced_columns = primary_key_of(raw, &fk.referenced_table);
            }
            fk.name = ddl.constraints.iter().find_map(|c| match c {
                Constraint::ForeignKey {
                    name,
                    columns,
                    table,
                } if same_columns(columns, &fk.columns)
                    && table.eq_ignore_ascii_case(&fk.referenced_table) =>
                {
                    name.clone()
                }
                _ => None,
            });
            fk
        })
        .collect()
}

fn primary_key_of(raw: &Raw, table: &str) -> Vec<String> {
    let mut pk: Vec<&RawColumn> = raw
        .columns
        .get(table)
        .map(|c| c.iter().filter(|c| c.pk > 0).collect())
        .unwrap_or_default();
    pk.sort_by_key(|c| c.pk);
    pk.into_iter().map(|c| c.name.clone()).collect()
}
