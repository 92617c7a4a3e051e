//! The live sources: one connector per registered source, and the operations
//! that change them — register, re-configure, remove, test, refresh, drift
//! checks — each keeping the metadata store, the schema cache and the
//! connectors in step (a failed operation leaves nothing behind).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde::Serialize;
use tributary_connector::{
    Connector, ConnectorError, Drift, PingInfo, PoolStatus, Secret, SourceConfig,
};
use tributary_connector_mysql::MySqlConnector;
use tributary_connector_postgres::PostgresConnector;
use tributary_connector_sqlite::SqliteConnector;
use tributary_connector_sqlserver::SqlServerConnector;
use tributary_schema_cache::{CacheError, CatalogDiff, SchemaCache, SourceKind, SourceStatus};

use crate::admission::{CallerUse, Fair, Gate};
use crate::metadata::{MetadataError, MetadataStore};
use crate::metrics::{Metrics, RefreshOutcome};

/// Why a source operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("a source named `{0}` already exists")]
    Duplicate(String),
    #[error("unknown source `{0}`")]
    Unknown(String),
    /// The given configuration is not usable (before any connection).
    #[error("{0}")]
    InvalidConfig(ConnectorError),
    /// Connecting with a new configuration failed (registration or re-configuration).
    #[error("{0}")]
    Connect(ConnectorError),
    /// A registered source failed while being used.
    #[error("{0}")]
    Source(ConnectorError),
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error(transparent)]
    Cache(#[from] CacheError),
}

/// Creates the connector for a config, its requests admitted in fair turns
/// among callers ([`crate::admission`]). No I/O: pools connect lazily.
pub fn create_connector(config: &SourceConfig) -> Result<Fair, ConnectorError> {
    Ok(crate::admission::fair(
        connect(config)?,
        config.pool.acquire_timeout(),
        config.pool.max_per_caller,
    ))
}

/// The kind's own connector.
fn connect(config: &SourceConfig) -> Result<Arc<dyn Connector>, ConnectorError> {
    Ok(match config.kind {
        // KingbaseES speaks the PostgreSQL protocol: the same connector, in
        // its Kingbase flavor (chosen from the kind).
        SourceKind::Postgres | SourceKind::Kingbase => Arc::new(PostgresConnector::new(config)?),
        SourceKind::Mysql | SourceKind::Mariadb => Arc::new(MySqlConnector::new(config)?),
        SourceKind::Sqlite => Arc::new(SqliteConnector::new(config)?),
        // Without the `oracle` feature this answers a config error saying how
        // to build with Oracle support.
        SourceKind::Oracle => tributary_connector_oracle::create_connector(config)?,
        SourceKind::Sqlserver => Arc::new(SqlServerConnector::new(config)?),
    })
}

/// A registered source: its config (with secrets) and its connector.
#[derive(Clone)]
struct Registered {
    config: SourceConfig,
    connector: Arc<dyn Connector>,
    /// Who uses the connector now ([`crate::admission`]).
    gate: Arc<Gate>,
    /// What its last ping advised (registration, update or test; none
    /// yet for a source loaded at start-up and not tested since).
    advice: Vec<String>,
}

/// A source's connections now ([`SourceManager::pool_usage`]).
#[derive(Debug, Serialize)]
pub struct PoolUsage {
    #[serde(flatten)]
    pub status: PoolStatus,
    pub callers: Vec<CallerUse>,
}

/// What registering a source did.
#[derive(Debug, Serialize)]
pub struct Registration {
    pub source: SourceConfig,
    pub ping: PingInfo,
    pub diff: CatalogDiff,
}

/// Owns the connectors and keeps store, cache and connectors consistent.
pub struct SourceManager {
    registered: RwLock<BTreeMap<String, Registered>>,
    cache: Arc<SchemaCache>,
    store: Arc<dyn MetadataStore>,
    metrics: Arc<Metrics>,
    // Admin changes run one at a time, so "check the name, then insert" is atomic.
    admin: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for SourceManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceManager")
            .field("sources", &self.names())
            .finish()
    }
}

impl SourceManager {
    pub fn new(
        cache: Arc<SchemaCache>,
        store: Arc<dyn MetadataStore>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            registered: RwLock::new(BTreeMap::new()),
            cache,
            store,
            metrics,
            admin: tokio::sync::Mutex::new(()),
        }
    }

    /// Loads every stored source and creates its connector without contacting
    /// any database; cached models are served at once. Sources whose stored
    /// config no longer makes a connector are kept, marked unavailable.
    pub async fn load(&self) -> Result<(), SourceError> {
        let configs = self.store.sources().await?;
        let names: Vec<String> = configs.iter().map(|c| c.name.clone()).collect();
        for config in configs {
            self.cache.register(&config.name, config.kind);
            match create_connector(&config) {
                Ok(Fair { connector, gate }) => {
                    self.write_registry().insert(
                        config.name.clone(),
                        Registered {
                            config,
                            connector,
                            gate,
                            advice: Vec::new(),
                        },
                    );
                }
                Err(error) => {
                    tracing::error!(source = %config.name, %error, "stored source cannot be loaded");
                    self.cache.set_status(&config.name, unavailable(&error))?;
                }
            }
        }
        self.cache.retain(&names)?;
        self.reload_declared().await
    }

    /// Names of the registered sources.
    pub fn names(&self) -> Vec<String> {
        self.read_registry().keys().cloned().collect()
    }

    /// The config of a source with its password redacted.
    pub fn config(&self, name: &str) -> Option<SourceConfig> {
        self.read_registry().get(name).map(|r| r.config.redacted())
    }

    /// What the source's last ping advised its admin.
    pub fn advice(&self, name: &str) -> Vec<String> {
        self.read_registry()
            .get(name)
            .map(|r| r.advice.clone())
            .unwrap_or_default()
    }

    /// How a source's connections are used now: its pool's counts and the
    /// callers using it, the busiest first.
    pub fn pool_usage(&self, name: &str) -> Option<PoolUsage> {
        self.read_registry().get(name).map(|r| PoolUsage {
            status: r.connector.pool_status(),
            callers: r.gate.callers(),
        })
    }

    /// Every source's config, passwords redacted.
    pub fn configs(&self) -> Vec<SourceConfig> {
        self.read_registry()
            .values()
            .map(|r| r.config.redacted())
            .collect()
    }

    /// The connector of a source.
    pub fn connector(&self, name: &str) -> Result<Arc<dyn Connector>, SourceError> {
        self.read_registry()
            .get(name)
            .map(|r| r.connector.clone())
            .ok_or_else(|| SourceError::Unknown(name.to_string()))
    }

    /// Every connector with its name (for metrics and health).
    pub fn connectors(&self) -> Vec<(String, Arc<dyn Connector>)> {
        self.read_registry()
            .iter()
            .map(|(n, r)| (n.clone(), r.connector.clone()))
            .collect()
    }

    /// Registers a new source: checks the config, connects, introspects, then
    /// stores it. Nothing is stored unless every step succeeded.
    pub async fn register(&self, mut config: SourceConfig) -> Result<Registration, SourceError> {
        let _admin = self.admin.lock().await;
        config.normalize().map_err(SourceError::InvalidConfig)?;
        if self.read_registry().contains_key(&config.name) {
            return Err(SourceError::Duplicate(config.name));
        }
        let (Fair { connector, gate }, ping, schema) = connect_and_introspect(&config).await?;
        if !self.store.insert_source(&config).await? {
            return Err(SourceError::Duplicate(config.name));
        }
        // The connector goes in before the model, so whoever sees the new
        // catalog also finds its connector.
        let registered = Registered {
            config: config.clone(),
            connector,
            gate,
            advice: ping.advice.clone(),
        };
        self.write_registry()
            .insert(config.name.clone(), registered);
        let diff = match self.cache.install(schema) {
            Ok(diff) => diff,
            Err(error) => {
                self.write_registry().remove(&config.name);
                self.store.delete_source(&config.name).await?;
                return Err(error.into());
            }
        };
        self.metrics.refresh(&config.name, RefreshOutcome::Changed);
        tracing::info!(source = %config.name, kind = %config.kind, "source registered");
        Ok(Registration {
            source: config.redacted(),
            ping,
            diff,
        })
    }

    /// Changes a source's config with a JSON merge patch (RFC 7386). A new
    /// `connection.url` replaces every connection field; an omitted (or
    /// `[REDACTED]`) password keeps the stored one. The new config must connect and introspect
    /// before anything is changed.
    pub async fn update(
        &self,
        name: &str,
        patch: serde_json::Value,
    ) -> Result<Registration, SourceError> {
        let _admin = self.admin.lock().await;
        let current = self.read_registry().get(name).map(|r| r.config.clone());
        let current = current.ok_or_else(|| SourceError::Unknown(name.to_string()))?;
        let mut merged = serde_json::to_value(&current)
            .map_err(|e| SourceError::InvalidConfig(ConnectorError::internal(e.to_string())))?;
        let mut patch = patch;
        // A config read back from the API carries the redaction marker: it
        // means "unchanged", never a new password.
        let marker = patch
            .pointer("/connection/password")
            .and_then(serde_json::Value::as_str)
            == Some(Secret::REDACTED);
        if let (true, Some(connection)) = (
            marker,
            patch
                .pointer_mut("/connection")
                .and_then(serde_json::Value::as_object_mut),
        ) {
            connection.remove("password");
        }
        let replaces_connection = patch.pointer("/connection/url").is_some();
        if let (true, Some(object)) = (replaces_connection, merged.as_object_mut()) {
            object.remove("connection");
        }
        merge_patch(&mut merged, &patch);
        let mut config: SourceConfig = serde_json::from_value(merged)
            .map_err(|e| SourceError::InvalidConfig(ConnectorError::config(e.to_string())))?;
        if config.name != name {
            return Err(SourceError::InvalidConfig(ConnectorError::config(
                "a source cannot be renamed",
            )));
        }
        config.normalize().map_err(SourceError::InvalidConfig)?;
        let (Fair { connector, gate }, ping, schema) = connect_and_introspect(&config).await?;
        if !self.store.update_source(&config).await? {
            return Err(SourceError::Unknown(name.to_string()));
        }
        let registered = Registered {
            config: config.clone(),
            connector,
            gate,
            advice: ping.advice.clone(),
        };
        let previous = self.write_registry().insert(name.to_string(), registered);
        let diff = match self.cache.install(schema) {
            Ok(diff) => diff,
            Err(error) => {
                if let Some(previous) = previous {
                    self.write_registry().insert(name.to_string(), previous);
                }
                self.store.update_source(&current).await?;
                return Err(error.into());
            }
        };
        Ok(Registration {
            source: config.redacted(),
            ping,
            diff,
        })
    }

    /// Removes a source, its cached model, and the relations and aliases
    /// that mention it.
    pub async fn remove(&self, name: &str) -> Result<(), SourceError> {
        let _admin = self.admin.lock().await;
        if !self.store.delete_source(name).await? {
            return Err(SourceError::Unknown(name.to_string()));
        }
        self.write_registry().remove(name);
        self.cache.remove(name)?;
        self.metrics.forget_source(name);
        self.reload_declared().await?;
        tracing::info!(source = %name, "source removed");
        Ok(())
    }

    /// Pings a source and records the outcome in the catalog.
    pub async fn test(&self, name: &str) -> Result<PingInfo, SourceError> {
        let connector = self.connector(name)?;
        match connector.ping().await.map_err(|e| e.for_source(name)) {
            Ok(ping) => {
                self.cache.set_status(
                    name,
                    SourceStatus::Ready {
                        since: chrono::Utc::now(),
                    },
                )?;
                if let Some(registered) = self.write_registry().get_mut(name) {
                    registered.advice.clone_from(&ping.advice);
                }
                Ok(ping)
            }
            Err(error) => {
                self.cache.set_status(name, unavailable(&error))?;
                Err(SourceError::Source(error))
            }
        }
    }

    /// Introspects a source again and swaps its part of the catalog; returns
    /// what changed. The database's settings may have changed too: its
    /// advice is asked again. On failure the cached model stays, marked
    /// unavailable.
    pub async fn refresh(&self, name: &str) -> Result<CatalogDiff, SourceError> {
        let connector = self.connector(name)?;
        match connector.introspect().await.map_err(|e| e.for_source(name)) {
            Ok(schema) => {
                if let Ok(ping) = connector.ping().await
                    && let Some(registered) = self.write_registry().get_mut(name)
                {
                    registered.advice = ping.advice;
                }
                let diff = self.cache.install(schema)?;
                let outcome = if diff.is_empty() {
                    RefreshOutcome::Unchanged
                } else {
                    RefreshOutcome::Changed
                };
                self.metrics.refresh(name, outcome);
                if !diff.is_empty() {
                    tracing::info!(source = %name, ?diff, "catalog changed");
                }
                Ok(diff)
            }
            Err(error) => {
                self.metrics.refresh(name, RefreshOutcome::Failed);
                self.cache.set_status(name, unavailable(&error))?;
                Err(SourceError::Source(error))
            }
        }
    }

    /// The cheap check: compares the source's per-table fingerprints with the
    /// catalog and introspects again only when they differ (or when there is
    /// no model yet). Returns the diff when a refresh ran.
    pub async fn check_drift(&self, name: &str) -> Result<Option<CatalogDiff>, SourceError> {
        let connector = self.connector(name)?;
        let cached = self
            .cache
            .snapshot()
            .sources
            .get(name)
            .and_then(|e| e.schema.clone());
        let Some(cached) = cached else {
            return self.refresh(name).await.map(Some);
        };
        match connector
            .drift_fingerprints()
            .await
            .map_err(|e| e.for_source(name))
        {
            Ok(current) => {
                let drift = Drift::detect(&cached, &current);
                if drift.is_empty() {
                    self.cache.set_status(
                        name,
                        SourceStatus::Ready {
                            since: chrono::Utc::now(),
                        },
                    )?;
                    self.metrics.refresh(name, RefreshOutcome::Unchanged);
                    Ok(None)
                } else {
                    tracing::info!(source = %name, ?drift, "schema drift detected");
                    self.refresh(name).await.map(Some)
                }
            }
            Err(error) => {
                self.metrics.refresh(name, RefreshOutcome::Failed);
                self.cache.set_status(name, unavailable(&error))?;
                Err(SourceError::Source(error))
            }
        }
    }

    /// Drift-checks every source once, concurrently; failures are logged and
    /// recorded in the catalog, never fatal.
    pub async fn check_all(&self) {
        let checks = self.names().into_iter().map(|name| async move {
            if let Err(error) = self.check_drift(&name).await {
                tracing::warn!(source = %name, %error, "source check failed");
            }
        });
        futures::future::join_all(checks).await;
    }

    /// Re-reads declared relations and aliases into the catalog.
    pub async fn reload_declared(&self) -> Result<(), SourceError> {
        let relations = self.store.relations().await?;
        let aliases = self.store.aliases().await?;
        self.cache.set_declared(relations, aliases)?;
        Ok(())
    }

    fn read_registry(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Registered>> {
        self.registered
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write_registry(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Registered>> {
        self.registered
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

async fn connect_and_introspect(
    config: &SourceConfig,
) -> Result<(Fair, PingInfo, tributary_schema_cache::SourceSchema), SourceError> {
    let fair = create_connector(config).map_err(SourceError::InvalidConfig)?;
    let connector = &fair.connector;
    // Connectors name the source in their errors; this makes sure of it.
    let named = |e: ConnectorError| SourceError::Connect(e.for_source(&config.name));
    let ping = connector.ping().await.map_err(named)?;
    for advice in &ping.advice {
        tracing::warn!(source = %config.name, "{advice}");
    }
    let schema = connector.introspect().await.map_err(named)?;
    Ok((fair, ping, schema))
}

fn unavailable(error: &ConnectorError) -> SourceStatus {
    SourceStatus::Unavailable {
        error: error.to_string(),
        since: chrono::Utc::now(),
    }
}

/// RFC 7386 JSON merge patch: objects merge recursively, `null` deletes, anything else replaces.
fn merge_patch(target: &mut serde_json::Value, patch: &serde_json::Value) {
    let serde_json::Value::Object(patch_fields) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = serde_json::Value::Object(serde_json::Map::new());
    }
    if let serde_json::Value::Object(fields) = target {
        for (key, value) in patch_fields {
            if value.is_null() {
                fields.remove(key);
            } else {
                merge_patch(
                    fields.entry(key.clone()).or_insert(serde_json::Value::Null),
                    value,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut doc = json!({"a": {"b": 1, "c": 2}, "d": [1], "e": "x"});
        merge_patch(
            &mut doc,
            &json!({"a": {"b": null, "z": 3}, "d": [2], "e": null}),
        );
        assert_eq!(doc, json!({"a": {"c": 2, "z": 3}, "d": [2]}));
    }
}
