//! Collection names: `source.schema.table` for SQL, and a sanitized, unique
//! `source_table` name for GraphQL and REST (schema added only when needed),
//! which an admin can override with an alias.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::model::{SourceSchema, TableRef};

/// One table as the APIs see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Collection {
    /// The name GraphQL and REST use.
    pub api_name: String,
    /// The name SQL uses: `source.schema.table`.
    pub sql_name: String,
    pub table: TableRef,
    /// True when `api_name` comes from an admin-set alias.
    pub aliased: bool,
}

/// Turns any text into a GraphQL/REST-safe name: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn sanitize(text: &str) -> String {
    let mut name: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    name
}

/// Names the REST API's own routes take (`/api/sql`, `/api/batch`): no
/// collection may be called so.
pub const RESERVED_API_NAMES: &[&str] = &["sql", "batch"];

/// Checks that an admin-chosen alias is a valid API name.
pub fn is_valid_api_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
}

/// Names every table of every source. Aliases win; generated names then take
/// `source_table`, or `source_schema_table` where the table name occurs in
/// several schemas of the source, and a numeric suffix if sanitizing still
/// makes two names equal. The result is sorted by API name.
pub fn collections<'a>(
    sources: impl IntoIterator<Item = &'a SourceSchema>,
    aliases: &BTreeMap<TableRef, String>,
) -> Vec<Collection> {
    let mut taken: BTreeSet<String> = aliases.values().cloned().collect();
    let mut out = Vec::new();
    for source in sources {
        let mut schemas_per_table: HashMap<&str, usize> = HashMap::new();
        for (_, table) in source.tables() {
            *schemas_per_table.entry(table.name.as_str()).or_default() += 1;
        }
        for (schema, table) in source.tables() {
            let table_ref = TableRef::new(&source.source, schema, &table.name);
            let sql_name = table_ref.to_string();
            if let Some(alias) = aliases.get(&table_ref) {
                out.push(Collection {
                    api_name: alias.clone(),
                    sql_name,
                    table: table_ref,
                    aliased: true,
                });
                continue;
            }
            let ambiguous = schemas_per_table
                .get(table.name.as_str())
                .copied()
                .unwrap_or(0)
                > 1;
            let base = if ambiguous {
                sanitize(&format!("{}_{schema}_{}", source.source, table.name))
            } else {
                sanitize(&format!("{}_{}", source.source, table.name))
            };
            let mut api_name = base.clone();
            let mut n = 2;
            while taken.contains(&api_name) {
                api_name = format!("{base}_{n}");
                n += 1;
            }
            taken.insert(api_name.clone());
            out.push(Collection {
                api_name,
                sql_name,
                table: table_ref,
                aliased: false,
            });
        }
    }
    out.sort_by(|a, b| a.api_name.cmp(&b.api_name));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{SchemaDef, SourceKind, TableDef, TableKind};

    fn source(name: &str, tables: &[(&str, &str)]) -> SourceSchema {
        let mut schemas: BTreeMap<String, SchemaDef> = BTreeMap::new();
        for (schema, table) in tables {
            let entry = schemas
                .entry((*schema).to_string())
                .or_insert_with(|| SchemaDef {
                    name: (*schema).to_string(),
                    ..Default::default()
                });
            entry.tables.insert(
                (*table).to_string(),
                TableDef {
                    name: (*table).to_string(),
                    kind: TableKind::Table,
                    comment: None,
                    columns: vec![],
                    primary_key: None,
                    unique_constraints: vec![],
                    foreign_keys: vec![],
                    indexes: vec![],
                    check_constraints: vec![],
                    row_estimate: None,
                    drift_fingerprint: String::new(),
                },
            );
        }
        SourceSchema {
            source: name.to_string(),
            kind: SourceKind::Postgres,
            server_version: String::new(),
            default_schema: Some("public".into()),
            schemas,
            introspected_at: chrono::DateTime::UNIX_EPOCH,
        }
    }

    fn names(collections: &[Collection]) -> Vec<(&str, &str)> {
        collections
            .iter()
            .map(|c| (c.api_name.as_str(), c.sql_name.as_str()))
            .collect()
    }

    #[test]
    fn schema_is_added_only_when_a_table_name_repeats() {
        let crm = source(
            "crm",
            &[
                ("public", "customers"),
                ("public", "users"),
                ("audit", "users"),
            ],
        );
        let got = collections([&crm], &BTreeMap::new());
        assert_eq!(
            names(&got),
            vec![
                ("crm_audit_users", "crm.audit.users"),
                ("crm_customers", "crm.public.customers"),
                ("crm_public_users", "crm.public.users"),
            ]
        );
    }

    #[test]
    fn sanitizing_collisions_get_a_suffix_and_aliases_win() {
        let shop = source(
            "shop-1",
            &[
                ("main", "order items"),
                ("main", "order-items"),
                ("main", "x"),
            ],
        );
        let mut aliases = BTreeMap::new();
        aliases.insert(
            TableRef::new("shop-1", "main", "x"),
            "shop_1_order_items".to_string(),
        );
        let got = collections([&shop], &aliases);
        assert_eq!(
            names(&got),
            vec![
                ("shop_1_order_items", "shop-1.main.x"),
                ("shop_1_order_items_2", "shop-1.main.order items"),
                ("shop_1_order_items_3", "shop-1.main.order-items"),
            ]
        );
        assert!(got[0].aliased);
    }

    #[test]
    fn sanitize_and_validate() {
        assert_eq!(sanitize("1st table"), "_1st_table");
        assert_eq!(sanitize("ünï"), "_n_");
        assert!(is_valid_api_name("customers_2"));
        assert!(!is_valid_api_name("2customers"));
        assert!(!is_valid_api_name("__typename"));
        assert!(!is_valid_api_name("a-b"));
    }
}
