//! `/healthz` (the process is up), `/readyz` (each source's status) and
//! `/metrics` (Prometheus text).

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tributary_schema_cache::SourceStatus;

use crate::state::AppState;

/// `GET /healthz`: 200 while the process serves requests.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadyQuery {
    /// With `strict=true`, any unavailable source makes the answer 503.
    #[serde(default)]
    pub strict: bool,
}

/// `GET /readyz`: every source's status. A source that is down does not make
/// the server unready (the others still serve) unless `strict=true`.
pub async fn readyz(
    State(state): State<AppState>,
    Query(query): Query<ReadyQuery>,
) -> impl IntoResponse {
    let snapshot = state.cache.snapshot();
    let mut sources = Map::new();
    let mut all_ready = true;
    for (name, entry) in &snapshot.sources {
        let (status, error) = match &entry.status {
            SourceStatus::Ready { .. } => ("ready", None),
            SourceStatus::Unchecked => ("unchecked", None),
            SourceStatus::Unavailable { error, .. } => {
                all_ready = false;
                ("unavailable", Some(error.clone()))
            }
        };
        sources.insert(
            name.clone(),
            json!({ "status": status, "error": error, "cached_model": entry.schema.is_some() }),
        );
    }
    let code = if query.strict && !all_ready {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let overall = if all_ready { "ready" } else { "degraded" };
    (
        code,
        Json(json!({ "status": overall, "catalog_version": snapshot.version, "sources": sources })),
    )
}

/// `GET /metrics`
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let pools: Vec<_> = state
        .sources
        .connectors()
        .into_iter()
        .map(|(name, c)| (name, c.pool_status()))
        .collect();
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(&pools),
    )
}
