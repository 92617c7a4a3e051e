//! The REST API over every collection (the catalog's API names): list, get
//! by key, create, update and delete, in our own routes (`GET /api/orders`,
//! `PATCH /api/orders/7`) and in NocoBase's (`GET /api/orders:list`,
//! `POST /api/orders:update?filterByTk=7`), plus `:aggregate` for
//! dashboards. Reads lower to DataFusion plans on the engine's one path
//! (permissions applied in the plan); writes go through the source's
//! connector in one transaction per request.

pub(crate) mod aggregate;
mod association;
mod batch;
mod cursor;
mod document;
pub(crate) mod order;
pub(crate) mod params;
pub(crate) mod read;
mod values;
mod write;
pub(crate) mod writer;

use std::sync::Arc;

use axum::Extension;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use tributary_schema_cache::{CatalogSnapshot, Collection, TableDef};

use crate::auth::Principal;
use crate::error::ApiError;
use crate::state::AppState;

use params::Params;
use write::WriteQuery;

pub use batch::MAX_OPERATIONS as MAX_BATCH_OPERATIONS;

/// The collection routes (authentication is layered on by the caller).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/openapi.json", get(document::openapi_json))
        // A static route wins over `/api/{target}`; no alias may be `batch`.
        .route("/api/batch", axum::routing::post(batch_route))
        .route(
            "/api/{target}",
            get(collection_route)
                .post(collection_route)
                .patch(collection_route)
                .delete(collection_route),
        )
        .route(
            "/api/{target}/{key}",
            get(key_route).patch(key_route).delete(key_route),
        )
        .route(
            "/api/{target}/{key}/{association}",
            get(association_route)
                .post(association_route)
                .patch(association_route)
                .delete(association_route),
        )
}

/// One collection of the catalog snapshot a request runs against.
pub(crate) struct Target {
    pub snapshot: Arc<CatalogSnapshot>,
    pub collection: Arc<Collection>,
    pub def: Arc<TableDef>,
}

impl Target {
    pub(crate) fn resolve(state: &AppState, name: &str) -> Result<Self, ApiError> {
        let snapshot = state.cache.snapshot();
        let (collection, def) = snapshot
            .collection_table(name)
            .map(|(collection, def)| (collection.clone(), def.clone()))
            .ok_or_else(|| ApiError::not_found("collection", name))?;
        Ok(Self {
            snapshot,
            collection,
            def,
        })
    }

    pub fn name(&self) -> &str {
        &self.collection.api_name
    }

    /// The primary key's columns, or a 400 saying why by-key routes and
    /// writes need one.
    pub fn primary_key(&self) -> Result<&[String], ApiError> {
        match &self.def.primary_key {
            Some(key) if !key.columns.is_empty() => Ok(&key.columns),
            _ => Err(ApiError::bad_request(format!(
                "`{}` has no primary key: it can be listed and aggregated, but rows cannot be \
                 addressed by key or written",
                self.name()
            ))),
        }
    }
}

/// What a request asks of a collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    List {
        nocobase: bool,
    },
    Get,
    Aggregate,
    Create,
    /// NocoBase's `updateOrCreate` (`merge`) and `firstOrCreate`.
    CreateOr {
        merge: bool,
    },
    Update,
    Destroy,
    /// NocoBase's `add`, `remove` and `set` of an association.
    Link(association::Link),
}

impl Operation {
    /// The name a path segment holds and the operation it and the method
    /// ask for: `orders:list` is NocoBase's `list` of `orders`; without an
    /// action, our own routes'.
    fn of<'s>(method: &Method, segment: &'s str) -> Result<(&'s str, Self), ApiError> {
        let (name, action) = match segment.split_once(':') {
            Some((name, action)) => (name, Some(action)),
            None => (segment, None),
        };
        if method == Method::POST
            && let Some(link) = action.and_then(association::Link::named)
        {
            return Ok((name, Operation::Link(link)));
        }
        let operation = match (method, action) {
            (&Method::GET, None) => Operation::List { nocobase: false },
            (&Method::GET, Some("list")) => Operation::List { nocobase: true },
            (&Method::GET, Some("get")) => Operation::Get,
            (&Method::GET, Some("aggregate")) => Operation::Aggregate,
            (&Method::POST, None | Some("create")) => Operation::Create,
            (&Method::POST, Some("updateOrCreate")) => Operation::CreateOr { merge: true },
            (&Method::POST, Some("firstOrCreate")) => Operation::CreateOr { merge: false },
            (&Method::POST, Some("update")) | (&Method::PATCH, None) => Operation::Update,
            (&Method::POST, Some("destroy")) | (&Method::DELETE, None) => Operation::Destroy,
            (_, Some(other)) => {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    format!(
                        "unknown action `{other}` for {method}: use list, get or aggregate (GET), \
                         create, update, destroy, updateOrCreate, firstOrCreate, and an \
                         association's add, remove or set (POST)"
                    ),
                ));
            }
            _ => return Err(method_not_allowed(method)),
        };
        Ok((name, operation))
    }
}

/// `GET|POST|PATCH|DELETE /api/{collection}` and NocoBase's
/// `/api/{collection}:{action}`.
async fn collection_route(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(target): Path<String>,
    method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|e| body_rejection(&e))?;
    let (name, operation) = Operation::of(&method, &target)?;
    let target = Target::resolve(&state, name)?;
    let request = Request::new(operation, query.as_deref(), &headers, &body)?;
    run(&state, &principal, &target, request, None).await
}

/// `/api/{collection}/{key}/{relation}` and `…/{relation}:{action}`:
/// NocoBase's association resources, the rows of one row's relation.
async fn association_route(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((name, key, association)): Path<(String, String, String)>,
    method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|e| body_rejection(&e))?;
    let (relation, operation) = Operation::of(&method, &association)?;
    let parent = Target::resolve(&state, &name)?;
    let key = params::Key::from_path(&parent, &key)?;
    let scope = Box::pin(association::Scope::of(
        &state, &principal, &parent, &key, relation,
    ))
    .await?;
    let request = Request::new(operation, query.as_deref(), &headers, &body)?;
    run(&state, &principal, &scope.target, request, Some(&scope)).await
}

/// A request to a collection route, parsed as far as the route goes.
struct Request<'r> {
    operation: Operation,
    params: Params,
    headers: &'r HeaderMap,
    body: &'r Bytes,
}

impl<'r> Request<'r> {
    fn new(
        operation: Operation,
        query: Option<&str>,
        headers: &'r HeaderMap,
        body: &'r Bytes,
    ) -> Result<Self, ApiError> {
        Ok(Self {
            operation,
            params: Params::parse(query)?,
            headers,
            body,
        })
    }
}

/// Runs a collection route's operation on `target`; within `scope`, on
/// the rows of one row's relation only.
async fn run(
    state: &AppState,
    principal: &Principal,
    target: &Target,
    request: Request<'_>,
    scope: Option<&association::Scope>,
) -> Result<Response, ApiError> {
    let Request {
        operation,
        mut params,
        headers,
        body,
    } = request;
    if let Some(scope) = scope {
        scope.restrict(&mut params, operation)?;
    }
    let filled;
    let body = match scope {
        Some(scope) if matches!(operation, Operation::Create | Operation::CreateOr { .. }) => {
            filled = scope.fill(body)?;
            &filled
        }
        _ => body,
    };
    let within = |selection| match scope {
        Some(scope) => scope.within(selection),
        None => selection,
    };
    // Each operation's future boxed: the handler's own stays small, and
    // the router moves it (with the largest operation's state) several
    // times per request.
    match operation {
        Operation::List { nocobase } => {
            Box::pin(read::list(
                state,
                principal,
                target,
                &mut params,
                headers,
                nocobase,
            ))
            .await
        }
        Operation::Get => {
            let key = params.filter_by_tk(target)?;
            Box::pin(read::get(state, principal, target, key, &mut params)).await
        }
        Operation::Aggregate => {
            Box::pin(aggregate::run(
                state,
                principal,
                target,
                &mut params,
                headers,
            ))
            .await
        }
        Operation::Create | Operation::CreateOr { .. } => {
            let mut query = WriteQuery::take(&mut params, true, headers)?;
            let nocobase = match operation {
                Operation::CreateOr { merge } => Some(merge),
                _ => None,
            };
            query.take_upsert(&mut params, nocobase)?;
            params.finish()?;
            Box::pin(write::create(state, principal, target, &query, body)).await
        }
        Operation::Update => {
            let query = WriteQuery::take(&mut params, true, headers)?;
            let selection = within(params.selection(target)?);
            Box::pin(write::update(
                state, principal, target, selection, &query, body,
            ))
            .await
        }
        Operation::Destroy => {
            let query = WriteQuery::take(&mut params, false, headers)?;
            let selection = within(params.selection(target)?);
            Box::pin(write::destroy(
                state, principal, target, selection, &query, body,
            ))
            .await
        }
        Operation::Link(link) => {
            let Some(scope) = scope else {
                return Err(ApiError::bad_request(
                    "add, remove and set relate rows through an association: \
                     /api/{collection}/{key}/{relation}:add",
                ));
            };
            let mut keys = params.take_all("filterByTk");
            params.finish()?;
            keys.extend(link_keys(body)?);
            let operations = scope.link(state, principal, link, &keys).await?;
            let batch = serde_json::json!({ "operations": operations });
            Box::pin(batch::run_json(state, principal, batch)).await
        }
    }
}

/// The related rows' keys an association's `add`, `remove` or `set` gives
/// in its body: a key, or a list of keys (none: an empty body).
fn link_keys(body: &Bytes) -> Result<Vec<String>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let key = |value: &serde_json::Value| match value {
        serde_json::Value::String(text) => Ok(text.clone()),
        serde_json::Value::Number(number) => Ok(number.to_string()),
        _ => Err(ApiError::bad_request(
            "the body is a related row's key, or a list of keys (`[1, 2]`; `\"1,2\"` for a \
             composite key)",
        )),
    };
    match write::parse_body(body)? {
        serde_json::Value::Array(items) => items.iter().map(key).collect(),
        one => Ok(vec![key(&one)?]),
    }
}

/// `POST /api/batch`: writes to collections of one source in one
/// transaction.
async fn batch_route(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|e| body_rejection(&e))?;
    Params::parse(query.as_deref())?.finish()?;
    Box::pin(batch::run(&state, &principal, &body)).await
}

/// `GET|PATCH|DELETE /api/{collection}/{key}`: one row by primary key
/// (composite keys as `a,b`).
async fn key_route(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((name, key)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|e| body_rejection(&e))?;
    let target = Target::resolve(&state, &name)?;
    let key = params::Key::from_path(&target, &key)?;
    let mut params = Params::parse(query.as_deref())?;
    // Boxed as in `collection_route`.
    match method {
        Method::GET => {
            Box::pin(read::get(
                &state,
                &principal,
                &target,
                Some(key),
                &mut params,
            ))
            .await
        }
        Method::PATCH => {
            let query = WriteQuery::take(&mut params, true, &headers)?;
            params.finish()?;
            Box::pin(write::update(
                &state,
                &principal,
                &target,
                params::Selection::Key(key),
                &query,
                &body,
            ))
            .await
        }
        Method::DELETE => {
            let query = WriteQuery::take(&mut params, false, &headers)?;
            params.finish()?;
            Box::pin(write::destroy(
                &state,
                &principal,
                &target,
                params::Selection::Key(key),
                &query,
                &body,
            ))
            .await
        }
        other => Err(method_not_allowed(&other)),
    }
}

fn method_not_allowed(method: &Method) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed here"),
    )
}

/// A body that could not be read (too large: 413) as our error body.
pub(crate) fn body_rejection(rejection: &BytesRejection) -> ApiError {
    let code = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        "payload_too_large"
    } else {
        "invalid_input"
    };
    ApiError::new(rejection.status(), code, rejection.body_text())
}

/// A JSON response from a value already serialized (rows keep their
/// column order, which `serde_json::Value` objects would not).
pub(crate) fn json_response(status: StatusCode, body: &impl Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (
            status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            bytes,
        )
            .into_response(),
        Err(e) => ApiError::internal(format!("cannot write the response: {e}")).into_response(),
    }
}
