//! Streaming reads: one pooled session runs the statement on a blocking
//! thread and hands Arrow batches of `BATCH_ROWS` rows to the caller through
//! a bounded channel while it is still fetching.
//!
//! A reader that gives up (the stream or the `query()` future dropped) must
//! not leave the statement running: a watcher task sees the channel close
//! and calls `break_execution` on the session (Oracle's out-of-band cancel,
//! which ends a running execute or fetch with ORA-01013), and the session is
//! then discarded rather than pooled, since its state is unknown.
//!
//! A statement whose result has a JSON column runs wrapped so that column
//! comes back as text (`json_text.rs`): the first read learns so from the
//! driver's refusal, describes the statement and remembers the wrapped form
//! for its SQL text, so later reads run that directly.

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Instant;

use arrow_array::RecordBatch;
use arrow_schema::{Field, Schema, SchemaRef};
use oracle::sql_type::{OracleType, ToSql};
use oracle::{ColumnInfo, Connection, ResultSet, Row};
use tokio::sync::{mpsc, oneshot};
use tributary_connector::{
    BATCH_ROWS, BatchBuilder, ConnectorError, ErrorKind, FIRST_BATCH_CAPACITY, Result, RowStream,
    Statement, Value,
};

use crate::client::driver::{self, Param};
use crate::client::pool::SessionPool;
use crate::json_text::{self, JsonPlan, JsonPlans};
use crate::types::Decode;
use crate::values::Bind;

/// Batches buffered ahead of the consumer.
const AHEAD: usize = 2;

/// Rows the driver fetches per round trip.
const FETCH_ROWS: u32 = 1_000;

/// Runs `statement` and streams its rows, typed by `schema` when given (the
/// catalog's types), else by the result's column types. Errors name `source`.
/// `plans` holds the wrapped forms of statements with JSON columns.
pub async fn stream(
    pool: &SessionPool,
    source: String,
    statement: &Statement,
    schema: Option<SchemaRef>,
    plans: Arc<JsonPlans>,
) -> Result<RowStream> {
    let params = Param::binds(&statement.params)?;
    let session = pool.acquire().await?;
    let connected = Instant::now();
    let conn = session.connection()?;
    let host = pool.settings().address();
    let (head_tx, head_rx) = oneshot::channel();
    let (batch_tx, batch_rx) = mpsc::channel(AHEAD);
    let (done_tx, done_rx) = oneshot::channel::<()>();
    let state = Arc::new(Mutex::new(State::default()));
    tokio::spawn(watch(
        batch_tx.clone(),
        Arc::downgrade(&conn),
        Arc::clone(&state),
        done_rx,
    ));
    let sql = statement.sql.clone();
    let task_source = source.clone();
    tokio::task::spawn_blocking(move || {
        let mut session = session;
        let ended = read(
            &conn,
            &sql,
            &params,
            schema,
            &Context {
                source: &task_source,
                host: &host,
                plans: &plans,
            },
            head_tx,
            &batch_tx,
        );
        let broken = {
            let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
            state.finished = true;
            state.broken
        };
        // A break that arrived after the last call would surface as
        // ORA-01013 in the next statement of whoever gets the session.
        if ended == Ended::Unfinished || broken {
            session.mark_broken();
        }
        drop(conn);
        drop(batch_tx);
        let _watcher_gone = done_tx.send(());
        drop(session);
    });
    let schema = head_rx.await.map_err(|_| {
        ConnectorError::internal("the query task ended before the result").for_source(&source)
    })??;
    let batches = futures::stream::unfold(batch_rx, |mut rx| async move {
        rx.recv().await.map(|batch| (batch, rx))
    });
    Ok(RowStream::new(schema, batches).connected_at(connected))
}

/// What the reading thread and the watcher share.
#[derive(Debug, Default)]
struct State {
    /// The reading thread is done with the session.
    finished: bool,
    /// The watcher broke the session's execution.
    broken: bool,
}

/// Breaks the running statement when the reader goes away before the
/// reading thread is done. Holds the session weakly, so a finished session
/// goes back to the pool.
async fn watch(
    batches: mpsc::Sender<Result<RecordBatch>>,
    conn: Weak<Connection>,
    state: Arc<Mutex<State>>,
    done: oneshot::Receiver<()>,
) {
    tokio::select! {
        biased;
        _ = done => {}
        () = batches.closed() => {
            let _joined = tokio::task::spawn_blocking(move || {
                // Under the lock, so the reading thread cannot hand the
                // session back to the pool in between.
                let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
                if !state.finished
                    && let Some(conn) = conn.upgrade()
                {
                    state.broken = true;
                    if let Err(err) = conn.break_execution() {
                        tracing::warn!(error = %err, "could not break an abandoned Oracle statement");
                    }
                }
            })
            .await;
        }
    }
}

/// What a read runs with: where errors come from, and the remembered
/// wrapped forms of statements with JSON columns.
struct Context<'a> {
    source: &'a str,
    host: &'a str,
    plans: &'a JsonPlans,
}

impl Context<'_> {
    fn driver(&self, err: oracle::Error) -> ConnectorError {
        driver::error(err, self.host).for_source(self.source)
    }
}

/// How reading a statement's result ended.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    /// The statement is over and the session idle again.
    Complete,
    /// Reading stopped early or the session failed: not to be reused.
    Unfinished,
}

/// An error that leaves the session in an unknown state.
fn ended_by(err: &ConnectorError) -> Ended {
    match err.kind() {
        ErrorKind::Unavailable | ErrorKind::Timeout | ErrorKind::Internal => Ended::Unfinished,
        _ => Ended::Complete,
    }
}

/// Executes `sql` for reading.
fn execute(
    conn: &Connection,
    sql: &str,
    params: &[&dyn ToSql],
) -> oracle::Result<ResultSet<'static, Row>> {
    conn.statement(sql)
        .fetch_array_size(FETCH_ROWS)
        .build()?
        .into_result_set(params)
}

/// Executes the statement: as remembered when it has JSON columns, else as
/// it is, and wrapped when the driver refuses a JSON column. Answers the
/// rows and, for a wrapped statement, its plan (the original column names).
fn open(
    conn: &Connection,
    sql: &str,
    params: &[&dyn ToSql],
    cx: &Context<'_>,
) -> Result<(ResultSet<'static, Row>, Option<Arc<JsonPlan>>)> {
    let plans = cx.plans;
    if let Some(plan) = plans.get(sql) {
        match execute(conn, &plan.sql, params) {
            Ok(rows) => return Ok((rows, Some(plan))),
            // The tables changed under the remembered plan: plan again.
            Err(err) if outdated(&err) => plans.forget(sql),
            Err(err) => return Err(cx.driver(err)),
        }
    }
    let refused = match execute(conn, sql, params) {
        Ok(rows) => return Ok((rows, None)),
        Err(err) if driver::is_json_fetch_failure(&err) => err,
        Err(err) => return Err(cx.driver(err)),
    };
    let columns = describe(conn, sql, cx).map_err(|err| match ended_by(&err) {
        Ended::Unfinished => err,
        // DBMS_SQL not granted, say: the JSON column stays unreadable.
        Ended::Complete => driver::json_unsupported().with_cause(err),
    })?;
    let Some(plan) = json_text::plan(sql, &columns) else {
        return Err(cx.driver(refused));
    };
    let plan = plans.remember(sql, plan);
    let rows = execute(conn, &plan.sql, params).map_err(|e| cx.driver(e))?;
    Ok((rows, Some(plan)))
}

/// Whether running a remembered plan failed because it no longer fits the
/// statement: its result has a different number of columns (ORA-32038), a
/// serialized column is no longer JSON (ORA-00932) or another one now is.
fn outdated(err: &oracle::Error) -> bool {
    driver::is_json_fetch_failure(err)
        || err
            .db_error()
            .is_some_and(|db| matches!(db.code(), 932 | 32_038))
}

/// The result columns of `sql`, described through `DBMS_SQL` (the driver
/// fails on a JSON column before it shows its metadata).
fn describe(
    conn: &Connection,
    sql: &str,
    cx: &Context<'_>,
) -> Result<Vec<json_text::DescribedColumn>> {
    let text = Param::In(Bind::Text(sql.to_string()));
    let answer = Param::Out(OracleType::CLOB);
    let described = conn
        .statement(json_text::DESCRIBE_BLOCK)
        .build()
        .and_then(|mut stmt| {
            stmt.execute(&[&text, &answer])?;
            stmt.bind_value::<usize, Option<String>>(2)
        })
        .map_err(|e| cx.driver(e))?;
    json_text::parse_description(described.as_deref()).map_err(|e| e.for_source(cx.source))
}

/// Runs the statement, sends its schema to `head`, then its rows to `batches`.
fn read(
    conn: &Connection,
    sql: &str,
    params: &[Param],
    schema: Option<SchemaRef>,
    cx: &Context<'_>,
    head: oneshot::Sender<Result<SchemaRef>>,
    batches: &mpsc::Sender<Result<RecordBatch>>,
) -> Ended {
    let refs: Vec<&dyn ToSql> = params.iter().map(|p| p as &dyn ToSql).collect();
    let (rows, plan) = match open(conn, sql, &refs, cx) {
        Ok(opened) => opened,
        Err(err) => {
            let ended = ended_by(&err);
            let _receiver_gone = head.send(Err(err));
            return ended;
        }
    };
    let columns = rows.column_info().to_vec();
    let decodes: Vec<Decode> = columns
        .iter()
        .map(|c| driver::native_of(c.oracle_type()).decode())
        .collect();
    let names = plan.as_ref().map(|plan| plan.names.as_slice());
    let prepared = result_schema(&columns, names, schema).and_then(|schema| {
        let builder = BatchBuilder::new(schema.clone(), FIRST_BATCH_CAPACITY)?;
        Ok((schema, builder))
    });
    let (schema, mut builder) = match prepared {
        Ok(ready) => ready,
        Err(err) => {
            let _receiver_gone = head.send(Err(err.for_source(cx.source)));
            return Ended::Unfinished;
        }
    };
    if head.send(Ok(schema.clone())).is_err() {
        return Ended::Unfinished;
    }
    for row in rows {
        let values = row.map_err(|e| cx.driver(e)).and_then(|row| {
            row.sql_values()
                .iter()
                .zip(&decodes)
                .zip(schema.fields())
                .map(|((value, decode), field)| {
                    driver::decode(value, *decode)
                        .map(|mut v| v.pop().unwrap_or(Value::Null))
                        .map_err(|e| {
                            ConnectorError::new(
                                e.kind(),
                                format!("column `{}`: {}", field.name(), e.message()),
                            )
                            .for_source(cx.source)
                        })
                })
                .collect::<Result<Vec<_>>>()
        });
        if let Err(err) = values.and_then(|values| {
            builder
                .push_row(values)
                .map_err(|e| e.for_source(cx.source))
        }) {
            let _receiver_gone = batches.blocking_send(Err(err));
            return Ended::Unfinished;
        }
        if builder.len() >= BATCH_ROWS {
            let batch = builder.finish().map_err(|e| e.for_source(cx.source));
            if batches.blocking_send(batch).is_err() {
                return Ended::Unfinished;
            }
        }
    }
    if !builder.is_empty() {
        let batch = builder.finish().map_err(|e| e.for_source(cx.source));
        let _receiver_gone = batches.blocking_send(batch);
    }
    Ended::Complete
}

/// The result schema: the caller's, or one field per result column typed by
/// the mapping of its driver type and named `names` (a wrapped statement's
/// original column names) or as the driver names it.
fn result_schema(
    columns: &[ColumnInfo],
    names: Option<&[String]>,
    schema: Option<SchemaRef>,
) -> Result<SchemaRef> {
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
        .enumerate()
        .map(|(i, c)| {
            let name = names
                .and_then(|names| names.get(i))
                .map_or(c.name(), String::as_str);
            Field::new(name, driver::native_of(c.oracle_type()).data_type(), true)
        })
        .collect();
    Ok(Arc::new(Schema::new(fields)))
}
