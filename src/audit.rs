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

/// A request's entries and whom to tell once they are stored.
type Pending = (Vec<AuditEntry>, tokio::sync::oneshot::Sender<()>);

/// Entries past which a transaction takes no further request.
const BATCH: usize = 512;

/// How long a commit waits for more requests' entries when the last one
/// held at least [`BUSY`] requests' (writes are arriving at once): a disk
/// sync costs far more than the wait, and under load each one then serves
/// more requests. The wait ends early once as many requests as the last
/// commit's are in (the writers then active are all back).
const LINGER: std::time::Duration = std::time::Duration::from_millis(1);

/// Requests in one commit that show a load worth lingering for. With two
/// writers the next request is as likely to come after the linger as
/// within it: measured, lingering after every commit of two lost a
/// quarter of the throughput.
const BUSY: usize = 3;

impl AuditWriter {
    /// Starts the writer; it stops when the writer is dropped.
    pub fn start(store: Arc<dyn MetadataStore>) -> std::io::Result<Self> {
        let (queue, pending) = std::sync::mpsc::channel::<Pending>();
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || {
                let mut last = 0;
                while let Ok(first) = pending.recv() {
                    let linger = (last >= BUSY).then_some((LINGER, last));
                    let batch = gather(&pending, first, linger);
                    last = batch.len();
                    let (entries, acks): (Vec<Vec<_>>, Vec<_>) = batch.into_iter().unzip();
                    let entries: Vec<AuditEntry> = entries.into_iter().flatten().collect();
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

    /// Queues a request's entries and waits until they are in the store
    /// (queued together, they share one transaction: one disk sync).
    async fn append(&self, entries: Vec<AuditEntry>) {
        let (ack, done) = tokio::sync::oneshot::channel();
        let sent = self
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .send((entries, ack));
        if sent.is_err() {
            tracing::error!("the audit writer has stopped");
            return;
        }
        let _ = done.await;
    }
}

/// The requests one transaction takes: `first` and those already queued,
/// and with a `linger` (how long, and how many requests end it early),
/// those that arrive within it — until [`BATCH`] entries (a request's
/// entries are never split).
fn gather(
    pending: &std::sync::mpsc::Receiver<Pending>,
    first: Pending,
    linger: Option<(std::time::Duration, usize)>,
) -> Vec<Pending> {
    let mut entries = first.0.len();
    let mut batch = vec![first];
    let deadline = linger.map(|(linger, _)| std::time::Instant::now() + linger);
    let enough = linger.map_or(usize::MAX, |(_, requests)| requests);
    while entries < BATCH {
        let queued = pending.try_recv().ok();
        let next = match (queued, deadline) {
            (Some(next), _) => Some(next),
            (None, Some(deadline)) if batch.len() < enough => pending
                .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
                .ok(),
            (None, _) => None,
        };
        let Some(next) = next else {
            break;
        };
        entries += next.0.len();
        batch.push(next);
    }
    batch
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

    /// A request in the queue as the writer sends it, `entries` long, and
    /// the receiver its ack reaches.
    fn pending(entries: usize) -> (Pending, tokio::sync::oneshot::Receiver<()>) {
        let (ack, done) = tokio::sync::oneshot::channel();
        (((0..entries).map(entry).collect(), ack), done)
    }

    /// Without a linger a commit takes what is queued and waits for
    /// nothing; with one it waits for the requests still to come, up to as
    /// many as the last commit held; a commit stops at `BATCH` entries,
    /// never splitting a request's.
    #[test]
    fn a_commit_gathers_what_is_queued_and_lingers_only_when_asked() {
        let (queue, receiver) = std::sync::mpsc::channel::<Pending>();
        let mut acks = Vec::new();
        let mut send = |entries| {
            let (request, done) = pending(entries);
            acks.push(done);
            request
        };
        queue.send(send(1)).unwrap();
        let batch = gather(&receiver, send(1), None);
        assert_eq!(batch.len(), 2, "the queued request joins the commit");

        // Lingering: the third request, sent after the commit started
        // gathering, joins it; the wait ends as the third arrives.
        queue.send(send(2)).unwrap();
        let late = send(1);
        let sender = queue.clone();
        let thread = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            sender.send(late).unwrap();
        });
        let linger = Some((std::time::Duration::from_secs(60), 3));
        let batch = gather(&receiver, send(1), linger);
        thread.join().unwrap();
        let sizes: Vec<usize> = batch.iter().map(|(entries, _)| entries.len()).collect();
        assert_eq!(sizes, [1, 2, 1]);

        // Bounded by BATCH entries, whole requests only.
        for _ in 0..2 {
            queue.send(send(BATCH / 2 + 1)).unwrap();
        }
        let batch = gather(&receiver, send(BATCH / 2 + 1), None);
        assert_eq!(batch.len(), 2);
        assert_eq!(
            receiver.try_iter().count(),
            1,
            "the third waits for the next commit"
        );
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
