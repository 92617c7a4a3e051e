//! The command line as operators use it: the real binary (`serve` with no
//! config file, config errors), and the admin commands against a server.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::TestServer;
use tributary::cli::{ServerArgs, SourcesCommand};
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
    let client = reqwest::Client::new();
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
    assert_eq!(err.to_string(), "404: unknown source `nope`");
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
    for format in ["table", "json", "csv"] {
        client::sql(
            &args,
            "SELECT id, name FROM crm.customers ORDER BY id",
            false,
            format,
        )
        .await
        .unwrap();
    }
    client::sql(
        &args,
        "SELECT name FROM customers WHERE id = 1",
        true,
        "table",
    )
    .await
    .unwrap();
    let err = client::sql(&args, "DROP TABLE crm.main.customers", false, "csv")
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
