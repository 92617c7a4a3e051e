//! The metadata store: registered sources (with their secrets), declared
//! relations and aliases; API keys, permissions and the audit log
//! (`security.rs`). Embedded
//! SQLite in the data directory (file mode 0600) with numbered migrations;
//! behind a trait so several replicas can later share a PostgreSQL store.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags, params};
use tributary_connector::SourceConfig;
use tributary_schema_cache::{Relation, RelationOrigin, TableRef};

/// A metadata store failure.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot prepare the metadata store at {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("stored record is not valid: {0}")]
    Corrupt(String),
}

mod key_cache;
mod security;

pub use security::{AuditQuery, SecurityStore};

/// Where sources, relations and aliases are kept (and, through
/// [`SecurityStore`], keys, permissions and the audit log).
#[async_trait]
pub trait MetadataStore: SecurityStore + Send + Sync {
    async fn sources(&self) -> Result<Vec<SourceConfig>, MetadataError>;
    /// Adds a source; `Ok(false)` when the name is taken.
    async fn insert_source(&self, config: &SourceConfig) -> Result<bool, MetadataError>;
    /// Replaces a source's config; `Ok(false)` when it does not exist.
    async fn update_source(&self, config: &SourceConfig) -> Result<bool, MetadataError>;
    /// Deletes a source with the relations and aliases that mention it, in
    /// one transaction; `Ok(false)` when it does not exist.
    async fn delete_source(&self, name: &str) -> Result<bool, MetadataError>;
    async fn relations(&self) -> Result<Vec<Relation>, MetadataError>;
    /// Adds a relation; `Ok(false)` when the name is taken.
    async fn insert_relation(&self, relation: &Relation) -> Result<bool, MetadataError>;
    async fn delete_relation(&self, name: &str) -> Result<bool, MetadataError>;
    async fn aliases(&self) -> Result<BTreeMap<TableRef, String>, MetadataError>;
    /// Sets (or replaces) the alias of a table.
    async fn set_alias(&self, table: &TableRef, alias: &str) -> Result<(), MetadataError>;
    async fn delete_alias(&self, alias: &str) -> Result<bool, MetadataError>;
}

/// Schema migrations, applied in order; the index + 1 is the version.
const MIGRATIONS: &[&str] = &[
    r"
CREATE TABLE sources (
    name        TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    config      TEXT NOT NULL,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE TABLE relations (
    name          TEXT PRIMARY KEY,
    from_source   TEXT NOT NULL,
    from_schema   TEXT NOT NULL,
    from_table    TEXT NOT NULL,
    from_columns  TEXT NOT NULL,
    to_source     TEXT NOT NULL,
    to_schema     TEXT NOT NULL,
    to_table      TEXT NOT NULL,
    to_columns    TEXT NOT NULL,
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE TABLE aliases (
    source      TEXT NOT NULL,
    schema_name TEXT NOT NULL,
    table_name  TEXT NOT NULL,
    alias       TEXT NOT NULL UNIQUE,
    PRIMARY KEY (source, schema_name, table_name)
);
",
    security::MIGRATION,
];

/// The embedded SQLite metadata store.
pub struct SqliteMetadataStore {
    connection: Mutex<Connection>,
    /// Read-only connections for the lookup every request makes (its API
    /// key), so requests wait neither for each other nor for a write
    /// (the file is in WAL mode). None for an in-memory store.
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    /// API keys found by hash: the lookup every request makes mostly
    /// answers from memory.
    key_cache: key_cache::KeyCache,
}

impl std::fmt::Debug for SqliteMetadataStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteMetadataStore")
    }
}

impl SqliteMetadataStore {
    pub const FILE_NAME: &'static str = "tributary.db";

    /// Opens (creating if needed) `data_dir/tributary.db` with mode 0600 and
    /// applies pending migrations.
    pub fn open(data_dir: &Path) -> Result<Self, MetadataError> {
        let path = data_dir.join(Self::FILE_NAME);
        let io_err = |source| MetadataError::Io {
            path: path.clone(),
            source,
        };
        if !path.exists() {
            create_private_file(&path).map_err(io_err)?;
        }
        let connection = Self::migrate(Connection::open(&path)?)?;
        // WAL: readers see every committed write and never block on one.
        connection.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
        let readers = (0..Self::READERS)
            .map(|_| {
                let reader = Connection::open_with_flags(
                    &path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                reader.busy_timeout(std::time::Duration::from_secs(5))?;
                Ok(Mutex::new(reader))
            })
            .collect::<Result<_, MetadataError>>()?;
        let key_cache =
            key_cache::KeyCache::shared(data_dir).map_err(|source| MetadataError::Io {
                path: data_dir.join(key_cache::KeyCache::MARKER_FILE),
                source,
            })?;
        Ok(Self::new(connection, readers, key_cache))
    }

    /// An in-memory store (tests).
    pub fn in_memory() -> Result<Self, MetadataError> {
        Ok(Self::new(
            Self::migrate(Connection::open_in_memory()?)?,
            Vec::new(),
            key_cache::KeyCache::local(),
        ))
    }

    const READERS: usize = 4;

    fn new(
        connection: Connection,
        readers: Vec<Mutex<Connection>>,
        key_cache: key_cache::KeyCache,
    ) -> Self {
        Self {
            connection: Mutex::new(connection),
            readers,
            next_reader: AtomicUsize::new(0),
            key_cache,
        }
    }

    fn migrate(mut connection: Connection) -> Result<Connection, MetadataError> {
        connection.pragma_update(None, "foreign_keys", "ON")?;
        connection.busy_timeout(std::time::Duration::from_secs(5))?;
        let tx = connection.transaction()?;
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)",
        )?;
        let applied: i64 = tx.query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            [],
            |r| r.get(0),
        )?;
        for (index, sql) in MIGRATIONS.iter().enumerate() {
            let version = i64::try_from(index + 1).unwrap_or(i64::MAX);
            if version > applied {
                tx.execute_batch(sql)?;
                tx.execute(
                    "INSERT INTO schema_migrations (version) VALUES (?1)",
                    [version],
                )?;
            }
        }
        tx.commit()?;
        Ok(connection)
    }

    pub(crate) fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, MetadataError>,
    ) -> Result<T, MetadataError> {
        let mut guard = self
            .connection
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }

    /// Runs a read on a reader connection (a free one if any), or on the
    /// main connection for an in-memory store.
    pub(crate) fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, MetadataError>,
    ) -> Result<T, MetadataError> {
        if self.readers.is_empty() {
            return self.with(|c| f(c));
        }
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        let count = self.readers.len();
        let free = (0..count).find_map(|i| self.readers[(start + i) % count].try_lock().ok());
        let guard = match free {
            Some(guard) => guard,
            None => self.readers[start % count]
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        };
        f(&guard)
    }
}

/// Creates an empty file only its owner may read (it will hold passwords).
fn create_private_file(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map(drop)
}

pub(crate) fn is_unique_violation(error: &rusqlite::Error) -> bool {
    matches!(
        error,
        rusqlite::Error::SqliteFailure(e, _) if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
    )
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> Result<String, MetadataError> {
    serde_json::to_string(value).map_err(|e| MetadataError::Corrupt(e.to_string()))
}

pub(crate) fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, MetadataError> {
    serde_json::from_str(text).map_err(|e| MetadataError::Corrupt(e.to_string()))
}

#[async_trait]
impl MetadataStore for SqliteMetadataStore {
    async fn sources(&self) -> Result<Vec<SourceConfig>, MetadataError> {
        self.with(|c| {
            let mut stmt = c.prepare("SELECT config FROM sources ORDER BY name")?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            rows.map(|r| from_json(&r?)).collect()
        })
    }

    async fn insert_source(&self, config: &SourceConfig) -> Result<bool, MetadataError> {
        let json = to_json(config)?;
        self.with(|c| {
            match c.execute(
                "INSERT INTO sources (name, kind, config) VALUES (?1, ?2, ?3)",
                params![config.name, config.kind.as_str(), json],
            ) {
                Ok(_) => Ok(true),
                Err(e) if is_unique_violation(&e) => Ok(false),
                Err(e) => Err(e.into()),
            }
        })
    }

    async fn update_source(&self, config: &SourceConfig) -> Result<bool, MetadataError> {
        let json = to_json(config)?;
        self.with(|c| {
            let changed = c.execute(
                "UPDATE sources SET kind = ?2, config = ?3, \
                 updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE name = ?1",
                params![config.name, config.kind.as_str(), json],
            )?;
            Ok(changed == 1)
        })
    }

    async fn delete_source(&self, name: &str) -> Result<bool, MetadataError> {
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute(
                "DELETE FROM relations WHERE from_source = ?1 OR to_source = ?1",
                [name],
            )?;
            tx.execute("DELETE FROM aliases WHERE source = ?1", [name])?;
            let deleted = tx.execute("DELETE FROM sources WHERE name = ?1", [name])?;
            tx.commit()?;
            Ok(deleted == 1)
        })
    }

    async fn relations(&self) -> Result<Vec<Relation>, MetadataError> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT name, from_source, from_schema, from_table, from_columns, \
                 to_source, to_schema, to_table, to_columns FROM relations ORDER BY name",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    TableRef::new(
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                    ),
                    r.get::<_, String>(4)?,
                    TableRef::new(
                        r.get::<_, String>(5)?,
                        r.get::<_, String>(6)?,
                        r.get::<_, String>(7)?,
                    ),
                    r.get::<_, String>(8)?,
                ))
            })?;
            rows.map(|row| {
                let (name, from, from_columns, to, to_columns) = row?;
                Ok(Relation {
                    name,
                    from,
                    from_columns: from_json(&from_columns)?,
                    to,
                    to_columns: from_json(&to_columns)?,
                    origin: RelationOrigin::Declared,
                })
            })
            .collect()
        })
    }

    async fn insert_relation(&self, relation: &Relation) -> Result<bool, MetadataError> {
        let (from_columns, to_columns) = (
            to_json(&relation.from_columns)?,
            to_json(&relation.to_columns)?,
        );
        self.with(|c| {
            match c.execute(
                "INSERT INTO relations (name, from_source, from_schema, from_table, from_columns, \
                 to_source, to_schema, to_table, to_columns) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    relation.name,
                    relation.from.source,
                    relation.from.schema,
                    relation.from.table,
                    from_columns,
                    relation.to.source,
                    relation.to.schema,
                    relation.to.table,
                    to_columns
                ],
            ) {
                Ok(_) => Ok(true),
                Err(e) if is_unique_violation(&e) => Ok(false),
                Err(e) => Err(e.into()),
            }
        })
    }

    async fn delete_relation(&self, name: &str) -> Result<bool, MetadataError> {
        self.with(|c| Ok(c.execute("DELETE FROM relations WHERE name = ?1", [name])? == 1))
    }

    async fn aliases(&self) -> Result<BTreeMap<TableRef, String>, MetadataError> {
        self.with(|c| {
            let mut stmt =
                c.prepare("SELECT source, schema_name, table_name, alias FROM aliases")?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    TableRef::new(
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                    ),
                    r.get(3)?,
                ))
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    async fn set_alias(&self, table: &TableRef, alias: &str) -> Result<(), MetadataError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO aliases (source, schema_name, table_name, alias) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (source, schema_name, table_name) DO UPDATE SET alias = excluded.alias",
                params![table.source, table.schema, table.table, alias],
            )?;
            Ok(())
        })
    }

    async fn delete_alias(&self, alias: &str) -> Result<bool, MetadataError> {
        self.with(|c| Ok(c.execute("DELETE FROM aliases WHERE alias = ?1", [alias])? == 1))
    }
}

/// Looks up one stored source by name.
pub async fn find_source(
    store: &dyn MetadataStore,
    name: &str,
) -> Result<Option<SourceConfig>, MetadataError> {
    Ok(store.sources().await?.into_iter().find(|s| s.name == name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn file_is_private_and_migrations_are_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteMetadataStore::open(dir.path()).unwrap();
        let config = SourceConfig::from_url("crm", "postgres://u:secret@h/db").unwrap();
        assert!(store.insert_source(&config).await.unwrap());
        assert!(
            !store.insert_source(&config).await.unwrap(),
            "duplicate refused"
        );
        drop(store);
        let store = SqliteMetadataStore::open(dir.path()).unwrap();
        assert_eq!(store.sources().await.unwrap(), vec![config]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(SqliteMetadataStore::FILE_NAME))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[tokio::test]
    async fn deleting_a_source_deletes_what_mentions_it() {
        let store = SqliteMetadataStore::in_memory().unwrap();
        let crm = SourceConfig::from_url("crm", "postgres://h/db").unwrap();
        let shop = SourceConfig::from_url("shop", "mysql://h/db").unwrap();
        store.insert_source(&crm).await.unwrap();
        store.insert_source(&shop).await.unwrap();
        let relation = Relation {
            name: "order_customer".into(),
            from: TableRef::new("shop", "shop", "orders"),
            from_columns: vec!["customer_id".into()],
            to: TableRef::new("crm", "public", "customers"),
            to_columns: vec!["id".into()],
            origin: RelationOrigin::Declared,
        };
        assert!(store.insert_relation(&relation).await.unwrap());
        assert!(!store.insert_relation(&relation).await.unwrap());
        store
            .set_alias(&TableRef::new("crm", "public", "customers"), "customers")
            .await
            .unwrap();
        store
            .set_alias(&TableRef::new("shop", "shop", "orders"), "orders")
            .await
            .unwrap();
        assert_eq!(store.relations().await.unwrap(), vec![relation]);
        assert!(store.delete_source("crm").await.unwrap());
        assert!(store.relations().await.unwrap().is_empty());
        let aliases = store.aliases().await.unwrap();
        assert_eq!(aliases.values().collect::<Vec<_>>(), vec!["orders"]);
        assert!(!store.delete_source("crm").await.unwrap());
    }
}
