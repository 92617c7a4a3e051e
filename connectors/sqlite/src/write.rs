//! The write path: a transaction holds one pooled connection in
//! `BEGIN IMMEDIATE` (the write lock is taken up front, so a second writer
//! waits up to the busy timeout, then fails with `Conflict`). Statements are
//! rendered by core with the SQLite dialect and run on a blocking thread with
//! `RETURNING` rows typed by the catalog. Dropping the transaction without
//! commit rolls it back before the connection returns to the pool.

use std::sync::Arc;

use arrow_schema::{Field, Schema, SchemaRef};
use async_trait::async_trait;
use tributary_connector::render::{render_delete, render_insert, render_select, render_update};
use tributary_connector::{
    BatchBuilder, ConnectorError, Result, SqliteDialect, Statement, WriteOp, WriteOutcome, WriteTx,
};

use crate::classify::classify;
use crate::pool::{Pool, PooledConn, run_blocking};
use crate::query::{RowDecoder, prepare};

/// An open SQLite transaction.
pub(crate) struct SqliteTx {
    /// `None` only after a worker thread failed mid-statement (the
    /// connection was then rolled back and released).
    conn: Option<PooledConn>,
    source: String,
}

impl SqliteTx {
    /// Takes a connection and starts an immediate (write-locking) transaction.
    pub(crate) async fn begin(pool: &Pool, source: &str) -> Result<Self> {
        let conn = pool.acquire().await?;
        let (conn, begun) = run_blocking(conn, |c| {
            c.timed(|db| db.execute_batch("BEGIN IMMEDIATE").map_err(classify))
        })
        .await?;
        begun?;
        Ok(Self {
            conn: Some(conn),
            source: source.to_string(),
        })
    }

    fn take(&mut self) -> Result<PooledConn> {
        self.conn.take().ok_or_else(|| {
            ConnectorError::internal(
                "the transaction's connection was lost; it has been rolled back",
            )
            .for_source(&self.source)
        })
    }

    /// Runs `COMMIT` or `ROLLBACK`.
    async fn finish(mut self: Box<Self>, sql: &'static str) -> Result<()> {
        let conn = self.take()?;
        let (_conn, done) = run_blocking(conn, move |c| {
            c.timed(|db| db.execute_batch(sql).map_err(classify))
        })
        .await
        .map_err(|e| e.for_source(&self.source))?;
        done.map_err(|e| e.for_source(&self.source))
    }
}

/// The schema of returned rows: the named columns' catalog types.
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
                .map(|c| Field::new(name, c.data_type.clone(), c.nullable))
                .ok_or_else(|| {
                    ConnectorError::invalid_input(format!(
                        "unknown column `{name}` in {}",
                        table.name
                    ))
                })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(Arc::new(Schema::new(fields))))
}

/// Runs one rendered write; with a returning schema, reads the returned rows.
fn execute_write(
    conn: &PooledConn,
    statement: &Statement,
    returning: Option<SchemaRef>,
) -> Result<WriteOutcome> {
    conn.timed(|db| {
        let mut prepared = prepare(db, statement)?;
        let Some(schema) = returning else {
            let affected = prepared.raw_execute().map_err(classify)?;
            return Ok(WriteOutcome {
                affected_rows: affected as u64,
                returning: None,
            });
        };
        let mut builder = BatchBuilder::new(schema.clone(), 16)?;
        let mut decoder = RowDecoder::new(&schema)?;
        let mut rows = prepared.raw_query();
        let mut affected = 0u64;
        while let Some(row) = rows.next().map_err(classify)? {
            decoder.push(row, &mut builder)?;
            affected += 1;
        }
        Ok(WriteOutcome {
            affected_rows: affected,
            returning: Some(builder.finish()?),
        })
    })
}

#[async_trait]
impl WriteTx for SqliteTx {
    async fn execute(&mut self, op: &WriteOp) -> Result<WriteOutcome> {
        let source = self.source.clone();
        let rendered = match op {
            WriteOp::Insert(insert) => render_insert(&SqliteDialect, insert),
            WriteOp::Update(update) => render_update(&SqliteDialect, update),
            WriteOp::Delete(delete) => render_delete(&SqliteDialect, delete),
            // The transaction holds the database's write lock already.
            WriteOp::Lock(lock) => render_select(
                &SqliteDialect,
                &lock.target,
                &lock.columns,
                &lock.filter,
                false,
            ),
        };
        let statement = rendered.map_err(|e| e.for_source(&source))?;
        let returning = returning_schema(op).map_err(|e| e.for_source(&source))?;
        let conn = self.take()?;
        let (conn, outcome) = run_blocking(conn, move |c| execute_write(c, &statement, returning))
            .await
            .map_err(|e| e.for_source(&source))?;
        self.conn = Some(conn);
        outcome.map_err(|e| e.for_source(&source))
    }

    async fn commit(self: Box<Self>) -> Result<()> {
        self.finish("COMMIT").await
    }

    async fn rollback(self: Box<Self>) -> Result<()> {
        self.finish("ROLLBACK").await
    }
}
