//! Fair queueing of each source's connections among its callers. When every
//! connection of a source is in use, the requests waiting for one are let
//! through one caller at a time, in turn (an API key, else a user, else a
//! role), so one caller's flood of requests — a dashboard refreshing forty
//! panels, a batch job — delays the others by at most one turn each
//! instead of queueing ahead of them all (a pool alone serves its waiters
//! first come, first served). A source may also cap what one caller holds
//! at once (`pool.max_per_caller`), keeping the rest for the others.
//!
//! Every connector is wrapped in a `FairConnector` ([`fair`]): its
//! [`Gate`] admits as many statements and transactions at once as the pool
//! has connections, so the pool underneath rarely queues. A request's
//! [`Caller`] travels in a task-local ([`serve_as`], set by the auth
//! middleware); the engine carries it into DataFusion's own tasks
//! (`engine::as_caller`). Work without a caller (the local CLI's queries)
//! is the caller `""`; pings, introspection and drift checks are not gated.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use futures::Stream;
use serde::Serialize;
use tokio::sync::oneshot;
use tributary_connector::{
    BatchError, Connector, ConnectorError, Dialect, PingInfo, PoolStatus, Result, RowStream,
    Statement, TableKey, WriteOp, WriteOutcome, WriteTx,
};
use tributary_schema_cache::{SourceKind, SourceSchema};

/// Who a request is, for the gates: its caller, whose requests take turns
/// with others' and share its part of a pool, and the request itself — a
/// request holding a transaction open at a source (a batch while its next
/// operation reads through the engine) is not held to the share for its
/// other statements there, or it would wait for itself.
#[derive(Debug, Clone)]
pub struct Caller {
    key: Arc<str>,
    request: u64,
}

impl Caller {
    /// A new request of the caller `key`.
    pub fn new(key: Arc<str>) -> Self {
        static REQUESTS: AtomicU64 = AtomicU64::new(1);
        Self {
            key,
            request: REQUESTS.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Its caller's key: `key:…`, `user:…`, `role:…` or `ip:…`.
    pub fn key(&self) -> &str {
        &self.key
    }
}

tokio::task_local! {
    static CALLER: Caller;
}

/// Runs `work` (a request's handling) as `caller`: the sources' gates queue
/// its statements and transactions with that caller's.
pub async fn serve_as<F: Future>(caller: Caller, work: F) -> F::Output {
    CALLER.scope(caller, work).await
}

/// Runs `poll` as `caller` (for a stream polled in another task).
pub fn polled_as<R>(caller: &Caller, poll: impl FnOnce() -> R) -> R {
    CALLER.sync_scope(caller.clone(), poll)
}

/// The caller of the current task; work without one is a request of its
/// own by the caller `""`.
pub fn current_caller() -> Caller {
    CALLER
        .try_with(Caller::clone)
        .unwrap_or_else(|_| Caller::new(Arc::from("")))
}

/// A connector admitted in fair turns, and its gate (who uses it now).
pub struct Fair {
    pub connector: Arc<dyn Connector>,
    pub gate: Arc<Gate>,
}

/// `connector` with its statements and transactions admitted in fair turns,
/// as many at once as its pool may open and at most `per_caller` of them one
/// caller's (`None`: no limit of its own); a wait longer than
/// `acquire_timeout` is refused as [`ErrorKind::Busy`](tributary_connector::ErrorKind::Busy).
pub fn fair(
    connector: Arc<dyn Connector>,
    acquire_timeout: Duration,
    per_caller: Option<u32>,
) -> Fair {
    let capacity = connector.pool_status().max_size.max(1);
    let per_caller = per_caller.map_or(capacity, |n| usize::try_from(n).unwrap_or(capacity));
    let gate = Arc::new(Gate::new(capacity, per_caller));
    Fair {
        connector: Arc::new(FairConnector {
            inner: connector,
            gate: gate.clone(),
            acquire_timeout,
        }),
        gate,
    }
}

/// One caller's use of a source now: its statements and transactions
/// running, and those waiting for their turn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallerUse {
    pub caller: String,
    pub in_use: usize,
    pub waiting: usize,
}

/// How many requests a source serves at once (and one caller at most), and
/// who goes next: the callers with waiting requests take turns, one
/// request each; a caller's own requests go in the order they came.
#[derive(Debug)]
pub struct Gate {
    capacity: usize,
    per_caller: usize,
    queues: Mutex<Queues>,
    timeouts: AtomicU64,
}

#[derive(Debug, Default)]
struct Queues {
    /// Admitted statements and transactions not yet done, in all and by
    /// caller; the open transactions by request.
    in_use: usize,
    held: HashMap<Arc<str>, usize>,
    by_request: HashMap<u64, usize>,
    /// The callers with waiting requests, in the order they are served.
    turn: VecDeque<Arc<str>>,
    waiting: HashMap<Arc<str>, VecDeque<Waiter>>,
    next_id: u64,
}

#[derive(Debug)]
struct Waiter {
    id: u64,
    request: u64,
    hold: Hold,
    wake: oneshot::Sender<()>,
}

/// What an admitted request holds its place for: a statement (until its
/// rows end) or a transaction (until it ends; the request's statements at
/// the same source are then not held to its caller's share).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    Statement,
    Transaction,
}

/// Why a request's turn did not come in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Every place was in use.
    AllInUse,
    /// The caller's other requests held its whole share.
    ShareInUse,
}

impl Gate {
    pub fn new(capacity: usize, per_caller: usize) -> Self {
        Self {
            capacity,
            per_caller: per_caller.clamp(1, capacity.max(1)),
            queues: Mutex::new(Queues::default()),
            timeouts: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queues> {
        self.queues.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Requests waiting now.
    pub fn waiting(&self) -> usize {
        self.lock().waiting.values().map(VecDeque::len).sum()
    }

    /// Requests that gave up waiting since the gate was made.
    pub fn timeouts(&self) -> u64 {
        self.timeouts.load(Ordering::Relaxed)
    }

    /// Every caller using the source now, the busiest first (work without
    /// a caller shows as `""`).
    pub fn callers(&self) -> Vec<CallerUse> {
        let queues = self.lock();
        let mut uses: HashMap<&Arc<str>, (usize, usize)> = HashMap::new();
        for (caller, held) in &queues.held {
            uses.entry(caller).or_default().0 = *held;
        }
        for (caller, queue) in &queues.waiting {
            uses.entry(caller).or_default().1 = queue.len();
        }
        let mut callers: Vec<CallerUse> = uses
            .into_iter()
            .map(|(caller, (in_use, waiting))| CallerUse {
                caller: caller.to_string(),
                in_use,
                waiting,
            })
            .collect();
        callers.sort_by(|a, b| {
            (b.in_use + b.waiting, &a.caller).cmp(&(a.in_use + a.waiting, &b.caller))
        });
        callers
    }

    /// Waits (at most `within`) for `caller`'s turn to run a statement or
    /// hold a transaction; `Err` when it did not come in time, saying what
    /// was full.
    pub async fn admit(
        self: &Arc<Self>,
        caller: &Caller,
        within: Duration,
        hold: Hold,
    ) -> Result<Permit, Refused> {
        let (id, wake) = {
            let mut guard = self.lock();
            let queues = &mut *guard;
            let nested = queues.nested(caller.request);
            // A nested request goes ahead of its caller's others: they may
            // be waiting for the share it holds.
            if (nested || !queues.waiting.contains_key(&caller.key))
                && self.may_take(queues, &caller.key, nested)
            {
                queues.take(&caller.key, caller.request, hold);
                return Ok(self.permit(caller, hold));
            }
            let id = queues.next_id;
            queues.next_id += 1;
            let (sender, wake) = oneshot::channel();
            let queue = queues.waiting.entry(caller.key.clone()).or_default();
            if queue.is_empty() {
                queues.turn.push_back(caller.key.clone());
            }
            let waiter = Waiter {
                id,
                request: caller.request,
                hold,
                wake: sender,
            };
            if nested {
                queue.push_front(waiter);
            } else {
                queue.push_back(waiter);
            }
            (id, wake)
        };
        let mut queued = Queued {
            gate: self.clone(),
            caller: caller.clone(),
            hold,
            id,
            wake,
            settled: false,
        };
        let woken = tokio::time::timeout(within, &mut queued.wake).await;
        let mut queues = self.lock();
        queued.settled = true;
        // Woken, or its turn came just as the time ran out: admitted (the
        // place was taken for it).
        if matches!(woken, Ok(Ok(()))) || !queues.withdraw(&caller.key, id) {
            return Ok(self.permit(caller, hold));
        }
        self.timeouts.fetch_add(1, Ordering::Relaxed);
        let held = queues.held.get(&caller.key).copied().unwrap_or(0);
        Err(if held >= self.per_caller {
            Refused::ShareInUse
        } else {
            Refused::AllInUse
        })
    }

    fn permit(self: &Arc<Self>, caller: &Caller, hold: Hold) -> Permit {
        Permit {
            gate: self.clone(),
            caller: caller.clone(),
            hold,
        }
    }

    /// Whether `caller` may have one more statement or transaction served
    /// now (`nested`: for a request with a transaction open here).
    fn may_take(&self, queues: &Queues, caller: &Arc<str>, nested: bool) -> bool {
        queues.in_use < self.capacity
            && (nested || queues.held.get(caller).copied().unwrap_or(0) < self.per_caller)
    }

    /// `caller`'s admitted statement or transaction is done (or was never
    /// used): the callers waiting take its place in turn.
    fn give_back(&self, queues: &mut Queues, caller: &Caller, hold: Hold) {
        queues.in_use -= 1;
        release(&mut queues.held, &caller.key);
        if hold == Hold::Transaction {
            release(&mut queues.by_request, &caller.request);
        }
        self.let_in(queues);
    }

    /// Hands free places to the waiting callers in turn, one request each,
    /// skipping those that hold their share already.
    fn let_in(&self, queues: &mut Queues) {
        let mut skipped = 0;
        while queues.in_use < self.capacity && skipped < queues.turn.len() {
            let Some(caller) = queues.turn.pop_front() else {
                return;
            };
            let Some(queue) = queues.waiting.get_mut(&caller) else {
                continue;
            };
            let nested = queue
                .front()
                .is_some_and(|w| queues.by_request.contains_key(&w.request));
            if !self.may_take(queues, &caller, nested) {
                queues.turn.push_back(caller);
                skipped += 1;
                continue;
            }
            let Some(queue) = queues.waiting.get_mut(&caller) else {
                continue;
            };
            let next = queue.pop_front();
            if queue.is_empty() {
                queues.waiting.remove(&caller);
            } else {
                queues.turn.push_back(caller.clone());
            }
            if let Some(waiter) = next {
                // Its receiver lives until the waiter settles under this
                // lock ([`Queued`]'s drop), so the place is taken for it.
                if waiter.wake.send(()).is_ok() {
                    queues.take(&caller, waiter.request, waiter.hold);
                }
            }
        }
    }
}

/// One fewer held under `key`.
fn release<K: std::hash::Hash + Eq>(counts: &mut HashMap<K, usize>, key: &K) {
    if let Some(count) = counts.get_mut(key) {
        *count -= 1;
        if *count == 0 {
            counts.remove(key);
        }
    }
}

impl Queues {
    fn take(&mut self, caller: &Arc<str>, request: u64, hold: Hold) {
        self.in_use += 1;
        *self.held.entry(caller.clone()).or_default() += 1;
        if hold == Hold::Transaction {
            *self.by_request.entry(request).or_default() += 1;
        }
    }

    /// Whether `request` has a transaction open here.
    fn nested(&self, request: u64) -> bool {
        self.by_request.contains_key(&request)
    }

    /// Takes a waiting request out of the queue: `false` when it is no
    /// longer there (its turn came).
    fn withdraw(&mut self, caller: &Arc<str>, id: u64) -> bool {
        let Some(queue) = self.waiting.get_mut(caller) else {
            return false;
        };
        let Some(at) = queue.iter().position(|w| w.id == id) else {
            return false;
        };
        queue.remove(at);
        if queue.is_empty() {
            self.waiting.remove(caller);
            self.turn.retain(|c| c != caller);
        }
        true
    }
}

/// A request waiting for its turn. Dropped unsettled (the request was
/// cancelled), it leaves the queue — or, had its turn just come, gives its
/// place back.
struct Queued {
    gate: Arc<Gate>,
    caller: Caller,
    hold: Hold,
    id: u64,
    wake: oneshot::Receiver<()>,
    settled: bool,
}

impl Drop for Queued {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let mut queues = self.gate.lock();
        if !queues.withdraw(&self.caller.key, self.id) {
            self.gate.give_back(&mut queues, &self.caller, self.hold);
        }
    }
}

/// An admitted statement's or transaction's place; dropping it lets the
/// next one in.
#[derive(Debug)]
pub struct Permit {
    gate: Arc<Gate>,
    caller: Caller,
    hold: Hold,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut queues = self.gate.lock();
        self.gate.give_back(&mut queues, &self.caller, self.hold);
    }
}

/// A connector whose reads and transactions wait for their caller's turn
/// ([`Gate`]) when all of its pool's connections, or the caller's share of
/// them, are in use.
#[derive(Debug)]
struct FairConnector {
    inner: Arc<dyn Connector>,
    gate: Arc<Gate>,
    acquire_timeout: Duration,
}

impl FairConnector {
    /// Waits for the current caller's turn.
    async fn admit(&self, hold: Hold) -> Result<Permit> {
        let admitted = (self.gate)
            .admit(&current_caller(), self.acquire_timeout, hold)
            .await;
        admitted.map_err(|refused| {
            let waited = self.acquire_timeout.as_millis();
            ConnectorError::busy(match refused {
                Refused::AllInUse => format!(
                    "all {} of the source's connections stayed in use past \
                         pool.acquire_timeout_ms ({waited} ms)",
                    self.gate.capacity
                ),
                Refused::ShareInUse => format!(
                    "this caller's share of the source's connections \
                         (pool.max_per_caller: {}) stayed in use by its other requests \
                         past pool.acquire_timeout_ms ({waited} ms)",
                    self.gate.per_caller
                ),
            })
            .for_source(self.inner.name())
        })
    }
}

#[async_trait]
impl Connector for FairConnector {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn kind(&self) -> SourceKind {
        self.inner.kind()
    }

    fn dialect(&self) -> &dyn Dialect {
        self.inner.dialect()
    }

    async fn ping(&self) -> Result<PingInfo> {
        self.inner.ping().await
    }

    async fn introspect(&self) -> Result<SourceSchema> {
        self.inner.introspect().await
    }

    async fn drift_fingerprints(&self) -> Result<std::collections::BTreeMap<TableKey, String>> {
        self.inner.drift_fingerprints().await
    }

    async fn query(&self, statement: &Statement, schema: Option<SchemaRef>) -> Result<RowStream> {
        let permit = self.admit(Hold::Statement).await?;
        let rows = self.inner.query(statement, schema).await?;
        let (schema, connected) = (rows.schema().clone(), rows.connected());
        let held = RowStream::new(
            schema,
            Holding {
                rows,
                permit: Some(permit),
            },
        );
        Ok(match connected {
            Some(at) => held.connected_at(at),
            None => held,
        })
    }

    async fn begin(&self) -> Result<Box<dyn WriteTx>> {
        let permit = self.admit(Hold::Transaction).await?;
        let tx = self.inner.begin().await?;
        Ok(Box::new(HoldingTx { tx, permit }))
    }

    async fn write_one(&self, op: &WriteOp) -> Result<WriteOutcome> {
        let _permit = self.admit(Hold::Statement).await?;
        self.inner.write_one(op).await
    }

    /// The pool's, with the requests waiting at the gate (the pool's own
    /// queue stays short) and the gate's waits that ran out.
    fn pool_status(&self) -> PoolStatus {
        let mut status = self.inner.pool_status();
        status.waiting += self.gate.waiting();
        status.wait_timeouts += self.gate.timeouts();
        status
    }
}

/// A statement's rows, holding its place until the last one is read.
struct Holding {
    rows: RowStream,
    permit: Option<Permit>,
}

impl Stream for Holding {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = Pin::new(&mut self.rows).poll_next(cx);
        if let Poll::Ready(None) = polled {
            self.permit = None;
        }
        polled
    }
}

/// A transaction, holding its place until it ends.
struct HoldingTx {
    tx: Box<dyn WriteTx>,
    permit: Permit,
}

#[async_trait]
impl WriteTx for HoldingTx {
    async fn execute(&mut self, op: &WriteOp) -> Result<WriteOutcome> {
        self.tx.execute(op).await
    }

    async fn commit(self: Box<Self>) -> Result<()> {
        let Self { tx, permit } = *self;
        let committed = tx.commit().await;
        drop(permit);
        committed
    }

    async fn rollback(self: Box<Self>) -> Result<()> {
        let Self { tx, permit } = *self;
        let rolled_back = tx.rollback().await;
        drop(permit);
        rolled_back
    }

    async fn execute_and_commit(self: Box<Self>, op: &WriteOp) -> Result<WriteOutcome> {
        let Self { tx, permit } = *self;
        let done = tx.execute_and_commit(op).await;
        drop(permit);
        done
    }

    async fn execute_all_and_commit(
        self: Box<Self>,
        ops: &[&WriteOp],
    ) -> std::result::Result<Vec<WriteOutcome>, BatchError> {
        let Self { tx, permit } = *self;
        let done = tx.execute_all_and_commit(ops).await;
        drop(permit);
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new request of the caller `name`.
    fn caller(name: &str) -> Caller {
        Caller::new(Arc::from(name))
    }

    /// Waits for `name`'s turn and records `label` in `order`, holding the
    /// place until told.
    fn queue(
        gate: &Arc<Gate>,
        name: &'static str,
        label: &'static str,
        order: &Arc<Mutex<Vec<&'static str>>>,
    ) -> oneshot::Sender<()> {
        let (gate, order) = (gate.clone(), order.clone());
        let (done, until) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let permit = gate
                .admit(&caller(name), Duration::from_secs(60), Hold::Statement)
                .await
                .expect("admitted");
            order.lock().unwrap().push(label);
            let _ = until.await;
            drop(permit);
        });
        done
    }

    /// Lets the spawned tasks run until they wait.
    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    /// With one place, a caller that queued three requests behind its
    /// first and one that came after with one take turns: the latecomer
    /// waits for one of the others' requests, not for all three.
    #[tokio::test(start_paused = true)]
    async fn waiting_callers_take_turns() {
        let gate = Arc::new(Gate::new(1, 1));
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut releases = HashMap::new();
        for (name, label) in [
            ("dashboard", "d1"),
            ("dashboard", "d2"),
            ("dashboard", "d3"),
            ("dashboard", "d4"),
            ("report", "r1"),
        ] {
            releases.insert(label, queue(&gate, name, label, &order));
            settle().await;
        }
        assert_eq!(gate.waiting(), 4);
        let using = |caller: &str, in_use, waiting| CallerUse {
            caller: caller.into(),
            in_use,
            waiting,
        };
        assert_eq!(
            gate.callers(),
            [using("dashboard", 1, 3), using("report", 0, 1)]
        );
        // The holder of the place finishes, one at a time.
        for served in 1..=5 {
            assert_eq!(order.lock().unwrap().len(), served);
            let holder = *order.lock().unwrap().last().unwrap();
            let _ = releases.remove(holder).unwrap().send(());
            settle().await;
        }
        assert_eq!(*order.lock().unwrap(), ["d1", "d2", "r1", "d3", "d4"]);
        assert!(gate.callers().is_empty());
        assert_eq!((gate.waiting(), gate.lock().in_use), (0, 0));
    }

    /// With a caller's share of 2 of 3 places, the dashboard's third
    /// request waits though a place is free, and the report gets it at once;
    /// the dashboard's waiting request goes in when one of its own ends.
    #[tokio::test(start_paused = true)]
    async fn a_caller_holds_at_most_its_share() {
        let gate = Arc::new(Gate::new(3, 2));
        let first = gate
            .admit(&caller("dashboard"), Duration::ZERO, Hold::Statement)
            .await
            .unwrap();
        let _second = gate
            .admit(&caller("dashboard"), Duration::ZERO, Hold::Statement)
            .await
            .unwrap();
        let third = {
            let gate = gate.clone();
            tokio::spawn(async move {
                gate.admit(
                    &caller("dashboard"),
                    Duration::from_secs(5),
                    Hold::Statement,
                )
                .await
            })
        };
        settle().await;
        assert_eq!((gate.waiting(), gate.lock().in_use), (1, 2));
        let report = gate
            .admit(&caller("report"), Duration::ZERO, Hold::Statement)
            .await;
        assert!(report.is_ok());
        assert_eq!(gate.lock().in_use, 3);
        // The report's end frees a place the dashboard may not take.
        drop(report);
        settle().await;
        assert_eq!((gate.waiting(), gate.lock().in_use), (1, 2));
        let refused = gate
            .admit(
                &caller("dashboard"),
                Duration::from_millis(50),
                Hold::Statement,
            )
            .await;
        assert_eq!(refused.unwrap_err(), Refused::ShareInUse);
        drop(first);
        let third = third.await.unwrap();
        assert!(third.is_ok());
        assert_eq!((gate.waiting(), gate.lock().in_use), (0, 2));
        assert_eq!(gate.lock().held.get("dashboard"), Some(&2));
    }

    /// A request with a transaction open is not held to its caller's share
    /// for its statements (it would wait for itself); the caller's other
    /// requests are, and so is a request of statements alone.
    #[tokio::test(start_paused = true)]
    async fn a_request_is_not_held_to_the_share_its_transaction_holds() {
        let gate = Arc::new(Gate::new(3, 1));
        let query = caller("dashboard");
        let first = gate
            .admit(&query, Duration::ZERO, Hold::Statement)
            .await
            .unwrap();
        let second = gate
            .admit(&query, Duration::from_millis(50), Hold::Statement)
            .await;
        assert_eq!(second.unwrap_err(), Refused::ShareInUse);
        drop(first);
        let batch = caller("dashboard");
        let open = gate
            .admit(&batch, Duration::ZERO, Hold::Transaction)
            .await
            .unwrap();
        let other = gate
            .admit(
                &caller("dashboard"),
                Duration::from_millis(50),
                Hold::Statement,
            )
            .await;
        assert_eq!(other.unwrap_err(), Refused::ShareInUse);
        let read = gate
            .admit(&batch, Duration::ZERO, Hold::Statement)
            .await
            .unwrap();
        assert_eq!(gate.lock().in_use, 2);
        drop((open, read));
        let queues = gate.lock();
        assert_eq!(
            (queues.in_use, queues.held.len(), queues.by_request.len()),
            (0, 0, 0)
        );
    }

    /// A wait that runs out leaves the queue and is counted; the place
    /// goes to the next waiter, not to the one that gave up.
    #[tokio::test(start_paused = true)]
    async fn a_wait_that_runs_out_leaves_the_queue() {
        let gate = Arc::new(Gate::new(1, 1));
        let held = gate
            .admit(&caller("a"), Duration::ZERO, Hold::Statement)
            .await
            .unwrap();
        let refused = gate
            .admit(&caller("b"), Duration::from_millis(50), Hold::Statement)
            .await;
        assert_eq!(refused.unwrap_err(), Refused::AllInUse);
        assert_eq!((gate.waiting(), gate.timeouts()), (0, 1));
        let next = {
            let gate = gate.clone();
            tokio::spawn(async move {
                gate.admit(&caller("c"), Duration::from_secs(5), Hold::Statement)
                    .await
            })
        };
        settle().await;
        drop(held);
        let admitted = next.await.unwrap();
        assert!(admitted.is_ok());
        assert_eq!(gate.lock().in_use, 1);
        drop(admitted);
        assert_eq!(gate.lock().in_use, 0);
    }

    /// A cancelled request leaves the queue; one cancelled just after its
    /// turn came passes its place on, so no place is lost.
    #[tokio::test(start_paused = true)]
    async fn a_cancelled_request_gives_its_place_back() {
        let gate = Arc::new(Gate::new(1, 1));
        let held = gate
            .admit(&caller("a"), Duration::ZERO, Hold::Statement)
            .await
            .unwrap();
        let cancelled = {
            let gate = gate.clone();
            tokio::spawn(async move {
                gate.admit(&caller("b"), Duration::from_secs(5), Hold::Statement)
                    .await
            })
        };
        settle().await;
        assert_eq!(gate.waiting(), 1);
        cancelled.abort();
        settle().await;
        assert_eq!(gate.waiting(), 0);

        // Its turn comes while it is being cancelled: the wake is sent, the
        // future dropped before it reads it.
        let late = caller("b");
        let mut woken_then_dropped =
            Box::pin(gate.admit(&late, Duration::from_secs(5), Hold::Statement));
        assert!(futures::poll!(&mut woken_then_dropped).is_pending());
        drop(held);
        drop(woken_then_dropped);
        assert_eq!(gate.lock().in_use, 0);
        assert!(
            gate.admit(&caller("c"), Duration::ZERO, Hold::Statement)
                .await
                .is_ok()
        );
    }
}
