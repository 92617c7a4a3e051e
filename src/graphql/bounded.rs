//! The GraphQL layer's caches by document (parsed documents, documents
//! that passed validation, plans, persisted texts). Clients send the same
//! few documents, so a cache keeps at most [`MAX`] entries and starts over
//! past that: no eviction order is kept on the request path.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Entries a cache keeps before it starts over.
pub const MAX: usize = 1_024;
/// Longer documents are not cached (they are not the light ones).
pub const MAX_TEXT: usize = 16 * 1024;

/// A map of at most [`MAX`] entries, shared by a layer's requests.
pub struct Bounded<K, V> {
    entries: Mutex<HashMap<K, V>>,
}

impl<K, V> Default for Bounded<K, V> {
    fn default() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash, V> Bounded<K, V> {
    /// What `read` makes of the entry of `key`, if there is one (under the
    /// lock: keep it short).
    pub fn read<Q, R>(&self, key: &Q, read: impl FnOnce(&V) -> R) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.lock().get(key).map(read)
    }

    /// A copy of the entry of `key`.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
        V: Clone,
    {
        self.read(key, V::clone)
    }

    /// Keeps `value` under `key`.
    pub fn insert(&self, key: K, value: V) {
        self.update(key, |entry| *entry = Some(value));
    }

    /// Changes the entry of `key` (`None`: there is none; left `None`, the
    /// key is not kept).
    pub fn update(&self, key: K, change: impl FnOnce(&mut Option<V>)) {
        let mut entries = self.lock();
        let mut entry = entries.remove(&key);
        change(&mut entry);
        if let Some(value) = entry {
            if entries.len() >= MAX {
                entries.clear();
            }
            entries.insert(key, value);
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<K, V>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_cache_starts_over_and_updates_keep_what_they_leave() {
        let cache: Bounded<String, usize> = Bounded::default();
        for i in 0..MAX {
            cache.insert(format!("k{i}"), i);
        }
        assert_eq!(cache.get("k7"), Some(7));
        // Changing a known entry does not count as a new one.
        cache.update("k7".to_string(), |entry| *entry = entry.map(|n| n + 1));
        assert_eq!(cache.get("k7"), Some(8));
        assert_eq!(cache.get("k0"), Some(0));
        // One more: the cache starts over with it.
        cache.insert("new".to_string(), 1);
        assert_eq!(cache.get("k0"), None);
        assert_eq!(cache.read("new", |n| n * 10), Some(10));
        // An update that leaves nothing removes the entry.
        cache.update("new".to_string(), |entry| *entry = None);
        assert_eq!(cache.get("new"), None);
    }
}
