//! Tributary's catalog: the model every connector introspects into, the
//! persisted store it is cached in, and the live, versioned snapshot that
//! every API reads.
//!
//! This crate depends on no connector and no query engine; the connectors
//! depend on it.

pub mod cache;
pub mod diff;
pub mod error;
pub mod fingerprint;
pub mod model;
pub mod naming;
pub mod relation;
pub mod store;

pub use cache::{CatalogSnapshot, SchemaCache, SourceEntry, SourceStatus};
pub use diff::{CatalogDiff, ColumnChange, TableChange};
pub use error::CacheError;
pub use model::{
    CheckDef, ColumnDef, ForeignKeyDef, Generated, IndexDef, KeyDef, ReferentialAction, SchemaDef,
    ServedAs, SourceKind, SourceSchema, TableDef, TableKind, TableRef, UnsupportedType,
};
pub use naming::Collection;
pub use relation::{Relation, RelationOrigin};
pub use store::{CatalogStore, FileCatalogStore, MemoryCatalogStore, PersistedCatalog};
