//! The write path: one pooled session with autocommit off holds the
//! transaction; statements rendered by `write_sql.rs` run on blocking
//! threads, and their `RETURNING … INTO` out binds come back as one value
//! per affected row (the driver's DML-returning arrays), typed by the
//! catalog. Dropped without commit, the transaction is rolled back on a
//! blocking thread before the session is pooled again.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{Field, Schema};
use async_trait::async_trait;
use oracle::Connection;
use oracle::sql_type::ToSql;
use tributary_connector::{
    BatchBuilder, ConnectorError, Lock, Result, Value, WriteOp, WriteOutcome, WriteTx,
};

use crate::client::driver::{self, Param, Returned};
use crate::client::pool::Session;
use crate::write_sql::{
    OutColumn, WriteStatement, render_delete_statement, render_insert, render_lock_statement,
    render_update_statement,
};

/// An open transaction on one session.
pub struct OracleTx {
    /// `None` once committed or rolled back.
    session: Option<Session>,
    source: String,
    host: String,
}

impl OracleTx {
    pub fn new(session: Session, source: String, host: String) -> Self {
        Self {
            session: Some(session),
            source,
            host,
        }
    }

    fn session(&mut self) -> Result<&mut Session> {
        self.session
            .as_mut()
            .ok_or_else(|| ConnectorError::internal("the transaction is already over"))
    }

    async fn run(&mut self, op: &WriteOp) -> Result<WriteOutcome> {
        let statements = match op {
            WriteOp::Insert(insert) => render_insert(insert)?,
            WriteOp::Update(update) => vec![render_update_statement(update)?],
            WriteOp::Delete(delete) => vec![render_delete_statement(delete)?],
            WriteOp::Lock(lock) => return self.lock(lock).await,
        };
        let returning: Vec<OutColumn> = statements
            .first()
            .map(|s| s.returning.clone())
            .unwrap_or_default();
        let host = self.host.clone();
        let (affected, rows) = self
            .session()?
            .run(move |conn| {
                let mut affected = 0;
                let mut rows = Vec::new();
                for statement in &statements {
                    let (count, returned) = execute(conn, statement, &host)?;
                    affected += count;
                    rows.extend(returned);
                }
                Ok((affected, rows))
            })
            .await?;
        let returning = if op.returning().is_empty() {
            None
        } else {
            Some(returning_batch(&returning, rows)?)
        };
        Ok(WriteOutcome {
            affected_rows: affected,
            returning,
        })
    }

    /// Reads and locks the rows (`SELECT … FOR UPDATE`), typed by the catalog.
    async fn lock(&mut self, op: &Lock) -> Result<WriteOutcome> {
        let (statement, columns) = render_lock_statement(op)?;
        let schema = Arc::new(Schema::new(
            op.columns
                .iter()
                .zip(&columns)
                .map(|(name, (_, data_type))| Field::new(name, data_type.clone(), true))
                .collect::<Vec<_>>(),
        ));
        let host = self.host.clone();
        let rows = self
            .session()?
            .run(move |conn| {
                let error = |e| driver::error(e, &host);
                let params = Param::binds(&statement.params)?;
                let refs: Vec<&dyn ToSql> = params.iter().map(|p| p as &dyn ToSql).collect();
                let mut rows = Vec::new();
                for row in conn.query(&statement.sql, &refs).map_err(error)? {
                    let row = row.map_err(error)?;
                    let mut values = Vec::with_capacity(columns.len());
                    for (cell, (decode, _)) in row.sql_values().iter().zip(&columns) {
                        values.extend(driver::decode(cell, *decode)?);
                    }
                    rows.push(values);
                }
                Ok(rows)
            })
            .await?;
        let mut builder = BatchBuilder::new(schema, rows.len())?;
        let affected = u64::try_from(rows.len()).unwrap_or(u64::MAX);
        for row in rows {
            builder.push_row(row)?;
        }
        Ok(WriteOutcome {
            affected_rows: affected,
            returning: Some(builder.finish()?),
        })
    }

    async fn finish(mut self: Box<Self>, commit: bool) -> Result<()> {
        let host = self.host.clone();
        let mut session = self
            .session
            .take()
            .ok_or_else(|| ConnectorError::internal("the transaction is already over"))?;
        session
            .run(move |conn| {
                if commit {
                    conn.commit()
                } else {
                    conn.rollback()
                }
                .map_err(|e| driver::error(e, &host))
            })
            .await
    }
}

/// Runs one statement; returns the rows it affected and the returned rows.
fn execute(
    conn: &Connection,
    statement: &WriteStatement,
    host: &str,
) -> Result<(u64, Vec<Vec<Value>>)> {
    let mut params = Param::binds(&statement.statement.params)?;
    let first_out = params.len() + 1;
    params.extend(
        statement
            .returning
            .iter()
            .map(|c| Param::Out(driver::out_type(c.bind))),
    );
    let refs: Vec<&dyn ToSql> = params.iter().map(|p| p as &dyn ToSql).collect();
    let error = |e| driver::error(e, host);
    let mut stmt = conn
        .statement(&statement.statement.sql)
        .build()
        .map_err(error)?;
    stmt.execute(&refs).map_err(error)?;
    let affected = stmt.row_count().map_err(error)?;
    let mut columns: Vec<Vec<Value>> = Vec::with_capacity(statement.returning.len());
    for (k, column) in statement.returning.iter().enumerate() {
        let cells = Returned {
            statement: &stmt,
            index: first_out + k,
        };
        let decoded = driver::decode(&cells, column.decode).map_err(|e| {
            ConnectorError::new(
                e.kind(),
                format!("column `{}`: {}", column.name, e.message()),
            )
        })?;
        columns.push(decoded);
    }
    let rows = columns.first().map_or(0, Vec::len);
    let returned = (0..rows)
        .map(|i| {
            columns
                .iter()
                .map(|c| c.get(i).cloned().unwrap_or(Value::Null))
                .collect()
        })
        .collect();
    Ok((affected, returned))
}

/// The returned rows as a batch typed by the catalog.
fn returning_batch(columns: &[OutColumn], rows: Vec<Vec<Value>>) -> Result<RecordBatch> {
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| Field::new(&c.name, c.data_type.clone(), true))
            .collect::<Vec<_>>(),
    ));
    let mut builder = BatchBuilder::new(schema, rows.len())?;
    for row in rows {
        builder.push_row(row)?;
    }
    builder.finish()
}

#[async_trait]
impl WriteTx for OracleTx {
    async fn execute(&mut self, op: &WriteOp) -> Result<WriteOutcome> {
        let source = self.source.clone();
        self.run(op).await.map_err(|e| e.for_source(&source))
    }

    async fn commit(self: Box<Self>) -> Result<()> {
        let source = self.source.clone();
        self.finish(true).await.map_err(|e| e.for_source(&source))
    }

    async fn rollback(self: Box<Self>) -> Result<()> {
        let source = self.source.clone();
        self.finish(false).await.map_err(|e| e.for_source(&source))
    }
}

impl Drop for OracleTx {
    /// Rolls back on a blocking thread; the session returns to the pool
    /// afterwards, or is closed when the rollback fails.
    fn drop(&mut self) {
        let Some(mut session) = self.session.take() else {
            return;
        };
        let rollback = move || {
            let rolled_back = session.connection().is_ok_and(|c| c.rollback().is_ok());
            if !rolled_back {
                session.mark_broken();
            }
            drop(session);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn_blocking(rollback);
            }
            Err(_) => rollback(),
        }
    }
}
