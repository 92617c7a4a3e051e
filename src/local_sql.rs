//! `tributary sql` without a server: opens a data directory read-only the
//! way `serve` opens it (without listening), hands the query to the SQL
//! endpoint's own handler in this process — so the read-only check, the time
//! limit, the row cap and the errors are exactly those of `POST /api/sql` —
//! and prints the answer the way the HTTP mode does.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use futures::StreamExt;
use serde_json::Value;

use crate::app::{DataAccess, StartError, open_state};
use crate::cli::{OutputFormat, ServeArgs, SqlAnswer};
use crate::client;
use crate::config::ConfigError;
use crate::error::ApiError;
use crate::sql_api::{self, SqlRequest};

/// Why a local query printed no (or not all of its) result.
#[derive(Debug, thiserror::Error)]
pub enum LocalSqlError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Start(#[from] StartError),
    /// The endpoint's error: its code (`syntax_error`, `invalid_query`,
    /// `read_only`, `source_unavailable`, `query_timeout`, …) and message.
    #[error("{code}: {message}")]
    Query { code: String, message: String },
    /// The query failed after rows were already printed (a source that
    /// went away, the time limit).
    #[error("the result stopped early: {0}")]
    Interrupted(String),
    #[error("cannot print the result: {0}")]
    Output(std::io::Error),
}

impl From<ApiError> for LocalSqlError {
    fn from(error: ApiError) -> Self {
        Self::Query {
            code: error.code.to_string(),
            message: error.message,
        }
    }
}

/// Runs `query` over the data directory `config` names and prints the result.
pub async fn run(
    config: &ServeArgs,
    query: &str,
    answer: SqlAnswer,
    format: OutputFormat,
) -> Result<(), LocalSqlError> {
    let config = config.resolve()?;
    let state = open_state(config, DataAccess::Reader).await?;
    let streamed_csv = format == OutputFormat::Csv && answer == SqlAnswer::Rows;
    let mut headers = HeaderMap::new();
    headers.insert(
        header::ACCEPT,
        HeaderValue::from_static(if streamed_csv {
            "text/csv"
        } else {
            "application/json"
        }),
    );
    let (explain, analyze) = answer.request_flags();
    let request = SqlRequest {
        sql: query.to_string(),
        params: Vec::new(),
        explain,
        analyze,
    };
    let response = sql_api::run(
        State(state),
        axum::Extension(crate::auth::Principal::local_admin()),
        headers,
        Ok(Json(request)),
    )
    .await?;
    let status = response.status();
    let body = response.into_body();
    if !status.is_success() {
        return Err(error_body(body).await);
    }
    let mut out = std::io::stdout().lock();
    if streamed_csv {
        // Printed chunk by chunk as the sources deliver rows, like the
        // endpoint streams them: an export never sits in memory here either.
        let mut chunks = body.into_data_stream();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|e| LocalSqlError::Interrupted(e.to_string()))?;
            if !client::print_bytes(&mut out, &chunk).map_err(LocalSqlError::Output)? {
                // The reader left (`| head`); dropping the stream stops the queries.
                return Ok(());
            }
        }
        return Ok(());
    }
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .map_err(|e| LocalSqlError::Interrupted(e.to_string()))?;
    let answered: Value = serde_json::from_slice(&bytes)
        .map_err(|e| LocalSqlError::Interrupted(format!("unreadable answer: {e}")))?;
    client::print_bytes(
        &mut out,
        client::sql_answer(&answered, answer, format).as_bytes(),
    )
    .map_err(LocalSqlError::Output)?;
    Ok(())
}

/// The endpoint's JSON error body, `{"error": {"code", "message"}}`.
async fn error_body(body: Body) -> LocalSqlError {
    let text = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => return LocalSqlError::Interrupted(e.to_string()),
    };
    let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let field = |name: &str| {
        value
            .pointer(&format!("/error/{name}"))
            .and_then(Value::as_str)
            .map(ToString::to_string)
    };
    LocalSqlError::Query {
        code: field("code").unwrap_or_else(|| "internal".to_string()),
        message: field("message").unwrap_or(text),
    }
}
