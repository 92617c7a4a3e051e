//! `/admin/sources`: register, list, show, re-configure, remove, test and
//! refresh sources.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json_, json};
use tributary_connector::{
    ConnectionOptions, PingInfo, PoolOptions, SchemaFilter, SourceConfig, TlsOptions,
};
use tributary_schema_cache::{SourceKind, SourceStatus};

use crate::error::{ApiError, json_rejection};
use crate::sources::PoolUsage;
use crate::state::AppState;

/// The registration body: the full config, or the short form
/// `{"name": "crm", "url": "postgres://…"}` where the kind comes from the URL.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterSource {
    pub name: String,
    pub kind: Option<SourceKind>,
    pub url: Option<String>,
    #[serde(default)]
    pub connection: ConnectionOptions,
    #[serde(default)]
    pub pool: PoolOptions,
    #[serde(default)]
    pub tls: TlsOptions,
    #[serde(default)]
    pub schemas: SchemaFilter,
}

impl RegisterSource {
    fn into_config(self) -> Result<SourceConfig, ApiError> {
        let mut connection = self.connection;
        if let Some(url) = self.url {
            if connection.url.is_some() {
                return Err(
                    ApiError::bad_request("give `url` or `connection.url`, not both").at("url"),
                );
            }
            connection.url = Some(url);
        }
        let kind = match (self.kind, connection.url.as_deref()) {
            (Some(kind), _) => kind,
            (None, Some(url)) => {
                SourceConfig::from_url(&self.name, url)
                    .map_err(|e| {
                        ApiError::new(
                            StatusCode::BAD_REQUEST,
                            "invalid_source_config",
                            e.to_string(),
                        )
                        .at("url")
                    })?
                    .kind
            }
            (None, None) => {
                return Err(ApiError::bad_request(format!(
                    "`kind` is required without a URL (one of: {})",
                    SourceKind::ALL.map(SourceKind::as_str).join(", ")
                ))
                .at("kind"));
            }
        };
        Ok(SourceConfig {
            name: self.name,
            kind,
            connection,
            pool: self.pool,
            tls: self.tls,
            schemas: self.schemas,
        })
    }
}

/// One source as the admin API shows it.
#[derive(Debug, Serialize)]
pub struct SourceView {
    pub name: String,
    pub kind: SourceKind,
    pub status: Option<SourceStatus>,
    /// The server's version at the last introspection.
    pub server_version: Option<String>,
    pub tables: usize,
    pub fingerprint: Option<String>,
    pub introspected_at: Option<chrono::DateTime<chrono::Utc>>,
    /// What the source's last ping advised (see `POST …/test`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub advice: Vec<String>,
    /// Its connections now: the pool's counts and the callers using them.
    pub pool: Option<PoolUsage>,
    pub config: SourceConfig,
}

fn view(state: &AppState, config: SourceConfig) -> SourceView {
    let snapshot = state.cache.snapshot();
    let entry = snapshot.sources.get(&config.name);
    let schema = entry.and_then(|e| e.schema.as_ref());
    SourceView {
        name: config.name.clone(),
        kind: schema.map_or(config.kind, |s| s.kind),
        status: entry.map(|e| e.status.clone()),
        server_version: schema.map(|s| s.server_version.clone()),
        tables: schema.map_or(0, |s| s.tables().count()),
        fingerprint: entry.and_then(tributary_schema_cache::SourceEntry::fingerprint),
        introspected_at: schema.map(|s| s.introspected_at),
        advice: state.sources.advice(&config.name),
        pool: state.sources.pool_usage(&config.name),
        config,
    }
}

/// `GET /admin/sources`
pub async fn list(State(state): State<AppState>) -> Json<Vec<SourceView>> {
    Json(
        state
            .sources
            .configs()
            .into_iter()
            .map(|c| view(&state, c))
            .collect(),
    )
}

/// `GET /admin/sources/{name}`
pub async fn show(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<SourceView>, ApiError> {
    let config = state
        .sources
        .config(&name)
        .ok_or_else(|| ApiError::not_found("source", &name))?;
    Ok(Json(view(&state, config)))
}

/// `POST /admin/sources`: connects, introspects, stores; 201 with the diff.
pub async fn register(
    State(state): State<AppState>,
    body: Result<Json<RegisterSource>, JsonRejection>,
) -> Result<(StatusCode, Json<Json_>), ApiError> {
    let Json(request) = body.map_err(|e| json_rejection(&e))?;
    let config = request.into_config()?;
    let registration = state.sources.register(config).await?;
    let name = registration.source.name.clone();
    let source = state.sources.config(&name).map(|c| view(&state, c));
    Ok((
        StatusCode::CREATED,
        Json(json!({ "source": source, "ping": registration.ping, "diff": registration.diff })),
    ))
}

/// `PATCH /admin/sources/{name}` with a JSON merge patch of the config.
pub async fn update(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Result<Json<Json_>, JsonRejection>,
) -> Result<Json<Json_>, ApiError> {
    let Json(patch) = body.map_err(|e| json_rejection(&e))?;
    if !patch.is_object() {
        return Err(ApiError::bad_request(
            "the body must be a JSON object (a merge patch of the source config)",
        ));
    }
    let registration = state.sources.update(&name, patch).await?;
    let source = state.sources.config(&name).map(|c| view(&state, c));
    Ok(Json(
        json!({ "source": source, "ping": registration.ping, "diff": registration.diff }),
    ))
}

/// `DELETE /admin/sources/{name}`
pub async fn remove(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.sources.remove(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A ping's answer: the source, and what the ping saw (its advice only
/// when there is some).
#[derive(Debug, Serialize)]
pub struct Tested {
    pub source: String,
    pub ok: bool,
    #[serde(flatten)]
    pub ping: PingInfo,
}

/// `POST /admin/sources/{name}/test`: a ping, with the connector's advice
/// when it has some; 503 naming the source when it is down.
pub async fn test(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Tested>, ApiError> {
    let ping = state.sources.test(&name).await?;
    Ok(Json(Tested {
        source: name,
        ok: true,
        ping,
    }))
}

/// How `POST /admin/sources/{name}/refresh` works.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RefreshQuery {
    /// `full` (default) introspects again; `drift` first compares cheap
    /// fingerprints and introspects only when they differ.
    #[serde(default)]
    pub mode: Option<String>,
}

/// `POST /admin/sources/{name}/refresh[?mode=drift]`: returns the diff.
pub async fn refresh(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<RefreshQuery>,
) -> Result<Json<Json_>, ApiError> {
    let diff = match query.mode.as_deref().unwrap_or("full") {
        "full" => Some(state.sources.refresh(&name).await?),
        "drift" => state.sources.check_drift(&name).await?,
        other => {
            return Err(ApiError::bad_request(format!(
                "unknown refresh mode `{other}` (full, drift)"
            ))
            .at("mode"));
        }
    };
    let changed = diff.as_ref().is_some_and(|d| !d.is_empty());
    Ok(Json(
        json!({ "source": name, "changed": changed, "diff": diff }),
    ))
}
