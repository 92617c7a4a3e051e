//! `GET /admin/catalog`: the whole catalog, or one source's part.

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogQuery {
    pub source: Option<String>,
}

/// The catalog snapshot: version, sources (status and model), relations and
/// collection names; `?source=` narrows it to one source.
pub async fn show(
    State(state): State<AppState>,
    Query(query): Query<CatalogQuery>,
) -> Result<Json<Value>, ApiError> {
    let snapshot = state.cache.snapshot();
    let Some(name) = query.source else {
        return serde_json::to_value(&*snapshot)
            .map(Json)
            .map_err(|e| ApiError::internal(e.to_string()));
    };
    let entry = snapshot
        .sources
        .get(&name)
        .ok_or_else(|| ApiError::not_found("source", &name).at("source"))?;
    let relations: Vec<_> = snapshot
        .relations
        .iter()
        .filter(|r| r.from.source == name || r.to.source == name)
        .collect();
    let collections: Vec<_> = snapshot
        .collections
        .iter()
        .filter(|c| c.table.source == name)
        .collect();
    Ok(Json(json!({
        "version": snapshot.version,
        "sources": { name.clone(): entry },
        "relations": relations,
        "collections": collections,
    })))
}
