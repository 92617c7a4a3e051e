//! The audit log: every admin action (and, once the write APIs exist,
//! every write) as an append-only row in the metadata store — who (key id,
//! user id, role), when, what (action, collection or target, details such
//! as affected counts or the source's SQL fingerprint) and the outcome —
//! and as a structured log line (`target: "audit"`).

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::auth::Principal;
use crate::state::AppState;

/// One audit row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Assigned by the store (increasing).
    #[serde(default)]
    pub id: i64,
    pub at: DateTime<Utc>,
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// `admin.<method> <route>` for admin calls, `write.<operation>` for writes.
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collection: Option<String>,
    /// What the action was applied to (the request path, affected keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub detail: Value,
    /// The HTTP status answered.
    pub status: u16,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    Denied,
    Failed,
}

impl Outcome {
    pub fn from_status(status: u16) -> Self {
        match status {
            0..=399 => Self::Ok,
            401 | 403 => Self::Denied,
            _ => Self::Failed,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Denied => "denied",
            Self::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Ok, Self::Denied, Self::Failed]
            .into_iter()
            .find(|o| o.as_str() == text)
    }
}

/// Writes an entry to the store and the log. A store failure is logged,
/// never answered to the caller whose action already happened.
pub async fn record(state: &AppState, entry: AuditEntry) {
    tracing::info!(
        target: "audit",
        role = %entry.role,
        key_id = entry.key_id.as_deref().unwrap_or(""),
        user_id = entry.user_id.as_deref().unwrap_or(""),
        action = %entry.action,
        collection = entry.collection.as_deref().unwrap_or(""),
        target = entry.target.as_deref().unwrap_or(""),
        status = entry.status,
        outcome = entry.outcome.as_str(),
        detail = %entry.detail,
    );
    if let Err(error) = state.store.append_audit(&entry).await {
        tracing::error!(%error, action = %entry.action, "cannot write the audit log");
    }
}

/// Middleware on the admin routes: every call that changes something
/// (any method but GET and HEAD) is audited with its outcome.
pub async fn admin_actions(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if matches!(*request.method(), Method::GET | Method::HEAD) {
        return next.run(request).await;
    }
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().map_or_else(
        || request.uri().path().to_string(),
        |m| m.as_str().to_string(),
    );
    let path = request.uri().path().to_string();
    let principal = request.extensions().get::<Principal>().cloned();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let Some(who) = principal else {
        return response;
    };
    record(
        &state,
        AuditEntry {
            id: 0,
            at: Utc::now(),
            role: who.role.clone(),
            key_id: who.key_id.clone(),
            user_id: who.user_id.clone(),
            action: format!("admin.{} {route}", method.as_str().to_lowercase()),
            collection: None,
            target: Some(path),
            detail: Value::Null,
            status,
            outcome: Outcome::from_status(status),
        },
    )
    .await;
    response
}
