//! `Application`: builds the state from the configuration, binds the
//! listener, starts the background refresh loop and serves until shutdown.
//! [`open_state`] is the part without the listener, shared with the CLI's
//! local `tributary sql`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tributary_schema_cache::{
    CacheError, CatalogStore, FileCatalogStore, PersistedCatalog, SchemaCache,
};

use crate::audit::AuditWriter;
use crate::auth::jwt::{JwtError, JwtVerifier};
use crate::auth::keys;
use crate::config::ServerConfig;
use crate::engine::Engine;
use crate::metadata::{MetadataStore, SqliteMetadataStore};
use crate::metrics::Metrics;
use crate::permissions::Permissions;
use crate::rate_limit::RateLimiter;
use crate::sources::SourceManager;
use crate::state::{AppState, Shared};
use crate::{admin, auth, graphql, health, openapi, rest, sql_api, tls};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is not a Tributary data directory (it has no {file}): \
         point at the data directory of a server that has sources registered",
        file = SqliteMetadataStore::FILE_NAME
    )]
    NoData { path: std::path::PathBuf },
    #[error(transparent)]
    Metadata(#[from] crate::metadata::MetadataError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(transparent)]
    Sources(#[from] crate::sources::SourceError),
    #[error("cannot start the SQL engine: {0}")]
    Engine(#[from] crate::engine::EngineError),
    #[error(transparent)]
    Jwt(#[from] JwtError),
    #[error("cannot start the audit log writer: {0}")]
    AuditWriter(std::io::Error),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A built server, listening but not yet serving.
pub struct Application {
    listener: TcpListener,
    /// `None`: plain HTTP.
    tls: Option<tokio_rustls::TlsAcceptor>,
    state: AppState,
}

impl Application {
    /// Opens the data directory ([`open_state`] as its owner) and binds the
    /// listen address (port 0 picks a free one — tests do that).
    pub async fn build(config: ServerConfig) -> Result<Self, StartError> {
        let listen = config.listen;
        // First: a refused transport or a bad certificate must not leave a data directory behind.
        let tls = tls::server_acceptor(listen, config.tls.as_ref(), config.allow_http)?;
        let state = open_state(config, DataAccess::Owner).await?;
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| StartError::Bind {
                addr: listen,
                source,
            })?;
        Ok(Self {
            listener,
            tls,
            state,
        })
    }

    /// The bound address (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.state.config.listen)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes. Checks every source once right away
    /// (in the background: the cached catalog is served meanwhile), then on
    /// the configured interval.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let refresher = spawn_refresh_loop(self.state.clone());
        let rules = spawn_rules_loop(self.state.clone());
        let router = router(self.state);
        let served = tls::serve(self.listener, router, self.tls, shutdown).await;
        refresher.abort();
        rules.abort();
        served
    }
}

/// How a process uses the data directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataAccess {
    /// The server: creates the directory when missing and keeps the cached
    /// catalog file up to date.
    Owner,
    /// A one-off reader (`tributary sql --config`): the directory must
    /// already hold a metadata store, and the cached catalog file is never
    /// rewritten, so a server running on the same directory stays its only
    /// writer (loading the catalog would otherwise save it again, and could
    /// put back an older copy over one the server just wrote).
    Reader,
}

/// Everything a request needs, without listening anywhere: opens the data
/// directory (metadata store and cached catalog), loads the sources without
/// contacting them, and builds the SQL engine.
pub async fn open_state(config: ServerConfig, access: DataAccess) -> Result<AppState, StartError> {
    tributary_connector::tls::install_crypto_provider();
    let catalog_file = FileCatalogStore::in_dir(&config.data_dir);
    let catalog: Box<dyn CatalogStore> = match access {
        DataAccess::Owner => {
            create_private_dir(&config.data_dir).map_err(|source| StartError::DataDir {
                path: config.data_dir.clone(),
                source,
            })?;
            Box::new(catalog_file)
        }
        DataAccess::Reader => {
            // Opening the store would create an empty one: a mistyped path
            // must say so instead of answering "unknown table".
            if !config
                .data_dir
                .join(SqliteMetadataStore::FILE_NAME)
                .is_file()
            {
                return Err(StartError::NoData {
                    path: config.data_dir.clone(),
                });
            }
            Box::new(ReadOnlyCatalog(catalog_file))
        }
    };
    let store: Arc<dyn MetadataStore> = Arc::new(SqliteMetadataStore::open(&config.data_dir)?);
    let cache = Arc::new(SchemaCache::open(catalog)?);
    let metrics = Arc::new(Metrics::new());
    let sources = Arc::new(SourceManager::new(
        cache.clone(),
        store.clone(),
        metrics.clone(),
    ));
    sources.load().await?;
    if access == DataAccess::Owner {
        match &config.admin_token {
            Some(token) => store.set_bootstrap_key(&keys::hash(token)).await?,
            // A token taken out of the configuration stops working.
            None => {
                store
                    .revoke_key(keys::BOOTSTRAP_ID, chrono::Utc::now())
                    .await?;
            }
        }
    }
    let permissions = Arc::new(Permissions::load(store.as_ref()).await?);
    let engine = Arc::new(Engine::new(
        cache.clone(),
        sources.clone(),
        permissions.clone(),
        metrics.clone(),
        config.time_zone,
    )?);
    let jwt = match &config.jwt {
        Some(jwt) => Some(Arc::new(JwtVerifier::new(jwt.clone())?)),
        None => None,
    };
    let rate_limiter = config
        .rate_limit
        .clone()
        .map(|limits| Arc::new(RateLimiter::new(limits)));
    let audit = Arc::new(AuditWriter::start(store.clone()).map_err(StartError::AuditWriter)?);
    Ok(AppState::new(Shared {
        config: Arc::new(config),
        cache,
        store,
        audit,
        sources,
        metrics,
        engine,
        permissions,
        jwt,
        rate_limiter,
        graphql: Arc::default(),
    }))
}

/// The cached catalog file, read but never written ([`DataAccess::Reader`]).
struct ReadOnlyCatalog(FileCatalogStore);

impl CatalogStore for ReadOnlyCatalog {
    fn load(&self) -> Result<Option<PersistedCatalog>, CacheError> {
        self.0.load()
    }

    fn save(&self, _catalog: &PersistedCatalog) -> Result<(), CacheError> {
        Ok(())
    }
}

/// Every route of the server.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        // The docs page holds no data: it fetches the caller's document.
        .route("/api/docs", get(|| async { openapi::docs_page() }))
        // GraphiQL holds no data either: it posts to /graphql with the
        // credentials its user gives it. A GET with a query in its URL is
        // a query: that handler authenticates it as the data routes do.
        .route("/graphql", get(graphql::get))
        // Hasura's path, so its clients need only the host changed.
        .route("/v1/graphql", get(graphql::get))
        .merge(admin::router(state.clone()))
        .merge(data_router(state.clone()))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::metrics::track,
        ))
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// The data routes: any authenticated role (or the anonymous one); what
/// each may read is decided by its permissions, in the plan.
fn data_router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/api/sql", post(sql_api::run))
        .merge(rest::routes())
        .merge(graphql::routes())
        .route_layer(middleware::from_fn_with_state(state, auth::authenticate))
}

fn spawn_refresh_loop(state: AppState) -> JoinHandle<()> {
    tokio::spawn(async move {
        state.sources.check_all().await;
        let Some(period) = state.config.refresh_interval else {
            return;
        };
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await; // the first tick fires at once; the check above covered it
        loop {
            ticker.tick().await;
            state.sources.check_all().await;
        }
    })
}

/// How often the permission rules are compared with the store's.
const RULES_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// Keeps the permission rules equal to the store's: a change made through
/// another replica sharing the store holds here within [`RULES_POLL`]
/// (through this one, at once). API keys need no such loop: each request
/// looks its key up in the store.
fn spawn_rules_loop(state: AppState) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(RULES_POLL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            match state.permissions.refresh(state.store.as_ref()).await {
                Ok(true) => tracing::info!("permission rules changed in the store: reloaded"),
                Ok(false) => {}
                Err(error) => tracing::warn!(%error, "cannot read the permission rules"),
            }
        }
    })
}

fn create_private_dir(path: &std::path::Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path)
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
