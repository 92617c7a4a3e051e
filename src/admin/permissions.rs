//! `/admin/permissions` and `/admin/roles`: each role's rules per
//! collection and action, checked against the catalog before they are
//! stored, and in force from the next request.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::error::{ApiError, json_rejection};
use crate::permissions::{self, Action, Permission, Rule, RuleError};
use crate::state::AppState;

/// `GET /admin/permissions`
pub async fn list(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "permissions": *state.permissions.all() }))
}

/// `GET /admin/roles`: every role with rules, and its collections' actions.
pub async fn roles(State(state): State<AppState>) -> Json<Value> {
    let mut roles: BTreeMap<String, BTreeMap<String, Vec<Action>>> = BTreeMap::new();
    for p in state.permissions.all().iter() {
        roles
            .entry(p.role.clone())
            .or_default()
            .entry(p.collection.clone())
            .or_default()
            .push(p.action);
    }
    Json(json!({ "roles": roles }))
}

/// `PUT /admin/permissions/{role}/{collection}/{action}` with the rule as body.
pub async fn set(
    State(state): State<AppState>,
    Path((role, collection, action)): Path<(String, String, String)>,
    body: Result<Json<Rule>, JsonRejection>,
) -> Result<(StatusCode, Json<Permission>), ApiError> {
    let Json(rule) = body.map_err(|e| json_rejection(&e))?;
    let permission = Permission {
        role,
        collection,
        action: parse_action(&action)?,
        rule,
    };
    permissions::validate(&permission, &state.cache.snapshot()).map_err(|e| match e {
        RuleError::UnknownCollection(name) => ApiError::not_found("collection", &name),
        RuleError::Invalid(message) => ApiError::bad_request(message),
        RuleError::Filter(f) => ApiError::bad_request(f.message).at(f.path),
    })?;
    state.store.set_permission(&permission).await?;
    state.permissions.reload(state.store.as_ref()).await?;
    Ok((StatusCode::OK, Json(permission)))
}

/// `DELETE /admin/permissions/{role}/{collection}/{action}`
pub async fn remove(
    State(state): State<AppState>,
    Path((role, collection, action)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let action = parse_action(&action)?;
    if !state
        .store
        .delete_permission(&role, &collection, action)
        .await?
    {
        return Err(ApiError::not_found(
            "permission",
            &format!("{role}/{collection}/{}", action.as_str()),
        ));
    }
    state.permissions.reload(state.store.as_ref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn parse_action(text: &str) -> Result<Action, ApiError> {
    Action::parse(text).ok_or_else(|| {
        ApiError::bad_request(format!(
            "unknown action `{text}` (select, aggregate, insert, update, delete)"
        ))
    })
}
