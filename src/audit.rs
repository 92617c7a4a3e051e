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
    queue: Arc<Queue>,
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

/// The requests waiting for the writer thread. A request wakes the thread
/// only when the thread waits for that many requests — not once per
/// request, and never while it commits: under load a commit costs one
/// wake-up, not one per request it holds.
#[derive(Default)]
struct Queue {
    waiting: std::sync::Mutex<Waiting>,
    ready: std::sync::Condvar,
}

#[derive(Default)]
struct Waiting {
    requests: std::collections::VecDeque<Pending>,
    /// The entries of `requests`.
    entries: usize,
    /// The number of queued requests that wakes the thread: 1 while it
    /// waits for work, the requests it lingers for, `usize::MAX` while it
    /// commits (it looks again when done).
    wake_at: usize,
    /// The writer was dropped: the thread stores what is queued and ends.
    closed: bool,
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues a request; false once the writer is closed.
    fn push(&self, request: Pending) -> bool {
        let mut waiting = self.lock();
        if waiting.closed {
            return false;
        }
        waiting.entries += request.0.len();
        waiting.requests.push_back(request);
        let wake = waiting.requests.len() >= waiting.wake_at || waiting.entries >= BATCH;
        // Unlocked first: the woken thread does not wait for this one's lock.
        drop(waiting);
        if wake {
            self.ready.notify_one();
        }
        true
    }

    fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_one();
    }

    /// The requests one transaction takes, waiting for the first: those
    /// queued, and with a `linger` (how long, and how many requests end it
    /// early), those that arrive within it — until [`BATCH`] entries (a
    /// request's entries are never split). None once closed and empty.
    fn next(&self, linger: Option<(std::time::Duration, usize)>) -> Option<Vec<Pending>> {
        let mut waiting = self.lock();
        waiting.wake_at = 1;
        while waiting.requests.is_empty() && !waiting.closed {
            waiting = self
                .ready
                .wait(waiting)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        if let Some((linger, enough)) = linger {
            let deadline = std::time::Instant::now() + linger;
            waiting.wake_at = enough;
            while waiting.requests.len() < enough && waiting.entries < BATCH && !waiting.closed {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    break;
                }
                waiting = self
                    .ready
                    .wait_timeout(waiting, left)
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .0;
            }
        }
        waiting.wake_at = usize::MAX;
        let (mut taken, mut entries) = (0, 0);
        for (request, _) in &waiting.requests {
            if entries >= BATCH {
                break;
            }
            entries += request.len();
            taken += 1;
        }
        waiting.entries -= entries;
        let batch: Vec<Pending> = waiting.requests.drain(..taken).collect();
        (!batch.is_empty()).then_some(batch)
    }
}

impl AuditWriter {
    /// Starts the writer; it stores what is queued and stops when the
    /// writer is dropped.
    pub fn start(store: Arc<dyn MetadataStore>) -> std::io::Result<Self> {
        let queue = Arc::new(Queue::default());
        let pending = queue.clone();
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || {
                let mut last = 0;
                while let Some(batch) = pending.next((last >= BUSY).then_some((LINGER, last))) {
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
        Ok(Self { queue })
    }

    /// Queues a request's entries and waits until they are in the store
    /// (queued together, they share one transaction: one disk sync).
    async fn append(&self, entries: Vec<AuditEntry>) {
        let (ack, done) = tokio::sync::oneshot::channel();
        if !self.queue.push((entries, ack)) {
            tracing::error!("the audit writer has stopped");
            return;
        }
        let _ = done.await;
    }
}

impl Drop for AuditWriter {
    fn drop(&mut self) {
        self.queue.close();
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
        let queue = Arc::new(Queue::default());
        let mut acks = Vec::new();
        let mut send = |entries| {
            let (request, done) = pending(entries);
            acks.push(done);
            request
        };
        assert!(queue.push(send(1)) && queue.push(send(1)));
        let batch = queue.next(None).unwrap();
        assert_eq!(batch.len(), 2, "the queued requests share the commit");

        // Lingering: the third request, queued after the commit started
        // gathering, joins it; the wait ends as the third arrives, long
        // before the linger.
        assert!(queue.push(send(1)) && queue.push(send(2)));
        let late = send(1);
        let sender = queue.clone();
        let thread = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            assert!(sender.push(late));
        });
        let linger = std::time::Duration::from_secs(600);
        let started = std::time::Instant::now();
        let batch = queue.next(Some((linger, 3))).unwrap();
        assert!(
            started.elapsed() < linger / 2,
            "the third request ended the wait"
        );
        thread.join().unwrap();
        let sizes: Vec<usize> = batch.iter().map(|(entries, _)| entries.len()).collect();
        assert_eq!(sizes, [1, 2, 1]);

        // Bounded by BATCH entries, whole requests only.
        for _ in 0..3 {
            assert!(queue.push(send(BATCH / 2 + 1)));
        }
        assert_eq!(queue.next(None).unwrap().len(), 2);
        assert_eq!(
            queue.next(None).unwrap().len(),
            1,
            "the third waits for the next commit"
        );
    }

    /// Once closed, the queue hands out what it holds, then nothing, and
    /// takes no more requests.
    #[test]
    fn a_closed_queue_hands_out_what_it_holds_then_ends() {
        let queue = Queue::default();
        let (request, _done) = pending(1);
        assert!(queue.push(request));
        queue.close();
        let (late, _late_done) = pending(1);
        assert!(!queue.push(late), "a closed queue takes no request");
        let linger = Some((std::time::Duration::from_secs(600), 5));
        assert_eq!(queue.next(linger).map(|batch| batch.len()), Some(1));
        assert!(queue.next(None).is_none());
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
