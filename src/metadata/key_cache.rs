//! API keys found by hash, kept in memory so that the key lookup every
//! authenticated request makes skips SQLite — without ever serving a key
//! that changed, even when the change came from another replica sharing
//! the data directory.
//!
//! Every key change appends one byte to a marker file beside the database
//! (`api-keys.changes`) after it commits. A lookup reads the marker's
//! length (one `stat`) and trusts the cache only while that length — and
//! this process's own change count — are what they were when the entry
//! was stored. A revocation is thus refused by every replica from its next
//! request on, as when every request read the database. Entries also
//! expire after [`KeyCache::TTL`], which bounds what a writer that died
//! between its commit and its marker byte could leave behind.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::auth::keys::ApiKey;

/// What the cache's entries are valid for: this process's change count and
/// the marker file's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    local: u64,
    marker: u64,
}

#[derive(Debug)]
pub(crate) struct KeyCache {
    /// None for an in-memory store (no other process can share it).
    marker: Option<PathBuf>,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// The stamp `keys` were found under.
    stamp: Option<Stamp>,
    /// This process's key changes so far.
    changes: u64,
    keys: HashMap<String, (ApiKey, Instant)>,
}

impl KeyCache {
    const TTL: Duration = Duration::from_secs(2);
    /// Past this many keys the cache starts over.
    const MAX: usize = 4_096;
    pub(crate) const MARKER_FILE: &'static str = "api-keys.changes";

    /// A cache for a store only this process uses.
    pub(crate) fn local() -> Self {
        Self {
            marker: None,
            inner: Mutex::default(),
        }
    }

    /// A cache for the store in `data_dir`, which other processes may share;
    /// creates the marker file if it is missing.
    pub(crate) fn shared(data_dir: &Path) -> std::io::Result<Self> {
        let marker = data_dir.join(Self::MARKER_FILE);
        append_to(&marker, b"")?;
        Ok(Self {
            marker: Some(marker),
            inner: Mutex::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The stamp now; None when the marker cannot be read (nothing is then
    /// cached).
    fn stamp(&self, changes: u64) -> Option<Stamp> {
        let marker = match &self.marker {
            None => 0,
            Some(path) => std::fs::metadata(path).ok()?.len(),
        };
        Some(Stamp {
            local: changes,
            marker,
        })
    }

    /// The cached key for `hash`, or None with the stamp to store what the
    /// database answers under ([`KeyCache::insert`]).
    pub(crate) fn get(&self, hash: &str) -> Result<ApiKey, Option<Stamp>> {
        let changes = self.lock().changes;
        let stamp = self.stamp(changes);
        let mut inner = self.lock();
        if stamp.is_none() || inner.stamp != stamp {
            inner.keys.clear();
            inner.stamp = stamp;
            return Err(stamp);
        }
        match inner.keys.get(hash) {
            Some((key, at)) if at.elapsed() < Self::TTL => Ok(key.clone()),
            _ => Err(stamp),
        }
    }

    /// Keeps `key`, read from the database after `get` gave `stamp`, unless
    /// a key changed meanwhile.
    pub(crate) fn insert(&self, hash: &str, key: &ApiKey, stamp: Option<Stamp>) {
        let mut inner = self.lock();
        if stamp.is_none() || inner.stamp != stamp {
            return;
        }
        if inner.keys.len() >= Self::MAX {
            inner.keys.clear();
        }
        inner
            .keys
            .insert(hash.to_string(), (key.clone(), Instant::now()));
    }

    /// Called after a key change committed: tells every process sharing the
    /// store (through the marker), then this one.
    pub(crate) fn changed(&self) {
        if let Some(marker) = &self.marker
            && let Err(e) = append_to(marker, b".")
        {
            // Other replicas then trust their cached keys for up to the TTL.
            tracing::error!(
                path = %marker.display(),
                error = %e,
                "cannot mark an API key change for other replicas"
            );
        }
        let mut inner = self.lock();
        inner.changes += 1;
        inner.keys.clear();
        // Lookups that started before the change store nothing.
        inner.stamp = None;
    }
}

/// Appends `bytes` to the file at `path`, creating it (mode 0600) if needed.
fn append_to(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::auth::keys;

    fn key() -> ApiKey {
        keys::create("ci".into(), "reader".into(), None, Value::Null, None).0
    }

    #[test]
    fn a_change_in_one_process_empties_the_cache_of_another() {
        let dir = tempfile::tempdir().unwrap();
        let (first, second) = (
            KeyCache::shared(dir.path()).unwrap(),
            KeyCache::shared(dir.path()).unwrap(),
        );
        let key = key();
        let stamp = second.get("h").unwrap_err();
        second.insert("h", &key, stamp);
        assert_eq!(second.get("h"), Ok(key));
        first.changed();
        assert!(
            second.get("h").is_err(),
            "the other replica's change is seen"
        );
        assert_eq!(
            std::fs::metadata(dir.path().join(KeyCache::MARKER_FILE))
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn a_lookup_that_raced_a_key_change_is_not_kept() {
        let cache = KeyCache::local();
        let key = key();
        // A lookup starts, the key changes, then the lookup stores what it read.
        let stamp = cache.get("h").unwrap_err();
        cache.changed();
        cache.insert("h", &key, stamp);
        assert!(cache.get("h").is_err());
        let stamp = cache.get("h").unwrap_err();
        cache.insert("h", &key, stamp);
        assert_eq!(cache.get("h"), Ok(key));
    }

    #[test]
    fn without_its_marker_file_nothing_is_cached() {
        let dir = tempfile::tempdir().unwrap();
        let cache = KeyCache::shared(dir.path()).unwrap();
        std::fs::remove_file(dir.path().join(KeyCache::MARKER_FILE)).unwrap();
        let stamp = cache.get("h").unwrap_err();
        assert_eq!(stamp, None);
        cache.insert("h", &key(), stamp);
        assert!(cache.get("h").is_err());
    }
}
