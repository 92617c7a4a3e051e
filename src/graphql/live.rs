//! Live queries over WebSocket, on `GET /graphql`, in GraphQL over
//! WebSocket's `graphql-transport-ws` protocol (what graphql-ws, Apollo
//! Client and urql speak). A `subscription` operation is its query run
//! again every `graphql.live_interval_ms` as the caller — the path,
//! permissions and limits of `POST /graphql` — and its answer is sent when
//! it differs from the last one sent (Hasura's live queries). A query or a
//! mutation sent over the socket is answered once. Credentials come with
//! the upgrade request's headers or, from a browser (which cannot set
//! them), in `connection_init`'s payload: `{"headers": {"Authorization":
//! "Bearer …"}}`, or the header names at its top level. Each operation
//! counts as a request against the rate limit.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use async_graphql::parser::types::{DocumentOperations, OperationType};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use serde_json::{Value as Json, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::auth::{self, Principal};
use crate::state::AppState;

/// Most operations one socket runs at once.
const MAX_OPERATIONS: usize = 100;

/// The protocol's close codes.
mod close {
    pub const BAD_MESSAGE: u16 = 4400;
    pub const UNAUTHORIZED: u16 = 4401;
    pub const FORBIDDEN: u16 = 4403;
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
    upgrade
        .protocols(["graphql-transport-ws"])
        .on_upgrade(move |socket| serve(state, headers, client, socket))
}

/// One socket: `connection_init` (answered `connection_ack` once the
/// caller is known), then `subscribe` / `complete` per operation, `ping` /
/// `pong`; a message out of protocol closes it with the protocol's code.
async fn serve(state: AppState, headers: HeaderMap, client: Option<IpAddr>, socket: WebSocket) {
    let (mut sink, mut incoming) = socket.split();
    let (out, mut outgoing) = mpsc::channel::<Message>(64);
    let writer = tokio::spawn(async move {
        while let Some(message) = outgoing.recv().await {
            let closing = matches!(message, Message::Close(_));
            if sink.send(message).await.is_err() || closing {
                break;
            }
        }
    });
    let mut caller: Option<Principal> = None;
    let mut running: HashMap<String, JoinHandle<()>> = HashMap::new();
    while let Some(Ok(message)) = incoming.next().await {
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
        match message.get("type").and_then(Json::as_str) {
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
                let credentials = with_payload(&headers, message.get("payload"));
                match auth::identify(&state, &credentials).await {
                    Ok(principal) => {
                        caller = Some(principal);
                        send(&out, json!({ "type": "connection_ack" })).await;
                    }
                    Err(error) => {
                        shut(&out, close::FORBIDDEN, &error.message).await;
                        break;
                    }
                }
            }
            Some("ping") => send(&out, json!({ "type": "pong" })).await,
            Some("pong") => {}
            Some("subscribe") => {
                let Some(principal) = &caller else {
                    shut(&out, close::UNAUTHORIZED, "Unauthorized").await;
                    break;
                };
                let (Some(id), Some(payload)) = (id, message.get("payload")) else {
                    shut(
                        &out,
                        close::BAD_MESSAGE,
                        "subscribe needs an id and a payload",
                    )
                    .await;
                    break;
                };
                // Each operation counts as a request against the rate limit.
                if auth::rate_limit(&state, principal, client).is_err() {
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
                let task = tokio::spawn(run(
                    state.clone(),
                    principal.clone(),
                    id.clone(),
                    payload.clone(),
                    out.clone(),
                ));
                running.insert(id, task);
            }
            Some("complete") => {
                if let Some(task) = id.and_then(|id| running.remove(&id)) {
                    task.abort();
                }
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

/// Runs one operation: a subscription again and again, its answer sent
/// when it changed; anything else once, then `complete`. An answer that
/// is only errors (a document that does not validate, say) ends it with
/// `error`.
async fn run(
    state: AppState,
    principal: Principal,
    id: String,
    payload: Json,
    out: mpsc::Sender<Message>,
) {
    let mut last: Option<String> = None;
    loop {
        let mut request: async_graphql::Request = match serde_json::from_value(payload.clone()) {
            Ok(request) => request,
            Err(e) => {
                refuse(&out, &id, format!("not a GraphQL request: {e}")).await;
                return;
            }
        };
        let live = match as_query(&mut request) {
            Ok(live) => live,
            Err(message) => {
                refuse(&out, &id, message).await;
                return;
            }
        };
        let answered = super::run(&state, principal.clone(), request).await;
        let answer = match serde_json::to_value(&answered) {
            Ok(answer) => answer,
            Err(e) => {
                refuse(&out, &id, format!("cannot write the answer: {e}")).await;
                return;
            }
        };
        let failed = answer.get("data").is_none_or(Json::is_null)
            && answer.get("errors").is_some_and(|e| !Json::is_null(e));
        if failed && last.is_none() {
            let errors = answer.get("errors").cloned().unwrap_or_default();
            send(
                &out,
                json!({ "id": id, "type": "error", "payload": errors }),
            )
            .await;
            return;
        }
        let text = answer.to_string();
        if last.as_deref() != Some(text.as_str()) {
            send(&out, json!({ "id": id, "type": "next", "payload": answer })).await;
            last = Some(text);
        }
        if !live {
            send(&out, json!({ "id": id, "type": "complete" })).await;
            return;
        }
        tokio::time::sleep(state.config.graphql.live_interval).await;
        if out.is_closed() {
            return;
        }
    }
}

/// Makes a `subscription` operation of `request` a query of the same
/// fields (the keyword replaced in place, so positions in errors stay
/// right); true when it was one.
fn as_query(request: &mut async_graphql::Request) -> Result<bool, String> {
    let document = async_graphql::parser::parse_query(&request.query)
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
        let pos = operation.pos;
        let offset = request
            .query
            .split_inclusive('\n')
            .take(pos.line.saturating_sub(1))
            .map(str::len)
            .sum::<usize>()
            + request
                .query
                .split_inclusive('\n')
                .nth(pos.line.saturating_sub(1))
                .map_or(0, |line| {
                    line.chars()
                        .take(pos.column.saturating_sub(1))
                        .map(char::len_utf8)
                        .sum()
                });
        let keyword = "subscription";
        if request.query.get(offset..offset + keyword.len()) != Some(keyword) {
            return Err("a subscription is written `subscription { … }`".into());
        }
        request
            .query
            .replace_range(offset..offset + keyword.len(), "query       ");
        live = true;
    }
    Ok(live)
}

/// Ends operation `id` with one error.
async fn refuse(out: &mpsc::Sender<Message>, id: &str, message: impl Into<String>) {
    let errors = json!([{ "message": message.into() }]);
    send(out, json!({ "id": id, "type": "error", "payload": errors })).await;
}

async fn send(out: &mpsc::Sender<Message>, message: Json) {
    let _ = out
        .send(Message::Text(Utf8Bytes::from(message.to_string())))
        .await;
}

/// Closes the socket with a protocol code and reason.
async fn shut(out: &mpsc::Sender<Message>, code: u16, reason: &str) {
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from(reason.chars().take(120).collect::<String>()),
    };
    let _ = out.send(Message::Close(Some(frame))).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subscription_becomes_the_same_query() {
        let mut request = async_graphql::Request::new("# live\n  subscription S { a { b } }");
        assert_eq!(as_query(&mut request), Ok(true));
        assert_eq!(request.query, "# live\n  query        S { a { b } }");
        let mut request = async_graphql::Request::new("{ a }");
        assert_eq!(as_query(&mut request), Ok(false));
        assert_eq!(request.query, "{ a }");
    }
}
