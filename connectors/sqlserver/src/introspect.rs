//! Introspection: which schemas are selected, and the catalog model of
//! their tables and views assembled from the queries in `catalog.rs`, plus
//! the drift fingerprints from its fingerprint query.

use std::collections::{BTreeMap, BTreeSet};

use tiberius::{ColumnData, Row};
use tributary_connector::drift::fingerprints_from_rows;
use tributary_connector::{ConnectorError, Result, SchemaFilter, TableKey};
use tributary_schema_cache::{
    CheckDef, ColumnDef, ForeignKeyDef, Generated, IndexDef, KeyDef, ReferentialAction, SchemaDef,
    TableDef, TableKind,
};

use crate::catalog;
use crate::error::from_tds;
use crate::pool::Client;
use crate::types::{NativeType, column_type};

/// Schemas that are not selected unless an `include` pattern names them
/// exactly: SQL Server's own and the fixed database roles' (`db_*`).
pub fn is_system_schema(name: &str) -> bool {
    matches!(name, "sys" | "INFORMATION_SCHEMA" | "guest") || name.starts_with("db_")
}

/// Whether `schema` is introspected: by default every schema but the system
/// ones; with `include` patterns the ones they match (a system schema only
/// when a pattern is its exact name); `exclude` patterns always apply.
pub fn selects(filter: &SchemaFilter, schema: &str) -> bool {
    let allowed = !is_system_schema(schema) || filter.include.iter().any(|p| p == schema);
    allowed && filter.matches(schema)
}

/// One catalog row's cells.
pub(crate) struct Cells(Vec<ColumnData<'static>>);

impl Cells {
    fn from_row(row: Row) -> Self {
        Self(row.into_iter().collect())
    }

    fn cell(&self, i: usize) -> Option<&ColumnData<'static>> {
        self.0.get(i)
    }

    /// Text (NULL and non-text as empty).
    pub fn text(&self, i: usize) -> String {
        self.opt_text(i).unwrap_or_default()
    }

    pub fn opt_text(&self, i: usize) -> Option<String> {
        match self.cell(i) {
            Some(ColumnData::String(Some(s))) => Some(s.trim_end().to_string()),
            _ => None,
        }
    }

    pub fn int(&self, i: usize) -> Option<i64> {
        match self.cell(i)? {
            ColumnData::U8(v) => v.map(i64::from),
            ColumnData::I16(v) => v.map(i64::from),
            ColumnData::I32(v) => v.map(i64::from),
            ColumnData::I64(v) => *v,
            ColumnData::Numeric(v) => v.map(|n| i64::try_from(n.int_part()).unwrap_or(i64::MAX)),
            _ => None,
        }
    }

    pub fn flag(&self, i: usize) -> bool {
        match self.cell(i) {
            Some(ColumnData::Bit(Some(b))) => *b,
            _ => self.int(i).is_some_and(|v| v != 0),
        }
    }
}

/// Runs a catalog query and reads all its rows.
pub(crate) async fn fetch(client: &mut Client, sql: &str, endpoint: &str) -> Result<Vec<Cells>> {
    let rows = client
        .simple_query(sql)
        .await
        .map_err(|e| from_tds(e, endpoint))?
        .into_first_result()
        .await
        .map_err(|e| from_tds(e, endpoint))?;
    Ok(rows.into_iter().map(Cells::from_row).collect())
}

/// What the server says about itself.
#[derive(Debug, Clone)]
pub(crate) struct ServerInfo {
    /// The first line of `@@VERSION` (it names the product, edition and build).
    pub version: String,
    pub default_schema: Option<String>,
}

pub(crate) async fn server_info(client: &mut Client, endpoint: &str) -> Result<ServerInfo> {
    let rows = fetch(client, catalog::SERVER, endpoint).await?;
    let row = rows
        .first()
        .ok_or_else(|| ConnectorError::internal("the server reported no version"))?;
    let text = row.text(0);
    let first_line = text.lines().next().unwrap_or_default().trim().to_string();
    Ok(ServerInfo {
        version: if first_line.is_empty() {
            row.text(1)
        } else {
            first_line
        },
        default_schema: row.opt_text(2),
    })
}

/// The selected schemas of the database, sorted.
pub(crate) async fn schemas(
    client: &mut Client,
    filter: &SchemaFilter,
    endpoint: &str,
) -> Result<Vec<String>> {
    let rows = fetch(client, catalog::SCHEMAS, endpoint).await?;
    Ok(rows
        .iter()
        .map(|r| r.text(0))
        .filter(|name| selects(filter, name))
        .collect())
}

fn key_of(row: &Cells) -> TableKey {
    (row.text(0), row.text(1))
}

/// The drift fingerprint of every table and view in `schemas`.
pub(crate) async fn fingerprints(
    client: &mut Client,
    schemas: &BTreeSet<String>,
    endpoint: &str,
) -> Result<BTreeMap<TableKey, String>> {
    let rows = fetch(client, catalog::FINGERPRINT, endpoint).await?;
    Ok(fingerprint_rows(rows, schemas))
}

fn fingerprint_rows(rows: Vec<Cells>, schemas: &BTreeSet<String>) -> BTreeMap<TableKey, String> {
    let mut lines: Vec<(String, String, String)> = rows
        .iter()
        .filter(|r| schemas.contains(&r.text(0)))
        .map(|r| (r.text(0), r.text(1), r.text(2)))
        .collect();
    lines.sort();
    fingerprints_from_rows(lines)
}

/// The model of every table and view in `schemas` (each schema present,
/// even when empty).
pub(crate) async fn model(
    client: &mut Client,
    schemas: &[String],
    endpoint: &str,
) -> Result<BTreeMap<String, SchemaDef>> {
    let selected: BTreeSet<String> = schemas.iter().cloned().collect();
    let mut fetch_selected = async |sql: &str| -> Result<Vec<Cells>> {
        let rows = fetch(client, sql, endpoint).await?;
        Ok(rows
            .into_iter()
            .filter(|r| selected.contains(&r.text(0)))
            .collect())
    };
    let tables = fetch_selected(catalog::TABLES).await?;
    let columns = fetch_selected(catalog::COLUMNS).await?;
    let indexes = fetch_selected(catalog::INDEXES).await?;
    let foreign_keys = fetch_selected(catalog::FOREIGN_KEYS).await?;
    let checks = fetch_selected(catalog::CHECKS).await?;
    let fingerprint_source = fetch(client, catalog::FINGERPRINT, endpoint).await?;
    let fingerprints = fingerprint_rows(fingerprint_source, &selected);
    Ok(assemble(
        schemas,
        &Catalog {
            tables,
            columns,
            indexes,
            foreign_keys,
            checks,
        },
        &fingerprints,
    ))
}

/// The rows of the catalog queries, for the selected schemas.
pub(crate) struct Catalog {
    pub tables: Vec<Cells>,
    pub columns: Vec<Cells>,
    pub indexes: Vec<Cells>,
    pub foreign_keys: Vec<Cells>,
    pub checks: Vec<Cells>,
}

fn assemble(
    schemas: &[String],
    catalog: &Catalog,
    fingerprints: &BTreeMap<TableKey, String>,
) -> BTreeMap<String, SchemaDef> {
    let mut by_table: BTreeMap<TableKey, TableDef> = catalog.tables.iter().map(table_def).collect();
    for row in &catalog.columns {
        if let Some(table) = by_table.get_mut(&key_of(row)) {
            table.columns.push(column_def(row));
        }
    }
    add_indexes(&mut by_table, &catalog.indexes);
    add_foreign_keys(&mut by_table, &catalog.foreign_keys);
    for row in &catalog.checks {
        if let Some(table) = by_table.get_mut(&key_of(row)) {
            table.check_constraints.push(CheckDef {
                name: row.opt_text(2),
                expression: row.text(3),
            });
        }
    }
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
    for (key, mut table) in by_table {
        table.drift_fingerprint = fingerprints.get(&key).cloned().unwrap_or_default();
        if let Some(schema) = model.get_mut(&key.0) {
            schema.tables.insert(key.1, table);
        }
    }
    model
}

fn table_def(row: &Cells) -> (TableKey, TableDef) {
    let view = row.text(2).trim() == "V";
    let table = TableDef {
        name: row.text(1),
        kind: if view {
            TableKind::View
        } else {
            TableKind::Table
        },
        comment: row.opt_text(3).filter(|c| !c.is_empty()),
        columns: Vec::new(),
        primary_key: None,
        unique_constraints: Vec::new(),
        foreign_keys: Vec::new(),
        indexes: Vec::new(),
        check_constraints: Vec::new(),
        row_estimate: if view {
            None
        } else {
            row.int(4).and_then(|n| u64::try_from(n).ok())
        },
        drift_fingerprint: String::new(),
    };
    (key_of(row), table)
}

/// Columns of `COLUMNS`: 0 schema, 1 table, 2 name, 3 column_id, 4 type,
/// 5 user_clr, 6 max_length, 7 precision, 8 scale, 9 nullable, 10 identity,
/// 11 computed definition, 12 persisted, 13 default, 14 comment.
fn column_def(row: &Cells) -> ColumnDef {
    let native = NativeType {
        name: row.text(4).to_ascii_lowercase(),
        max_length: row.int(6).and_then(|v| i16::try_from(v).ok()).unwrap_or(0),
        precision: row.int(7).and_then(|v| u8::try_from(v).ok()).unwrap_or(0),
        scale: row.int(8).and_then(|v| u8::try_from(v).ok()).unwrap_or(0),
        user_clr: row.flag(5),
    };
    let mapped = column_type(&native);
    let generated = if row.flag(10) {
        Some(Generated::Identity { always: true })
    } else {
        row.opt_text(11).map(|expression| Generated::Computed {
            expression: unwrap_parens(&expression).to_string(),
            stored: row.flag(12),
        })
    };
    ColumnDef {
        name: row.text(2),
        ordinal: row
            .int(3)
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or_default(),
        native_type: native.spelled(),
        data_type: mapped.data_type,
        nullable: row.flag(9),
        default: row.opt_text(13).map(|d| unwrap_parens(&d).to_string()),
        generated,
        comment: row.opt_text(14).filter(|c| !c.is_empty()),
        unsupported_type: mapped.unsupported,
    }
}

/// SQL Server wraps stored expressions in parentheses (`((0))`,
/// `(getdate())`): the expression without the outer pairs that enclose all
/// of it.
pub(crate) fn unwrap_parens(expression: &str) -> &str {
    let mut text = expression.trim();
    while text.starts_with('(') && text.ends_with(')') && encloses_all(text) {
        text = text[1..text.len() - 1].trim();
    }
    text
}

/// Whether the first `(` of `text` closes at its last character (string
/// literals skipped).
fn encloses_all(text: &str) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let last = text.len() - 1;
    for (i, c) in text.char_indices() {
        match c {
            '\'' => in_string = !in_string,
            '(' if !in_string => depth += 1,
            ')' if !in_string => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return i == last;
                }
            }
            _ => {}
        }
    }
    false
}

/// Rows of `INDEXES`: 0 schema, 1 table, 2 index, 3 primary, 4 unique
/// constraint, 5 unique, 6 type_desc, 7 column (in key order).
fn add_indexes(tables: &mut BTreeMap<TableKey, TableDef>, rows: &[Cells]) {
    let mut indexes: BTreeMap<(TableKey, String), (IndexDef, bool)> = BTreeMap::new();
    for row in rows {
        let entry = indexes
            .entry((key_of(row), row.text(2)))
            .or_insert_with(|| {
                (
                    IndexDef {
                        name: row.text(2),
                        columns: Vec::new(),
                        unique: row.flag(5),
                        primary: row.flag(3),
                        method: Some(row.text(6).to_ascii_lowercase().replace('_', " ")),
                    },
                    row.flag(4),
                )
            });
        entry.0.columns.push(row.text(7));
    }
    for ((key, _), (index, unique_constraint)) in indexes {
        let Some(table) = tables.get_mut(&key) else {
            continue;
        };
        let constraint = KeyDef {
            name: Some(index.name.clone()),
            columns: index.columns.clone(),
        };
        if index.primary {
            table.primary_key = Some(constraint);
        } else if unique_constraint {
            table.unique_constraints.push(constraint);
        }
        table.indexes.push(index);
    }
}

/// Rows of `FOREIGN_KEYS`: 0 schema, 1 table, 2 name, 3 column, 4 referenced
/// schema, 5 referenced table, 6 referenced column, 7 on update, 8 on delete.
fn add_foreign_keys(tables: &mut BTreeMap<TableKey, TableDef>, rows: &[Cells]) {
    let mut keys: BTreeMap<(TableKey, String), ForeignKeyDef> = BTreeMap::new();
    for row in rows {
        let action = |i: usize| ReferentialAction::parse(&row.text(i).replace('_', " "));
        let fk = keys
            .entry((key_of(row), row.text(2)))
            .or_insert_with(|| ForeignKeyDef {
                name: Some(row.text(2)),
                columns: Vec::new(),
                referenced_schema: row.text(4),
                referenced_table: row.text(5),
                referenced_columns: Vec::new(),
                on_update: action(7),
                on_delete: action(8),
            });
        fk.columns.push(row.text(3));
        fk.referenced_columns.push(row.text(6));
    }
    for ((key, _), fk) in keys {
        if let Some(table) = tables.get_mut(&key) {
            table.foreign_keys.push(fk);
        }
    }
}

/// A catalog row from its cells (tests build rows with it).
#[cfg(test)]
fn cells(values: Vec<ColumnData<'static>>) -> Cells {
    Cells(values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_schema::DataType;
    use std::borrow::Cow;

    fn s(text: &str) -> ColumnData<'static> {
        ColumnData::String(Some(Cow::Owned(text.to_string())))
    }
    fn none() -> ColumnData<'static> {
        ColumnData::String(None)
    }
    fn bit(b: bool) -> ColumnData<'static> {
        ColumnData::Bit(Some(b))
    }

    #[test]
    fn default_selection_skips_system_schemas() {
        let all = SchemaFilter::default();
        for schema in ["dbo", "sales", "Sales Archive"] {
            assert!(selects(&all, schema), "{schema}");
        }
        for schema in [
            "sys",
            "INFORMATION_SCHEMA",
            "guest",
            "db_owner",
            "db_datareader",
        ] {
            assert!(!selects(&all, schema), "{schema}");
        }
        let named = SchemaFilter {
            include: vec!["sys".into(), "sa*".into()],
            exclude: vec!["sales_tmp".into()],
        };
        assert!(selects(&named, "sys"));
        assert!(selects(&named, "sales"));
        assert!(!selects(&named, "sales_tmp"));
        assert!(!selects(&named, "dbo"));
        let glob = SchemaFilter {
            include: vec!["*".into()],
            exclude: vec![],
        };
        assert!(!selects(&glob, "db_owner"));
    }

    #[test]
    fn parentheses_around_stored_expressions() {
        assert_eq!(unwrap_parens("((0))"), "0");
        assert_eq!(unwrap_parens("(getdate())"), "getdate()");
        assert_eq!(unwrap_parens("([qty]*[price])"), "[qty]*[price]");
        assert_eq!(unwrap_parens("(1)+(2)"), "(1)+(2)");
        assert_eq!(unwrap_parens("(N'(x')"), "N'(x'");
        assert_eq!(unwrap_parens("x"), "x");
    }

    #[test]
    fn catalog_rows_assemble_into_tables() {
        let key = |t: &str| vec![s("app"), s(t)];
        let row = |t: &str, rest: Vec<ColumnData<'static>>| {
            cells(key(t).into_iter().chain(rest).collect())
        };
        let column = |_t: &str, name: &str, id: i32, ty: &str, len: i16, p: u8, sc: u8| {
            vec![
                s(name),
                ColumnData::I32(Some(id)),
                s(ty),
                bit(false),
                ColumnData::I16(Some(len)),
                ColumnData::U8(Some(p)),
                ColumnData::U8(Some(sc)),
            ]
        };
        let catalog = Catalog {
            tables: vec![
                row(
                    "items",
                    vec![s("U "), s("Things for sale"), ColumnData::I64(Some(42))],
                ),
                row("items_v", vec![s("V "), none(), ColumnData::I64(None)]),
            ],
            columns: vec![
                row(
                    "items",
                    [
                        column("items", "id", 1, "int", 4, 10, 0),
                        vec![bit(false), bit(true), none(), none(), none(), none()],
                    ]
                    .concat(),
                ),
                row(
                    "items",
                    [
                        column("items", "name", 2, "nvarchar", 160, 0, 0),
                        vec![
                            bit(false),
                            bit(false),
                            none(),
                            none(),
                            none(),
                            s("Display name"),
                        ],
                    ]
                    .concat(),
                ),
                row(
                    "items",
                    [
                        column("items", "total", 3, "decimal", 17, 21, 2),
                        vec![
                            bit(true),
                            bit(false),
                            s("([qty]*[price])"),
                            bit(true),
                            none(),
                            none(),
                        ],
                    ]
                    .concat(),
                ),
                row(
                    "items",
                    [
                        column("items", "made", 4, "datetimeoffset", 10, 34, 7),
                        vec![
                            bit(true),
                            bit(false),
                            none(),
                            none(),
                            s("(sysdatetimeoffset())"),
                            none(),
                        ],
                    ]
                    .concat(),
                ),
                row(
                    "items",
                    [
                        column("items", "extra", 5, "sql_variant", 8016, 0, 0),
                        vec![bit(true), bit(false), none(), none(), none(), none()],
                    ]
                    .concat(),
                ),
            ],
            indexes: vec![
                row(
                    "items",
                    vec![
                        s("PK_items"),
                        bit(true),
                        bit(false),
                        bit(true),
                        s("CLUSTERED"),
                        s("id"),
                    ],
                ),
                row(
                    "items",
                    vec![
                        s("UQ_items_name"),
                        bit(false),
                        bit(true),
                        bit(true),
                        s("NONCLUSTERED"),
                        s("name"),
                    ],
                ),
                row(
                    "items",
                    vec![
                        s("ix_items_made"),
                        bit(false),
                        bit(false),
                        bit(false),
                        s("NONCLUSTERED"),
                        s("made"),
                    ],
                ),
                row(
                    "items",
                    vec![
                        s("ix_items_made"),
                        bit(false),
                        bit(false),
                        bit(false),
                        s("NONCLUSTERED"),
                        s("id"),
                    ],
                ),
            ],
            foreign_keys: vec![row(
                "items",
                vec![
                    s("FK_items_owner"),
                    s("name"),
                    s("app"),
                    s("owners"),
                    s("name"),
                    s("NO_ACTION"),
                    s("SET_NULL"),
                ],
            )],
            checks: vec![row("items", vec![s("CK_items_id"), s("([id]>(0))")])],
        };
        let fingerprints =
            BTreeMap::from([(("app".to_string(), "items".to_string()), "abc".to_string())]);
        let model = assemble(
            &["app".to_string(), "empty".to_string()],
            &catalog,
            &fingerprints,
        );
        assert!(model["empty"].tables.is_empty());
        let items = &model["app"].tables["items"];
        assert_eq!(items.kind, TableKind::Table);
        assert_eq!(items.comment.as_deref(), Some("Things for sale"));
        assert_eq!(items.row_estimate, Some(42));
        assert_eq!(items.drift_fingerprint, "abc");
        let names: Vec<_> = items.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["id", "name", "total", "made", "extra"]);
        let id = &items.columns[0];
        assert_eq!(id.generated, Some(Generated::Identity { always: true }));
        assert_eq!(id.data_type, DataType::Int32);
        assert!(!id.nullable);
        let name = &items.columns[1];
        assert_eq!(name.native_type, "nvarchar(80)");
        assert_eq!(name.comment.as_deref(), Some("Display name"));
        let total = &items.columns[2];
        assert_eq!(total.data_type, DataType::Decimal128(21, 2));
        assert_eq!(
            total.generated,
            Some(Generated::Computed {
                expression: "[qty]*[price]".into(),
                stored: true
            })
        );
        let made = &items.columns[3];
        assert_eq!(made.native_type, "datetimeoffset(7)");
        assert_eq!(made.default.as_deref(), Some("sysdatetimeoffset()"));
        assert!(items.columns[4].unsupported_type.is_some());
        assert_eq!(
            items.primary_key,
            Some(KeyDef {
                name: Some("PK_items".into()),
                columns: vec!["id".into()]
            })
        );
        assert_eq!(items.unique_constraints.len(), 1);
        assert_eq!(items.unique_constraints[0].columns, ["name"]);
        let made_index = items
            .indexes
            .iter()
            .find(|i| i.name == "ix_items_made")
            .unwrap();
        assert_eq!(made_index.columns, ["made", "id"]);
        assert_eq!(made_index.method.as_deref(), Some("nonclustered"));
        assert_eq!(items.foreign_keys[0].referenced_table, "owners");
        assert_eq!(items.foreign_keys[0].on_delete, ReferentialAction::SetNull);
        assert_eq!(items.foreign_keys[0].on_update, ReferentialAction::NoAction);
        assert_eq!(items.check_constraints[0].expression, "([id]>(0))");
        let view = &model["app"].tables["items_v"];
        assert_eq!(view.kind, TableKind::View);
        assert_eq!(view.row_estimate, None);
    }

    #[test]
    fn fingerprints_keep_selected_schemas_and_ignore_row_order() {
        let row = |schema: &str, t: &str, d: &str| cells(vec![s(schema), s(t), s(d)]);
        let selected = BTreeSet::from(["app".to_string()]);
        let a = fingerprint_rows(
            vec![
                row("app", "t", "C|1"),
                row("app", "t", "T|U"),
                row("other", "x", "T|U"),
            ],
            &selected,
        );
        let b = fingerprint_rows(
            vec![row("app", "t", "T|U"), row("app", "t", "C|1")],
            &selected,
        );
        assert_eq!(a, b);
        assert_eq!(a.len(), 1);
        let c = fingerprint_rows(
            vec![row("app", "t", "T|U"), row("app", "t", "C|2")],
            &selected,
        );
        assert_ne!(a, c);
    }
}
