//! Reads: prepare a statement (rewriting it to fetch undecodable columns as
//! text, see `types.rs`), bind parameters, and stream the rows as Arrow
//! batches of `BATCH_ROWS` rows. For KingbaseES, also what to do when the
//! driver cannot look a type up because the server has no `pg_catalog`
//! (see `flavor.rs`).

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use deadpool_postgres::{ClientWrapper, Object};
use futures::StreamExt;
use tokio_postgres::types::Type;
use tokio_postgres::{Row, Statement};
use tributary_connector::{
    BATCH_ROWS, BatchBuilder, ConnectorError, ErrorKind, FIRST_BATCH_CAPACITY, Result,
};

use crate::decode::{Raw, decode, numeric_into};
use crate::encode::PgParam;
use crate::error::from_pg;
use crate::flavor::Flavor;
use crate::types::{PgType, Scalar, classify, data_type, driver_knows};

/// One output column: its name, how to decode it and its driver-derived type.
#[derive(Debug, Clone)]
pub(crate) struct OutColumn {
    pub name: String,
    pub scalar: Scalar,
    pub data_type: DataType,
}

/// A statement ready to run, with the plan for its columns.
pub(crate) struct Prepared {
    pub statement: Statement,
    pub columns: Vec<OutColumn>,
}

impl Prepared {
    /// The Arrow schema from the driver's column metadata.
    pub fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.columns
                .iter()
                .map(|c| Field::new(&c.name, c.data_type.clone(), true))
                .collect::<Vec<_>>(),
        ))
    }
}

/// The alias of the CTE the text fallback wraps a statement in.
const FALLBACK_CTE: &str = "tributary_fallback";

/// The statement rewritten so the columns marked `true` come back as text:
/// `WITH t(c1, …) AS (<sql>) SELECT c1, c2::text, … FROM t`.
pub(crate) fn text_fallback_sql(sql: &str, as_text: &[bool]) -> String {
    let body = sql.trim_end().trim_end_matches(';').trim_end();
    let aliases: Vec<String> = (1..=as_text.len()).map(|i| format!("\"c{i}\"")).collect();
    let select: Vec<String> = aliases
        .iter()
        .zip(as_text)
        .map(|(alias, text)| {
            if *text {
                format!("{alias}::text")
            } else {
                alias.clone()
            }
        })
        .collect();
    format!(
        "WITH \"{FALLBACK_CTE}\"({}) AS (\n{body}\n) SELECT {} FROM \"{FALLBACK_CTE}\"",
        aliases.join(", "),
        select.join(", ")
    )
}

/// Prepares `sql`; when some column has no binary decoder, prepares the text
/// fallback instead. `cached` uses the connection's statement cache. The
/// KingbaseES flavor decodes only the types the driver knows without asking
/// the server and reads every other one as text, as its introspection
/// reports them.
pub(crate) async fn prepare(
    flavor: Flavor,
    client: &ClientWrapper,
    sql: &str,
    cached: bool,
) -> Result<Prepared, tokio_postgres::Error> {
    let statement = if cached {
        prepare_cached(client, sql).await?
    } else {
        client.prepare(sql).await?
    };
    let mut as_text = Vec::with_capacity(statement.columns().len());
    let mut columns = Vec::with_capacity(statement.columns().len());
    for column in statement.columns() {
        let ty = PgType::from_driver(column.type_());
        let decodable = match flavor {
            Flavor::Postgres => classify(&ty),
            Flavor::Kingbase => classify(&ty).filter(|_| driver_knows(ty.oid)),
        };
        let (scalar, data_type) = match decodable.clone() {
            Some(scalar) => {
                let dt = data_type(&ty, column.type_modifier()).unwrap_or(DataType::Utf8);
                (scalar, dt)
            }
            None => (Scalar::Text, DataType::Utf8),
        };
        as_text.push(decodable.is_none());
        columns.push(OutColumn {
            name: column.name().to_string(),
            scalar,
            data_type,
        });
    }
    if !as_text.iter().any(|t| *t) {
        return Ok(Prepared { statement, columns });
    }
    let wrapped = text_fallback_sql(sql, &as_text);
    let statement = if cached {
        prepare_cached(client, &wrapped).await?
    } else {
        client.prepare(&wrapped).await?
    };
    Ok(Prepared { statement, columns })
}

/// Statements a connection keeps prepared; then it starts over.
const STATEMENT_CACHE_LIMIT: usize = 256;

/// `sql` from the connection's statement cache, prepared on first use. The
/// cache is bounded ([`STATEMENT_CACHE_LIMIT`]): statements of ever new
/// shapes (an insert's row count is in its text) would otherwise pile up
/// on the server without end.
async fn prepare_cached(
    client: &ClientWrapper,
    sql: &str,
) -> Result<Statement, tokio_postgres::Error> {
    if client.statement_cache.size() >= STATEMENT_CACHE_LIMIT {
        client.statement_cache.clear();
    }
    client.prepare_cached(sql).await
}

/// Whether a failed preparation is the driver's own lookup of a type it does
/// not know (it reads `pg_catalog.pg_type`, `pg_range`, `pg_enum`,
/// `pg_attribute` and `pg_namespace`), which fails on a KingbaseES server
/// without `pg_catalog` (or where the role may not read it).
pub(crate) fn is_type_lookup_failure(err: &tokio_postgres::Error) -> bool {
    err.as_db_error().is_some_and(|db| {
        let message = db.message();
        [
            "pg_catalog",
            "pg_type",
            "pg_range",
            "pg_enum",
            "pg_attribute",
            "pg_namespace",
        ]
        .iter()
        .any(|name| message.contains(name))
    })
}

/// The error for a statement whose types the driver could not look up.
fn type_lookup_error(err: tokio_postgres::Error) -> ConnectorError {
    let cause = from_pg(err);
    ConnectorError::new(
        ErrorKind::Unsupported,
        format!(
            "the statement returns or takes a value of a type that is not built into PostgreSQL \
             (an enum, composite, extension or KingbaseES-specific type); the driver looks such \
             types up in pg_catalog, which this KingbaseES server does not let it read ({}); \
             cast such columns to text in SQL (`column::text`)",
            cause.message()
        ),
    )
    .with_cause(cause)
}

/// [`prepare`] with its error classified; on KingbaseES a failed type lookup
/// says so.
pub(crate) async fn prepare_checked(
    flavor: Flavor,
    client: &ClientWrapper,
    sql: &str,
    cached: bool,
) -> Result<Prepared> {
    match prepare(flavor, client, sql, cached).await {
        Ok(prepared) => Ok(prepared),
        Err(e) if flavor == Flavor::Kingbase && is_type_lookup_failure(&e) => {
            Err(type_lookup_error(e))
        }
        Err(e) => Err(from_pg(e)),
    }
}

/// The statements a KingbaseES read had to prepare with their text columns
/// cast (see [`prepare_read`]), so later runs skip the failing attempt: the
/// server keeps each statement the driver failed to describe until the
/// connection closes, and the driver has no handle to close it by.
#[derive(Debug, Default)]
pub(crate) struct DegradedStatements {
    sql: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl DegradedStatements {
    /// At most this many statements are remembered (then forgotten at once).
    const LIMIT: usize = 1024;

    fn contains(&self, sql: &str) -> bool {
        self.sql.lock().is_ok_and(|set| set.contains(sql))
    }

    fn insert(&self, sql: &str) {
        if let Ok(mut set) = self.sql.lock() {
            if set.len() >= Self::LIMIT {
                set.clear();
            }
            set.insert(sql.to_string());
        }
    }
}

/// [`prepare_checked`] for a read. On KingbaseES, when the driver cannot
/// look up a result type and the caller knows the schema of the result
/// (the catalog's: text for every type the driver cannot decode), the
/// statement is prepared once more with the text columns cast to `text`, so
/// that no result column has a type the driver would look up; `degraded`
/// remembers it for the next run.
pub(crate) async fn prepare_read(
    flavor: Flavor,
    client: &ClientWrapper,
    sql: &str,
    cached: bool,
    expected: Option<&SchemaRef>,
    degraded: &DegradedStatements,
) -> Result<Prepared> {
    let as_text: Option<Vec<bool>> = expected.map(|schema| {
        schema
            .fields()
            .iter()
            .map(|f| f.data_type() == &DataType::Utf8)
            .collect()
    });
    let can_degrade =
        flavor == Flavor::Kingbase && as_text.as_ref().is_some_and(|t| t.contains(&true));
    if !(can_degrade && degraded.contains(sql)) {
        match prepare(flavor, client, sql, cached).await {
            Ok(prepared) => return Ok(prepared),
            Err(e) if flavor == Flavor::Kingbase && is_type_lookup_failure(&e) => {
                if !can_degrade {
                    return Err(type_lookup_error(e));
                }
            }
            Err(e) => return Err(from_pg(e)),
        }
    }
    let (Some(expected), Some(as_text)) = (expected, as_text) else {
        return Err(ConnectorError::internal(
            "no expected schema to read text columns by",
        ));
    };
    let wrapped = text_fallback_sql(sql, &as_text);
    let mut prepared = prepare_checked(flavor, client, &wrapped, cached).await?;
    degraded.insert(sql);
    // The wrapper's columns are `c1`, `c2`, ...: name them as expected.
    for (column, field) in prepared.columns.iter_mut().zip(expected.fields()) {
        column.name.clone_from(field.name());
    }
    Ok(prepared)
}

/// Checks every value against its parameter's type (`types`, as the
/// statement was described) before anything is sent.
pub(crate) fn check_params(types: &[Type], params: &[PgParam<'_>]) -> Result<()> {
    let (expected, count) = (types.len(), params.len());
    if expected != count {
        return Err(ConnectorError::invalid_input(format!(
            "the statement has {expected} parameter(s) but {count} value(s) were bound"
        )));
    }
    for (param, ty) in params.iter().zip(types) {
        param
            .check(ty)
            .map_err(|e| ConnectorError::invalid_input(e.to_string()))?;
    }
    Ok(())
}

/// The schema rows are delivered in: the caller's, when given (it must have
/// one field per column), else the driver's.
pub(crate) fn output_schema(prepared: &Prepared, schema: Option<SchemaRef>) -> Result<SchemaRef> {
    match schema {
        Some(schema) if schema.fields().len() == prepared.columns.len() => Ok(schema),
        Some(schema) => Err(ConnectorError::invalid_input(format!(
            "the statement returns {} column(s) but the expected schema has {}",
            prepared.columns.len(),
            schema.fields().len()
        ))),
        None => Ok(prepared.schema()),
    }
}

/// Appends `row` to `builder`: text and numerics straight from the row's
/// buffer (`scratch` holds a numeric's text between rows), other values
/// through [`decode`].
pub(crate) fn push_row(
    builder: &mut BatchBuilder,
    row: &Row,
    columns: &[OutColumn],
    scratch: &mut String,
) -> Result<()> {
    builder.push_row_with(|i, sink| {
        let column = columns
            .get(i)
            .ok_or_else(|| ConnectorError::internal("a row has more columns than its statement"))?;
        let raw: Raw<'_> = row.try_get(i).map_err(from_pg)?;
        let Some(bytes) = raw.0 else {
            sink.null();
            return Ok(());
        };
        let cannot = |message: String| {
            ConnectorError::internal(format!(
                "column `{}`: cannot decode: {message}",
                column.name
            ))
        };
        let text =
            || std::str::from_utf8(bytes).map_err(|e| cannot(format!("text is not UTF-8: {e}")));
        match column.scalar {
            Scalar::Text | Scalar::Json => sink.text(text()?),
            Scalar::PaddedText => sink.text(text()?.trim_end_matches(' ')),
            Scalar::Numeric => {
                if numeric_into(bytes, scratch).map_err(cannot)? {
                    sink.decimal(scratch)
                } else {
                    sink.text(scratch)
                }
            }
            _ => sink.value(decode(&column.scalar, bytes).map_err(cannot)?),
        }
    })
}

/// Receives a whole (small) result, e.g. the rows a write returns, and
/// the count of rows the statement affected.
pub(crate) async fn receive(rows: tokio_postgres::RowStream) -> Result<(Vec<Row>, u64)> {
    let mut rows = Box::pin(rows);
    let mut received = Vec::new();
    while let Some(row) = rows.next().await {
        received.push(row.map_err(from_pg)?);
    }
    let affected = rows.rows_affected().unwrap_or(received.len() as u64);
    Ok((received, affected))
}

/// Decodes received rows (a write's returned rows) into one batch.
pub(crate) fn decode_rows(
    rows: &[Row],
    columns: &[OutColumn],
    schema: SchemaRef,
) -> Result<RecordBatch> {
    let mut builder = BatchBuilder::new(schema, rows.len().max(1))?;
    let mut scratch = String::new();
    for row in rows {
        push_row(&mut builder, row, columns, &mut scratch)?;
    }
    builder.finish()
}

/// The error for a write whose cached plan a changed table made stale,
/// after earlier statements of its transaction: the transaction is lost.
pub(crate) fn table_changed() -> ConnectorError {
    ConnectorError::new(
        ErrorKind::Conflict,
        "the table changed since this statement was last run; send the request again",
    )
}

/// A pooled connection serving a stream. Dropped before the stream ended
/// (the reader stopped early, the client went away, a time limit hit), the
/// connection leaves the pool and its statement is cancelled on the server
/// (`cancel_until_ended`) before the connection is closed: the server would
/// otherwise go on computing rows nobody will read, noticing the closed
/// connection only when it next writes to it.
pub(crate) struct ConnGuard {
    conn: Option<Object>,
    complete: bool,
}

impl ConnGuard {
    pub fn new(conn: Object) -> Self {
        Self {
            conn: Some(conn),
            complete: false,
        }
    }

    /// The statement finished (or failed on the server): the connection is idle.
    pub fn complete(&mut self) {
        self.complete = true;
    }

    /// The guarded connection (present until the guard is dropped).
    pub fn conn(&self) -> Option<&Object> {
        self.conn.as_ref()
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        if !self.complete
            && let Some(conn) = self.conn.take()
        {
            let client = Object::take(conn);
            // Without a runtime (one shutting down) the client is dropped
            // here: the connection closes, and the server stops at its next
            // write.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(cancel_until_ended(client));
            }
        }
    }
}

/// How long to wait for the server to confirm a cancel before sending it
/// again: soon at first, then every second for a minute, after which the
/// connection is closed anyway. (A statement can start late — it may still
/// sit in the connection's queue when the reader gives up — so the cancel
/// is repeated until the statement is seen to end, not a few times early.)
fn cancel_waits() -> impl Iterator<Item = Duration> {
    [Duration::from_millis(100), Duration::from_millis(400)]
        .into_iter()
        .chain(std::iter::repeat_n(Duration::from_secs(1), 60))
}

/// Cancels the statement running on `client`, then closes the connection.
/// PostgreSQL ignores a cancel request that reaches the backend while it is
/// not running a statement (still reading it, or the statement not yet
/// sent), so the cancel is sent again until the server answers an empty
/// query queued behind the statement: proof that it has ended. (Cancel
/// requests go without TLS, best effort: a server that takes them only
/// over TLS still sees the connection close.)
async fn cancel_until_ended(client: ClientWrapper) {
    let token = client.cancel_token();
    let mut ended = std::pin::pin!(client.simple_query(""));
    for wait in cancel_waits() {
        let _ = token.cancel_query(tokio_postgres::NoTls).await;
        // Any answer, an error included, means the statement is over.
        if tokio::time::timeout(wait, &mut ended).await.is_ok() {
            return;
        }
    }
    tracing::warn!("a cancelled statement did not end; closing its connection");
}

struct StreamState {
    conn: ConnGuard,
    rows: Pin<Box<tokio_postgres::RowStream>>,
    builder: BatchBuilder,
    columns: Arc<[OutColumn]>,
    /// A numeric's text, between decoding and appending.
    scratch: String,
    source: String,
    done: bool,
}

impl StreamState {
    fn finish_conn(&mut self) {
        self.conn.complete();
    }
}

/// Streams the rows of a started statement as batches of `BATCH_ROWS` rows.
pub(crate) fn stream_batches(
    conn: ConnGuard,
    rows: tokio_postgres::RowStream,
    columns: Vec<OutColumn>,
    schema: SchemaRef,
    source: String,
) -> Result<impl futures::Stream<Item = Result<RecordBatch>> + Send + 'static> {
    let state = StreamState {
        conn,
        rows: Box::pin(rows),
        builder: BatchBuilder::new(schema, FIRST_BATCH_CAPACITY)?,
        columns: columns.into(),
        scratch: String::new(),
        source,
        done: false,
    };
    Ok(futures::stream::try_unfold(state, |mut st| async move {
        if st.done {
            return Ok(None);
        }
        loop {
            match st.rows.next().await {
                Some(Ok(row)) => {
                    push_row(&mut st.builder, &row, &st.columns, &mut st.scratch)
                        .map_err(|e| e.for_source(&st.source))?;
                    if st.builder.len() >= BATCH_ROWS {
                        let batch = st.builder.finish().map_err(|e| e.for_source(&st.source))?;
                        return Ok(Some((batch, st)));
                    }
                }
                Some(Err(e)) => {
                    // A server error ends the statement; the connection is reusable.
                    if e.as_db_error().is_some() {
                        st.finish_conn();
                    }
                    return Err(from_pg(e).for_source(&st.source));
                }
                None => {
                    st.finish_conn();
                    st.done = true;
                    if st.builder.is_empty() {
                        return Ok(None);
                    }
                    let batch = st.builder.finish().map_err(|e| e.for_source(&st.source))?;
                    return Ok(Some((batch, st)));
                }
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_wraps_with_positional_aliases() {
        let sql = text_fallback_sql("SELECT a, b, a FROM t -- note\n;", &[false, true, false]);
        assert_eq!(
            sql,
            "WITH \"tributary_fallback\"(\"c1\", \"c2\", \"c3\") AS (\nSELECT a, b, a FROM t -- note\n) \
             SELECT \"c1\", \"c2\"::text, \"c3\" FROM \"tributary_fallback\""
        );
    }
}
