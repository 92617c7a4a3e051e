//! The GraphQL API, in Hasura's shape: `POST /graphql` (`{"query",
//! "operationName", "variables"}`) and GraphiQL at `GET /graphql`. The
//! schema is generated from the catalog per caller — a role's schema holds
//! only the collections and columns it may read — and cached per role
//! until the catalog or the permissions change. Every query root field
//! lowers to one plan on the REST API's read path (`resolve.rs`); the
//! mutations of one request share one transaction on the REST API's write
//! path (`mutation.rs`).

mod arguments;
mod bounded;
mod bytea;
mod cached;
mod compiled;
mod group_by;
mod live;
mod mutation;
mod nested;
mod nested_insert;
mod persisted;
mod render;
mod resolve;
mod schema;
mod selection;
mod shape;
mod similar;
mod stream;
mod validated;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_graphql::Positioned;
use async_graphql::dynamic::Schema;
use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationDefinition, OperationType, Selection,
};
use async_graphql::{ErrorExtensionValues, ServerError};
use axum::Extension;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::post;
use futures::StreamExt;
use futures::stream::BoxStream;

use self::bounded::Bounded;
use crate::auth::Principal;
use crate::engine::Caller;
use crate::error::ApiError;
use crate::metrics::GraphqlPath;
use crate::rest::{body_rejection, json_response};
use crate::state::AppState;

/// Built schemas, by role (`None`: the admin), each with the catalog and
/// permissions versions it was built from.
#[derive(Default)]
pub struct Schemas {
    built: Mutex<HashMap<Option<String>, Built>>,
    documents: Documents,
    persisted: persisted::Persisted,
    /// The live queries running, shared by their subscribers.
    live: live::Running,
    /// The answers of `@cached` queries.
    answers: cached::Answers,
}

/// Parsed query documents by their text: clients send the same few
/// documents with new variables, and parsing is a good part of a light
/// request. Parsing does not depend on the schema, so one cache serves
/// every role; validation still runs on every request.
#[derive(Default)]
struct Documents {
    parsed: Bounded<String, Arc<ExecutableDocument>>,
}

impl Documents {
    /// Gives `request` its parsed document, from the cache or parsed now
    /// (a document that does not parse is left to async-graphql, which
    /// reports the error).
    fn prepare(&self, request: &mut async_graphql::Request) {
        if request.query.len() > bounded::MAX_TEXT {
            return;
        }
        if let Some(document) = self.parsed.get(&request.query) {
            // Copied outside the lock: requests do not queue on it.
            request.set_parsed_query(ExecutableDocument::clone(&document));
            return;
        }
        let Ok(document) = request.parsed_query().cloned() else {
            return;
        };
        self.parsed
            .insert(request.query.clone(), Arc::new(document));
    }
}

struct Built {
    catalog: u64,
    permissions: u64,
    role: Role,
}

/// A role's schema, the shapes it was built from and the plans of the
/// plain queries it answered.
#[derive(Clone)]
struct Role {
    schema: Schema,
    shapes: Arc<shape::Shapes>,
    plans: Arc<compiled::Plans>,
}

impl Schemas {
    /// The caller's schema, built again when the catalog or the
    /// permissions changed since.
    fn get(&self, state: &AppState, caller: &Caller) -> Result<Role, ApiError> {
        let role = match caller {
            Caller::Admin => None,
            Caller::Role { role, .. } => Some(role.clone()),
        };
        let snapshot = state.cache.snapshot();
        let permissions = state.permissions.version();
        {
            let built = self.built.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(entry) = built.get(&role)
                && entry.catalog == snapshot.version
                && entry.permissions == permissions
            {
                return Ok(entry.role.clone());
            }
        }
        let shapes = Arc::new(shape::shapes(&snapshot, &state.permissions, caller));
        let built = Role {
            schema: schema::build(shapes.clone(), &state.config.graphql)?,
            shapes,
            plans: Arc::default(),
        };
        self.built
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                role,
                Built {
                    catalog: snapshot.version,
                    permissions,
                    role: built.clone(),
                },
            );
        Ok(built)
    }
}

/// `POST /graphql`, also on Hasura's path `/v1/graphql` (authentication
/// is layered on by the caller).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/graphql", post(execute))
        .route("/v1/graphql", post(execute))
}

/// `GET /graphql`. A WebSocket upgrade serves live queries ([`live`]).
/// With a `query` (or a persisted query's `extensions`)
/// in the URL — GraphQL over HTTP's GET, `?query=…&variables=<JSON>&
/// operationName=…` — a query run as the caller, authenticated as on
/// every data route; a mutation is refused (405: it changes data, so POST
/// only). Without: GraphiQL's page, which holds no data and needs no
/// credentials (its scripts and styles load from unpkg.com in the browser).
pub async fn get(State(state): State<AppState>, mut request: axum::extract::Request) -> Response {
    if live::is_upgrade(request.headers()) {
        return live::upgrade(state, request).await;
    }
    let Some(text) = request.uri().query().filter(|text| {
        text.split('&')
            .filter_map(|pair| pair.split('=').next())
            .any(|name| name == "query" || name == "extensions")
    }) else {
        return Html(
            async_graphql::http::GraphiQLSource::build()
                .endpoint("/graphql")
                .subscription_endpoint("/graphql")
                .title("Tributary GraphQL")
                .finish(),
        )
        .into_response();
    };
    let text = text.to_string();
    // Credentials first: an unauthenticated caller learns nothing of the URL.
    let caller = match crate::auth::admit(&state, &mut request).await {
        Ok(caller) => caller,
        Err(refused) => return refused,
    };
    let mut operation = match async_graphql::http::parse_query_string(&text) {
        Ok(operation) => operation,
        Err(e) => {
            return ApiError::bad_request(format!("the URL is not a GraphQL request: {e}"))
                .into_response();
        }
    };
    let Some(principal) = request.extensions_mut().remove::<Principal>() else {
        return ApiError::internal("an admitted request without its principal").into_response();
    };
    // The document may be a persisted one's: its text first.
    if let Err(error) = state.graphql.persisted.resolve(&mut operation) {
        let response = async_graphql::Response::from_errors(vec![error]);
        return json_response(StatusCode::OK, &response);
    }
    if mutation::Session::is_mutation(&mut operation) {
        return ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "a mutation is sent by POST",
        )
        .into_response();
    }
    let answer = crate::admission::serve_as(caller, Box::pin(run(&state, principal, operation)));
    json_response(StatusCode::OK, &answer.await)
}

/// Runs a GraphQL request as the caller: one operation
/// (`{"query", "operationName", "variables"}`), or a batch of them (a
/// JSON array, as Apollo's batch link sends; at most `max_batch`), run in
/// turn, each as a request of its own (a mutation is one transaction),
/// answered by an array of their responses. The answer is always a GraphQL
/// response (HTTP 200) once the body is a GraphQL request; errors that are
/// not a field's (parsing, validation, limits) carry the code
/// `validation_failed`.
async fn execute(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return body_rejection(&rejection).into_response(),
    };
    let not_a_request = |e: serde_json::Error| {
        ApiError::bad_request(format!(
            "the body is not a GraphQL request (`{{\"query\": …, \"variables\": …}}`, or a list \
             of them): {e}"
        ))
        .into_response()
    };
    // The first character tells a batch from one request, so either keeps
    // serde's own message when it is malformed.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'[') {
        return match serde_json::from_slice(&body) {
            // Boxed: the handler's future stays small (the router moves it).
            Ok(request) => json_response(
                StatusCode::OK,
                &Box::pin(run(&state, principal, request)).await,
            ),
            Err(e) => not_a_request(e),
        };
    }
    let requests: Vec<async_graphql::Request> = match serde_json::from_slice(&body) {
        Ok(requests) => requests,
        Err(e) => return not_a_request(e),
    };
    let most = state.config.graphql.max_batch;
    if requests.is_empty() || requests.len() > most {
        return ApiError::bad_request(format!(
            "a batch holds 1 to {most} operations (`graphql.max_batch`); this one has {}",
            requests.len()
        ))
        .into_response();
    }
    let mut responses = Vec::with_capacity(requests.len());
    for request in requests {
        responses.push(Box::pin(run(&state, principal.clone(), request)).await);
    }
    json_response(StatusCode::OK, &responses)
}

/// What a request's resolvers read, as one entry of async-graphql's
/// request data (each entry costs a map insert per request).
pub(crate) struct RequestData {
    state: AppState,
    caller: Caller,
    principal: Principal,
    session: Arc<mutation::Session>,
    rendered: Arc<render::Rendered>,
}

impl RequestData {
    /// `request` with the entry its resolvers read, and the request's
    /// write session and kept answers (also in the entry).
    fn attach(
        mut request: async_graphql::Request,
        state: &AppState,
        caller: Caller,
        principal: Principal,
    ) -> (
        async_graphql::Request,
        Arc<mutation::Session>,
        Arc<render::Rendered>,
    ) {
        let session = Arc::new(mutation::Session::for_request(&mut request));
        let rendered = Arc::new(render::Rendered::for_request(&mut request));
        let request = request.data(RequestData {
            state: state.clone(),
            caller,
            principal,
            session: session.clone(),
            rendered: rendered.clone(),
        });
        (request, session, rendered)
    }

    /// The entry `ctx` carries (put in by [`run`]).
    fn of<'a>(ctx: &async_graphql::Context<'a>) -> Result<&'a RequestData, ApiError> {
        ctx.data::<RequestData>()
            .map_err(|e| ApiError::internal(e.message))
    }
}

/// Runs one operation as the caller; a `@cached` query's answer may be
/// a kept one (`cached.rs`).
async fn run(
    state: &AppState,
    principal: Principal,
    mut request: async_graphql::Request,
) -> render::Answered {
    if let Err(error) = state.graphql.persisted.resolve(&mut request) {
        return async_graphql::Response::from_errors(vec![error]).into();
    }
    let limits = &state.config.graphql;
    let cached = match cached::take(&mut request, limits.cache_max_ttl) {
        Ok(cached) => cached.filter(|_| limits.cache_max_bytes > 0),
        Err(message) => {
            let mut error = ServerError::new(message, None);
            set_code(&mut error, "validation_failed");
            return async_graphql::Response::from_errors(vec![error]).into();
        }
    };
    let Some(cached) = cached else {
        return answer(state, principal, request).await;
    };
    let key = cached::key(state, &principal, &request, &cached);
    if !cached.refresh
        && let Some(kept) = state.graphql.answers.get(&key)
    {
        state.metrics.graphql(GraphqlPath::Cache);
        return render::Answered::kept(kept);
    }
    let answered = answer(state, principal, request).await;
    if answered.response.errors.is_empty()
        && let Ok(written) = serde_json::value::to_raw_value(&answered)
    {
        let most = limits.cache_max_bytes;
        state.graphql.answers.keep(key, written, cached.ttl, most);
    }
    answered
}

/// Answers one operation as the caller.
async fn answer(
    state: &AppState,
    principal: Principal,
    mut request: async_graphql::Request,
) -> render::Answered {
    let caller = principal.caller();
    let mut answered = match state.graphql.get(state, &caller) {
        Ok(role) => {
            let plan = role.plans.get(&request);
            // Whether the document is compiled (again) after the executor
            // answered it.
            let mut compile = !matches!(plan, Some(None));
            if let Some(Some(plan)) = &plan {
                let reply = plan
                    .answer(
                        state,
                        &principal,
                        &role.shapes,
                        role.schema.registry(),
                        &request.variables,
                    )
                    .await;
                match reply {
                    compiled::Reply::Answered(answered) => {
                        state.metrics.graphql(GraphqlPath::Plan);
                        return *answered;
                    }
                    // async-graphql answers instead, and reports what
                    // broke; the plan is kept again once the document
                    // answers without an error.
                    compiled::Reply::Executor => role.plans.forget(&request),
                    compiled::Reply::Never => {
                        role.plans.refuse(&request);
                        compile = false;
                    }
                }
            }
            state.metrics.graphql(GraphqlPath::Executor);
            state.graphql.documents.prepare(&mut request);
            // A document without a plan is compiled, and the plan kept if
            // the document answers without an error (so it passed
            // validation).
            let operation_name = request.operation_name.clone();
            let compiled = if compile {
                request.parsed_query().ok().map(|document| {
                    compiled::Plan::compile(
                        document,
                        operation_name.as_deref(),
                        &role.shapes,
                        &state.config.graphql,
                    )
                })
            } else {
                None
            };
            let learn = compiled.map(|plan| (request.query.clone(), operation_name, plan));
            let (request, session, rendered) =
                RequestData::attach(request, state, caller, principal);
            let mut response = role.schema.execute(request).await;
            session.finish(state, &mut response).await;
            if let Some((query, operation, plan)) = learn
                && response.errors.is_empty()
            {
                role.plans.learn(query, operation, plan);
            }
            rendered.answer(response)
        }
        Err(error) => async_graphql::Response::from_errors(vec![
            resolve::field_error(error).into_server_error(Default::default()),
        ])
        .into(),
    };
    for error in &mut answered.response.errors {
        if error.extensions.is_none() {
            mark(error);
        }
    }
    answered
}

/// A streaming subscription's responses (`x_stream`, see `stream.rs`),
/// run as the caller: one per batch of rows, as JSON, until the stream
/// ends (with an error, or the socket's end); `None` when the operation
/// `request` runs is not one (a live query, a query, a mutation).
pub(crate) fn stream(
    state: &AppState,
    principal: Principal,
    mut request: async_graphql::Request,
) -> Option<BoxStream<'static, serde_json::Value>> {
    let caller = principal.caller();
    let role = state.graphql.get(state, &caller).ok()?;
    let operation = operation(&mut request)?;
    let streams = operation.ty == OperationType::Subscription
        && operation.selection_set.node.items.iter().any(|item| {
            matches!(&item.node, Selection::Field(field)
                if stream::collection(field.node.name.node.as_str(), &role.shapes).is_some())
        });
    if !streams {
        return None;
    }
    let (request, _, _) = RequestData::attach(request, state, caller, principal);
    let responses = role.schema.execute_stream(request).map(|mut response| {
        for error in &mut response.errors {
            if error.extensions.is_none() {
                mark(error);
            }
        }
        serde_json::to_value(&response).unwrap_or_else(|e| {
            serde_json::json!({"data": null, "errors": [{"message": format!("cannot write the answer: {e}")}]})
        })
    });
    Some(responses.boxed())
}

/// The byte offset in `text` of a parser position (1-based line, and
/// column in characters).
fn byte_offset(text: &str, pos: async_graphql::Pos) -> usize {
    let mut lines = text.split_inclusive('\n');
    let before: usize = lines
        .by_ref()
        .take(pos.line.saturating_sub(1))
        .map(str::len)
        .sum();
    let within = lines.next().map_or(0, |line| {
        line.chars()
            .take(pos.column.saturating_sub(1))
            .map(char::len_utf8)
            .sum()
    });
    before + within
}

/// The operation a request runs (see [`chosen`]).
fn operation(request: &mut async_graphql::Request) -> Option<&OperationDefinition> {
    let name = request.operation_name.clone();
    let document = request.parsed_query().ok()?;
    Some(&chosen(document, name.as_deref())?.node)
}

/// The operation of `document` a request runs, chosen as async-graphql
/// chooses it: the one `name` names, else the document's only one
/// (`None`: it names no such operation).
fn chosen<'d>(
    document: &'d ExecutableDocument,
    name: Option<&str>,
) -> Option<&'d Positioned<OperationDefinition>> {
    match (&document.operations, name) {
        (DocumentOperations::Single(operation), None) => Some(operation),
        (DocumentOperations::Multiple(operations), Some(name)) => operations.get(name),
        (DocumentOperations::Multiple(operations), None) if operations.len() == 1 => {
            operations.values().next()
        }
        _ => None,
    }
}

/// Gives an error of async-graphql's own a code: one outside any field
/// (the query does not parse, fails validation or a limit) is Hasura's
/// `validation-failed`, in our spelling; one in a field is `internal`.
fn mark(error: &mut ServerError) {
    let code = if error.path.is_empty() {
        "validation_failed"
    } else {
        "internal"
    };
    set_code(error, code);
}

/// Gives `error` the code clients branch on (`extensions.code`).
fn set_code(error: &mut ServerError, code: &str) {
    let mut extensions = ErrorExtensionValues::default();
    extensions.set("code", code);
    error.extensions = Some(extensions);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_parsed_once_and_failures_are_left_to_async_graphql() {
        let documents = Documents::default();
        let text = "query One($k: Int!) { orders_by_pk(o_orderkey: $k) { o_orderkey } }";
        let mut first = async_graphql::Request::new(text);
        documents.prepare(&mut first);
        let parsed = first.parsed_query().cloned().expect("parsed");
        assert!(documents.parsed.get(text).is_some());

        // The second request takes the cached document, not a new parse:
        // swapped for another one here, it is the one the request gets.
        let other = async_graphql::parser::parse_query("{ nation { n_name } }").expect("parses");
        assert_ne!(format!("{other:?}"), format!("{parsed:?}"));
        documents
            .parsed
            .insert(text.to_string(), Arc::new(other.clone()));
        let mut second = async_graphql::Request::new(text);
        documents.prepare(&mut second);
        let reused = second.parsed_query().cloned().expect("cached");
        assert_eq!(format!("{reused:?}"), format!("{other:?}"));

        let mut broken = async_graphql::Request::new("query { orders(");
        documents.prepare(&mut broken);
        assert!(broken.parsed_query().is_err());
        assert!(documents.parsed.get("query { orders(").is_none());
    }
}
