//! API keys found by hash, kept in memory so that the key lookup every
//! authenticated request makes skips SQLite — without ever serving a key
//! that changed, even when the change came from another replica sharing
//! the data directory.
//!
//! Every key change appends one byte to a marker file beside the database
//! (`api-keys.changes`) after it commits. A lookup reads the marker's
//! length (one `fstat` of the file held open; a marker deleted or made
//! again is opened anew) and trusts the cache only while that length, the
//! file — and this process's own change count — are what they were when
//! the entry was stored. A revocation is thus refused by every replica
//! from its next request on, as when every request read the database. Entries also
//! expire after [`KeyCache::TTL`], which bounds what a writer that died
//! between its commit and its marker byte could leave behind. Past half
//! its TTL an entry is read again by ONE lookup while the others keep
//! using it: the many requests carrying one key do not all go to the
//! database together each time it expires.

use std::collections::HashMap;
use std::io::Write as _;
#[cfg(unix)]
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use crate::auth::keys::ApiKey;

/// What the cache's entries are valid for: this process's change count and
/// the marker file's length and identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    local: u64,
    marker: MarkerState,
}

/// The marker file's length, and which file it is (device and inode):
/// length alone would miss a marker made again to the same length.
type MarkerState = (u64, u64, u64);

#[derive(Debug)]
pub(crate) struct KeyCache {
    /// None for an in-memory store (no other process can share it).
    marker: Option<Marker>,
    inner: Mutex<Inner>,
}

/// The marker file, held open so that a lookup reads its length without
/// resolving its path (lookups read it side by side: a read lock).
#[derive(Debug)]
struct Marker {
    path: PathBuf,
    /// None while the file cannot be opened.
    file: RwLock<Option<std::fs::File>>,
}

impl Marker {
    fn open(path: PathBuf) -> Self {
        let file = std::fs::File::open(&path).ok();
        Self {
            path,
            file: RwLock::new(file),
        }
    }

    /// The marker's state; the file is opened again when the open one was
    /// unlinked (deleted, or replaced by another of the same name). None
    /// when there is no marker.
    fn state(&self) -> Option<MarkerState> {
        {
            let file = self.file.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(open) = file.as_ref()
                && let Ok(meta) = open.metadata()
                && linked(&meta)
            {
                return Some(identity(&meta));
            }
        }
        let mut file = self.file.write().unwrap_or_else(PoisonError::into_inner);
        *file = std::fs::File::open(&self.path).ok();
        file.as_ref()
            .and_then(|f| f.metadata().ok())
            .map(|meta| identity(&meta))
    }
}

/// Whether a file held open still has a name.
#[cfg(unix)]
fn linked(meta: &std::fs::Metadata) -> bool {
    meta.nlink() > 0
}

#[cfg(not(unix))]
fn linked(_: &std::fs::Metadata) -> bool {
    // No link count to read: the path is looked up each time instead.
    false
}

#[cfg(unix)]
fn identity(meta: &std::fs::Metadata) -> MarkerState {
    (meta.len(), meta.dev(), meta.ino())
}

#[cfg(not(unix))]
fn identity(meta: &std::fs::Metadata) -> MarkerState {
    (meta.len(), 0, 0)
}

#[derive(Debug, Default)]
struct Inner {
    /// The stamp `keys` were found under.
    stamp: Option<Stamp>,
    /// This process's key changes so far.
    changes: u64,
    keys: HashMap<String, Entry>,
}

#[derive(Debug)]
struct Entry {
    key: ApiKey,
    stored: Instant,
    /// A lookup is reading the key again (past half the TTL).
    refreshing: bool,
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
            marker: Some(Marker::open(marker)),
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
            None => (0, 0, 0),
            Some(marker) => marker.state()?,
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
        let Some(entry) = inner.keys.get_mut(hash) else {
            return Err(stamp);
        };
        let age = entry.stored.elapsed();
        if age >= Self::TTL {
            Err(stamp)
        } else if age < Self::TTL / 2 || entry.refreshing {
            Ok(entry.key.clone())
        } else {
            // This lookup reads it again; the others go on with it.
            entry.refreshing = true;
            Err(stamp)
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
        inner.keys.insert(
            hash.to_string(),
            Entry {
                key: key.clone(),
                stored: Instant::now(),
                refreshing: false,
            },
        );
    }

    /// Forgets `hash`: the database, read again, no longer has its key.
    pub(crate) fn remove(&self, hash: &str) {
        self.lock().keys.remove(hash);
    }

    /// Called after a key change committed: tells every process sharing the
    /// store (through the marker), then this one.
    pub(crate) fn changed(&self) {
        if let Some(marker) = &self.marker
            && let Err(e) = append_to(&marker.path, b".")
        {
            // Other replicas then trust their cached keys for up to the TTL.
            tracing::error!(
                path = %marker.path.display(),
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

    /// A marker deleted and made again, even to the length it had, is
    /// another file: what was cached under the old one is not trusted.
    #[test]
    fn a_marker_made_again_is_followed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KeyCache::MARKER_FILE);
        let cache = KeyCache::shared(dir.path()).unwrap();
        let key = key();
        let stamp = cache.get("h").unwrap_err();
        cache.insert("h", &key, stamp);
        assert_eq!(cache.get("h"), Ok(key.clone()));
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"").unwrap();
        let stamp = cache.get("h").unwrap_err();
        assert!(stamp.is_some(), "the new marker is read");
        cache.insert("h", &key, stamp);
        assert_eq!(cache.get("h"), Ok(key), "and cached under");
        std::fs::write(&path, b".").unwrap();
        assert!(
            cache.get("h").is_err(),
            "a change to the new marker is seen"
        );
    }

    /// Past half its TTL one lookup reads the key again while the others
    /// keep the entry; a key the database no longer has goes for all.
    #[test]
    fn one_lookup_reads_an_aging_key_again() {
        let cache = KeyCache::local();
        let key = key();
        let stamp = cache.get("h").unwrap_err();
        cache.insert("h", &key, stamp);
        let age = |cache: &KeyCache, by: Duration| {
            let mut inner = cache.lock();
            let entry = inner.keys.get_mut("h").unwrap();
            entry.stored = Instant::now().checked_sub(by).unwrap();
        };
        age(&cache, KeyCache::TTL * 3 / 4);
        let stamp = cache.get("h").expect_err("the first lookup reads it again");
        assert_eq!(cache.get("h"), Ok(key.clone()), "the others keep it");
        assert_eq!(cache.get("h"), Ok(key.clone()));
        cache.insert("h", &key, stamp);
        assert!(!cache.lock().keys["h"].refreshing, "stored afresh");
        assert_eq!(cache.get("h"), Ok(key.clone()));

        age(&cache, KeyCache::TTL * 3 / 4);
        assert!(cache.get("h").is_err());
        cache.remove("h");
        assert!(cache.get("h").is_err(), "gone for every lookup");

        let stamp = cache.get("h").unwrap_err();
        cache.insert("h", &key, stamp);
        age(&cache, KeyCache::TTL);
        assert!(cache.get("h").is_err(), "expired");
        assert!(cache.get("h").is_err(), "for every lookup");
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
