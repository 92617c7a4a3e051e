//! The schema cache against real databases: refresh diffs after ALTER TABLE,
//! cheap drift detection (on demand and on the interval), and a restart with
//! a source that is down, served from the cached catalog.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use std::time::Duration;

use common::{TestServer, assert_error};
use reqwest::Method;
use serde_json::{Value, json};

async fn columns(server: &TestServer, source: &str, schema: &str, table: &str) -> Vec<String> {
    let (_, catalog) = server
        .admin(
            Method::GET,
            &format!("/admin/catalog?source={source}"),
            None,
        )
        .await;
    catalog["sources"][source]["schema"]["schemas"][schema]["tables"][table]["columns"]
        .as_array()
        .map(|cols| {
            cols.iter()
                .map(|c| c["name"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Drift check, then a second one that must see nothing.
async fn assert_drift_then_quiet(server: &TestServer, source: &str, expected_diff: &Value) {
    let (status, body) = server
        .admin(
            Method::POST,
            &format!("/admin/sources/{source}/refresh?mode=drift"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["changed"], true, "{body}");
    assert_eq!(&body["diff"], expected_diff);
    let (_, again) = server
        .admin(
            Method::POST,
            &format!("/admin/sources/{source}/refresh?mode=drift"),
            None,
        )
        .await;
    assert_eq!(again["changed"], false, "{again}");
    assert_eq!(again["diff"], Value::Null, "no introspection ran: {again}");
}

#[tokio::test]
async fn postgres_alter_table_is_detected_and_diffed() {
    let schema = common::postgres_schema(
        "CREATE TABLE a (id int PRIMARY KEY, x text); CREATE TABLE b (id int PRIMARY KEY, y text);",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    server.register(json!({"name": "pg", "url": common::postgres_url_with(None, None), "schemas": {"include": [schema]}})).await;
    let (_, unchanged) = server
        .admin(Method::POST, "/admin/sources/pg/refresh?mode=drift", None)
        .await;
    assert_eq!(unchanged["changed"], false, "{unchanged}");

    common::postgres_exec(&format!(
        "ALTER TABLE {schema}.a ADD COLUMN z numeric(12,2) NOT NULL DEFAULT 0;
         ALTER TABLE {schema}.a ALTER COLUMN x SET NOT NULL;
         CREATE TABLE {schema}.c (id int);"
    ))
    .await;
    let expected = json!({
        "source": "pg",
        "tables_added": [format!("{schema}.c")],
        "tables_removed": [],
        "tables_changed": [{
            "table": format!("{schema}.a"),
            "columns_added": ["z"],
            "columns_removed": [],
            "columns_changed": [{"column": "x", "changes": ["nullable: true → false"]}],
            "other_changes": [],
        }],
    });
    assert_drift_then_quiet(&server, "pg", &expected).await;
    assert_eq!(
        columns(&server, "pg", &schema, "a").await,
        vec!["id", "x", "z"]
    );

    // A full refresh after dropping a table reports it removed.
    common::postgres_exec(&format!("DROP TABLE {schema}.b")).await;
    let (_, full) = server
        .admin(Method::POST, "/admin/sources/pg/refresh", None)
        .await;
    assert_eq!(
        full["diff"]["tables_removed"],
        json!([format!("{schema}.b")]),
        "{full}"
    );
    server.stop().await;
    common::drop_postgres_schema(&schema).await;
}

#[tokio::test]
async fn mariadb_alter_table_is_detected_and_diffed() {
    let database = common::mariadb_database(
        "CREATE TABLE a (id INT PRIMARY KEY, x VARCHAR(20)); CREATE TABLE b (id INT PRIMARY KEY);",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    server
        .register(json!({"name": "my", "url": common::mariadb_url_with_database(&database)}))
        .await;
    common::mariadb_exec(&format!(
        "ALTER TABLE {database}.a ADD COLUMN z INT UNSIGNED NULL, DROP COLUMN x; CREATE INDEX b_id ON {database}.b (id);"
    ))
    .await;
    let (status, body) = server
        .admin(Method::POST, "/admin/sources/my/refresh?mode=drift", None)
        .await;
    assert_eq!((status, &body["changed"]), (200, &json!(true)), "{body}");
    let changed = body["diff"]["tables_changed"].as_array().unwrap();
    let a = changed
        .iter()
        .find(|t| t["table"] == format!("{database}.a"))
        .expect("a changed");
    assert_eq!(a["columns_added"], json!(["z"]));
    assert_eq!(a["columns_removed"], json!(["x"]));
    let b = changed
        .iter()
        .find(|t| t["table"] == format!("{database}.b"))
        .expect("b changed: new index");
    assert_eq!(b["other_changes"], json!(["indexes"]));
    let (_, again) = server
        .admin(Method::POST, "/admin/sources/my/refresh?mode=drift", None)
        .await;
    assert_eq!(again["changed"], false, "{again}");
    server.stop().await;
    common::drop_mariadb_database(&database).await;
}

#[tokio::test]
async fn the_refresh_interval_picks_up_external_changes() {
    let dir = tempfile::tempdir().unwrap();
    let file = common::sqlite_file(
        dir.path(),
        "s.db",
        "CREATE TABLE t (id INTEGER PRIMARY KEY);",
    );
    let server = TestServer::start_full(&dir.path().join("data"), Some(common::TOKEN), 1).await;
    server
        .register(json!({"name": "s", "url": format!("sqlite://{}", file.display())}))
        .await;
    common::sqlite_file(
        dir.path(),
        "s.db",
        "ALTER TABLE t ADD COLUMN added_later TEXT;",
    );
    let mut seen = Vec::new();
    for _ in 0..50 {
        seen = columns(&server, "s", "main", "t").await;
        if seen.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(seen, vec!["id", "added_later"]);
    server.stop().await;
}

#[tokio::test]
async fn a_source_that_is_down_is_served_from_the_cache() {
    let schema =
        common::postgres_schema("CREATE TABLE kept (id int PRIMARY KEY, label text);").await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = common::TcpProxy::start(common::postgres_addr()).await;
    let server = TestServer::start(dir.path()).await;
    server.register(json!({"name": "far", "url": common::postgres_url_with(Some(proxy.addr), None),
               "schemas": {"include": [schema]}, "pool": {"connect_timeout_ms": 1000, "acquire_timeout_ms": 1000}}),
    )
    .await;
    let sqlite = common::sqlite_file(
        dir.path(),
        "near.db",
        "CREATE TABLE here (id INTEGER PRIMARY KEY);",
    );
    server
        .register(json!({"name": "near", "url": format!("sqlite://{}", sqlite.display())}))
        .await;
    server.stop().await;

    // The database goes away; the server starts anyway and serves the cached model.
    proxy.cut().await;
    let server = TestServer::start(dir.path()).await;
    assert_eq!(
        columns(&server, "far", &schema, "kept").await,
        vec!["id", "label"]
    );

    let mut readiness = Value::Null;
    for _ in 0..50 {
        readiness = server.call(Method::GET, "/readyz", None, None).await.1;
        if readiness["sources"]["far"]["status"] == "unavailable"
            && readiness["sources"]["near"]["status"] == "ready"
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(readiness["status"], "degraded", "{readiness}");
    assert_eq!(readiness["sources"]["far"]["cached_model"], true);
    assert_eq!(
        readiness["sources"]["near"]["status"], "ready",
        "other sources are unaffected: {readiness}"
    );
    assert_eq!(
        server
            .call(Method::GET, "/readyz?strict=true", None, None)
            .await
            .0,
        503
    );

    let down = server
        .admin(Method::POST, "/admin/sources/far/test", None)
        .await;
    assert_error(&down, 503, "source_unavailable", &["far"]);
    let refresh = server
        .admin(Method::POST, "/admin/sources/far/refresh", None)
        .await;
    assert_error(&refresh, 503, "source_unavailable", &["far"]);
    assert_eq!(
        columns(&server, "far", &schema, "kept").await,
        vec!["id", "label"],
        "model kept after a failed refresh"
    );
    let (_, sources) = server.admin(Method::GET, "/admin/sources/far", None).await;
    assert_eq!(sources["status"]["state"], "unavailable", "{sources}");
    server.stop().await;
    common::drop_postgres_schema(&schema).await;
}
