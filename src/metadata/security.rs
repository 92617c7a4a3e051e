//! The security half of the metadata store: API keys (hashes only),
//! permission rules and the append-only audit log.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row, params};

use super::{MetadataError, SqliteMetadataStore, from_json, is_unique_violation, to_json};
use crate::audit::{AuditEntry, Outcome};
use crate::auth::keys::{ApiKey, BOOTSTRAP_ID};
use crate::permissions::{Action, Permission};

/// Migration 2: keys, permissions, audit log (which refuses updates and deletes).
pub(super) const MIGRATION: &str = r"
CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    hash          TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL,
    user_id       TEXT,
    claims        TEXT NOT NULL,
    prefix        TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    expires_at    TEXT,
    revoked_at    TEXT,
    rotated_from  TEXT
);
CREATE TABLE permissions (
    role        TEXT NOT NULL,
    collection  TEXT NOT NULL,
    action      TEXT NOT NULL,
    rule        TEXT NOT NULL,
    updated_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (role, collection, action)
);
CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          TEXT NOT NULL,
    role        TEXT NOT NULL,
    key_id      TEXT,
    user_id     TEXT,
    action      TEXT NOT NULL,
    collection  TEXT,
    target      TEXT,
    detail      TEXT NOT NULL,
    status      INTEGER NOT NULL,
    outcome     TEXT NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
";

/// Which audit rows to read (all filters optional), newest first.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub role: Option<String>,
    pub key_id: Option<String>,
    pub user_id: Option<String>,
    /// Rows whose action starts with this (`admin.`, `write.insert`).
    pub action: Option<String>,
    pub collection: Option<String>,
    pub outcome: Option<String>,
    /// Rows with a smaller id (the next page).
    pub before: Option<i64>,
    pub limit: Option<u32>,
}

impl AuditQuery {
    pub const DEFAULT_LIMIT: u32 = 100;
    pub const MAX_LIMIT: u32 = 1000;

    /// The page size: `limit`, else the default, at most the maximum.
    pub fn page_size(&self) -> u32 {
        self.limit
            .unwrap_or(Self::DEFAULT_LIMIT)
            .clamp(1, Self::MAX_LIMIT)
    }
}

/// Keys, permissions and the audit log.
#[async_trait]
pub trait SecurityStore: Send + Sync {
    /// Adds a key with the hash of its secret.
    async fn insert_key(&self, key: &ApiKey, hash: &str) -> Result<(), MetadataError>;
    /// The key whose secret hashes to `hash` (active or not).
    async fn key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>, MetadataError>;
    /// The key with this id (active or not).
    async fn key(&self, id: &str) -> Result<Option<ApiKey>, MetadataError>;
    async fn keys(&self) -> Result<Vec<ApiKey>, MetadataError>;
    /// Marks a key revoked; `Ok(false)` when there is no such key.
    async fn revoke_key(&self, id: &str, at: DateTime<Utc>) -> Result<bool, MetadataError>;
    /// Adds `new` and makes `old_id` expire at `old_expires_at`, in one
    /// transaction; `Ok(false)` when the old key is unknown or not active.
    async fn rotate_key(
        &self,
        old_id: &str,
        old_expires_at: DateTime<Utc>,
        new: &ApiKey,
        new_hash: &str,
    ) -> Result<bool, MetadataError>;
    /// Stores the configured bootstrap admin token as the `bootstrap` key
    /// (admin role). A new token replaces the old one's hash and makes the
    /// key active again; the same token leaves a revoked key revoked.
    async fn set_bootstrap_key(&self, hash: &str) -> Result<(), MetadataError>;

    async fn permissions(&self) -> Result<Vec<Permission>, MetadataError>;
    /// Inserts or replaces the rule of (role, collection, action).
    async fn set_permission(&self, permission: &Permission) -> Result<(), MetadataError>;
    async fn delete_permission(
        &self,
        role: &str,
        collection: &str,
        action: Action,
    ) -> Result<bool, MetadataError>;

    /// Appends entries in one transaction (one disk sync for all).
    async fn append_audit(&self, entries: &[AuditEntry]) -> Result<(), MetadataError>;
    async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, MetadataError>;
}

const KEY_COLUMNS: &str =
    "id, name, role, user_id, claims, prefix, created_at, expires_at, revoked_at, rotated_from";

fn time(text: Option<String>) -> Result<Option<DateTime<Utc>>, MetadataError> {
    text.map(|t| {
        DateTime::parse_from_rfc3339(&t)
            .map(|d| d.with_timezone(&Utc))
            .map_err(|e| MetadataError::Corrupt(format!("timestamp `{t}`: {e}")))
    })
    .transpose()
}

fn text(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// A key from a row of `SELECT {KEY_COLUMNS}`.
fn key_row(r: &Row<'_>) -> rusqlite::Result<ApiKey> {
    let invalid = |index: usize, e: MetadataError| {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, Box::new(e))
    };
    let at = |index: usize| -> rusqlite::Result<Option<DateTime<Utc>>> {
        time(r.get(index)?).map_err(|e| invalid(index, e))
    };
    Ok(ApiKey {
        id: r.get(0)?,
        name: r.get(1)?,
        role: r.get(2)?,
        user_id: r.get(3)?,
        claims: from_json(&r.get::<_, String>(4)?).map_err(|e| invalid(4, e))?,
        prefix: r.get(5)?,
        created_at: at(6)?.unwrap_or_default(),
        expires_at: at(7)?,
        revoked_at: at(8)?,
        rotated_from: r.get(9)?,
    })
}

/// The key whose `column` (`id` or `hash`) is `value`.
fn find_key(
    c: &rusqlite::Connection,
    column: &str,
    value: &str,
) -> Result<Option<ApiKey>, MetadataError> {
    // Cached: the lookup by hash runs on every authenticated request.
    let mut statement = c.prepare_cached(&format!(
        "SELECT {KEY_COLUMNS} FROM api_keys WHERE {column} = ?1"
    ))?;
    Ok(statement.query_row([value], key_row).optional()?)
}

fn insert_key(c: &rusqlite::Connection, key: &ApiKey, hash: &str) -> Result<(), MetadataError> {
    c.execute(
        &format!("INSERT INTO api_keys (hash, {KEY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"),
        params![
            hash,
            key.id,
            key.name,
            key.role,
            key.user_id,
            to_json(&key.claims)?,
            key.prefix,
            text(key.created_at),
            key.expires_at.map(text),
            key.revoked_at.map(text),
            key.rotated_from,
        ],
    )
    .map_err(|e| {
        if is_unique_violation(&e) {
            MetadataError::Corrupt(format!("key id `{}` or its hash already exists", key.id))
        } else {
            e.into()
        }
    })?;
    Ok(())
}

#[async_trait]
impl SecurityStore for SqliteMetadataStore {
    async fn insert_key(&self, key: &ApiKey, hash: &str) -> Result<(), MetadataError> {
        self.with(|c| insert_key(c, key, hash))?;
        self.key_cache.changed();
        Ok(())
    }

    async fn key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>, MetadataError> {
        let stamp = match self.key_cache.get(hash) {
            Ok(key) => return Ok(Some(key)),
            Err(stamp) => stamp,
        };
        let key = self.read(|c| find_key(c, "hash", hash))?;
        match &key {
            Some(key) => self.key_cache.insert(hash, key, stamp),
            // Gone behind our back (a writer died before its marker byte):
            // the entry the other lookups were still using goes too.
            None => self.key_cache.remove(hash),
        }
        Ok(key)
    }

    async fn key(&self, id: &str) -> Result<Option<ApiKey>, MetadataError> {
        self.with(|c| find_key(c, "id", id))
    }

    async fn keys(&self) -> Result<Vec<ApiKey>, MetadataError> {
        self.with(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at, id"
            ))?;
            let rows = stmt.query_map([], key_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    async fn revoke_key(&self, id: &str, at: DateTime<Utc>) -> Result<bool, MetadataError> {
        let revoked = self.with(|c| {
            let found: Option<Option<String>> = c
                .query_row("SELECT revoked_at FROM api_keys WHERE id = ?1", [id], |r| {
                    r.get(0)
                })
                .optional()?;
            match found {
                None => Ok(false),
                Some(Some(_)) => Ok(true),
                Some(None) => {
                    c.execute(
                        "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1",
                        params![id, text(at)],
                    )?;
                    Ok(true)
                }
            }
        })?;
        self.key_cache.changed();
        Ok(revoked)
    }

    async fn rotate_key(
        &self,
        old_id: &str,
        old_expires_at: DateTime<Utc>,
        new: &ApiKey,
        new_hash: &str,
    ) -> Result<bool, MetadataError> {
        let rotated = self.with(|c| {
            let tx = c.transaction()?;
            let old = find_key(&tx, "id", old_id)?;
            let Some(old) = old.filter(|k| k.is_active(Utc::now())) else {
                return Ok(false);
            };
            // The grace period never extends a key past its own expiry.
            let until = old
                .expires_at
                .map_or(old_expires_at, |e| e.min(old_expires_at));
            tx.execute(
                "UPDATE api_keys SET expires_at = ?2 WHERE id = ?1",
                params![old_id, text(until)],
            )?;
            insert_key(&tx, new, new_hash)?;
            tx.commit()?;
            Ok(true)
        })?;
        self.key_cache.changed();
        Ok(rotated)
    }

    async fn set_bootstrap_key(&self, hash: &str) -> Result<(), MetadataError> {
        let changed = self.with(|c| {
            let stored: Option<String> = c
                .query_row(
                    "SELECT hash FROM api_keys WHERE id = ?1",
                    [BOOTSTRAP_ID],
                    |r| r.get(0),
                )
                .optional()?;
            match stored {
                Some(old) if old == hash => Ok(false),
                Some(_) => {
                    c.execute(
                        "UPDATE api_keys SET hash = ?2, revoked_at = NULL, expires_at = NULL \
                         WHERE id = ?1",
                        params![BOOTSTRAP_ID, hash],
                    )?;
                    Ok(true)
                }
                None => {
                    let key = ApiKey {
                        id: BOOTSTRAP_ID.into(),
                        name: "bootstrap admin token".into(),
                        role: crate::permissions::ADMIN_ROLE.into(),
                        user_id: None,
                        claims: serde_json::Value::Null,
                        prefix: String::new(),
                        created_at: Utc::now(),
                        expires_at: None,
                        revoked_at: None,
                        rotated_from: None,
                    };
                    insert_key(c, &key, hash)?;
                    Ok(true)
                }
            }
        })?;
        if changed {
            self.key_cache.changed();
        }
        Ok(())
    }

    async fn permissions(&self) -> Result<Vec<Permission>, MetadataError> {
        // On a reader: read every second by the rules loop (app.rs).
        self.read(|c| {
            let mut stmt = c.prepare(
                "SELECT role, collection, action, rule FROM permissions \
                 ORDER BY role, collection, action",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })?;
            rows.map(|row| {
                let (role, collection, action, rule) = row?;
                Ok(Permission {
                    role,
                    collection,
                    action: Action::parse(&action)
                        .ok_or_else(|| MetadataError::Corrupt(format!("action `{action}`")))?,
                    rule: from_json(&rule)?,
                })
            })
            .collect()
        })
    }

    async fn set_permission(&self, permission: &Permission) -> Result<(), MetadataError> {
        let rule = to_json(&permission.rule)?;
        self.with(|c| {
            c.execute(
                "INSERT INTO permissions (role, collection, action, rule) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (role, collection, action) DO UPDATE SET rule = excluded.rule, \
                 updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
                params![
                    permission.role,
                    permission.collection,
                    permission.action.as_str(),
                    rule
                ],
            )?;
            Ok(())
        })
    }

    async fn delete_permission(
        &self,
        role: &str,
        collection: &str,
        action: Action,
    ) -> Result<bool, MetadataError> {
        self.with(|c| {
            Ok(c.execute(
                "DELETE FROM permissions WHERE role = ?1 AND collection = ?2 AND action = ?3",
                params![role, collection, action.as_str()],
            )? == 1)
        })
    }

    async fn append_audit(&self, entries: &[AuditEntry]) -> Result<(), MetadataError> {
        let details = entries
            .iter()
            .map(|e| to_json(&e.detail))
            .collect::<Result<Vec<_>, _>>()?;
        self.with(|c| {
            let tx = c.transaction()?;
            {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO audit_log (at, role, key_id, user_id, action, collection, \
                     target, detail, status, outcome) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )?;
                for (entry, detail) in entries.iter().zip(details) {
                    insert.execute(params![
                        text(entry.at),
                        entry.role,
                        entry.key_id,
                        entry.user_id,
                        entry.action,
                        entry.collection,
                        entry.target,
                        detail,
                        entry.status,
                        entry.outcome.as_str(),
                    ])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
    }

    async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, MetadataError> {
        let limit = query.page_size();
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT id, at, role, key_id, user_id, action, collection, target, detail, \
                 status, outcome FROM audit_log WHERE \
                 (?1 IS NULL OR at >= ?1) AND (?2 IS NULL OR at < ?2) AND \
                 (?3 IS NULL OR role = ?3) AND (?4 IS NULL OR key_id = ?4) AND \
                 (?5 IS NULL OR user_id = ?5) AND \
                 (?6 IS NULL OR substr(action, 1, length(?6)) = ?6) AND \
                 (?7 IS NULL OR collection = ?7) AND (?8 IS NULL OR outcome = ?8) AND \
                 (?9 IS NULL OR id < ?9) ORDER BY id DESC LIMIT ?10",
            )?;
            let rows = stmt.query_map(
                params![
                    query.since.map(text),
                    query.until.map(text),
                    query.role,
                    query.key_id,
                    query.user_id,
                    query.action,
                    query.collection,
                    query.outcome,
                    query.before,
                    limit,
                ],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, Option<String>>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, Option<String>>(6)?,
                        r.get::<_, Option<String>>(7)?,
                        r.get::<_, String>(8)?,
                        r.get::<_, u16>(9)?,
                        r.get::<_, String>(10)?,
                    ))
                },
            )?;
            rows.map(|row| {
                let (
                    id,
                    at,
                    role,
                    key_id,
                    user_id,
                    action,
                    collection,
                    target,
                    detail,
                    status,
                    outcome,
                ) = row?;
                Ok(AuditEntry {
                    id,
                    at: time(Some(at))?.unwrap_or_default(),
                    role,
                    key_id,
                    user_id,
                    action,
                    collection,
                    target,
                    detail: from_json(&detail)?,
                    status,
                    outcome: Outcome::parse(&outcome)
                        .ok_or_else(|| MetadataError::Corrupt(format!("outcome `{outcome}`")))?,
                })
            })
            .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::keys;
    use serde_json::Value;

    #[tokio::test]
    async fn keys_are_found_by_hash_revoked_and_rotated() {
        let store = SqliteMetadataStore::in_memory().unwrap();
        let (key, secret) = keys::create("ci".into(), "reader".into(), None, Value::Null, None);
        store.insert_key(&key, &keys::hash(&secret)).await.unwrap();
        assert_eq!(
            store.key_by_hash(&keys::hash(&secret)).await.unwrap(),
            Some(key.clone())
        );
        assert_eq!(store.key_by_hash(&keys::hash("nope")).await.unwrap(), None);

        let (mut new, new_secret) =
            keys::create("ci".into(), "reader".into(), None, Value::Null, None);
        new.rotated_from = Some(key.id.clone());
        let grace = Utc::now() + chrono::Duration::seconds(60);
        assert!(
            store
                .rotate_key(&key.id, grace, &new, &keys::hash(&new_secret))
                .await
                .unwrap()
        );
        let old = store
            .key_by_hash(&keys::hash(&secret))
            .await
            .unwrap()
            .unwrap();
        assert!(
            old.expires_at
                .is_some_and(|e| (e - grace).num_milliseconds().abs() < 1)
        );

        assert!(store.revoke_key(&new.id, Utc::now()).await.unwrap());
        assert!(!store.revoke_key("missing", Utc::now()).await.unwrap());
        let revoked = store
            .key_by_hash(&keys::hash(&new_secret))
            .await
            .unwrap()
            .unwrap();
        assert!(!revoked.is_active(Utc::now()));
        assert!(
            !store
                .rotate_key(&new.id, grace, &key, "other-hash")
                .await
                .unwrap(),
            "a revoked key cannot be rotated"
        );
    }

    #[tokio::test]
    async fn a_file_store_reads_keys_from_its_readers_as_soon_as_they_change() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteMetadataStore::open(dir.path()).unwrap();
        let (key, secret) = keys::create("ci".into(), "reader".into(), None, Value::Null, None);
        let hash = keys::hash(&secret);
        store.insert_key(&key, &hash).await.unwrap();
        // Every reader (lookups go round the pool) sees the new key, then its revocation.
        for _ in 0..SqliteMetadataStore::READERS {
            assert_eq!(store.key_by_hash(&hash).await.unwrap(), Some(key.clone()));
        }
        store.revoke_key(&key.id, Utc::now()).await.unwrap();
        for _ in 0..SqliteMetadataStore::READERS {
            let found = store.key_by_hash(&hash).await.unwrap().unwrap();
            assert!(found.revoked_at.is_some());
        }
    }

    #[tokio::test]
    async fn a_key_changed_through_another_store_on_the_same_file_is_seen_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let (first, second) = (
            SqliteMetadataStore::open(dir.path()).unwrap(),
            SqliteMetadataStore::open(dir.path()).unwrap(),
        );
        let (key, secret) = keys::create("ci".into(), "reader".into(), None, Value::Null, None);
        let hash = keys::hash(&secret);
        first.insert_key(&key, &hash).await.unwrap();
        // Looked up twice: the second answer may come from memory.
        for _ in 0..2 {
            assert_eq!(second.key_by_hash(&hash).await.unwrap(), Some(key.clone()));
        }
        first.revoke_key(&key.id, Utc::now()).await.unwrap();
        let found = second.key_by_hash(&hash).await.unwrap().unwrap();
        assert!(
            found.revoked_at.is_some(),
            "a revocation on another replica holds at once"
        );
    }

    #[tokio::test]
    async fn the_bootstrap_token_is_an_admin_key_that_a_new_token_replaces() {
        let store = SqliteMetadataStore::in_memory().unwrap();
        store.set_bootstrap_key("h1").await.unwrap();
        let key = store.key_by_hash("h1").await.unwrap().unwrap();
        assert_eq!(
            (key.id.as_str(), key.role.as_str()),
            (BOOTSTRAP_ID, "admin")
        );
        store.revoke_key(BOOTSTRAP_ID, Utc::now()).await.unwrap();
        store.set_bootstrap_key("h1").await.unwrap();
        let same = store.key_by_hash("h1").await.unwrap().unwrap();
        assert!(same.revoked_at.is_some(), "the same token stays revoked");
        store.set_bootstrap_key("h2").await.unwrap();
        assert_eq!(store.key_by_hash("h1").await.unwrap(), None);
        let new = store.key_by_hash("h2").await.unwrap().unwrap();
        assert!(new.is_active(Utc::now()));
    }

    #[tokio::test]
    async fn the_audit_log_is_append_only_and_filtered() {
        let store = SqliteMetadataStore::in_memory().unwrap();
        for (i, action) in ["admin.post /admin/keys", "admin.delete /admin/keys/{id}"]
            .into_iter()
            .enumerate()
        {
            store
                .append_audit(&[AuditEntry {
                    id: 0,
                    at: Utc::now(),
                    role: "admin".into(),
                    key_id: Some(format!("k{i}")),
                    user_id: None,
                    action: action.into(),
                    collection: None,
                    target: None,
                    detail: Value::Null,
                    status: 200,
                    outcome: Outcome::Ok,
                }])
                .await
                .unwrap();
        }
        let all = store.audit(&AuditQuery::default()).await.unwrap();
        assert_eq!(all.len(), 2);
        assert!(all[0].id > all[1].id, "newest first");
        let deletes = store
            .audit(&AuditQuery {
                action: Some("admin.delete".into()),
                ..AuditQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(deletes.len(), 1);
        assert_eq!(deletes[0].key_id.as_deref(), Some("k1"));
        let err = store
            .with(|c| Ok(c.execute("DELETE FROM audit_log", [])?))
            .unwrap_err();
        assert!(err.to_string().contains("append-only"), "{err}");
        let err = store
            .with(|c| Ok(c.execute("UPDATE audit_log SET role = 'x'", [])?))
            .unwrap_err();
        assert!(err.to_string().contains("append-only"), "{err}");
    }
}
