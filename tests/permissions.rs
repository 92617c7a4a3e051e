//! Row-level permissions through the SQL endpoint, differentially: a role
//! `customer` sees only its own orders (row filter on `o_custkey = user id`,
//! `o_comment` hidden), the line items of those orders (a filter through
//! the lineitem → orders relation) and its own customer row; nation,
//! region, part and supplier whole; partsupp not at all. Over a hundred
//! queries — joins in one source and across sources, subqueries, CTEs,
//! unions, aggregates, group by, window functions — run as that role and,
//! as the admin, with each table replaced by a pre-filtered view: the
//! answers must be equal. TPC-H SF0.1 split across PostgreSQL and MariaDB
//! (`tests/tpch/setup`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::sync::OnceLock;

use common::{TOKEN, TestServer};
use reqwest::Method;
use serde_json::{Value, json};

fn load_data() {
    static LOADED: OnceLock<()> = OnceLock::new();
    LOADED.get_or_init(|| {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tpch/setup");
        let output = Command::new(&script)
            .output()
            .expect("tests/tpch/setup runs");
        assert!(
            output.status.success(),
            "tests/tpch/setup failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    });
}

/// The readable columns of orders (all but `o_comment`).
const ORDERS_COLUMNS: &str = "o_orderkey, o_custkey, o_orderstatus, o_totalprice, o_orderdate, \
                              o_orderpriority, o_clerk, o_shippriority";

/// The TPC-H server with the `customer` role's rules.
async fn server(dir: &std::path::Path) -> TestServer {
    load_data();
    let server = TestServer::start(dir).await;
    server
        .register(json!({"name": "pg", "url": common::postgres_url_with(None, None), "schemas": {"include": ["tpch"]}}))
        .await;
    server
        .register(json!({"name": "my", "url": common::mariadb_url_with_database("tributary_tpch")}))
        .await;
    let own_orders = json!({"o_custkey": {"$eq": "{{$user.id}}"}});
    let orders_columns: Vec<&str> = ORDERS_COLUMNS.split(", ").collect();
    let rules = [
        (
            "my_orders",
            "select",
            json!({"filter": own_orders, "columns": orders_columns}),
        ),
        (
            "my_orders",
            "aggregate",
            json!({"filter": own_orders, "columns": orders_columns}),
        ),
        (
            "my_lineitem",
            "select",
            json!({"filter": {"orders": own_orders}}),
        ),
        (
            "my_lineitem",
            "aggregate",
            json!({"filter": {"orders.o_custkey": "{{$user.id}}"}}),
        ),
        (
            "pg_customer",
            "select",
            json!({"filter": {"c_custkey": "{{$user.id}}"}}),
        ),
        (
            "pg_customer",
            "aggregate",
            json!({"filter": {"c_custkey": "{{$user.id}}"}}),
        ),
        ("pg_nation", "select", json!({})),
        ("pg_nation", "aggregate", json!({})),
        ("pg_region", "select", json!({})),
        ("pg_part", "select", json!({})),
        ("pg_part", "aggregate", json!({})),
        ("pg_supplier", "select", json!({})),
        ("pg_supplier", "aggregate", json!({})),
    ];
    for (collection, action, rule) in rules {
        let (status, body) = server
            .admin(
                Method::PUT,
                &format!("/admin/permissions/customer/{collection}/{action}"),
                Some(rule),
            )
            .await;
        assert_eq!(status, 200, "{collection} {action}: {body}");
    }
    server
}

/// `POST /api/sql` as the admin acting as `role` and `user`.
async fn sql_as_role(server: &TestServer, role: &str, user: &str, sql: &str) -> (u16, Value) {
    sql_request_as_role(server, role, user, json!({ "sql": sql })).await
}

/// `POST /api/sql` with `body` (explain, analyze, params…) as `role` and `user`.
async fn sql_request_as_role(
    server: &TestServer,
    role: &str,
    user: &str,
    body: Value,
) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/api/sql", server.base))
        .bearer_auth(TOKEN)
        .header("x-role", role)
        .header("x-user-id", user)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn sql_admin(server: &TestServer, sql: &str) -> (u16, Value) {
    server
        .admin(Method::POST, "/api/sql", Some(json!({ "sql": sql })))
        .await
}

/// Column names and rows (sorted, so plan order does not matter).
fn answer(body: &Value) -> (Vec<String>, Vec<String>) {
    let columns = body["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    let mut rows: Vec<String> = body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(Value::to_string)
        .collect();
    rows.sort();
    (columns, rows)
}

/// Each query, with `{orders}`, `{lineitem}` and `{customer}` where those
/// tables go (never aliased: the admin's run puts a view there).
const QUERIES: &[&str] = &[
    "SELECT * FROM {orders}",
    "SELECT o_orderkey, o_totalprice FROM {orders} WHERE o_totalprice > 100000",
    "SELECT * FROM {orders} ORDER BY o_orderdate DESC, o_orderkey LIMIT 3",
    "SELECT count(*), sum(o_totalprice), min(o_orderdate), max(o_orderdate) FROM {orders}",
    "SELECT o_orderstatus, count(*) AS n, avg(o_totalprice) FROM {orders} GROUP BY o_orderstatus",
    "SELECT o_orderpriority, count(*) FROM {orders} GROUP BY o_orderpriority HAVING count(*) > 1",
    "SELECT DISTINCT o_orderstatus FROM {orders}",
    "SELECT * FROM {lineitem} WHERE l_quantity < 10",
    "SELECT l_orderkey, sum(l_extendedprice * (1 - l_discount)) AS revenue FROM {lineitem} GROUP BY l_orderkey",
    "SELECT count(*) FROM {lineitem}",
    "SELECT orders.o_orderkey, lineitem.l_linenumber, lineitem.l_quantity FROM {orders} JOIN {lineitem} ON lineitem.l_orderkey = orders.o_orderkey",
    "SELECT orders.o_orderkey, count(*) FROM {orders} JOIN {lineitem} ON lineitem.l_orderkey = orders.o_orderkey GROUP BY orders.o_orderkey",
    "SELECT customer.c_name, orders.o_orderkey FROM {customer} JOIN {orders} ON orders.o_custkey = customer.c_custkey",
    "SELECT nation.n_name, count(*) FROM {orders} JOIN {customer} ON customer.c_custkey = orders.o_custkey JOIN nation ON nation.n_nationkey = customer.c_nationkey GROUP BY nation.n_name",
    "SELECT part.p_name, lineitem.l_quantity FROM {lineitem} JOIN part ON part.p_partkey = lineitem.l_partkey WHERE part.p_size > 10",
    "SELECT supplier.s_name, sum(lineitem.l_quantity) FROM {lineitem} JOIN supplier ON supplier.s_suppkey = lineitem.l_suppkey GROUP BY supplier.s_name",
    "SELECT * FROM {orders} WHERE o_orderkey IN (SELECT l_orderkey FROM {lineitem} WHERE l_returnflag = 'R')",
    "SELECT * FROM {orders} WHERE EXISTS (SELECT 1 FROM {lineitem} WHERE lineitem.l_orderkey = orders.o_orderkey AND l_shipmode = 'AIR')",
    "SELECT * FROM {orders} WHERE NOT EXISTS (SELECT 1 FROM {lineitem} WHERE lineitem.l_orderkey = orders.o_orderkey AND l_quantity > 45)",
    "SELECT o_orderkey, (SELECT count(*) FROM {lineitem} WHERE lineitem.l_orderkey = orders.o_orderkey) AS items FROM {orders}",
    "SELECT * FROM {orders} WHERE o_totalprice > (SELECT avg(o_totalprice) FROM {orders})",
    "WITH big AS (SELECT o_orderkey, o_totalprice FROM {orders} WHERE o_totalprice > 50000) SELECT count(*), sum(o_totalprice) FROM big",
    "WITH items AS (SELECT l_orderkey, count(*) AS n FROM {lineitem} GROUP BY l_orderkey) SELECT orders.o_orderkey, items.n FROM {orders} JOIN items ON items.l_orderkey = orders.o_orderkey",
    "SELECT o_orderkey AS k FROM {orders} UNION SELECT l_orderkey FROM {lineitem}",
    "SELECT o_custkey AS who FROM {orders} UNION ALL SELECT c_custkey FROM {customer}",
    "SELECT o_orderkey, o_totalprice, rank() OVER (ORDER BY o_totalprice DESC) AS r FROM {orders}",
    "SELECT l_orderkey, l_linenumber, sum(l_quantity) OVER (PARTITION BY l_orderkey ORDER BY l_linenumber) FROM {lineitem}",
    "SELECT count(DISTINCT l_partkey) FROM {lineitem}",
    "SELECT c_custkey, c_name, c_acctbal FROM {customer}",
    "SELECT count(*) FROM {customer}",
    "SELECT r_name, customer.c_name FROM region JOIN nation ON nation.n_regionkey = region.r_regionkey JOIN {customer} ON customer.c_nationkey = nation.n_nationkey",
    "SELECT customer.c_name, sum(lineitem.l_extendedprice) FROM {customer} JOIN {orders} ON orders.o_custkey = customer.c_custkey JOIN {lineitem} ON lineitem.l_orderkey = orders.o_orderkey GROUP BY customer.c_name",
    "SELECT * FROM {orders} LEFT JOIN {lineitem} ON lineitem.l_orderkey = orders.o_orderkey AND lineitem.l_linenumber = 1",
    "SELECT o_orderkey FROM {orders} WHERE o_custkey IN (SELECT c_custkey FROM {customer} WHERE c_mktsegment <> 'NONE')",
];

/// Tables as the role sees them, written out for the admin.
fn views(user: &str) -> [(&'static str, String); 3] {
    [
        (
            "{orders}",
            format!("(SELECT {ORDERS_COLUMNS} FROM orders WHERE o_custkey = {user}) AS orders"),
        ),
        (
            "{lineitem}",
            format!(
                "(SELECT * FROM lineitem WHERE l_orderkey IN \
                 (SELECT o_orderkey FROM orders WHERE o_custkey = {user})) AS lineitem"
            ),
        ),
        (
            "{customer}",
            format!("(SELECT * FROM customer WHERE c_custkey = {user}) AS customer"),
        ),
    ]
}

#[tokio::test]
async fn a_role_sees_exactly_its_rows_through_every_kind_of_query() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path()).await;
    // Four customers with orders: the differential runs are per user.
    let (status, body) = sql_admin(
        &server,
        "SELECT o_custkey FROM orders GROUP BY o_custkey ORDER BY count(*) DESC, o_custkey LIMIT 3",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let mut users: Vec<String> = body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[0].to_string())
        .collect();
    users.push("3".into()); // customer 3 has no orders in TPC-H
    let mut compared = 0;
    let mut non_empty = 0;
    for user in &users {
        for template in QUERIES {
            let as_role = template
                .replace("{orders}", "orders")
                .replace("{lineitem}", "lineitem")
                .replace("{customer}", "customer");
            let mut as_admin = (*template).to_string();
            for (placeholder, view) in views(user) {
                as_admin = as_admin.replace(placeholder, &view);
            }
            let (status, role_body) = sql_as_role(&server, "customer", user, &as_role).await;
            assert_eq!(status, 200, "user {user}: {as_role}\n{role_body}");
            let (status, admin_body) = sql_admin(&server, &as_admin).await;
            assert_eq!(status, 200, "{as_admin}\n{admin_body}");
            let (role_columns, role_rows) = answer(&role_body);
            let (admin_columns, admin_rows) = answer(&admin_body);
            assert!(
                !role_columns.iter().any(|c| c == "o_comment"),
                "hidden column served: {as_role}"
            );
            assert_eq!(role_columns, admin_columns, "user {user}: {as_role}");
            assert_eq!(role_rows, admin_rows, "user {user}: {as_role}");
            compared += 1;
            non_empty += usize::from(!role_rows.is_empty());
        }
    }
    assert!(compared >= 100, "{compared} queries compared");
    assert!(
        non_empty > compared / 2,
        "most answers must have rows to compare ({non_empty} of {compared})"
    );
    server.stop().await;
}

#[tokio::test]
async fn what_a_role_may_not_read_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path()).await;
    let cases = [
        ("SELECT o_comment FROM orders", 403, "o_comment"),
        (
            "SELECT o_orderkey FROM orders ORDER BY o_comment",
            403,
            "o_comment",
        ),
        ("SELECT count(o_comment) FROM orders", 403, "o_comment"),
        ("SELECT * FROM partsupp", 400, "partsupp"),
        ("SELECT * FROM pg.tpch.partsupp", 400, "partsupp"),
        (
            "SELECT count(*) FROM region",
            403,
            "may not aggregate `pg_region`",
        ),
    ];
    for (sql, expected, needle) in cases {
        let (status, body) = sql_as_role(&server, "customer", "1", sql).await;
        assert_eq!(status, expected, "{sql}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{sql}: {message}");
    }
    // A role without any rule sees no table at all.
    let (status, body) = sql_as_role(&server, "nobody", "1", "SELECT * FROM nation").await;
    assert_eq!(status, 400, "{body}");
    // information_schema lists only the role's tables, without hidden columns.
    let (status, body) = sql_as_role(
        &server,
        "customer",
        "1",
        "SELECT table_name, column_name FROM information_schema.columns \
         WHERE table_catalog IN ('pg', 'my') ORDER BY 1, 2",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let rows = body["rows"].as_array().unwrap();
    assert!(!rows.is_empty());
    assert!(
        rows.iter()
            .all(|r| r[0] != "partsupp" && r[1] != "o_comment"),
        "{body}"
    );
    server.stop().await;
}

#[tokio::test]
async fn the_row_filter_reaches_the_source_sql_and_keys_carry_the_user() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path()).await;
    // EXPLAIN as the role: the filter is in MariaDB's statement.
    let explain = json!({"sql": "SELECT o_orderkey FROM orders", "explain": true});
    let (status, body) = sql_request_as_role(&server, "customer", "370", explain).await;
    assert_eq!(status, 200, "{body}");
    let statements = body["sources"].as_array().unwrap();
    assert_eq!(statements.len(), 1, "{body}");
    let sql = statements[0]["sql"].as_str().unwrap();
    assert!(sql.contains("370"), "{sql}");
    assert!(!sql.contains("o_comment"), "{sql}");

    // ANALYZE as the role runs with the filter: the statement as sent holds
    // it, and the rows counted are the role's.
    let (_, own) = sql_as_role(&server, "customer", "370", "SELECT o_orderkey FROM orders").await;
    let own = own["rows"].as_array().unwrap().len();
    assert!(own > 0);
    let analyze = json!({"sql": "SELECT o_orderkey FROM orders", "analyze": true});
    let (status, body) = sql_request_as_role(&server, "customer", "370", analyze).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"], json!(own), "{body}");
    let runs = body["sources"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{body}");
    assert_eq!(runs[0]["rows"], json!(own), "{body}");
    assert!(runs[0]["sql"].as_str().unwrap().contains("370"), "{body}");

    // An API key bound to the role and a user: the same rows as acting as it.
    let (status, key) = server
        .admin(
            Method::POST,
            "/admin/keys",
            Some(json!({"name": "shop front", "role": "customer", "user_id": "370"})),
        )
        .await;
    assert_eq!(status, 201, "{key}");
    let secret = key["key"].as_str().unwrap();
    let query = json!({"sql": "SELECT o_orderkey FROM orders ORDER BY o_orderkey"});
    let (status, by_key) = server
        .call(Method::POST, "/api/sql", Some(query.clone()), Some(secret))
        .await;
    assert_eq!(status, 200, "{by_key}");
    let (_, acting) = sql_as_role(&server, "customer", "370", query["sql"].as_str().unwrap()).await;
    assert_eq!(by_key["rows"], acting["rows"]);
    assert!(!by_key["rows"].as_array().unwrap().is_empty());
    // The key cannot switch roles, and cannot reach the admin API.
    let response = reqwest::Client::new()
        .post(format!("{}/api/sql", server.base))
        .bearer_auth(secret)
        .header("x-role", "admin")
        .json(&query)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 403);
    let (status, _) = server
        .call(Method::GET, "/admin/sources", None, Some(secret))
        .await;
    assert_eq!(status, 403);
    server.stop().await;
}

#[tokio::test]
async fn a_select_limit_caps_the_answer_and_repeated_queries_stay_per_user() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path()).await;
    let (status, body) = server
        .admin(
            Method::PUT,
            "/admin/permissions/capped/my_orders/select",
            Some(json!({"limit": 2})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = sql_as_role(&server, "capped", "1", "SELECT * FROM orders").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"].as_array().unwrap().len(), 2);
    assert_eq!(body["truncated"], true);

    // The same text for two users, several times (the fast path learns a
    // shape on the second request): each user keeps getting their own rows.
    let sql = "SELECT DISTINCT o_custkey FROM orders WHERE o_orderkey > $1";
    for _ in 0..3 {
        for user in ["1", "2"] {
            let response = reqwest::Client::new()
                .post(format!("{}/api/sql", server.base))
                .bearer_auth(TOKEN)
                .header("x-role", "customer")
                .header("x-user-id", user)
                .json(&json!({"sql": "SELECT o_custkey FROM orders WHERE o_orderkey > $1", "params": [0]}))
                .send()
                .await
                .unwrap();
            let body: Value = response.json().await.unwrap();
            let rows = body["rows"].as_array().unwrap();
            assert!(!rows.is_empty(), "{sql}: {body}");
            assert!(
                rows.iter().all(|r| r[0] == user.parse::<i64>().unwrap()),
                "user {user} got {body}"
            );
        }
    }
    server.stop().await;
}

/// REST requests as `(collection[:action], query, filter)`: run as the
/// role with `filter`, and as the admin with `filter` AND the role's own
/// row filter spelled out (`own_rows`).
const REST_REQUESTS: &[(&str, &str, Option<&str>)] = &[
    ("my_orders", "sort=o_orderkey&pageSize=1000", None),
    (
        "my_orders",
        "sort=-o_totalprice&pageSize=5",
        Some(r#"{"o_orderstatus":"F"}"#),
    ),
    (
        "my_orders",
        "sort=o_orderkey&fields=o_orderkey,o_totalprice&count=true",
        Some(r#"{"o_totalprice":{"$gt":100000}}"#),
    ),
    (
        "my_orders",
        "sort=o_orderkey&appends=lineitem&fields=o_orderkey",
        None,
    ),
    (
        "my_orders",
        "sort=o_orderkey",
        Some(r#"{"lineitem":{"l_shipmode":"AIR"}}"#),
    ),
    ("my_orders:list", "sort=o_orderdate&pageSize=3&page=2", None),
    (
        "my_lineitem",
        "sort=l_orderkey,l_linenumber&pageSize=1000",
        Some(r#"{"l_quantity":{"$lt":10}}"#),
    ),
    (
        "my_lineitem",
        "sort=l_orderkey,l_linenumber&appends=orders&fields=l_orderkey,l_linenumber",
        None,
    ),
    (
        "my_lineitem",
        "sort=l_orderkey,l_linenumber",
        Some(r#"{"orders.o_orderstatus":"O"}"#),
    ),
    ("pg_customer", "", None),
    ("pg_customer", "appends=nation", None),
    (
        "my_orders:aggregate",
        r#"measures=[{"aggregation":"count","alias":"n"},{"field":"o_totalprice","aggregation":"sum"}]&dimensions=[{"field":"o_orderstatus"}]&sort=o_orderstatus"#,
        None,
    ),
    (
        "my_orders:aggregate",
        r#"measures=[{"field":"o_totalprice","aggregation":"max"}]&dimensions=[{"field":"o_orderdate","granularity":"year","alias":"y"}]&sort=y"#,
        Some(r#"{"o_orderpriority":{"$startsWith":"1"}}"#),
    ),
    (
        "my_lineitem:aggregate",
        r#"measures=[{"field":"l_quantity","aggregation":"sum"},{"field":"l_partkey","aggregation":"count","distinct":true}]"#,
        None,
    ),
    (
        "my_orders:aggregate",
        r#"measures=[{"aggregation":"count","alias":"n"}]&dimensions=[{"field":"o_orderpriority"}]&having={"n":{"$gte":2}}&sort=o_orderpriority"#,
        None,
    ),
];

/// The role's row filter of a collection, for `user`, as filter JSON.
fn own_rows(collection: &str, user: &str) -> Option<Value> {
    match collection.split(':').next() {
        Some("my_orders") => Some(json!({"o_custkey": user})),
        Some("my_lineitem") => Some(json!({"orders": {"o_custkey": user}})),
        Some("pg_customer") => Some(json!({"c_custkey": user})),
        _ => None,
    }
}

/// Drops the column the role may not read, at any depth (appended orders).
fn without_hidden(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.remove("o_comment");
            map.values_mut().for_each(without_hidden);
        }
        Value::Array(items) => items.iter_mut().for_each(without_hidden),
        _ => {}
    }
}

fn contains_key(value: &Value, key: &str) -> bool {
    match value {
        Value::Object(map) => map.contains_key(key) || map.values().any(|v| contains_key(v, key)),
        Value::Array(items) => items.iter().any(|v| contains_key(v, key)),
        _ => false,
    }
}

#[tokio::test]
async fn a_role_sees_exactly_its_rows_through_rest() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path()).await;
    let http = reqwest::Client::new();
    let get = |path: String, role: Option<&'static str>, user: String| {
        let mut request = http
            .get(format!("{}{path}", server.base))
            .bearer_auth(TOKEN);
        if let Some(role) = role {
            request = request.header("x-role", role).header("x-user-id", user);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let encode =
        |text: &str| -> String { url::form_urlencoded::byte_serialize(text.as_bytes()).collect() };
    let query = |q: &str| -> String {
        q.split('&')
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((k, v)) => format!("{k}={}", encode(v)),
                None => p.to_string(),
            })
            .collect::<Vec<_>>()
            .join("&")
    };
    let mut compared = 0;
    let mut non_empty = 0;
    for user in ["370", "1", "3"] {
        for (collection, params, filter) in REST_REQUESTS {
            let filter: Option<Value> = filter.map(|f| serde_json::from_str(f).unwrap());
            let with = |f: Option<Value>| match f {
                Some(f) => format!(
                    "/api/{collection}?{}&filter={}",
                    query(params),
                    encode(&f.to_string())
                ),
                None => format!("/api/{collection}?{}", query(params)),
            };
            let admin_filter = match (filter.clone(), own_rows(collection, user)) {
                (Some(f), Some(own)) => Some(json!({"$and": [f, own]})),
                (f, own) => f.or(own),
            };
            let (status, role_body) = get(with(filter), Some("customer"), user.to_string()).await;
            assert_eq!(
                status, 200,
                "user {user}: {collection}?{params}\n{role_body}"
            );
            let (status, mut admin_body) = get(with(admin_filter), None, String::new()).await;
            assert_eq!(status, 200, "{collection}?{params}\n{admin_body}");
            assert!(
                !contains_key(&role_body, "o_comment"),
                "hidden column served: {role_body}"
            );
            without_hidden(&mut admin_body);
            assert_eq!(role_body, admin_body, "user {user}: {collection}?{params}");
            compared += 1;
            non_empty += usize::from(role_body["data"].as_array().is_some_and(|d| !d.is_empty()));
        }
    }
    assert!(compared >= 45, "{compared} requests compared");
    assert!(
        non_empty > compared / 2,
        "{non_empty} of {compared} answers had rows"
    );
    // What the role may not read is refused by name, not silently emptied.
    for (path, word) in [
        ("/api/my_orders?sort=o_comment", "o_comment"),
        ("/api/my_orders?fields=o_comment", "o_comment"),
        (
            "/api/my_orders?filter=%7B%22o_comment%22%3A%22x%22%7D",
            "o_comment",
        ),
        ("/api/pg_partsupp", "pg_partsupp"),
        ("/api/pg_region:aggregate", "aggregate"),
    ] {
        let (status, body) = get(path.to_string(), Some("customer"), "370".into()).await;
        assert_eq!(status, 403, "{path}: {body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(word),
            "{path}: {body}"
        );
    }
    server.stop().await;
}

/// GraphQL queries run as the role with `{}` for each `OWN(collection)`,
/// and as the admin with the role's row filter of that collection spelled
/// out there, at every level (root fields, relation filters, nested rows
/// and nested aggregates).
const GRAPHQL_QUERIES: &[&str] = &[
    "{ my_orders(where: OWN(my_orders), order_by: {o_orderkey: asc}) { o_orderkey o_custkey o_totalprice o_orderdate } }",
    r#"{ my_orders(where: {_and: [{o_orderstatus: {_eq: "F"}}, OWN(my_orders)]}, order_by: [{o_totalprice: desc}], limit: 5) { o_orderkey o_totalprice } }"#,
    r#"{ my_orders(where: {_and: [{lineitem: {_and: [{l_shipmode: {_eq: "AIR"}}, OWN(my_lineitem)]}}, OWN(my_orders)]}, order_by: {o_orderkey: asc}) { o_orderkey } }"#,
    "{ my_orders_aggregate(where: OWN(my_orders)) { aggregate { count sum { o_totalprice } max { o_orderdate } min { o_orderpriority } } } }",
    "{ my_orders_group_by(by: [o_orderstatus], where: OWN(my_orders), order_by: {keys: {o_orderstatus: asc}}) { keys { o_orderstatus } aggregate { count sum { o_totalprice } } } }",
    "{ my_orders_group_by(by: [o_orderpriority], where: OWN(my_orders), having: {count: {_gte: 2}}, order_by: {aggregate: {count: desc}}) { keys { o_orderpriority } aggregate { count } } }",
    "{ my_orders(where: OWN(my_orders), order_by: {o_orderkey: asc}, limit: 3) { o_orderkey lineitem(where: OWN(my_lineitem), order_by: {l_linenumber: asc}) { l_linenumber l_quantity } } }",
    "{ my_orders(where: OWN(my_orders), order_by: {o_orderkey: asc}) { o_orderkey lineitem_aggregate(where: OWN(my_lineitem)) { aggregate { count sum { l_quantity } } } } }",
    "{ my_lineitem(where: {_and: [{l_quantity: {_lt: 10}}, OWN(my_lineitem)]}, order_by: [{l_orderkey: asc}, {l_linenumber: asc}]) { l_orderkey l_linenumber orders { o_orderkey o_totalprice } } }",
    r#"{ my_lineitem(where: {_and: [{orders: {o_orderstatus: {_eq: "O"}}}, OWN(my_lineitem)]}, order_by: [{l_orderkey: asc}, {l_linenumber: asc}]) { l_orderkey l_linenumber } }"#,
    "{ my_lineitem_aggregate(where: OWN(my_lineitem)) { aggregate { count sum { l_quantity } avg { l_discount } } } }",
    "{ my_lineitem_group_by(by: [l_returnflag, l_linestatus], where: OWN(my_lineitem), order_by: [{keys: {l_returnflag: asc}}, {keys: {l_linestatus: asc}}]) { keys { l_returnflag l_linestatus } aggregate { count max { l_shipdate } } } }",
    "{ pg_customer(where: OWN(pg_customer)) { c_custkey c_name nation { n_name } } }",
    "{ pg_customer_aggregate(where: OWN(pg_customer)) { aggregate { count sum { c_acctbal } } } }",
    "{ pg_nation(order_by: {n_nationkey: asc}, limit: 5) { n_name region { r_name } } }",
];

/// The role's row filter of a collection as a `where` expression.
fn own_where(collection: &str, user: &str) -> String {
    match collection {
        "my_orders" => format!("{{o_custkey: {{_eq: {user}}}}}"),
        "my_lineitem" => format!("{{orders: {{o_custkey: {{_eq: {user}}}}}}}"),
        "pg_customer" => format!("{{c_custkey: {{_eq: {user}}}}}"),
        other => panic!("no row filter for {other}"),
    }
}

/// `query` with each `OWN(c)` replaced by `{}` (as the role) or by the
/// role's filter of `c` (as the admin).
fn expand(query: &str, user: Option<&str>) -> String {
    let mut out = String::new();
    let mut rest = query;
    while let Some(start) = rest.find("OWN(") {
        out.push_str(&rest[..start]);
        let end = start + rest[start..].find(')').unwrap();
        let collection = &rest[start + 4..end];
        out.push_str(&user.map_or_else(|| "{}".to_string(), |u| own_where(collection, u)));
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

#[tokio::test]
async fn a_role_sees_exactly_its_rows_through_graphql() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path()).await;
    let http = reqwest::Client::new();
    let ask = |query: String, user: Option<&str>| {
        let mut request = http
            .post(format!("{}/graphql", server.base))
            .bearer_auth(TOKEN)
            .json(&json!({ "query": query }));
        if let Some(user) = user {
            request = request
                .header("x-role", "customer")
                .header("x-user-id", user);
        }
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status().as_u16(), 200);
            response.json::<Value>().await.unwrap()
        }
    };
    let (mut compared, mut non_empty) = (0, 0);
    for user in ["370", "1", "3"] {
        for query in GRAPHQL_QUERIES {
            let role_body = ask(expand(query, None), Some(user)).await;
            let admin_body = ask(expand(query, Some(user)), None).await;
            assert!(
                role_body.get("errors").is_none(),
                "user {user}: {query}\n{role_body}"
            );
            assert_eq!(role_body, admin_body, "user {user}: {query}");
            compared += 1;
            let text = role_body["data"].to_string();
            non_empty += usize::from(text.contains(':') && !text.contains("[]}"));
        }
    }
    assert!(compared >= 45, "{compared} queries compared");
    assert!(
        non_empty > compared / 2,
        "{non_empty} of {compared} answers had rows"
    );
    // The hidden column and the hidden collection are not in the role's
    // schema; the role's mutations are none.
    for (query, word) in [
        ("{ my_orders { o_comment } }", "o_comment"),
        (
            "{ my_orders(where: {o_comment: {_eq: \"x\"}}) { o_orderkey } }",
            "o_comment",
        ),
        (
            "{ my_orders(order_by: {o_comment: asc}) { o_orderkey } }",
            "o_comment",
        ),
        ("{ pg_partsupp { ps_partkey } }", "pg_partsupp"),
        (
            "mutation { delete_my_orders(where: {}) { affected_rows } }",
            "mutations",
        ),
    ] {
        let body = ask(query.to_string(), Some("370")).await;
        assert_eq!(body["data"], Value::Null, "{query}: {body}");
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "validation_failed",
            "{query}: {body}"
        );
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains(word),
            "{query}: {body}"
        );
    }
    server.stop().await;
}
