//! The SQL endpoint over real sources: name resolution, cross-source joins
//! and aggregates with the right answers, filters and column pruning pushed
//! into each source's SQL (EXPLAIN), bound parameters and literals that stay
//! values, read-only refusals, and errors that say what is wrong.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use common::{TestServer, assert_error};
use reqwest::Method;
use serde_json::{Value, json};

/// A server with the demo's two SQLite sources (crm, shop).
async fn demo_server(dir: &std::path::Path) -> TestServer {
    let (crm, shop) = tributary::demo::create_databases(&dir.join("databases")).unwrap();
    let server = TestServer::start(&dir.join("data")).await;
    for (name, path) in [("crm", crm), ("shop", shop)] {
        let (status, body) = server
            .admin(
                Method::POST,
                "/admin/sources",
                Some(json!({"name": name, "url": format!("sqlite://{}", path.display())})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    server
}

async fn sql(server: &TestServer, body: Value) -> (u16, Value) {
    server.admin(Method::POST, "/api/sql", Some(body)).await
}

async fn rows(server: &TestServer, query: &str) -> Value {
    let (status, body) = sql(server, json!({"sql": query})).await;
    assert_eq!(status, 200, "{query}: {body}");
    body["rows"].clone()
}

#[tokio::test]
async fn names_resolve_three_ways() {
    let dir = tempfile::tempdir().unwrap();
    let server = demo_server(dir.path()).await;
    let expected = json!([["Acme Tools"], ["Borealis Energy"]]);
    assert_eq!(
        rows(
            &server,
            "SELECT name FROM crm.main.customers WHERE id < 3 ORDER BY id"
        )
        .await,
        expected
    );
    assert_eq!(
        rows(
            &server,
            "SELECT name FROM crm.customers WHERE id < 3 ORDER BY id"
        )
        .await,
        expected
    );
    assert_eq!(
        rows(
            &server,
            "SELECT name FROM customers WHERE id < 3 ORDER BY id"
        )
        .await,
        expected
    );

    // A bare name two sources share must be qualified; the error lists both.
    let (status, body) = server
        .admin(Method::POST, "/admin/sources", Some(json!({"name": "crm2", "url": format!("sqlite://{}", dir.path().join("databases/crm.db").display())})))
        .await;
    assert_eq!(status, 201, "{body}");
    let ambiguous = sql(&server, json!({"sql": "SELECT count(*) FROM customers"})).await;
    assert_error(
        &ambiguous,
        400,
        "invalid_query",
        &["ambiguous", "crm.main.customers", "crm2.main.customers"],
    );
    assert_eq!(
        rows(&server, "SELECT count(*) FROM crm2.customers").await,
        json!([[5]]),
        "a new source is usable at once"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_cross_source_aggregate_is_right_and_pushes_work_down() {
    let dir = tempfile::tempdir().unwrap();
    let server = demo_server(dir.path()).await;
    let query = "SELECT c.country, count(*) AS items, sum(i.quantity * i.unit_price) AS total
                 FROM shop.main.orders o
                 JOIN crm.main.customers c ON o.customer_id = c.id
                 JOIN shop.main.order_items i ON i.order_id = o.id
                 GROUP BY c.country ORDER BY c.country";
    assert_eq!(
        rows(&server, query).await,
        json!([
            ["DE", 3, "248.30"],
            ["IT", 1, "19.90"],
            ["NO", 2, "1722.00"],
            ["US", 1, "300.00"]
        ])
    );
    let (_, body) = sql(&server, json!({"sql": query})).await;
    assert_eq!(
        body["columns"][2],
        json!({"name": "total", "type": "Decimal128(38, 2)", "nullable": true}),
        "{body}"
    );

    // Filters written in the outer WHERE of a cross-source join reach each
    // source's SQL, and only the needed columns are read.
    let filtered = "SELECT c.name, o.id FROM shop.main.orders o JOIN crm.main.customers c ON o.customer_id = c.id
                    WHERE o.status = 'open' AND c.country = 'DE'";
    assert_eq!(rows(&server, filtered).await, json!([["Acme Tools", 2]]));
    let statements = server.source_statements(filtered).await;
    let shop = statements
        .iter()
        .find(|(s, _)| s == "shop")
        .expect("a statement for shop");
    let crm = statements
        .iter()
        .find(|(s, _)| s == "crm")
        .expect("a statement for crm");
    assert!(
        shop.1.contains("'open'") && shop.1.contains("status"),
        "{shop:?}"
    );
    assert!(
        !shop.1.contains("ordered_at"),
        "unused columns are pruned: {shop:?}"
    );
    assert!(
        crm.1.contains("'DE'") && crm.1.contains("country"),
        "{crm:?}"
    );
    assert!(
        !crm.1.contains("email"),
        "unused columns are pruned: {crm:?}"
    );

    // A single-source query becomes one statement with the aggregate inside.
    let one = server
        .source_statements("SELECT status, count(*) FROM shop.orders GROUP BY status")
        .await;
    assert_eq!(one.len(), 1, "{one:?}");
    assert!(one[0].1.to_lowercase().contains("group by"), "{one:?}");
    server.stop().await;
}

#[tokio::test]
async fn values_stay_values() {
    let dir = tempfile::tempdir().unwrap();
    let server = demo_server(dir.path()).await;
    // A literal with quotes is escaped for the source and matches nothing.
    assert_eq!(
        rows(
            &server,
            "SELECT id FROM crm.customers WHERE name = 'x'' OR ''1''=''1'"
        )
        .await,
        json!([])
    );
    // Bound parameters likewise.
    let (status, body) = sql(&server, json!({"sql": "SELECT id FROM crm.customers WHERE name = $1 OR id = $2", "params": ["x' OR '1'='1", 4]})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"], json!([[4]]));
    let (status, body) = sql(&server, json!({"sql": "SELECT name FROM crm.customers WHERE name = $1", "params": ["Città di Parma"]})).await;
    assert_eq!(
        (status, &body["rows"]),
        (200, &json!([["Città di Parma"]])),
        "{body}"
    );
    let bad = sql(&server, json!({"sql": "SELECT $1", "params": [{"a": 1}]})).await;
    assert_error(&bad, 400, "invalid_input", &["$1"]);
    server.stop().await;
}

#[tokio::test]
async fn only_queries_run_and_errors_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let server = demo_server(dir.path()).await;
    for statement in [
        "DELETE FROM crm.main.customers",
        "CREATE TABLE x (a int)",
        "INSERT INTO crm.main.segments VALUES ('a', 'b')",
        "SET datafusion.execution.batch_size = 1",
    ] {
        let response = sql(&server, json!({"sql": statement})).await;
        assert_error(&response, 400, "read_only", &["only queries"]);
    }
    assert_eq!(
        rows(&server, "SELECT count(*) FROM crm.customers").await,
        json!([[5]]),
        "nothing was deleted"
    );
    assert_error(
        &sql(&server, json!({"sql": "SELEC 1"})).await,
        400,
        "syntax_error",
        &["sql parser error", "SELEC", "Line: 1, Column: 1"],
    );
    assert_error(
        &sql(&server, json!({"sql": "SELECT * FROM crm.main.nope"})).await,
        400,
        "invalid_query",
        &["table 'crm.main.nope' not found"],
    );
    assert_error(
        &sql(&server, json!({"sql": "SELECT * FROM crm.nope"})).await,
        400,
        "invalid_query",
        &["table 'crm.nope' not found"],
    );
    assert_error(
        &sql(&server, json!({"sql": "SELECT colour FROM crm.customers"})).await,
        400,
        "invalid_query",
        &["colour"],
    );
    assert_error(
        &sql(&server, json!({"sql": "SELECT 1", "limit": 5})).await,
        422,
        "invalid_input",
        &["limit"],
    );
    let unauthorized = server
        .call(
            Method::POST,
            "/api/sql",
            Some(json!({"sql": "SELECT 1"})),
            None,
        )
        .await;
    assert_eq!(unauthorized.0, 401);
    server.stop().await;
}

/// A server over a PostgreSQL schema and a MariaDB database, registered as
/// the sources `names`: (server, its data dir).
async fn postgres_and_mariadb(
    schema: &str,
    database: &str,
    names: (&str, &str),
) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let pg = json!({"name": names.0, "url": common::postgres_url_with(None, None), "schemas": {"include": [schema]}});
    server.register(pg).await;
    let my = json!({"name": names.1, "url": common::mariadb_url_with_database(database)});
    server.register(my).await;
    (server, dir)
}

#[tokio::test]
async fn postgres_joined_with_mariadb() {
    let schema = common::postgres_schema(
        "CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, region text NOT NULL);
         INSERT INTO customers VALUES (1, 'Ann', 'EU'), (2, 'Bob', 'US'), (3, 'Cé', 'EU');",
    )
    .await;
    let database = common::mariadb_database(
        "CREATE TABLE orders (id INT PRIMARY KEY, customer_id INT NOT NULL, amount DECIMAL(12,2) NOT NULL, note VARCHAR(50));
         INSERT INTO orders VALUES (10, 1, 5.50, 'a'), (11, 1, 4.50, NULL), (12, 2, 100.00, 'b'), (13, 3, 1.25, 'c'), (14, 9, 7.00, 'orphan');",
    )
    .await;
    let (server, _dir) = postgres_and_mariadb(&schema, &database, ("crm", "shop")).await;

    let query = format!(
        "SELECT c.region, count(*) AS orders, sum(o.amount) AS total
         FROM shop.{database}.orders o JOIN crm.{schema}.customers c ON c.id = o.customer_id
         WHERE o.amount > 2 GROUP BY c.region ORDER BY c.region"
    );
    assert_eq!(
        rows(&server, &query).await,
        json!([["EU", 2, "10.00"], ["US", 1, "100.00"]])
    );
    let statements = server.source_statements(&query).await;
    let shop = statements
        .iter()
        .find(|(s, _)| s == "shop")
        .expect("shop statement");
    assert!(
        shop.1.contains('`') && shop.1.contains("> 2"),
        "MySQL dialect, filter pushed: {shop:?}"
    );
    assert!(!shop.1.contains("note"), "{shop:?}");
    let crm = statements
        .iter()
        .find(|(s, _)| s == "crm")
        .expect("crm statement");
    assert!(crm.1.contains('"'), "PostgreSQL dialect: {crm:?}");

    // The default schema of each source: `source.table`.
    assert_eq!(
        rows(&server, "SELECT count(*) FROM shop.orders").await,
        json!([[5]])
    );
    server.stop().await;
    common::drop_postgres_schema(&schema).await;
    common::drop_mariadb_database(&database).await;
}

/// JSON columns compare, sort and group as their text, as the engine holds
/// them — in PostgreSQL too, where `jsonb` has no string operators and
/// sorts as jsonb, and `json` has no equality — and such filters still run
/// in the source.
#[tokio::test]
async fn json_columns_compare_sort_and_group_as_their_text() {
    let schema = common::postgres_schema(
        r#"CREATE TABLE docs (id int PRIMARY KEY, meta jsonb, raw json);
         INSERT INTO docs VALUES (1, '[2]', '{"b": 1}'), (2, '[1, 2, 3]', '{"a": 2}'),
           (3, '{"x": "it''s"}', '[1]'), (4, NULL, NULL), (5, '[10]', '{"a": 2}');"#,
    )
    .await;
    let database = common::mariadb_database(
        r#"CREATE TABLE notes (id INT PRIMARY KEY, doc JSON);
         INSERT INTO notes VALUES (1, '["B"]'), (2, '["b"]'), (3, '["a"]'), (4, '["b "]');
         CREATE TABLE tags (id INT PRIMARY KEY, doc JSON);
         INSERT INTO tags VALUES (7, '[1]'), (8, '[1, 2, 3]'), (9, '{"a": 2}'), (10, '[2]');"#,
    )
    .await;
    let (server, _dir) = postgres_and_mariadb(&schema, &database, ("pg", "my")).await;
    let docs = format!("pg.{schema}.docs");
    let cases = [
        // jsonb has no LIKE; upper() takes text.
        (
            format!("SELECT id FROM {docs} WHERE meta LIKE '%2%' ORDER BY id"),
            json!([[1], [2]]),
        ),
        (
            format!("SELECT upper(meta) FROM {docs} WHERE id = 3"),
            json!([[r#"{"X": "IT'S"}"#]]),
        ),
        // The text's order, not jsonb's (which puts `[2]` and `[10]` first).
        (
            format!("SELECT id FROM {docs} ORDER BY meta, id"),
            json!([[2], [5], [1], [3], [4]]),
        ),
        (
            format!("SELECT id FROM {docs} WHERE meta <> '[]' ORDER BY meta DESC"),
            json!([[3], [1], [5], [2]]),
        ),
        (
            format!("SELECT id FROM {docs} WHERE meta >= '[2]' ORDER BY id"),
            json!([[1], [3]]),
        ),
        // `json` has no equality: grouping, DISTINCT, joins and windows on it.
        (
            format!("SELECT raw, count(*) FROM {docs} GROUP BY raw ORDER BY raw"),
            json!([
                ["[1]", 1],
                [r#"{"a": 2}"#, 2],
                [r#"{"b": 1}"#, 1],
                [null, 1]
            ]),
        ),
        (
            format!("SELECT DISTINCT raw FROM {docs} WHERE raw IS NOT NULL ORDER BY raw"),
            json!([["[1]"], [r#"{"a": 2}"#], [r#"{"b": 1}"#]]),
        ),
        (
            format!(
                "SELECT raw FROM {docs} WHERE id < 3 UNION SELECT raw FROM {docs} WHERE id > 1 ORDER BY raw"
            ),
            json!([["[1]"], [r#"{"a": 2}"#], [r#"{"b": 1}"#], [null]]),
        ),
        (
            format!(
                "SELECT a.id, b.id FROM {docs} a JOIN {docs} b ON a.raw = b.raw AND a.id < b.id"
            ),
            json!([[2, 5]]),
        ),
        (
            format!(
                "SELECT id, row_number() OVER (PARTITION BY raw ORDER BY id DESC) FROM {docs} ORDER BY id"
            ),
            json!([[1, 1], [2, 2], [3, 1], [4, 1], [5, 1]]),
        ),
        (
            format!("SELECT max(meta), min(raw) FROM {docs}"),
            json!([[r#"{"x": "it's"}"#, "[1]"]]),
        ),
        // Across sources too, each side's build or probe: the join (and
        // any key list the build side sends the other source) is on the
        // text.
        (
            format!(
                "SELECT d.id, t.id FROM {docs} d JOIN my.{database}.tags t ON d.raw = t.doc ORDER BY 1, 2"
            ),
            json!([[2, 9], [3, 7], [5, 9]]),
        ),
        (
            format!(
                "SELECT t.id, d.id FROM my.{database}.tags t JOIN {docs} d ON t.doc = d.meta ORDER BY 1, 2"
            ),
            json!([[8, 2], [10, 1]]),
        ),
        // Documents selected as they are.
        (
            format!("SELECT meta, raw FROM {docs} WHERE id = 2"),
            json!([["[1, 2, 3]", r#"{"a": 2}"#]]),
        ),
        // MariaDB's JSON is text: compared by its bytes there as any string.
        (
            format!("SELECT id FROM my.{database}.notes WHERE doc = '[\"b\"]'"),
            json!([[2]]),
        ),
        (
            format!("SELECT id FROM my.{database}.notes ORDER BY doc"),
            json!([[1], [3], [4], [2]]),
        ),
    ];
    for (query, expected) in cases {
        assert_eq!(rows(&server, &query).await, expected, "{query}");
    }
    // The filters ran in the sources: PostgreSQL compared the text.
    let query = format!("SELECT id FROM {docs} WHERE meta LIKE '%2%'");
    let statements = server.source_statements(&query).await;
    assert!(
        matches!(statements.as_slice(), [(s, sql)] if s == "pg" && sql.contains("CAST(") && sql.contains("LIKE")),
        "{statements:?}"
    );
    let query = format!("SELECT id FROM my.{database}.notes WHERE doc = '[\"b\"]'");
    let statements = server.source_statements(&query).await;
    assert!(
        matches!(statements.as_slice(), [(s, sql)] if s == "my" && sql.contains("WHERE")),
        "{statements:?}"
    );
    server.stop().await;
    common::drop_postgres_schema(&schema).await;
    common::drop_mariadb_database(&database).await;
}

/// Oracle MySQL's `JSON` compares as JSON (`doc = '["b"]'` matches
/// `["b"]` only as a document); its text, `CAST(doc AS CHAR)`, is what is
/// compared — in MySQL, by its bytes as any string.
#[tokio::test]
async fn mysql_json_columns_are_compared_as_their_text_in_mysql() {
    use mysql_async::prelude::Queryable;
    let url = tributary_connector::testkit::mysql9_url();
    // Over TCP: the chroot's server names a socket path that is MariaDB's here.
    let opts = mysql_async::OptsBuilder::from_opts(mysql_async::Opts::from_url(&url).unwrap())
        .prefer_socket(false);
    let mut conn = mysql_async::Conn::new(opts)
        .await
        .unwrap_or_else(|e| panic!("MySQL 9 at {url} does not answer ({e}); run .ci/setup-mysql"));
    let table = tributary_connector::testkit::unique_name("json");
    conn.query_drop(format!(
        "CREATE TABLE {table} (id INT PRIMARY KEY, doc JSON)"
    ))
    .await
    .unwrap();
    conn.query_drop(format!(
        r#"INSERT INTO {table} VALUES (1, '["B"]'), (2, '["b"]'), (3, '{{"a": 1, "b": [1, 2]}}'), (4, NULL), (5, '["b "]')"#
    ))
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    server.register(json!({"name": "my9", "url": url})).await;
    let cases = [
        (
            format!("SELECT id FROM my9.tributary_test.{table} WHERE doc = '[\"b\"]'"),
            json!([[2]]),
        ),
        (
            format!(
                r#"SELECT id FROM my9.tributary_test.{table} WHERE doc LIKE '%"a": 1%' ORDER BY id"#
            ),
            json!([[3]]),
        ),
        (
            format!("SELECT id FROM my9.tributary_test.{table} WHERE doc > '[\"b\"]' ORDER BY id"),
            json!([[3]]),
        ),
        (
            format!("SELECT doc FROM my9.tributary_test.{table} WHERE id = 3"),
            json!([[r#"{"a": 1, "b": [1, 2]}"#]]),
        ),
        (
            format!("SELECT id FROM my9.tributary_test.{table} ORDER BY doc, id"),
            json!([[1], [5], [2], [3], [4]]),
        ),
    ];
    for (query, expected) in cases {
        assert_eq!(rows(&server, &query).await, expected, "{query}");
    }
    // The comparison ran in MySQL, on the text.
    let query = format!("SELECT id FROM my9.tributary_test.{table} WHERE doc = '[\"b\"]'");
    let statements = server.source_statements(&query).await;
    assert!(
        matches!(statements.as_slice(), [(s, sql)] if s == "my9" && sql.contains("CAST(`doc` AS CHAR)")),
        "{statements:?}"
    );
    // Edited in place as jsonb's operators edit (by the server: MySQL's
    // `JSON_MERGE_PRESERVE` would pair `b` up, not replace it).
    let mutation = format!(
        r#"mutation {{ update_my9_{table}_by_pk(pk_columns: {{id: 3}}, _append: {{doc: {{b: 0, c: "x"}}}}) {{ doc }}
                     d: update_my9_{table}_by_pk(pk_columns: {{id: 1}}, _delete_key: {{doc: "B"}}) {{ doc }} }}"#
    );
    let (status, body) = server
        .admin(Method::POST, "/graphql", Some(json!({"query": mutation})))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"],
        json!({format!("update_my9_{table}_by_pk"): {"doc": {"a": 1, "b": 0, "c": "x"}}, "d": {"doc": []}}),
        "{body}"
    );
    let stored: Option<String> = conn
        .query_first(format!(
            "SELECT CAST(doc AS CHAR) FROM {table} WHERE id = 3"
        ))
        .await
        .unwrap();
    assert_eq!(stored.as_deref(), Some(r#"{"a": 1, "b": 0, "c": "x"}"#));
    server.stop().await;
    conn.query_drop(format!("DROP TABLE {table}"))
        .await
        .unwrap();
    conn.disconnect().await.unwrap();
}

#[tokio::test]
async fn a_source_that_is_down_is_named() {
    let schema =
        common::postgres_schema("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);")
            .await;
    let proxy = common::TcpProxy::start(common::postgres_addr()).await;
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let far = json!({"name": "far", "url": common::postgres_url_with(Some(proxy.addr), None), "schemas": {"include": [schema]},
                     "pool": {"connect_timeout_ms": 1000, "acquire_timeout_ms": 1000}});
    server.register(far).await;
    assert_eq!(
        rows(&server, &format!("SELECT id FROM far.{schema}.t")).await,
        json!([[1]])
    );
    proxy.cut().await;
    let down = sql(
        &server,
        json!({"sql": format!("SELECT id FROM far.{schema}.t")}),
    )
    .await;
    assert_error(&down, 503, "source_unavailable", &["far"]);
    server.stop().await;
    common::drop_postgres_schema(&schema).await;
}

#[tokio::test]
async fn results_stream_as_ndjson_csv_and_arrow() {
    let dir = tempfile::tempdir().unwrap();
    let server = demo_server(dir.path()).await;
    let query = json!({"sql": "SELECT id, name, credit_limit FROM crm.customers WHERE id <= 2 ORDER BY id"});

    let (status, content_type, body) = server.sql_as("application/x-ndjson", query.clone()).await;
    assert_eq!(
        (status, content_type.as_str()),
        (200, "application/x-ndjson")
    );
    let lines: Vec<Value> = String::from_utf8(body)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines,
        vec![
            json!({"id": 1, "name": "Acme Tools", "credit_limit": "5000.00"}),
            json!({"id": 2, "name": "Borealis Energy", "credit_limit": "250000.00"}),
        ]
    );
    // Keys in column order; a repeated name is numbered, not lost.
    let twice = json!({"sql": "SELECT c.name, c.id, o.id FROM crm.customers c JOIN crm.customers o ON o.id = c.id WHERE c.id = 1"});
    let (_, _, body) = server.sql_as("application/x-ndjson", twice).await;
    assert_eq!(
        String::from_utf8(body).unwrap(),
        "{\"name\":\"Acme Tools\",\"id\":1,\"id_2\":1}\n"
    );

    let (status, content_type, body) = server.sql_as("text/csv", query.clone()).await;
    assert_eq!(
        (status, content_type.as_str()),
        (200, "text/csv; charset=utf-8")
    );
    assert_eq!(
        String::from_utf8(body).unwrap(),
        "id,name,credit_limit\n1,Acme Tools,5000.00\n2,Borealis Energy,250000.00\n"
    );
    let (_, _, empty) = server
        .sql_as(
            "text/csv",
            json!({"sql": "SELECT id FROM crm.customers WHERE id < 0"}),
        )
        .await;
    assert_eq!(
        String::from_utf8(empty).unwrap(),
        "id\n",
        "a header even without rows"
    );

    let (status, content_type, body) = server
        .sql_as("application/vnd.apache.arrow.stream", query.clone())
        .await;
    assert_eq!(
        (status, content_type.as_str()),
        (200, "application/vnd.apache.arrow.stream")
    );
    let reader =
        datafusion::arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(body), None)
            .unwrap();
    let batches: Vec<_> = reader.collect::<Result<_, _>>().unwrap();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 2);
    assert_eq!(
        batches[0].schema().field(2).data_type().to_string(),
        "Decimal128(12, 2)"
    );

    let (status, _, body) = server.sql_as("application/xml", query).await;
    assert_eq!(status, 406, "{}", String::from_utf8_lossy(&body));
    server.stop().await;
}

/// A server over a 5,000-row PostgreSQL table `big` (k = 1..5000) and a
/// MariaDB table `small` holding `keys`: (server, its data dir, schema, database).
async fn big_and_small(keys: &[i64]) -> (TestServer, tempfile::TempDir, String, String) {
    let schema = common::postgres_schema(
        "CREATE TABLE big (k int PRIMARY KEY, v text);
         INSERT INTO big SELECT g, 'v' || g FROM generate_series(1, 5000) g;
         ANALYZE big;",
    )
    .await;
    let values: Vec<String> = keys.iter().map(|k| format!("({k})")).collect();
    let database = common::mariadb_database(&format!(
        "CREATE TABLE small (k INT PRIMARY KEY); INSERT INTO small VALUES {}; ANALYZE TABLE small;",
        values.join(", ")
    ))
    .await;
    let (server, dir) = postgres_and_mariadb(&schema, &database, ("pg", "my")).await;
    (server, dir, schema, database)
}

/// Rows a source has delivered so far (`tributary_source_rows_total`).
async fn rows_read(server: &TestServer, source: &str) -> Option<u64> {
    let (_, metrics) = server.get_text("/metrics").await;
    let prefix = format!("tributary_source_rows_total{{source=\"{source}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|n| n.trim().parse().unwrap())
}

#[tokio::test]
async fn the_catalog_row_estimates_pick_the_hash_join_build_side() {
    let (server, _dir, schema, database) = big_and_small(&[1, 2, 3]).await;

    // The big table is named first; the estimates make the small one the build side.
    let query =
        format!("SELECT count(*) FROM pg.{schema}.big b JOIN my.{database}.small s ON b.k = s.k");
    assert_eq!(rows(&server, &query).await, json!([[3]]));
    let (_, body) = sql(&server, json!({"sql": query, "explain": true})).await;
    let plan = body["plan"].as_str().unwrap();
    let join = plan.find("HashJoinExec").expect("a hash join");
    let small = plan[join..]
        .find("name=my")
        .expect("small side in the plan");
    let big = plan[join..].find("name=pg").expect("big side in the plan");
    assert!(
        small < big,
        "the small table builds the hash table:\n{plan}"
    );

    // Semi-join reduction: the big side's SQL is narrowed to the small side's
    // keys at run time, so it reads a handful of rows, not 5,000.
    assert_eq!(rows_read(&server, "my").await, Some(3));
    let big = rows_read(&server, "pg")
        .await
        .expect("rows read from pg are counted");
    assert!(big <= 3, "the join read {big} rows of the big table");
    server.stop().await;
    common::drop_postgres_schema(&schema).await;
    common::drop_mariadb_database(&database).await;
}

/// Semi-join reduction beyond DataFusion's 150-key default: a build side of
/// 1,250 keys goes to the other source as IN lists of at most 1,000 keys,
/// so it reads 1,250 rows of 5,000 — key bounds alone (1..2,499) would read
/// 2,499.
#[tokio::test]
async fn a_thousand_join_keys_reach_the_other_source_as_lists() {
    let odd: Vec<i64> = (0..1250).map(|i| 2 * i + 1).collect();
    let (server, _dir, schema, database) = big_and_small(&odd).await;

    let query = format!(
        "SELECT b.k, b.v FROM pg.{schema}.big b JOIN my.{database}.small s ON b.k = s.k ORDER BY b.k"
    );
    let rows = rows(&server, &query).await;
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 1250);
    assert_eq!(rows[0], json!([1, "v1"]));
    assert_eq!(rows[1249], json!([2499, "v2499"]));
    assert_eq!(rows_read(&server, "pg").await, Some(1250));
    server.stop().await;
    common::drop_postgres_schema(&schema).await;
    common::drop_mariadb_database(&database).await;
}

/// A build side of thousands of keys that fill nine tenths of their range
/// or more (a table's serial keys, some deleted) goes to the other source
/// as that range, not as lists of keys to parse and test: 1,235 keys of
/// 1..1,300 read the 1,300 rows of the range (lists would read 1,235), and
/// the join answers the 1,235.
#[tokio::test]
async fn thousands_of_join_keys_that_fill_their_range_reach_the_other_source_as_it() {
    let most: Vec<i64> = (1..=1300).filter(|k| k % 20 != 7).collect();
    let (server, _dir, schema, database) = big_and_small(&most).await;
    let query = format!(
        "SELECT count(*), min(b.k), max(b.k) FROM pg.{schema}.big b JOIN my.{database}.small s ON b.k = s.k"
    );
    assert_eq!(rows(&server, &query).await, json!([[1235, 1, 1300]]));
    assert_eq!(rows_read(&server, "pg").await, Some(1300));
    server.stop().await;
    common::drop_postgres_schema(&schema).await;
    common::drop_mariadb_database(&database).await;
}

/// `analyze` tells how long a statement waited for one of its source's
/// pooled connections: with a pool of one held by an update waiting on a
/// row lock, the query's statement waits until the lock is released half
/// a second later.
#[tokio::test]
async fn analyze_shows_a_statement_waiting_for_a_pooled_connection() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (schema, other) = common::pg_source_of_one_locked_connection(&server, 10_000).await;
    let update = server.admin(Method::PATCH, "/api/pg_t/1", Some(json!({"v": 3})));
    let analyzed = async {
        common::wait_for_lock_wait_pg(&schema).await;
        let query = json!({"sql": format!("SELECT v FROM pg.{schema}.t"), "analyze": true});
        let analyze = server.admin(Method::POST, "/api/sql", Some(query));
        let release = async {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            other.batch_execute("COMMIT").await.unwrap();
        };
        tokio::join!(analyze, release).0
    };
    let ((status, updated), (analyzed_status, body)) = tokio::join!(update, analyzed);
    assert_eq!(status, 200, "{updated}");
    assert_eq!(analyzed_status, 200, "{body}");
    let run = &body["sources"][0];
    let wait = run["connection_wait"]
        .as_f64()
        .unwrap_or_else(|| panic!("{body}"));
    assert!(wait >= 0.3, "the lock was held half a second: {body}");
    let (sent, first) = (
        run["sent_at"].as_f64().unwrap(),
        run["first_row_at"].as_f64().unwrap(),
    );
    assert!(wait <= first - sent, "{body}");
    server.stop().await;
    common::drop_postgres_schema(&schema).await;
}

/// `analyze: true` runs a query and answers, instead of its rows, what
/// each source statement did: the SQL as sent — the runtime filter the
/// join's build side added, which `explain` cannot show — its rows and
/// when it was sent, gave its first row and ended. The probe side is sent
/// after the build side ended (it waited for its keys).
#[tokio::test]
async fn analyze_shows_each_statement_as_sent_with_its_rows_and_times() {
    let (server, _dir, schema, database) = big_and_small(&[2, 4, 4000]).await;
    let query = format!(
        "SELECT b.v FROM pg.{schema}.big b JOIN my.{database}.small s ON b.k = s.k ORDER BY b.v"
    );
    assert_eq!(
        rows(&server, &query).await,
        json!([["v2"], ["v4"], ["v4000"]])
    );

    let (status, body) = sql(&server, json!({"sql": query, "analyze": true})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"], json!(3), "{body}");
    assert!(
        body.get("columns").is_none(),
        "no rows are answered: {body}"
    );
    let plan = body["plan"].as_str().unwrap();
    assert!(
        plan.contains("HashJoinExec") && plan.contains("output_rows=3"),
        "{plan}"
    );
    let sources = body["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 2, "{body}");
    let (small, big) = (&sources[0], &sources[1]);
    assert_eq!(small["source"], "my", "sent first: the build side ({body})");
    assert_eq!(small["rows"], json!(3));
    assert_eq!(big["source"], "pg");
    // Only the three keys' rows were read: the runtime filter is in the SQL as sent.
    assert_eq!(big["rows"], json!(3), "{body}");
    let sent = big["sql"].as_str().unwrap();
    assert!(
        sent.contains("tributary_runtime") && sent.contains("4000"),
        "{sent}"
    );
    let statements = server.source_statements(&query).await;
    assert!(
        statements
            .iter()
            .all(|(_, sql)| !sql.contains("tributary_runtime")),
        "explain shows the statements before the runtime filter: {statements:?}"
    );
    let seconds = |run: &Value, at: &str| run[at].as_f64().unwrap_or_else(|| panic!("{at}: {run}"));
    for run in sources {
        let (sent, first, ended) = (
            seconds(run, "sent_at"),
            seconds(run, "first_row_at"),
            seconds(run, "ended_at"),
        );
        assert!(0.0 <= sent && sent <= first && first <= ended, "{run}");
        assert!(ended <= body["seconds"].as_f64().unwrap(), "{body}");
        let wait = seconds(run, "connection_wait");
        assert!(0.0 <= wait && wait <= first - sent, "{run}");
    }
    assert!(
        seconds(big, "sent_at") >= seconds(small, "ended_at"),
        "the probe side waits for the build side's keys: {body}"
    );

    // A build side without rows: the other side is never read, and is
    // listed as not sent.
    let none = format!(
        "SELECT b.v FROM pg.{schema}.big b JOIN my.{database}.small s ON b.k = s.k WHERE s.k < 0"
    );
    let (status, body) = sql(&server, json!({"sql": none, "analyze": true})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"], json!(0), "{body}");
    let sources = body["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 2, "{body}");
    assert_eq!(
        (&sources[0]["source"], &sources[0]["rows"]),
        (&json!("my"), &json!(0))
    );
    assert_eq!(sources[1]["source"], "pg", "{body}");
    assert_eq!(sources[1]["sql"], Value::Null, "{body}");
    assert_eq!(sources[1]["rows"], json!(0), "{body}");

    // The two modes exclude each other.
    let response = sql(
        &server,
        json!({"sql": query, "analyze": true, "explain": true}),
    )
    .await;
    assert_error(&response, 400, "invalid_input", &["explain and analyze"]);
    server.stop().await;
    common::drop_postgres_schema(&schema).await;
    common::drop_mariadb_database(&database).await;
}

/// Join keys of different integer widths (`int` in PostgreSQL, `BIGINT` in
/// MariaDB) still narrow the other source: the join compares the `int`
/// widened, and the keys reach PostgreSQL's statement as they are. So do
/// integer keys joined to `numeric(10, 0)` ones (Oracle's `NUMBER(10)`
/// keys are such decimals), and decimal keys joined to an `int` column.
#[tokio::test]
async fn keys_of_a_wider_integer_type_reach_the_other_source() {
    let schema = common::postgres_schema(
        "CREATE TABLE big (k int PRIMARY KEY, v text);
         INSERT INTO big SELECT g, 'v' || g FROM generate_series(1, 5000) g;
         CREATE TABLE big_numeric (k numeric(10, 0) PRIMARY KEY, v text);
         INSERT INTO big_numeric SELECT k, v FROM big;
         ANALYZE big; ANALYZE big_numeric;",
    )
    .await;
    let database = common::mariadb_database(
        "CREATE TABLE small (k BIGINT PRIMARY KEY); INSERT INTO small VALUES (7), (4000), (3000000000);
         CREATE TABLE small_decimal (k DECIMAL(10, 2) PRIMARY KEY); INSERT INTO small_decimal VALUES (7), (7.5), (4000);
         ANALYZE TABLE small, small_decimal;",
    )
    .await;
    let (server, _dir) = postgres_and_mariadb(&schema, &database, ("pg", "my")).await;
    let query = format!(
        "SELECT b.v FROM pg.{schema}.big b JOIN my.{database}.small s ON b.k = s.k ORDER BY b.v"
    );
    assert_eq!(rows(&server, &query).await, json!([["v4000"], ["v7"]]));
    assert_eq!(rows_read(&server, "pg").await, Some(2));
    let query = format!(
        "SELECT b.v FROM pg.{schema}.big_numeric b JOIN my.{database}.small s ON b.k = s.k ORDER BY b.v"
    );
    assert_eq!(rows(&server, &query).await, json!([["v4000"], ["v7"]]));
    assert_eq!(rows_read(&server, "pg").await, Some(4));
    // Decimal keys reach an int column as its integers (its index serves
    // them); 7.5 matches no integer and is left out.
    let query = format!(
        "SELECT b.v FROM pg.{schema}.big b JOIN my.{database}.small_decimal s ON b.k = s.k ORDER BY b.v"
    );
    assert_eq!(rows(&server, &query).await, json!([["v4000"], ["v7"]]));
    assert_eq!(rows_read(&server, "pg").await, Some(6));
    let (_, analysis) = sql(&server, json!({"sql": query, "analyze": true})).await;
    let sent = analysis["sources"]
        .as_array()
        .and_then(|runs| runs.iter().find(|run| run["source"] == "pg"))
        .and_then(|run| run["sql"].as_str())
        .unwrap_or_default()
        .to_string();
    assert!(sent.contains("IN (7, 4000)"), "{analysis}");
    server.stop().await;
    common::drop_postgres_schema(&schema).await;
    common::drop_mariadb_database(&database).await;
}

/// A join on two columns narrows the other source by each column's keys:
/// pairs (1, 1) and (400, 3) read the 4 rows with a in (1, 400) and b in
/// (1, 3) — the keys' bounds alone would read 1,200.
#[tokio::test]
async fn keys_of_a_join_on_two_columns_reach_the_other_source() {
    let schema = common::postgres_schema(
        "CREATE TABLE big (a int, b int, v text, PRIMARY KEY (a, b));
         INSERT INTO big SELECT g / 10, g % 10, 'v' || g FROM generate_series(0, 4999) g;
         ANALYZE big;",
    )
    .await;
    let database = common::mariadb_database(
        "CREATE TABLE small (a INT, b INT, PRIMARY KEY (a, b)); INSERT INTO small VALUES (1, 1), (400, 3); ANALYZE TABLE small;",
    )
    .await;
    let (server, _dir) = postgres_and_mariadb(&schema, &database, ("pg", "my")).await;

    let query = format!(
        "SELECT g.v FROM pg.{schema}.big g JOIN my.{database}.small s ON g.a = s.a AND g.b = s.b ORDER BY g.v"
    );
    assert_eq!(rows(&server, &query).await, json!([["v11"], ["v4003"]]));
    assert_eq!(rows_read(&server, "pg").await, Some(4));
    server.stop().await;
    common::drop_postgres_schema(&schema).await;
    common::drop_mariadb_database(&database).await;
}

#[tokio::test]
async fn a_query_past_the_time_limit_is_cancelled_at_the_source() {
    let schema = common::postgres_schema(
        "CREATE TABLE big (k int PRIMARY KEY); INSERT INTO big SELECT generate_series(1, 30000); ANALYZE big;",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let limit = tributary::config::FileConfig {
        query_timeout_secs: Some(1),
        ..Default::default()
    };
    let server = TestServer::start_config(dir.path(), Some(common::TOKEN), 0, limit).await;
    server.register(json!({"name": "pg", "url": common::postgres_url_with(None, None), "schemas": {"include": [schema]}})).await;
    // Counting 450 million pairs takes PostgreSQL far longer than a second.
    let query =
        format!("SELECT count(*) FROM pg.{schema}.big a JOIN pg.{schema}.big b ON a.k < b.k");
    let statements = server.source_statements(&query).await;
    assert_eq!(
        statements.len(),
        1,
        "the join runs in PostgreSQL: {statements:?}"
    );
    let response = sql(&server, json!({"sql": query})).await;
    assert_error(&response, 504, "query_timeout", &["1s"]);
    // The statement does not go on running in PostgreSQL.
    let client = common::postgres().await;
    let mut running = -1;
    for _ in 0..40 {
        running = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE $1",
                &[&format!("%{schema}%big%")],
            )
            .await
            .unwrap()
            .get::<_, i64>(0);
        if running == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    if running != 0 {
        // What still runs, and since when (the request ended 4 s ago).
        let rows = client
            .query(
                "SELECT pid, backend_type, (now() - backend_start)::text, (now() - query_start)::text, \
                        wait_event_type, wait_event, left(query, 300) \
                 FROM pg_stat_activity WHERE state = 'active' AND query LIKE $1",
                &[&format!("%{schema}%big%")],
            )
            .await
            .unwrap();
        let seen: Vec<String> = rows
            .iter()
            .map(|r| {
                format!(
                    "pid {} {} connected {:?} ago, started {:?} ago, waiting {:?}/{:?}: {}",
                    r.get::<_, i32>(0),
                    r.get::<_, Option<String>>(1).unwrap_or_default(),
                    r.get::<_, Option<String>>(2),
                    r.get::<_, Option<String>>(3),
                    r.get::<_, Option<String>>(4),
                    r.get::<_, Option<String>>(5),
                    r.get::<_, Option<String>>(6).unwrap_or_default(),
                )
            })
            .collect();
        panic!("the source's query was not cancelled: {seen:#?}");
    }
    server.stop().await;
    common::drop_postgres_schema(&schema).await;
}

#[tokio::test]
async fn a_mariadb_query_past_the_time_limit_is_killed_at_the_source() {
    let database = common::mariadb_database(
        "CREATE TABLE d (k INT); INSERT INTO d VALUES (0), (1), (2), (3), (4), (5), (6), (7), (8), (9);
         CREATE TABLE big (k INT PRIMARY KEY);
         INSERT INTO big SELECT a.k + 10 * b.k + 100 * c.k + 1000 * e.k FROM d a, d b, d c, d e WHERE e.k < 2;
         ANALYZE TABLE big;",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let limit = tributary::config::FileConfig {
        query_timeout_secs: Some(1),
        ..Default::default()
    };
    let server = TestServer::start_config(dir.path(), Some(common::TOKEN), 0, limit).await;
    let my = json!({"name": "my", "url": common::mariadb_url_with_database(&database)});
    server.register(my).await;
    // Counting 1.3 billion triples takes MariaDB far longer than a second
    // (and longer than the test waits below: the source's own statement
    // limit of 30 s is not what ends it).
    let big = format!("my.{database}.big");
    let query =
        format!("SELECT count(*) FROM {big} a JOIN {big} b ON a.k < b.k JOIN {big} c ON b.k < c.k");
    let statements = server.source_statements(&query).await;
    assert_eq!(
        statements.len(),
        1,
        "the joins run in MariaDB: {statements:?}"
    );
    let response = sql(&server, json!({"sql": query})).await;
    assert_error(&response, 504, "query_timeout", &["1s"]);
    // The statement does not go on running in MariaDB.
    let mut client = common::mariadb().await;
    let mut running = -1;
    for _ in 0..100 {
        use mysql_async::prelude::Queryable;
        running = client
            .exec_first(
                "SELECT count(*) FROM information_schema.PROCESSLIST WHERE DB = ? AND COMMAND <> 'Sleep'",
                (database.as_str(),),
            )
            .await
            .unwrap()
            .unwrap();
        if running == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(running, 0, "the source's statement was killed");
    client.disconnect().await.unwrap();
    server.stop().await;
    common::drop_mariadb_database(&database).await;
}

/// The fast path: a by-key query on one PostgreSQL source is planned once
/// and then sent as a prepared statement with `$1` bound by PostgreSQL (its
/// backend's last statement shows the parameter, where the planner would
/// have written the value). Every answer is the planner's: other keys,
/// no match, a key out of the column's range (PostgreSQL refuses it as
/// `int4`; the planner answers no rows), a value of another type, and a
/// cross-source query with a parameter.
#[tokio::test]
async fn single_source_queries_take_the_fast_path_with_the_same_answers() {
    let schema = common::postgres_schema(
        "CREATE TABLE fast (k int PRIMARY KEY, name text, price numeric(10,2));
         INSERT INTO fast SELECT g, 'n' || g, g * 1.5 FROM generate_series(1, 100) g;",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let server = demo_server(dir.path()).await;
    let pg = json!({"name": "pg", "url": common::postgres_url_with(None, None), "schemas": {"include": [schema]}});
    server.register(pg).await;

    let by_key = format!("SELECT k, name, price FROM pg.{schema}.fast WHERE k = $1");
    let ask = |params: Value| {
        let body = json!({"sql": by_key, "params": params});
        let server = &server;
        async move {
            let (status, body) = sql(server, body).await;
            assert_eq!(status, 200, "{body}");
            body
        }
    };
    // Planned the first two times (the second learns the shape), then direct.
    let first = ask(json!([7])).await;
    assert_eq!(first["rows"], json!([[7, "n7", "10.50"]]));
    assert_eq!(ask(json!([3])).await["rows"], json!([[3, "n3", "4.50"]]));
    let second = ask(json!([42])).await;
    assert_eq!(second["rows"], json!([[42, "n42", "63.00"]]));
    assert_eq!(first["columns"], second["columns"], "same schema both ways");
    // PostgreSQL ran the statement with its parameter open.
    let client = common::postgres().await;
    let prepared = client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE $1",
            &[&format!("%{schema}%fast%$1%")],
        )
        .await
        .unwrap()
        .get::<_, i64>(0);
    assert!(prepared >= 1, "no backend ran the statement with $1");

    assert_eq!(ask(json!([1000])).await["rows"], json!([]));
    assert_eq!(ask(json!([5_000_000_000_i64])).await["rows"], json!([]));
    assert_eq!(ask(json!(["8"])).await["rows"], json!([[8, "n8", "12.00"]]));

    // Unnamed aggregates under ORDER BY (the shape of a dashboard query).
    let grouped = format!(
        "SELECT name, count(*), sum(price) FROM pg.{schema}.fast GROUP BY name ORDER BY 1 LIMIT 2"
    );
    for _ in 0..3 {
        let (status, body) = sql(&server, json!({"sql": grouped})).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["rows"],
            json!([["n1", 1, "1.50"], ["n10", 1, "15.00"]])
        );
    }

    // By name and by a numeric comparison, and across sources: the same answers.
    let by_name = format!("SELECT k FROM pg.{schema}.fast WHERE name = $1");
    for _ in 0..3 {
        let (_, body) = sql(&server, json!({"sql": by_name, "params": ["n9"]})).await;
        assert_eq!(body["rows"], json!([[9]]));
    }
    let cheap = format!("SELECT count(*) FROM pg.{schema}.fast WHERE price < $1");
    for _ in 0..3 {
        let (_, body) = sql(&server, json!({"sql": cheap, "params": [3.1]})).await;
        assert_eq!(body["rows"], json!([[2]]));
    }
    let across = format!(
        "SELECT f.name, c.name FROM pg.{schema}.fast f JOIN crm.customers c ON c.id = f.k WHERE f.k = $1"
    );
    for _ in 0..3 {
        let (status, body) = sql(&server, json!({"sql": across, "params": [1]})).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["rows"].as_array().unwrap().len(), 1, "{body}");
    }
    server.stop().await;
    common::drop_postgres_schema(&schema).await;
}

/// A KingbaseES source end to end: registered as `kingbase://`, introspected
/// without `pg_catalog` (a PostgreSQL database dressed with the
/// `sys_catalog` views KingbaseES has), joined with MariaDB and filtered,
/// sorted and limited inside the source in PostgreSQL's SQL — but an empty
/// string stays here (in KingbaseES' Oracle mode `''` is NULL).
#[tokio::test]
async fn a_kingbase_source_is_introspected_and_queried() {
    let database = tributary_connector::testkit::unique_name("kb");
    common::postgres_exec(&format!("CREATE DATABASE {database}")).await;
    let mut url = url::Url::parse(&common::postgres_url_with(None, None)).unwrap();
    url.set_path(&format!("/{database}"));
    let (client, connection) = tokio_postgres::connect(url.as_str(), tokio_postgres::NoTls)
        .await
        .unwrap();
    let connection = tokio::spawn(connection);
    client
        .batch_execute(
            "CREATE SCHEMA sys_catalog;
             CREATE VIEW sys_catalog.sys_namespace AS SELECT * FROM pg_catalog.pg_namespace;
             CREATE VIEW sys_catalog.sys_class AS SELECT tableoid, * FROM pg_catalog.pg_class;
             CREATE VIEW sys_catalog.sys_attribute AS
               SELECT attrelid, attname, atttypid, attnum, atttypmod, attnotnull, attisdropped
               FROM pg_catalog.pg_attribute;
             CREATE VIEW sys_catalog.sys_description AS SELECT * FROM pg_catalog.pg_description;
             CREATE VIEW sys_catalog.sys_index AS SELECT * FROM pg_catalog.pg_index;
             CREATE VIEW sys_catalog.sys_am AS SELECT * FROM pg_catalog.pg_am;
             CREATE TABLE public.\"CUSTOMERS\" (\"ID\" int PRIMARY KEY, name text, region text NOT NULL);
             COMMENT ON TABLE public.\"CUSTOMERS\" IS 'who buys';
             INSERT INTO public.\"CUSTOMERS\" VALUES (1, 'Ann', 'EU'), (2, '', 'US'), (3, 'Cé', 'EU'), (4, NULL, 'APAC');
             ANALYZE;",
        )
        .await
        .unwrap();
    drop(client);
    connection.abort();
    let shop = common::mariadb_database(
        "CREATE TABLE orders (id INT PRIMARY KEY, customer_id INT NOT NULL, amount DECIMAL(12,2) NOT NULL);
         INSERT INTO orders VALUES (10, 1, 5.50), (11, 3, 4.50), (12, 2, 100.00);",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let kingbase_url = url.as_str().replacen("postgres://", "kingbase://", 1);
    server
        .register(json!({"name": "kb", "url": kingbase_url, "schemas": {"include": ["public"]}}))
        .await;
    server
        .register(json!({"name": "shop", "url": common::mariadb_url_with_database(&shop)}))
        .await;

    let (status, source) = server.admin(Method::GET, "/admin/sources/kb", None).await;
    assert_eq!(status, 200, "{source}");
    assert_eq!(source["kind"], "kingbase", "{source}");

    let query = r#"SELECT c."ID", c.name FROM kb.public."CUSTOMERS" c WHERE c.region = 'EU' ORDER BY c."ID" DESC LIMIT 1"#;
    assert_eq!(rows(&server, query).await, json!([[3, "Cé"]]));
    let statements = server.source_statements(query).await;
    assert_eq!(statements.len(), 1, "{statements:?}");
    assert!(
        statements[0].1.contains(r#""region" = 'EU'"#) && statements[0].1.contains("LIMIT 1"),
        "filter, order and limit in the source: {statements:?}"
    );

    // `''` is compared here, not in the source.
    let empty = r#"SELECT "ID" FROM kb."CUSTOMERS" WHERE name = '' ORDER BY 1"#;
    assert_eq!(rows(&server, empty).await, json!([[2]]));
    let statements = server.source_statements(empty).await;
    assert!(!statements[0].1.contains("''"), "{statements:?}");

    let joined = r#"SELECT c.region, sum(o.amount) AS total FROM shop.orders o
        JOIN kb."CUSTOMERS" c ON c."ID" = o.customer_id GROUP BY c.region ORDER BY c.region"#;
    assert_eq!(
        rows(&server, joined).await,
        json!([["EU", "10.00"], ["US", "100.00"]])
    );
    server.stop().await;
    common::drop_mariadb_database(&shop).await;
    common::postgres_exec(&format!("DROP DATABASE {database} WITH (FORCE)")).await;
}
