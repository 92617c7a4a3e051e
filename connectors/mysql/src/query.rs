//! Streaming reads: runs a statement with the binary protocol on one pooled
//! connection in a background task and hands Arrow batches of `BATCH_ROWS`
//! rows to the caller while the driver is still reading.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{Field, Schema, SchemaRef};
use mysql_async::consts::ColumnType;
use mysql_async::prelude::Queryable;
use mysql_async::{Column, Conn, Params, Row, Value as MyValue};
use tokio::sync::{mpsc, oneshot};
use tributary_connector::{BATCH_ROWS, BatchBuilder, ConnectorError, Result, RowStream, Value};

use crate::classify::classify;
use crate::types::NativeType;
use crate::values::from_driver;

/// Batches buffered ahead of the consumer.
const AHEAD: usize = 2;

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

async fn produce(
    mut conn: Conn,
    source: String,
    sql: String,
    params: Vec<MyValue>,
    schema: Option<SchemaRef>,
    head: oneshot::Sender<Result<SchemaRef>>,
    batches: mpsc::Sender<Result<RecordBatch>>,
) {
    let params = if params.is_empty() {
        Params::Empty
    } else {
        Params::Positional(params)
    };
    let mut result = match conn.exec_iter(sql.as_str(), params).await {
        Ok(result) => result,
        Err(err) => {
            let _receiver_gone = head.send(Err(classify(err).for_source(&source)));
            return;
        }
    };
    let columns = result.columns().unwrap_or_else(|| Arc::from(Vec::new()));
    let prepared = check_decodable(&columns).and_then(|()| {
        let schema = result_schema(&columns, schema)?;
        let builder = BatchBuilder::new(schema.clone(), BATCH_ROWS)?;
        Ok((schema, builder))
    });
    let (schema, mut builder) = match prepared {
        Ok(ready) => ready,
        Err(err) => {
            let _receiver_gone = head.send(Err(err.for_source(&source)));
            return;
        }
    };
    if head.send(Ok(schema.clone())).is_err() {
        return;
    }
    let sources: Vec<ColumnType> = columns.iter().map(Column::column_type).collect();
    let fail = |err: ConnectorError| Err(err.for_source(&source));
    loop {
        let row = match result.next().await {
            Ok(Some(row)) => row,
            Ok(None) => break,
            Err(err) => {
                let _receiver_gone = batches.send(fail(classify(err))).await;
                return;
            }
        };
        if let Err(err) =
            decode_row(row, &sources, &schema).and_then(|values| builder.push_row(values))
        {
            let _receiver_gone = batches.send(fail(err)).await;
            return;
        }
        if builder.len() >= BATCH_ROWS {
            let batch = builder.finish().or_else(fail);
            if batches.send(batch).await.is_err() {
                // The consumer is gone: dropping the result lets the pool
                // drain it before the connection is reused.
                return;
            }
        }
    }
    if !builder.is_empty() {
        let _receiver_gone = batches.send(builder.finish().or_else(fail)).await;
    }
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
