//! `POST /api/sql`: read-only SQL over every source, with bound parameters,
//! a time limit and a row cap; `explain: true` returns the plan and the SQL
//! each source receives instead of rows.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use datafusion::scalar::ScalarValue;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::engine::EngineError;
use crate::error::{ApiError, json_rejection};
use crate::results;
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

/// `POST /api/sql`
pub async fn run(
    State(state): State<AppState>,
    body: Result<Json<SqlRequest>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(request) = body.map_err(|e| json_rejection(&e))?;
    let params = request
        .params
        .iter()
        .enumerate()
        .map(|(i, v)| scalar(v, i))
        .collect::<Result<Vec<_>, _>>()?;
    let limit = state.config.query_timeout;
    if request.explain {
        let (plan, sources) = within(limit, state.engine.explain(&request.sql, params)).await?;
        return Ok(Json(json!({ "plan": plan, "sources": sources })));
    }
    let max_rows = state.config.max_rows;
    let collected = within(limit, async {
        let mut output = state.engine.query(&request.sql, params).await?;
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
    Ok(Json(
        json!({ "columns": columns, "rows": rows, "truncated": truncated }),
    ))
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
