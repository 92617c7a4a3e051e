//! What each source statement of an analyzed query did (`analyze: true` on
//! the SQL endpoint): the SQL as it was sent — runtime filters included,
//! which `explain` cannot show — its rows, and when it was sent, gave its
//! first row and ended, counted from the start of the query. A statement
//! that waits for another (a join's build side, a scalar subquery) shows it
//! in its times.
//!
//! The federation nodes of the physical plan are wrapped in
//! [`Recorder`] for that one run only; each run of one keeps a
//! live record the executor tells the SQL it sends through a task-local
//! slot, set while the wrapper polls the statement's stream. The records
//! are read when the query ends: a statement still open then (a join's
//! side abandoned once the answer was complete, its stream dropped a little
//! later) shows what it had done so far.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Instant;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::Result;
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::display::DisplayableExecutionPlan;
use futures::{Stream, StreamExt};
use serde::Serialize;

use super::around_statement::{Around, wrap_statements};
use super::explain;

/// One source statement of an analyzed query.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceRun {
    pub source: String,
    /// The statement as sent (`None` when it never was: the query ended
    /// before it was needed).
    pub sql: Option<String>,
    pub rows: u64,
    /// Seconds from the start of the query until the statement was sent,
    /// until its first row arrived, and until it ended (or the query did).
    pub sent_at: Option<f64>,
    pub first_row_at: Option<f64>,
    pub ended_at: f64,
    /// Seconds of those before its first row that it waited for one of
    /// the source's pooled connections (all in use by other requests);
    /// `None` when it was never sent or the connector does not say.
    pub connection_wait: Option<f64>,
}

/// An analyzed query: its plan with metrics, its rows, its seconds, and
/// its source statements in the order they were sent.
#[derive(Debug, Clone, Serialize)]
pub struct Analysis {
    pub plan: String,
    pub rows: u64,
    pub seconds: f64,
    pub sources: Vec<SourceRun>,
}

/// What one run of a statement has done so far.
#[derive(Debug)]
struct Live {
    source: String,
    sent: Option<(String, Instant)>,
    connected: Option<Instant>,
    rows: u64,
    first_row: Option<Instant>,
    ended: Option<Instant>,
}

type Shared = Arc<Mutex<Live>>;

fn lock(live: &Shared) -> std::sync::MutexGuard<'_, Live> {
    live.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The statements of one analyzed query: each planned one, with its runs.
#[derive(Debug)]
pub struct StatementLog {
    start: Instant,
    /// Per statement of the plan (in plan order), its runs (one per
    /// partition executed; none when it was never needed).
    statements: Mutex<Vec<(String, Vec<Shared>)>>,
}

impl StatementLog {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            start: Instant::now(),
            statements: Mutex::new(Vec::new()),
        })
    }

    /// Every statement's runs as they stand, and a statement never run (a
    /// join whose build side was empty does not read its other side) as
    /// one without SQL or rows.
    pub fn runs(&self) -> Vec<SourceRun> {
        let now = Instant::now();
        let statements = self
            .statements
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut runs = Vec::new();
        for (source, lives) in statements.iter() {
            if lives.is_empty() {
                runs.push(SourceRun {
                    source: source.clone(),
                    sql: None,
                    rows: 0,
                    sent_at: None,
                    first_row_at: None,
                    ended_at: self.seconds(now),
                    connection_wait: None,
                });
            }
            for live in lives {
                let live = lock(live);
                runs.push(SourceRun {
                    source: live.source.clone(),
                    sql: live.sent.as_ref().map(|(sql, _)| sql.clone()),
                    rows: live.rows,
                    sent_at: live.sent.as_ref().map(|(_, at)| self.seconds(*at)),
                    first_row_at: live.first_row.map(|at| self.seconds(at)),
                    ended_at: self.seconds(live.ended.unwrap_or(now)),
                    connection_wait: live.sent.as_ref().zip(live.connected).map(
                        |((_, sent), connected)| {
                            connected.saturating_duration_since(*sent).as_secs_f64()
                        },
                    ),
                });
            }
        }
        runs
    }

    /// Seconds since the query started.
    pub fn elapsed(&self) -> f64 {
        self.seconds(Instant::now())
    }

    fn seconds(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.start).as_secs_f64()
    }

    /// Notes a new statement of the plan; its index.
    fn plan(&self, source: &str) -> usize {
        let mut statements = self
            .statements
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        statements.push((source.to_owned(), Vec::new()));
        statements.len() - 1
    }

    /// Notes a run of statement `index`.
    fn run(&self, index: usize, source: &str) -> Shared {
        let live = Arc::new(Mutex::new(Live {
            source: source.to_owned(),
            sent: None,
            connected: None,
            rows: 0,
            first_row: None,
            ended: None,
        }));
        if let Some((_, lives)) = self
            .statements
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(index)
        {
            lives.push(live.clone());
        }
        live
    }
}

tokio::task_local! {
    static SENT: Shared;
}

/// Called by the executor with the statement it is about to send; noted
/// only while a [`Recorder`] polls it.
pub fn note_sent(sql: &str) {
    let _ = SENT.try_with(|live| lock(live).sent = Some((sql.to_owned(), Instant::now())));
}

/// Called by the executor with when the statement it sent had its pooled
/// connection (`RowStream::connected`), if the connector said.
pub fn note_connected(at: Option<Instant>) {
    let _ = SENT.try_with(|live| lock(live).connected = at);
}

/// `plan` with each federation node wrapped to record into `log`.
pub fn record(
    plan: Arc<dyn ExecutionPlan>,
    log: &Arc<StatementLog>,
) -> Result<Arc<dyn ExecutionPlan>> {
    wrap_statements(plan, |node| {
        let source = explain::source_queries(node.as_ref())
            .pop()
            .map(|q| q.source)
            .unwrap_or_default();
        let index = log.plan(&source);
        Recorder {
            source,
            log: log.clone(),
            index,
        }
    })
}

/// Records the runs of a federation node.
#[derive(Debug)]
struct Recorder {
    source: String,
    log: Arc<StatementLog>,
    /// Its place in the log.
    index: usize,
}

impl Around for Recorder {
    const NAME: &'static str = "RecordedStatement";

    fn describe(&self) -> String {
        format!("source={}", self.source)
    }

    fn execute(
        &self,
        statement: &Arc<dyn ExecutionPlan>,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        Ok(Box::pin(Recording {
            inner: statement.execute(partition, context)?,
            live: self.log.run(self.index, &self.source),
        }))
    }
}

/// A statement's stream, counted and timed in its live record.
struct Recording {
    inner: SendableRecordBatchStream,
    live: Shared,
}

impl Stream for Recording {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let polled = SENT.sync_scope(this.live.clone(), || this.inner.poll_next_unpin(cx));
        match &polled {
            Poll::Ready(Some(Ok(batch))) => {
                let mut live = lock(&this.live);
                if batch.num_rows() > 0 && live.first_row.is_none() {
                    live.first_row = Some(Instant::now());
                }
                live.rows += batch.num_rows() as u64;
            }
            Poll::Ready(_) => {
                lock(&this.live).ended.get_or_insert_with(Instant::now);
            }
            Poll::Pending => {}
        }
        polled
    }
}

impl RecordBatchStream for Recording {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        lock(&self.live).ended.get_or_insert_with(Instant::now);
    }
}

/// The plan of an analyzed run with DataFusion's metrics of every node.
pub fn plan_with_metrics(plan: &dyn ExecutionPlan) -> String {
    DisplayableExecutionPlan::with_metrics(plan)
        .indent(true)
        .to_string()
}
