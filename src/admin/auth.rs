//! The admin-token check. Until roles and API keys exist, admin routes need
//! the bootstrap token (`TRIBUTARY_ADMIN_TOKEN` / `admin_token`), sent as
//! `Authorization: Bearer <token>` or `X-Admin-Token`.

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::state::AppState;

/// Lets the request through only with the right token.
pub async fn require_admin(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(expected) = state.config.admin_token.as_deref() else {
        return ApiError::unauthorized(
            "the admin API is disabled: start the server with an admin token (TRIBUTARY_ADMIN_TOKEN)",
        )
        .into_response();
    };
    match presented_token(request.headers()) {
        Some(token) if bool::from(token.as_bytes().ct_eq(expected.as_bytes())) => {
            next.run(request).await
        }
        Some(_) => ApiError::unauthorized("the admin token is not valid").into_response(),
        None => ApiError::unauthorized("admin routes need `Authorization: Bearer <admin token>`")
            .into_response(),
    }
}

fn presented_token(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let (scheme, token) = value.split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| token.trim());
    }
    headers
        .get("x-admin-token")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}
