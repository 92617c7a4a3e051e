//! `POST /api/sql`: read-only SQL over every source, with bound parameters,
//! a time limit and a row cap; `explain: true` returns the plan and the SQL
//! each source receives instead of rows, `analyze: true` runs the query and
//! returns what each source statement did instead of rows. The `Accept` header picks the
//! format: JSON (default), NDJSON, CSV or an Arrow IPC stream — the last
//! three stream batch by batch as the sources deliver them.

use std::time::Duration;

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use datafusion::scalar::ScalarValue;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Principal;
use crate::engine::EngineError;
use crate::error::{ApiError, json_rejection};
use crate::results;
use crate::sql_stream as stream;
use crate::state::AppState;

/// The request body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlRequest {
    pub sql: String,
    /// Values for `$1`, `$2`, … (JSON null, booleans, numbers, strings).
    #[serde(default)]
    pub params: Vec<Value>,
    /// Return the plan and the per-source SQL instead of running the query.
    #[serde(default)]
    pub explain: bool,
    /// Run the query without returning its rows: the plan with each node's
    /// metrics, the row count, and each source statement as sent (runtime
    /// filters included) with its rows and times.
    #[serde(default)]
    pub analyze: bool,
}

fn scalar(value: &Value, index: usize) -> Result<ScalarValue, ApiError> {
    Ok(match value {
        Value::Null => ScalarValue::Null,
        Value::Bool(b) => ScalarValue::Boolean(Some(*b)),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => ScalarValue::Int64(Some(i)),
            (None, Some(f)) => ScalarValue::Float64(Some(f)),
            (None, None) => {
                return Err(ApiError::bad_request(format!(
                    "parameter ${} is out of range",
                    index + 1
                )));
            }
        },
        Value::String(s) => ScalarValue::Utf8(Some(s.clone())),
        Value::Array(_) | Value::Object(_) => {
            return Err(ApiError::bad_request(format!(
                "parameter ${} must be null, a boolean, a number or a string",
                index + 1
            ))
            .at(format!("params[{index}]")));
        }
    })
}

/// The response formats, by `Accept` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Json,
    Streamed(stream::Encoding),
}

impl Format {
    pub(crate) fn from_headers(headers: &HeaderMap) -> Result<Self, ApiError> {
        let accept = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json");
        for media in accept
            .split(',')
            .map(|m| m.split(';').next().unwrap_or("").trim())
        {
            match media {
                "application/json" | "*/*" | "application/*" | "" => return Ok(Self::Json),
                "application/x-ndjson" | "application/ndjson" => {
                    return Ok(Self::Streamed(stream::Encoding::NdJson));
                }
                "text/csv" => return Ok(Self::Streamed(stream::Encoding::Csv)),
                "application/vnd.apache.arrow.stream" => {
                    return Ok(Self::Streamed(stream::Encoding::Arrow));
                }
                _ => {}
            }
        }
        Err(ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            "not_acceptable",
            format!(
                "cannot answer `{accept}`: use application/json, application/x-ndjson, \
                 text/csv or application/vnd.apache.arrow.stream"
            ),
        ))
    }
}

/// `POST /api/sql`
pub async fn run(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Result<Json<SqlRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(request) = body.map_err(|e| json_rejection(&e))?;
    let caller = principal.caller();
    let format = Format::from_headers(&headers)?;
    let params = request
        .params
        .iter()
        .enumerate()
        .map(|(i, v)| scalar(v, i))
        .collect::<Result<Vec<_>, _>>()?;
    let limit = state.config.query_timeout;
    if request.explain && request.analyze {
        return Err(ApiError::bad_request(
            "explain and analyze exclude each other: explain plans without running, analyze runs",
        )
        .at("analyze"));
    }
    if request.analyze {
        let analysis = within(limit, state.engine.analyze(&request.sql, params, &caller)).await?;
        return Ok(Json(analysis).into_response());
    }
    if request.explain {
        let (plan, sources) =
            within(limit, state.engine.explain(&request.sql, params, &caller)).await?;
        return Ok(Json(json!({ "plan": plan, "sources": sources })).into_response());
    }
    let max_rows = state.config.max_rows;
    if let Format::Streamed(encoding) = format {
        let output = within(limit, state.engine.query(&request.sql, params, &caller)).await?;
        let max_rows = capped(max_rows, output.row_limit);
        return Ok(stream::response(encoding, output, max_rows, limit));
    }
    let collected = within(limit, async {
        let mut output = state.engine.query(&request.sql, params, &caller).await?;
        // A role's select rules may cap the rows it gets.
        let max_rows = capped(max_rows, output.row_limit);
        let mut rows = Vec::new();
        let mut truncated = false;
        while let Some(batch) = output.stream.next().await {
            let batch = batch?;
            for row in results::rows(&batch) {
                if rows.len() == max_rows {
                    truncated = true;
                    break;
                }
                rows.push(Value::Array(row));
            }
            if truncated {
                // Dropping the stream stops the sources' queries.
                break;
            }
        }
        Ok((output.schema, rows, truncated))
    })
    .await?;
    let (schema, rows, truncated) = collected;
    let columns: Vec<Value> = schema
        .fields()
        .iter()
        .map(|f| json!({ "name": f.name(), "type": f.data_type().to_string(), "nullable": f.is_nullable() }))
        .collect();
    Ok(Json(json!({ "columns": columns, "rows": rows, "truncated": truncated })).into_response())
}

fn capped(max_rows: usize, role_limit: Option<u64>) -> usize {
    role_limit
        .and_then(|l| usize::try_from(l).ok())
        .map_or(max_rows, |l| l.min(max_rows))
}

async fn within<T>(
    limit: Duration,
    work: impl Future<Output = Result<T, EngineError>>,
) -> Result<T, ApiError> {
    match tokio::time::timeout(limit, work).await {
        Ok(result) => result.map_err(ApiError::from),
        Err(_) => Err(ApiError::from(EngineError::Timeout(limit))),
    }
}
