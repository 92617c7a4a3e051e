//! The audit log: every admin action (and, once the write APIs exist,
//! every write) as an append-only row in the metadata store — who (key id,
//! user id, role), when, what (action, collection or target, details such
//! as affected counts or the source's SQL fingerprint) and the outcome —
//! and as a structured log line (`target: "audit"`).

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::auth::Principal;
use crate::metadata::MetadataStore;
use crate::state::AppState;

/// One audit row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Assigned by the store (increasing).
    #[serde(default)]
    pub id: i64,
    pub at: DateTime<Utc>,
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// `admin.<method> <route>` for admin calls, `write.<operation>` for writes.
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collection: Option<String>,
    /// What the action was applied to (the request path, affected keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub detail: Value,
    /// The HTTP status answered.
    pub status: u16,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    Denied,
    Failed,
}

impl Outcome {
    pub fn from_status(status: u16) -> Self {
        match status {
            0..=399 => Self::Ok,
            401 | 403 => Self::Denied,
            _ => Self::Failed,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Denied => "denied",
            Self::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Ok, Self::Denied, Self::Failed]
            .into_iter()
            .find(|o| o.as_str() == text)
    }
}

/// Writes audit entries to the store on a thread of its own, in batches:
/// the entries of concurrent requests share one transaction, so one disk
/// sync, and no request's runtime thread waits on the disk.
pub struct AuditWriter {
    queue: std::sync::Mutex<std::sync::mpsc::Sender<Pending>>,
}

type Pending = (AuditEntry, tokio::sync::oneshot::Sender<()>);

/// Most entries one transaction takes.
const BATCH: usize = 512;

impl AuditWriter {
    /// Starts the writer; it stops when the writer is dropped.
    pub fn start(store: Arc<dyn MetadataStore>) -> std::io::Result<Self> {
        let (queue, pending) = std::sync::mpsc::channel::<Pending>();
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || {
                while let Ok(first) = pending.recv() {
                    let mut batch = vec![first];
                    batch.extend(pending.try_iter().take(BATCH - 1));
                    let (entries, acks): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
                    // The store's calls finish without awaiting anything.
                    if let Err(error) = futures::executor::block_on(store.append_audit(&entries)) {
                        tracing::error!(%error, entries = entries.len(), "cannot write the audit log");
                    }
                    for ack in acks {
                        let _ = ack.send(());
                    }
                }
            })?;
        Ok(Self {
            queue: std::sync::Mutex::new(queue),
        })
    }

    /// Queues entries and waits until they are in the store (queued
    /// together, they share one transaction: one disk sync).
    async fn append(&self, entries: Vec<AuditEntry>) {
        let mut written = Vec::with_capacity(entries.len());
        {
            let queue = self
                .queue
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for entry in entries {
                let (ack, done) = tokio::sync::oneshot::channel();
                if queue.send((entry, ack)).is_err() {
                    tracing::error!("the audit writer has stopped");
                    return;
                }
                written.push(done);
            }
        }
        for done in written {
            let _ = done.await;
        }
    }
}

/// Writes an entry to the store and the log, and returns once it is
/// stored. A store failure is logged, never answered to the caller whose
/// action already happened.
pub async fn record(state: &AppState, entry: AuditEntry) {
    record_all(state, vec![entry]).await;
}

/// Writes a request's entries (a GraphQL request's mutation fields) as
/// [`record`] does, waiting for one disk sync rather than one each.
pub async fn record_all(state: &AppState, entries: Vec<AuditEntry>) {
    for entry in &entries {
        tracing::info!(
            target: "audit",
            role = %entry.role,
            key_id = entry.key_id.as_deref().unwrap_or(""),
            user_id = entry.user_id.as_deref().unwrap_or(""),
            action = %entry.action,
            collection = entry.collection.as_deref().unwrap_or(""),
            target = entry.target.as_deref().unwrap_or(""),
            status = entry.status,
            outcome = entry.outcome.as_str(),
            detail = %entry.detail,
        );
    }
    state.audit.append(entries).await;
}

/// Middleware on the admin routes: every call that changes something
/// (any method but GET and HEAD) is audited with its outcome.
pub async fn admin_actions(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if matches!(*request.method(), Method::GET | Method::HEAD) {
        return next.run(request).await;
    }
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().map_or_else(
        || request.uri().path().to_string(),
        |m| m.as_str().to_string(),
    );
    let path = request.uri().path().to_string();
    let principal = request.extensions().get::<Principal>().cloned();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let Some(who) = principal else {
        return response;
    };
    record(
        &state,
        AuditEntry {
            id: 0,
            at: Utc::now(),
            role: who.role.clone(),
            key_id: who.key_id.clone(),
            user_id: who.user_id.clone(),
            action: format!("admin.{} {route}", method.as_str().to_lowercase()),
            collection: None,
            target: Some(path),
            detail: Value::Null,
            status,
            outcome: Outcome::from_status(status),
        },
    )
    .await;
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{AuditQuery, SqliteMetadataStore};

    fn entry(i: usize) -> AuditEntry {
        AuditEntry {
            id: 0,
            at: Utc::now(),
            role: "r".into(),
            key_id: None,
            user_id: Some(format!("u{i}")),
            action: "write.insert".into(),
            collection: Some("c".into()),
            target: None,
            detail: Value::Null,
            status: 201,
            outcome: Outcome::Ok,
        }
    }

    /// Concurrent entries are all stored (in batches), each before its
    /// `append` returns, in a file store as the server uses.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_entries_are_all_stored_before_append_returns() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn MetadataStore> =
            Arc::new(SqliteMetadataStore::open(dir.path()).unwrap());
        let writer = Arc::new(AuditWriter::start(store.clone()).unwrap());
        let tasks: Vec<_> = (0..300)
            .map(|i| {
                let (writer, store) = (writer.clone(), store.clone());
                tokio::spawn(async move {
                    writer.append(vec![entry(i)]).await;
                    let query = AuditQuery {
                        user_id: Some(format!("u{i}")),
                        ..AuditQuery::default()
                    };
                    store.audit(&query).await.unwrap().len()
                })
            })
            .collect();
        for task in tasks {
            assert_eq!(
                task.await.unwrap(),
                1,
                "an entry was not stored when append returned"
            );
        }
        let query = AuditQuery {
            limit: Some(1000),
            ..AuditQuery::default()
        };
        assert_eq!(store.audit(&query).await.unwrap().len(), 300);
    }

    /// A request's entries, appended together, are all stored when the
    /// append returns.
    #[tokio::test]
    async fn entries_appended_together_are_all_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn MetadataStore> =
            Arc::new(SqliteMetadataStore::open(dir.path()).unwrap());
        let writer = AuditWriter::start(store.clone()).unwrap();
        writer.append((0..3).map(entry).collect()).await;
        let stored = store.audit(&AuditQuery::default()).await.unwrap();
        let mut users: Vec<_> = stored.iter().filter_map(|e| e.user_id.clone()).collect();
        users.sort();
        assert_eq!(users, ["u0", "u1", "u2"]);
    }
}
