//! The admin API end to end: registering SQLite, PostgreSQL and MariaDB
//! sources, relations and aliases, and every bad-input case answering a JSON
//! error that names the problem while leaving nothing behind.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use common::{TOKEN, TestServer, assert_error};
use reqwest::Method;
use serde_json::{Value, json};

const CRM: &str = "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT UNIQUE);
                   CREATE TABLE notes (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers(id), body TEXT);";
const SHOP: &str = "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL, total DECIMAL(10,2));";

fn api_names(catalog: &Value) -> Vec<String> {
    catalog["collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["api_name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn sqlite_sources_relations_and_aliases_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let crm = common::sqlite_file(dir.path(), "crm.db", CRM);
    let shop = common::sqlite_file(dir.path(), "shop.db", SHOP);
    let server = TestServer::start(&dir.path().join("data")).await;

    // Register with the short form (kind from the URL) and the long form.
    let (status, body) = server
        .admin(
            Method::POST,
            "/admin/sources",
            Some(json!({"name": "crm", "url": format!("sqlite://{}", crm.display())})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["source"]["tables"], 2);
    assert_eq!(body["source"]["kind"], "sqlite");
    assert_eq!(
        body["diff"]["tables_added"],
        json!(["main.customers", "main.notes"])
    );
    let (status, body) = server
        .admin(
            Method::POST,
            "/admin/sources",
            Some(json!({"name": "shop", "kind": "sqlite", "connection": {"path": shop}, "pool": {"max_size": 2}})),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    let (status, list) = server.admin(Method::GET, "/admin/sources", None).await;
    assert_eq!(status, 200);
    let names: Vec<_> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["crm", "shop"]);
    let (status, shop_view) = server.admin(Method::GET, "/admin/sources/shop", None).await;
    assert_eq!(status, 200);
    assert_eq!(shop_view["config"]["pool"]["max_size"], 2);
    assert_eq!(shop_view["status"]["state"], "ready");

    // The new sources are in the catalog at once: names, FK relation, collections.
    let (_, catalog) = server.admin(Method::GET, "/admin/catalog", None).await;
    assert_eq!(
        api_names(&catalog),
        vec!["crm_customers", "crm_notes", "shop_orders"]
    );
    let (_, crm_only) = server
        .admin(Method::GET, "/admin/catalog?source=crm", None)
        .await;
    assert_eq!(api_names(&crm_only), vec!["crm_customers", "crm_notes"]);
    assert_eq!(
        crm_only["relations"].as_array().unwrap().len(),
        1,
        "the notes → customers foreign key"
    );

    // A relation across sources, checked against the catalog.
    let relation = json!({"name": "order_customer", "from": "shop.main.orders", "from_columns": ["customer_id"],
                          "to": "crm.customers", "to_columns": ["id"]});
    let (status, created) = server
        .admin(Method::POST, "/admin/relations", Some(relation.clone()))
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        created["to"],
        json!({"source": "crm", "schema": "main", "table": "customers"})
    );
    assert_error(
        &server
            .admin(Method::POST, "/admin/relations", Some(relation))
            .await,
        409,
        "conflict",
        &["order_customer"],
    );
    let bad_column = json!({"name": "r2", "from": "shop.main.orders", "from_columns": ["nope"], "to": "crm.main.customers", "to_columns": ["id"]});
    let response = server
        .admin(Method::POST, "/admin/relations", Some(bad_column))
        .await;
    assert_error(
        &response,
        400,
        "invalid_input",
        &["nope", "shop.main.orders"],
    );
    assert_eq!(response.1["error"]["path"], "from_columns[0]");
    let (_, relations) = server.admin(Method::GET, "/admin/relations", None).await;
    assert_eq!(relations.as_array().unwrap().len(), 2);
    let (status, shown) = server
        .admin(Method::GET, "/admin/relations/order_customer", None)
        .await;
    assert_eq!((status, shown["origin"].as_str()), (200, Some("declared")));

    // Aliases rename collections; a name already taken is refused.
    let (status, alias) = server
        .admin(
            Method::PUT,
            "/admin/aliases",
            Some(json!({"table": "crm.main.customers", "alias": "customers"})),
        )
        .await;
    assert_eq!(status, 200, "{alias}");
    let (_, catalog) = server.admin(Method::GET, "/admin/catalog", None).await;
    assert_eq!(
        api_names(&catalog),
        vec!["crm_notes", "customers", "shop_orders"]
    );
    let taken = server
        .admin(
            Method::PUT,
            "/admin/aliases",
            Some(json!({"table": "shop.main.orders", "alias": "customers"})),
        )
        .await;
    assert_error(&taken, 409, "conflict", &["customers"]);
    let invalid = server
        .admin(
            Method::PUT,
            "/admin/aliases",
            Some(json!({"table": "shop.main.orders", "alias": "2x"})),
        )
        .await;
    assert_error(&invalid, 400, "invalid_input", &["alias"]);
    // Names of the REST API's own routes (`/api/sql`, `/api/batch`).
    for route in ["sql", "batch"] {
        let reserved = server
            .admin(
                Method::PUT,
                "/admin/aliases",
                Some(json!({"table": "shop.main.orders", "alias": route})),
            )
            .await;
        assert_error(&reserved, 400, "invalid_input", &[route, "route"]);
    }
    let (_, aliases) = server.admin(Method::GET, "/admin/aliases", None).await;
    assert_eq!(
        aliases,
        json!([{"alias": "customers", "table": "crm.main.customers"}])
    );

    // Test, refresh (nothing changed), re-configure.
    let (status, ping) = server
        .admin(Method::POST, "/admin/sources/crm/test", None)
        .await;
    assert_eq!((status, ping["ok"].as_bool()), (200, Some(true)), "{ping}");
    let (status, refreshed) = server
        .admin(Method::POST, "/admin/sources/crm/refresh", None)
        .await;
    assert_eq!(
        (status, refreshed["changed"].as_bool()),
        (200, Some(false)),
        "{refreshed}"
    );
    let (status, patched) = server
        .admin(
            Method::PATCH,
            "/admin/sources/shop",
            Some(json!({"pool": {"max_size": 4}})),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["source"]["config"]["pool"]["max_size"], 4);
    assert_eq!(
        patched["source"]["config"]["connection"]["path"],
        json!(shop)
    );

    // Removing a source removes the relations and aliases that mention it.
    let (status, _) = server
        .admin(Method::DELETE, "/admin/sources/crm", None)
        .await;
    assert_eq!(status, 204);
    let (_, relations) = server.admin(Method::GET, "/admin/relations", None).await;
    assert_eq!(relations, json!([]));
    let (_, aliases) = server.admin(Method::GET, "/admin/aliases", None).await;
    assert_eq!(aliases, json!([]));
    let (_, catalog) = server.admin(Method::GET, "/admin/catalog", None).await;
    assert_eq!(api_names(&catalog), vec!["shop_orders"]);

    // Registered sources survive a restart.
    server.stop().await;
    let server = TestServer::start(&dir.path().join("data")).await;
    let (_, list) = server.admin(Method::GET, "/admin/sources", None).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["name"], "shop");
    server.stop().await;
}

#[tokio::test]
async fn admin_routes_need_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let none = server.call(Method::GET, "/admin/sources", None, None).await;
    assert_error(&none, 401, "unauthorized", &["Bearer"]);
    let wrong = server
        .call(
            Method::GET,
            "/admin/sources",
            None,
            Some("not-the-token-at-all"),
        )
        .await;
    assert_error(&wrong, 401, "unauthorized", &["not valid"]);
    assert_eq!(
        server
            .call(Method::GET, "/admin/sources", None, Some(TOKEN))
            .await
            .0,
        200
    );
    assert_eq!(
        server.call(Method::GET, "/healthz", None, None).await.0,
        200,
        "health is public"
    );
    server.stop().await;

    let disabled = TestServer::start_with(&dir.path().join("other"), None).await;
    let response = disabled
        .call(Method::GET, "/admin/sources", None, Some(TOKEN))
        .await;
    assert_error(&response, 401, "unauthorized", &["TRIBUTARY_ADMIN_TOKEN"]);
    disabled.stop().await;
}

#[tokio::test]
async fn bad_registrations_name_the_problem_and_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let crm = common::sqlite_file(dir.path(), "crm.db", CRM);
    let server = TestServer::start(&dir.path().join("data")).await;
    let post = |body: Value| server.admin(Method::POST, "/admin/sources", Some(body));

    assert_error(
        &post(json!({"name": "x", "kind": "db2", "connection": {"host": "h"}})).await,
        422,
        "invalid_input",
        &["db2"],
    );
    // Oracle is a kind; this build (without the `oracle` feature) says how
    // to get it, after checking the config.
    assert_error(
        &post(json!({"name": "x", "kind": "oracle", "connection": {"host": "h"}})).await,
        400,
        "invalid_source_config",
        &["service name"],
    );
    assert_error(
        &post(json!({"name": "x", "url": "oracle://u:p@h:1521/FREEPDB1"})).await,
        400,
        "invalid_source_config",
        &["no Oracle support", "--features oracle", "Instant Client"],
    );
    assert_error(
        &post(json!({"name": "x", "url": "mongodb://h/db"})).await,
        400,
        "invalid_source_config",
        &["mongodb"],
    );
    assert_error(
        &post(json!({"name": "x", "url": "postgres://"})).await,
        400,
        "invalid_source_config",
        &["no host"],
    );
    assert_error(
        &post(json!({"name": "x"})).await,
        400,
        "invalid_input",
        &["kind"],
    );
    assert_error(
        &post(json!({"name": "bad name", "url": "sqlite:///tmp/x.db"})).await,
        400,
        "invalid_source_config",
        &["bad name"],
    );
    assert_error(
        &post(json!({"name": "x", "url": "postgres://h/db", "pool": {"max_size": 0}})).await,
        400,
        "invalid_source_config",
        &["max_size"],
    );
    assert_error(
        &post(json!({"name": "x", "url": "sqlite:///tmp/x.db", "colour": "red"})).await,
        422,
        "invalid_input",
        &["colour"],
    );
    assert_error(
        &server
            .admin_raw(Method::POST, "/admin/sources", "{\"name\": ")
            .await,
        400,
        "invalid_input",
        &[],
    );

    // Unreachable host and wrong password (real PostgreSQL), missing SQLite file.
    let unreachable = post(
        json!({"name": "pg", "url": "postgres://tributary:tributary@127.0.0.1:1/tributary_test",
                                  "pool": {"connect_timeout_ms": 2000}}),
    )
    .await;
    assert_error(&unreachable, 422, "source_unreachable", &["pg"]);
    let wrong_password =
        post(json!({"name": "pg", "url": common::postgres_url_with(None, Some("wrong-password"))}))
            .await;
    assert_error(&wrong_password, 422, "authentication_failed", &["pg"]);
    let missing = post(
        json!({"name": "gone", "url": format!("sqlite://{}/missing.db", dir.path().display())}),
    )
    .await;
    assert_eq!(missing.0, 422, "{}", missing.1);
    assert!(
        missing.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("missing.db"),
        "{}",
        missing.1
    );

    // Nothing of the failures was kept.
    let (_, list) = server.admin(Method::GET, "/admin/sources", None).await;
    assert_eq!(list, json!([]));
    let (_, catalog) = server.admin(Method::GET, "/admin/catalog", None).await;
    assert_eq!(catalog["sources"], json!({}));

    // Duplicate name; unknown source on every per-source route.
    assert_eq!(
        post(json!({"name": "crm", "url": format!("sqlite://{}", crm.display())}))
            .await
            .0,
        201
    );
    assert_error(
        &post(json!({"name": "crm", "url": format!("sqlite://{}", crm.display())})).await,
        409,
        "conflict",
        &["crm"],
    );
    for (method, path) in [
        (Method::GET, "/admin/sources/nope"),
        (Method::PATCH, "/admin/sources/nope"),
        (Method::DELETE, "/admin/sources/nope"),
        (Method::POST, "/admin/sources/nope/test"),
        (Method::POST, "/admin/sources/nope/refresh"),
        (Method::GET, "/admin/catalog?source=nope"),
    ] {
        let body = (method == Method::PATCH).then(|| json!({}));
        assert_error(
            &server.admin(method, path, body).await,
            404,
            "not_found",
            &["nope"],
        );
    }
    let rename = server
        .admin(
            Method::PATCH,
            "/admin/sources/crm",
            Some(json!({"name": "crm2"})),
        )
        .await;
    assert_error(&rename, 400, "invalid_source_config", &["renamed"]);
    let bad_mode = server
        .admin(
            Method::POST,
            "/admin/sources/crm/refresh?mode=sometimes",
            None,
        )
        .await;
    assert_error(&bad_mode, 400, "invalid_input", &["sometimes"]);
    // A failed re-configuration keeps the old one.
    let broken = server
        .admin(
            Method::PATCH,
            "/admin/sources/crm",
            Some(json!({"connection": {"url": "sqlite:///nonexistent/x.db"}})),
        )
        .await;
    assert_eq!(broken.0, 422, "{}", broken.1);
    assert_eq!(
        server
            .admin(Method::POST, "/admin/sources/crm/test", None)
            .await
            .0,
        200
    );
    server.stop().await;
}

#[tokio::test]
async fn postgres_and_mariadb_sources_register_and_report_metrics() {
    let schema = common::postgres_schema(
        "CREATE TABLE accounts (id bigint PRIMARY KEY, owner text NOT NULL);
         COMMENT ON TABLE accounts IS 'money lives here';",
    )
    .await;
    let database = common::mariadb_database(
        "CREATE TABLE payments (id INT PRIMARY KEY, account_id BIGINT, amount DECIMAL(12,2));",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;

    let (status, body) = server
        .admin(
            Method::POST,
            "/admin/sources",
            Some(json!({"name": "ledger", "url": common::postgres_url_with(None, None), "schemas": {"include": [schema]}})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["source"]["tables"], 1);
    assert!(
        body["ping"]["server_version"]
            .as_str()
            .unwrap()
            .starts_with(|c: char| c.is_ascii_digit()),
        "{body}"
    );
    assert!(
        !body.to_string().contains("tributary@"),
        "no URL with credentials is echoed: {body}"
    );
    assert_eq!(
        body["source"]["config"]["connection"]["password"],
        "[REDACTED]"
    );

    let (status, body) = server
        .admin(
            Method::POST,
            "/admin/sources",
            Some(json!({"name": "payments", "url": common::mariadb_url_with_database(&database)})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["source"]["kind"], "mariadb", "flavor detected");

    let (_, catalog) = server.admin(Method::GET, "/admin/catalog", None).await;
    assert_eq!(
        api_names(&catalog),
        vec!["ledger_accounts", "payments_payments"]
    );
    assert_eq!(
        catalog["sources"]["ledger"]["schema"]["schemas"][&schema]["tables"]["accounts"]["comment"],
        "money lives here"
    );
    let relation = json!({"name": "payment_account", "from": format!("payments.{database}.payments"),
                          "from_columns": ["account_id"], "to": format!("ledger.{schema}.accounts"), "to_columns": ["id"]});
    assert_eq!(
        server
            .admin(Method::POST, "/admin/relations", Some(relation))
            .await
            .0,
        201
    );
    for name in ["ledger", "payments"] {
        let (status, ping) = server
            .admin(Method::POST, &format!("/admin/sources/{name}/test"), None)
            .await;
        assert_eq!(status, 200, "{ping}");
    }

    // The config read back from the API can be sent back: the redaction
    // marker keeps the stored password. A wrong new password is refused and
    // the old config stays.
    let (_, shown) = server
        .admin(Method::GET, "/admin/sources/ledger", None)
        .await;
    let mut config = shown["config"].clone();
    config["pool"]["max_size"] = json!(3);
    let (status, patched) = server
        .admin(Method::PATCH, "/admin/sources/ledger", Some(config))
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["source"]["config"]["pool"]["max_size"], 3);
    let wrong = server
        .admin(
            Method::PATCH,
            "/admin/sources/ledger",
            Some(json!({"connection": {"password": "not-it"}})),
        )
        .await;
    assert_error(&wrong, 422, "authentication_failed", &["ledger"]);
    let (status, ping) = server
        .admin(Method::POST, "/admin/sources/ledger/test", None)
        .await;
    assert_eq!(status, 200, "{ping}");

    let (status, metrics) = server.get_text("/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("tributary_pool_max_connections{source=\"ledger\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "tributary_catalog_refreshes_total{source=\"payments\",outcome=\"changed\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("tributary_http_requests_total{method=\"POST\",route=\"/admin/sources/{name}/test\",status=\"200\"} 3"),
        "{metrics}"
    );
    assert!(metrics.contains(
        "tributary_http_request_duration_seconds_count{method=\"GET\",route=\"/admin/catalog\"} 1"
    ));

    server.stop().await;
    common::drop_postgres_schema(&schema).await;
    common::drop_mariadb_database(&database).await;
}

/// A MariaDB source whose tables do not fit in the server's buffer pool
/// gets advice with its ping, sizes as the server reports them; one that
/// fits gets none. The TPC-H tables `.ci/run` loads take about 164 MiB,
/// more than MariaDB's default 128 MiB pool (a machine configured with a
/// larger pool checks that no advice comes).
#[tokio::test]
async fn a_ping_advises_when_the_tables_outgrow_mariadbs_buffer_pool() {
    use mysql_async::prelude::Queryable;
    const MIB: u64 = 1024 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let small = common::mariadb_database("CREATE TABLE t (id INT PRIMARY KEY);").await;
    server
        .register(json!({"name": "small", "url": common::mariadb_url_with_database(&small)}))
        .await;
    let (status, registered) = server
        .admin(
            Method::POST,
            "/admin/sources",
            Some(
                json!({"name": "tpch", "url": common::mariadb_url_with_database("tributary_tpch")}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{registered}");

    let mut conn = common::mariadb().await;
    let (pool, tables): (u64, u64) = conn
        .query_first(
            "SELECT CAST(@@innodb_buffer_pool_size AS UNSIGNED), \
             CAST(SUM(data_length + index_length) AS UNSIGNED) FROM information_schema.TABLES \
             WHERE table_schema = 'tributary_tpch' AND engine = 'InnoDB'",
        )
        .await
        .unwrap()
        .unwrap();
    conn.disconnect().await.unwrap();

    let (status, ping) = server
        .admin(Method::POST, "/admin/sources/small/test", None)
        .await;
    assert_eq!(status, 200, "{ping}");
    assert_eq!(
        ping.get("advice"),
        None,
        "a table of a few KiB fits: {ping}"
    );

    let (status, ping) = server
        .admin(Method::POST, "/admin/sources/tpch/test", None)
        .await;
    assert_eq!(status, 200, "{ping}");
    if tables > pool {
        let advice = ping["advice"][0]
            .as_str()
            .unwrap_or_else(|| panic!("{ping}"));
        let sizes = format!(
            "(innodb_buffer_pool_size = {} MiB) is smaller than the InnoDB tables this source serves ({} MiB)",
            pool.div_ceil(MIB),
            tables.div_ceil(MIB)
        );
        assert!(advice.starts_with("MariaDB's buffer pool"), "{advice}");
        assert!(advice.contains(&sizes), "{advice}\nwanted: {sizes}");
        assert_eq!(ping["advice"].as_array().map(Vec::len), Some(1), "{ping}");
        assert_eq!(
            registered["ping"]["advice"], ping["advice"],
            "registering said it too"
        );
    } else {
        assert_eq!(
            ping.get("advice"),
            None,
            "{tables} bytes fit in {pool}: {ping}"
        );
    }
    server.stop().await;
    common::drop_mariadb_database(&small).await;
}

/// A source's view keeps what its last ping advised: registration with a
/// pool larger than PostgreSQL accepts advises, a change to a pool that
/// fits takes it back; after a restart nothing is known until a test.
#[tokio::test]
async fn a_sources_view_keeps_its_last_pings_advice() {
    let schema = common::postgres_schema("CREATE TABLE t (id int PRIMARY KEY);").await;
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    server
        .register(
            json!({"name": "pg", "url": common::postgres_url_with(None, None),
                         "schemas": {"include": [schema]}, "pool": {"max_size": 1000}}),
        )
        .await;
    let advice = |view: &Value| view["advice"].clone();
    let (status, view) = server.admin(Method::GET, "/admin/sources/pg", None).await;
    assert_eq!(status, 200, "{view}");
    let first = advice(&view)[0].as_str().unwrap_or_default().to_string();
    assert!(
        first.starts_with("pool.max_size is 1000, but PostgreSQL's max_connections"),
        "{view}"
    );
    let (_, list) = server.admin(Method::GET, "/admin/sources", None).await;
    assert_eq!(advice(&list[0]), advice(&view), "{list}");

    let (status, patched) = server
        .admin(
            Method::PATCH,
            "/admin/sources/pg",
            Some(json!({"pool": {"max_size": 4}})),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    let (_, view) = server.admin(Method::GET, "/admin/sources/pg", None).await;
    assert_eq!(view.get("advice"), None, "a pool of 4 fits: {view}");
    let big = json!({"pool": {"max_size": 1000}});
    let (status, _) = server
        .admin(Method::PATCH, "/admin/sources/pg", Some(big))
        .await;
    assert_eq!(status, 200);
    server.stop().await;

    // Loaded at start-up, the source has not been pinged: no advice until
    // a test or a refresh says it again.
    let server = TestServer::start(dir.path()).await;
    let (_, view) = server.admin(Method::GET, "/admin/sources/pg", None).await;
    assert_eq!(view.get("advice"), None, "{view}");
    let (status, ping) = server
        .admin(Method::POST, "/admin/sources/pg/test", None)
        .await;
    assert_eq!(status, 200, "{ping}");
    let (_, view) = server.admin(Method::GET, "/admin/sources/pg", None).await;
    assert_eq!(advice(&view), ping["advice"], "{view}");
    assert!(advice(&view)[0].as_str().is_some(), "{view}");
    server.stop().await;
    let server = TestServer::start(dir.path()).await;
    let (status, diff) = server
        .admin(Method::POST, "/admin/sources/pg/refresh", None)
        .await;
    assert_eq!(status, 200, "{diff}");
    let (_, view) = server.admin(Method::GET, "/admin/sources/pg", None).await;
    // Its counts are the server's at that moment; what it advises is the same.
    let again = advice(&view);
    let again = again[0].as_str().unwrap_or_default();
    assert!(
        again.starts_with("pool.max_size is 1000, but PostgreSQL's max_connections"),
        "{view}"
    );
    server.stop().await;
    common::drop_postgres_schema(&schema).await;
}

/// `pool.settings`: every connection of a PostgreSQL or MariaDB source
/// starts with them (here read-only transactions: reads answer, writes are
/// refused by the database); settings Tributary sets itself, bad names and
/// other kinds of source are refused at registration.
#[tokio::test]
async fn pool_settings_reach_every_connection() {
    let schema =
        common::postgres_schema("CREATE TABLE notes (id int PRIMARY KEY, body text);").await;
    let database =
        common::mariadb_database("CREATE TABLE notes (id INT PRIMARY KEY, body TEXT);").await;
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    server
        .register(json!({"name": "pg", "url": common::postgres_url_with(None, None),
                         "schemas": {"include": [schema]},
                         "pool": {"settings": {"default_transaction_read_only": "on", "work_mem": "8MB"}}}))
        .await;
    server
        .register(
            json!({"name": "my", "url": common::mariadb_url_with_database(&database),
                         "pool": {"settings": {"tx_read_only": "1"}}}),
        )
        .await;
    for collection in ["pg_notes", "my_notes"] {
        let (status, body) = server
            .admin(Method::GET, &format!("/api/{collection}"), None)
            .await;
        assert_eq!(status, 200, "{collection}: {body}");
        let (status, body) = server
            .admin(
                Method::POST,
                &format!("/api/{collection}"),
                Some(json!({"id": 1, "body": "x"})),
            )
            .await;
        assert!(status >= 400, "{collection}: {status} {body}");
        let message = body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_lowercase();
        assert!(
            message.contains("read-only") || message.contains("read only"),
            "{collection}: {body}"
        );
    }
    let (_, sources) = server.admin(Method::GET, "/admin/sources", None).await;
    assert!(
        sources
            .to_string()
            .contains("default_transaction_read_only"),
        "{sources}"
    );
    let post = |body: Value| server.admin(Method::POST, "/admin/sources", Some(body));
    for (settings, words) in [
        (json!({"TimeZone": "Europe/Paris"}), "set by Tributary"),
        (json!({"bad name": "x"}), "not a setting's name"),
        (json!({"work_mem": "8MB\n"}), "control characters"),
    ] {
        let (status, body) = post(json!({"name": "pg2", "url": common::postgres_url_with(None, None),
                                         "schemas": {"include": [schema]}, "pool": {"settings": settings}}))
        .await;
        assert_eq!(status, 400, "{body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(words),
            "{body}"
        );
    }
    let crm = common::sqlite_file(dir.path(), "crm.db", CRM);
    let (status, body) = post(
        json!({"name": "lite", "url": format!("sqlite://{}", crm.display()),
                                     "pool": {"settings": {"cache_size": "1"}}}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    server.stop().await;
    common::drop_mariadb_database(&database).await;
}
