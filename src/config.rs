//! Server configuration: a TOML file (typed, unknown keys rejected),
//! overridden by `TRIBUTARY_*` environment variables, overridden by flags —
//! merged in one place, [`ServerConfig::resolve`].

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

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
            max_rows: file.max_rows.unwrap_or(Self::DEFAULT_MAX_ROWS).max(1),
        })
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
}
