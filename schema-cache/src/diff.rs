//! What changed between two introspections of one source.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::model::{ColumnDef, SourceSchema, TableDef};

/// The difference between the old and the new model of one source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct CatalogDiff {
    pub source: String,
    /// `schema.table` names that appeared.
    pub tables_added: Vec<String>,
    /// `schema.table` names that disappeared.
    pub tables_removed: Vec<String>,
    /// Tables present in both whose shape changed.
    pub tables_changed: Vec<TableChange>,
}

impl CatalogDiff {
    /// True when nothing changed.
    pub fn is_empty(&self) -> bool {
        self.tables_added.is_empty()
            && self.tables_removed.is_empty()
            && self.tables_changed.is_empty()
    }

    /// Compares two models of one source. `old` is `None` for a first introspection.
    pub fn between(old: Option<&SourceSchema>, new: &SourceSchema) -> Self {
        let mut diff = CatalogDiff {
            source: new.source.clone(),
            ..Self::default()
        };
        let key = |schema: &str, table: &TableDef| format!("{schema}.{}", table.name);
        let old_keys: BTreeSet<String> = old
            .map(|o| o.tables().map(|(s, t)| key(s, t)).collect())
            .unwrap_or_default();
        let new_keys: BTreeSet<String> = new.tables().map(|(s, t)| key(s, t)).collect();
        diff.tables_added = new_keys.difference(&old_keys).cloned().collect();
        diff.tables_removed = old_keys.difference(&new_keys).cloned().collect();
        if let Some(old) = old {
            for (schema, new_table) in new.tables() {
                if let Some(change) = old
                    .table(schema, &new_table.name)
                    .and_then(|old_table| TableChange::between(schema, old_table, new_table))
                {
                    diff.tables_changed.push(change);
                }
            }
        }
        diff
    }
}

/// How one table changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableChange {
    /// `schema.table`.
    pub table: String,
    pub columns_added: Vec<String>,
    pub columns_removed: Vec<String>,
    pub columns_changed: Vec<ColumnChange>,
    /// Changes that are not about columns: `primary key`, `foreign keys`,
    /// `unique constraints`, `indexes`, `checks`, `kind`, `comment`.
    pub other_changes: Vec<String>,
}

impl TableChange {
    fn between(schema: &str, old: &TableDef, new: &TableDef) -> Option<Self> {
        if old.fingerprint() == new.fingerprint() {
            return None;
        }
        let old_names: BTreeSet<&str> = old.columns.iter().map(|c| c.name.as_str()).collect();
        let new_names: BTreeSet<&str> = new.columns.iter().map(|c| c.name.as_str()).collect();
        let columns_changed = new
            .columns
            .iter()
            .filter_map(|n| {
                let o = old.column(&n.name)?;
                ColumnChange::between(o, n)
            })
            .collect();
        let mut other_changes = Vec::new();
        let mut note = |changed: bool, what: &str| {
            if changed {
                other_changes.push(what.to_string());
            }
        };
        note(old.kind != new.kind, "kind");
        note(old.comment != new.comment, "comment");
        note(old.primary_key != new.primary_key, "primary key");
        note(
            old.unique_constraints != new.unique_constraints,
            "unique constraints",
        );
        note(old.foreign_keys != new.foreign_keys, "foreign keys");
        note(old.indexes != new.indexes, "indexes");
        note(old.check_constraints != new.check_constraints, "checks");
        Some(TableChange {
            table: format!("{schema}.{}", new.name),
            columns_added: new_names
                .difference(&old_names)
                .map(ToString::to_string)
                .collect(),
            columns_removed: old_names
                .difference(&new_names)
                .map(ToString::to_string)
                .collect(),
            columns_changed,
            other_changes,
        })
    }
}

/// How one column changed: each field lists `before → after` for what differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnChange {
    pub column: String,
    pub changes: Vec<String>,
}

impl ColumnChange {
    fn between(old: &ColumnDef, new: &ColumnDef) -> Option<Self> {
        let mut changes = Vec::new();
        if old.native_type != new.native_type {
            changes.push(format!("type: {} → {}", old.native_type, new.native_type));
        } else if old.data_type != new.data_type {
            changes.push(format!("arrow type: {} → {}", old.data_type, new.data_type));
        }
        if old.nullable != new.nullable {
            changes.push(format!("nullable: {} → {}", old.nullable, new.nullable));
        }
        if old.default != new.default {
            changes.push(format!(
                "default: {} → {}",
                old.default.as_deref().unwrap_or("none"),
                new.default.as_deref().unwrap_or("none")
            ));
        }
        if old.generated != new.generated {
            changes.push("generated".to_string());
        }
        if old.comment != new.comment {
            changes.push("comment".to_string());
        }
        if old.ordinal != new.ordinal {
            changes.push(format!("position: {} → {}", old.ordinal, new.ordinal));
        }
        (!changes.is_empty()).then(|| ColumnChange {
            column: new.name.clone(),
            changes,
        })
    }
}
