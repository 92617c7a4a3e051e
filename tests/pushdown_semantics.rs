//! Pushdown never changes an answer: what MariaDB (or SQLite) would answer
//! differently from PostgreSQL semantics — case- and trailing-space-
//! insensitive string comparison and grouping, NULL ordering, integer
//! division, byte lengths, case-insensitive LIKE — runs in DataFusion, while
//! what is safe still goes to the source.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use common::TestServer;
use reqwest::Method;
use serde_json::{Value, json};

async fn rows(server: &TestServer, query: &str) -> Value {
    let (status, body) = server
        .admin(Method::POST, "/api/sql", Some(json!({"sql": query})))
        .await;
    assert_eq!(status, 200, "{query}: {body}");
    body["rows"].clone()
}

async fn pushed(server: &TestServer, query: &str) -> String {
    let statements = server.source_statements(query).await;
    let sql: Vec<String> = statements.into_iter().map(|(_, sql)| sql).collect();
    sql.join("\n")
}

/// A server with the same table `t` (`columns`, rows `values`) on
/// PostgreSQL (`pg`) and MariaDB (`my`), each column given as its
/// PostgreSQL type then its MariaDB type; `stop` drops both.
struct TwoSources {
    server: TestServer,
    schema: String,
    database: String,
    _dir: tempfile::TempDir,
}

impl TwoSources {
    async fn new(columns: &[(&str, &str, &str)], values: &str) -> Self {
        let ddl = |pick: fn(&(&str, &str, &str)) -> String| {
            let columns: Vec<String> = columns.iter().map(pick).collect();
            format!(
                "CREATE TABLE t ({}); INSERT INTO t VALUES {values};",
                columns.join(", ")
            )
        };
        let schema = common::postgres_schema(&ddl(|(name, pg, _)| format!("{name} {pg}"))).await;
        let database = common::mariadb_database(&ddl(|(name, _, my)| format!("{name} {my}"))).await;
        let dir = tempfile::tempdir().unwrap();
        let server = TestServer::start(dir.path()).await;
        server
            .register(json!({"name": "pg", "url": common::postgres_url_with(None, None), "schemas": {"include": [schema]}}))
            .await;
        server
            .register(json!({"name": "my", "url": common::mariadb_url_with_database(&database)}))
            .await;
        Self {
            server,
            schema,
            database,
            _dir: dir,
        }
    }

    /// The table's two names: PostgreSQL's, then MariaDB's.
    fn tables(&self) -> [String; 2] {
        [
            format!("pg.{}.t", self.schema),
            format!("my.{}.t", self.database),
        ]
    }

    async fn stop(self) {
        common::drop_postgres_schema(&self.schema).await;
        common::drop_mariadb_database(&self.database).await;
    }
}

#[tokio::test]
async fn mariadb_answers_like_postgresql() {
    let database = common::mariadb_database(
        "CREATE TABLE words (id INT PRIMARY KEY, w VARCHAR(20), n INT NULL);
         INSERT INTO words VALUES (1, 'apple', 3), (2, 'Apple', NULL), (3, 'apple ', 1), (4, 'banana', 2), (5, NULL, 5), (6, 'Zoë', 7);",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let body = json!({"name": "my", "url": common::mariadb_url_with_database(&database)});
    server.register(body).await;
    let t = format!("my.{database}.words");

    // String equality and LIKE are exact.
    assert_eq!(
        rows(
            &server,
            &format!("SELECT id FROM {t} WHERE w = 'apple' ORDER BY id")
        )
        .await,
        json!([[1]])
    );
    assert_eq!(
        rows(
            &server,
            &format!("SELECT id FROM {t} WHERE w IN ('Apple') ORDER BY id")
        )
        .await,
        json!([[2]])
    );
    assert_eq!(
        rows(
            &server,
            &format!("SELECT id FROM {t} WHERE w LIKE 'App%' ORDER BY id")
        )
        .await,
        json!([[2]])
    );
    assert_eq!(
        rows(
            &server,
            &format!("SELECT id FROM {t} WHERE w > 'b' ORDER BY id")
        )
        .await,
        json!([[4]])
    );
    // LIKE goes to MariaDB compared as bytes: case, accents and trailing
    // spaces count, as here.
    let like = format!("SELECT id FROM {t} WHERE w LIKE '%pple%' OR w LIKE 'Zo%' ORDER BY id");
    assert_eq!(rows(&server, &like).await, json!([[1], [2], [3], [6]]));
    let sql = pushed(&server, &like).await;
    assert!(sql.contains("LIKE CAST(CONVERT('%pple%'"), "{sql}");
    assert_eq!(
        rows(
            &server,
            &format!("SELECT id FROM {t} WHERE w NOT LIKE '%e' ORDER BY id")
        )
        .await,
        json!([[3], [4], [6]])
    );
    let sql = pushed(
        &server,
        &format!("SELECT id FROM {t} WHERE w = 'apple' AND id > 0"),
    )
    .await;
    assert!(
        sql.contains("`w` = 'apple'")
            && sql.contains("CAST(CONVERT(`w` USING utf8mb4) AS BINARY) = CAST(CONVERT('apple' USING utf8mb4) AS BINARY)"),
        "the string comparison is pushed, bytes compared too: {sql}"
    );
    assert!(sql.contains("> 0"), "the numeric one is pushed: {sql}");
    assert_eq!(
        rows(
            &server,
            &format!(
                "SELECT id FROM {t} WHERE w <> 'apple' AND w BETWEEN 'B' AND 'apple ' ORDER BY id"
            )
        )
        .await,
        json!([[3], [6]])
    );
    assert_eq!(
        rows(
            &server,
            &format!("SELECT id FROM {t} WHERE w NOT IN ('apple', 'banana') ORDER BY id")
        )
        .await,
        json!([[2], [3], [6]])
    );
    // Same-source joins on string keys run in MariaDB, and stay exact.
    let join = format!(
        "SELECT a.id, b.id FROM {t} a JOIN {t} b ON a.w = b.w WHERE a.id < 5 ORDER BY a.id, b.id"
    );
    assert_eq!(
        rows(&server, &join).await,
        json!([[1, 1], [2, 2], [3, 3], [4, 4]])
    );
    let sql = pushed(&server, &join).await;
    assert!(sql.contains("JOIN") && sql.contains("BINARY"), "{sql}");

    // Grouping and ordering of strings by bytes, NULLs last ascending.
    let grouped = format!("SELECT w, count(*) FROM {t} GROUP BY w ORDER BY w");
    assert_eq!(
        rows(&server, &grouped).await,
        json!([
            ["Apple", 1],
            ["Zoë", 1],
            ["apple", 1],
            ["apple ", 1],
            ["banana", 1],
            [null, 1]
        ])
    );
    let sql = pushed(&server, &grouped).await;
    assert!(
        sql.contains("GROUP BY `w`, CAST(CONVERT(`w` USING utf8mb4) AS BINARY)"),
        "grouped in MariaDB by the bytes too: {sql}"
    );
    // A top-N on a string key goes to MariaDB, sorted by bytes, its NULLs
    // first descending as here (MariaDB's own order puts them last).
    let top = format!("SELECT w FROM {t} ORDER BY w DESC LIMIT 3");
    assert_eq!(
        rows(&server, &top).await,
        json!([[null], ["banana"], ["apple "]])
    );
    let sql = pushed(&server, &top).await;
    assert!(
        sql.contains(
            "ORDER BY `w` IS NULL DESC, CAST(CONVERT(`w` USING utf8mb4) AS BINARY) DESC LIMIT 3"
        ),
        "{sql}"
    );
    assert_eq!(
        rows(
            &server,
            &format!("SELECT DISTINCT w FROM {t} WHERE w < 'b' ORDER BY w")
        )
        .await,
        json!([["Apple"], ["Zoë"], ["apple"], ["apple "]])
    );
    // NULLs last ascending, as here: MariaDB's NULLs (first) are placed
    // by a leading `n IS NULL`.
    let top = format!("SELECT id FROM {t} ORDER BY n LIMIT 3");
    assert_eq!(rows(&server, &top).await, json!([[3], [4], [1]]));
    let sql = pushed(&server, &top).await;
    assert!(
        sql.contains("ORDER BY `n` IS NULL ASC, `n` ASC LIMIT 3"),
        "{sql}"
    );
    assert_eq!(
        rows(
            &server,
            &format!("SELECT id FROM {t} ORDER BY n DESC LIMIT 2")
        )
        .await,
        json!([[2], [6]])
    );
    // A NOT NULL key sorts the same everywhere: that sort and limit are pushed.
    let sql = pushed(
        &server,
        &format!("SELECT id FROM {t} ORDER BY id DESC LIMIT 2"),
    )
    .await;
    assert!(sql.contains("ORDER BY") && sql.contains("LIMIT 2"), "{sql}");
    assert_eq!(
        rows(
            &server,
            &format!("SELECT id FROM {t} ORDER BY id DESC LIMIT 2")
        )
        .await,
        json!([[6], [5]])
    );

    assert_eq!(
        rows(
            &server,
            &format!("SELECT id FROM {t} ORDER BY id LIMIT 2 OFFSET 1")
        )
        .await,
        json!([[2], [3]])
    );

    // Integer division and character length.
    assert_eq!(
        rows(
            &server,
            &format!("SELECT n / 2, n % 2 FROM {t} WHERE id = 1")
        )
        .await,
        json!([[1, 1]])
    );
    assert_eq!(
        rows(
            &server,
            &format!("SELECT length(w), character_length(w) FROM {t} WHERE id = 6")
        )
        .await,
        json!([[3, 3]])
    );

    // count(*) over a join inside MariaDB (no column needed below the count).
    assert_eq!(
        rows(
            &server,
            &format!("SELECT count(*) FROM {t} a JOIN {t} b ON a.id < b.id")
        )
        .await,
        json!([[15]])
    );

    // Numeric aggregates are still pushed, and right.
    let query = format!("SELECT count(*), sum(n), min(n), max(n) FROM {t}");
    assert_eq!(rows(&server, &query).await, json!([[6, 18, 1, 7]]));
    assert!(
        pushed(&server, &query)
            .await
            .to_lowercase()
            .contains("sum("),
        "aggregate pushed"
    );
    server.stop().await;
    common::drop_mariadb_database(&database).await;
}

#[tokio::test]
async fn sqlite_like_is_case_sensitive_here() {
    let dir = tempfile::tempdir().unwrap();
    let file = common::sqlite_file(
        dir.path(),
        "s.db",
        "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO t VALUES (1, 'Acme'), (2, 'acme'), (3, NULL);",
    );
    let server = TestServer::start(&dir.path().join("data")).await;
    let body = json!({"name": "s", "url": format!("sqlite://{}", file.display())});
    server.register(body).await;
    assert_eq!(
        rows(&server, "SELECT id FROM s.t WHERE name LIKE 'ac%'").await,
        json!([[2]])
    );
    assert_eq!(
        rows(&server, "SELECT id FROM s.t WHERE name = 'acme'").await,
        json!([[2]])
    );
    assert_eq!(
        rows(&server, "SELECT id FROM s.t ORDER BY name").await,
        json!([[1], [2], [3]])
    );
    assert_eq!(
        rows(&server, "SELECT id FROM s.t ORDER BY name DESC").await,
        json!([[3], [2], [1]])
    );
    // SQLite compares strings by bytes: that filter is pushed.
    assert!(
        pushed(&server, "SELECT id FROM s.t WHERE name = 'acme'")
            .await
            .contains("'acme'")
    );
    server.stop().await;
}

#[tokio::test]
async fn literals_with_quotes_and_backslashes_stay_values_in_mariadb() {
    let database = common::mariadb_database(
        "CREATE TABLE t (id INT PRIMARY KEY, n INT NOT NULL); INSERT INTO t VALUES (1, 10), (2, 20);",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let body = json!({"name": "my", "url": common::mariadb_url_with_database(&database)});
    server.register(body).await;
    // The string literal is pushed as part of the projection; a trailing
    // backslash must not end it early (MySQL's default would).
    let query = format!(
        "SELECT id, CASE WHEN n > 15 THEN 'x\\\\' ELSE ' OR 1=1 -- ' END AS label FROM my.{database}.t ORDER BY id"
    );
    assert!(
        pushed(&server, &query).await.contains("CASE"),
        "the CASE is pushed"
    );
    // The value has two backslashes; MySQL's default escapes would read one.
    assert_eq!(
        rows(&server, &query).await,
        json!([[1, " OR 1=1 -- "], [2, "x\\\\"]])
    );
    let (status, body) = server
        .admin(
            Method::POST,
            "/api/sql",
            Some(json!({"sql": format!("SELECT id FROM my.{database}.t WHERE n = $1 OR n = $2"), "params": [10, "20\\' OR 1=1 --"]})),
        )
        .await;
    assert!(status == 200 || status == 400, "{body}");
    if status == 200 {
        assert_eq!(
            body["rows"],
            json!([[1]]),
            "a parameter stays a value: {body}"
        );
    }
    server.stop().await;
    common::drop_mariadb_database(&database).await;
}

/// The same on PostgreSQL, where a database may read a backslash in a string
/// literal as an escape (`standard_conforming_strings = off`, set here on the
/// database): the connector's sessions turn that off, so a pushed literal
/// ending in a backslash cannot end early and let the next one's text in.
#[tokio::test]
async fn literals_with_backslashes_stay_values_where_postgresql_reads_escapes() {
    let database = tributary_connector::testkit::unique_name("scs");
    common::postgres_exec(&format!("CREATE DATABASE {database}")).await;
    common::postgres_exec(&format!(
        "ALTER DATABASE {database} SET standard_conforming_strings = off"
    ))
    .await;
    let mut url = url::Url::parse(&common::postgres_url_with(None, None)).unwrap();
    url.set_path(&database);
    let (client, connection) = tokio_postgres::connect(url.as_str(), tokio_postgres::NoTls)
        .await
        .unwrap();
    let connection = tokio::spawn(connection);
    client
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY, n int NOT NULL); INSERT INTO t VALUES (1, 10), (2, 20);")
        .await
        .unwrap();
    drop(client);
    connection.await.unwrap().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    server
        .register(json!({"name": "scs", "url": url.as_str()}))
        .await;
    // One backslash before each closing quote.
    let query = "SELECT id, CASE WHEN n > 15 THEN 'x\\' ELSE ' OR 1=1 -- ' END AS label \
                 FROM scs.public.t WHERE n < 100 OR n = length('\\') ORDER BY id";
    assert!(
        pushed(&server, query).await.contains("CASE"),
        "the CASE is pushed"
    );
    assert_eq!(
        rows(&server, query).await,
        json!([[1, " OR 1=1 -- "], [2, "x\\"]])
    );
    server.stop().await;
    common::postgres_exec(&format!("DROP DATABASE {database} WITH (FORCE)")).await;
}

/// `row_number()` per key answers alike on both sources, run by each
/// source (named `tributary_window_N` in the SQL sent, `window_names`)
/// with text in code point order and NULLs placed as here; the answer's
/// columns keep their names.
#[tokio::test]
async fn row_numbers_answer_alike_on_every_source() {
    let sources = TwoSources::new(
        &[
            ("id", "int PRIMARY KEY", "INT PRIMARY KEY"),
            ("g", "int", "INT"),
            ("w", "text", "VARCHAR(10)"),
        ],
        "(1, 1, 'b'), (2, 1, 'B'), (3, 1, NULL), (4, 2, 'a '), (5, 2, 'a'), (6, 3, 'z')",
    )
    .await;
    for table in sources.tables() {
        let query = format!(
            "SELECT id FROM (SELECT id, row_number() OVER (PARTITION BY g ORDER BY w ASC NULLS FIRST, id) AS n \
             FROM {table}) AS numbered WHERE n = 1 ORDER BY id"
        );
        // The first of each g, text in code point order, NULL first.
        assert_eq!(
            rows(&sources.server, &query).await,
            json!([[3], [5], [6]]),
            "{table}"
        );
        let sql = pushed(&sources.server, &query).await;
        assert!(sql.contains("row_number()"), "{table}: {sql}");
        assert!(
            sql.contains("AS `tributary_window_0`") || sql.contains("AS \"tributary_window_0\""),
            "{sql}"
        );

        // Unnamed in the answer: its columns keep the names DataFusion gives.
        let query = format!(
            "SELECT id, row_number() OVER (PARTITION BY g ORDER BY id DESC), \
             row_number() OVER (ORDER BY id) AS place FROM {table} WHERE g = 1 ORDER BY id"
        );
        let (status, body) = sources
            .server
            .admin(Method::POST, "/api/sql", Some(json!({"sql": query})))
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["rows"],
            json!([[1, 3, 1], [2, 2, 2], [3, 1, 3]]),
            "{table}"
        );
        let names: Vec<&Value> = body["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| &c["name"])
            .collect();
        assert_eq!(
            names,
            [
                "id",
                "row_number() PARTITION BY [t.g] ORDER BY [t.id DESC NULLS FIRST] RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW",
                "place"
            ],
            "{table}"
        );
        // Ranks: ties (`'a '` and `'a'` are two values, NULLs one) as here.
        let query = format!(
            "SELECT id, rank() OVER (ORDER BY w), dense_rank() OVER (PARTITION BY g ORDER BY w DESC) \
             FROM {table} ORDER BY id"
        );
        assert_eq!(
            rows(&sources.server, &query).await,
            json!([
                [1, 4, 2],
                [2, 1, 3],
                [3, 6, 1],
                [4, 3, 1],
                [5, 2, 2],
                [6, 5, 1]
            ]),
            "{table}"
        );
        let sql = pushed(&sources.server, &query).await;
        assert!(sql.contains("dense_rank()"), "{table}: {sql}");
        // Grouped by a window's output: computed here, answers alike.
        let query = format!(
            "SELECT n, count(*) FROM (SELECT row_number() OVER (PARTITION BY g ORDER BY id) AS n \
             FROM {table}) AS numbered GROUP BY n ORDER BY n"
        );
        assert_eq!(
            rows(&sources.server, &query).await,
            json!([[1, 3], [2, 2], [3, 1]]),
            "{table}"
        );
    }
    sources.stop().await;
}

/// Regular expressions (`~ ~* !~ !~*`) answer alike on both sources: sent
/// to PostgreSQL, whose meaning they have; matched by the engine for
/// MariaDB, whose REGEXP would ignore case under its collation.
#[tokio::test]
async fn regular_expressions_answer_alike_on_every_source() {
    let sources = TwoSources::new(
        &[
            ("id", "int PRIMARY KEY", "INT PRIMARY KEY"),
            ("w", "text", "VARCHAR(10)"),
        ],
        "(1, 'apple'), (2, 'Apple'), (3, NULL), (4, 'banana')",
    )
    .await;
    // `.` matches a newline in PostgreSQL's regular expressions.
    common::postgres_exec(&format!(
        "INSERT INTO {}.t VALUES (5, E'a\\np')",
        sources.schema
    ))
    .await;
    common::mariadb_exec(&format!(
        "INSERT INTO {}.t VALUES (5, 'a\\np')",
        sources.database
    ))
    .await;
    for (table, pushed_there) in sources.tables().into_iter().zip([true, false]) {
        for (condition, expected) in [
            // (Patterns DataFusion cannot turn into LIKE.)
            ("w ~ 'A.p'", json!([[2]])),
            ("w ~ 'a.p'", json!([[1], [5]])),
            ("w ~* '^a.p'", json!([[1], [2], [5]])),
            ("w !~ 'an+'", json!([[1], [2], [5]])),
            ("w !~* '^a.'", json!([[4]])),
        ] {
            let query = format!("SELECT id FROM {table} WHERE {condition} ORDER BY id");
            assert_eq!(
                rows(&sources.server, &query).await,
                expected,
                "{table}: {condition}"
            );
            let sql = pushed(&sources.server, &query).await;
            assert_eq!(sql.contains('~'), pushed_there, "{table}: {sql}");
        }
    }
    sources.stop().await;
}

/// A filter value with more digits after the point than its decimal
/// column compares with every digit, as PostgreSQL compares numerics (not
/// rounded to the column's scale), on both sources and whether the
/// request's shape was learned or not: `amount > 10.495` holds for 10.50.
#[tokio::test]
async fn decimal_filter_values_keep_every_digit() {
    let two = TwoSources::new(
        &[
            ("id", "int PRIMARY KEY", "int PRIMARY KEY"),
            ("amount", "numeric(10,2)", "decimal(10,2)"),
        ],
        "(1, 10.50), (2, 10.49), (3, 10.51), (4, -10.50)",
    )
    .await;
    let cases = [
        (json!({"amount": {"$gt": "10.495"}}), json!([1, 3])),
        (json!({"amount": {"$gt": 10.504}}), json!([3])),
        (json!({"amount": "10.504"}), json!([])),
        (json!({"amount": 10.5}), json!([1])),
        (json!({"amount": {"$lte": "10.4999"}}), json!([2, 4])),
        (json!({"amount": {"$lt": -10.495}}), json!([4])),
        (json!({"amount": {"$ne": "10.500"}}), json!([2, 3, 4])),
        (json!({"amount": {"$in": ["10.504", 10.51]}}), json!([3])),
        (json!({"amount": {"$gt": "10.5"}}), json!([3])),
        (json!({"amount": {"$gt": 10.5}}), json!([3])),
        (json!({"amount": {"$gt": 10.499}}), json!([1, 3])),
        // Integer columns compare with decimals as numbers too.
        (json!({"id": {"$gt": 2.5}}), json!([3, 4])),
        (json!({"id": {"$lt": "1.5"}}), json!([1])),
        (json!({"id": 2.5}), json!([])),
        (json!({"id": 2.0}), json!([2])),
        (json!({"id": {"$ne": "3.000"}}), json!([1, 2, 4])),
        (json!({"id": {"$in": [1, 2.5, "3.0"]}}), json!([1, 3])),
    ];
    for collection in ["pg_t", "my_t"] {
        // Twice: the second round answers from learned request shapes
        // where the fast path takes them (PostgreSQL).
        for round in 0..2 {
            for (filter, expected) in &cases {
                let path = format!(
                    "/api/{collection}?sort=id&fields=id&filter={}",
                    url::form_urlencoded::byte_serialize(filter.to_string().as_bytes())
                        .collect::<String>()
                );
                let (status, body) = two.server.admin(Method::GET, &path, None).await;
                assert_eq!(status, 200, "{collection} {filter}: {body}");
                let ids: Vec<Value> = body["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|row| row["id"].clone())
                    .collect();
                assert_eq!(
                    Value::from(ids),
                    *expected,
                    "{collection} {filter}, round {round}"
                );
            }
        }
    }
    two.stop().await;
}

/// A decimal average answers the same digits wherever it runs: pushed to
/// PostgreSQL (its exact answer read into the input's scale + 4), pushed
/// to MariaDB (which rounds there itself), or computed here — across
/// sources, DISTINCT, over a window frame: rounded half away from zero,
/// as PostgreSQL's `round(avg(x), 6)` (DataFusion's own `avg` cuts).
#[tokio::test]
async fn decimal_averages_round_alike_wherever_they_run() {
    let two = TwoSources::new(
        &[
            ("id", "int PRIMARY KEY", "int PRIMARY KEY"),
            ("g", "int", "int"),
            ("x", "numeric(10,2)", "decimal(10,2)"),
        ],
        "(1, 1, 1.00), (2, 1, 1.00), (3, 1, 0.00), (4, 2, -1.00), (5, 2, -1.00), \
         (6, 2, 0.00), (7, 3, -0.01), (8, 3, 0.01), (9, 3, 0.02), (10, 3, 0.02)",
    )
    .await;
    let server = &two.server;
    let [pg, my] = two.tables();
    let grouped = json!([[1, "0.666667"], [2, "-0.666667"], [3, "0.010000"]]);
    for t in [&pg, &my] {
        let query = format!("SELECT g, avg(x) FROM {t} GROUP BY g ORDER BY g");
        assert_eq!(rows(server, &query).await, grouped, "{query}");
        let sql = pushed(server, &query).await.to_lowercase();
        assert!(sql.contains("avg("), "the source averages: {sql}");
        let query = format!("SELECT avg(DISTINCT x) FROM {t} WHERE g = 3");
        assert_eq!(rows(server, &query).await, json!([["0.006667"]]), "{query}");
        // Two DISTINCT arguments run here, in DISTINCT's own accumulator.
        let query = format!("SELECT avg(DISTINCT x), count(DISTINCT id) FROM {t} WHERE g = 3");
        assert_eq!(
            rows(server, &query).await,
            json!([["0.006667", 4]]),
            "{query}"
        );
        let query = format!(
            "SELECT avg(x) OVER (ORDER BY id ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) \
             FROM {t} WHERE g IN (1, 2) ORDER BY id"
        );
        let frames = json!([
            ["1.000000"],
            ["1.000000"],
            ["0.666667"],
            ["0.000000"],
            ["-0.666667"],
            ["-0.666667"]
        ]);
        assert_eq!(rows(server, &query).await, frames, "{query}");
    }
    let both = format!("(SELECT g, x FROM {pg} UNION ALL SELECT g, x FROM {my}) AS u");
    let query = format!("SELECT g, avg(x) FROM {both} GROUP BY g ORDER BY g");
    assert_eq!(rows(server, &query).await, grouped, "{query}");
    let query = format!("SELECT avg(x) FROM {both} WHERE g = 2");
    assert_eq!(
        rows(server, &query).await,
        json!([["-0.666667"]]),
        "{query}"
    );
    two.stop().await;
}

/// The server's JSON document edits (GraphQL's `_append` … on sources
/// without jsonb's operators) answer as PostgreSQL's `||`, `-` and `#-`:
/// each case is run by PostgreSQL and by `JsonEdit::apply`, and the two
/// documents compared as jsonb — or the two errors' messages.
#[tokio::test]
async fn json_document_edits_answer_as_jsonb_operators() {
    use tributary_connector::JsonEdit;
    let pg = common::postgres().await;
    let documents = [
        r#"{"a": 1, "b": {"x": [1, 2]}, "c": null}"#,
        r#"[1, "a", {"a": 1}, [2, 3], "b", "a"]"#,
        r#"{}"#,
        r#"[]"#,
        r#""a""#,
        r#"12.50"#,
        r#"null"#,
        r#"{"a": {"a": {"a": 1}}, "n": 123456789012345678901234567890.5}"#,
    ];
    let operands = [
        json!({"a": 2, "d": [1]}),
        json!([1, {"z": null}]),
        json!("s"),
        json!({}),
        json!([]),
        json!(null),
    ];
    let paths: [&[&str]; 9] = [
        &["a"],
        &["b", "x", "0"],
        &["b", "x", "-1"],
        &["b", "x", "5"],
        &["b", "x", "y"],
        &["1", "a"],
        &[" 3", "0"],
        &["a", "a", "a"],
        &[],
    ];
    let mut cases: Vec<(String, JsonEdit, String)> = Vec::new();
    for document in documents {
        for operand in &operands {
            let sql = format!("$1::text::jsonb || '{operand}'::jsonb");
            cases.push((document.into(), JsonEdit::Append(operand.clone()), sql));
            let sql = format!("'{operand}'::jsonb || $1::text::jsonb");
            cases.push((document.into(), JsonEdit::Prepend(operand.clone()), sql));
        }
        for key in ["a", "b", "z", ""] {
            let sql = format!("$1::text::jsonb - '{key}'::text");
            cases.push((document.into(), JsonEdit::DeleteKey(key.into()), sql));
        }
        for index in [0, 1, -1, -6, -7, 6] {
            let sql = format!("$1::text::jsonb - ({index})::integer");
            cases.push((document.into(), JsonEdit::DeleteElem(index), sql));
        }
        for path in paths {
            let sql = format!("$1::text::jsonb #- '{{{}}}'::text[]", path.join(","));
            let path = path.iter().map(|s| s.to_string()).collect();
            cases.push((document.into(), JsonEdit::DeleteAtPath(path), sql));
        }
    }
    let mut errors = 0;
    for (document, edit, sql) in &cases {
        let theirs = pg
            .query_one(&format!("SELECT ({sql})::text"), &[document])
            .await;
        let ours = edit.apply(document);
        match (theirs, ours) {
            (Ok(row), Ok(ours)) => {
                let theirs: String = row.get(0);
                let same: bool = pg
                    .query_one(
                        "SELECT $1::text::jsonb = $2::text::jsonb",
                        &[&theirs, &ours],
                    )
                    .await
                    .unwrap()
                    .get(0);
                assert!(
                    same,
                    "{sql} on {document}: PostgreSQL {theirs}, ours {ours}"
                );
            }
            (Err(theirs), Err(ours)) => {
                let theirs = theirs.as_db_error().unwrap().message().to_string();
                assert_eq!(theirs, ours, "{sql} on {document}");
                errors += 1;
            }
            (theirs, ours) => panic!("{sql} on {document}: PostgreSQL {theirs:?}, ours {ours:?}"),
        }
    }
    // Both kinds of answer were compared.
    assert!(errors > 20 && errors < cases.len() / 2, "{errors} errors");
}
