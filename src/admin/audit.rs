//! `GET /admin/audit`: the audit log, newest first, with filters as query
//! parameters (`since`, `until`, `role`, `key_id`, `user_id`, `action`
//! prefix, `collection`, `outcome`, `before` for the next page, `limit`).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::metadata::AuditQuery;
use crate::state::AppState;

/// `GET /admin/audit`
pub async fn list(
    State(state): State<AppState>,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let entries = state.store.audit(&query).await?;
    // A full page may have more after it.
    let full = u32::try_from(entries.len()).is_ok_and(|n| n == query.page_size());
    let next = entries.last().map(|e| e.id).filter(|_| full);
    Ok(Json(json!({ "entries": entries, "next_before": next })))
}
