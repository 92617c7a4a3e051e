//! Builds the catalog model from the rows of the `catalog_sql.rs` queries
//! (every cell read as text): which owners to introspect, tables and views
//! with their columns, keys, foreign keys, indexes, checks, comments, row
//! estimates and drift fingerprints. Pure, so it is unit-tested without a
//! database.
//!
//! Names stay as Oracle stores them: upper case unless created quoted.

use std::collections::{BTreeMap, BTreeSet};

use tributary_connector::{SchemaFilter, TableKey, drift};
use tributary_schema_cache::{
    CheckDef, ColumnDef, ForeignKeyDef, Generated, IndexDef, KeyDef, ReferentialAction, SchemaDef,
    TableDef, TableKind,
};

use crate::types::{NativeType, native_type_text};

/// One result row, every cell as text (`None` for NULL).
pub type TextRow = Vec<Option<String>>;

/// The rows of every catalog query for the selected owners.
#[derive(Debug, Default)]
pub struct CatalogRows {
    pub relations: Vec<TextRow>,
    pub columns: Vec<TextRow>,
    pub constraints: Vec<TextRow>,
    pub foreign_keys: Vec<TextRow>,
    pub indexes: Vec<TextRow>,
    pub drift: Vec<TextRow>,
}

fn cell(row: &TextRow, i: usize) -> Option<&str> {
    row.get(i).and_then(Option::as_deref)
}

fn text(row: &TextRow, i: usize) -> String {
    cell(row, i).unwrap_or_default().to_string()
}

fn number(row: &TextRow, i: usize) -> Option<i64> {
    cell(row, i).and_then(|s| s.trim().parse().ok())
}

/// Which owners to introspect. Without `include` patterns: the session's
/// schema (`current`), unless excluded. With them: every matching user,
/// Oracle-maintained ones (`SYS`, `MDSYS`, …) only when a pattern names
/// them exactly. `users` are `(USERNAME, ORACLE_MAINTAINED = 'Y')`.
pub fn select_owners(
    filter: &SchemaFilter,
    current: &str,
    users: &[(String, bool)],
) -> Vec<String> {
    if filter.include.is_empty() {
        return if filter.matches(current) {
            vec![current.to_string()]
        } else {
            Vec::new()
        };
    }
    users
        .iter()
        .filter(|(name, maintained)| {
            filter.matches(name) && (!maintained || filter.include.iter().any(|p| p == name))
        })
        .map(|(name, _)| name.clone())
        .collect()
}

/// The drift fingerprint of every relation, from the drift query's rows
/// (`OWNER, NAME, KIND, LAST_DDL_TIME, COMMENTS`).
pub fn fingerprints(rows: &[TextRow]) -> BTreeMap<TableKey, String> {
    drift::fingerprints_from_rows(rows.iter().map(|row| {
        (
            text(row, 0),
            text(row, 1),
            format!(
                "{}|{}|{}",
                text(row, 2),
                text(row, 3),
                cell(row, 4).unwrap_or("-")
            ),
        )
    }))
}

/// Assembles every schema's tables from the catalog rows.
pub fn assemble(owners: &[String], rows: &CatalogRows) -> BTreeMap<String, SchemaDef> {
    let fingerprints = fingerprints(&rows.drift);
    let mut schemas: BTreeMap<String, SchemaDef> = owners
        .iter()
        .map(|o| {
            (
                o.clone(),
                SchemaDef {
                    name: o.clone(),
                    tables: BTreeMap::new(),
                },
            )
        })
        .collect();
    for row in &rows.relations {
        let (owner, name) = (text(row, 0), text(row, 1));
        let kind = match cell(row, 2) {
            Some("VIEW") => TableKind::View,
            Some("MATERIALIZED VIEW") => TableKind::MaterializedView,
            Some("PARTITIONED TABLE") => TableKind::PartitionedTable,
            _ => TableKind::Table,
        };
        let drift_fingerprint = fingerprints
            .get(&(owner.clone(), name.clone()))
            .cloned()
            .unwrap_or_default();
        let table = TableDef {
            name: name.clone(),
            kind,
            comment: cell(row, 4).map(str::to_string),
            columns: Vec::new(),
            primary_key: None,
            unique_constraints: Vec::new(),
            foreign_keys: Vec::new(),
            indexes: Vec::new(),
            check_constraints: Vec::new(),
            row_estimate: number(row, 3).and_then(|n| u64::try_from(n).ok()),
            drift_fingerprint,
        };
        schemas
            .entry(owner.clone())
            .or_insert_with(|| SchemaDef {
                name: owner,
                tables: BTreeMap::new(),
            })
            .tables
            .insert(name, table);
    }
    for row in &rows.columns {
        let (owner, name) = (text(row, 0), text(row, 1));
        if let Some(t) = schemas
            .get_mut(&owner)
            .and_then(|s| s.tables.get_mut(&name))
        {
            t.columns.push(column(row));
        }
    }
    let primary_indexes = add_constraints(&mut schemas, &rows.constraints);
    add_foreign_keys(&mut schemas, &rows.foreign_keys);
    add_indexes(&mut schemas, &rows.indexes, &primary_indexes);
    schemas
}

/// One column from a columns-query row.
fn column(row: &TextRow) -> ColumnDef {
    let data_type = text(row, 4);
    let (precision, scale) = (number(row, 5), number(row, 6));
    let native = NativeType::from_catalog(&data_type, precision, scale);
    let native_text =
        native_type_text(&data_type, precision, scale, number(row, 7), number(row, 8));
    // Oracle keeps a default's text as typed, trailing blanks and newlines too.
    let default = cell(row, 10)
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(str::to_string);
    let identity = cell(row, 11) == Some("YES");
    let virtual_column = cell(row, 12) == Some("YES");
    let (generated, default) = if identity {
        let always = cell(row, 13) == Some("ALWAYS");
        // The default of an identity column is its sequence's NEXTVAL.
        (Some(Generated::Identity { always }), None)
    } else if virtual_column {
        let expression = default.unwrap_or_default();
        (
            Some(Generated::Computed {
                expression,
                stored: false,
            }),
            None,
        )
    } else if default
        .as_deref()
        .is_some_and(|d| d.to_ascii_uppercase().contains(".NEXTVAL"))
    {
        (Some(Generated::AutoIncrement), default)
    } else {
        (None, default)
    };
    ColumnDef {
        name: text(row, 2),
        ordinal: number(row, 3)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or_default(),
        unsupported_type: native.unsupported(&native_text),
        data_type: native.data_type(),
        native_type: native_text,
        nullable: cell(row, 9) != Some("N"),
        default,
        generated,
        comment: cell(row, 14).map(str::to_string),
    }
}

/// Whether a check constraint is Oracle's spelling of a NOT NULL column
/// (`"NAME" IS NOT NULL`), which the column's `nullable` already says.
fn is_not_null_check(condition: &str) -> bool {
    let condition = condition.trim();
    let Some(rest) = condition.strip_prefix('"') else {
        return false;
    };
    let Some((name, tail)) = rest.split_once('"') else {
        return false;
    };
    !name.is_empty() && tail.trim().eq_ignore_ascii_case("IS NOT NULL")
}

/// Primary keys, unique and check constraints (rows ordered by table,
/// constraint and column position). Returns the index backing each primary
/// key: `(owner, index name)`.
fn add_constraints(
    schemas: &mut BTreeMap<String, SchemaDef>,
    rows: &[TextRow],
) -> BTreeSet<(String, String)> {
    let mut primary_indexes = BTreeSet::new();
    for row in rows {
        let (owner, name) = (text(row, 0), text(row, 1));
        let Some(table) = schemas
            .get_mut(&owner)
            .and_then(|s| s.tables.get_mut(&name))
        else {
            continue;
        };
        let constraint = text(row, 2);
        let column = cell(row, 6).map(str::to_string);
        match cell(row, 3) {
            Some("P") => {
                if let Some(index) = cell(row, 5) {
                    primary_indexes.insert((owner.clone(), index.to_string()));
                }
                let key = table.primary_key.get_or_insert_with(|| KeyDef {
                    name: Some(constraint.clone()),
                    columns: Vec::new(),
                });
                key.columns.extend(column);
            }
            Some("U") => {
                match table
                    .unique_constraints
                    .iter_mut()
                    .find(|k| k.name.as_deref() == Some(constraint.as_str()))
                {
                    Some(key) => key.columns.extend(column),
                    None => table.unique_constraints.push(KeyDef {
                        name: Some(constraint),
                        columns: column.into_iter().collect(),
                    }),
                }
            }
            Some("C") => {
                let condition = text(row, 4);
                let seen = table
                    .check_constraints
                    .iter()
                    .any(|c| c.name.as_deref() == Some(constraint.as_str()));
                if !seen && !is_not_null_check(&condition) {
                    table.check_constraints.push(CheckDef {
                        name: Some(constraint),
                        expression: condition.trim().to_string(),
                    });
                }
            }
            _ => {}
        }
    }
    primary_indexes
}

/// Foreign keys, one row per column pair in key order.
fn add_foreign_keys(schemas: &mut BTreeMap<String, SchemaDef>, rows: &[TextRow]) {
    for row in rows {
        let (owner, name) = (text(row, 0), text(row, 1));
        let Some(table) = schemas
            .get_mut(&owner)
            .and_then(|s| s.tables.get_mut(&name))
        else {
            continue;
        };
        let constraint = text(row, 2);
        let (column, referenced) = (text(row, 4), text(row, 7));
        if let Some(fk) = table
            .foreign_keys
            .iter_mut()
            .find(|k| k.name.as_deref() == Some(constraint.as_str()))
        {
            fk.columns.push(column);
            fk.referenced_columns.push(referenced);
            continue;
        }
        table.foreign_keys.push(ForeignKeyDef {
            name: Some(constraint),
            columns: vec![column],
            referenced_schema: text(row, 5),
            referenced_table: text(row, 6),
            referenced_columns: vec![referenced],
            // Oracle has no ON UPDATE actions: an update of a referenced key fails.
            on_update: ReferentialAction::NoAction,
            on_delete: ReferentialAction::parse(cell(row, 3).unwrap_or("NO ACTION")),
        });
    }
}

/// Indexes, one row per column in order; the index backing a primary key
/// (the constraint's `INDEX_NAME`) is `primary`.
fn add_indexes(
    schemas: &mut BTreeMap<String, SchemaDef>,
    rows: &[TextRow],
    primary_indexes: &BTreeSet<(String, String)>,
) {
    for row in rows {
        let (owner, name) = (text(row, 0), text(row, 1));
        let Some(table) = schemas
            .get_mut(&owner)
            .and_then(|s| s.tables.get_mut(&name))
        else {
            continue;
        };
        let index = text(row, 2);
        // A function-based index names a hidden column; its expression is
        // what the index is on.
        let column = cell(row, 6)
            .map(|e| e.trim().to_string())
            .unwrap_or_else(|| text(row, 5));
        if let Some(existing) = table.indexes.iter_mut().find(|i| i.name == index) {
            existing.columns.push(column);
            continue;
        }
        let method = match cell(row, 4).unwrap_or_default() {
            "NORMAL" | "NORMAL/REV" | "FUNCTION-BASED NORMAL" | "IOT - TOP" => "btree".to_string(),
            "BITMAP" | "FUNCTION-BASED BITMAP" => "bitmap".to_string(),
            other => other.to_ascii_lowercase(),
        };
        // Keyed by the table's owner: the constraint's INDEX_NAME names an
        // index of the constrained table.
        let primary = primary_indexes.contains(&(owner, index.clone()));
        table.indexes.push(IndexDef {
            name: index,
            columns: vec![column],
            unique: cell(row, 3) == Some("UNIQUE"),
            primary,
            method: Some(method),
        });
    }
}

#[cfg(test)]
mod tests {
    use arrow_schema::DataType;

    use super::*;

    fn row(cells: &[Option<&str>]) -> TextRow {
        cells.iter().map(|c| c.map(str::to_string)).collect()
    }

    fn owners() -> Vec<String> {
        vec!["APP".into()]
    }

    /// The rows an `APP` schema with `ORDERS` (identity key, unique code,
    /// a virtual column, comments) and `LINES` (composite FK to ORDERS,
    /// function-based index) and a view returns.
    fn rows() -> CatalogRows {
        CatalogRows {
            relations: vec![
                row(&[Some("APP"), Some("LINES"), Some("TABLE"), None, None]),
                row(&[
                    Some("APP"),
                    Some("ORDERS"),
                    Some("TABLE"),
                    Some("1200"),
                    Some("Customer orders"),
                ]),
                row(&[Some("APP"), Some("Open Orders"), Some("VIEW"), None, None]),
            ],
            columns: vec![
                row(&[
                    Some("APP"),
                    Some("ORDERS"),
                    Some("ID"),
                    Some("1"),
                    Some("NUMBER"),
                    None,
                    Some("0"),
                    Some("0"),
                    Some("22"),
                    Some("N"),
                    Some("\"APP\".\"ISEQ$$_7301\".nextval "),
                    Some("YES"),
                    Some("NO"),
                    Some("ALWAYS"),
                    None,
                ]),
                row(&[
                    Some("APP"),
                    Some("ORDERS"),
                    Some("CODE"),
                    Some("2"),
                    Some("CHAR"),
                    None,
                    None,
                    Some("8"),
                    Some("8"),
                    Some("N"),
                    None,
                    Some("NO"),
                    Some("NO"),
                    None,
                    Some("Order code"),
                ]),
                row(&[
                    Some("APP"),
                    Some("ORDERS"),
                    Some("TOTAL"),
                    Some("3"),
                    Some("NUMBER"),
                    Some("12"),
                    Some("2"),
                    Some("0"),
                    Some("22"),
                    Some("Y"),
                    Some("0\n"),
                    Some("NO"),
                    Some("NO"),
                    None,
                    None,
                ]),
                row(&[
                    Some("APP"),
                    Some("ORDERS"),
                    Some("TOTAL_X2"),
                    Some("4"),
                    Some("NUMBER"),
                    None,
                    None,
                    Some("0"),
                    Some("22"),
                    Some("Y"),
                    Some("\"TOTAL\"*2"),
                    Some("NO"),
                    Some("YES"),
                    None,
                    None,
                ]),
                row(&[
                    Some("APP"),
                    Some("LINES"),
                    Some("ORDER_ID"),
                    Some("1"),
                    Some("NUMBER"),
                    None,
                    Some("0"),
                    Some("0"),
                    Some("22"),
                    Some("N"),
                    None,
                    Some("NO"),
                    Some("NO"),
                    None,
                    None,
                ]),
                row(&[
                    Some("APP"),
                    Some("LINES"),
                    Some("ORDER_CODE"),
                    Some("2"),
                    Some("CHAR"),
                    None,
                    None,
                    Some("8"),
                    Some("8"),
                    Some("N"),
                    None,
                    Some("NO"),
                    Some("NO"),
                    None,
                    None,
                ]),
                row(&[
                    Some("APP"),
                    Some("LINES"),
                    Some("NOTE"),
                    Some("3"),
                    Some("VARCHAR2"),
                    None,
                    None,
                    Some("200"),
                    Some("800"),
                    Some("Y"),
                    None,
                    Some("NO"),
                    Some("NO"),
                    None,
                    None,
                ]),
                row(&[
                    Some("APP"),
                    Some("Open Orders"),
                    Some("ID"),
                    Some("1"),
                    Some("NUMBER"),
                    None,
                    Some("0"),
                    Some("0"),
                    Some("22"),
                    Some("N"),
                    None,
                    Some("NO"),
                    Some("NO"),
                    None,
                    None,
                ]),
            ],
            constraints: vec![
                row(&[
                    Some("APP"),
                    Some("ORDERS"),
                    Some("ORDERS_PK"),
                    Some("P"),
                    None,
                    Some("ORDERS_PK"),
                    Some("ID"),
                    Some("1"),
                ]),
                row(&[
                    Some("APP"),
                    Some("ORDERS"),
                    Some("ORDERS_UK"),
                    Some("U"),
                    None,
                    Some("ORDERS_UK"),
                    Some("ID"),
                    Some("1"),
                ]),
                row(&[
                    Some("APP"),
                    Some("ORDERS"),
                    Some("ORDERS_UK"),
                    Some("U"),
                    None,
                    Some("ORDERS_UK"),
                    Some("CODE"),
                    Some("2"),
                ]),
                row(&[
                    Some("APP"),
                    Some("ORDERS"),
                    Some("SYS_C008"),
                    Some("C"),
                    Some("\"CODE\" IS NOT NULL"),
                    None,
                    Some("CODE"),
                    None,
                ]),
                row(&[
                    Some("APP"),
                    Some("ORDERS"),
                    Some("TOTAL_CK"),
                    Some("C"),
                    Some("TOTAL >= 0 "),
                    None,
                    Some("TOTAL"),
                    None,
                ]),
            ],
            foreign_keys: vec![
                row(&[
                    Some("APP"),
                    Some("LINES"),
                    Some("LINES_FK"),
                    Some("CASCADE"),
                    Some("ORDER_ID"),
                    Some("APP"),
                    Some("ORDERS"),
                    Some("ID"),
                ]),
                row(&[
                    Some("APP"),
                    Some("LINES"),
                    Some("LINES_FK"),
                    Some("CASCADE"),
                    Some("ORDER_CODE"),
                    Some("APP"),
                    Some("ORDERS"),
                    Some("CODE"),
                ]),
            ],
            indexes: vec![
                row(&[
                    Some("APP"),
                    Some("ORDERS"),
                    Some("ORDERS_PK"),
                    Some("UNIQUE"),
                    Some("NORMAL"),
                    Some("ID"),
                    None,
                ]),
                row(&[
                    Some("APP"),
                    Some("ORDERS"),
                    Some("ORDERS_UK"),
                    Some("UNIQUE"),
                    Some("NORMAL"),
                    Some("ID"),
                    None,
                ]),
                row(&[
                    Some("APP"),
                    Some("ORDERS"),
                    Some("ORDERS_UK"),
                    Some("UNIQUE"),
                    Some("NORMAL"),
                    Some("CODE"),
                    None,
                ]),
                row(&[
                    Some("APP"),
                    Some("LINES"),
                    Some("LINES_NOTE_IX"),
                    Some("NONUNIQUE"),
                    Some("FUNCTION-BASED NORMAL"),
                    Some("SYS_NC00004$"),
                    Some("UPPER(\"NOTE\")"),
                ]),
            ],
            drift: vec![
                row(&[
                    Some("APP"),
                    Some("LINES"),
                    Some("TABLE"),
                    Some("2024-05-01 10:00:00"),
                    None,
                ]),
                row(&[
                    Some("APP"),
                    Some("ORDERS"),
                    Some("TABLE"),
                    Some("2024-05-01 10:00:01"),
                    Some("Customer orders"),
                ]),
                row(&[
                    Some("APP"),
                    Some("Open Orders"),
                    Some("VIEW"),
                    Some("2024-05-01 10:00:02"),
                    None,
                ]),
            ],
        }
    }

    #[test]
    fn tables_views_columns_keys_and_comments() {
        let schemas = assemble(&owners(), &rows());
        let app = &schemas["APP"];
        assert_eq!(
            app.tables.keys().collect::<Vec<_>>(),
            vec!["LINES", "ORDERS", "Open Orders"]
        );
        let orders = &app.tables["ORDERS"];
        assert_eq!(orders.kind, TableKind::Table);
        assert_eq!(orders.comment.as_deref(), Some("Customer orders"));
        assert_eq!(orders.row_estimate, Some(1200));
        assert_eq!(app.tables["LINES"].row_estimate, None);
        assert_eq!(app.tables["Open Orders"].kind, TableKind::View);

        let id = orders.column("ID").unwrap();
        assert_eq!(id.native_type, "NUMBER(*,0)");
        assert_eq!(id.data_type, DataType::Decimal128(38, 0));
        assert_eq!(id.generated, Some(Generated::Identity { always: true }));
        assert_eq!(id.default, None);
        assert!(!id.nullable);
        let code = orders.column("CODE").unwrap();
        assert_eq!(code.native_type, "CHAR(8)");
        assert_eq!(code.comment.as_deref(), Some("Order code"));
        let total = orders.column("TOTAL").unwrap();
        assert_eq!(total.data_type, DataType::Decimal128(12, 2));
        assert_eq!(total.default.as_deref(), Some("0"));
        assert!(total.nullable);
        let doubled = orders.column("TOTAL_X2").unwrap();
        assert_eq!(doubled.data_type, DataType::Utf8);
        assert_eq!(
            doubled.generated,
            Some(Generated::Computed {
                expression: "\"TOTAL\"*2".into(),
                stored: false
            })
        );
        assert_eq!(
            orders.columns.iter().map(|c| c.ordinal).collect::<Vec<_>>(),
            vec![1, 2, 3, 4]
        );

        assert_eq!(
            orders.primary_key,
            Some(KeyDef {
                name: Some("ORDERS_PK".into()),
                columns: vec!["ID".into()]
            })
        );
        assert_eq!(
            orders.unique_constraints,
            vec![KeyDef {
                name: Some("ORDERS_UK".into()),
                columns: vec!["ID".into(), "CODE".into()]
            }]
        );
        // The NOT NULL check is the column's nullability, not a check.
        assert_eq!(
            orders.check_constraints,
            vec![CheckDef {
                name: Some("TOTAL_CK".into()),
                expression: "TOTAL >= 0".into()
            }]
        );
    }

    #[test]
    fn foreign_keys_and_indexes() {
        let schemas = assemble(&owners(), &rows());
        let lines = &schemas["APP"].tables["LINES"];
        assert_eq!(
            lines.foreign_keys,
            vec![ForeignKeyDef {
                name: Some("LINES_FK".into()),
                columns: vec!["ORDER_ID".into(), "ORDER_CODE".into()],
                referenced_schema: "APP".into(),
                referenced_table: "ORDERS".into(),
                referenced_columns: vec!["ID".into(), "CODE".into()],
                on_update: ReferentialAction::NoAction,
                on_delete: ReferentialAction::Cascade,
            }]
        );
        assert_eq!(
            lines.indexes,
            vec![IndexDef {
                name: "LINES_NOTE_IX".into(),
                columns: vec!["UPPER(\"NOTE\")".into()],
                unique: false,
                primary: false,
                method: Some("btree".into()),
            }]
        );
        let orders = &schemas["APP"].tables["ORDERS"];
        let flags: Vec<_> = orders
            .indexes
            .iter()
            .map(|i| (i.name.as_str(), i.unique, i.primary, i.columns.len()))
            .collect();
        assert_eq!(
            flags,
            vec![("ORDERS_PK", true, true, 1), ("ORDERS_UK", true, false, 2)]
        );
    }

    #[test]
    fn stored_fingerprints_equal_the_drift_query() {
        let rows = rows();
        let schemas = assemble(&owners(), &rows);
        let current = fingerprints(&rows.drift);
        assert_eq!(current.len(), 3);
        for (schema, table) in schemas
            .iter()
            .flat_map(|(s, d)| d.tables.values().map(move |t| (s, t)))
        {
            assert_eq!(
                current.get(&(schema.clone(), table.name.clone())),
                Some(&table.drift_fingerprint),
                "{}",
                table.name
            );
            assert!(!table.drift_fingerprint.is_empty());
        }
        // A DDL moves LAST_DDL_TIME: the fingerprint changes.
        let mut later = rows.drift;
        later[0][3] = Some("2024-06-01 00:00:00".into());
        let moved = fingerprints(&later);
        assert_ne!(
            moved[&("APP".to_string(), "LINES".to_string())],
            current[&("APP".to_string(), "LINES".to_string())]
        );
        assert_eq!(
            moved[&("APP".to_string(), "ORDERS".to_string())],
            current[&("APP".to_string(), "ORDERS".to_string())]
        );
    }

    #[test]
    fn owners_default_to_the_session_schema() {
        let users = vec![
            ("APP".to_string(), false),
            ("APP_ARCHIVE".to_string(), false),
            ("MDSYS".to_string(), true),
            ("SYS".to_string(), true),
        ];
        let none = SchemaFilter::default();
        assert_eq!(select_owners(&none, "APP", &users), vec!["APP"]);
        let all = SchemaFilter {
            include: vec!["*".into()],
            exclude: vec![],
        };
        assert_eq!(
            select_owners(&all, "APP", &users),
            vec!["APP", "APP_ARCHIVE"]
        );
        let named = SchemaFilter {
            include: vec!["APP*".into(), "MDSYS".into()],
            exclude: vec!["*_ARCHIVE".into()],
        };
        assert_eq!(select_owners(&named, "APP", &users), vec!["APP", "MDSYS"]);
        let excluded = SchemaFilter {
            include: vec![],
            exclude: vec!["APP".into()],
        };
        assert!(select_owners(&excluded, "APP", &users).is_empty());
    }

    #[test]
    fn not_null_checks_are_recognised() {
        assert!(is_not_null_check("\"CODE\" IS NOT NULL"));
        assert!(is_not_null_check(" \"Mixed Name\" is not null "));
        assert!(!is_not_null_check("\"CODE\" IS NOT NULL AND \"X\" > 0"));
        assert!(!is_not_null_check("TOTAL >= 0"));
    }
}
