//! The command line as operators use it: the real binary (`serve` with no
//! config file, config errors, `sql` over a config without a server), and
//! the admin commands against a server.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{TcpProxy, TestServer};
use serde_json::{Value, json};
use tributary::cli::{OutputFormat, ServerArgs, SourcesCommand, SqlAnswer};
use tributary::client;

/// `tributary sources add NAME sqlite://FILE`.
fn add_sqlite(name: &str, file: &std::path::Path) -> SourcesCommand {
    SourcesCommand::Add {
        name: name.into(),
        url: format!("sqlite://{}", file.display()),
        include: vec![],
        exclude: vec![],
        password_env: None,
    }
}

fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tributary"))
}

/// What a run of the binary printed.
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// `tributary sql ARGS…` with no `TRIBUTARY_*` variable from the
/// environment; awaited without blocking, so an in-process server answers.
async fn sql(args: &[&str]) -> Run {
    let mut command = tokio::process::Command::from(binary());
    command.arg("sql").args(args);
    for var in [
        "TRIBUTARY_SERVER",
        "TRIBUTARY_CONFIG",
        "TRIBUTARY_DATA_DIR",
        "TRIBUTARY_ADMIN_TOKEN",
        "TRIBUTARY_LOG",
    ] {
        command.env_remove(var);
    }
    let output = command.output().await.unwrap();
    Run {
        ok: output.status.success(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

impl Run {
    /// Asserts a failure whose message holds every word, with nothing on stdout.
    fn fails_with(&self, words: &[&str]) {
        assert!(!self.ok, "succeeded: {}", self.stdout);
        assert!(self.stdout.is_empty(), "{}", self.stdout);
        for word in words {
            assert!(
                self.stderr.contains(word),
                "`{word}` not in {}",
                self.stderr
            );
        }
    }

    fn stdout(&self) -> &str {
        assert!(self.ok, "failed: {}", self.stderr);
        &self.stdout
    }
}

/// A data directory as a stopped server left it: `crm` (SQLite customers),
/// `pg` (a PostgreSQL schema with orders) and `down` (the same schema
/// reached through a proxy that is cut once the server has stopped). Returns
/// the data directory, a config file naming it, and the PostgreSQL schema.
async fn stopped_server_data(
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf, String) {
    let crm = common::sqlite_file(
        dir,
        "crm.db",
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT);
         INSERT INTO customers VALUES (1, 'Ann'), (2, NULL), (3, 'Zoë');",
    );
    let schema = common::postgres_schema(
        "CREATE TABLE orders (id int PRIMARY KEY, customer_id int, total numeric(10,2));
         INSERT INTO orders VALUES (10, 1, 5.50), (11, 1, 7.25), (12, 3, 1.00);",
    )
    .await;
    let data = dir.join("data");
    let server = TestServer::start(&data).await;
    let proxy = TcpProxy::start(common::postgres_addr()).await;
    server
        .register(json!({"name": "crm", "url": format!("sqlite://{}", crm.display())}))
        .await;
    for (name, url) in [
        ("pg", common::postgres_url_with(None, None)),
        ("down", common::postgres_url_with(Some(proxy.addr), None)),
    ] {
        server
            .register(json!({"name": name, "url": url, "schemas": {"include": [schema]}}))
            .await;
    }
    server.stop().await;
    proxy.cut().await;
    let config = dir.join("tributary.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\nquery_timeout_secs = 30\nmax_rows = 1000\n",
            data.display().to_string()
        ),
    )
    .unwrap();
    (data, config, schema)
}

#[tokio::test]
async fn serve_runs_without_a_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let mut child = binary()
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .env("TRIBUTARY_ADMIN_TOKEN", common::TOKEN)
        .env_remove("TRIBUTARY_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = common::http_client();
    let mut healthy = false;
    for _ in 0..100 {
        if let Ok(response) = client
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
        {
            healthy = response.status().is_success();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sources = client
        .get(format!("http://127.0.0.1:{port}/admin/sources"))
        .bearer_auth(common::TOKEN)
        .send()
        .await
        .map(|r| r.status().as_u16());
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(healthy, "the server answered /healthz");
    assert_eq!(
        sources.unwrap(),
        200,
        "the token from TRIBUTARY_ADMIN_TOKEN is used"
    );
    assert!(dir.path().join("data").join("tributary.db").exists());
}

#[test]
fn config_errors_name_the_key_and_fail() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tributary.toml");
    std::fs::write(&config, "listen = \"127.0.0.1:0\"\nadmin_tokn = \"x\"\n").unwrap();
    let output = binary()
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("admin_tokn"), "{stderr}");
    assert!(stderr.contains("tributary.toml"), "{stderr}");
}

#[tokio::test]
async fn sources_and_catalog_commands_drive_the_admin_api() {
    let dir = tempfile::tempdir().unwrap();
    let file = common::sqlite_file(
        dir.path(),
        "crm.db",
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT);",
    );
    let server = TestServer::start(&dir.path().join("data")).await;
    let args = ServerArgs {
        server: server.base.clone(),
        token: Some(common::TOKEN.into()),
    };
    client::sources(&args, add_sqlite("crm", &file))
        .await
        .unwrap();
    client::sources(&args, SourcesCommand::List { json: false })
        .await
        .unwrap();
    client::sources(&args, SourcesCommand::Test { name: "crm".into() })
        .await
        .unwrap();
    client::sources(
        &args,
        SourcesCommand::Refresh {
            name: "crm".into(),
            drift: true,
        },
    )
    .await
    .unwrap();
    client::catalog(&args, Some("crm"), false).await.unwrap();

    let (_, catalog) = server
        .admin(reqwest::Method::GET, "/admin/catalog", None)
        .await;
    let table = client::catalog_table(&catalog);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    assert!(lines[1].starts_with("crm.main.customers"), "{table}");
    assert!(
        lines[1].contains("crm_customers") && lines[1].contains("table"),
        "{table}"
    );

    let err = client::sources(
        &args,
        SourcesCommand::Test {
            name: "nope".into(),
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.to_string(), "404 not_found: unknown source `nope`");
    let unauthorized = ServerArgs {
        server: server.base.clone(),
        token: None,
    };
    let err = client::catalog(&unauthorized, None, true)
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with("401"), "{err}");
    client::sources(&args, SourcesCommand::Remove { name: "crm".into() })
        .await
        .unwrap();
    let (_, list) = server
        .admin(reqwest::Method::GET, "/admin/sources", None)
        .await;
    assert_eq!(list, serde_json::json!([]));

    // A ping's advice is printed a line each: a pool of 1,000 connections
    // is more than the test server's max_connections allows.
    let url = common::postgres_url_with(None, None);
    server
        .register(serde_json::json!({"name": "pg", "url": url, "pool": {"max_size": 1000}}))
        .await;
    let (status, ping) = server
        .admin(reqwest::Method::POST, "/admin/sources/pg/test", None)
        .await;
    assert_eq!(status, 200, "{ping}");
    let report = client::ping_report("pg", &ping);
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(lines.len(), 2, "{report}");
    assert!(lines[0].starts_with("`pg` answers: "), "{report}");
    assert!(
        lines[1].starts_with("advice: pool.max_size is 1000, but PostgreSQL's max_connections"),
        "{report}"
    );
    server.stop().await;
}

#[tokio::test]
async fn sql_command_prints_rows_and_plans() {
    let dir = tempfile::tempdir().unwrap();
    let file = common::sqlite_file(
        dir.path(),
        "crm.db",
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO customers VALUES (1, 'Ann'), (2, NULL);",
    );
    let server = TestServer::start(&dir.path().join("data")).await;
    let args = ServerArgs {
        server: server.base.clone(),
        token: Some(common::TOKEN.into()),
    };
    client::sources(&args, add_sqlite("crm", &file))
        .await
        .unwrap();
    for format in [OutputFormat::Table, OutputFormat::Json, OutputFormat::Csv] {
        client::sql(
            &args,
            "SELECT id, name FROM crm.customers ORDER BY id",
            SqlAnswer::Rows,
            format,
        )
        .await
        .unwrap();
    }
    for asked in [SqlAnswer::Explain, SqlAnswer::Analyze] {
        client::sql(
            &args,
            "SELECT name FROM customers WHERE id = 1",
            asked,
            OutputFormat::Table,
        )
        .await
        .unwrap();
    }
    let err = client::sql(
        &args,
        "DROP TABLE crm.main.customers",
        SqlAnswer::Rows,
        OutputFormat::Csv,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().starts_with("400"), "{err}");

    let (_, answer) = server
        .admin(
            reqwest::Method::POST,
            "/api/sql",
            Some(serde_json::json!({"sql": "SELECT id, name FROM crm.customers ORDER BY id"})),
        )
        .await;
    assert_eq!(
        client::rows_table(&answer),
        "id | name\n---+-----\n1  | Ann\n2  | NULL\n(2 rows)\n"
    );
    server.stop().await;
}

#[tokio::test]
async fn sql_runs_over_a_config_without_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let (data, config, schema) = stopped_server_data(dir.path()).await;
    let config = config.to_str().unwrap();
    let catalog_file = data.join("catalog.json");
    let catalog_before = std::fs::read(&catalog_file).unwrap();
    let modified_before = std::fs::metadata(&catalog_file)
        .unwrap()
        .modified()
        .unwrap();

    // A join across SQLite and PostgreSQL, federated as a server would.
    let join = "SELECT c.name, sum(o.total) AS total FROM crm.customers c \
                JOIN pg.orders o ON o.customer_id = c.id GROUP BY c.name ORDER BY c.name";
    assert_eq!(
        sql(&["--config", config, join]).await.stdout(),
        "name | total\n-----+------\nAnn  | 12.75\nZoë  | 1.00\n(2 rows)\n"
    );
    let customers = "SELECT id, name FROM crm.customers ORDER BY id";
    assert_eq!(
        sql(&["--config", config, "--format", "csv", customers])
            .await
            .stdout(),
        "id,name\n1,Ann\n2,\n3,Zoë\n"
    );
    let answer: Value = serde_json::from_str(
        sql(&["--config", config, "--format", "json", customers])
            .await
            .stdout(),
    )
    .unwrap();
    assert_eq!(answer["rows"], json!([[1, "Ann"], [2, null], [3, "Zoë"]]));
    assert_eq!(answer["truncated"], json!(false));
    // --data-dir alone is enough, and wins over the config's data_dir.
    let elsewhere = dir.path().join("elsewhere.toml");
    std::fs::write(&elsewhere, "data_dir = \"/nonexistent\"\n").unwrap();
    assert_eq!(
        sql(&[
            "--config",
            elsewhere.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
            "--format",
            "csv",
            customers
        ])
        .await
        .stdout(),
        "id,name\n1,Ann\n2,\n3,Zoë\n"
    );

    let explain = sql(&["--config", config, "--explain", join]).await;
    let plan = explain.stdout();
    assert!(plan.contains("-- crm\nSELECT"), "{plan}");
    assert!(
        plan.contains("-- pg\nSELECT") && plan.contains(&format!("\"{schema}\".\"orders\"")),
        "{plan}"
    );
    assert!(plan.contains("HashJoinExec"), "{plan}");

    // --analyze runs it: each statement as sent, with its rows and times.
    let analyzed = sql(&["--config", config, "--analyze", join]).await;
    let analysis = analyzed.stdout();
    assert!(analysis.contains("-- crm: 3 rows; sent "), "{analysis}");
    assert!(
        analysis.contains("-- pg: ") && analysis.contains("tributary_runtime"),
        "the join's keys narrowed PostgreSQL's statement: {analysis}"
    );
    assert!(analysis.contains("\n-- 2 rows in "), "{analysis}");
    assert!(analysis.contains("output_rows=2"), "{analysis}");
    let json = sql(&["--config", config, "--analyze", "--format", "json", join]).await;
    let json: Value = serde_json::from_str(json.stdout()).unwrap();
    assert_eq!(json["rows"], 2, "{json}");
    assert_eq!(json["sources"].as_array().map(Vec::len), Some(2), "{json}");
    sql(&["--config", config, "--explain", "--analyze", join])
        .await
        .fails_with(&["--explain", "--analyze"]);

    // The config's row cap applies as it does on the endpoint.
    let capped = dir.path().join("capped.toml");
    std::fs::write(
        &capped,
        format!(
            "data_dir = {:?}\nmax_rows = 2\n",
            data.display().to_string()
        ),
    )
    .unwrap();
    assert!(
        sql(&["--config", capped.to_str().unwrap(), customers])
            .await
            .stdout()
            .ends_with("2  | NULL\n(2 rows, truncated)\n")
    );

    // Read-only: the cached catalog a server owns is left as it was.
    assert_eq!(std::fs::read(&catalog_file).unwrap(), catalog_before);
    assert_eq!(
        std::fs::metadata(&catalog_file)
            .unwrap()
            .modified()
            .unwrap(),
        modified_before
    );
    common::drop_postgres_schema(&schema).await;
}

#[tokio::test]
async fn sql_over_a_config_names_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let (data, config, schema) = stopped_server_data(dir.path()).await;
    let config = config.to_str().unwrap();

    sql(&["--config", config, "SELEC 1"]).await.fails_with(&[
        "error: syntax_error:",
        "SELEC",
        "Line: 1, Column: 1",
    ]);
    sql(&["--config", config, "SELECT * FROM crm.nope"])
        .await
        .fails_with(&["error: invalid_query:", "crm.nope", "not found"]);
    for statement in [
        "DELETE FROM crm.customers",
        "INSERT INTO pg.orders VALUES (13, 2, 9.99)",
        "CREATE TABLE crm.main.t (x int)",
    ] {
        sql(&["--config", config, statement])
            .await
            .fails_with(&["error: read_only:", "only queries"]);
    }
    let count =
        "SELECT (SELECT count(*) FROM crm.customers) + (SELECT count(*) FROM pg.orders) AS n";
    assert!(
        sql(&["--config", config, count])
            .await
            .stdout()
            .contains("\n6\n")
    );
    // A source that is down is named; the others still answer.
    sql(&["--config", config, "SELECT * FROM down.orders"])
        .await
        .fails_with(&["error: source_unavailable:", "down"]);

    // The mode rule's errors.
    sql(&[
        "--config",
        config,
        "--server",
        "http://127.0.0.1:9",
        "SELECT 1",
    ])
    .await
    .fails_with(&["both a server", "--config"]);
    let empty = dir.path().join("empty");
    sql(&["--data-dir", empty.to_str().unwrap(), "SELECT 1"])
        .await
        .fails_with(&["is not a Tributary data directory", "empty"]);
    assert!(!empty.exists(), "a mistyped data directory is not created");
    sql(&[
        "--config",
        dir.path().join("missing.toml").to_str().unwrap(),
        "SELECT 1",
    ])
    .await
    .fails_with(&["cannot read config file", "missing.toml"]);
    assert!(data.join("tributary.db").exists());
    common::drop_postgres_schema(&schema).await;
}

#[tokio::test]
async fn sql_prints_the_same_from_a_server_and_from_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let file = common::sqlite_file(
        dir.path(),
        "crm.db",
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT);
         INSERT INTO customers VALUES (1, 'Ann'), (2, NULL);",
    );
    let data = dir.path().join("data");
    let server = TestServer::start(&data).await;
    server
        .register(json!({"name": "crm", "url": format!("sqlite://{}", file.display())}))
        .await;
    let query = "SELECT id, name FROM crm.customers ORDER BY id";
    let mut over_http = Vec::new();
    for format in ["table", "json", "csv"] {
        let run = sql(&[
            "--server",
            &server.base,
            "--token",
            common::TOKEN,
            "--format",
            format,
            query,
        ])
        .await;
        over_http.push(run.stdout().to_string());
    }
    sql(&["--server", &server.base, query])
        .await
        .fails_with(&["401"]);
    server.stop().await;
    for (format, expected) in ["table", "json", "csv"].into_iter().zip(&over_http) {
        let run = sql(&[
            "--data-dir",
            data.to_str().unwrap(),
            "--format",
            format,
            query,
        ])
        .await;
        assert_eq!(run.stdout(), expected, "{format}");
    }
    assert_eq!(
        over_http[0],
        "id | name\n---+-----\n1  | Ann\n2  | NULL\n(2 rows)\n"
    );
}

#[tokio::test]
async fn keys_commands_create_list_rotate_and_revoke() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("data")).await;
    let run = |args: Vec<String>| {
        let mut command = tokio::process::Command::from(binary());
        command
            .arg("keys")
            .args(["--server", server.base.as_str(), "--token", common::TOKEN])
            .args(args)
            .env_remove("TRIBUTARY_SERVER")
            .env_remove("TRIBUTARY_ADMIN_TOKEN");
        async move {
            let output = command.output().await.unwrap();
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            String::from_utf8(output.stdout).unwrap()
        }
    };
    let created = run(vec![
        "create".into(),
        "ci".into(),
        "--role".into(),
        "reader".into(),
    ])
    .await;
    let secret = created
        .split_whitespace()
        .find(|w| w.starts_with("trb_"))
        .expect("the secret is printed")
        .to_string();
    let id = created.split('`').nth(1).unwrap().to_string();
    let listed = run(vec!["list".into()]).await;
    assert!(
        listed.contains(&id) && listed.contains("reader"),
        "{listed}"
    );
    assert!(!listed.contains(&secret), "{listed}");
    let rotated = run(vec!["rotate".into(), id.clone()]).await;
    assert!(rotated.contains("trb_"), "{rotated}");
    let (status, _) = server
        .call(
            reqwest::Method::POST,
            "/api/sql",
            Some(serde_json::json!({"sql": "SELECT 1"})),
            Some(&secret),
        )
        .await;
    assert_eq!(status, 401, "rotated without grace");
    let new_id = rotated.split('`').nth(1).unwrap().to_string();
    let revoked = run(vec!["revoke".into(), new_id.clone()]).await;
    assert!(revoked.contains(&new_id), "{revoked}");
    let listed = run(vec!["list".into()]).await;
    assert!(listed.contains("revoked"), "{listed}");
    server.stop().await;
}

/// `sources list` shows each source's connections in use of its pool's
/// most and the requests waiting; `-` where the server says nothing.
#[test]
fn sources_list_shows_connections_in_use_and_waiting() {
    let sources = json!([
        {"name": "pg", "kind": "postgres", "status": {"state": "ready"}, "tables": 8,
         "server_version": "15.20", "pool": {"max_size": 16, "waiting": 5, "callers": [
            {"caller": "key:a", "in_use": 12, "waiting": 5},
            {"caller": "role:analyst", "in_use": 4, "waiting": 0}]}},
        {"name": "old", "kind": "sqlite", "tables": 1},
    ]);
    let table = client::sources_table(&sources);
    let lines: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines,
        [
            vec![
                "NAME", "KIND", "STATUS", "TABLES", "IN", "USE", "WAITING", "VERSION"
            ],
            vec!["pg", "postgres", "ready", "8", "16/16", "5", "15.20"],
            vec!["old", "sqlite", "-", "1", "-", "-", "-"],
        ],
        "{table}"
    );
}

/// `--analyze` says a statement's wait for a pooled connection when it
/// waited a millisecond or more, and nothing of a wait too short to matter.
#[test]
fn analyze_prints_a_wait_for_a_connection_worth_saying() {
    let run = |source: &str, wait: f64| {
        json!({"source": source, "sql": "SELECT 1", "rows": 1, "sent_at": 0.0,
               "first_row_at": 0.5, "ended_at": 0.5, "connection_wait": wait})
    };
    let answer = json!({"plan": "", "rows": 1, "seconds": 0.5,
                        "sources": [run("pg", 0.42), run("my", 0.0001)]});
    let text = client::sql_answer(&answer, SqlAnswer::Analyze, OutputFormat::Table);
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("-- ")).collect();
    assert_eq!(
        lines[0],
        "-- pg: 1 rows; sent 0.000 s, first row 0.500 s, ended 0.500 s (waited 0.420 s for a connection)",
        "{text}"
    );
    assert_eq!(
        lines[1], "-- my: 1 rows; sent 0.000 s, first row 0.500 s, ended 0.500 s",
        "{text}"
    );
}
