//! The `Connector` trait: what every registered database offers the server —
//! health, introspection, drift detection, streaming reads and transactions.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use async_trait::async_trait;
use futures::{Stream, StreamExt, TryStreamExt};
use serde::Serialize;
use tributary_schema_cache::{SourceKind, SourceSchema};

use crate::dialect::Dialect;
use crate::error::{ConnectorError, Result};
use crate::render::Statement;
use crate::write::{WriteOp, WriteOutcome, WriteTx};

/// `(schema, table)`: a table inside one source.
pub type TableKey = (String, String);

/// A registered external database. Implementations are cheap to share
/// (`Arc<dyn Connector>`) and hold a bounded connection pool.
#[async_trait]
pub trait Connector: Send + Sync + Debug + 'static {
    /// The registered source name.
    fn name(&self) -> &str;

    /// The database family; for MySQL-protocol sources the flavor seen on the
    /// last connection (MySQL or MariaDB).
    fn kind(&self) -> SourceKind;

    /// How this database spells SQL.
    fn dialect(&self) -> &dyn Dialect;

    /// Opens (or reuses) a connection, runs a trivial query and reports the
    /// server version and the round-trip time.
    async fn ping(&self) -> Result<PingInfo>;

    /// Reads the model of every selected schema.
    async fn introspect(&self) -> Result<SourceSchema>;

    /// The cheap per-table drift fingerprints of every selected schema: the
    /// same values introspection stores in `TableDef::drift_fingerprint`, so a
    /// table whose fingerprint differs from the catalog's has changed.
    async fn drift_fingerprints(&self) -> Result<BTreeMap<TableKey, String>>;

    /// Runs one SELECT with bound parameters and streams its rows as Arrow
    /// batches. With `schema`, rows are delivered in those types (the
    /// catalog's); without it, types come from the driver's column metadata.
    async fn query(&self, statement: &Statement, schema: Option<SchemaRef>) -> Result<RowStream>;

    /// Opens a transaction for writes. It rolls back unless committed.
    async fn begin(&self) -> Result<Box<dyn WriteTx>>;

    /// Runs one write as a whole: all of it or nothing. By default in a
    /// transaction of its own; a connector whose database makes a lone
    /// statement atomic may send it alone (fewer round trips).
    async fn write_one(&self, op: &WriteOp) -> Result<WriteOutcome> {
        self.begin().await?.execute_and_commit(op).await
    }

    /// The pool's current usage.
    fn pool_status(&self) -> PoolStatus;
}

/// What a successful ping saw.
#[derive(Debug, Clone, Serialize)]
pub struct PingInfo {
    pub server_version: String,
    /// Round trip of the ping query, in milliseconds.
    pub latency_ms: f64,
    /// What the database's own settings will make fail or slow, said to
    /// its admin (a pool larger than a connection limit leaves room for,
    /// a MySQL/MariaDB buffer pool smaller than the tables served).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub advice: Vec<String>,
}

impl PingInfo {
    pub fn new(server_version: String, latency: Duration) -> Self {
        Self {
            server_version,
            latency_ms: latency.as_secs_f64() * 1_000.0,
            advice: Vec::new(),
        }
    }
}

/// A pool's usage at one moment.
#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct PoolStatus {
    /// Most connections allowed.
    pub max_size: usize,
    /// Connections open now.
    pub size: usize,
    /// Open connections not in use.
    pub idle: usize,
    /// Requests waiting for a connection.
    pub waiting: usize,
    /// Requests that gave up waiting, past `pool.acquire_timeout_ms`
    /// ([`ErrorKind::Busy`](crate::ErrorKind::Busy)), since the pool was made.
    pub wait_timeouts: u64,
}

/// Counts a pool's waits that ran out ([`PoolStatus::wait_timeouts`]):
/// every connector passes its acquisitions through [`WaitTimeouts::noted`].
#[derive(Debug, Default)]
pub struct WaitTimeouts(AtomicU64);

impl WaitTimeouts {
    /// `acquired`, counted when it is a wait that ran out.
    pub fn noted<T>(&self, acquired: Result<T>) -> Result<T> {
        if let Err(error) = &acquired
            && error.kind() == crate::ErrorKind::Busy
        {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
        acquired
    }

    /// Waits that ran out so far.
    pub fn count(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A stream of record batches with its schema known up front.
pub struct RowStream {
    schema: SchemaRef,
    batches: Pin<Box<dyn Stream<Item = Result<RecordBatch>> + Send>>,
    connected: Option<Instant>,
}

impl RowStream {
    pub fn new(
        schema: SchemaRef,
        batches: impl Stream<Item = Result<RecordBatch>> + Send + 'static,
    ) -> Self {
        Self {
            schema,
            batches: Box::pin(batches),
            connected: None,
        }
    }

    /// The stream of a statement that had its pooled connection `at`
    /// (after any wait for one): what `analyze` tells of the pool's wait.
    #[must_use]
    pub fn connected_at(mut self, at: Instant) -> Self {
        self.connected = Some(at);
        self
    }

    /// When the statement had its connection, if the connector said.
    pub fn connected(&self) -> Option<Instant> {
        self.connected
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Reads every batch (tests, small admin previews; the engine streams).
    pub async fn collect_batches(self) -> Result<Vec<RecordBatch>> {
        self.batches.try_collect().await
    }

    /// Reads every batch and concatenates them into one.
    pub async fn collect_one(self) -> Result<RecordBatch> {
        let schema = self.schema.clone();
        let batches = self.collect_batches().await?;
        arrow_select_concat(&schema, &batches)
    }
}

fn arrow_select_concat(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<RecordBatch> {
    let columns = (0..schema.fields().len())
        .map(|i| {
            let arrays: Vec<&dyn arrow_array::Array> =
                batches.iter().map(|b| b.column(i).as_ref()).collect();
            if arrays.is_empty() {
                Ok(arrow_array::new_empty_array(schema.field(i).data_type()))
            } else {
                concat(&arrays)
            }
        })
        .collect::<Result<Vec<_>>>()?;
    let rows = batches.iter().map(RecordBatch::num_rows).sum();
    RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &arrow_array::RecordBatchOptions::new().with_row_count(Some(rows)),
    )
    .map_err(|e| ConnectorError::internal(e.to_string()))
}

fn concat(arrays: &[&dyn arrow_array::Array]) -> Result<arrow_array::ArrayRef> {
    arrow_select::concat::concat(arrays).map_err(|e| ConnectorError::internal(e.to_string()))
}

impl Stream for RowStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.batches.poll_next_unpin(cx)
    }
}

impl Debug for RowStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowStream")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}
