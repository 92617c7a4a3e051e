//! The live catalog: an immutable snapshot swapped atomically on every change,
//! read lock-free by every request, persisted after every change, and
//! broadcast to subscribers (the engine and API schemas rebuild from it).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::watch;

use crate::diff::CatalogDiff;
use crate::error::CacheError;
use crate::model::{SourceKind, SourceSchema, TableDef, TableRef};
use crate::naming::{self, Collection};
use crate::relation::{self, Relation};
use crate::store::{CatalogStore, PersistedCatalog};

/// Whether a source's part of the catalog is confirmed by the database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum SourceStatus {
    /// Loaded from the cache (or just registered); not yet checked against the database.
    Unchecked,
    /// Contacts with the database have succeeded since `since`.
    Ready { since: DateTime<Utc> },
    /// The database did not answer; the cached model (if any) is still served.
    Unavailable { error: String, since: DateTime<Utc> },
}

/// One source in the catalog.
#[derive(Debug, Clone, Serialize)]
pub struct SourceEntry {
    pub name: String,
    pub kind: SourceKind,
    pub status: SourceStatus,
    /// The last introspected model; `None` until the first successful introspection.
    pub schema: Option<Arc<SourceSchema>>,
}

impl SourceEntry {
    /// The source's catalog fingerprint, when it has a model.
    pub fn fingerprint(&self) -> Option<String> {
        self.schema.as_ref().map(|s| s.fingerprint())
    }
}

/// An immutable view of the whole catalog.
#[derive(Debug, Clone, Serialize, Default)]
pub struct CatalogSnapshot {
    /// Increases by one on every change.
    pub version: u64,
    pub sources: BTreeMap<String, SourceEntry>,
    /// Foreign-key relations of every source plus the declared ones.
    pub relations: Vec<Relation>,
    /// Every table's API and SQL names.
    pub collections: Vec<Arc<Collection>>,
    #[serde(skip)]
    declared_relations: Vec<Relation>,
    #[serde(skip)]
    aliases: BTreeMap<TableRef, String>,
    /// Each collection (shared with `collections`) and its table, by API
    /// name: every API request looks its collection up, and shared ones
    /// cost it no copy of their names or columns.
    #[serde(skip)]
    by_name: HashMap<String, (Arc<Collection>, Arc<TableDef>)>,
}

impl CatalogSnapshot {
    /// Finds a collection by its API name.
    pub fn collection(&self, api_name: &str) -> Option<&Collection> {
        self.collection_table(api_name)
            .map(|(collection, _)| &**collection)
    }

    /// A collection by its API name with its table's definition.
    pub fn collection_table(&self, api_name: &str) -> Option<(&Arc<Collection>, &Arc<TableDef>)> {
        let (collection, table) = self.by_name.get(api_name)?;
        Some((collection, table))
    }

    /// Recomputes the derived parts (relations, collection names).
    fn derive(&mut self) {
        let models: Vec<&SourceSchema> = self
            .sources
            .values()
            .filter_map(|e| e.schema.as_deref())
            .collect();
        self.collections = naming::collections(models.iter().copied(), &self.aliases)
            .into_iter()
            .map(Arc::new)
            .collect();
        self.by_name = self
            .collections
            .iter()
            .filter_map(|collection| {
                let t = &collection.table;
                let table = self.sources.get(&t.source)?.schema.as_ref()?;
                let def = table.table(&t.schema, &t.table)?;
                let shared = (collection.clone(), Arc::new(def.clone()));
                Some((collection.api_name.clone(), shared))
            })
            .collect();
        let mut relations: Vec<Relation> = models
            .iter()
            .flat_map(|m| relation::foreign_key_relations(m))
            .collect();
        relations.extend(self.declared_relations.iter().cloned());
        self.relations = relations;
    }
}

/// The status after `new`, keeping the start time of a state that continues.
fn merge_status(old: Option<&SourceStatus>, new: SourceStatus) -> SourceStatus {
    match (old, new) {
        (Some(SourceStatus::Ready { since }), SourceStatus::Ready { .. }) => {
            SourceStatus::Ready { since: *since }
        }
        (
            Some(SourceStatus::Unavailable { since, .. }),
            SourceStatus::Unavailable {
                error,
                since: new_since,
            },
        ) => SourceStatus::Unavailable {
            error,
            since: (*since).min(new_since),
        },
        (_, new) => new,
    }
}

/// The schema cache. Cheap to share behind an `Arc`.
pub struct SchemaCache {
    current: ArcSwap<CatalogSnapshot>,
    store: Box<dyn CatalogStore>,
    changes: watch::Sender<Arc<CatalogSnapshot>>,
    // Serializes read-modify-write of the snapshot; readers never take it.
    writer: Mutex<()>,
}

impl std::fmt::Debug for SchemaCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaCache")
            .field("version", &self.current.load().version)
            .finish()
    }
}

impl SchemaCache {
    /// Loads the persisted catalog. Never contacts a source: every loaded
    /// source starts `Unchecked` and is served from the cache at once.
    pub fn open(store: Box<dyn CatalogStore>) -> Result<Self, CacheError> {
        let sources = store
            .load()?
            .map(PersistedCatalog::into_sources)
            .unwrap_or_default();
        let mut snapshot = CatalogSnapshot {
            version: 1,
            ..Default::default()
        };
        for (name, schema) in sources {
            snapshot.sources.insert(
                name.clone(),
                SourceEntry {
                    name,
                    kind: schema.kind,
                    status: SourceStatus::Unchecked,
                    schema: Some(Arc::new(schema)),
                },
            );
        }
        snapshot.derive();
        let snapshot = Arc::new(snapshot);
        let (changes, _) = watch::channel(snapshot.clone());
        Ok(Self {
            current: ArcSwap::new(snapshot),
            store,
            changes,
            writer: Mutex::new(()),
        })
    }

    /// The current catalog (lock-free).
    pub fn snapshot(&self) -> Arc<CatalogSnapshot> {
        self.current.load_full()
    }

    /// A receiver that sees every new snapshot.
    pub fn subscribe(&self) -> watch::Receiver<Arc<CatalogSnapshot>> {
        self.changes.subscribe()
    }

    /// Adds a source without a model yet (a registration before its first introspection).
    pub fn register(&self, name: &str, kind: SourceKind) {
        self.modify(false, |snapshot| {
            snapshot
                .sources
                .entry(name.to_string())
                .or_insert_with(|| SourceEntry {
                    name: name.to_string(),
                    kind,
                    status: SourceStatus::Unchecked,
                    schema: None,
                });
            Ok(())
        })
        .unwrap_or_default();
    }

    /// Replaces one source's model atomically, marks it ready, persists the
    /// catalog and returns what changed.
    pub fn install(&self, schema: SourceSchema) -> Result<CatalogDiff, CacheError> {
        self.modify(true, |snapshot| {
            let old = snapshot
                .sources
                .get(&schema.source)
                .and_then(|e| e.schema.clone());
            let diff = CatalogDiff::between(old.as_deref(), &schema);
            let name = schema.source.clone();
            let status = merge_status(
                snapshot.sources.get(&name).map(|e| &e.status),
                SourceStatus::Ready { since: Utc::now() },
            );
            snapshot.sources.insert(
                name.clone(),
                SourceEntry {
                    name,
                    kind: schema.kind,
                    status,
                    schema: Some(Arc::new(schema)),
                },
            );
            Ok(diff)
        })
    }

    /// Records the outcome of contacting a source. The model is kept either
    /// way. A status keeps the time it began (`since`), and nothing is
    /// published when nothing changed, so periodic checks of a healthy
    /// source do not wake subscribers.
    pub fn set_status(&self, name: &str, status: SourceStatus) -> Result<(), CacheError> {
        let current = self.snapshot();
        let entry = current
            .sources
            .get(name)
            .ok_or_else(|| CacheError::UnknownSource(name.to_string()))?;
        let next = merge_status(Some(&entry.status), status);
        if next == entry.status {
            return Ok(());
        }
        self.modify(false, |snapshot| {
            let entry = snapshot
                .sources
                .get_mut(name)
                .ok_or_else(|| CacheError::UnknownSource(name.to_string()))?;
            entry.status = next;
            Ok(())
        })
    }

    /// Removes a source and its model.
    pub fn remove(&self, name: &str) -> Result<(), CacheError> {
        self.modify(true, |snapshot| {
            snapshot.sources.remove(name);
            Ok(())
        })
    }

    /// Keeps only the named sources (drops cached models of sources no longer registered).
    pub fn retain(&self, names: &[String]) -> Result<(), CacheError> {
        self.modify(true, |snapshot| {
            snapshot.sources.retain(|name, _| names.contains(name));
            Ok(())
        })
    }

    /// Sets the admin-declared relations and aliases (from the metadata store).
    pub fn set_declared(
        &self,
        relations: Vec<Relation>,
        aliases: BTreeMap<TableRef, String>,
    ) -> Result<(), CacheError> {
        self.modify(false, |snapshot| {
            snapshot.declared_relations = relations;
            snapshot.aliases = aliases;
            Ok(())
        })
    }

    /// Copies the snapshot, applies `change`, derives names and relations,
    /// persists when `persist` is set, then publishes. Nothing is published
    /// when `change` or the save fails.
    fn modify<T>(
        &self,
        persist: bool,
        change: impl FnOnce(&mut CatalogSnapshot) -> Result<T, CacheError>,
    ) -> Result<T, CacheError> {
        let _guard = self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut next = CatalogSnapshot::clone(&self.current.load());
        let out = change(&mut next)?;
        next.version += 1;
        next.derive();
        if persist {
            let sources = next
                .sources
                .iter()
                .filter_map(|(name, e)| {
                    e.schema
                        .as_ref()
                        .map(|s| (name.clone(), SourceSchema::clone(s)))
                })
                .collect();
            self.store.save(&PersistedCatalog::V1 { sources })?;
        }
        let next = Arc::new(next);
        self.current.store(next.clone());
        self.changes.send_replace(next);
        Ok(out)
    }
}
