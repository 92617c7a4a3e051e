//! The `tributary` binary: parses the command line and runs the command.

#![allow(clippy::print_stdout, clippy::print_stderr)] // the CLI talks to its user

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use tributary::app::{Application, shutdown_signal};
use tributary::cli::{
    Cli, Command, DemoArgs, OutputFormat, ServeArgs, SqlAnswer, SqlMode, SqlTarget,
};
use tributary::client::{self, ClientError};
use tributary::{demo, local_sql};

/// The process allocator. Under concurrent load glibc malloc spent ~15 % of
/// the CPU in its arena locks (perf on REST reads by key); mimalloc's
/// per-thread heaps roughly doubled those requests per second.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Stack size of the runtime's threads: DataFusion plans deep queries recursively.
const THREAD_STACK_BYTES: usize = 16 * 1024 * 1024;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // reqwest (the admin commands, JWKS fetches) uses this process-wide
    // rustls provider and has none of its own.
    tributary_connector::tls::install_crypto_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(THREAD_STACK_BYTES)
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Demo(args) => run_demo(args).await,
        Command::Sources { server, command } => client::sources(&server, command)
            .await
            .map_err(|e| e.to_string()),
        Command::Sql {
            target,
            query,
            explain,
            analyze,
            format,
        } => sql(target, &query, SqlAnswer::of(explain, analyze), format).await,
        Command::Keys { server, command } => client::keys(&server, command)
            .await
            .map_err(|e| e.to_string()),
        Command::Catalog {
            server,
            source,
            json,
        } => client::catalog(&server, source.as_deref(), json)
            .await
            .map_err(|e| e.to_string()),
    }
}

/// `tributary sql`: on a server or here, by [`SqlTarget::mode`].
async fn sql(
    target: SqlTarget,
    query: &str,
    answer: SqlAnswer,
    format: OutputFormat,
) -> Result<(), String> {
    match target.mode().map_err(|e| e.to_string())? {
        SqlMode::Server { args, defaulted } => client::sql(&args, query, answer, format)
            .await
            .map_err(|e| match e {
                ClientError::Unreachable { .. } if defaulted => format!(
                    "{e}\n(no --server, --config or --data-dir given: start a server there, \
                     name one with --server, or run the query without one with --config FILE \
                     or --data-dir DIR)"
                ),
                other => other.to_string(),
            }),
        SqlMode::Local(config) => {
            // Quiet unless asked: the output is the result, warnings aside.
            init_logging(&std::env::var("TRIBUTARY_LOG").unwrap_or_else(|_| "warn".into()));
            local_sql::run(&config, query, answer, format)
                .await
                .map_err(|e| e.to_string())
        }
    }
}

fn init_logging(filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    let config = args.resolve().map_err(|e| e.to_string())?;
    init_logging(&config.log);
    if config.admin_token.is_none() {
        tracing::warn!(
            "no admin token configured: admin routes answer 401 (set TRIBUTARY_ADMIN_TOKEN)"
        );
    }
    let app = Application::build(config)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(
        addr = %app.local_addr(),
        https = app.state().config.tls.is_some(),
        "listening"
    );
    app.run(shutdown_signal()).await.map_err(|e| e.to_string())
}

async fn run_demo(args: DemoArgs) -> Result<(), String> {
    match std::fs::remove_dir_all(&args.data_dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot empty {}: {e}", args.data_dir.display())),
    }
    let token = ServeArgs::default()
        .resolve()
        .ok()
        .and_then(|c| c.admin_token)
        .unwrap_or_else(random_token);
    let serve = ServeArgs {
        listen: Some(args.listen.clone()),
        data_dir: Some(args.data_dir.join("data")),
        admin_token: Some(token.clone()),
        allow_http: args.allow_http,
        ..ServeArgs::default()
    };
    let config = serve.resolve().map_err(|e| e.to_string())?;
    init_logging(&config.log);
    let app = Application::build(config)
        .await
        .map_err(|e| e.to_string())?;
    demo::register(&app, &args.data_dir.join("databases"))
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "{}",
        demo::banner(&format!("http://{}", app.local_addr()), &token)
    );
    app.run(shutdown_signal()).await.map_err(|e| e.to_string())
}

fn random_token() -> String {
    use rand::Rng;
    let bytes: [u8; 24] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
