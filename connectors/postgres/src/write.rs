//! Writes: a transaction (`BEGIN` … `COMMIT`) on one pooled connection,
//! insert / update / delete with native `RETURNING`, and a rollback before
//! the connection can serve anyone else when the transaction is dropped.
//! `BEGIN` travels with the first statement (one round trip for both),
//! and `COMMIT` with the last one when the caller knows it is the last.
//! Inside a transaction a statement seen before goes unnamed with its
//! parameter types ([`Described`]): parse, bind and execute in one round
//! trip, and nothing cached on the server that a changed table could make
//! stale.

use std::collections::HashMap;
use std::error::Error as _;
use std::sync::{Arc, Mutex, PoisonError};

use arrow_schema::{Field, Schema};
use async_trait::async_trait;
use deadpool_postgres::Object;
use tokio_postgres::types::{ToSql, Type};
use tributary_connector::render::{render_delete, render_insert, render_select, render_update};
use tributary_connector::{
    ConnectorError, ErrorKind, PostgresDialect, Result, Statement, WriteOp, WriteOutcome, WriteTx,
};

use crate::encode::PgParam;
use crate::error::{from_pg, is_stale_plan_error};
use crate::flavor::Flavor;
use crate::query::{
    ConnGuard, OutColumn, check_params, decode_rows, prepare_checked, receive, table_changed,
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
    /// `BEGIN` was sent (with the first statement): from then on the
    /// connection must see `COMMIT` or `ROLLBACK` before it is reused.
    begun: bool,
    flavor: Flavor,
    described: Arc<DescribedStatements>,
}

impl PgWriteTx {
    /// A transaction on `conn`; `BEGIN` is sent with its first statement.
    pub(crate) fn begin(
        conn: Object,
        source: &str,
        flavor: Flavor,
        described: Arc<DescribedStatements>,
    ) -> Self {
        Self {
            conn: Some(conn),
            source: source.to_string(),
            failed: false,
            begun: false,
            flavor,
            described,
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
            begin: !self.begun,
            commit,
        };
        self.begun = true;
        // No statement cache inside a transaction: a stale cached plan fails
        // the statement, which aborts the whole transaction. Statements seen
        // before go unnamed, with their types (`Described`).
        execute(
            self.conn()?,
            self.flavor,
            op,
            framing,
            Preparing::Described(&self.described),
        )
        .await
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
        if !self.begun {
            // Nothing was sent: the connection goes back as it came.
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
        if !self.begun {
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
                // Mostly the transaction has ended already (a statement
                // failing before `COMMIT` turns it into a rollback); if not,
                // this ends it (a rollback outside one only warns).
                if let Err(rollback) = self.finish("ROLLBACK").await {
                    tracing::warn!(error = %rollback, "rollback after a failed last write");
                }
                Err(error.for_source(&self.source))
            }
        }
    }
}

impl Drop for PgWriteTx {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        if !self.begun {
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

/// What a statement takes and returns, as PostgreSQL described it when it
/// was first prepared.
struct Described {
    params: Vec<Type>,
    columns: Vec<OutColumn>,
    column_types: Vec<Type>,
}

/// The write statements of one source described so far, by text: later
/// runs send them unnamed with their parameter types, one round trip.
/// A statement whose run fails is forgotten (the table may have changed),
/// and rows whose column types are not the described ones are refused,
/// never decoded.
#[derive(Default)]
pub(crate) struct DescribedStatements {
    known: Mutex<HashMap<String, Arc<Described>>>,
}

impl DescribedStatements {
    /// At most this many statements are remembered (then forgotten at once).
    const LIMIT: usize = 1024;

    fn get(&self, sql: &str) -> Option<Arc<Described>> {
        let known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        known.get(sql).cloned()
    }

    fn insert(&self, sql: &str, described: Described) {
        let mut known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        if known.len() >= Self::LIMIT {
            known.clear();
        }
        known.insert(sql.to_string(), Arc::new(described));
    }

    fn forget(&self, sql: &str) {
        let mut known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        known.remove(sql);
    }
}

/// How a write's statement is prepared.
enum Preparing<'a> {
    /// From the connection's statement cache.
    Cached,
    /// Unnamed with the described types when seen before; else prepared
    /// afresh (and then described).
    Described(&'a DescribedStatements),
}

/// What travels with a statement: `BEGIN` before it (the transaction's
/// first), `COMMIT` after it (its last).
#[derive(Debug, Clone, Copy, Default)]
struct Framing {
    begin: bool,
    commit: bool,
}

/// Runs `op` on `conn` with `framing`. Returned rows are typed by the
/// catalog model of the target table.
async fn execute(
    conn: &Object,
    flavor: Flavor,
    op: &WriteOp,
    framing: Framing,
    preparing: Preparing<'_>,
) -> Result<WriteOutcome> {
    let statement: Statement = match op {
        WriteOp::Insert(insert) => render_insert(&PostgresDialect, insert)?,
        WriteOp::Update(update) => render_update(&PostgresDialect, update)?,
        WriteOp::Delete(delete) => render_delete(&PostgresDialect, delete)?,
        WriteOp::Lock(lock) => render_select(
            &PostgresDialect,
            &lock.target,
            &lock.columns,
            &lock.filter,
            true,
        )?,
    };
    let sql = returning_as_text(flavor, op, &statement.sql);
    let (cached, described) = match preparing {
        Preparing::Cached => (true, None),
        Preparing::Described(described) => (false, Some(described)),
    };
    if let Some(statements) = described
        && let Some(known) = statements.get(&sql)
    {
        let done = execute_described(conn, op, &sql, &statement, &known, framing).await;
        if done.is_err() {
            statements.forget(&sql);
        }
        return done;
    }
    let before = Framing {
        commit: false,
        ..framing
    };
    let prepared = framed(conn, before, prepare_checked(flavor, conn, &sql, cached)).await?;
    let params = PgParam::all(&statement.params);
    check_params(prepared.statement.params(), &params)?;
    if let Some(statements) = described
        && flavor == Flavor::Postgres
        && !prepared.wrapped
    {
        statements.insert(
            &sql,
            Described {
                params: prepared.statement.params().to_vec(),
                columns: prepared.columns.clone(),
                column_types: prepared
                    .statement
                    .columns()
                    .iter()
                    .map(|c| c.type_().clone())
                    .collect(),
            },
        );
    }
    let outcome = if op.returning().is_empty() {
        let affected = conn
            .execute_raw(&prepared.statement, params.iter())
            .await
            .map_err(from_pg)?;
        WriteOutcome {
            affected_rows: affected,
            returning: None,
        }
    } else {
        let schema = returned_schema(op)?;
        let rows = conn
            .query_raw(&prepared.statement, params.iter())
            .await
            .map_err(from_pg)?;
        let (rows, affected) = receive(rows).await?;
        WriteOutcome {
            affected_rows: affected,
            returning: Some(decode_rows(&rows, &prepared.columns, schema, None)?),
        }
    };
    // Prepared just now, the statement could not go out with `COMMIT`.
    if framing.commit {
        conn.batch_execute("COMMIT").await.map_err(from_pg)?;
    }
    Ok(outcome)
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

/// [`execute`] of a statement described before: sent unnamed with its
/// parameter types (parse, bind, execute: one round trip, with `BEGIN` and
/// `COMMIT` as framed).
async fn execute_described(
    conn: &Object,
    op: &WriteOp,
    sql: &str,
    statement: &Statement,
    known: &Described,
    framing: Framing,
) -> Result<WriteOutcome> {
    let schema = returned_schema(op)?;
    let params = PgParam::all(&statement.params);
    check_params(&known.params, &params)?;
    let typed = params
        .iter()
        .zip(&known.params)
        .map(|(param, ty)| (param as &(dyn ToSql + Sync), ty.clone()));
    // The rows are received whole before `COMMIT` is answered: the
    // connection answers requests in order.
    let (rows, affected) = framed(conn, framing, async {
        let rows = conn.query_typed_raw(sql, typed).await.map_err(|e| {
            // A column's type or name changed under the described
            // statement: retried, it is described afresh.
            if is_changed_table(&e) {
                table_changed()
            } else {
                from_pg(e)
            }
        })?;
        receive(rows).await
    })
    .await?;
    let batch =
        decode_rows(&rows, &known.columns, schema, Some(&known.column_types)).map_err(|error| {
            if framing.commit {
                committed_unread(error)
            } else {
                error
            }
        })?;
    Ok(WriteOutcome {
        affected_rows: affected,
        returning: (!op.returning().is_empty()).then_some(batch),
    })
}

/// PostgreSQL's answer to a statement whose table no longer has the
/// columns or types it was described with: datatype mismatch, undefined
/// column or table, cannot coerce.
fn is_changed_table(err: &tokio_postgres::Error) -> bool {
    err.as_db_error()
        .is_some_and(|db| matches!(db.code().code(), "42804" | "42703" | "42P01" | "42846"))
}

/// `work` (a statement's future, not yet polled, that queues its statement
/// at its first poll), with `BEGIN` before it and `COMMIT` after it as
/// `framing` says: all go out before any answer is awaited, in this order.
/// A statement that fails turns the `COMMIT` into a rollback.
async fn framed<T>(
    conn: &Object,
    framing: Framing,
    work: impl Future<Output = Result<T>>,
) -> Result<T> {
    let send = |sql: &'static str, wanted: bool| async move {
        if wanted {
            conn.batch_execute(sql).await.map_err(from_pg)
        } else {
            Ok(())
        }
    };
    let (begun, done, committed) = futures::join!(
        send("BEGIN", framing.begin),
        work,
        send("COMMIT", framing.commit)
    );
    begun?;
    let done = done?;
    committed?;
    Ok(done)
}

/// A statement that ran and was committed with its transaction, but whose
/// returned rows cannot be read: said as such, so that nobody sends the
/// write again.
fn committed_unread(error: ConnectorError) -> ConnectorError {
    ConnectorError::internal(format!(
        "the write was committed, but the rows it returned cannot be read ({error}); \
         read them anew"
    ))
}

/// One write sent alone, without `BEGIN` and `COMMIT`: PostgreSQL runs a
/// lone statement in a transaction of its own, so it is all or nothing.
/// Its statement stays prepared on the connection (a statement the server
/// refuses as a stale plan after `ALTER TABLE` is prepared afresh, once):
/// one round trip once warm, where a transaction takes three.
pub(crate) async fn write_one(conn: Object, flavor: Flavor, op: &WriteOp) -> Result<WriteOutcome> {
    let alone = Framing::default();
    match execute(&conn, flavor, op, alone, Preparing::Cached).await {
        Err(e) if is_stale_plan_error(&e) => {
            conn.statement_cache.clear();
            execute(&conn, flavor, op, alone, Preparing::Cached).await
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
