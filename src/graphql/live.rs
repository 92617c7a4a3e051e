//! Live queries over WebSocket, on `GET /graphql`, in GraphQL over
//! WebSocket's `graphql-transport-ws` protocol (what graphql-ws, Apollo
//! Client's `GraphQLWsLink` and urql speak) or Apollo's older
//! `subscriptions-transport-ws` (subprotocol `graphql-ws`: Apollo's
//! `WebSocketLink` and many Hasura clients; [`Protocol`]). A `subscription` operation is its query run
//! again every `graphql.live_interval_ms` as the caller — the path,
//! permissions and limits of `POST /graphql` — and its answer is sent when
//! it differs from the last one sent (Hasura's live queries); subscribers
//! of one query as one caller share its runs ([`Running`]). A streaming
//! subscription (`x_stream`, `stream.rs`) is run as a stream instead, each
//! batch of rows sent as it comes. A query or a
//! mutation sent over the socket is answered once. Credentials come with
//! the upgrade request's headers or, from a browser (which cannot set
//! them), in `connection_init`'s payload: `{"headers": {"Authorization":
//! "Bearer …"}}`, or the header names at its top level — and checked
//! again with each operation and every `graphql.live_auth_interval_secs`
//! (a key revoked or a token expired since closes the socket). Each operation counts as a request against the rate limit.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use async_graphql::parser::types::{DocumentOperations, OperationType};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use serde_json::{Value as Json, json};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::auth::{self, Principal};
use crate::state::AppState;

/// Most operations one socket runs at once.
const MAX_OPERATIONS: usize = 100;

/// How often a `subscriptions-transport-ws` socket is told it is alive
/// (`ka`; its clients drop a socket quiet for 30 s once they got one).
const KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(5);

/// The protocol a socket speaks, chosen by the client's subprotocol.
/// Apollo's older `subscriptions-transport-ws` has the same exchange under
/// other names — `start` / `stop` for `subscribe` / `complete`, `data`
/// for `next`, `connection_terminate` — and keeps the socket alive with
/// `ka` messages instead of ping / pong: the socket is served in
/// `graphql-transport-ws`'s terms, its messages renamed at the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    TransportWs,
    Legacy,
}

impl Protocol {
    const TRANSPORT_WS: &str = "graphql-transport-ws";
    const LEGACY: &str = "graphql-ws";

    fn named(name: Option<&HeaderValue>) -> Self {
        match name.and_then(|n| n.to_str().ok()) {
            Some(Self::LEGACY) => Self::Legacy,
            _ => Self::TransportWs,
        }
    }

    /// A client message's type, in `graphql-transport-ws`'s terms.
    fn incoming(self, kind: &str) -> &str {
        match (self, kind) {
            (Self::Legacy, "start") => "subscribe",
            (Self::Legacy, "stop") => "complete",
            (Self::Legacy, "connection_terminate") => "terminate",
            _ => kind,
        }
    }

    /// A server message's type (given in `graphql-transport-ws`'s terms),
    /// in this protocol's.
    fn outgoing(self, kind: &str) -> &str {
        match (self, kind) {
            (Self::Legacy, "next") => "data",
            _ => kind,
        }
    }
}

/// Where a socket's messages go out: to its writer, in its protocol.
#[derive(Clone)]
struct Outbox {
    messages: mpsc::Sender<Message>,
    protocol: Protocol,
}

/// The protocol's close codes.
mod close {
    pub const NORMAL: u16 = 1000;
    pub const BAD_MESSAGE: u16 = 4400;
    pub const UNAUTHORIZED: u16 = 4401;
    pub const FORBIDDEN: u16 = 4403;
    pub const INIT_TIMEOUT: u16 = 4408;
    pub const ALREADY_SUBSCRIBED: u16 = 4409;
    pub const TOO_MANY_INITS: u16 = 4429;
}

/// Whether `headers` ask to upgrade to a WebSocket.
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(axum::http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Accepts the upgrade; the socket is served by [`serve`].
pub async fn upgrade(state: AppState, request: axum::extract::Request) -> Response {
    let (mut parts, _) = request.into_parts();
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &state).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    let client = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip());
    let headers = parts.headers;
    let upgrade = upgrade.protocols([Protocol::TRANSPORT_WS, Protocol::LEGACY]);
    let protocol = Protocol::named(upgrade.selected_protocol());
    upgrade.on_upgrade(move |socket| serve(state, headers, client, protocol, socket))
}

/// One socket: `connection_init` (answered `connection_ack` once the
/// caller is known; none within `live_auth_interval` closes the socket), then
/// `subscribe` / `complete` per operation, `ping` / `pong`; a message out
/// of protocol closes it with the protocol's code.
async fn serve(
    state: AppState,
    headers: HeaderMap,
    client: Option<IpAddr>,
    protocol: Protocol,
    socket: WebSocket,
) {
    let (mut sink, mut incoming) = socket.split();
    let (messages, mut outgoing) = mpsc::channel::<Message>(64);
    let out = Outbox { messages, protocol };
    let writer = tokio::spawn(async move {
        while let Some(message) = outgoing.recv().await {
            let closing = matches!(message, Message::Close(_));
            if sink.send(message).await.is_err() || closing {
                break;
            }
        }
    });
    let mut caller: Option<Principal> = None;
    // The credentials the caller came with, checked again with each
    // operation and every `live_auth_interval` (a minute): a key revoked
    // or a token expired since closes the socket.
    let mut credentials: Option<HeaderMap> = None;
    let mut recheck = tokio::time::interval(state.config.graphql.live_auth_interval);
    recheck.tick().await;
    let mut keep_alive = tokio::time::interval(KEEP_ALIVE);
    keep_alive.tick().await;
    let mut running: HashMap<String, JoinHandle<()>> = HashMap::new();
    loop {
        let message = tokio::select! {
            message = incoming.next() => message,
            _ = recheck.tick() => {
                let Some(given) = &credentials else {
                    shut(&out, close::INIT_TIMEOUT, "Connection initialisation timeout").await;
                    break;
                };
                if let Err(error) = auth::identify(&state, given).await {
                    shut(&out, close::FORBIDDEN, &error.message).await;
                    break;
                }
                continue;
            }
            _ = keep_alive.tick(), if protocol == Protocol::Legacy && caller.is_some() => {
                send(&out, json!({ "type": "ka" })).await;
                continue;
            }
        };
        let Some(Ok(message)) = message else {
            break;
        };
        let text = match message {
            Message::Text(text) => text,
            Message::Close(_) => break,
            Message::Ping(_) | Message::Pong(_) => continue,
            Message::Binary(_) => {
                shut(&out, close::BAD_MESSAGE, "messages are JSON text").await;
                break;
            }
        };
        let message: Json = match serde_json::from_str(text.as_str()) {
            Ok(message @ Json::Object(_)) => message,
            _ => {
                shut(&out, close::BAD_MESSAGE, "a message is a JSON object").await;
                break;
            }
        };
        let id = message.get("id").and_then(Json::as_str).map(str::to_string);
        match message
            .get("type")
            .and_then(Json::as_str)
            .map(|kind| protocol.incoming(kind))
        {
            Some("connection_init") => {
                if caller.is_some() {
                    shut(
                        &out,
                        close::TOO_MANY_INITS,
                        "Too many initialisation requests",
                    )
                    .await;
                    break;
                }
                let given = with_payload(&headers, message.get("payload"));
                match auth::identify(&state, &given).await {
                    Ok(principal) => {
                        caller = Some(principal);
                        credentials = Some(given);
                        send(&out, json!({ "type": "connection_ack" })).await;
                        if protocol == Protocol::Legacy {
                            send(&out, json!({ "type": "ka" })).await;
                        }
                    }
                    Err(error) => {
                        if protocol == Protocol::Legacy {
                            let payload = json!({ "message": error.message });
                            send(
                                &out,
                                json!({ "type": "connection_error", "payload": payload }),
                            )
                            .await;
                        }
                        shut(&out, close::FORBIDDEN, &error.message).await;
                        break;
                    }
                }
            }
            Some("ping") => send(&out, json!({ "type": "pong" })).await,
            Some("pong") => {}
            Some("subscribe") => {
                let (Some(principal), Some(given)) = (&caller, &credentials) else {
                    shut(&out, close::UNAUTHORIZED, "Unauthorized").await;
                    break;
                };
                // Each operation is admitted as a request is.
                if let Err(error) = auth::identify(&state, given).await {
                    shut(&out, close::FORBIDDEN, &error.message).await;
                    break;
                }
                let (Some(id), Some(payload)) = (id, message.get("payload")) else {
                    shut(
                        &out,
                        close::BAD_MESSAGE,
                        "subscribe needs an id and a payload",
                    )
                    .await;
                    break;
                };
                // Each operation is a request: against the rate limit, and
                // in its caller's turns at a busy source.
                let caller = auth::caller_of(principal, client);
                if auth::rate_limit(&state, &caller, client).is_err() {
                    refuse(&out, &id, "too many requests: try again later").await;
                    continue;
                }
                running.retain(|_, task| !task.is_finished());
                if running.contains_key(&id) {
                    let reason = format!("Subscriber for {id} already exists");
                    shut(&out, close::ALREADY_SUBSCRIBED, &reason).await;
                    break;
                }
                if running.len() >= MAX_OPERATIONS {
                    refuse(
                        &out,
                        &id,
                        format!("a socket runs at most {MAX_OPERATIONS} operations at once"),
                    )
                    .await;
                    continue;
                }
                let task = tokio::spawn(crate::admission::serve_as(
                    caller,
                    run(
                        state.clone(),
                        principal.clone(),
                        id.clone(),
                        payload.clone(),
                        out.clone(),
                    ),
                ));
                running.insert(id, task);
            }
            Some("complete") => {
                if let Some(task) = id.and_then(|id| running.remove(&id)) {
                    task.abort();
                }
            }
            Some("terminate") => {
                shut(&out, close::NORMAL, "terminated").await;
                break;
            }
            _ => {
                shut(&out, close::BAD_MESSAGE, "unknown message type").await;
                break;
            }
        }
    }
    for task in running.values() {
        task.abort();
    }
    drop(out);
    let _ = writer.await;
}

/// The upgrade request's headers with those `connection_init`'s payload
/// gives (`{"headers": {…}}` or at its top level), which win.
fn with_payload(headers: &HeaderMap, payload: Option<&Json>) -> HeaderMap {
    let mut merged = headers.clone();
    let Some(Json::Object(payload)) = payload else {
        return merged;
    };
    let given = match payload.get("headers") {
        Some(Json::Object(headers)) => headers,
        _ => payload,
    };
    for (name, value) in given {
        if let (Ok(name), Some(Ok(value))) = (
            HeaderName::try_from(name.as_str()),
            value.as_str().map(HeaderValue::from_str),
        ) {
            merged.insert(name, value);
        }
    }
    merged
}

/// The live queries running, by who asks and what: the subscribers of one
/// query with the same variables share one run per interval when they
/// read the same rows — the same role, and the same user and claims when
/// the role's read rules name the caller (`{{$user.id}}`): a dashboard's
/// many viewers of a role without per-user rules share one run. A run is
/// keyed under the permissions' version and stops when they change
/// (its subscribers join the run keyed under the new rules).
#[derive(Default)]
pub struct Running {
    queries: Mutex<HashMap<String, Weak<Live>>>,
}

/// One live query's latest answer (`None` before the first), sent to its
/// subscribers; its poller stops when none is left.
type Live = watch::Sender<Option<Arc<Json>>>;

impl Running {
    /// A receiver of the live query `payload` run as `principal`: the
    /// running one's, or a new one's (its poller started).
    fn subscribe(
        &self,
        state: &AppState,
        principal: &Principal,
        payload: &Json,
    ) -> watch::Receiver<Option<Arc<Json>>> {
        let version = state.permissions.version();
        let key = if state.permissions.reads_depend_on_caller(&principal.role) {
            json!([
                version,
                principal.role,
                principal.user_id,
                principal.claims,
                payload
            ])
        } else {
            json!([version, principal.role, payload])
        }
        .to_string();
        let mut queries = self.queries.lock().unwrap_or_else(PoisonError::into_inner);
        queries.retain(|_, live| live.strong_count() > 0);
        if let Some(live) = queries.get(&key).and_then(Weak::upgrade) {
            return live.subscribe();
        }
        let live = Arc::new(watch::Sender::new(None));
        let receiver = live.subscribe();
        queries.insert(key, Arc::downgrade(&live));
        // Polled as the caller whose subscription started it.
        tokio::spawn(crate::admission::serve_as(
            crate::admission::current_caller(),
            poll(state.clone(), principal.clone(), payload.clone(), live),
        ));
        receiver
    }
}

/// Runs a live query again every interval while it has subscribers and
/// the permissions are the ones it was keyed under, publishing its answer
/// when it changed; a refused request (the first answer [`refused`]) ends
/// it.
async fn poll(state: AppState, principal: Principal, payload: Json, live: Arc<Live>) {
    let mut last: Option<Arc<Json>> = None;
    let version = state.permissions.version();
    loop {
        if state.permissions.version() != version {
            return;
        }
        let answer = answer(&state, &principal, &payload).await;
        if last.as_deref() != Some(&answer) {
            let failed = last.is_none() && refused(&answer);
            let answer = Arc::new(answer);
            last = Some(Arc::clone(&answer));
            live.send_replace(Some(answer));
            if failed {
                return;
            }
        }
        tokio::time::sleep(state.config.graphql.live_interval).await;
        if live.receiver_count() == 0 {
            return;
        }
    }
}

/// The answer to `payload` run as `principal` (once), as JSON: a request
/// that is not one is an answer of one error.
async fn answer(state: &AppState, principal: &Principal, payload: &Json) -> Json {
    let error = |message: String| {
        let error = json!({ "message": message, "extensions": { "code": "validation_failed" } });
        json!({ "data": null, "errors": [error] })
    };
    let request: async_graphql::Request = match serde_json::from_value(payload.clone()) {
        Ok(request) => request,
        Err(e) => return error(format!("not a GraphQL request: {e}")),
    };
    let answered = super::run(state, principal.clone(), request).await;
    serde_json::to_value(&answered)
        .unwrap_or_else(|e| error(format!("cannot write the answer: {e}")))
}

/// An answer the request was refused with: no data, and only errors that
/// are not a field's (`validation_failed`: the document does not parse or
/// validate, or breaks a limit). A field's error — a source down — is an
/// answer like any other: a live query goes on, and sends the data again
/// once the source is back.
fn refused(answer: &Json) -> bool {
    let Some(Json::Array(errors)) = answer.get("errors") else {
        return false;
    };
    answer.get("data").is_none_or(Json::is_null)
        && !errors.is_empty()
        && errors.iter().all(|error| {
            error.pointer("/extensions/code").and_then(Json::as_str) == Some("validation_failed")
        })
}

/// Runs one operation for the socket: a subscription as a live query
/// shared with its other subscribers ([`Running`]), each new answer sent
/// as `next`; anything else once, then `complete`. A refused request
/// ([`refused`]) ends it with `error`; a field's errors (a source down)
/// are sent as `next`, as GraphQL over WebSocket has it.
async fn run(state: AppState, principal: Principal, id: String, payload: Json, out: Outbox) {
    // A streaming subscription runs as one stream: its batches are sent as
    // they come, and its end completes the operation.
    if let Ok(request) = serde_json::from_value::<async_graphql::Request>(payload.clone())
        && let Some(mut batches) = super::stream(&state, principal.clone(), request)
    {
        let mut first = true;
        while let Some(answer) = batches.next().await {
            if std::mem::take(&mut first) && refused(&answer) {
                send_errors(&out, &id, &answer).await;
                return;
            }
            send(&out, json!({ "id": id, "type": "next", "payload": answer })).await;
        }
        send(&out, json!({ "id": id, "type": "complete" })).await;
        return;
    }
    // A subscription is rewritten once, here: every run sends the query.
    let mut payload = payload;
    let live = match payload.get_mut("query") {
        Some(Json::String(query)) => match as_query(query) {
            Ok(live) => live,
            Err(message) => {
                refuse(&out, &id, message).await;
                return;
            }
        },
        _ => false,
    };
    if !live {
        let answer = answer(&state, &principal, &payload).await;
        if refused(&answer) {
            send_errors(&out, &id, &answer).await;
            return;
        }
        send(&out, json!({ "id": id, "type": "next", "payload": answer })).await;
        send(&out, json!({ "id": id, "type": "complete" })).await;
        return;
    }
    let mut answers = state.graphql.live.subscribe(&state, &principal, &payload);
    let mut sent: Option<Arc<Json>> = None;
    // A poller stops when the permissions change, and joining one as it
    // stops (its last subscriber gone) leaves a receiver without a sender:
    // subscribed again, a few times in a row at most.
    let mut joins = 1;
    loop {
        let current = answers.borrow_and_update().clone();
        if let Some(answer) = current
            && sent.as_ref() != Some(&answer)
        {
            if sent.is_none() && refused(&answer) {
                send_errors(&out, &id, &answer).await;
                return;
            }
            joins = 1;
            send(
                &out,
                json!({ "id": id, "type": "next", "payload": *answer }),
            )
            .await;
            sent = Some(answer);
        }
        if answers.changed().await.is_err() {
            if joins == 3 {
                refuse(&out, &id, "the live query stopped").await;
                return;
            }
            joins += 1;
            answers = state.graphql.live.subscribe(&state, &principal, &payload);
        }
    }
}

/// Makes a `subscription` operation of the document `query` a query of the same
/// fields (the keyword replaced in place, so positions in errors stay
/// right); true when it was one.
fn as_query(query: &mut String) -> Result<bool, String> {
    let document = async_graphql::parser::parse_query(&*query)
        .map_err(|e| format!("the document does not parse: {e}"))?;
    let operations: Vec<_> = match &document.operations {
        DocumentOperations::Single(operation) => vec![operation],
        DocumentOperations::Multiple(operations) => operations.values().collect(),
    };
    let mut live = false;
    for operation in operations {
        if operation.node.ty != OperationType::Subscription {
            continue;
        }
        let offset = super::byte_offset(query, operation.pos);
        let keyword = "subscription";
        if query.get(offset..offset + keyword.len()) != Some(keyword) {
            return Err("a subscription is written `subscription { … }`".into());
        }
        query.replace_range(offset..offset + keyword.len(), "query       ");
        live = true;
    }
    Ok(live)
}

/// Ends operation `id` with one error.
async fn refuse(out: &Outbox, id: &str, message: impl Into<String>) {
    let answer = json!({ "errors": [{ "message": message.into() }] });
    send_errors(out, id, &answer).await;
}

/// Ends operation `id` with the errors of `answer`.
async fn send_errors(out: &Outbox, id: &str, answer: &Json) {
    let errors = answer.get("errors").cloned().unwrap_or_default();
    send(out, json!({ "id": id, "type": "error", "payload": errors })).await;
}

/// Sends `message` (typed in `graphql-transport-ws`'s terms) in the
/// socket's protocol.
async fn send(out: &Outbox, mut message: Json) {
    if let Some(kind) = message.get("type").and_then(Json::as_str) {
        let spoken = out.protocol.outgoing(kind);
        if spoken != kind {
            message["type"] = Json::from(spoken);
        }
    }
    let _ = out
        .messages
        .send(Message::Text(Utf8Bytes::from(message.to_string())))
        .await;
}

/// Closes the socket with a protocol code and reason.
async fn shut(out: &Outbox, code: u16, reason: &str) {
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from(reason.chars().take(120).collect::<String>()),
    };
    let _ = out.messages.send(Message::Close(Some(frame))).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_requests_refused_before_running_end_an_operation() {
        let invalid = json!({"data": null, "errors": [
            {"message": "unknown field", "extensions": {"code": "validation_failed"}}]});
        assert!(refused(&invalid));
        let source_down = json!({"data": null, "errors": [
            {"message": "source `pg` is unavailable", "extensions": {"code": "source_unavailable"}}]});
        assert!(!refused(&source_down));
        assert!(!refused(&json!({"data": {"a": []}})));
    }

    #[test]
    fn a_subscription_becomes_the_same_query() {
        let mut query = String::from("# live\n  subscription S { a { b } }");
        assert_eq!(as_query(&mut query), Ok(true));
        assert_eq!(query, "# live\n  query        S { a { b } }");
        let mut query = String::from("{ a }");
        assert_eq!(as_query(&mut query), Ok(false));
        assert_eq!(query, "{ a }");
    }
}
