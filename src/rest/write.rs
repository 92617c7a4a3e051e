//! The REST write routes: create, update and destroy, each request one
//! transaction on the collection's source (the shared write path is
//! `writer.rs`). Bodies are read here; a write by key that finds no row it
//! may write is a 404.

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;
use serde_json::{Value as Json, json};

use super::params::Selection;
use super::read::Record;
use super::writer::{self, Audit, Changes, Rows};
use super::{Target, json_response};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::state::AppState;

/// `POST /api/{c}` and `POST /api/{c}:create`: one object or an array.
pub async fn create(
    state: &AppState,
    principal: &Principal,
    target: &Target,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let mut audit = Audit::new(principal, target, "insert");
    let result = insert(state, principal, target, body, &mut audit).await;
    finish(state, audit, result).await
}

/// `PATCH /api/{c}/{key}`, `PATCH /api/{c}?filter=` and `:update`.
pub async fn update(
    state: &AppState,
    principal: &Principal,
    target: &Target,
    selection: Selection,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let mut audit = Audit::new(principal, target, "update");
    let result = change(state, principal, target, selection, body, &mut audit).await;
    finish(state, audit, result).await
}

/// `DELETE /api/{c}/{key}`, `DELETE /api/{c}?filter=` and `:destroy`.
pub async fn destroy(
    state: &AppState,
    principal: &Principal,
    target: &Target,
    selection: Selection,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let mut audit = Audit::new(principal, target, "delete");
    let result = remove(state, principal, target, selection, body, &mut audit).await;
    finish(state, audit, result).await
}

/// Writes the request's audit row and passes the answer on.
async fn finish(
    state: &AppState,
    audit: Audit,
    result: Result<Response, ApiError>,
) -> Result<Response, ApiError> {
    match &result {
        Ok(response) => audit.finish(state, response.status().as_u16(), None).await,
        Err(error) => {
            audit
                .finish(state, error.status.as_u16(), Some(&error.message))
                .await;
        }
    }
    result
}

async fn insert(
    state: &AppState,
    principal: &Principal,
    target: &Target,
    body: &Bytes,
    audit: &mut Audit,
) -> Result<Response, ApiError> {
    let body: Json = parse_body(body)?;
    let (objects, many) = objects(&body, "")?;
    let planned = writer::plan_insert(state, principal, target, &objects)?;
    let (_, records) =
        writer::apply_alone(state, &principal.caller(), target, &planned, audit).await?;
    if many {
        Ok(json_response(
            StatusCode::CREATED,
            &Many {
                data: records,
                meta: None,
            },
        ))
    } else {
        Ok(json_response(
            StatusCode::CREATED,
            &One {
                data: records.into_iter().next(),
            },
        ))
    }
}

async fn change(
    state: &AppState,
    principal: &Principal,
    target: &Target,
    selection: Selection,
    body: &Bytes,
    audit: &mut Audit,
) -> Result<Response, ApiError> {
    let body: Json = parse_body(body)?;
    audit.note("target", selection_text(&selection));
    let changes = Changes {
        set: Some((&body, "")),
        increment: None,
    };
    let planned =
        writer::plan_update(state, principal, target, &rows(&selection), changes, &[]).await?;
    let (affected, records) =
        writer::apply_alone(state, &principal.caller(), target, &planned, audit).await?;
    respond(target, selection, records, affected)
}

async fn remove(
    state: &AppState,
    principal: &Principal,
    target: &Target,
    selection: Selection,
    body: &Bytes,
    audit: &mut Audit,
) -> Result<Response, ApiError> {
    // NocoBase's client may send `{}`.
    let empty = String::from_utf8_lossy(body);
    if !matches!(empty.trim(), "" | "{}") {
        return Err(ApiError::bad_request("a delete takes no body"));
    }
    audit.note("target", selection_text(&selection));
    let planned = writer::plan_delete(state, principal, target, &rows(&selection), &[]).await?;
    let (affected, records) =
        writer::apply_alone(state, &principal.caller(), target, &planned, audit).await?;
    respond(target, selection, records, affected)
}

/// Objects to create, each with its place in the request (for errors).
pub(super) type Objects<'b> = Vec<(String, &'b Json)>;

/// The objects of a create's body (one, or an array), each with its place
/// under `at` for errors; true for an array.
pub(super) fn objects<'b>(body: &'b Json, at: &str) -> Result<(Objects<'b>, bool), ApiError> {
    match body {
        Json::Array(items) if !items.is_empty() => Ok((
            items
                .iter()
                .enumerate()
                .map(|(i, item)| (format!("{at}[{i}]"), item))
                .collect(),
            true,
        )),
        Json::Array(_) => {
            let error = ApiError::bad_request("nothing to create: the array is empty");
            Err(if at.is_empty() { error } else { error.at(at) })
        }
        object => Ok((vec![(at.to_string(), object)], false)),
    }
}

pub(super) fn rows(selection: &Selection) -> Rows {
    match selection {
        Selection::Key(key) => Rows::Key(
            key.values
                .iter()
                .map(|(column, value)| (column.clone(), Json::String(value.clone())))
                .collect(),
        ),
        Selection::Filter(filter) => Rows::Filter(filter.clone()),
    }
}

#[derive(Serialize)]
struct One {
    data: Option<Record>,
}

#[derive(Serialize)]
struct Many {
    data: Vec<Record>,
    #[serde(skip_serializing_if = "Option::is_none")]
    meta: Option<Json>,
}

/// The written rows; a write by key that wrote nothing is a 404.
fn respond(
    target: &Target,
    selection: Selection,
    records: Vec<Record>,
    affected: u64,
) -> Result<Response, ApiError> {
    Ok(match selection {
        Selection::Key(key) => match records.into_iter().next() {
            Some(record) => json_response(StatusCode::OK, &One { data: Some(record) }),
            None => {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    format!(
                        "no row of `{}` with the key `{}` can be written here",
                        target.name(),
                        key.text()
                    ),
                ));
            }
        },
        Selection::Filter(_) => json_response(
            StatusCode::OK,
            &Many {
                data: records,
                meta: Some(json!({ "affected": affected })),
            },
        ),
    })
}

pub(super) fn selection_text(selection: &Selection) -> Json {
    match selection {
        Selection::Key(key) => Json::String(key.text()),
        Selection::Filter(filter) => filter.clone(),
    }
}

pub(super) fn parse_body(body: &Bytes) -> Result<Json, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))
}
