//! The command line: `serve`, `demo`, admin commands (`sources`,
//! `catalog`) that talk to a running server's admin API, and `sql`, which
//! asks a running server or runs the query itself over a data directory.

use std::path::PathBuf;

use clap::builder::BoolishValueParser;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{ConfigError, FileConfig, Overrides, ServerConfig};

/// Tributary: one catalog, GraphQL, REST and SQL over many databases.
#[derive(Debug, Parser)]
#[command(name = "tributary", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Run the server with two embedded SQLite demo sources (no database server needed).
    Demo(DemoArgs),
    /// Manage the sources of a running server.
    Sources {
        #[command(flatten)]
        server: ServerArgs,
        #[command(subcommand)]
        command: SourcesCommand,
    },
    /// Run a read-only SQL query and print the result.
    #[command(long_about = SQL_MODES)]
    Sql {
        #[command(flatten)]
        target: SqlTarget,
        /// The query, e.g. "SELECT * FROM crm.customers LIMIT 5".
        query: String,
        /// Print the plan and the SQL each source receives instead of rows.
        #[arg(long, conflicts_with = "analyze")]
        explain: bool,
        /// Run the query and print, instead of rows, each source statement
        /// as sent with its rows and times, then the plan with its metrics.
        #[arg(long)]
        analyze: bool,
        /// How to print the rows.
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
    /// Print the catalog of a running server.
    /// Manage API keys on a running server (create, list, revoke, rotate).
    Keys {
        #[command(flatten)]
        server: ServerArgs,
        #[command(subcommand)]
        command: KeysCommand,
    },
    Catalog {
        #[command(flatten)]
        server: ServerArgs,
        /// Only this source.
        #[arg(long)]
        source: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// `tributary sql --help`: which mode runs (kept in step with README.md).
const SQL_MODES: &str = "Run a read-only SQL query and print the result.

Where the query runs:
  --server URL (or TRIBUTARY_SERVER)
      on that running server (POST /api/sql), with --token (or TRIBUTARY_ADMIN_TOKEN)
  --config FILE (or TRIBUTARY_CONFIG), --data-dir DIR (or TRIBUTARY_DATA_DIR)
      here, without a server: the data directory (--data-dir, else the file's
      data_dir) is opened read-only and the query runs as POST /api/sql runs it,
      with the file's query_timeout_secs and max_rows
  neither
      on the server at http://127.0.0.1:8080
A server together with a config or data directory is an error.";

/// What `tributary sql` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlAnswer {
    /// The rows, in the `--format` asked for.
    Rows,
    /// The plan and the SQL each source receives (`--explain`).
    Explain,
    /// What each source statement of a run did, and the plan with its
    /// metrics (`--analyze`).
    Analyze,
}

impl SqlAnswer {
    pub fn of(explain: bool, analyze: bool) -> Self {
        match (explain, analyze) {
            (_, true) => Self::Analyze,
            (true, false) => Self::Explain,
            (false, false) => Self::Rows,
        }
    }

    /// The fields of the SQL endpoint's request that ask for it.
    pub fn request_flags(self) -> (bool, bool) {
        (self == Self::Explain, self == Self::Analyze)
    }
}

/// Output of `tributary sql`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// An aligned text table with a row count.
    Table,
    /// The SQL endpoint's JSON answer: columns, rows, truncated (with
    /// `--explain` or `--analyze`, the endpoint's JSON of those).
    Json,
    /// A header line, then one line per row.
    Csv,
}

/// Where `tributary sql` runs its query (the rule: [`SqlTarget::mode`]).
#[derive(Debug, Args)]
pub struct SqlTarget {
    /// Ask this running server [default without --config/--data-dir: http://127.0.0.1:8080].
    #[arg(long, env = "TRIBUTARY_SERVER")]
    pub server: Option<String>,
    /// The admin token (HTTP mode).
    #[arg(long, env = "TRIBUTARY_ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Run the query here, over the data directory of this `serve` config file.
    #[arg(long, env = "TRIBUTARY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Run the query here, over this data directory (overrides the config's).
    #[arg(long, env = "TRIBUTARY_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

/// Which way `tributary sql` goes.
#[derive(Debug)]
pub enum SqlMode {
    /// Over HTTP; `defaulted` when no server was named (an unreachable
    /// default deserves a hint about the local mode).
    Server { args: ServerArgs, defaulted: bool },
    /// In this process, over the data directory this configuration names.
    Local(ServeArgs),
}

/// `tributary sql` was told to go two ways at once.
#[derive(Debug, thiserror::Error)]
#[error(
    "both a server (--server or TRIBUTARY_SERVER) and a config or data directory \
     (--config, --data-dir, TRIBUTARY_CONFIG or TRIBUTARY_DATA_DIR) are set: \
     give only the server to ask it, or only the config/data directory to run the query here"
)]
pub struct AmbiguousSqlTarget;

impl SqlTarget {
    /// The rule: a server URL means HTTP; a config file or data directory
    /// means here; both is an error; neither asks the default server.
    pub fn mode(self) -> Result<SqlMode, AmbiguousSqlTarget> {
        let local = self.config.is_some() || self.data_dir.is_some();
        match (self.server, local) {
            (Some(_), true) => Err(AmbiguousSqlTarget),
            (Some(server), false) => Ok(SqlMode::Server {
                args: ServerArgs {
                    server,
                    token: self.token,
                },
                defaulted: false,
            }),
            (None, false) => Ok(SqlMode::Server {
                args: ServerArgs {
                    server: DEFAULT_SERVER.to_string(),
                    token: self.token,
                },
                defaulted: true,
            }),
            (None, true) => Ok(SqlMode::Local(ServeArgs {
                config: self.config,
                data_dir: self.data_dir,
                ..ServeArgs::default()
            })),
        }
    }
}

/// The server the admin commands ask when none is named.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

/// Flags of `serve` (each also read from a `TRIBUTARY_*` variable).
#[derive(Debug, Args, Clone, Default)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "TRIBUTARY_LISTEN")]
    pub listen: Option<String>,
    /// Directory for the metadata store and the cached catalog [default: ./tributary-data].
    #[arg(long, env = "TRIBUTARY_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// TOML configuration file (optional).
    #[arg(long, env = "TRIBUTARY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Bootstrap admin token (at least 16 characters); without it admin routes answer 401.
    #[arg(long, env = "TRIBUTARY_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Seconds between drift checks of every source; 0 turns them off [default: 300].
    #[arg(long, env = "TRIBUTARY_REFRESH_INTERVAL_SECS")]
    pub refresh_interval_secs: Option<u64>,
    /// Log filter, e.g. `info` or `tributary=debug` [default: info].
    #[arg(long, env = "TRIBUTARY_LOG")]
    pub log: Option<String>,
    /// PEM certificate chain to serve HTTPS with (with --tls-key).
    #[arg(long, env = "TRIBUTARY_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "TRIBUTARY_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP on an address other than loopback (e.g. behind a proxy that terminates TLS).
    #[arg(long, env = "TRIBUTARY_ALLOW_HTTP", value_parser = BoolishValueParser::new())]
    pub allow_http: bool,
}

impl ServeArgs {
    /// The server configuration: the file (if any) < environment < flags.
    pub fn resolve(&self) -> Result<ServerConfig, ConfigError> {
        let file = match &self.config {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        ServerConfig::resolve(
            file,
            Overrides {
                listen: self.listen.clone(),
                data_dir: self.data_dir.clone(),
                admin_token: self.admin_token.clone(),
                refresh_interval_secs: self.refresh_interval_secs,
                log: self.log.clone(),
                tls_cert: self.tls_cert.clone(),
                tls_key: self.tls_key.clone(),
                // A flag cannot tell "false" from "not given": only `true` overrides the file.
                allow_http: self.allow_http.then_some(true),
            },
        )
    }
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Address to listen on.
    #[arg(long, env = "TRIBUTARY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Directory for the demo's databases and data; emptied on every start.
    #[arg(long, default_value = "./tributary-demo")]
    pub data_dir: PathBuf,
    /// Serve plain HTTP on an address other than loopback.
    #[arg(long, env = "TRIBUTARY_ALLOW_HTTP", value_parser = BoolishValueParser::new())]
    pub allow_http: bool,
}

/// Where the admin commands find the server.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Base URL of the running server.
    #[arg(
        long,
        global = true,
        env = "TRIBUTARY_SERVER",
        default_value = DEFAULT_SERVER
    )]
    pub server: String,
    /// The admin token.
    #[arg(
        long,
        global = true,
        env = "TRIBUTARY_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key; its secret is printed this once.
    Create {
        /// What the key is for (shown in lists).
        name: String,
        /// The role its requests run with.
        #[arg(long)]
        role: String,
        /// The user id permission filters see as {{$user.id}}.
        #[arg(long)]
        user_id: Option<String>,
        /// Seconds until the key stops working.
        #[arg(long)]
        expires_in_secs: Option<u64>,
    },
    /// List keys (ids, names, roles, prefixes; never secrets).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key: its next request gets 401.
    Revoke { id: String },
    /// Replace a key by a new one; the old one works `--grace-secs` more.
    Rotate {
        id: String,
        #[arg(long, default_value_t = 0)]
        grace_secs: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum SourcesCommand {
    /// Register a source from a URL (postgres://, mysql://, mariadb://, sqlite://).
    Add {
        name: String,
        url: String,
        /// Schemas to introspect (glob; repeatable). Default: all non-system schemas.
        #[arg(long = "include")]
        include: Vec<String>,
        /// Schemas to leave out (glob; repeatable).
        #[arg(long = "exclude")]
        exclude: Vec<String>,
        /// Read the password from this environment variable of the server at connect time.
        #[arg(long)]
        password_env: Option<String>,
    },
    /// List the registered sources.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Check that a source answers.
    Test { name: String },
    /// Introspect a source again and print what changed.
    Refresh {
        name: String,
        /// Only when the cheap drift check sees a change.
        #[arg(long)]
        drift: bool,
    },
    /// Remove a source.
    Remove { name: String },
}
