//! Reads: binds parameters, steps the statement on a blocking thread and
//! streams Arrow batches of [`BATCH_ROWS`] rows through a bounded channel, so
//! memory stays bounded however large the result.
//!
//! The result schema is the caller's, or else derived from the statement's
//! declared column types (`sqlite3_column_decltype`, mapped by
//! [`crate::types`] exactly like introspection); an expression column without
//! a declared type takes the type of its first value's storage class
//! (INTEGER → Int64, REAL → Float64, BLOB → Binary, TEXT or NULL → Utf8).
//! Derived fields are all nullable. `query()` only runs statements that
//! return rows and change nothing.
//!
//! A reader that gives up (the stream or the `query()` future dropped: a
//! time limit, a client gone, a LIMIT satisfied) interrupts the statement
//! (`sqlite3_interrupt`), so the worker thread stops at once instead of
//! computing on to the next batch or the end; the connection stays usable.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use arrow_array::RecordBatch;
use arrow_schema::{Field, FieldRef, Schema, SchemaRef};
use rusqlite::{Connection, InterruptHandle, Row};
use tokio::sync::{mpsc, oneshot};
use tributary_connector::{
    BATCH_ROWS, BatchBuilder, ConnectorError, FIRST_BATCH_CAPACITY, Result, RowStream, Statement,
    Value,
};

use crate::classify::classify;
use crate::pool::{Pool, PooledConn};
use crate::types;
use crate::values::{self, Mismatch};

/// Batches buffered between the SQLite thread and the consumer.
const CHANNEL_BATCHES: usize = 2;

/// Prepares `statement` and binds its parameters.
pub(crate) fn prepare<'c>(
    db: &'c Connection,
    statement: &Statement,
) -> Result<rusqlite::Statement<'c>> {
    let mut prepared = db.prepare(&statement.sql).map_err(classify)?;
    let expected = prepared.parameter_count();
    if expected != statement.params.len() {
        return Err(ConnectorError::invalid_input(format!(
            "the statement takes {expected} parameters but {} were given",
            statement.params.len()
        )));
    }
    for (i, value) in statement.params.iter().enumerate() {
        prepared
            .raw_bind_parameter(i + 1, values::to_sql(value)?)
            .map_err(classify)?;
    }
    Ok(prepared)
}

/// Turns result rows into batch rows of a fixed schema, applying the
/// mismatch rule: a stored value that does not fit its column's type becomes
/// NULL (logged once per column, counted) — or an error when the column is
/// NOT NULL in the schema.
pub(crate) struct RowDecoder {
    fields: Vec<FieldRef>,
    mismatches: Vec<u64>,
}

impl RowDecoder {
    /// A decoder for `schema`; fails for Arrow types SQLite values cannot become.
    pub(crate) fn new(schema: &SchemaRef) -> Result<Self> {
        for field in schema.fields() {
            values::check_target(field.name(), field.data_type())?;
        }
        Ok(Self {
            fields: schema.fields().iter().cloned().collect(),
            mismatches: vec![0; schema.fields().len()],
        })
    }

    /// Decodes one row into `builder`.
    pub(crate) fn push(&mut self, row: &Row<'_>, builder: &mut BatchBuilder) -> Result<()> {
        let mut cells = Vec::with_capacity(self.fields.len());
        for (i, field) in self.fields.iter().enumerate() {
            let cell = row.get_ref(i).map_err(classify)?;
            let value = match values::decode(cell, field.data_type()) {
                Ok(value) => value,
                Err(Mismatch) => {
                    let shown = format!("{cell:?}");
                    if !field.is_nullable() {
                        return Err(ConnectorError::internal(format!(
                            "column `{}` holds {shown}, which is not a {} value, and the column is NOT NULL",
                            field.name(),
                            field.data_type()
                        )));
                    }
                    if self.mismatches[i] == 0 {
                        tracing::warn!(
                            column = %field.name(), value = %shown, data_type = %field.data_type(),
                            "a stored SQLite value does not fit its column's type; delivering NULL"
                        );
                    }
                    self.mismatches[i] += 1;
                    Value::Null
                }
            };
            if value.is_null() && !field.is_nullable() {
                return Err(ConnectorError::internal(format!(
                    "column `{}` is NOT NULL in the schema but the database returned NULL",
                    field.name()
                )));
            }
            cells.push(value);
        }
        builder.push_row(cells)
    }

    /// Logs how many values of each column were delivered as NULL.
    fn report(&self) {
        for (field, count) in self.fields.iter().zip(&self.mismatches) {
            if *count > 1 {
                tracing::warn!(column = %field.name(), count, "SQLite values delivered as NULL (type mismatch)");
            }
        }
    }
}

/// Runs a read and streams its rows; returns once the first row (or the end)
/// is known, so statement errors surface here, not in the stream.
pub(crate) async fn query(
    pool: &Pool,
    statement: &Statement,
    schema: Option<SchemaRef>,
) -> Result<RowStream> {
    let conn = pool.acquire().await?;
    let connected = Instant::now();
    let (ready_tx, ready_rx) = oneshot::channel();
    let (batch_tx, mut batch_rx) = mpsc::channel(CHANNEL_BATCHES);
    let statement = statement.clone();
    let running = Running::new(conn);
    // From here on, dropping this future or the stream stops the statement.
    let interrupter = running.interrupter();
    tokio::task::spawn_blocking(move || {
        stream_rows(&running.conn, &statement, schema, ready_tx, &batch_tx)
    });
    let schema = ready_rx.await.map_err(|_| {
        ConnectorError::internal("the SQLite worker thread stopped before the query started")
    })??;
    let batches = futures::stream::poll_fn(move |cx| {
        let _held_until_the_stream_is_dropped = &interrupter;
        batch_rx.poll_recv(cx)
    });
    Ok(RowStream::new(schema, batches).connected_at(connected))
}

/// The interrupt handle of a connection while a worker runs a stream's
/// statement on it; `None` once the worker is done with the connection.
type Slot = Arc<Mutex<Option<InterruptHandle>>>;

/// A pooled connection running a stream's statement on the worker thread.
/// Dropped (also when the worker panics), it withdraws its interrupt handle
/// before the connection goes back to the pool, so a reader that gives up
/// late cannot interrupt the next statement run on that connection.
struct Running {
    conn: PooledConn,
    slot: Slot,
}

impl Running {
    fn new(conn: PooledConn) -> Self {
        let slot = Arc::new(Mutex::new(Some(conn.db.get_interrupt_handle())));
        Self { conn, slot }
    }

    fn interrupter(&self) -> Interrupter {
        Interrupter(self.slot.clone())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // `conn` drops after this, back into the pool.
        self.slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }
}

/// The reader's end of a [`Running`] statement: dropped while the worker
/// still has the connection, it interrupts the statement. A statement that
/// already ended is not affected: SQLite clears an interrupt that arrives
/// when no statement runs before it starts the next one.
struct Interrupter(Slot);

impl Drop for Interrupter {
    fn drop(&mut self) {
        // The interrupt is sent under the lock, so the worker cannot hand
        // the connection back to the pool in between.
        let slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(handle) = slot.as_ref() {
            handle.interrupt();
        }
    }
}

/// The blocking side of [`query`]: steps the statement, sends the schema
/// (or the error) once the first row is decoded, then a batch every
/// [`BATCH_ROWS`] rows. Stops early when the consumer goes away.
fn stream_rows(
    conn: &PooledConn,
    statement: &Statement,
    requested: Option<SchemaRef>,
    ready: oneshot::Sender<Result<SchemaRef>>,
    batches: &mpsc::Sender<Result<RecordBatch>>,
) {
    conn.arm_deadline();
    let mut prepared = match prepare(&conn.db, statement).and_then(read_only) {
        Ok(prepared) => prepared,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let declared: Vec<(String, Option<String>)> = prepared
        .columns()
        .iter()
        .map(|c| (c.name().to_string(), c.decl_type().map(str::to_string)))
        .collect();
    let mut rows = prepared.raw_query();
    let first = match rows.next() {
        Ok(first) => first,
        Err(e) => {
            let _ = ready.send(Err(classify(e)));
            return;
        }
    };
    let started = result_schema(requested, &declared, first).and_then(|schema| {
        let mut builder = BatchBuilder::new(schema.clone(), FIRST_BATCH_CAPACITY)?;
        let mut decoder = RowDecoder::new(&schema)?;
        if let Some(row) = first {
            decoder.push(row, &mut builder)?;
        }
        Ok((schema, builder, decoder))
    });
    let (mut builder, mut decoder) = match started {
        Ok((schema, builder, decoder)) => {
            if ready.send(Ok(schema)).is_err() {
                return;
            }
            (builder, decoder)
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let send = |batch: Result<RecordBatch>| {
        let paused = Instant::now();
        let sent = batches.blocking_send(batch).is_ok();
        conn.extend_deadline(paused.elapsed());
        sent
    };
    loop {
        match rows.next() {
            Ok(Some(row)) => {
                if let Err(e) = decoder.push(row, &mut builder) {
                    send(Err(e));
                    return;
                }
                if builder.len() >= BATCH_ROWS && !send(builder.finish()) {
                    return;
                }
            }
            Ok(None) => break,
            Err(e) => {
                send(Err(classify(e)));
                return;
            }
        }
    }
    decoder.report();
    if !builder.is_empty() {
        send(builder.finish());
    }
}

/// Refuses statements that change something or return no rows (writes go
/// through transactions; `BEGIN`, `ATTACH`, `PRAGMA x = y` are not reads).
fn read_only(statement: rusqlite::Statement<'_>) -> Result<rusqlite::Statement<'_>> {
    if statement.readonly() && statement.column_count() > 0 {
        Ok(statement)
    } else {
        Err(ConnectorError::invalid_input(
            "query() runs only statements that return rows and change nothing; writes go through a transaction",
        ))
    }
}

/// The caller's schema (checked against the column count), or one derived
/// from declared types and, for expressions, the first row.
fn result_schema(
    requested: Option<SchemaRef>,
    declared: &[(String, Option<String>)],
    first: Option<&Row<'_>>,
) -> Result<SchemaRef> {
    if let Some(schema) = requested {
        if schema.fields().len() != declared.len() {
            return Err(ConnectorError::invalid_input(format!(
                "the statement returns {} columns but the schema has {}",
                declared.len(),
                schema.fields().len()
            )));
        }
        return Ok(schema);
    }
    let fields = declared
        .iter()
        .enumerate()
        .map(|(i, (name, decl))| {
            let data_type = match (decl, first) {
                (Some(decl), _) => types::map_declared_type(decl).data_type,
                (None, Some(row)) => {
                    types::type_of_storage_class(row.get_ref(i).map_err(classify)?)
                }
                (None, None) => arrow_schema::DataType::Utf8,
            };
            Ok(Field::new(name, data_type, true))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Arc::new(Schema::new(fields)))
}
