//! Introspection: which databases are selected, and the catalog model of
//! their tables and views, assembled from a fixed set of batched
//! `information_schema` queries (see `catalog.rs`), plus the drift
//! fingerprints from the one fingerprint query.

use std::collections::BTreeMap;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Params, Row, Value as MyValue};
use tributary_connector::drift::fingerprints_from_rows;
use tributary_connector::{Result, SchemaFilter, TableKey};
use tributary_schema_cache::{
    CheckDef, ColumnDef, ForeignKeyDef, Generated, IndexDef, KeyDef, ReferentialAction, SchemaDef,
    TableDef, TableKind,
};

use crate::catalog::{
    self, CatalogRow, normalize_default, normalize_expression, normalize_index_expression,
};
use crate::classify::classify;
use crate::flavor::Flavor;
use crate::types::NativeType;

/// Which databases ("schemas") a source covers.
///
/// Without `include` patterns: the configured database if there is one,
/// else every database except `mysql`, `information_schema`,
/// `performance_schema` and `sys`. With `include` patterns: every database
/// they match — a system database only when a pattern names it exactly.
/// `exclude` patterns always apply.
#[derive(Debug, Clone)]
pub struct Selection {
    pub database: Option<String>,
    pub filter: SchemaFilter,
}

impl Selection {
    /// True when `schema` is selected.
    pub fn selects(&self, schema: &str) -> bool {
        let system = catalog::SYSTEM_SCHEMAS.contains(&schema);
        let candidate = if self.filter.include.is_empty() {
            match &self.database {
                Some(database) => database == schema,
                None => !system,
            }
        } else {
            !system || self.filter.include.iter().any(|p| p == schema)
        };
        candidate && self.filter.matches(schema)
    }

    /// The selected databases that exist on the server, sorted.
    pub async fn schemas(&self, conn: &mut Conn) -> Result<Vec<String>> {
        let names: Vec<String> = conn.query(catalog::SCHEMATA).await.map_err(classify)?;
        Ok(names
            .into_iter()
            .filter(|name| self.selects(name))
            .collect())
    }
}

async fn fetch(conn: &mut Conn, sql: &str, params: Vec<MyValue>) -> Result<Vec<CatalogRow>> {
    let rows: Vec<Row> = conn
        .exec(sql, Params::Positional(params))
        .await
        .map_err(classify)?;
    Ok(rows
        .into_iter()
        .map(|row| CatalogRow(row.unwrap()))
        .collect())
}

fn schema_params(schemas: &[String], times: usize) -> Vec<MyValue> {
    (0..times)
        .flat_map(|_| schemas.iter().map(|s| MyValue::from(s.as_str())))
        .collect()
}

/// The drift fingerprint of every table and view in `schemas`.
pub async fn fingerprints(
    conn: &mut Conn,
    flavor: Flavor,
    schemas: &[String],
) -> Result<BTreeMap<TableKey, String>> {
    if schemas.is_empty() {
        return Ok(BTreeMap::new());
    }
    let sql = catalog::fingerprint(flavor, schemas.len());
    let rows = fetch(
        conn,
        &sql,
        schema_params(schemas, catalog::FINGERPRINT_PARTS),
    )
    .await?;
    let mut lines: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| (r.text(0), r.text(1), r.text(2)))
        .collect();
    lines.sort();
    Ok(fingerprints_from_rows(lines))
}

/// The model of every table and view in `schemas` (each schema present,
/// even when empty).
pub async fn schemas(
    conn: &mut Conn,
    flavor: Flavor,
    schemas: &[String],
) -> Result<BTreeMap<String, SchemaDef>> {
    let mut model: BTreeMap<String, SchemaDef> = schemas
        .iter()
        .map(|name| {
            (
                name.clone(),
                SchemaDef {
                    name: name.clone(),
                    tables: BTreeMap::new(),
                },
            )
        })
        .collect();
    if schemas.is_empty() {
        return Ok(model);
    }
    let n = schemas.len();
    let params = || schema_params(schemas, 1);
    let tables = fetch(conn, &catalog::tables(n), params()).await?;
    let checks = fetch(conn, &catalog::checks(flavor, n), params()).await?;
    let columns = fetch(conn, &catalog::columns(n), params()).await?;
    let statistics = fetch(conn, &catalog::statistics(flavor, n), params()).await?;
    let keys = fetch(conn, &catalog::key_columns(n), params()).await?;
    let rules = fetch(conn, &catalog::referential(n), params()).await?;
    let fingerprints = fingerprints(conn, flavor, schemas).await?;

    let mut by_table: BTreeMap<TableKey, TableDef> = tables.iter().map(table_def).collect();
    add_checks(&mut by_table, &checks, flavor);
    add_columns(&mut by_table, &columns, flavor);
    add_indexes(&mut by_table, &statistics, flavor);
    add_keys(&mut by_table, &keys, &rules);
    for ((schema, name), mut table) in by_table {
        table.drift_fingerprint = fingerprints
            .get(&(schema.clone(), name.clone()))
            .cloned()
            .unwrap_or_default();
        if let Some(def) = model.get_mut(&schema) {
            def.tables.insert(name, table);
        }
    }
    Ok(model)
}

fn key_of(row: &CatalogRow) -> TableKey {
    (row.text(0), row.text(1))
}

fn non_empty(text: Option<String>) -> Option<String> {
    text.filter(|t| !t.is_empty())
}

/// A table or view without columns and constraints yet.
fn table_def(row: &CatalogRow) -> (TableKey, TableDef) {
    let view = row.text(2).to_ascii_uppercase().contains("VIEW");
    let table = TableDef {
        name: row.text(1),
        kind: if view {
            TableKind::View
        } else {
            TableKind::Table
        },
        // Views carry the comment `VIEW`.
        comment: if view { None } else { non_empty(row.opt(4)) },
        columns: Vec::new(),
        primary_key: None,
        unique_constraints: Vec::new(),
        foreign_keys: Vec::new(),
        indexes: Vec::new(),
        check_constraints: Vec::new(),
        row_estimate: if view { None } else { row.number(3) },
        drift_fingerprint: String::new(),
    };
    (key_of(row), table)
}

fn add_checks(tables: &mut BTreeMap<TableKey, TableDef>, rows: &[CatalogRow], flavor: Flavor) {
    for row in rows {
        if let Some(table) = tables.get_mut(&key_of(row)) {
            let expression = normalize_expression(flavor, row.text(3));
            table.check_constraints.push(CheckDef {
                name: row.opt(2),
                expression,
            });
        }
    }
    for table in tables.values_mut() {
        table.check_constraints.sort_by(|a, b| a.name.cmp(&b.name));
    }
}

/// Columns, in ordinal order. Needs the checks: MariaDB's JSON is a
/// `longtext` with a `json_valid(col)` check.
fn add_columns(tables: &mut BTreeMap<TableKey, TableDef>, rows: &[CatalogRow], flavor: Flavor) {
    for row in rows {
        let Some(table) = tables.get_mut(&key_of(row)) else {
            continue;
        };
        let name = row.text(2);
        let data_type = row.text(6);
        let extra = row.text(8);
        let json_check = format!("json_valid(`{}`)", name.replace('`', "``"));
        let mariadb_json = flavor == Flavor::MariaDb
            && data_type.eq_ignore_ascii_case("longtext")
            && table
                .check_constraints
                .iter()
                .any(|c| c.expression.eq_ignore_ascii_case(&json_check));
        let native_type = if mariadb_json {
            "json".to_string()
        } else {
            row.text(7)
        };
        let native = NativeType::from_column_type(&native_type);
        let generated = generated(&extra, row.opt(10).map(|e| normalize_expression(flavor, e)));
        let default = match generated {
            Some(Generated::Computed { .. }) => None,
            _ => normalize_default(flavor, row.opt(4).as_deref(), &data_type, &extra),
        };
        table.columns.push(ColumnDef {
            name,
            ordinal: row
                .number(3)
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or_default(),
            native_type,
            data_type: native.arrow_type(),
            nullable: row.text(5).eq_ignore_ascii_case("YES"),
            default,
            generated,
            comment: non_empty(row.opt(9)),
            unsupported_type: native.unsupported(),
        });
    }
    for table in tables.values_mut() {
        table.columns.sort_by_key(|c| c.ordinal);
    }
}

/// Auto-increment or a computed column, from `EXTRA` (`auto_increment`,
/// `VIRTUAL GENERATED`, `STORED GENERATED`; older MariaDB `PERSISTENT GENERATED`).
fn generated(extra: &str, expression: Option<String>) -> Option<Generated> {
    let extra = extra.to_ascii_uppercase();
    if extra.contains("AUTO_INCREMENT") {
        return Some(Generated::AutoIncrement);
    }
    let stored = extra.contains("STORED GENERATED") || extra.contains("PERSISTENT GENERATED");
    if stored || extra.contains("VIRTUAL GENERATED") {
        return Some(Generated::Computed {
            expression: expression.unwrap_or_default(),
            stored,
        });
    }
    None
}

/// One index while its columns are collected.
struct IndexParts {
    unique: bool,
    method: String,
    /// `(position, column or expression)`.
    columns: Vec<(u64, String)>,
}

fn add_indexes(tables: &mut BTreeMap<TableKey, TableDef>, rows: &[CatalogRow], flavor: Flavor) {
    let mut indexes: BTreeMap<(TableKey, String), IndexParts> = BTreeMap::new();
    for row in rows {
        let parts = indexes
            .entry((key_of(row), row.text(2)))
            .or_insert_with(|| IndexParts {
                unique: row.number(3) == Some(0),
                method: row.text(6),
                columns: Vec::new(),
            });
        let column = row
            .opt(5)
            .or_else(|| row.opt(7).map(|e| normalize_index_expression(flavor, e)))
            .unwrap_or_default();
        parts
            .columns
            .push((row.number(4).unwrap_or_default(), column));
    }
    for ((key, name), mut parts) in indexes {
        let Some(table) = tables.get_mut(&key) else {
            continue;
        };
        parts.columns.sort();
        table.indexes.push(IndexDef {
            primary: name == "PRIMARY",
            name,
            columns: parts.columns.into_iter().map(|(_, c)| c).collect(),
            unique: parts.unique,
            method: Some(parts.method.to_ascii_lowercase()).filter(|m| !m.is_empty()),
        });
    }
}

/// Primary keys, unique keys and foreign keys from the key columns, with the
/// foreign keys' rules.
fn add_keys(tables: &mut BTreeMap<TableKey, TableDef>, keys: &[CatalogRow], rules: &[CatalogRow]) {
    let rules: BTreeMap<(String, String, String), (String, String)> = rules
        .iter()
        .map(|r| ((r.text(0), r.text(1), r.text(2)), (r.text(3), r.text(4))))
        .collect();
    // (schema, table, constraint) → [(position, column, referenced schema, table, column)]
    type KeyColumn = (u64, String, Option<String>, Option<String>, Option<String>);
    let mut constraints: BTreeMap<(TableKey, String), Vec<KeyColumn>> = BTreeMap::new();
    for row in keys {
        constraints
            .entry((key_of(row), row.text(2)))
            .or_default()
            .push((
                row.number(4).unwrap_or_default(),
                row.text(3),
                row.opt(5),
                row.opt(6),
                row.opt(7),
            ));
    }
    for ((key, name), mut columns) in constraints {
        let Some(table) = tables.get_mut(&key) else {
            continue;
        };
        columns.sort_by_key(|c| c.0);
        let names: Vec<String> = columns.iter().map(|c| c.1.clone()).collect();
        let referenced = columns.first().and_then(|c| c.2.clone().zip(c.3.clone()));
        if let Some((referenced_schema, referenced_table)) = referenced {
            let (on_update, on_delete) = rules
                .get(&(key.0.clone(), key.1.clone(), name.clone()))
                .map(|(u, d)| (ReferentialAction::parse(u), ReferentialAction::parse(d)))
                .unwrap_or((ReferentialAction::NoAction, ReferentialAction::NoAction));
            table.foreign_keys.push(ForeignKeyDef {
                name: Some(name),
                columns: names,
                referenced_schema,
                referenced_table,
                referenced_columns: columns
                    .iter()
                    .map(|c| c.4.clone().unwrap_or_default())
                    .collect(),
                on_update,
                on_delete,
            });
        } else if name == "PRIMARY" {
            table.primary_key = Some(KeyDef {
                name: Some(name),
                columns: names,
            });
        } else {
            table.unique_constraints.push(KeyDef {
                name: Some(name),
                columns: names,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn selection(database: Option<&str>, include: &[&str], exclude: &[&str]) -> Selection {
        Selection {
            database: database.map(ToString::to_string),
            filter: SchemaFilter {
                include: include.iter().map(ToString::to_string).collect(),
                exclude: exclude.iter().map(ToString::to_string).collect(),
            },
        }
    }

    #[rstest]
    #[case(selection(Some("shop"), &[], &[]), "shop", true)]
    #[case(selection(Some("shop"), &[], &[]), "crm", false)]
    #[case(selection(None, &[], &[]), "crm", true)]
    #[case(selection(None, &[], &[]), "mysql", false)]
    #[case(selection(None, &[], &[]), "performance_schema", false)]
    #[case(selection(None, &[], &["tmp_*"]), "tmp_1", false)]
    #[case(selection(Some("shop"), &["app_*"], &[]), "app_eu", true)]
    #[case(selection(Some("shop"), &["app_*"], &[]), "shop", false)]
    #[case(selection(None, &["*"], &[]), "sys", false)]
    #[case(selection(None, &["mysql"], &[]), "mysql", true)]
    fn schema_selection(
        #[case] selection: Selection,
        #[case] schema: &str,
        #[case] expected: bool,
    ) {
        assert_eq!(selection.selects(schema), expected);
    }

    #[rstest]
    #[case("auto_increment", None, Some(Generated::AutoIncrement))]
    #[case("VIRTUAL GENERATED", Some("`a` + 1"), Some(Generated::Computed { expression: "`a` + 1".into(), stored: false }))]
    #[case("STORED GENERATED", Some("(`a` * 2)"), Some(Generated::Computed { expression: "(`a` * 2)".into(), stored: true }))]
    #[case("DEFAULT_GENERATED", Some(""), None)]
    #[case("on update current_timestamp()", None, None)]
    fn generated_columns(
        #[case] extra: &str,
        #[case] expression: Option<&str>,
        #[case] expected: Option<Generated>,
    ) {
        assert_eq!(
            generated(extra, expression.map(ToString::to_string)),
            expected
        );
    }
}
