//! What each source statement of an analyzed query did (`analyze: true` on
//! the SQL endpoint): the SQL as it was sent — runtime filters included,
//! which `explain` cannot show — its rows, and when it was sent, gave its
//! first row and ended, counted from the start of the query. A statement
//! that waits for another (a join's build side, a scalar subquery) shows it
//! in its times.
//!
//! The federation nodes of the physical plan are wrapped in
//! [`RecordedStatement`] for that one run only; the executor tells the
//! wrapper the SQL it sends through a task-local slot, set while the
//! wrapper polls its statement's stream.

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Instant;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::error::Result;
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::display::DisplayableExecutionPlan;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PhysicalExpr, PlanProperties,
};
use futures::{Stream, StreamExt};
use serde::Serialize;

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
    /// until its first row arrived, and until it ended.
    pub sent_at: Option<f64>,
    pub first_row_at: Option<f64>,
    pub ended_at: f64,
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

/// The statements of one analyzed query, in the order they ended.
#[derive(Debug)]
pub struct StatementLog {
    start: Instant,
    runs: Mutex<Vec<SourceRun>>,
}

impl StatementLog {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            start: Instant::now(),
            runs: Mutex::new(Vec::new()),
        })
    }

    /// What was recorded, in the order the statements ended.
    pub fn runs(&self) -> Vec<SourceRun> {
        self.runs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Seconds since the query started.
    pub fn elapsed(&self) -> f64 {
        self.seconds(Instant::now())
    }

    fn seconds(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.start).as_secs_f64()
    }
}

/// The SQL a statement sent and when, filled by the executor.
type Sent = Arc<Mutex<Option<(String, Instant)>>>;

tokio::task_local! {
    static SENT: Sent;
}

/// Called by the executor with the statement it is about to send; noted
/// only while a [`RecordedStatement`] polls it.
pub fn note_sent(sql: &str) {
    let _ = SENT.try_with(|slot| {
        *slot.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((sql.to_owned(), Instant::now()));
    });
}

/// `plan` with each federation node wrapped to record into `log`.
pub fn record(
    plan: Arc<dyn ExecutionPlan>,
    log: &Arc<StatementLog>,
) -> Result<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| {
        if node.name() != explain::FEDERATION_NODE {
            return Ok(Transformed::no(node));
        }
        let source = explain::source_queries(node.as_ref())
            .pop()
            .map(|q| q.source)
            .unwrap_or_default();
        let wrapped: Arc<dyn ExecutionPlan> = Arc::new(RecordedStatement {
            inner: node,
            source,
            log: log.clone(),
        });
        Ok(Transformed::yes(wrapped))
    })
    .map(|t| t.data)
}

/// A federation node whose runs are recorded.
#[derive(Debug)]
struct RecordedStatement {
    inner: Arc<dyn ExecutionPlan>,
    source: String,
    log: Arc<StatementLog>,
}

impl DisplayAs for RecordedStatement {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        match t {
            DisplayFormatType::TreeRender => write!(f, "source={}", self.source),
            _ => write!(f, "RecordedStatement: source={}", self.source),
        }
    }
}

impl ExecutionPlan for RecordedStatement {
    fn name(&self) -> &str {
        "RecordedStatement"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.inner.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.inner]
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match children.pop() {
            Some(inner) if children.is_empty() => Ok(Arc::new(Self {
                inner,
                source: self.source.clone(),
                log: self.log.clone(),
            })),
            _ => Err(datafusion::error::DataFusionError::Internal(
                "a recorded statement has one input".into(),
            )),
        }
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        Ok(Box::pin(Recording {
            inner: self.inner.execute(partition, context)?,
            sent: Sent::default(),
            source: self.source.clone(),
            log: self.log.clone(),
            rows: 0,
            first_row: None,
            ended: false,
        }))
    }
}

/// A statement's stream, counted and timed; its record is written when it
/// ends, fails or is dropped.
struct Recording {
    inner: SendableRecordBatchStream,
    sent: Sent,
    source: String,
    log: Arc<StatementLog>,
    rows: u64,
    first_row: Option<Instant>,
    ended: bool,
}

impl Recording {
    fn end(&mut self) {
        if std::mem::replace(&mut self.ended, true) {
            return;
        }
        let sent = self
            .sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let log = &self.log;
        let run = SourceRun {
            source: std::mem::take(&mut self.source),
            sent_at: sent.as_ref().map(|(_, at)| log.seconds(*at)),
            sql: sent.map(|(sql, _)| sql),
            rows: self.rows,
            first_row_at: self.first_row.map(|at| log.seconds(at)),
            ended_at: log.seconds(Instant::now()),
        };
        log.runs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(run);
    }
}

impl Stream for Recording {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let polled = SENT.sync_scope(this.sent.clone(), || this.inner.poll_next_unpin(cx));
        match &polled {
            Poll::Ready(Some(Ok(batch))) => {
                if batch.num_rows() > 0 && this.first_row.is_none() {
                    this.first_row = Some(Instant::now());
                }
                this.rows += batch.num_rows() as u64;
            }
            Poll::Ready(_) => this.end(),
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
        self.end();
    }
}

/// The plan of an analyzed run with DataFusion's metrics of every node.
pub fn plan_with_metrics(plan: &dyn ExecutionPlan) -> String {
    DisplayableExecutionPlan::with_metrics(plan)
        .indent(true)
        .to_string()
}
