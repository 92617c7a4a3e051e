//! Who is calling: every request to `/api` and `/admin` is authenticated
//! here into a [`Principal`] (role, user id, claims, key id) by an API key
//! (`Authorization: Bearer <key>` or `X-API-Key`), a JWT from an identity
//! provider, or the configured anonymous role; otherwise 401. `X-Role` picks
//! one of a JWT's allowed roles; an admin may act as any role (`X-Role`,
//! `X-User-Id`), which is how admins check what a role sees. Hasura's
//! spellings carry over, so its clients need no change:
//! `X-Hasura-Admin-Secret` carries a key as `X-API-Key` does, and
//! `X-Hasura-Role` / `X-Hasura-User-Id` are `X-Role` / `X-User-Id`.
//! Requests are rate limited after authentication.

pub mod jwt;
pub mod keys;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::Value;

use crate::engine::Caller;
use crate::error::ApiError;
use crate::filter::Variables;
use crate::permissions::ADMIN_ROLE;
use crate::state::AppState;

/// How a caller proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    ApiKey,
    Jwt,
    Anonymous,
}

/// The authenticated caller of one request.
#[derive(Debug, Clone)]
pub struct Principal {
    pub role: String,
    pub user_id: Option<String>,
    pub claims: Value,
    /// The API key's id (audit log, rate limits).
    pub key_id: Option<String>,
    pub method: Method,
}

impl Principal {
    /// The admin, for callers inside the process with the data directory
    /// in hand (`tributary sql --config`).
    pub fn local_admin() -> Self {
        Self {
            role: ADMIN_ROLE.to_string(),
            user_id: None,
            claims: Value::Null,
            key_id: None,
            method: Method::ApiKey,
        }
    }

    /// Who is asking, for rate limits and turns at a busy source: the API
    /// key, else the user, else the role; `None` for an anonymous caller
    /// (known by its address only).
    pub fn who(&self) -> Option<String> {
        if self.method == Method::Anonymous {
            return None;
        }
        Some(match (&self.key_id, &self.user_id) {
            (Some(key), _) => format!("key:{key}"),
            (None, Some(user)) => format!("user:{user}"),
            (None, None) => format!("role:{}", self.role),
        })
    }

    pub fn is_admin(&self) -> bool {
        self.role == ADMIN_ROLE
    }

    /// Who the SQL engine plans for.
    pub fn caller(&self) -> Caller {
        if self.is_admin() {
            return Caller::Admin;
        }
        Caller::Role {
            role: self.role.clone(),
            variables: Variables {
                user_id: self.user_id.clone(),
                role: self.role.clone(),
                claims: self.claims.clone(),
                now: Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            },
        }
    }
}

/// Role names: letters, digits, `_` and `-`, at most 64 characters.
pub fn is_role_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Middleware: authenticates, rate limits, and hands the [`Principal`] on
/// as a request extension.
pub async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    match admit(&state, &mut request).await {
        Ok(caller) => crate::admission::serve_as(caller, next.run(request)).await,
        Err(refused) => refused,
    }
}

/// Authenticates and rate limits `request`, handing the [`Principal`] on
/// as its extension (the middleware's work, for a handler that decides
/// itself whether a request needs it): the caller to serve it as
/// ([`crate::admission::serve_as`]); `Err`: the answer refusing it.
pub async fn admit(
    state: &AppState,
    request: &mut Request,
) -> Result<crate::admission::Caller, Response> {
    let principal = match identify(state, request.headers()).await {
        Ok(principal) => principal,
        Err(error) => return Err(error.into_response()),
    };
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let caller = caller_of(&principal, client);
    if let Err(retry_after) = rate_limit(state, &caller, client) {
        return Err(too_many_requests(retry_after));
    }
    request.extensions_mut().insert(principal);
    Ok(caller)
}

/// A new request of `principal` (from `client`), as the sources' gates
/// know it ([`crate::admission`]).
pub(crate) fn caller_of(
    principal: &Principal,
    client: Option<std::net::IpAddr>,
) -> crate::admission::Caller {
    let who = principal.who().unwrap_or_else(|| address_of(client));
    crate::admission::Caller::new(Arc::from(who.as_str()))
}

/// An anonymous caller: its address.
fn address_of(client: Option<std::net::IpAddr>) -> String {
    format!("ip:{}", client.map(|ip| ip.to_string()).unwrap_or_default())
}

/// Counts a request of `caller` (from `client`) against the configured
/// rate limit: `Err` with the time to wait when it is over.
pub(crate) fn rate_limit(
    state: &AppState,
    caller: &crate::admission::Caller,
    client: Option<std::net::IpAddr>,
) -> Result<(), std::time::Duration> {
    let Some(limiter) = &state.rate_limiter else {
        return Ok(());
    };
    // The caller is its address when anonymous, as `per = "ip"` counts all.
    match limiter.per() {
        crate::rate_limit::RateLimitBy::Key => limiter.check(caller.key()),
        crate::rate_limit::RateLimitBy::Ip => limiter.check(&address_of(client)),
    }
}

/// Middleware for `/admin`: the admin role only.
pub async fn require_admin(request: Request, next: Next) -> Response {
    match request.extensions().get::<Principal>() {
        Some(p) if p.is_admin() => next.run(request).await,
        Some(p) => ApiError::forbidden(format!(
            "admin routes need the admin role (this request has role `{}`)",
            p.role
        ))
        .into_response(),
        None => ApiError::unauthorized("admin routes need credentials").into_response(),
    }
}

fn too_many_requests(retry_after: std::time::Duration) -> Response {
    let seconds = crate::rate_limit::retry_after_secs(retry_after);
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!("too many requests: retry in {seconds} s"),
    )
    .retry_after(seconds)
    .into_response()
}

/// The principal of a request, from its credentials and role headers.
pub(crate) async fn identify(state: &AppState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let Some(token) = presented_token(headers)? else {
        return match &state.config.anonymous_role {
            Some(role) => Ok(Principal {
                role: role.clone(),
                user_id: None,
                claims: Value::Null,
                key_id: None,
                method: Method::Anonymous,
            }),
            None => Err(ApiError::unauthorized(
                "credentials needed: `Authorization: Bearer <API key or token>` or `X-API-Key`",
            )),
        };
    };
    if let Some(key) = state.store.key_by_hash(&keys::hash(token)).await? {
        if key.revoked_at.is_some() {
            return Err(ApiError::unauthorized("this API key was revoked"));
        }
        if !key.is_active(Utc::now()) {
            return Err(ApiError::unauthorized("this API key has expired"));
        }
        let principal = Principal {
            role: key.role,
            user_id: key.user_id,
            claims: key.claims,
            key_id: Some(key.id),
            method: Method::ApiKey,
        };
        return act_as(principal, headers);
    }
    if let Some(verifier) = &state.jwt
        && looks_like_jwt(token)
    {
        let identity = verifier.verify(token).await.map_err(|e| match e {
            // The identity provider is down: not the caller's fault.
            jwt::JwtError::KeysUnavailable { .. } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "identity_provider_unavailable",
                format!("cannot check the token: {e}"),
            ),
            other => ApiError::unauthorized(format!("the token is not accepted: {other}")),
        })?;
        return jwt_principal(identity, requested_role(headers)?);
    }
    let hint = if state.config.admin_token.is_none() {
        " (this server has no admin token: start it with TRIBUTARY_ADMIN_TOKEN \
         to get a first admin key)"
    } else {
        ""
    };
    Err(ApiError::unauthorized(format!(
        "the API key is not valid{hint}"
    )))
}

/// `X-Role` / `X-User-Id` on an API key: an admin may act as any role and
/// user; another key only as its own role.
fn act_as(mut principal: Principal, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let role = requested_role(headers)?;
    if principal.is_admin() {
        if let Some(role) = role {
            principal.role = role;
            if let Some(user) = header_text(headers, "x-user-id")
                .or_else(|| header_text(headers, "x-hasura-user-id"))
            {
                principal.user_id = Some(user.to_string());
            }
        }
        return Ok(principal);
    }
    match role {
        Some(role) if role != principal.role => Err(ApiError::forbidden(format!(
            "this API key has role `{}` and cannot act as `{role}`",
            principal.role
        ))),
        _ => Ok(principal),
    }
}

/// A JWT's role: `X-Role` if it is one of the allowed roles, else the
/// token's role claim.
fn jwt_principal(
    identity: jwt::JwtIdentity,
    requested: Option<String>,
) -> Result<Principal, ApiError> {
    let role = match requested {
        Some(role) => {
            if identity.role.as_deref() != Some(role.as_str())
                && !identity.allowed_roles.contains(&role)
            {
                return Err(ApiError::forbidden(format!(
                    "role `{role}` is not among the token's allowed roles"
                )));
            }
            role
        }
        None => identity
            .role
            .clone()
            .or_else(|| identity.allowed_roles.first().cloned())
            .ok_or_else(|| ApiError::unauthorized("the token names no role"))?,
    };
    Ok(Principal {
        role,
        user_id: identity.user_id,
        claims: identity.claims,
        key_id: None,
        method: Method::Jwt,
    })
}

fn requested_role(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let given = header_text(headers, "x-role").or_else(|| header_text(headers, "x-hasura-role"));
    match given {
        None => Ok(None),
        Some(role) if is_role_name(role) => Ok(Some(role.to_string())),
        Some(role) => {
            Err(ApiError::bad_request(format!("`{role}` is not a role name")).at("X-Role"))
        }
    }
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// Three base64url parts separated by dots.
fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
}

/// `Authorization: Bearer <token>`, else `X-API-Key`, else the older
/// `X-Admin-Token`. An `Authorization` header of another form is refused
/// (not taken for no credentials, which could mean the anonymous role).
fn presented_token(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    if let Some(value) = header_text(headers, header::AUTHORIZATION.as_str()) {
        return match value.split_once(' ') {
            Some((scheme, token))
                if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
            {
                Ok(Some(token.trim()))
            }
            _ => Err(ApiError::unauthorized(
                "the Authorization header must be `Bearer <API key or token>`",
            )),
        };
    }
    Ok(["x-api-key", "x-admin-token", "x-hasura-admin-secret"]
        .into_iter()
        .find_map(|name| header_text(headers, name)))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn tokens_come_from_bearer_or_api_key_headers() {
        let token = |pairs: &[(&'static str, &str)]| {
            presented_token(&headers(pairs))
                .unwrap()
                .map(str::to_string)
        };
        assert_eq!(
            token(&[("authorization", "Bearer abc")]).as_deref(),
            Some("abc")
        );
        assert_eq!(
            token(&[("authorization", "bearer  abc ")]).as_deref(),
            Some("abc")
        );
        assert_eq!(token(&[("x-api-key", "k")]).as_deref(), Some("k"));
        assert_eq!(
            token(&[("x-hasura-admin-secret", "s")]).as_deref(),
            Some("s")
        );
        assert_eq!(token(&[]), None);
        // Another scheme is an error, not "no credentials" (the anonymous role).
        let basic = presented_token(&headers(&[("authorization", "Basic abc")])).unwrap_err();
        assert_eq!(basic.status, StatusCode::UNAUTHORIZED);
    }

    fn key_principal(role: &str) -> Principal {
        Principal {
            role: role.into(),
            user_id: None,
            claims: Value::Null,
            key_id: Some("k".into()),
            method: Method::ApiKey,
        }
    }

    #[test]
    fn only_admins_act_as_other_roles() {
        let admin = act_as(
            key_principal("admin"),
            &headers(&[("x-role", "customer"), ("x-user-id", "7")]),
        )
        .unwrap();
        assert_eq!(
            (admin.role.as_str(), admin.user_id.as_deref()),
            ("customer", Some("7"))
        );
        let err = act_as(key_principal("reader"), &headers(&[("x-role", "writer")])).unwrap_err();
        assert_eq!(err.status, StatusCode::FORBIDDEN);
        assert!(act_as(key_principal("reader"), &headers(&[("x-role", "reader")])).is_ok());
        let err = act_as(key_principal("admin"), &headers(&[("x-role", "a b")])).unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        // Hasura's spellings; ours win when both are given.
        let hasura = act_as(
            key_principal("admin"),
            &headers(&[("x-hasura-role", "customer"), ("x-hasura-user-id", "8")]),
        )
        .unwrap();
        assert_eq!(
            (hasura.role.as_str(), hasura.user_id.as_deref()),
            ("customer", Some("8"))
        );
        let both = act_as(
            key_principal("admin"),
            &headers(&[("x-role", "clerk"), ("x-hasura-role", "customer")]),
        )
        .unwrap();
        assert_eq!(both.role, "clerk");
    }

    #[test]
    fn a_jwt_role_must_be_allowed() {
        let identity = jwt::JwtIdentity {
            role: Some("user".into()),
            allowed_roles: vec!["user".into(), "editor".into()],
            user_id: Some("u1".into()),
            claims: Value::Null,
        };
        assert_eq!(jwt_principal(identity.clone(), None).unwrap().role, "user");
        assert_eq!(
            jwt_principal(identity.clone(), Some("editor".into()))
                .unwrap()
                .role,
            "editor"
        );
        let err = jwt_principal(identity, Some("admin".into())).unwrap_err();
        assert_eq!(err.status, StatusCode::FORBIDDEN);
    }
}
