//! Streamed query results: NDJSON, CSV and Arrow IPC bodies written batch
//! by batch as the sources deliver rows, so an export of millions of rows
//! never sits in memory. The row cap and the time limit end the stream;
//! dropping it (a client that goes away) stops the sources' queries.

use std::time::Duration;

use axum::body::Body;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::csv::WriterBuilder as CsvWriterBuilder;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;

use crate::engine::QueryOutput;
use crate::results;

/// A streamed body format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// One JSON object per row and line.
    NdJson,
    /// A header line, then one line per row.
    Csv,
    /// An Arrow IPC stream: schema, batches, end-of-stream marker.
    Arrow,
}

impl Encoding {
    fn content_type(self) -> &'static str {
        match self {
            Self::NdJson => "application/x-ndjson",
            Self::Csv => "text/csv; charset=utf-8",
            Self::Arrow => "application/vnd.apache.arrow.stream",
        }
    }
}

/// The NDJSON object keys: the column names in column order, a repeated
/// name numbered (`id`, `id_2`) so no column is lost to another of the
/// same name (`SELECT c.id, o.id …`).
fn object_keys(schema: &SchemaRef) -> std::io::Result<Vec<Vec<u8>>> {
    let mut taken = std::collections::HashSet::new();
    schema
        .fields()
        .iter()
        .map(|field| {
            let mut name = field.name().clone();
            let mut n = 2;
            while !taken.insert(name.clone()) {
                name = format!("{}_{n}", field.name());
                n += 1;
            }
            let mut key = serde_json::to_vec(&name).map_err(std::io::Error::other)?;
            key.push(b':');
            Ok(key)
        })
        .collect()
}

/// Turns batches into body chunks, keeping what a format needs between them.
enum Encoder {
    /// Each column's key, JSON-encoded with its `:`, in column order.
    NdJson {
        keys: Vec<Vec<u8>>,
    },
    Csv {
        header: bool,
    },
    Arrow(Box<StreamWriter<Vec<u8>>>),
}

impl Encoder {
    fn new(encoding: Encoding, schema: &SchemaRef) -> std::io::Result<Self> {
        Ok(match encoding {
            Encoding::NdJson => Self::NdJson {
                keys: object_keys(schema)?,
            },
            Encoding::Csv => Self::Csv { header: true },
            Encoding::Arrow => Self::Arrow(Box::new(
                StreamWriter::try_new(Vec::new(), schema).map_err(std::io::Error::other)?,
            )),
        })
    }

    /// The bytes for one batch (the CSV header and the IPC schema come first).
    fn encode(&mut self, batch: &RecordBatch) -> std::io::Result<Bytes> {
        match self {
            Self::NdJson { keys } => {
                let mut out = Vec::new();
                for row in results::rows(batch) {
                    out.push(b'{');
                    for (i, (key, value)) in keys.iter().zip(&row).enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        out.extend_from_slice(key);
                        serde_json::to_writer(&mut out, value).map_err(std::io::Error::other)?;
                    }
                    out.extend_from_slice(b"}\n");
                }
                Ok(out.into())
            }
            Self::Csv { header } => {
                let mut out = Vec::new();
                let mut writer = CsvWriterBuilder::new().with_header(*header).build(&mut out);
                writer.write(batch).map_err(std::io::Error::other)?;
                drop(writer);
                *header = false;
                Ok(out.into())
            }
            Self::Arrow(writer) => {
                writer.write(batch).map_err(std::io::Error::other)?;
                Ok(std::mem::take(writer.get_mut()).into())
            }
        }
    }

    /// The closing bytes: a CSV header when no batch came, the IPC end marker.
    fn finish(&mut self, schema: &SchemaRef) -> std::io::Result<Bytes> {
        match self {
            Self::NdJson { .. } => Ok(Bytes::new()),
            Self::Csv { header } if *header => {
                let empty = RecordBatch::new_empty(schema.clone());
                self.encode(&empty)
            }
            Self::Csv { .. } => Ok(Bytes::new()),
            Self::Arrow(writer) => {
                writer.finish().map_err(std::io::Error::other)?;
                Ok(std::mem::take(writer.get_mut()).into())
            }
        }
    }
}

struct Progress {
    encoder: Encoder,
    schema: SchemaRef,
    batches: SendableRecordBatchStream,
    rows_left: usize,
    deadline: tokio::time::Instant,
    limit: Duration,
    done: bool,
}

impl Progress {
    /// The next body chunk, or `None` once the stream has ended.
    async fn next_chunk(&mut self) -> Option<std::io::Result<Bytes>> {
        if self.done {
            return None;
        }
        if self.rows_left == 0 {
            self.done = true;
            return Some(self.encoder.finish(&self.schema));
        }
        match tokio::time::timeout_at(self.deadline, self.batches.next()).await {
            Err(_) => {
                self.done = true;
                Some(Err(std::io::Error::other(format!(
                    "the query took longer than {:?}",
                    self.limit
                ))))
            }
            Ok(None) => {
                self.done = true;
                Some(self.encoder.finish(&self.schema))
            }
            Ok(Some(Err(error))) => {
                self.done = true;
                Some(Err(std::io::Error::other(error.to_string())))
            }
            Ok(Some(Ok(batch))) => {
                let batch = if batch.num_rows() > self.rows_left {
                    batch.slice(0, self.rows_left)
                } else {
                    batch
                };
                self.rows_left -= batch.num_rows();
                Some(self.encoder.encode(&batch))
            }
        }
    }
}

/// A streaming response for a started query. An error after the first
/// byte can only cut the body short; errors before it (planning, a source
/// that is down) were already answered as JSON by the caller.
pub fn response(
    encoding: Encoding,
    output: QueryOutput,
    max_rows: usize,
    limit: Duration,
) -> Response {
    let encoder = match Encoder::new(encoding, &output.schema) {
        Ok(encoder) => encoder,
        Err(error) => return crate::error::ApiError::internal(error.to_string()).into_response(),
    };
    let progress = Progress {
        encoder,
        schema: output.schema,
        batches: output.stream,
        rows_left: max_rows,
        deadline: tokio::time::Instant::now() + limit,
        limit,
        done: false,
    };
    let body = futures::stream::unfold(progress, |mut progress| async move {
        progress.next_chunk().await.map(|chunk| (chunk, progress))
    });
    (
        [(header::CONTENT_TYPE, encoding.content_type())],
        Body::from_stream(body),
    )
        .into_response()
}
