//! The command line: `serve`, `demo`, and admin commands (`sources`,
//! `catalog`) that talk to a running server's admin API.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

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
    /// Run a read-only SQL query on a running server and print the result.
    Sql {
        #[command(flatten)]
        server: ServerArgs,
        /// The query, e.g. "SELECT * FROM crm.customers LIMIT 5".
        query: String,
        /// Print the plan and the SQL each source receives instead of rows.
        #[arg(long)]
        explain: bool,
        /// Output: table, json or csv.
        #[arg(long, default_value = "table")]
        format: String,
    },
    /// Print the catalog of a running server.
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
}

/// Where the admin commands find the server.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Base URL of the running server.
    #[arg(
        long,
        global = true,
        env = "TRIBUTARY_SERVER",
        default_value = "http://127.0.0.1:8080"
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
