//! The admin API under `/admin`: sources, the catalog, relations and
//! aliases, API keys, permissions and the audit log. Every route needs the
//! admin role; every change is audited.

mod audit;
mod catalog;
mod keys;
mod permissions;
mod relations;
mod sources;

use axum::Router;
use axum::middleware;
use axum::routing::{delete, get, post, put};

use crate::auth;

use crate::state::AppState;

/// The `/admin` routes, behind the admin-token check.
pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/admin/sources", get(sources::list).post(sources::register))
        .route(
            "/admin/sources/{name}",
            get(sources::show)
                .patch(sources::update)
                .delete(sources::remove),
        )
        .route("/admin/sources/{name}/test", post(sources::test))
        .route("/admin/sources/{name}/refresh", post(sources::refresh))
        .route("/admin/catalog", get(catalog::show))
        .route(
            "/admin/relations",
            get(relations::list).post(relations::create),
        )
        .route(
            "/admin/relations/{name}",
            get(relations::show).delete(relations::remove),
        )
        .route(
            "/admin/aliases",
            get(relations::list_aliases).put(relations::set_alias),
        )
        .route("/admin/aliases/{alias}", delete(relations::remove_alias))
        .route("/admin/keys", get(keys::list).post(keys::create))
        .route("/admin/keys/{id}", get(keys::show).delete(keys::revoke))
        .route("/admin/keys/{id}/rotate", post(keys::rotate))
        .route("/admin/permissions", get(permissions::list))
        .route(
            "/admin/permissions/{role}/{collection}/{action}",
            put(permissions::set).delete(permissions::remove),
        )
        .route("/admin/roles", get(permissions::roles))
        .route("/admin/audit", get(audit::list))
        // Outermost first: authenticate, audit (denied attempts too), admin only.
        .route_layer(middleware::from_fn(auth::require_admin))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            crate::audit::admin_actions,
        ))
        .route_layer(middleware::from_fn_with_state(state, auth::authenticate))
}
