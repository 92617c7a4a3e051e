//! The admin API under `/admin`: sources, the catalog, relations and
//! aliases. Every route needs the admin token.

mod auth;
mod catalog;
mod relations;
mod sources;

pub use auth::require_admin;

use axum::Router;
use axum::middleware;
use axum::routing::{delete, get, post};

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
        .route_layer(middleware::from_fn_with_state(state, require_admin))
}
