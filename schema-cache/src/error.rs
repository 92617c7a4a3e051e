//! Errors of the schema cache and its store.

use std::path::PathBuf;

/// Why the catalog could not be loaded, saved or changed.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cannot read the cached catalog at {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the cached catalog at {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the cached catalog at {path} is not valid: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("unknown source `{0}`")]
    UnknownSource(String),
}
