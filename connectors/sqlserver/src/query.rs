//! Streaming reads: one statement with bound `@Pn` parameters runs on a
//! pooled connection in a background task, which hands Arrow batches of
//! `BATCH_ROWS` rows to the caller while it reads.
//!
//! A reader that gives up (the stream or the `query()` future dropped) must
//! not leave a half-read result on a pooled connection: the next user would
//! first have to read and throw away the rest while the server computes it.
//! The task notices at once (its channel closes) and closes the connection
//! instead of returning it; the server ends the statement with the session.
//! (tiberius can send an attention to cancel, but a result stream dropped in
//! the middle of a row leaves its decoder mid-token, so the connection is
//! not trusted afterwards.) The same goes for a read that failed.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{Field, Schema, SchemaRef};
use futures::TryStreamExt;
use tiberius::{Column, ColumnData, Query, QueryItem};
use tokio::sync::{mpsc, oneshot};
use tributary_connector::{
    BATCH_ROWS, BatchBuilder, ConnectorError, FIRST_BATCH_CAPACITY, Result, RowStream,
};

use crate::decode::row_values;
use crate::error::from_tds;
use crate::pool::{PooledConn, discard};
use crate::types::result_type;

/// Batches buffered ahead of the consumer.
const AHEAD: usize = 2;

/// What the background task needs to run one statement.
pub(crate) struct Read {
    pub source: String,
    pub endpoint: String,
    pub sql: String,
    pub params: Vec<ColumnData<'static>>,
    pub schema: Option<SchemaRef>,
}

/// Runs the statement on `conn` and streams its rows.
pub(crate) async fn stream(conn: PooledConn, read: Read) -> Result<RowStream> {
    let source = read.source.clone();
    let (head_tx, head_rx) = oneshot::channel();
    let (batch_tx, batch_rx) = mpsc::channel(AHEAD);
    tokio::spawn(produce(conn, read, head_tx, batch_tx));
    let schema = head_rx.await.map_err(|_| {
        ConnectorError::internal("the query task ended before the result").for_source(&source)
    })??;
    let batches = futures::stream::unfold(batch_rx, |mut rx| async move {
        rx.recv().await.map(|batch| (batch, rx))
    });
    Ok(RowStream::new(schema, batches))
}

/// The result schema: the caller's (one field per column), or one field per
/// result column typed from its TDS metadata.
pub(crate) fn result_schema(columns: &[Column], schema: Option<SchemaRef>) -> Result<SchemaRef> {
    if let Some(schema) = schema {
        if schema.fields().len() != columns.len() {
            return Err(ConnectorError::invalid_input(format!(
                "the statement returns {} column(s) but the expected schema has {}",
                columns.len(),
                schema.fields().len()
            )));
        }
        return Ok(schema);
    }
    let fields: Vec<Field> = columns
        .iter()
        .map(|c| Field::new(c.name(), result_type(c.column_type()), true))
        .collect();
    Ok(Arc::new(Schema::new(fields)))
}

/// How reading ended.
enum Ended {
    /// The whole response was read: the connection is idle again.
    Complete,
    /// Reading stopped before the end (the consumer left, a value could not
    /// be decoded, the driver failed).
    Unfinished,
}

async fn produce(
    mut conn: PooledConn,
    read: Read,
    head: oneshot::Sender<Result<SchemaRef>>,
    batches: mpsc::Sender<Result<RecordBatch>>,
) {
    // The receiver lives in the caller's `query()` future until the schema
    // arrives, then in the row stream: it is dropped exactly when the reader
    // gives up.
    let ended = tokio::select! {
        biased;
        ended = run(&mut conn, read, head, &batches) => ended,
        () = batches.closed() => Ended::Unfinished,
    };
    match ended {
        Ended::Complete => drop(conn),
        Ended::Unfinished => discard(conn),
    }
}

async fn run(
    conn: &mut PooledConn,
    read: Read,
    head: oneshot::Sender<Result<SchemaRef>>,
    batches: &mpsc::Sender<Result<RecordBatch>>,
) -> Ended {
    let Read {
        source,
        endpoint,
        sql,
        params,
        schema,
    } = read;
    let fail = |err: ConnectorError| err.for_source(&source);
    let mut query = Query::new(sql);
    for param in params {
        query.bind(param);
    }
    let mut results = match query.query(&mut **conn).await {
        Ok(results) => results,
        Err(err) => {
            let _receiver_gone = head.send(Err(fail(from_tds(err, &endpoint))));
            return Ended::Unfinished;
        }
    };
    let columns: Vec<Column> = match results.columns().await {
        Ok(columns) => columns.map(<[Column]>::to_vec).unwrap_or_default(),
        Err(err) => {
            let _receiver_gone = head.send(Err(fail(from_tds(err, &endpoint))));
            return Ended::Unfinished;
        }
    };
    let prepared = result_schema(&columns, schema).and_then(|schema| {
        let builder = BatchBuilder::new(schema.clone(), FIRST_BATCH_CAPACITY)?;
        Ok((schema, builder))
    });
    let (schema, mut builder) = match prepared {
        Ok(ready) => ready,
        Err(err) => {
            let _receiver_gone = head.send(Err(fail(err)));
            return Ended::Unfinished;
        }
    };
    if head.send(Ok(schema.clone())).is_err() {
        return Ended::Unfinished;
    }
    loop {
        let item = match results.try_next().await {
            Ok(Some(item)) => item,
            Ok(None) => break,
            Err(err) => {
                let _receiver_gone = batches.send(Err(fail(from_tds(err, &endpoint)))).await;
                return Ended::Unfinished;
            }
        };
        // Only the first result set is the statement's result.
        let row = match item {
            QueryItem::Row(row) if row.result_index() == 0 => row,
            _ => continue,
        };
        if let Err(err) = row_values(row, &schema).and_then(|values| builder.push_row(values)) {
            let _receiver_gone = batches.send(Err(fail(err))).await;
            return Ended::Unfinished;
        }
        if builder.len() >= BATCH_ROWS {
            let batch = builder.finish().map_err(fail);
            if batches.send(batch).await.is_err() {
                return Ended::Unfinished;
            }
        }
    }
    if !builder.is_empty() {
        let _receiver_gone = batches.send(builder.finish().map_err(fail)).await;
    }
    Ended::Complete
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_schema::DataType;
    use tiberius::ColumnType;

    #[test]
    fn derived_schema_and_mismatch() {
        let columns = vec![
            Column::new("n".into(), ColumnType::Int8),
            Column::new("price".into(), ColumnType::Numericn),
            Column::new("cash".into(), ColumnType::Money),
            Column::new("id".into(), ColumnType::Guid),
        ];
        let schema = result_schema(&columns, None).unwrap();
        assert_eq!(schema.field(0).data_type(), &DataType::Int64);
        assert_eq!(schema.field(1).data_type(), &DataType::Utf8);
        assert_eq!(schema.field(2).data_type(), &DataType::Decimal128(19, 4));
        assert_eq!(schema.field(3).name(), "id");
        let narrow = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)]));
        let err = result_schema(&columns, Some(narrow)).unwrap_err();
        assert!(err.message().contains("4 column(s)"), "{err}");
    }
}
