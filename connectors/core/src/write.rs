//! The write path's contract: insert / update / delete operations with
//! returning, and locking reads of the rows about to be written, executed
//! inside a transaction that rolls back unless committed.

use std::sync::Arc;

use arrow_array::RecordBatch;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tributary_schema_cache::TableDef;

use crate::error::{ConnectorError, Result};
use crate::value::Value;

/// The table a write goes to, with its catalog model (column names are checked
/// against it, returned rows are typed by it, and MySQL's emulated RETURNING
/// uses its primary key), shared with the catalog snapshot rather than copied.
#[derive(Debug, Clone)]
pub struct WriteTarget {
    pub schema: String,
    pub table: Arc<TableDef>,
}

/// `INSERT INTO target (columns) VALUES rows… RETURNING returning`.
#[derive(Debug, Clone)]
pub struct Insert {
    pub target: WriteTarget,
    pub columns: Vec<String>,
    /// Each row has one value per column.
    pub rows: Vec<Vec<Value>>,
    /// Columns to return for each inserted row (empty: none).
    pub returning: Vec<String>,
}

/// `UPDATE target SET set…, increment…, json… WHERE filter RETURNING returning`.
#[derive(Debug, Clone)]
pub struct Update {
    pub target: WriteTarget,
    /// `column = value`.
    pub set: Vec<(String, Value)>,
    /// `column = column + value` (GraphQL's `_inc`): computed by the
    /// database, so concurrent increments do not lose each other.
    pub increment: Vec<(String, Value)>,
    /// JSON documents edited in place by the database (GraphQL's `_append`
    /// …), for the same reason; only where the dialect has jsonb's
    /// operators ([`crate::Dialect::jsonb_operators`]).
    pub json: Vec<(String, JsonEdit)>,
    pub filter: Predicate,
    pub returning: Vec<String>,
}

/// An edit of a `jsonb` document, as PostgreSQL's operators make it
/// (Hasura's `_append`, `_prepend`, `_delete_key`, `_delete_elem`,
/// `_delete_at_path`). A NULL document stays NULL.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonEdit {
    /// `column || value`: an object's keys merged in (the value's win), an
    /// array's items appended.
    Append(serde_json::Value),
    /// `value || column`.
    Prepend(serde_json::Value),
    /// `column - key`: the object's key, or the array's string items equal
    /// to it, removed.
    DeleteKey(String),
    /// `column - index`: the array's item at `index` (from the end when
    /// negative) removed.
    DeleteElem(i64),
    /// `column #- path`: the item at the path of keys and array indexes
    /// removed.
    DeleteAtPath(Vec<String>),
}

/// `DELETE FROM target WHERE filter RETURNING returning`.
#[derive(Debug, Clone)]
pub struct Delete {
    pub target: WriteTarget,
    pub filter: Predicate,
    pub returning: Vec<String>,
}

/// `SELECT columns FROM target WHERE filter FOR UPDATE`: the rows a
/// transaction is about to write, as they are now, locked until it ends
/// (a concurrent write waits). Filters read outside the transaction are
/// checked again on them. Answers the rows as returned rows.
#[derive(Debug, Clone)]
pub struct Lock {
    pub target: WriteTarget,
    pub filter: Predicate,
    pub columns: Vec<String>,
}

/// One statement of the write path.
#[derive(Debug, Clone)]
pub enum WriteOp {
    Insert(Insert),
    Update(Update),
    Delete(Delete),
    Lock(Lock),
}

impl WriteOp {
    pub fn target(&self) -> &WriteTarget {
        match self {
            Self::Insert(op) => &op.target,
            Self::Update(op) => &op.target,
            Self::Delete(op) => &op.target,
            Self::Lock(op) => &op.target,
        }
    }

    /// The columns of the rows the statement answers (a lock's: the ones
    /// it reads).
    pub fn returning(&self) -> &[String] {
        match self {
            Self::Insert(op) => &op.returning,
            Self::Update(op) => &op.returning,
            Self::Delete(op) => &op.returning,
            Self::Lock(op) => &op.columns,
        }
    }
}

/// A row filter for update and delete: column comparisons with bound values.
/// (Permission rules and API filters lower to this for writes.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Predicate {
    /// Every row.
    Always,
    And(Vec<Predicate>),
    Or(Vec<Predicate>),
    Not(Box<Predicate>),
    Compare {
        column: String,
        op: CompareOp,
        value: Value,
    },
    IsNull {
        column: String,
        negated: bool,
    },
    InList {
        column: String,
        values: Vec<Value>,
        negated: bool,
    },
}

impl Predicate {
    /// `column = value`.
    pub fn eq(column: impl Into<String>, value: Value) -> Self {
        Self::Compare {
            column: column.into(),
            op: CompareOp::Eq,
            value,
        }
    }

    /// Every column the predicate mentions.
    pub fn columns(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect_columns(&mut out);
        out
    }

    fn collect_columns<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Self::Always => {}
            Self::And(items) | Self::Or(items) => items.iter().for_each(|p| p.collect_columns(out)),
            Self::Not(inner) => inner.collect_columns(out),
            Self::Compare { column, .. }
            | Self::IsNull { column, .. }
            | Self::InList { column, .. } => {
                out.push(column);
            }
        }
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompareOp {
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    Like,
    NotLike,
}

impl CompareOp {
    pub fn sql(self) -> &'static str {
        match self {
            Self::Eq => "=",
            Self::NotEq => "<>",
            Self::Lt => "<",
            Self::LtEq => "<=",
            Self::Gt => ">",
            Self::GtEq => ">=",
            Self::Like => "LIKE",
            Self::NotLike => "NOT LIKE",
        }
    }
}

/// What a write did.
#[derive(Debug, Clone)]
pub struct WriteOutcome {
    pub affected_rows: u64,
    /// The returned rows, typed by the catalog, when `returning` was asked for.
    pub returning: Option<RecordBatch>,
}

/// An open transaction on one source. Dropping it without [`WriteTx::commit`]
/// rolls it back: nothing a request wrote survives an error or a panic.
#[async_trait]
pub trait WriteTx: Send {
    /// Runs one write inside the transaction.
    async fn execute(&mut self, op: &WriteOp) -> Result<WriteOutcome>;
    /// Makes every write of the transaction durable.
    async fn commit(self: Box<Self>) -> Result<()>;
    /// Undoes every write of the transaction.
    async fn rollback(self: Box<Self>) -> Result<()>;
    /// Runs the transaction's last write and commits: the write's outcome
    /// once both succeeded; after an error nothing of the transaction is
    /// left. A source may send both at once (one round trip).
    async fn execute_and_commit(mut self: Box<Self>, op: &WriteOp) -> Result<WriteOutcome> {
        match self.execute(op).await {
            Ok(outcome) => {
                self.commit().await?;
                Ok(outcome)
            }
            Err(error) => {
                // The write's error is the one to answer; a failed rollback
                // means the connection is gone, which rolls back too.
                let _ = self.rollback().await;
                Err(error)
            }
        }
    }

    /// Runs the transaction's last writes, in order, and commits: their
    /// outcomes once all succeeded; after an error nothing of the
    /// transaction is left, and the error names the write that failed. A
    /// source may send them all at once with `COMMIT` (one round trip).
    async fn execute_all_and_commit(
        mut self: Box<Self>,
        ops: &[&WriteOp],
    ) -> std::result::Result<Vec<WriteOutcome>, BatchError> {
        let mut outcomes = Vec::with_capacity(ops.len());
        for (at, op) in ops.iter().enumerate() {
            match self.execute(op).await {
                Ok(outcome) => outcomes.push(outcome),
                Err(error) => {
                    // As in `execute_and_commit`: the write's error is the one.
                    let _ = self.rollback().await;
                    return Err(BatchError {
                        statement: Some(at),
                        error,
                    });
                }
            }
        }
        self.commit().await.map_err(|error| BatchError {
            statement: None,
            error,
        })?;
        Ok(outcomes)
    }
}

/// Why [`WriteTx::execute_all_and_commit`] wrote nothing.
#[derive(Debug)]
pub struct BatchError {
    /// The index of the write that failed; `None`: the `COMMIT` did.
    pub statement: Option<usize>,
    pub error: ConnectorError,
}
