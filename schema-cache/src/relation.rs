//! Relations between tables: introspected foreign keys and admin-declared
//! relations, which may cross sources.

use serde::{Deserialize, Serialize};

use crate::model::{SourceSchema, TableRef};

/// A many-to-one link: rows of `from` reference one row of `to`
/// (`from_columns[i]` = `to_columns[i]`). APIs expose it both ways: an object
/// relation on `from` and an array relation on `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Relation {
    pub name: String,
    pub from: TableRef,
    pub from_columns: Vec<String>,
    pub to: TableRef,
    pub to_columns: Vec<String>,
    pub origin: RelationOrigin,
}

/// Where a relation comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RelationOrigin {
    /// A foreign key in the source's own schema.
    ForeignKey,
    /// Declared by an admin (stored in the metadata store), possibly across sources.
    Declared,
}

impl Relation {
    /// True when both ends live in one source.
    pub fn is_cross_source(&self) -> bool {
        self.from.source != self.to.source
    }
}

/// The relations a source's foreign keys describe.
pub fn foreign_key_relations(schema: &SourceSchema) -> Vec<Relation> {
    schema
        .tables()
        .flat_map(|(schema_name, table)| {
            table.foreign_keys.iter().map(move |fk| Relation {
                name: fk
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("{}_{}_fkey", table.name, fk.columns.join("_"))),
                from: TableRef::new(&schema.source, schema_name, &table.name),
                from_columns: fk.columns.clone(),
                to: TableRef::new(&schema.source, &fk.referenced_schema, &fk.referenced_table),
                to_columns: fk.referenced_columns.clone(),
                origin: RelationOrigin::ForeignKey,
            })
        })
        .collect()
}
