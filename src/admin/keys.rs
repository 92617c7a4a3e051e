//! `/admin/keys`: API keys. A new key's secret is in the creation (or
//! rotation) answer only; lists show ids, names, roles and prefixes.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{is_role_name, keys};
use crate::error::{ApiError, json_rejection};
use crate::state::AppState;

/// The body of `POST /admin/keys`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    pub name: String,
    pub role: String,
    #[serde(default)]
    pub user_id: Option<String>,
    /// Extra claims filters can read as `{{$user.claims.<path>}}`.
    #[serde(default)]
    pub claims: Value,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// Alternative to `expires_at`: seconds from now.
    #[serde(default)]
    pub expires_in_secs: Option<u64>,
}

/// The body of `POST /admin/keys/{id}/rotate`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateKey {
    /// How long the old key keeps working (default 0: it stops now).
    #[serde(default)]
    pub grace_secs: u64,
}

/// `POST /admin/keys`
pub async fn create(
    State(state): State<AppState>,
    body: Result<Json<CreateKey>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(request) = body.map_err(|e| json_rejection(&e))?;
    if request.name.trim().is_empty() {
        return Err(ApiError::bad_request("a key needs a name").at("name"));
    }
    if !is_role_name(&request.role) {
        return Err(ApiError::bad_request(format!(
            "`{}` is not a role name (letters, digits, `_` and `-`)",
            request.role
        ))
        .at("role"));
    }
    if !matches!(request.claims, Value::Null | Value::Object(_)) {
        return Err(ApiError::bad_request("claims must be an object").at("claims"));
    }
    let expires_at = match (request.expires_at, request.expires_in_secs) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "give expires_at or expires_in_secs, not both",
            ));
        }
        (Some(at), None) => Some(at),
        (None, Some(secs)) => Some(Utc::now() + seconds(secs)?),
        (None, None) => None,
    };
    if expires_at.is_some_and(|at| at <= Utc::now()) {
        return Err(ApiError::bad_request("expires_at is in the past").at("expires_at"));
    }
    let (key, secret) = keys::create(
        request.name,
        request.role,
        request.user_id,
        request.claims,
        expires_at,
    );
    state.store.insert_key(&key, &keys::hash(&secret)).await?;
    Ok((StatusCode::CREATED, Json(with_secret(&key, &secret)?)))
}

/// `GET /admin/keys`
pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "keys": state.store.keys().await? })))
}

/// `GET /admin/keys/{id}`
pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<keys::ApiKey>, ApiError> {
    state
        .store
        .key(&id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("key", &id))
}

/// `DELETE /admin/keys/{id}`: revokes the key (its next request gets 401).
pub async fn revoke(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state.store.revoke_key(&id, Utc::now()).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("key", &id))
    }
}

/// `POST /admin/keys/{id}/rotate`: a new key with the same role, user and
/// claims; the old one works for `grace_secs` more.
pub async fn rotate(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Option<Json<RotateKey>>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let grace = body.map(|Json(b)| b.grace_secs).unwrap_or_default();
    let old = state
        .store
        .key(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("key", &id))?;
    if id == keys::BOOTSTRAP_ID {
        return Err(ApiError::bad_request(
            "the bootstrap key follows the configured admin token: change the token to rotate it",
        ));
    }
    let (mut new, secret) = keys::create(
        old.name.clone(),
        old.role.clone(),
        old.user_id.clone(),
        old.claims.clone(),
        old.expires_at,
    );
    new.rotated_from = Some(old.id.clone());
    let until = Utc::now() + seconds(grace)?;
    if !state
        .store
        .rotate_key(&old.id, until, &new, &keys::hash(&secret))
        .await?
    {
        return Err(ApiError::conflict(format!(
            "key `{id}` is revoked or expired and cannot be rotated"
        )));
    }
    Ok((StatusCode::CREATED, Json(with_secret(&new, &secret)?)))
}

fn seconds(secs: u64) -> Result<chrono::Duration, ApiError> {
    i64::try_from(secs)
        .ok()
        .and_then(chrono::Duration::try_seconds)
        .ok_or_else(|| ApiError::bad_request(format!("{secs} seconds is too long")))
}

/// A key's record with its secret, shown this once.
fn with_secret(key: &keys::ApiKey, secret: &str) -> Result<Value, ApiError> {
    let mut value = serde_json::to_value(key).map_err(|e| ApiError::internal(e.to_string()))?;
    if let Value::Object(map) = &mut value {
        map.insert("key".into(), Value::String(secret.to_string()));
    }
    Ok(value)
}
