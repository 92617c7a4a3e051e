//! Writes: a transaction (`BEGIN` … `COMMIT`) on one pooled connection,
//! insert / update / delete with native `RETURNING`, and a rollback before
//! the connection can serve anyone else when the transaction is dropped
//! open (`BEGIN` sent, `COMMIT` not).
//! Statements are prepared once per connection (its statement cache, before
//! `BEGIN`); `BEGIN` travels with the first statement (one round trip for
//! both), and `COMMIT` with the last one when the caller knows it is the
//! last. A cached plan a changed table made stale fails its statement: the
//! transaction's first is sent again, prepared afresh; a later one is a
//! conflict to retry (its transaction is aborted, nothing written).

use std::error::Error as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arrow_schema::{Field, Schema};
use async_trait::async_trait;
use deadpool_postgres::Object;
use tokio_postgres::Row;
use tributary_connector::render::render_write;
use tributary_connector::{
    BatchError, ConnectorError, ErrorKind, PostgresDialect, Result, Statement, WriteOp,
    WriteOutcome, WriteTx,
};

use crate::encode::PgParam;
use crate::error::{from_pg, may_be_stale};
use crate::flavor::Flavor;
use crate::query::{
    ConnGuard, Prepared, check_params, decode_rows, prepare_checked, receive, table_changed,
    text_fallback_sql,
};

/// An open transaction.
pub(crate) struct PgWriteTx {
    /// `None` once committed or rolled back.
    conn: Option<Object>,
    source: String,
    /// A statement failed: PostgreSQL has aborted the transaction, and a
    /// `COMMIT` would silently roll back.
    failed: bool,
    /// What of `BEGIN` and `COMMIT` has gone out on the connection.
    sent: Sent,
    flavor: Flavor,
}

/// What of a transaction's framing has been queued on its connection,
/// marked in the same poll that queues it: a request dropped mid-way knows
/// whether the connection is inside a transaction (`BEGIN` out, `COMMIT`
/// not), the one case that needs a `ROLLBACK` — sent outside one, it is a
/// round trip for a warning in the server's log. (Atomics: the statement
/// futures that mark it are `Send`.)
#[derive(Debug, Default)]
struct Sent {
    begin: AtomicBool,
    commit: AtomicBool,
}

impl Sent {
    fn begin(&self) -> bool {
        self.begin.load(Ordering::Relaxed)
    }

    fn commit(&self) -> bool {
        self.commit.load(Ordering::Relaxed)
    }

    /// Whether the connection is left inside a transaction once what went
    /// out is answered.
    fn open(&self) -> bool {
        self.begin() && !self.commit()
    }

    /// A `ROLLBACK` went out after `BEGIN`: the next statement begins again.
    fn rolled_back(&self) {
        self.begin.store(false, Ordering::Relaxed);
    }

    fn mark(&self, framing: Framing) {
        if framing.begin {
            self.begin.store(true, Ordering::Relaxed);
        }
        if framing.commit {
            self.commit.store(true, Ordering::Relaxed);
        }
    }
}

impl PgWriteTx {
    /// A transaction on `conn`; `BEGIN` is sent with its first statement.
    pub(crate) fn begin(conn: Object, source: &str, flavor: Flavor) -> Self {
        Self {
            conn: Some(conn),
            source: source.to_string(),
            failed: false,
            sent: Sent::default(),
            flavor,
        }
    }

    fn conn(&self) -> Result<&Object> {
        self.conn.as_ref().ok_or_else(|| self.ended())
    }

    /// The connection, taken: the transaction ends with what is sent on it.
    fn take_conn(&mut self) -> Result<Object> {
        self.conn.take().ok_or_else(|| self.ended())
    }

    fn ended(&self) -> ConnectorError {
        ConnectorError::internal("the transaction has ended").for_source(&self.source)
    }

    async fn run(&mut self, op: &WriteOp, commit: bool) -> Result<WriteOutcome> {
        let framing = Framing {
            begin: !self.sent.begin(),
            commit,
        };
        let earlier = !framing.begin;
        execute_fresh_if_stale(self.conn()?, self.flavor, op, framing, &self.sent, earlier).await
    }

    /// The error for a statement after a failed one.
    fn refused(&self) -> ConnectorError {
        ConnectorError::invalid_input(
            "an earlier statement of this transaction failed; roll it back and start again",
        )
        .for_source(&self.source)
    }

    /// Ends the transaction with `sql` (`COMMIT` or `ROLLBACK`). The
    /// connection goes back to the pool when the server confirmed, and is
    /// closed otherwise.
    async fn finish(&mut self, sql: &str) -> Result<()> {
        let conn = self.take_conn()?;
        if !self.sent.open() {
            // Outside a transaction (nothing sent, or a failed statement
            // whose `COMMIT` went with it): back to the pool as it is.
            return Ok(());
        }
        match conn.batch_execute(sql).await {
            Ok(()) => Ok(()),
            Err(e) => {
                let err = from_pg(e).for_source(&self.source);
                if err.kind() == ErrorKind::Unavailable {
                    drop(Object::take(conn));
                }
                // A failed COMMIT (deferred constraint, serialization) has
                // already ended the transaction on the server.
                Err(err)
            }
        }
    }
}

#[async_trait]
impl WriteTx for PgWriteTx {
    async fn execute(&mut self, op: &WriteOp) -> Result<WriteOutcome> {
        if self.failed {
            return Err(self.refused());
        }
        let result = self.run(op, false).await;
        if let Err(err) = &result {
            // Errors found before anything reached the server (unknown
            // columns, unconvertible values) leave the transaction usable.
            if !matches!(err.kind(), ErrorKind::InvalidInput) || err.source().is_some() {
                self.failed = true;
            }
        }
        result.map_err(|e| e.for_source(&self.source))
    }

    async fn commit(mut self: Box<Self>) -> Result<()> {
        if self.failed {
            self.finish("ROLLBACK").await?;
            return Err(ConnectorError::invalid_input(
                "the transaction was rolled back, not committed: one of its statements failed",
            )
            .for_source(&self.source));
        }
        self.finish("COMMIT").await
    }

    async fn rollback(mut self: Box<Self>) -> Result<()> {
        self.finish("ROLLBACK").await
    }

    async fn execute_and_commit(mut self: Box<Self>, op: &WriteOp) -> Result<WriteOutcome> {
        if self.failed {
            let refused = self.refused();
            self.finish("ROLLBACK").await?;
            return Err(refused);
        }
        if !self.sent.begin() {
            // Nothing sent yet: a lone statement is a transaction of its own.
            let conn = self.take_conn()?;
            return write_one(conn, self.flavor, op)
                .await
                .map_err(|e| e.for_source(&self.source));
        }
        match self.run(op, true).await {
            Ok(outcome) => {
                // Committed: the connection goes back to the pool.
                drop(self.conn.take());
                Ok(outcome)
            }
            Err(error) => {
                // Once its `COMMIT` went out, the failed statement has
                // ended the transaction (rolled back); if it failed before
                // that, this ends it.
                if let Err(rollback) = self.finish("ROLLBACK").await {
                    tracing::warn!(error = %rollback, "rollback after a failed last write");
                }
                Err(error.for_source(&self.source))
            }
        }
    }

    async fn execute_all_and_commit(
        mut self: Box<Self>,
        ops: &[&WriteOp],
    ) -> std::result::Result<Vec<WriteOutcome>, BatchError> {
        if let [op] = ops {
            return self
                .execute_and_commit(op)
                .await
                .map(|outcome| vec![outcome])
                .map_err(|error| BatchError {
                    statement: Some(0),
                    error,
                });
        }
        let at_first = |error: ConnectorError| BatchError {
            statement: Some(0),
            error,
        };
        if self.failed {
            let refused = self.refused();
            self.finish("ROLLBACK").await.map_err(at_first)?;
            return Err(at_first(refused));
        }
        let framing = Framing {
            begin: !self.sent.begin(),
            commit: true,
        };
        let conn = self.conn().map_err(at_first)?;
        match execute_all_fresh_if_stale(conn, self.flavor, ops, framing, &self.sent).await {
            Ok(outcomes) => {
                // Committed: the connection goes back to the pool.
                drop(self.conn.take());
                Ok(outcomes)
            }
            Err(mut failed) => {
                // As for one last write: a `COMMIT` that went out after the
                // failure rolled back; if none did, this ends it.
                if let Err(rollback) = self.finish("ROLLBACK").await {
                    tracing::warn!(error = %rollback, "rollback after failed last writes");
                }
                failed.error = failed.error.for_source(&self.source);
                Err(failed)
            }
        }
    }
}

impl Drop for PgWriteTx {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        if !self.sent.open() {
            // Nothing began, or the `COMMIT` is out: the connection answers
            // its queue in order and goes back to the pool as it is.
            return;
        }
        // The guard closes the connection unless the rollback is confirmed,
        // so a connection inside a transaction never goes back to the pool:
        // not if the rollback fails, and not if its task is dropped unrun
        // (a runtime shutting down).
        let mut guard = ConnGuard::new(conn);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    let Some(conn) = guard.conn() else { return };
                    match conn.batch_execute("ROLLBACK").await {
                        Ok(()) => guard.complete(),
                        Err(e) => tracing::warn!(
                            error = %e,
                            "rollback of a dropped transaction failed; closing the connection"
                        ),
                    }
                });
            }
            // No runtime to run the rollback on: the guard closes the
            // connection, and the server aborts the transaction.
            Err(_) => drop(guard),
        }
    }
}

/// What travels with a statement: `BEGIN` before it (the transaction's
/// first), `COMMIT` after it (its last).
#[derive(Debug, Clone, Copy, Default)]
struct Framing {
    begin: bool,
    commit: bool,
}

/// Runs `op` on `conn` with `framing`, its statement from the connection's
/// cache (prepared on first use, before `BEGIN` goes out). Returned rows
/// are typed by the catalog model of the target table.
async fn execute(
    conn: &Object,
    flavor: Flavor,
    op: &WriteOp,
    framing: Framing,
    sent: &Sent,
) -> Result<WriteOutcome> {
    let ready = Ready::prepare(conn, flavor, op).await?;
    let params = ready.params()?;
    // The rows are received whole before `COMMIT` is answered: the
    // connection answers requests in order.
    let (rows, affected) = framed(conn, framing, sent, ready.send(conn, &params)).await?;
    ready.outcome(&rows, affected)
}

/// The returned rows' schema, typed by the catalog model of the target table.
fn returned_schema(op: &WriteOp) -> Result<Arc<Schema>> {
    let table = &op.target().table;
    let fields: Vec<Field> = op
        .returning()
        .iter()
        .map(|name| {
            let data_type = table
                .column(name)
                .map(|c| c.data_type.clone())
                .ok_or_else(|| ConnectorError::invalid_input(format!("unknown column `{name}`")))?;
            Ok(Field::new(name, data_type, true))
        })
        .collect::<Result<_>>()?;
    Ok(Arc::new(Schema::new(fields)))
}

/// `work` (a statement's future, not yet polled, that queues its statement
/// at its first poll), with `BEGIN` before it and `COMMIT` after it as
/// `framing` says: all go out before any answer is awaited, in this order,
/// and `sent` marks them out. A statement that fails turns the `COMMIT`
/// into a rollback.
async fn framed<T>(
    conn: &Object,
    framing: Framing,
    sent: &Sent,
    work: impl Future<Output = Result<T>>,
) -> Result<T> {
    // The join's first poll queues all three, in this same poll.
    sent.mark(framing);
    let (begun, done, committed) = futures::join!(
        frame(conn, "BEGIN", framing.begin),
        work,
        frame(conn, "COMMIT", framing.commit)
    );
    begun?;
    let done = done?;
    committed?;
    Ok(done)
}

/// `BEGIN` or `COMMIT` when `wanted`; queued at the first poll.
async fn frame(conn: &Object, sql: &'static str, wanted: bool) -> Result<()> {
    if wanted {
        conn.batch_execute(sql).await.map_err(from_pg)
    } else {
        Ok(())
    }
}

/// A write whose statement is prepared on the connection, ready to go out.
struct Ready {
    statement: Statement,
    prepared: Prepared,
    /// The returned rows' schema; `None` when nothing is returned.
    returned: Option<Arc<Schema>>,
}

impl Ready {
    async fn prepare(conn: &Object, flavor: Flavor, op: &WriteOp) -> Result<Self> {
        let statement = render_write(&PostgresDialect, op)?;
        let sql = returning_as_text(flavor, op, &statement.sql);
        let prepared = prepare_checked(flavor, conn, &sql, true).await?;
        let returned = if op.returning().is_empty() {
            None
        } else {
            Some(returned_schema(op)?)
        };
        Ok(Self {
            statement,
            prepared,
            returned,
        })
    }

    /// The statement's values, checked against its parameters' types.
    fn params(&self) -> Result<Vec<PgParam<'_>>> {
        let params = PgParam::all(&self.statement.params);
        check_params(self.prepared.statement.params(), &params)?;
        Ok(params)
    }

    /// Runs the statement with `params` (queued at the first poll): its
    /// rows, received whole, and the rows affected.
    async fn send(&self, conn: &Object, params: &[PgParam<'_>]) -> Result<(Vec<Row>, u64)> {
        let rows = conn
            .query_raw(&self.prepared.statement, params.iter())
            .await
            .map_err(from_pg)?;
        receive(rows).await
    }

    /// The write's outcome from what [`Ready::send`] received.
    fn outcome(&self, rows: &[Row], affected: u64) -> Result<WriteOutcome> {
        let returning = match &self.returned {
            Some(schema) => Some(decode_rows(rows, &self.prepared.columns, schema.clone())?),
            None => None,
        };
        Ok(WriteOutcome {
            affected_rows: affected,
            returning,
        })
    }
}

/// `ops`, in order, as the transaction's last writes with `COMMIT`
/// (and `BEGIN` as `framing` says): every statement is prepared first
/// (from the connection's cache), then all go out before any answer is
/// awaited — one round trip. A statement that fails aborts the
/// transaction: the ones after it fail too, and the `COMMIT` rolls back;
/// the first failure is the answer.
async fn execute_all(
    conn: &Object,
    flavor: Flavor,
    ops: &[&WriteOp],
    framing: Framing,
    sent: &Sent,
) -> std::result::Result<Vec<WriteOutcome>, BatchError> {
    let failed_at = |at: usize| {
        move |error: ConnectorError| BatchError {
            statement: Some(at),
            error,
        }
    };
    let mut ready = Vec::with_capacity(ops.len());
    for (at, op) in ops.iter().enumerate() {
        ready.push(
            Ready::prepare(conn, flavor, op)
                .await
                .map_err(failed_at(at))?,
        );
    }
    let mut params = Vec::with_capacity(ops.len());
    for (at, r) in ready.iter().enumerate() {
        params.push(r.params().map_err(failed_at(at))?);
    }
    // Each statement's future queues it at its first poll; `join_all`
    // polls them in order, between `BEGIN` and `COMMIT`, in one poll.
    let works = ready
        .iter()
        .zip(&params)
        .map(|(r, params)| r.send(conn, params));
    sent.mark(framing);
    let (begun, received, committed) = futures::join!(
        frame(conn, "BEGIN", framing.begin),
        futures::future::join_all(works),
        frame(conn, "COMMIT", framing.commit)
    );
    let mut outcomes = Vec::with_capacity(ops.len());
    for (at, (r, done)) in ready.iter().zip(received).enumerate() {
        let outcome = done.and_then(|(rows, affected)| r.outcome(&rows, affected));
        outcomes.push(outcome.map_err(failed_at(at))?);
    }
    let framing_failed = |error| BatchError {
        statement: None,
        error,
    };
    begun.map_err(framing_failed)?;
    committed.map_err(framing_failed)?;
    Ok(outcomes)
}

/// [`execute_all`], sent once more with the statements prepared afresh
/// when one may have met a table changed since it was prepared
/// ([`may_be_stale`]) and the batch began the transaction (nothing else
/// is lost with it: the `COMMIT` rolled back); after earlier statements of
/// the transaction it is a conflict, as for one statement.
async fn execute_all_fresh_if_stale(
    conn: &Object,
    flavor: Flavor,
    ops: &[&WriteOp],
    framing: Framing,
    sent: &Sent,
) -> std::result::Result<Vec<WriteOutcome>, BatchError> {
    match execute_all(conn, flavor, ops, framing, sent).await {
        Err(failed) if may_be_stale(&failed.error) => {
            conn.statement_cache.clear();
            if !framing.begin {
                return Err(BatchError {
                    statement: failed.statement,
                    error: table_changed(),
                });
            }
            execute_all(conn, flavor, ops, framing, sent).await
        }
        done => done,
    }
}

/// One write sent alone, without `BEGIN` and `COMMIT`: PostgreSQL runs a
/// lone statement in a transaction of its own, so it is all or nothing.
/// Its statement stays prepared on the connection (one that may have failed
/// for a table changed since, [`may_be_stale`], is prepared afresh, once):
/// one round trip once warm, where a transaction takes two.
pub(crate) async fn write_one(conn: Object, flavor: Flavor, op: &WriteOp) -> Result<WriteOutcome> {
    execute_fresh_if_stale(
        &conn,
        flavor,
        op,
        Framing::default(),
        &Sent::default(),
        false,
    )
    .await
}

/// [`execute`], sent once more with its statement prepared afresh when it
/// may have met a table changed since it was prepared ([`may_be_stale`])
/// and nothing else is lost with it: a lone write, or a transaction's first
/// statement. After `earlier` statements of its transaction, which are
/// lost with it, it is a conflict: the whole request is to be sent again.
async fn execute_fresh_if_stale(
    conn: &Object,
    flavor: Flavor,
    op: &WriteOp,
    framing: Framing,
    sent: &Sent,
    earlier: bool,
) -> Result<WriteOutcome> {
    match execute(conn, flavor, op, framing, sent).await {
        Err(e) if may_be_stale(&e) => {
            conn.statement_cache.clear();
            if earlier {
                return Err(table_changed());
            }
            // The failed statement aborted the transaction it began, if its
            // `BEGIN` went out (it fails in preparing, before); its
            // `COMMIT`, if sent, ended it.
            if sent.open() {
                conn.batch_execute("ROLLBACK").await.map_err(from_pg)?;
                sent.rolled_back();
            }
            execute(conn, flavor, op, framing, sent).await
        }
        done => done,
    }
}

/// On KingbaseES, the statement with the returned columns the catalog
/// serves as text cast to `text` up front: the driver would otherwise
/// look their types up in `pg_catalog`, and a failed lookup aborts the
/// transaction.
fn returning_as_text(flavor: Flavor, op: &WriteOp, sql: &str) -> String {
    if flavor != Flavor::Kingbase {
        return sql.to_string();
    }
    let table = &op.target().table;
    let as_text: Vec<bool> = op
        .returning()
        .iter()
        .map(|name| {
            table
                .column(name)
                .is_some_and(|c| c.unsupported_type.is_some())
        })
        .collect();
    if as_text.iter().any(|t| *t) {
        text_fallback_sql(sql, &as_text)
    } else {
        sql.to_string()
    }
}
