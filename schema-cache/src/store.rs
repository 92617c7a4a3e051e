//! Where the catalog is persisted: a versioned JSON document, written
//! atomically (temp file, fsync, rename) so a crash never leaves half a file.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::error::CacheError;
use crate::model::SourceSchema;

/// The on-disk format. New versions are added as variants and upgraded on load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "format")]
pub enum PersistedCatalog {
    #[serde(rename = "1")]
    V1 {
        /// The last introspected model of each source, by source name.
        sources: BTreeMap<String, SourceSchema>,
    },
}

impl PersistedCatalog {
    /// The models by source name, whatever the format version.
    pub fn into_sources(self) -> BTreeMap<String, SourceSchema> {
        match self {
            Self::V1 { sources } => sources,
        }
    }
}

/// Loads and saves the persisted catalog.
pub trait CatalogStore: Send + Sync {
    /// The saved catalog, or `None` when nothing was saved yet.
    fn load(&self) -> Result<Option<PersistedCatalog>, CacheError>;
    /// Replaces the saved catalog.
    fn save(&self, catalog: &PersistedCatalog) -> Result<(), CacheError>;
}

/// A catalog file in the data directory.
#[derive(Debug)]
pub struct FileCatalogStore {
    path: PathBuf,
    // Serializes writers so two refreshes never race on the temp file.
    write_lock: Mutex<()>,
}

impl FileCatalogStore {
    /// The file name inside the data directory.
    pub const FILE_NAME: &'static str = "catalog.json";

    /// A store at `data_dir/catalog.json`.
    pub fn in_dir(data_dir: &Path) -> Self {
        Self {
            path: data_dir.join(Self::FILE_NAME),
            write_lock: Mutex::new(()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl CatalogStore for FileCatalogStore {
    fn load(&self) -> Result<Option<PersistedCatalog>, CacheError> {
        let bytes = match fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(CacheError::Read {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| CacheError::Corrupt {
                path: self.path.clone(),
                source,
            })
    }

    fn save(&self, catalog: &PersistedCatalog) -> Result<(), CacheError> {
        let _guard = self
            .write_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let write_err = |source| CacheError::Write {
            path: self.path.clone(),
            source,
        };
        let bytes = serde_json::to_vec(catalog).map_err(|e| write_err(std::io::Error::other(e)))?;
        let tmp = self.path.with_extension("json.tmp");
        let mut file = fs::File::create(&tmp).map_err(write_err)?;
        file.write_all(&bytes).map_err(write_err)?;
        file.sync_all().map_err(write_err)?;
        drop(file);
        fs::rename(&tmp, &self.path).map_err(write_err)?;
        Ok(())
    }
}

/// A store that keeps the catalog in memory (tests, `--ephemeral` runs).
#[derive(Debug, Default)]
pub struct MemoryCatalogStore {
    saved: Mutex<Option<PersistedCatalog>>,
}

impl CatalogStore for MemoryCatalogStore {
    fn load(&self) -> Result<Option<PersistedCatalog>, CacheError> {
        Ok(self
            .saved
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone())
    }

    fn save(&self, catalog: &PersistedCatalog) -> Result<(), CacheError> {
        *self
            .saved
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(catalog.clone());
        Ok(())
    }
}
