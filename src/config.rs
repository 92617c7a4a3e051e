//! Server configuration: a TOML file (typed, unknown keys rejected),
//! overridden by `TRIBUTARY_*` environment variables, overridden by flags —
//! merged in one place, [`ServerConfig::resolve`].

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use datafusion::arrow::array::timezone::Tz;
use serde::Deserialize;

use crate::auth::jwt::JwtConfig;
use crate::rate_limit::RateLimitConfig;
use crate::tls::TlsFiles;

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid value for {name}: {message}")]
    Invalid { name: &'static str, message: String },
}

/// The TOML file, as written by an operator. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Format version of this file; only 1 exists.
    pub version: Option<u32>,
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub admin_token: Option<String>,
    /// Seconds between drift checks of every source (0 turns them off).
    pub refresh_interval_secs: Option<u64>,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: Option<usize>,
    /// Log filter (`info`, `tributary=debug`, ...).
    pub log: Option<String>,
    /// Longest a query through the SQL endpoint may run, in seconds.
    pub query_timeout_secs: Option<u64>,
    /// Most rows one SQL endpoint response carries.
    pub max_rows: Option<usize>,
    /// PEM certificate chain to serve HTTPS with (together with `tls_key`).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP on an address other than loopback.
    pub allow_http: Option<bool>,
    /// JWT bearer tokens (`[jwt]`).
    pub jwt: Option<JwtConfig>,
    /// Request rate limits (`[rate_limit]`).
    pub rate_limit: Option<RateLimitConfig>,
    /// The role of requests without credentials; without it they get 401.
    pub anonymous_role: Option<String>,
    /// The zone date filters (`$dateOn: "2024-05-01"`) read days, months
    /// and years in: an IANA name (`Europe/Paris`) or an offset (`+02:00`).
    pub time_zone: Option<String>,
    /// The GraphQL API's limits (`[graphql]`).
    pub graphql: Option<GraphqlFileConfig>,
}

/// `[graphql]` as written; every key is optional.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphqlFileConfig {
    /// Deepest selection a query may nest.
    pub max_depth: Option<usize>,
    /// Most fields a query may select, counted over the whole document.
    pub max_complexity: Option<usize>,
    /// Answer `__schema` / `__type` queries (GraphiQL needs them).
    pub introspection: Option<bool>,
    /// Rows a list field answers without `limit`.
    pub default_limit: Option<u64>,
    /// Most operations one batched request (a JSON array) may hold; 1
    /// refuses batches.
    pub max_batch: Option<usize>,
    /// How often a live query (a `subscription` over WebSocket) runs again,
    /// in milliseconds (default 1000, at least 50).
    pub live_interval_ms: Option<u64>,
    /// How often a live query socket's credentials are checked again, and
    /// how long it may wait for `connection_init`, in seconds (default 60).
    pub live_auth_interval_secs: Option<u64>,
    /// Longest `ttl` a query's `@cached` may ask for, in seconds (default
    /// 300).
    pub cache_max_ttl_secs: Option<u64>,
    /// Most memory the cached answers of `@cached` queries hold, in MiB
    /// (default 64; 0 turns caching off).
    pub cache_max_mb: Option<u64>,
}

/// The GraphQL API's limits, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphqlConfig {
    pub max_depth: usize,
    pub max_complexity: usize,
    pub introspection: bool,
    /// Rows a list answers without `limit`; never above `max_limit`.
    pub default_limit: u64,
    /// Most rows a list answers whatever its `limit`: the REST API's
    /// largest page, and never more than `max_rows`.
    pub max_limit: u64,
    /// Most operations in one batched request.
    pub max_batch: usize,
    /// How often a live query runs again.
    pub live_interval: Duration,
    /// How often a live query socket's credentials are checked again.
    pub live_auth_interval: Duration,
    /// Longest time a `@cached` query's answer is kept.
    pub cache_max_ttl: Duration,
    /// Most bytes of `@cached` answers kept.
    pub cache_max_bytes: usize,
}

impl GraphqlConfig {
    pub const DEFAULT_MAX_DEPTH: usize = 10;
    pub const DEFAULT_MAX_COMPLEXITY: usize = 1000;
    pub const DEFAULT_MAX_BATCH: usize = 20;

    fn resolve(file: Option<GraphqlFileConfig>, max_rows: usize) -> Self {
        let file = file.unwrap_or_default();
        let max_limit = crate::rest::read::MAX_PAGE_SIZE.min(max_rows as u64);
        Self {
            max_depth: file.max_depth.unwrap_or(Self::DEFAULT_MAX_DEPTH).max(1),
            max_complexity: file
                .max_complexity
                .unwrap_or(Self::DEFAULT_MAX_COMPLEXITY)
                .max(1),
            introspection: file.introspection.unwrap_or(true),
            default_limit: file.default_limit.unwrap_or(max_limit).clamp(1, max_limit),
            max_limit,
            max_batch: file.max_batch.unwrap_or(Self::DEFAULT_MAX_BATCH).max(1),
            live_interval: Duration::from_millis(file.live_interval_ms.unwrap_or(1000).max(50)),
            live_auth_interval: Duration::from_secs(
                file.live_auth_interval_secs.unwrap_or(60).max(1),
            ),
            cache_max_ttl: Duration::from_secs(file.cache_max_ttl_secs.unwrap_or(300).max(1)),
            cache_max_bytes: usize::try_from(file.cache_max_mb.unwrap_or(64))
                .unwrap_or(usize::MAX)
                .saturating_mul(1 << 20),
        }
    }
}

impl FileConfig {
    /// Reads and parses a config file; unknown keys are an error naming them.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parses TOML text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: Self = toml::from_str(text).map_err(|e| e.to_string())?;
        match file.version {
            None | Some(1) => Ok(file),
            Some(other) => Err(format!(
                "unsupported config version {other} (this build reads version 1)"
            )),
        }
    }
}

/// Values from the environment and the command line; `None` where not given.
/// clap fills these from flags first and `TRIBUTARY_*` variables second.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub admin_token: Option<String>,
    pub refresh_interval_secs: Option<u64>,
    pub log: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub allow_http: Option<bool>,
}

/// The resolved configuration the server runs with.
#[derive(Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Admin routes answer 401 to everyone when this is unset.
    pub admin_token: Option<String>,
    /// `None`: no periodic drift checks.
    pub refresh_interval: Option<Duration>,
    pub max_body_bytes: usize,
    pub log: String,
    pub query_timeout: Duration,
    pub max_rows: usize,
    /// HTTPS certificate and key; `None` serves plain HTTP.
    pub tls: Option<TlsFiles>,
    /// Plain HTTP was asked for: without TLS, an address other than
    /// loopback is served only then ([`crate::tls::server_acceptor`]).
    pub allow_http: bool,
    pub jwt: Option<JwtConfig>,
    pub rate_limit: Option<RateLimitConfig>,
    /// The role of requests without credentials (`None`: they get 401).
    pub anonymous_role: Option<String>,
    /// The zone of date filters' days and months (`None`: UTC).
    pub time_zone: Option<Tz>,
    pub graphql: GraphqlConfig,
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "[REDACTED]"),
            )
            .field("refresh_interval", &self.refresh_interval)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("log", &self.log)
            .field("query_timeout", &self.query_timeout)
            .field("max_rows", &self.max_rows)
            .field("tls", &self.tls)
            .field("allow_http", &self.allow_http)
            .field("jwt", &self.jwt)
            .field("rate_limit", &self.rate_limit)
            .field("anonymous_role", &self.anonymous_role)
            .field("time_zone", &self.time_zone)
            .field("graphql", &self.graphql)
            .finish()
    }
}

impl ServerConfig {
    pub const DEFAULT_LISTEN: &'static str = "127.0.0.1:8080";
    pub const DEFAULT_DATA_DIR: &'static str = "./tributary-data";
    pub const DEFAULT_REFRESH_INTERVAL_SECS: u64 = 300;
    pub const DEFAULT_MAX_BODY_BYTES: usize = 2 * 1024 * 1024;
    pub const DEFAULT_QUERY_TIMEOUT_SECS: u64 = 60;
    pub const DEFAULT_MAX_ROWS: usize = 100_000;

    /// Merges file < environment < flags (the `overrides` already hold env
    /// below flags), then applies defaults and checks values.
    pub fn resolve(file: FileConfig, overrides: Overrides) -> Result<Self, ConfigError> {
        let listen_text = overrides
            .listen
            .or(file.listen)
            .unwrap_or_else(|| Self::DEFAULT_LISTEN.to_string());
        let listen = listen_text.parse().map_err(|e| ConfigError::Invalid {
            name: "listen",
            message: format!("`{listen_text}` is not an address like 127.0.0.1:8080 ({e})"),
        })?;
        let admin_token = overrides
            .admin_token
            .or(file.admin_token)
            .filter(|t| !t.is_empty());
        if admin_token.as_ref().is_some_and(|token| token.len() < 16) {
            return Err(ConfigError::Invalid {
                name: "admin_token",
                message: "use at least 16 characters".into(),
            });
        }
        let tls = match (
            overrides.tls_cert.or(file.tls_cert),
            overrides.tls_key.or(file.tls_key),
        ) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            (Some(_), None) => return Err(tls_pair_error("tls_key", "tls_cert")),
            (None, Some(_)) => return Err(tls_pair_error("tls_cert", "tls_key")),
        };
        if let Some(jwt) = &file.jwt {
            jwt.validate().map_err(|e| ConfigError::Invalid {
                name: "jwt",
                message: e.to_string(),
            })?;
        }
        if let Some(rate_limit) = &file.rate_limit {
            rate_limit
                .validate()
                .map_err(|message| ConfigError::Invalid {
                    name: "rate_limit",
                    message,
                })?;
        }
        if let Some(role) = &file.anonymous_role
            && (!crate::auth::is_role_name(role) || role == crate::permissions::ADMIN_ROLE)
        {
            return Err(ConfigError::Invalid {
                name: "anonymous_role",
                message: format!("`{role}` cannot be the anonymous role"),
            });
        }
        let time_zone = file
            .time_zone
            .as_deref()
            .map(|name| {
                name.parse::<Tz>().map_err(|e| ConfigError::Invalid {
                    name: "time_zone",
                    message: format!("`{name}` is not a time zone: {e}"),
                })
            })
            .transpose()?;
        let max_rows = file.max_rows.unwrap_or(Self::DEFAULT_MAX_ROWS).max(1);
        let interval = overrides
            .refresh_interval_secs
            .or(file.refresh_interval_secs)
            .unwrap_or(Self::DEFAULT_REFRESH_INTERVAL_SECS);
        Ok(Self {
            listen,
            data_dir: overrides
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from(Self::DEFAULT_DATA_DIR)),
            admin_token,
            refresh_interval: (interval > 0).then(|| Duration::from_secs(interval)),
            max_body_bytes: file.max_body_bytes.unwrap_or(Self::DEFAULT_MAX_BODY_BYTES),
            log: overrides
                .log
                .or(file.log)
                .unwrap_or_else(|| "info".to_string()),
            query_timeout: Duration::from_secs(
                file.query_timeout_secs
                    .unwrap_or(Self::DEFAULT_QUERY_TIMEOUT_SECS)
                    .max(1),
            ),
            max_rows,
            tls,
            allow_http: overrides.allow_http.or(file.allow_http).unwrap_or(false),
            jwt: file.jwt,
            rate_limit: file.rate_limit,
            anonymous_role: file.anonymous_role,
            time_zone,
            graphql: GraphqlConfig::resolve(file.graphql, max_rows),
        })
    }
}

/// One of the certificate and key without the other (`tls_cert` / `tls_key`).
fn tls_pair_error(missing: &'static str, given: &str) -> ConfigError {
    let flag = |key: &str| format!("--{}", key.replace('_', "-"));
    ConfigError::Invalid {
        name: missing,
        message: format!(
            "{} ({given}) is given without {} ({missing}): HTTPS needs both",
            flag(given),
            flag(missing)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_env_override_the_file_and_defaults_fill_the_rest() {
        let file = FileConfig::parse(
            r#"
            listen = "0.0.0.0:9000"
            data_dir = "/var/lib/tributary"
            admin_token = "file-token-0123456789"
            refresh_interval_secs = 60
            "#,
        )
        .unwrap();
        let overrides = Overrides {
            listen: Some("127.0.0.1:7000".into()),
            refresh_interval_secs: Some(0),
            ..Overrides::default()
        };
        let config = ServerConfig::resolve(file, overrides).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:7000");
        assert_eq!(config.data_dir, PathBuf::from("/var/lib/tributary"));
        assert_eq!(config.admin_token.as_deref(), Some("file-token-0123456789"));
        assert_eq!(config.refresh_interval, None);
        assert_eq!(config.max_body_bytes, ServerConfig::DEFAULT_MAX_BODY_BYTES);
        assert!(!format!("{config:?}").contains("file-token"));

        let defaults = ServerConfig::resolve(FileConfig::default(), Overrides::default()).unwrap();
        assert_eq!(defaults.listen.to_string(), ServerConfig::DEFAULT_LISTEN);
        assert_eq!(defaults.admin_token, None);
        assert_eq!(defaults.refresh_interval, Some(Duration::from_secs(300)));
    }

    #[test]
    fn graphql_limits_default_and_stay_within_the_largest_page() {
        let defaults = ServerConfig::resolve(FileConfig::default(), Overrides::default()).unwrap();
        assert_eq!(
            defaults.graphql,
            GraphqlConfig {
                max_depth: 10,
                max_complexity: 1000,
                introspection: true,
                default_limit: 1000,
                max_limit: 1000,
                max_batch: 20,
                live_interval: Duration::from_secs(1),
                live_auth_interval: Duration::from_secs(60),
                cache_max_ttl: Duration::from_secs(300),
                cache_max_bytes: 64 << 20,
            }
        );
        let file = FileConfig::parse(
            "max_rows = 50\n[graphql]\nmax_depth = 3\nintrospection = false\ndefault_limit = 500\nmax_batch = 0\nlive_interval_ms = 10\n",
        )
        .unwrap();
        let config = ServerConfig::resolve(file, Overrides::default()).unwrap();
        assert_eq!(
            (
                config.graphql.max_depth,
                config.graphql.introspection,
                config.graphql.default_limit,
                config.graphql.max_limit,
                config.graphql.max_batch,
                config.graphql.live_interval,
            ),
            (3, false, 50, 50, 1, Duration::from_millis(50))
        );
        assert!(FileConfig::parse("[graphql]\nmax_dept = 3\n").is_err());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let err = FileConfig::parse("listen = \"x\"\nrefresh_intervall = 5\n").unwrap_err();
        assert!(err.contains("refresh_intervall"), "{err}");
        let err = FileConfig::parse("version = 2").unwrap_err();
        assert!(err.contains("version 2"), "{err}");
        let bad_listen = Overrides {
            listen: Some("nowhere".into()),
            ..Overrides::default()
        };
        let err = ServerConfig::resolve(FileConfig::default(), bad_listen).unwrap_err();
        assert!(err.to_string().contains("nowhere"), "{err}");
        let short = Overrides {
            admin_token: Some("short".into()),
            ..Overrides::default()
        };
        assert!(ServerConfig::resolve(FileConfig::default(), short).is_err());
    }

    #[test]
    fn tls_files_and_allow_http_come_from_the_file_or_the_overrides() {
        let file =
            FileConfig::parse("tls_cert = \"/etc/t/cert.pem\"\ntls_key = \"/etc/t/key.pem\"")
                .unwrap();
        let config = ServerConfig::resolve(file, Overrides::default()).unwrap();
        assert_eq!(
            config.tls,
            Some(TlsFiles {
                cert: PathBuf::from("/etc/t/cert.pem"),
                key: PathBuf::from("/etc/t/key.pem"),
            })
        );
        assert!(!config.allow_http);
        let file = FileConfig::parse("allow_http = true").unwrap();
        assert!(
            ServerConfig::resolve(file, Overrides::default())
                .unwrap()
                .allow_http
        );
        let flag = Overrides {
            allow_http: Some(true),
            ..Overrides::default()
        };
        assert!(
            ServerConfig::resolve(FileConfig::default(), flag)
                .unwrap()
                .allow_http
        );
    }

    #[test]
    fn a_certificate_without_its_key_is_an_error() {
        let only_cert = Overrides {
            tls_cert: Some("cert.pem".into()),
            ..Overrides::default()
        };
        let err = ServerConfig::resolve(FileConfig::default(), only_cert)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--tls-key"), "{err}");
        let only_key = FileConfig::parse("tls_key = \"key.pem\"").unwrap();
        let err = ServerConfig::resolve(only_key, Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("--tls-cert"), "{err}");
        // A flag completes the file's half.
        let only_key = FileConfig::parse("tls_key = \"key.pem\"").unwrap();
        let flag_cert = Overrides {
            tls_cert: Some("cert.pem".into()),
            ..Overrides::default()
        };
        assert!(
            ServerConfig::resolve(only_key, flag_cert)
                .unwrap()
                .tls
                .is_some()
        );
    }

    #[test]
    fn jwt_and_rate_limit_tables_are_read_and_checked() {
        let file = FileConfig::parse(
            r#"
            [jwt]
            secret = "a-shared-secret-of-at-least-32-bytes!"
            audience = "tributary"

            [rate_limit]
            requests_per_second = 10.0
            burst = 20
            per = "ip"
            "#,
        )
        .unwrap();
        let config = ServerConfig::resolve(file, Overrides::default()).unwrap();
        assert_eq!(
            config.jwt.as_ref().and_then(|j| j.audience.as_deref()),
            Some("tributary")
        );
        assert_eq!(config.rate_limit.as_ref().map(|r| r.burst), Some(20));
        assert!(!format!("{config:?}").contains("shared-secret"));

        let short = FileConfig::parse("[jwt]\nsecret = \"short\"").unwrap();
        let err = ServerConfig::resolve(short, Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("jwt") && err.contains("`secret`"), "{err}");
        let unknown = FileConfig::parse("[jwt]\nsecret = \"x\"\naudiences = \"y\"").unwrap_err();
        assert!(unknown.contains("audiences"), "{unknown}");
        let no_burst =
            FileConfig::parse("[rate_limit]\nrequests_per_second = 1.0\nburst = 0").unwrap();
        let err = ServerConfig::resolve(no_burst, Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("rate_limit") && err.contains("burst"), "{err}");
    }
}
