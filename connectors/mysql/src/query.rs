//! Streaming reads: runs a statement with the binary protocol on one pooled
//! connection in a background task and hands Arrow batches of `BATCH_ROWS`
//! rows to the caller while the driver is still reading.
//!
//! A reader that gives up (the stream or the `query()` future dropped: a
//! time limit, a client gone, a LIMIT satisfied) must not leave the statement
//! running: the task notices at once, kills the statement from a connection
//! of its own (`KILL QUERY <thread id>`) and discards its connection. Left to
//! the pool, a connection with an unread result would be drained — the whole
//! remaining result read and thrown away while the server computes it.

use std::sync::Arc;
use std::time::Duration;

use arrow_array::RecordBatch;
use arrow_schema::{Field, Schema, SchemaRef};
use mysql_async::consts::ColumnType;
use mysql_async::prelude::Queryable;
use mysql_async::{Column, Conn, Error as MyError, Opts, Params, Row, Value as MyValue};
use tokio::sync::{mpsc, oneshot};
use tributary_connector::{
    BATCH_ROWS, BatchBuilder, ConnectorError, FIRST_BATCH_CAPACITY, Result, RowStream, Value,
};

use crate::classify::classify;
use crate::types::NativeType;
use crate::values::from_driver;

/// Batches buffered ahead of the consumer.
const AHEAD: usize = 2;

/// How long killing an abandoned statement may take: opening a connection
/// of its own and running one `KILL QUERY`.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an abandoned connection may take to close politely (reading
/// what the server sent before the kill took effect) before it is dropped
/// unread.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// The server's error for a `KILL` of a thread that no longer exists.
const ER_NO_SUCH_THREAD: u16 = 1094;

/// Runs `sql` on `conn` and streams its rows. The schema is `schema` when
/// given (the catalog's types), else derived from the result's column
/// metadata. Errors name `source`.
pub async fn stream(
    conn: Conn,
    source: String,
    sql: String,
    params: Vec<MyValue>,
    schema: Option<SchemaRef>,
) -> Result<RowStream> {
    let (head_tx, head_rx) = oneshot::channel();
    let (batch_tx, batch_rx) = mpsc::channel(AHEAD);
    tokio::spawn(produce(
        conn,
        source.clone(),
        sql,
        params,
        schema,
        head_tx,
        batch_tx,
    ));
    let schema = head_rx.await.map_err(|_| {
        ConnectorError::internal("the query task ended before the result").for_source(&source)
    })??;
    let batches = futures::stream::unfold(batch_rx, |mut rx| async move {
        rx.recv().await.map(|batch| (batch, rx))
    });
    Ok(RowStream::new(schema, batches))
}

/// The result schema: the caller's, or one field per result column.
pub fn result_schema(columns: &[Column], schema: Option<SchemaRef>) -> Result<SchemaRef> {
    if let Some(schema) = schema {
        if schema.fields().len() != columns.len() {
            return Err(ConnectorError::invalid_input(format!(
                "the statement returns {} columns but the expected schema has {}",
                columns.len(),
                schema.fields().len()
            )));
        }
        return Ok(schema);
    }
    let fields: Vec<Field> = columns
        .iter()
        .map(|c| Field::new(c.name_str(), NativeType::from_column(c).arrow_type(), true))
        .collect();
    Ok(Arc::new(Schema::new(fields)))
}

/// Fails for result columns the driver cannot decode (internal or
/// replication-only wire types), before a row is read.
pub fn check_decodable(columns: &[Column]) -> Result<()> {
    for column in columns {
        if let NativeType::Unknown { name } = NativeType::from_column(column) {
            return Err(ConnectorError::unsupported(format!(
                "column `{}` has the wire type {name}, which cannot be read; cast it to CHAR",
                column.name_str()
            )));
        }
    }
    Ok(())
}

/// Decodes one result row into core values for the schema's columns.
pub fn decode_row(row: Row, sources: &[ColumnType], schema: &SchemaRef) -> Result<Vec<Value>> {
    row.unwrap()
        .into_iter()
        .zip(sources)
        .zip(schema.fields())
        .map(|((value, source), field)| {
            from_driver(value, *source, field.data_type()).map_err(|e| {
                ConnectorError::new(
                    e.kind(),
                    format!("column `{}`: {}", field.name(), e.message()),
                )
            })
        })
        .collect()
}

/// How reading a statement's result ended.
enum Ended {
    /// The server has nothing more to send: the connection is idle again.
    Complete,
    /// Reading stopped before the end (the consumer left, a row could not
    /// be decoded, the driver failed): the statement may still be running.
    Unfinished,
}

/// The background task of [`stream`]: reads the result into batches until
/// it ends or the consumer goes away — also while the statement is still
/// executing, before its first row — and then stops the statement.
async fn produce(
    mut conn: Conn,
    source: String,
    sql: String,
    params: Vec<MyValue>,
    schema: Option<SchemaRef>,
    head: oneshot::Sender<Result<SchemaRef>>,
    batches: mpsc::Sender<Result<RecordBatch>>,
) {
    // The batch receiver lives in the caller's `query()` future until the
    // schema arrives, then in the row stream: it is dropped exactly when
    // the reader gives up, whichever of the two it dropped.
    let ended = tokio::select! {
        // A read that completed wins over a consumer that left meanwhile.
        biased;
        ended = read(&mut conn, &source, &sql, params, schema, head, &batches) => ended,
        () = batches.closed() => Ended::Unfinished,
    };
    if let Ended::Unfinished = ended {
        abandon(conn, &source).await;
    }
}

/// Runs the statement and sends its schema to `head`, then its rows to
/// `batches`.
async fn read(
    conn: &mut Conn,
    source: &str,
    sql: &str,
    params: Vec<MyValue>,
    schema: Option<SchemaRef>,
    head: oneshot::Sender<Result<SchemaRef>>,
    batches: &mpsc::Sender<Result<RecordBatch>>,
) -> Ended {
    let params = if params.is_empty() {
        Params::Empty
    } else {
        Params::Positional(params)
    };
    let mut result = match conn.exec_iter(sql, params).await {
        Ok(result) => result,
        Err(err) => {
            let ended = after_error(&err);
            let _receiver_gone = head.send(Err(classify(err).for_source(source)));
            return ended;
        }
    };
    let columns = result.columns().unwrap_or_else(|| Arc::from(Vec::new()));
    let prepared = check_decodable(&columns).and_then(|()| {
        let schema = result_schema(&columns, schema)?;
        let builder = BatchBuilder::new(schema.clone(), FIRST_BATCH_CAPACITY)?;
        Ok((schema, builder))
    });
    let (schema, mut builder) = match prepared {
        Ok(ready) => ready,
        Err(err) => {
            let _receiver_gone = head.send(Err(err.for_source(source)));
            return Ended::Unfinished;
        }
    };
    if head.send(Ok(schema.clone())).is_err() {
        return Ended::Unfinished;
    }
    let sources: Vec<ColumnType> = columns.iter().map(Column::column_type).collect();
    let fail = |err: ConnectorError| Err(err.for_source(source));
    loop {
        let row = match result.next().await {
            Ok(Some(row)) => row,
            Ok(None) => break,
            Err(err) => {
                let ended = after_error(&err);
                let _receiver_gone = batches.send(fail(classify(err))).await;
                return ended;
            }
        };
        if let Err(err) =
            decode_row(row, &sources, &schema).and_then(|values| builder.push_row(values))
        {
            let _receiver_gone = batches.send(fail(err)).await;
            return Ended::Unfinished;
        }
        if builder.len() >= BATCH_ROWS {
            let batch = builder.finish().or_else(fail);
            if batches.send(batch).await.is_err() {
                return Ended::Unfinished;
            }
        }
    }
    if !builder.is_empty() {
        let _receiver_gone = batches.send(builder.finish().or_else(fail)).await;
    }
    Ended::Complete
}

/// An error from the server ends the statement; any other (I/O, protocol)
/// leaves it in an unknown state, so it is stopped like an abandoned one.
fn after_error(err: &MyError) -> Ended {
    match err {
        MyError::Server(_) => Ended::Complete,
        _ => Ended::Unfinished,
    }
}

/// Stops the statement running on `conn` and closes `conn`, so the pool
/// never gets it back with a result half read.
///
/// The kill goes over a new connection with the same options, not a pooled
/// one: the pool may be exhausted (`conn` may be its only connection). It is
/// sent while `conn` is still held, so the thread id cannot belong to a
/// statement of another reader yet. Closing then reads at most what the
/// server sent before the kill took effect; should that take too long (the
/// kill failed), the driver has already marked the connection closed, so the
/// pool drops it without reading further.
async fn abandon(conn: Conn, source: &str) {
    let id = conn.id();
    match tokio::time::timeout(KILL_TIMEOUT, kill_query(conn.opts().clone(), id)).await {
        Ok(Ok(())) => tracing::debug!(source, id, "killed an abandoned statement"),
        // The connection died with its statement (the server closed it).
        Ok(Err(MyError::Server(err))) if err.code == ER_NO_SUCH_THREAD => {}
        Ok(Err(err)) => {
            tracing::warn!(source, id, error = %err, "could not kill an abandoned statement");
        }
        Err(_elapsed) => tracing::warn!(
            source,
            id,
            "killing an abandoned statement took longer than {} s",
            KILL_TIMEOUT.as_secs()
        ),
    }
    let _closed = tokio::time::timeout(CLOSE_TIMEOUT, conn.disconnect()).await;
}

/// Runs `KILL QUERY id` on a short-lived connection of its own.
async fn kill_query(opts: Opts, id: u32) -> mysql_async::Result<()> {
    let mut killer = Conn::new(opts).await?;
    let killed = killer.query_drop(format!("KILL QUERY {id}")).await;
    // Closing is a courtesy: the server ends the session either way.
    let _closed = killer.disconnect().await;
    killed
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_schema::DataType;

    #[test]
    fn derived_schema_and_mismatch() {
        let columns = vec![
            Column::new(ColumnType::MYSQL_TYPE_LONGLONG)
                .with_name(b"n")
                .with_column_length(20),
            Column::new(ColumnType::MYSQL_TYPE_VAR_STRING)
                .with_name(b"s")
                .with_character_set(45),
        ];
        let schema = result_schema(&columns, None).unwrap();
        assert_eq!(schema.field(0).data_type(), &DataType::Int64);
        assert_eq!(schema.field(1).name(), "s");
        let narrow = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)]));
        assert!(result_schema(&columns, Some(narrow)).is_err());
    }

    #[test]
    fn undecodable_wire_types_are_refused() {
        let columns = vec![Column::new(ColumnType::MYSQL_TYPE_TIME2).with_name(b"t")];
        let err = check_decodable(&columns).unwrap_err();
        assert!(err.message().contains("`t`"), "{err}");
    }
}
