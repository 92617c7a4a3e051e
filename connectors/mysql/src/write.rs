//! The write path: one pooled connection in a transaction, with `RETURNING`
//! where the server has it and emulated inside the same transaction where it
//! does not.
//!
//! - MariaDB 10.5+: `INSERT … RETURNING` and `DELETE … RETURNING` run as is.
//! - UPDATE with returning (both flavors): lock the matching rows' keys with
//!   `SELECT <key> … WHERE <filter> FOR UPDATE`, update exactly those keys,
//!   then read the returning columns by key (by the new key values when the
//!   update sets a key column).
//! - DELETE with returning on MySQL: read the returning columns and keys
//!   `FOR UPDATE`, then delete by key.
//! - INSERT with returning on MySQL: one row at a time; the key comes from
//!   the inserted values or, for an auto-increment key column, from
//!   `LAST_INSERT_ID()`; then the row is read by key.
//!
//! The key is the primary key, else the first unique key whose columns are
//! all NOT NULL; a table with neither cannot return rows on an emulated path
//! (`Unsupported`), though the write itself works without returning.
//! `affected_rows` counts matched rows (the pool sets `CLIENT_FOUND_ROWS`).

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{Field, Schema, SchemaRef};
use async_trait::async_trait;
use mysql_async::consts::ColumnType;
use mysql_async::prelude::Queryable;
use mysql_async::{Params, Row, Transaction};
use tributary_connector::render::{
    keys_predicate, render_delete, render_insert, render_select, render_update,
};
use tributary_connector::{
    BatchBuilder, ConnectorError, Delete, Dialect, Insert, MySqlDialect, Result, Statement, Update,
    Value, WriteOp, WriteOutcome, WriteTarget, WriteTx,
};
use tributary_schema_cache::{Generated, TableDef};

use crate::classify::classify;
use crate::query::decode_row;
use crate::values::{from_driver, to_param};

/// Rows addressed by key in one statement of an emulated path (MySQL takes
/// at most 65,535 parameters per statement).
const KEYS_PER_STATEMENT: usize = 1_000;

/// An open transaction on one pooled connection. Dropped without commit,
/// the driver rolls it back before the connection is used again.
pub struct MySqlTx {
    tx: Transaction<'static>,
    source: String,
    dialect: MySqlDialect,
}

/// Rows read back, with the wire type of each column.
struct Fetched {
    sources: Vec<ColumnType>,
    rows: Vec<Row>,
}

impl MySqlTx {
    pub fn new(tx: Transaction<'static>, source: String, dialect: MySqlDialect) -> Self {
        Self {
            tx,
            source,
            dialect,
        }
    }

    async fn run(&mut self, op: &WriteOp) -> Result<WriteOutcome> {
        match op {
            WriteOp::Insert(insert) => self.insert(insert).await,
            WriteOp::Update(update) => self.update(update).await,
            WriteOp::Delete(delete) => self.delete(delete).await,
            WriteOp::Lock(lock) => {
                let select = render_select(
                    &self.dialect,
                    &lock.target,
                    &lock.columns,
                    &lock.filter,
                    true,
                )?;
                self.returning_statement(&select, &lock.target, &lock.columns)
                    .await
            }
        }
    }

    async fn insert(&mut self, op: &Insert) -> Result<WriteOutcome> {
        let statement = render_insert(&self.dialect, op)?;
        if op.returning.is_empty() {
            let affected = self.execute_drop(&statement).await?;
            return Ok(WriteOutcome {
                affected_rows: affected,
                returning: None,
            });
        }
        if self.dialect.returning().insert {
            return self
                .returning_statement(&statement, &op.target, &op.returning)
                .await;
        }
        let key = row_key(&op.target, "insert")?;
        let mut single = op.clone();
        single.returning.clear();
        let mut affected = 0;
        let mut rows = Vec::with_capacity(op.rows.len());
        let mut sources = Vec::new();
        for row in &op.rows {
            single.rows = vec![row.clone()];
            affected += self
                .execute_drop(&render_insert(&self.dialect, &single)?)
                .await?;
            let key_values = self.inserted_key(&op.target.table, &key, &op.columns, row)?;
            let filter = keys_predicate(&key, &[key_values]);
            let select = render_select(&self.dialect, &op.target, &op.returning, &filter, false)?;
            let fetched = self.fetch(&select).await?;
            sources = fetched.sources;
            rows.extend(fetched.rows);
        }
        let batch = returning_batch(&op.target, &op.returning, Fetched { sources, rows })?;
        Ok(WriteOutcome {
            affected_rows: affected,
            returning: Some(batch),
        })
    }

    /// The key of the row just inserted: the given values, or the generated
    /// auto-increment value where none (or NULL / 0) was given.
    fn inserted_key(
        &self,
        table: &TableDef,
        key: &[String],
        columns: &[String],
        row: &[Value],
    ) -> Result<Vec<Value>> {
        key.iter()
            .map(|name| {
                let given = columns
                    .iter()
                    .position(|c| c == name)
                    .and_then(|i| row.get(i));
                let auto = table
                    .column(name)
                    .is_some_and(|c| matches!(c.generated, Some(Generated::AutoIncrement)));
                match given {
                    Some(value) if !(auto && is_null_or_zero(value)) => Ok(value.clone()),
                    _ if auto => self.tx.last_insert_id().map(Value::UInt).ok_or_else(|| {
                        ConnectorError::internal("the server reported no LAST_INSERT_ID()")
                    }),
                    _ => Err(ConnectorError::unsupported(format!(
                        "cannot return the inserted row of {}: key column `{name}` gets a \
                         database default; insert it explicitly or ask for no returning columns",
                        table.name
                    ))),
                }
            })
            .collect()
    }

    async fn update(&mut self, op: &Update) -> Result<WriteOutcome> {
        let statement = render_update(&self.dialect, op)?;
        if op.returning.is_empty() {
            let affected = self.execute_drop(&statement).await?;
            return Ok(WriteOutcome {
                affected_rows: affected,
                returning: None,
            });
        }
        let key = row_key(&op.target, "update")?;
        // The rows are found again by their new keys, known only for set keys.
        if let Some((column, _)) = op.increment.iter().find(|(c, _)| key.contains(c)) {
            return Err(ConnectorError::unsupported(format!(
                "cannot return the updated rows of {}: key column `{column}` is incremented",
                op.target.table.name
            )));
        }
        let select = render_select(&self.dialect, &op.target, &key, &op.filter, true)?;
        let keys = self.fetch(&select).await?.into_values(&op.target, &key)?;
        if keys.is_empty() {
            let batch = returning_batch(&op.target, &op.returning, Fetched::empty())?;
            return Ok(WriteOutcome {
                affected_rows: 0,
                returning: Some(batch),
            });
        }
        let mut restricted = op.clone();
        restricted.returning.clear();
        let mut affected = 0;
        for chunk in keys.chunks(KEYS_PER_STATEMENT) {
            restricted.filter = keys_predicate(&key, chunk);
            affected += self
                .execute_drop(&render_update(&self.dialect, &restricted)?)
                .await?;
        }
        let new_keys: Vec<Vec<Value>> = keys
            .into_iter()
            .map(|values| {
                key.iter()
                    .zip(values)
                    .map(|(name, old)| {
                        op.set
                            .iter()
                            .find(|(c, _)| c == name)
                            .map_or(old, |(_, new)| new.clone())
                    })
                    .collect()
            })
            .collect();
        let mut fetched = Fetched::empty();
        for chunk in new_keys.chunks(KEYS_PER_STATEMENT) {
            let filter = keys_predicate(&key, chunk);
            let select = render_select(&self.dialect, &op.target, &op.returning, &filter, false)?;
            let part = self.fetch(&select).await?;
            fetched.sources = part.sources;
            fetched.rows.extend(part.rows);
        }
        let batch = returning_batch(&op.target, &op.returning, fetched)?;
        Ok(WriteOutcome {
            affected_rows: affected,
            returning: Some(batch),
        })
    }

    async fn delete(&mut self, op: &Delete) -> Result<WriteOutcome> {
        let statement = render_delete(&self.dialect, op)?;
        if op.returning.is_empty() {
            let affected = self.execute_drop(&statement).await?;
            return Ok(WriteOutcome {
                affected_rows: affected,
                returning: None,
            });
        }
        if self.dialect.returning().delete {
            return self
                .returning_statement(&statement, &op.target, &op.returning)
                .await;
        }
        let key = row_key(&op.target, "delete")?;
        let mut columns = op.returning.clone();
        columns.extend(key.iter().filter(|k| !op.returning.contains(k)).cloned());
        let select = render_select(&self.dialect, &op.target, &columns, &op.filter, true)?;
        let fetched = self.fetch(&select).await?;
        let key_positions: Vec<usize> = key
            .iter()
            .filter_map(|k| columns.iter().position(|c| c == k))
            .collect();
        let keys = fetched.clone_values(&op.target, &columns, &key_positions)?;
        let mut affected = 0;
        for chunk in keys.chunks(KEYS_PER_STATEMENT) {
            let by_key = Delete {
                target: op.target.clone(),
                filter: keys_predicate(&key, chunk),
                returning: Vec::new(),
            };
            affected += self
                .execute_drop(&render_delete(&self.dialect, &by_key)?)
                .await?;
        }
        let batch = returning_batch(&op.target, &op.returning, fetched)?;
        Ok(WriteOutcome {
            affected_rows: affected,
            returning: Some(batch),
        })
    }

    /// Runs a statement with a native `RETURNING` clause.
    async fn returning_statement(
        &mut self,
        statement: &Statement,
        target: &WriteTarget,
        returning: &[String],
    ) -> Result<WriteOutcome> {
        let fetched = self.fetch(statement).await?;
        let affected = u64::try_from(fetched.rows.len()).unwrap_or(u64::MAX);
        let batch = returning_batch(target, returning, fetched)?;
        Ok(WriteOutcome {
            affected_rows: affected,
            returning: Some(batch),
        })
    }

    async fn execute_drop(&mut self, statement: &Statement) -> Result<u64> {
        let params = params(statement)?;
        self.tx
            .exec_drop(statement.sql.as_str(), params)
            .await
            .map_err(classify)?;
        Ok(self.tx.affected_rows())
    }

    async fn fetch(&mut self, statement: &Statement) -> Result<Fetched> {
        let params = params(statement)?;
        let mut result = self
            .tx
            .exec_iter(statement.sql.as_str(), params)
            .await
            .map_err(classify)?;
        let sources = result
            .columns()
            .map(|columns| {
                columns
                    .iter()
                    .map(mysql_async::Column::column_type)
                    .collect()
            })
            .unwrap_or_default();
        let rows = result.collect::<Row>().await.map_err(classify)?;
        result.drop_result().await.map_err(classify)?;
        Ok(Fetched { sources, rows })
    }
}

impl Fetched {
    fn empty() -> Self {
        Self {
            sources: Vec::new(),
            rows: Vec::new(),
        }
    }

    /// Every row as core values typed by the catalog columns `names`.
    fn into_values(self, target: &WriteTarget, names: &[String]) -> Result<Vec<Vec<Value>>> {
        let positions: Vec<usize> = (0..names.len()).collect();
        self.clone_values(target, names, &positions)
    }

    /// The columns at `positions` of every row (named by `names`) as core values.
    fn clone_values(
        &self,
        target: &WriteTarget,
        names: &[String],
        positions: &[usize],
    ) -> Result<Vec<Vec<Value>>> {
        let schema = catalog_schema(target, names)?;
        self.rows
            .iter()
            .map(|row| {
                positions
                    .iter()
                    .map(|&i| {
                        let value = row.as_ref(i).cloned().unwrap_or(mysql_async::Value::NULL);
                        let source = self
                            .sources
                            .get(i)
                            .copied()
                            .unwrap_or(ColumnType::MYSQL_TYPE_NULL);
                        from_driver(value, source, schema.field(i).data_type())
                    })
                    .collect()
            })
            .collect()
    }
}

fn is_null_or_zero(value: &Value) -> bool {
    matches!(value, Value::Null | Value::Int(0) | Value::UInt(0))
}

fn params(statement: &Statement) -> Result<Params> {
    if statement.params.is_empty() {
        return Ok(Params::Empty);
    }
    Ok(Params::Positional(
        statement
            .params
            .iter()
            .map(to_param)
            .collect::<Result<_>>()?,
    ))
}

/// The columns identifying one row: the primary key, else the first unique
/// key of NOT NULL columns.
fn row_key(target: &WriteTarget, what: &str) -> Result<Vec<String>> {
    let table = &target.table;
    if let Some(pk) = &table.primary_key {
        return Ok(pk.columns.clone());
    }
    table
        .unique_constraints
        .iter()
        .find(|key| {
            key.columns
                .iter()
                .all(|c| table.column(c).is_some_and(|c| !c.nullable))
        })
        .map(|key| key.columns.clone())
        .ok_or_else(|| {
            ConnectorError::unsupported(format!(
                "{}.{} has no primary key or NOT NULL unique key, so this server cannot return \
                 the rows of an {what}; ask for no returning columns",
                target.schema, table.name
            ))
        })
}

/// The schema of `names`, typed by the catalog.
fn catalog_schema(target: &WriteTarget, names: &[String]) -> Result<SchemaRef> {
    let fields = names
        .iter()
        .map(|name| {
            let column = target.table.column(name).ok_or_else(|| {
                ConnectorError::invalid_input(format!(
                    "unknown column `{name}` in {}.{}",
                    target.schema, target.table.name
                ))
            })?;
            Ok(Field::new(name, column.data_type.clone(), true))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Arc::new(Schema::new(fields)))
}

/// The returned rows as a batch typed by the catalog (rows may carry key
/// columns after the returning ones; those are left out).
fn returning_batch(
    target: &WriteTarget,
    returning: &[String],
    fetched: Fetched,
) -> Result<RecordBatch> {
    let schema = catalog_schema(target, returning)?;
    let mut builder = BatchBuilder::new(schema.clone(), fetched.rows.len())?;
    for row in fetched.rows {
        builder.push_row(decode_row(row, &fetched.sources, &schema)?)?;
    }
    builder.finish()
}

#[async_trait]
impl WriteTx for MySqlTx {
    async fn execute(&mut self, op: &WriteOp) -> Result<WriteOutcome> {
        let source = self.source.clone();
        self.run(op).await.map_err(|e| e.for_source(&source))
    }

    async fn commit(self: Box<Self>) -> Result<()> {
        let Self { tx, source, .. } = *self;
        tx.commit()
            .await
            .map_err(|e| classify(e).for_source(&source))
    }

    async fn rollback(self: Box<Self>) -> Result<()> {
        let Self { tx, source, .. } = *self;
        tx.rollback()
            .await
            .map_err(|e| classify(e).for_source(&source))
    }
}
