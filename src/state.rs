//! The state every request handler shares.

use std::sync::Arc;

use tributary_schema_cache::SchemaCache;

use crate::audit::AuditWriter;
use crate::auth::jwt::JwtVerifier;
use crate::config::ServerConfig;
use crate::engine::Engine;
use crate::graphql::Schemas;
use crate::metadata::MetadataStore;
use crate::metrics::Metrics;
use crate::permissions::Permissions;
use crate::rate_limit::RateLimiter;
use crate::sources::SourceManager;

/// Cheap to clone: everything is behind an `Arc`.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<ServerConfig>,
    pub cache: Arc<SchemaCache>,
    pub store: Arc<dyn MetadataStore>,
    pub sources: Arc<SourceManager>,
    pub metrics: Arc<Metrics>,
    pub engine: Arc<Engine>,
    pub permissions: Arc<Permissions>,
    /// Verifies JWT bearer tokens when `[jwt]` is configured.
    pub jwt: Option<Arc<JwtVerifier>>,
    pub rate_limiter: Option<Arc<RateLimiter>>,
    /// Writes the audit log in batches.
    pub audit: Arc<AuditWriter>,
    /// GraphQL schemas built per role.
    pub graphql: Arc<Schemas>,
}
