//! Writes: a transaction (`BEGIN TRANSACTION` … `COMMIT`) on one pooled
//! connection, with rows returned by `OUTPUT` (see `render.rs`).
//!
//! Sessions run with `XACT_ABORT ON`, so a failed statement has usually
//! rolled the whole transaction back on the server already; the transaction
//! then refuses further statements and its commit rolls back (`IF
//! @@TRANCOUNT > 0 ROLLBACK`) and fails. Dropped without commit, it is rolled
//! back on a background task before the connection may serve anyone else;
//! if that fails, or the transaction was dropped in the middle of a
//! statement, the connection is closed instead (the server then rolls back).

use std::sync::Arc;

use arrow_schema::{Field, Schema, SchemaRef};
use async_trait::async_trait;
use futures::TryStreamExt;
use tiberius::{Query, QueryItem};
use tributary_connector::{
    BatchBuilder, ConnectorError, Result, Statement, WriteOp, WriteOutcome, WriteTx,
};

use crate::decode::row_values;
use crate::error::{connection_survives, from_tds};
use crate::params::to_params;
use crate::pool::{Client, PooledConn, discard};
use crate::render::render_write;

const ROLLBACK: &str = "IF @@TRANCOUNT > 0 ROLLBACK TRANSACTION";

/// An open transaction.
pub(crate) struct SqlServerTx {
    /// `None` once committed or rolled back.
    conn: Option<PooledConn>,
    source: String,
    endpoint: String,
    /// A statement failed: the transaction is (or must be) rolled back.
    failed: bool,
    /// A request is on the wire and its response not read to the end.
    in_flight: bool,
}

impl SqlServerTx {
    /// Starts a transaction on `conn`.
    pub(crate) async fn begin(mut conn: PooledConn, source: &str, endpoint: &str) -> Result<Self> {
        match simple(&mut conn, "BEGIN TRANSACTION").await {
            Ok(()) => Ok(Self {
                conn: Some(conn),
                source: source.to_string(),
                endpoint: endpoint.to_string(),
                failed: false,
                in_flight: false,
            }),
            Err(e) => {
                discard(conn);
                Err(from_tds(e, endpoint).for_source(source))
            }
        }
    }

    fn ended(&self) -> ConnectorError {
        ConnectorError::internal("the transaction has ended").for_source(&self.source)
    }

    async fn run(&mut self, op: &WriteOp) -> Result<WriteOutcome> {
        let statements = render_write(op)?;
        let schema = returning_schema(op)?;
        let params: Vec<_> = statements
            .iter()
            .map(|s| to_params(&s.params))
            .collect::<Result<_>>()?;
        // Everything above fails before the server sees anything.
        let conn = self
            .conn
            .as_mut()
            .ok_or_else(|| ConnectorError::internal("the transaction has ended"))?;
        self.in_flight = true;
        let result = match &schema {
            None => execute_all(conn, &statements, params)
                .await
                .map(|affected| WriteOutcome {
                    affected_rows: affected,
                    returning: None,
                }),
            Some(schema) => collect_all(conn, &statements, params, schema.clone()).await,
        };
        match result {
            Ok(outcome) => {
                self.in_flight = false;
                Ok(outcome)
            }
            Err(err) => {
                self.failed = true;
                // A server error ends its statement; the response was read.
                if let Failure::Server(_) = err {
                    self.in_flight = false;
                }
                Err(err.into_error(&self.endpoint))
            }
        }
    }

    /// Ends the transaction with `sql`; the connection goes back to the pool
    /// when the server confirmed, and is closed otherwise.
    async fn finish(&mut self, sql: &str) -> Result<()> {
        let mut conn = self.conn.take().ok_or_else(|| self.ended())?;
        if self.in_flight {
            discard(conn);
            return Err(ConnectorError::unavailable(
                "the connection was left in the middle of a statement and has been closed; \
                 the server rolls the transaction back",
            )
            .for_source(&self.source));
        }
        match simple(&mut conn, sql).await {
            Ok(()) => Ok(()),
            Err(e) => {
                if !connection_survives(&e) {
                    discard(conn);
                }
                Err(from_tds(e, &self.endpoint).for_source(&self.source))
            }
        }
    }
}

/// Why a statement of the write failed.
enum Failure {
    /// The server answered with an error (the response was read).
    Server(tiberius::error::Error),
    /// The driver failed (I/O, protocol): the connection is in doubt.
    Driver(tiberius::error::Error),
    /// A returned value could not be decoded.
    Decode(ConnectorError),
}

impl Failure {
    fn of(err: tiberius::error::Error) -> Self {
        if connection_survives(&err) {
            Self::Server(err)
        } else {
            Self::Driver(err)
        }
    }

    fn into_error(self, endpoint: &str) -> ConnectorError {
        match self {
            Self::Server(e) | Self::Driver(e) => from_tds(e, endpoint),
            Self::Decode(e) => e,
        }
    }
}

fn query_of(statement: &Statement, params: Vec<tiberius::ColumnData<'static>>) -> Query<'static> {
    let mut query = Query::new(statement.sql.clone());
    for param in params {
        query.bind(param);
    }
    query
}

async fn execute_all(
    client: &mut Client,
    statements: &[Statement],
    params: Vec<Vec<tiberius::ColumnData<'static>>>,
) -> Result<u64, Failure> {
    let mut affected = 0;
    for (statement, params) in statements.iter().zip(params) {
        let result = query_of(statement, params)
            .execute(client)
            .await
            .map_err(Failure::of)?;
        affected += result.total();
    }
    Ok(affected)
}

async fn collect_all(
    client: &mut Client,
    statements: &[Statement],
    params: Vec<Vec<tiberius::ColumnData<'static>>>,
    schema: SchemaRef,
) -> Result<WriteOutcome, Failure> {
    let mut builder = BatchBuilder::new(schema.clone(), 16).map_err(Failure::Decode)?;
    for (statement, params) in statements.iter().zip(params) {
        let mut results = query_of(statement, params)
            .query(client)
            .await
            .map_err(Failure::of)?;
        let mut decode_error = None;
        while let Some(item) = results.try_next().await.map_err(Failure::of)? {
            // Read to the end even after a decoding error, so the
            // connection stays usable for the rollback.
            if let (QueryItem::Row(row), None) = (item, &decode_error)
                && let Err(e) = row_values(row, &schema).and_then(|v| builder.push_row(v))
            {
                decode_error = Some(e);
            }
        }
        if let Some(e) = decode_error {
            return Err(Failure::Decode(e));
        }
    }
    let affected = builder.len() as u64;
    let batch = builder.finish().map_err(Failure::Decode)?;
    Ok(WriteOutcome {
        affected_rows: affected,
        returning: Some(batch),
    })
}

/// The returned rows' schema, typed by the catalog (`None` without returning).
fn returning_schema(op: &WriteOp) -> Result<Option<SchemaRef>> {
    if op.returning().is_empty() {
        return Ok(None);
    }
    let table = &op.target().table;
    let fields = op
        .returning()
        .iter()
        .map(|name| {
            table
                .column(name)
                .map(|c| Field::new(name, c.data_type.clone(), true))
                .ok_or_else(|| ConnectorError::invalid_input(format!("unknown column `{name}`")))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(Arc::new(Schema::new(fields))))
}

/// Runs a batch without results (transaction control) and reads its response.
async fn simple(client: &mut Client, sql: &str) -> Result<(), tiberius::error::Error> {
    client
        .simple_query(sql)
        .await?
        .into_results()
        .await
        .map(drop)
}

#[async_trait]
impl WriteTx for SqlServerTx {
    async fn execute(&mut self, op: &WriteOp) -> Result<WriteOutcome> {
        if self.failed {
            return Err(ConnectorError::invalid_input(
                "an earlier statement of this transaction failed; roll it back and start again",
            )
            .for_source(&self.source));
        }
        self.run(op).await.map_err(|e| e.for_source(&self.source))
    }

    async fn commit(mut self: Box<Self>) -> Result<()> {
        if self.failed {
            self.finish(ROLLBACK).await?;
            return Err(ConnectorError::invalid_input(
                "the transaction was rolled back, not committed: one of its statements failed",
            )
            .for_source(&self.source));
        }
        self.finish("COMMIT TRANSACTION").await
    }

    async fn rollback(mut self: Box<Self>) -> Result<()> {
        self.finish(ROLLBACK).await
    }
}

impl Drop for SqlServerTx {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        if self.in_flight {
            discard(conn);
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime to roll back on: closing the connection rolls back.
            discard(conn);
            return;
        };
        let source = self.source.clone();
        // The guard closes the connection unless the rollback is confirmed,
        // also when the task is dropped unrun (a runtime shutting down).
        let mut guard = RollbackGuard(Some(conn));
        runtime.spawn(async move {
            let Some(conn) = guard.0.as_mut() else { return };
            match simple(conn, ROLLBACK).await {
                Ok(()) => drop(guard.0.take()),
                Err(e) => tracing::warn!(
                    source,
                    error = %e,
                    "rollback of a dropped transaction failed; closing the connection"
                ),
            }
        });
    }
}

/// Holds a connection inside a transaction; closes it when dropped holding it.
struct RollbackGuard(Option<PooledConn>);

impl Drop for RollbackGuard {
    fn drop(&mut self) {
        if let Some(conn) = self.0.take() {
            discard(conn);
        }
    }
}
