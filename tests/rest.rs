//! The REST API against real PostgreSQL and MariaDB: lists with filters,
//! sorting, fields and pages, rows by key (composite too), NocoBase's
//! routes and envelope, related records by `appends` within a source and
//! across sources, every write form in one transaction, a role's write
//! rules (columns, presets, row filters, checks that roll back), the
//! audit log, the aggregate endpoint and CSV / NDJSON answers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TOKEN;
use reqwest::Method;
use serde_json::{Value, json};
use tributary::config::FileConfig;

const PG_DDL: &str = r#"
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, tier text, secret text);
CREATE TABLE orders (
    id serial PRIMARY KEY,
    customer_id int REFERENCES customers(id),
    status text NOT NULL,
    total numeric(10,2) NOT NULL,
    placed_at date NOT NULL,
    note text,
    owner text
);
CREATE TABLE line_items (order_id int REFERENCES orders(id), line int, qty int NOT NULL, PRIMARY KEY (order_id, line));
CREATE TABLE events (kind text, at timestamptz);
CREATE TABLE posts (id int PRIMARY KEY, tags jsonb, labels text[]);
INSERT INTO posts VALUES (1, '["a", "b"]', '{a,b}'), (2, '["b", 3]', '{b}'), (3, NULL, NULL), (4, '{"x": 1}', '{}'),
    (5, '{"x": 1.00000000000000000001, "it''s": "a \"quote\""}', '{}');
INSERT INTO customers VALUES (1, 'Ann', 'gold', 's1'), (2, 'Bob', NULL, 's2'), (3, 'Cid', 'silver', 's3');
INSERT INTO orders (customer_id, status, total, placed_at, note, owner) VALUES
    (1, 'open', 10.50, '2024-01-05', 'n1', 'ann'),
    (1, 'shipped', 99.00, '2024-01-20', 'n2', 'ann'),
    (2, 'open', 5.25, '2024-02-01', NULL, 'bob'),
    (3, 'open', 300.00, '2024-02-14', 'n4', 'cid'),
    (2, 'cancelled', 42.00, '2024-03-03', 'n5', 'bob');
INSERT INTO line_items VALUES (1, 1, 2), (1, 2, 5), (2, 1, 1), (4, 1, 7);
INSERT INTO events VALUES ('a', '2024-01-01T00:00:00Z'), ('b', NULL);
SELECT setval('orders_id_seq', 100);
"#;

const MY_DDL: &str = r#"
CREATE TABLE reviews (id int AUTO_INCREMENT PRIMARY KEY, customer_id int NOT NULL, stars int NOT NULL, body varchar(200));
INSERT INTO reviews (customer_id, stars, body) VALUES (1, 5, 'great'), (1, 3, 'ok'), (3, 1, 'bad');
CREATE TABLE notes (id int PRIMARY KEY, tags JSON);
INSERT INTO notes VALUES (1, '["a", "b"]'), (2, '["c"]'), (3, NULL);
"#;

/// The two test sources, with this file's request helpers.
struct Fixture(common::TwoSources);

impl std::ops::Deref for Fixture {
    type Target = common::TwoSources;

    fn deref(&self) -> &common::TwoSources {
        &self.0
    }
}

impl Fixture {
    async fn new() -> Self {
        Self(common::TwoSources::start(PG_DDL, MY_DDL, FileConfig::default()).await)
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        self.server.admin(method, path, body).await
    }

    /// A call as the admin acting as `role` with user id `user`.
    async fn call_as(
        &self,
        role: &str,
        user: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = reqwest::Client::new()
            .request(method, format!("{}{path}", self.server.base))
            .bearer_auth(TOKEN)
            .header("x-role", role)
            .header("x-user-id", user);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn get(&self, path: &str) -> Value {
        let (status, body) = self.call(Method::GET, path, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    async fn rule(&self, role: &str, collection: &str, action: &str, rule: Value) {
        let (status, body) = self
            .call(
                Method::PUT,
                &format!("/admin/permissions/{role}/{collection}/{action}"),
                Some(rule),
            )
            .await;
        assert_eq!(status, 200, "{collection} {action}: {body}");
    }

    /// `clerk` may insert orders of a few columns, owned by the user, under
    /// 1000 (the rule's check).
    async fn clerk_inserts_orders(&self) {
        let rule = json!({
            "columns": ["customer_id", "status", "total", "placed_at"],
            "presets": {"owner": "{{$user.id}}"},
            "check": {"total": {"$lt": 1000}},
        });
        self.rule("clerk", "pg_orders", "insert", rule).await;
    }

    /// `role` may select the orders whose `owner` is the user's id.
    async fn own_orders_only(&self, role: &str) {
        let rule = json!({"filter": {"owner": "{{$user.id}}"}});
        self.rule(role, "pg_orders", "select", rule).await;
    }

    async fn pg_count(&self, sql: &str) -> i64 {
        let client = common::postgres().await;
        let sql = sql.replace("{schema}", &self.schema);
        client.query_one(&sql, &[]).await.unwrap().get(0)
    }

    async fn stop(self) {
        self.0.stop().await;
    }
}

fn enc(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

fn ids(body: &Value) -> Vec<i64> {
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect()
}

fn assert_error(response: &(u16, Value), status: u16, words: &[&str]) {
    assert_eq!(response.0, status, "{}", response.1);
    let message = response.1["error"]["message"].as_str().unwrap_or_default();
    for word in words {
        assert!(message.contains(word), "`{word}` not in `{message}`");
    }
}

#[tokio::test]
async fn lists_filter_sort_pick_fields_and_page() {
    let f = Fixture::new().await;
    // Filter, sort descending, fields in the order asked, a page of two and the total.
    let filter = enc(r#"{"status":"open"}"#);
    let mut body = f
        .get(&format!(
            "/api/pg_orders?filter={filter}&sort=-total&fields=total,id&pageSize=2&count=true"
        ))
        .await;
    // A full page carries the cursor to the next (tests below walk them).
    let next = body["meta"].as_object_mut().unwrap().remove("nextCursor");
    assert!(next.is_some_and(|c| c.is_string()), "{body}");
    assert_eq!(
        body,
        json!({"data": [{"total": "300.00", "id": 4}, {"total": "10.50", "id": 1}],
               "meta": {"page": 1, "pageSize": 2, "count": 3, "totalPage": 2}})
    );
    let page2 = f
        .get(&format!(
            "/api/pg_orders?filter={filter}&sort=-total&pageSize=2&page=2"
        ))
        .await;
    assert_eq!(ids(&page2), vec![3]);
    assert_eq!(page2["meta"], json!({"page": 2, "pageSize": 2}));
    // Without a sort the key orders the rows; `except` drops columns.
    let body = f.get("/api/pg_customers?except=secret,tier").await;
    assert_eq!(
        body["data"],
        json!([{"id": 1, "name": "Ann"}, {"id": 2, "name": "Bob"}, {"id": 3, "name": "Cid"}])
    );
    // NULLs sort last ascending, first descending (PostgreSQL's order).
    let asc = f.get("/api/pg_customers?sort=tier&fields=id").await;
    assert_eq!(ids(&asc), vec![1, 3, 2]);
    let desc = f.get("/api/pg_customers?sort=-tier&fields=id").await;
    assert_eq!(ids(&desc), vec![2, 3, 1]);
    // NocoBase's route and envelope (count always), with sort[] and a relation filter.
    let filter = enc(r#"{"customers.name":{"$includes":"an"}}"#);
    let body = f
        .get(&format!(
            "/api/pg_orders:list?filter={filter}&sort[]=-placed_at&fields[]=id&fields[]=placed_at"
        ))
        .await;
    assert_eq!(
        body,
        json!({"data": [{"id": 2, "placed_at": "2024-01-20"}, {"id": 1, "placed_at": "2024-01-05"}],
               "meta": {"page": 1, "pageSize": 20, "count": 2, "totalPage": 1}})
    );
    // Relations by presence: orders without line items, customers with orders.
    let filter = enc(r#"{"line_items":{"$notExists":true}}"#);
    let body = f
        .get(&format!("/api/pg_orders?filter={filter}&fields=id"))
        .await;
    assert_eq!(ids(&body), vec![3, 5]);
    let filter = enc(r#"{"line_items":{"$exists":true},"status":"open"}"#);
    let body = f
        .get(&format!("/api/pg_orders?filter={filter}&fields=id"))
        .await;
    assert_eq!(ids(&body), vec![1, 4]);
    // The other direction: customers with an open order over 100.
    let filter = enc(r#"{"orders":{"status":"open","total":{"$gt":100}}}"#);
    let body = f
        .get(&format!("/api/pg_customers?filter={filter}&fields=id"))
        .await;
    assert_eq!(ids(&body), vec![3]);
    // MariaDB: `$eq` on text is exact there too (its collation ignores case).
    let filter = enc(r#"{"body":"GREAT"}"#);
    let body = f.get(&format!("/api/my_reviews?filter={filter}")).await;
    assert_eq!(body["data"], json!([]));
    let filter = enc(r#"{"body":{"$iLike":"GREAT"}}"#);
    let body = f
        .get(&format!("/api/my_reviews?filter={filter}&fields=id"))
        .await;
    assert_eq!(ids(&body), vec![1]);
    // PostgreSQL's regular expressions, case-sensitive there too.
    for (filter, expected) in [
        (r#"{"body":{"$regex":"^G"}}"#, vec![]),
        (r#"{"body":{"$iRegex":"^G"}}"#, vec![1]),
        (r#"{"body":{"$notRegex":"a"}}"#, vec![2]),
    ] {
        let body = f
            .get(&format!("/api/my_reviews?filter={}&fields=id", enc(filter)))
            .await;
        assert_eq!(ids(&body), expected, "{filter}");
    }
    // NocoBase's date operators: a month, a range of days.
    let filter = enc(r#"{"placed_at":{"$dateOn":"2024-01"}}"#);
    let body = f
        .get(&format!("/api/pg_orders?filter={filter}&fields=id"))
        .await;
    assert_eq!(ids(&body), vec![1, 2]);
    let filter = enc(r#"{"placed_at":{"$dateBetween":["2024-01-20","2024-02-01"]}}"#);
    let body = f
        .get(&format!("/api/pg_orders?filter={filter}&fields=id"))
        .await;
    assert_eq!(ids(&body), vec![2, 3]);
    // Array operators on JSON arrays (jsonb, MariaDB's JSON) and PostgreSQL arrays.
    for (collection, filter, expected) in [
        ("pg_posts", r#"{"tags":{"$anyOf":["a"]}}"#, vec![1]),
        ("pg_posts", r#"{"tags":{"$anyOf":"b"}}"#, vec![1, 2]),
        ("pg_posts", r#"{"tags":{"$anyOf":[3]}}"#, vec![2]),
        ("pg_posts", r#"{"tags":{"$match":["b","a"]}}"#, vec![1]),
        (
            "pg_posts",
            r#"{"tags":{"$noneOf":["a"]}}"#,
            vec![2, 3, 4, 5],
        ),
        ("pg_posts", r#"{"labels":{"$anyOf":["a"]}}"#, vec![1]),
        ("pg_posts", r#"{"labels":{"$match":["b"]}}"#, vec![2]),
        ("my_notes", r#"{"tags":{"$anyOf":["c","x"]}}"#, vec![2]),
        ("my_notes", r#"{"tags":{"$notMatch":["a","b"]}}"#, vec![2]),
        // JSON documents, with jsonb's meaning on both sources.
        (
            "pg_posts",
            r#"{"tags":{"$jsonContains":["b"]}}"#,
            vec![1, 2],
        ),
        (
            "pg_posts",
            r#"{"tags":{"$jsonContains":{"x":1.0}}}"#,
            vec![4],
        ),
        (
            "pg_posts",
            r#"{"tags":{"$jsonContainedIn":["a","b",3]}}"#,
            vec![1, 2],
        ),
        ("pg_posts", r#"{"tags":{"$hasKey":"x"}}"#, vec![4, 5]),
        ("pg_posts", r#"{"tags":{"$hasKeysAll":["a","b"]}}"#, vec![1]),
        ("my_notes", r#"{"tags":{"$jsonContains":"c"}}"#, vec![2]),
        ("my_notes", r#"{"tags":{"$hasKeysAny":["b","z"]}}"#, vec![1]),
    ] {
        let body = f
            .get(&format!(
                "/api/{collection}?filter={}&fields=id",
                enc(filter)
            ))
            .await;
        assert_eq!(ids(&body), expected, "{collection} {filter}");
    }
    // A table without a primary key lists.
    let body = f.get("/api/pg_events?sort=kind").await;
    assert_eq!(body["data"][0]["kind"], "a");
    f.stop().await;
}

/// A counter of the server's metrics: the value on the line that begins
/// with `series` (name and labels), 0 before it is first counted.
async fn counter(f: &Fixture, series: &str) -> u64 {
    let (_, metrics) = f.server.get_text("/metrics").await;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0, |n| n.trim().parse().unwrap())
}

/// Rows PostgreSQL (source `pg`) has delivered so far.
async fn pg_rows_read(f: &Fixture) -> u64 {
    counter(f, r#"tributary_source_rows_total{source="pg"}"#).await
}

/// The JSON document operators on a PostgreSQL `jsonb` column are sent as
/// jsonb's own (`@>`, `<@`, `?|`, `?&`): only the matching rows leave the
/// database, numbers compare exactly (1.00000000000000000001 is not 1,
/// which a double would say it is), and a quote in a pattern or key stays
/// in its literal.
#[tokio::test]
async fn json_document_filters_run_in_postgresql() {
    let f = Fixture::new().await;
    for (filter, expected) in [
        (r#"{"tags":{"$jsonContains":{"x":1}}}"#, vec![4]),
        (
            r#"{"tags":{"$jsonContains":{"it's":"a \"quote\""}}}"#,
            vec![5],
        ),
        (r#"{"tags":{"$jsonContains":"b"}}"#, vec![1, 2]),
        (r#"{"tags":{"$jsonContains":"x' OR true --"}}"#, vec![]),
        (r#"{"tags":{"$jsonContainedIn":{"x":1,"y":2}}}"#, vec![4]),
        (r#"{"tags":{"$hasKey":"it's"}}"#, vec![5]),
        (r#"{"tags":{"$hasKeysAny":["nope","b"]}}"#, vec![1, 2]),
        (r#"{"tags":{"$hasKeysAll":["x","it's"]}}"#, vec![5]),
        (r#"{"tags":{"$hasKeysAny":[]}}"#, vec![]),
        (r#"{"tags":{"$hasKeysAll":[]}}"#, vec![1, 2, 4, 5]),
        (
            r#"{"$or":[{"tags":{"$hasKey":"a"}},{"tags":{"$jsonContains":{"x":1}}}]}"#,
            vec![1, 4],
        ),
        // String operators compare the document's text (jsonb has none).
        (r#"{"tags":{"$includes":"IT'S"}}"#, vec![5]),
        (r#"{"tags":{"$like":"[%"}}"#, vec![1, 2]),
        (r#"{"tags":{"$eq":"{\"x\": 1}"}}"#, vec![4]),
        (r#"{"tags":{"$eq":"{\"x\":1}"}}"#, vec![]),
    ] {
        let before = pg_rows_read(&f).await;
        let body = f
            .get(&format!("/api/pg_posts?filter={}&fields=id", enc(filter)))
            .await;
        assert_eq!(ids(&body), expected, "{filter}");
        let read = pg_rows_read(&f).await - before;
        assert_eq!(
            read,
            expected.len() as u64,
            "{filter}: rows read from PostgreSQL"
        );
    }
    f.stop().await;
}

/// A JSON column sorts and groups by its text on every source, also when
/// sent to PostgreSQL (jsonb's own order would put the shorter array
/// `["z"]` first).
#[tokio::test]
async fn json_columns_sort_and_group_by_their_text() {
    let f = Fixture::new().await;
    common::postgres_exec(&format!(
        r#"INSERT INTO {}.posts VALUES (6, '["z"]', NULL)"#,
        f.schema
    ))
    .await;
    let body = f.get("/api/pg_posts?sort=tags,id&fields=id").await;
    // `{"x": 1.000…` before `{"x": 1}` (`.` before `}`); jsonb would put
    // the one-pair object first.
    assert_eq!(ids(&body), vec![1, 2, 6, 5, 4, 3]);
    let body = f
        .get("/api/pg_posts?sort=-tags,id&fields=id&pageSize=2")
        .await;
    assert_eq!(ids(&body), vec![3, 4]);
    // A keyset cursor walks the same order.
    let (mut seen, mut path) = (
        Vec::new(),
        "/api/pg_posts?sort=tags&fields=id&pageSize=2".to_string(),
    );
    loop {
        let body = f.get(&path).await;
        seen.extend(ids(&body));
        match body["meta"]["nextCursor"].as_str() {
            Some(next) => {
                path = format!("/api/pg_posts?sort=tags&fields=id&pageSize=2&cursor={next}")
            }
            None => break,
        }
    }
    assert_eq!(seen, vec![1, 2, 6, 5, 4, 3]);
    // Grouped and compared as text too (min / max have no jsonb version).
    common::postgres_exec(&format!(
        r#"INSERT INTO {}.posts VALUES (7, '["z"]', NULL)"#,
        f.schema
    ))
    .await;
    let measures = enc(
        r#"[{"aggregation":"count","alias":"n"},{"field":"tags","aggregation":"count","alias":"docs"}]"#,
    );
    let dimensions = enc(r#"[{"field":"tags"}]"#);
    let body = f
        .get(&format!(
            "/api/pg_posts:aggregate?measures={measures}&dimensions={dimensions}&sort=tags"
        ))
        .await;
    assert_eq!(
        body["data"],
        json!([
            {"tags": r#"["a", "b"]"#, "n": 1, "docs": 1},
            {"tags": r#"["b", 3]"#, "n": 1, "docs": 1},
            {"tags": r#"["z"]"#, "n": 2, "docs": 2},
            {"tags": r#"{"x": 1.00000000000000000001, "it's": "a \"quote\""}"#, "n": 1, "docs": 1},
            {"tags": r#"{"x": 1}"#, "n": 1, "docs": 1},
            {"tags": null, "n": 1, "docs": 0},
        ]),
        "{body}"
    );
    // A sum of documents is refused, naming the measure.
    let measures = enc(r#"[{"aggregation":"count"},{"field":"tags","aggregation":"sum"}]"#);
    let (status, body) = f
        .call(
            Method::GET,
            &format!("/api/pg_posts:aggregate?measures={measures}"),
            None,
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["path"], "measures[1]", "{body}");
    // min / max / count distinct of the text (PostgreSQL has no max(jsonb)).
    let measures = enc(
        r#"[{"field":"tags","aggregation":"max","alias":"top"},{"field":"tags","aggregation":"min","alias":"bottom"},{"field":"tags","aggregation":"count","distinct":true,"alias":"kinds"}]"#,
    );
    let body = f
        .get(&format!("/api/pg_posts:aggregate?measures={measures}"))
        .await;
    assert_eq!(
        body["data"],
        json!([{"top": r#"{"x": 1}"#, "bottom": r#"["a", "b"]"#, "kinds": 5}]),
        "{body}"
    );
    f.stop().await;
}

#[tokio::test]
async fn bad_list_requests_are_400_naming_the_problem() {
    let f = Fixture::new().await;
    let cases: Vec<(String, u16, Vec<&str>)> = vec![
        ("/api/nope".into(), 404, vec!["nope"]),
        ("/api/pg_orders?pagesize=2".into(), 400, vec!["pagesize"]),
        ("/api/pg_orders?fields=id,nope".into(), 400, vec!["nope"]),
        ("/api/pg_orders?sort=-nope".into(), 400, vec!["nope"]),
        (
            format!("/api/pg_orders?filter={}", enc("{bad")),
            400,
            vec!["JSON"],
        ),
        (
            format!("/api/pg_orders?filter={}", enc(r#"{"total":{"$gt":"x"}}"#)),
            400,
            vec!["x"],
        ),
        (
            format!("/api/pg_orders?filter={}", enc(r#"{"total":{"$near":1}}"#)),
            400,
            vec!["$near"],
        ),
        (
            format!("/api/pg_orders?filter={}", enc(r#"{"nope":1}"#)),
            400,
            vec!["nope"],
        ),
        ("/api/pg_orders?page=0".into(), 400, vec!["page"]),
        ("/api/pg_orders:frobnicate".into(), 404, vec!["frobnicate"]),
        ("/api/pg_events/1".into(), 400, vec!["primary key"]),
        ("/api/pg_line_items/1".into(), 400, vec!["order_id,line"]),
        ("/api/pg_orders/abc".into(), 400, vec!["abc"]),
        (
            format!(
                "/api/pg_posts?filter={}",
                enc(r#"{"labels":{"$hasKey":"a"}}"#)
            ),
            400,
            vec!["JSON", "labels"],
        ),
        (
            format!(
                "/api/pg_posts?filter={}",
                enc(r#"{"tags":{"$hasKeysAny":"a"}}"#)
            ),
            400,
            vec!["array"],
        ),
    ];
    for (path, status, words) in cases {
        let response = f.call(Method::GET, &path, None).await;
        assert_error(&response, status, &words);
    }
    // The bad filter's path is named.
    let response = f
        .call(
            Method::GET,
            &format!(
                "/api/pg_orders?filter={}",
                enc(r#"{"$and":[{"total":{"$gt":"x"}}]}"#)
            ),
            None,
        )
        .await;
    assert_eq!(
        response.1["error"]["path"], "filter.$and[0].total.$gt",
        "{}",
        response.1
    );
    f.stop().await;
}

#[tokio::test]
async fn rows_by_key_composite_keys_and_appends() {
    let f = Fixture::new().await;
    let body = f.get("/api/pg_orders/2?fields=id,status").await;
    assert_eq!(body, json!({"data": {"id": 2, "status": "shipped"}}));
    let body = f.get("/api/pg_line_items/1,2").await;
    assert_eq!(body, json!({"data": {"order_id": 1, "line": 2, "qty": 5}}));
    let body = f.get("/api/pg_orders:get?filterByTk=3&fields=id").await;
    assert_eq!(body, json!({"data": {"id": 3}}));
    let missing = f.call(Method::GET, "/api/pg_orders/999", None).await;
    assert_error(&missing, 404, &["999"]);
    // NocoBase's `get` by filter: the first match, by `sort` or the key.
    let get = |query: &str| {
        let filter = enc(query);
        format!("/api/pg_orders:get?fields=id&filter={filter}")
    };
    let body = f.get(&get(r#"{"status":"open"}"#)).await;
    assert_eq!(body, json!({"data": {"id": 1}}));
    let body = f
        .get(&format!("{}&sort=-total", get(r#"{"status":"open"}"#)))
        .await;
    assert_eq!(body, json!({"data": {"id": 4}}));
    let body = f
        .get(&format!("{}&filterByTk=3", get(r#"{"status":"open"}"#)))
        .await;
    assert_eq!(body, json!({"data": {"id": 3}}));
    let keyed_but_not_matching = f
        .call(
            Method::GET,
            &format!("{}&filterByTk=2", get(r#"{"status":"open"}"#)),
            None,
        )
        .await;
    assert_error(&keyed_but_not_matching, 404, &["`2`"]);
    let none = f
        .call(Method::GET, &get(r#"{"status":"lost"}"#), None)
        .await;
    assert_error(&none, 404, &["matches the filter"]);
    let neither = f.call(Method::GET, "/api/pg_orders:get", None).await;
    assert_error(&neither, 400, &["`filterByTk` or a non-empty `filter`"]);
    // A to-one relation joined into a sorted, paged read whose columns come
    // in another order than the table's (the SQL then wraps the page in a
    // derived table; the joined columns must keep resolving).
    let body = f
        .get("/api/pg_orders?fields=status,id&appends=customers&sort=-id&pageSize=2")
        .await;
    assert_eq!(
        body["data"],
        json!([
            {"status": "cancelled", "id": 5, "customers": {"id": 2, "name": "Bob", "tier": null, "secret": "s2"}},
            {"status": "open", "id": 4, "customers": {"id": 3, "name": "Cid", "tier": "silver", "secret": "s3"}},
        ])
    );
    // To-one and to-many relations in one source, the join columns
    // fetched but not answered when `fields` leaves them out.
    let body = f
        .get("/api/pg_orders?fields=id&appends=customers&pageSize=2")
        .await;
    assert_eq!(
        body["data"],
        json!([
            {"id": 1, "customers": {"id": 1, "name": "Ann", "tier": "gold", "secret": "s1"}},
            {"id": 2, "customers": {"id": 1, "name": "Ann", "tier": "gold", "secret": "s1"}},
        ])
    );
    let body = f
        .get("/api/pg_customers?fields=name&appends=orders.line_items&filter=%7B%22id%22%3A1%7D")
        .await;
    let orders = body["data"][0]["orders"].as_array().unwrap();
    assert_eq!(orders.len(), 2, "{body}");
    assert_eq!(
        orders[0]["line_items"].as_array().unwrap().len(),
        2,
        "{body}"
    );
    assert_eq!(orders[1]["line_items"][0]["qty"], 1, "{body}");
    // Across sources: MariaDB reviews with their PostgreSQL customer, and back.
    let body = f
        .get("/api/my_reviews?fields=id&appends=customer&sort=id")
        .await;
    assert_eq!(body["data"][0]["customer"]["name"], "Ann", "{body}");
    assert_eq!(body["data"][2]["customer"]["name"], "Cid", "{body}");
    let body = f.get("/api/pg_customers?fields=id&appends=customer").await;
    let stars: Vec<usize> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["customer"].as_array().unwrap().len())
        .collect();
    assert_eq!(stars, vec![2, 0, 1], "{body}");
    let bad = f
        .call(Method::GET, "/api/pg_orders?appends=nope", None)
        .await;
    assert_error(&bad, 400, &["nope"]);
    // Sorted by a related row's column, in one source and across two.
    let body = f
        .get("/api/pg_orders?fields=id&sort=-customers.name,id")
        .await;
    assert_eq!(
        body["data"],
        json!([{"id": 4}, {"id": 3}, {"id": 5}, {"id": 1}, {"id": 2}])
    );
    let body = f
        .get("/api/my_reviews?fields=id&sort=-customer.name,-id")
        .await;
    assert_eq!(body["data"], json!([{"id": 3}, {"id": 2}, {"id": 1}]));
    let bad = f
        .call(Method::GET, "/api/pg_customers?sort=orders.total", None)
        .await;
    assert_error(&bad, 400, &["orders", "many"]);
    let bad = f
        .call(Method::GET, "/api/pg_orders?sort=customers.nope", None)
        .await;
    assert_error(&bad, 400, &["nope"]);
    f.stop().await;
}

/// NocoBase's spellings for a relation's columns: `appends=rel.col` and
/// `fields=…,rel.col` answer only those (with the key the relation matches
/// on), `except=rel.col` leaves one out; through a join, a separate read
/// across sources, and one level down.
#[tokio::test]
async fn appends_answer_the_related_columns_asked_for() {
    let f = Fixture::new().await;
    let two = json!([
        {"id": 1, "customers": {"id": 1, "name": "Ann"}},
        {"id": 2, "customers": {"id": 1, "name": "Ann"}},
    ]);
    for path in [
        "/api/pg_orders?fields=id&appends=customers.name&sort=id&pageSize=2",
        "/api/pg_orders?fields=id,customers.name&sort=id&pageSize=2",
        "/api/pg_orders?fields=id&appends=customers.name,customers.name&sort=id&pageSize=2",
        "/api/pg_orders?fields=id&appends=customers&except=customers.tier,customers.secret,customers.id&sort=id&pageSize=2",
    ] {
        assert_eq!(f.get(path).await["data"], two, "{path}");
    }
    // By key too, with a relation named bare in `fields` (all its columns).
    let body = f.get("/api/pg_orders/3?fields=id,customers").await;
    assert_eq!(
        body["data"],
        json!({"id": 3, "customers": {"id": 2, "name": "Bob", "tier": null, "secret": "s2"}})
    );
    // Across sources (a read of its own): MariaDB reviews, PostgreSQL customers.
    let body = f
        .get("/api/my_reviews?fields=id,customer.tier&sort=id&pageSize=1")
        .await;
    assert_eq!(
        body["data"],
        json!([{"id": 1, "customer": {"tier": "gold", "id": 1}}])
    );
    let body = f
        .get("/api/my_reviews?fields=id&appends=customer&except=customer.secret&sort=id&pageSize=1")
        .await;
    assert_eq!(
        body["data"],
        json!([{"id": 1, "customer": {"id": 1, "name": "Ann", "tier": "gold"}}])
    );
    // To-many, and a level down: each order's status, each order's lines' qty.
    let one = enc(r#"{"id":1}"#);
    let body = f
        .get(&format!(
            "/api/pg_customers?fields=name&appends=orders.status&filter={one}"
        ))
        .await;
    assert_eq!(
        body["data"],
        json!([{"name": "Ann", "orders": [
            {"status": "open", "customer_id": 1},
            {"status": "shipped", "customer_id": 1},
        ]}])
    );
    let body = f
        .get(&format!(
            "/api/pg_customers?fields=name&appends=orders.line_items.qty&except=orders.note&filter={one}"
        ))
        .await;
    let orders = body["data"][0]["orders"].as_array().unwrap();
    assert_eq!(orders.len(), 2, "{body}");
    assert!(
        orders[0].get("note").is_none() && orders[0].get("total").is_some(),
        "{body}"
    );
    assert_eq!(
        orders[0]["line_items"],
        json!([{"qty": 2, "order_id": 1}, {"qty": 5, "order_id": 1}]),
        "{body}"
    );
    // Unknown columns are named, joined or read apart; related records
    // have no CSV form.
    for (path, param, word) in [
        ("/api/pg_orders?appends=customers.nope", "appends", "nope"),
        ("/api/pg_orders?fields=id,customers.nope", "appends", "nope"),
        (
            "/api/pg_orders?appends=customers&except=customers.nope",
            "except",
            "nope",
        ),
        (
            "/api/my_reviews?appends=customer&except=customer.nope",
            "except",
            "nope",
        ),
    ] {
        let response = f.call(Method::GET, path, None).await;
        assert_error(&response, 400, &[word]);
        let at = response.1["error"]["path"].as_str().unwrap_or_default();
        assert!(at.starts_with(param), "{path}: {}", response.1);
    }
    let response = reqwest::Client::new()
        .get(format!(
            "{}/api/pg_orders?fields=id,customers.name",
            f.server.base
        ))
        .bearer_auth(TOKEN)
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("`fields` names a relation")
    );
    // A role's hidden column of the related table is refused by name.
    f.rule(
        "clerk",
        "pg_customers",
        "select",
        json!({"columns": ["id", "name"]}),
    )
    .await;
    f.rule("clerk", "pg_orders", "select", json!({})).await;
    let response = f
        .call_as(
            "clerk",
            "ann",
            Method::GET,
            "/api/pg_orders?appends=customers.secret",
            None,
        )
        .await;
    assert_error(&response, 403, &["secret"]);
    let (status, body) = f
        .call_as(
            "clerk",
            "ann",
            Method::GET,
            "/api/pg_orders?fields=id,customers.name&sort=id&pageSize=2",
            None,
        )
        .await;
    assert_eq!((status, &body["data"]), (200, &two), "{body}");
    f.stop().await;
}

#[tokio::test]
async fn lists_answer_csv_and_ndjson() {
    let f = Fixture::new().await;
    let client = reqwest::Client::new();
    for (accept, expected) in [
        ("text/csv", "id,name\n1,Ann\n2,Bob\n"),
        (
            "application/x-ndjson",
            "{\"id\":1,\"name\":\"Ann\"}\n{\"id\":2,\"name\":\"Bob\"}\n",
        ),
    ] {
        let response = client
            .get(format!(
                "{}/api/pg_customers?fields=id,name&pageSize=2",
                f.server.base
            ))
            .bearer_auth(TOKEN)
            .header("accept", accept)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(response.text().await.unwrap(), expected, "{accept}");
    }
    // Aggregates too.
    let measures = enc(r#"[{"aggregation":"count","alias":"n"}]"#);
    let dimensions = enc(r#"[{"field":"status"}]"#);
    let response = client
        .get(format!(
            "{}/api/pg_orders:aggregate?measures={measures}&dimensions={dimensions}&sort=status",
            f.server.base
        ))
        .bearer_auth(TOKEN)
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response.text().await.unwrap(),
        "status,n\ncancelled,1\nopen,3\nshipped,1\n"
    );
    f.stop().await;
}

#[tokio::test]
async fn every_write_form_in_one_transaction() {
    let f = Fixture::new().await;
    // Create one, then many (PostgreSQL, serial key).
    let (status, body) = f
        .call(
            Method::POST,
            "/api/pg_orders",
            Some(json!({"customer_id": 2, "status": "open", "total": "12.30", "placed_at": "2024-04-01"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"]["id"], 101);
    assert_eq!(body["data"]["total"], "12.30");
    let (status, body) = f
        .call(
            Method::POST,
            "/api/pg_orders:create",
            Some(json!([
                {"customer_id": 3, "status": "open", "total": 1, "placed_at": "2024-04-02"},
                {"customer_id": 3, "status": "open", "total": 2, "placed_at": "2024-04-03", "note": "x"},
            ])),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(ids(&body), vec![102, 103]);
    // All or nothing: the second row breaks NOT NULL, the first is not kept.
    let before = f.pg_count("SELECT count(*) FROM {schema}.orders").await;
    let response = f
        .call(
            Method::POST,
            "/api/pg_orders",
            Some(json!([
                {"customer_id": 3, "status": "open", "total": 1, "placed_at": "2024-04-02"},
                {"customer_id": 3, "status": null, "total": 1, "placed_at": "2024-04-02"},
            ])),
        )
        .await;
    assert_eq!(response.0, 409, "{}", response.1);
    assert_eq!(
        f.pg_count("SELECT count(*) FROM {schema}.orders").await,
        before
    );
    // Update by key, by NocoBase's filterByTk, and in bulk by filter.
    let (status, body) = f
        .call(
            Method::PATCH,
            "/api/pg_orders/101",
            Some(json!({"status": "paid"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["status"], "paid");
    let (status, body) = f
        .call(
            Method::POST,
            "/api/pg_orders:update?filterByTk=102",
            Some(json!({"note": "nocobase"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["note"], "nocobase");
    let filter = enc(r#"{"customer_id":3,"placed_at":{"$gte":"2024-04-01"}}"#);
    let (status, body) = f
        .call(
            Method::PATCH,
            &format!("/api/pg_orders?filter={filter}"),
            Some(json!({"status": "bulk"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["meta"]["affected"], 2);
    assert_eq!(
        f.pg_count("SELECT count(*) FROM {schema}.orders WHERE status = 'bulk'")
            .await,
        2
    );
    // A bulk write without a filter, or with an empty one, touches nothing.
    for path in ["/api/pg_orders", "/api/pg_orders?filter=%7B%7D"] {
        let response = f
            .call(Method::PATCH, path, Some(json!({"status": "all"})))
            .await;
        assert_error(&response, 400, &["filter"]);
        let response = f.call(Method::DELETE, path, None).await;
        assert_error(&response, 400, &["filter"]);
    }
    assert_eq!(
        f.pg_count("SELECT count(*) FROM {schema}.orders WHERE status = 'all'")
            .await,
        0
    );
    // Bad bodies.
    let cases = [
        (json!({"nope": 1}), "nope", 400),
        (json!({"total": "lots"}), "total", 400),
        (json!({"placed_at": "2024-02-30"}), "placed_at", 400),
    ];
    for (body, path, status) in cases {
        let response = f
            .call(Method::PATCH, "/api/pg_orders/101", Some(body))
            .await;
        assert_eq!(response.0, status, "{}", response.1);
        assert_eq!(response.1["error"]["path"], path, "{}", response.1);
    }
    // Delete by key (answers the deleted row), then in bulk.
    let (status, body) = f.call(Method::DELETE, "/api/pg_orders/101", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["status"], "paid");
    let missing = f.call(Method::DELETE, "/api/pg_orders/101", None).await;
    assert_error(&missing, 404, &["101"]);
    let filter = enc(r#"{"status":"bulk"}"#);
    let (status, body) = f
        .call(
            Method::POST,
            &format!("/api/pg_orders:destroy?filter={filter}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["meta"]["affected"], 2);
    // MariaDB: auto-increment key, update and delete.
    let (status, body) = f
        .call(
            Method::POST,
            "/api/my_reviews",
            Some(json!({"customer_id": 2, "stars": 4})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body["data"],
        json!({"id": 4, "customer_id": 2, "stars": 4, "body": null})
    );
    let (status, body) = f
        .call(
            Method::PATCH,
            "/api/my_reviews/4",
            Some(json!({"body": "fine"})),
        )
        .await;
    assert_eq!(
        (status, body["data"]["body"].clone()),
        (200, json!("fine")),
        "{body}"
    );
    let (status, _) = f.call(Method::DELETE, "/api/my_reviews/4", None).await;
    assert_eq!(status, 200);
    let body = f.get("/api/my_reviews?fields=id").await;
    assert_eq!(ids(&body), vec![1, 2, 3]);
    // A body over max_body_bytes (2 MiB) is refused with our error body.
    let huge = json!({"note": "x".repeat(3 << 20)});
    let response = f
        .call(Method::PATCH, "/api/pg_orders/102", Some(huge))
        .await;
    assert_eq!(response.0, 413, "{}", response.1);
    assert_eq!(response.1["error"]["code"], "payload_too_large");
    // Writes need a primary key.
    let response = f
        .call(Method::POST, "/api/pg_events", Some(json!({"kind": "c"})))
        .await;
    assert_error(&response, 400, &["primary key"]);
    // Every write is in the audit log.
    let body = f.get("/admin/audit?action=write.update").await;
    let entries = body["entries"].as_array().unwrap();
    assert!(entries.len() >= 3, "{body}");
    assert!(
        entries.iter().any(|e| e["detail"]["affected"] == 2),
        "{body}"
    );
    f.stop().await;
}

#[tokio::test]
async fn a_roles_write_rules_hold() {
    let f = Fixture::new().await;
    let own = json!({"owner": "{{$user.id}}"});
    f.rule("clerk", "pg_orders", "select", json!({"filter": own, "columns": ["id", "customer_id", "status", "total", "placed_at", "owner"]})).await;
    f.clerk_inserts_orders().await;
    f.rule(
        "clerk",
        "pg_orders",
        "update",
        json!({
            "filter": own,
            "columns": ["status", "total"],
            "check": {"total": {"$lt": 1000}},
        }),
    )
    .await;
    f.rule("clerk", "pg_orders", "delete", json!({"filter": own}))
        .await;
    macro_rules! ann {
        ($method:expr, $path:expr, $body:expr $(,)?) => {
            f.call_as("clerk", "ann", $method, $path, $body)
        };
    }

    // Reads: own rows only, the hidden column refused by name.
    let (status, body) = ann!(Method::GET, "/api/pg_orders?count=true", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ids(&body), vec![1, 2]);
    assert_eq!(body["meta"]["count"], 2);
    assert!(body["data"][0].get("note").is_none(), "{body}");
    let response = ann!(Method::GET, "/api/pg_orders?fields=note", None).await;
    assert_error(&response, 403, &["note"]);
    let filter = enc(r#"{"note":"n4"}"#);
    let response = ann!(
        Method::GET,
        &format!("/api/pg_orders?filter={filter}"),
        None
    )
    .await;
    assert_error(&response, 403, &["note"]);
    let response = ann!(Method::GET, "/api/pg_orders/4", None).await;
    assert_error(&response, 404, &["4"]);
    let response = ann!(Method::GET, "/api/pg_customers", None).await;
    assert_error(&response, 403, &["pg_customers"]);
    let response = ann!(Method::GET, "/api/pg_orders:aggregate", None).await;
    assert_error(&response, 403, &["aggregate"]);

    // Insert: a column outside the list is a 403; the preset sets the owner.
    let new = json!({"customer_id": 1, "status": "open", "total": 20, "placed_at": "2024-05-01"});
    let mut with_note = new.clone();
    with_note["note"] = json!("mine");
    let response = ann!(Method::POST, "/api/pg_orders", Some(with_note)).await;
    assert_error(&response, 403, &["note"]);
    let (status, body) = ann!(Method::POST, "/api/pg_orders", Some(new.clone())).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"]["owner"], "ann");
    assert!(body["data"].get("note").is_none(), "{body}");
    let created = body["data"]["id"].as_i64().unwrap();
    // The check rolls the whole request back.
    let before = f.pg_count("SELECT count(*) FROM {schema}.orders").await;
    let mut dear = new.clone();
    dear["total"] = json!(5000);
    let response = ann!(Method::POST, "/api/pg_orders", Some(json!([new, dear]))).await;
    assert_error(&response, 403, &["check", "insert", "nothing was written"]);
    assert_eq!(
        f.pg_count("SELECT count(*) FROM {schema}.orders").await,
        before
    );

    // Update: another user's row is not there for this role; own rows are.
    let response = ann!(
        Method::PATCH,
        "/api/pg_orders/4",
        Some(json!({"status": "x"}))
    )
    .await;
    assert_error(&response, 404, &["4"]);
    let filter = enc(r#"{"status":"open"}"#);
    let (status, body) = ann!(
        Method::PATCH,
        &format!("/api/pg_orders?filter={filter}"),
        Some(json!({"status": "seen"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["meta"]["affected"], 2, "{body}");
    assert_eq!(
        f.pg_count("SELECT count(*) FROM {schema}.orders WHERE status = 'seen' AND owner = 'ann'")
            .await,
        2
    );
    assert_eq!(
        f.pg_count("SELECT count(*) FROM {schema}.orders WHERE status = 'open'")
            .await,
        2
    );
    let response = ann!(
        Method::PATCH,
        &format!("/api/pg_orders/{created}"),
        Some(json!({"total": 1000})),
    )
    .await;
    assert_error(&response, 403, &["check", "update"]);
    assert_eq!(
        f.pg_count(&format!(
            "SELECT count(*) FROM {{schema}}.orders WHERE id = {created} AND total = 20"
        ))
        .await,
        1
    );
    let response = ann!(
        Method::PATCH,
        &format!("/api/pg_orders/{created}"),
        Some(json!({"owner": "bob"})),
    )
    .await;
    assert_error(&response, 403, &["owner"]);

    // Delete: only own rows.
    let response = ann!(Method::DELETE, "/api/pg_orders/3", None).await;
    assert_error(&response, 404, &["3"]);
    let (status, _) = ann!(Method::DELETE, &format!("/api/pg_orders/{created}"), None).await;
    assert_eq!(status, 200);
    // A preset from a variable the request lacks writes nothing.
    let (status, body) = f
        .server
        .call(
            Method::POST,
            "/api/pg_orders",
            Some(new.clone()),
            Some(TOKEN),
        )
        .await;
    assert_eq!(status, 201, "the admin is not bound by presets: {body}");
    let response = reqwest::Client::new()
        .post(format!("{}/api/pg_orders", f.server.base))
        .bearer_auth(TOKEN)
        .header("x-role", "clerk")
        .json(&new)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 403, "no user id, no owner");
    // A role without a rule for the action is refused.
    let response = f
        .call_as(
            "clerk",
            "ann",
            Method::POST,
            "/api/my_reviews",
            Some(json!({"customer_id": 1, "stars": 1})),
        )
        .await;
    assert_error(&response, 403, &["insert", "my_reviews"]);

    // The audit log has each write, refused ones included, with who did it.
    let body = f.get("/admin/audit?role=clerk").await;
    let entries = body["entries"].as_array().unwrap();
    let actions: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    for expected in [
        ("write.insert", "ok"),
        ("write.insert", "denied"),
        ("write.update", "ok"),
        ("write.update", "denied"),
        ("write.delete", "ok"),
    ] {
        assert!(
            actions.contains(&expected),
            "{expected:?} not in {actions:?}"
        );
    }
    // All Ann's but the one made without a user id.
    let anonymous: Vec<&Value> = entries.iter().filter(|e| e["user_id"] != "ann").collect();
    assert_eq!(anonymous.len(), 1, "{body}");
    assert!(
        anonymous[0]["detail"]["error"]
            .as_str()
            .unwrap()
            .contains("preset"),
        "{body}"
    );
    // A refused write says so, and claims no affected rows.
    assert!(
        entries
            .iter()
            .filter(|e| e["outcome"] == "denied")
            .all(|e| e["detail"].get("affected").is_none()),
        "{body}"
    );
    assert!(
        entries.iter().any(|e| e["detail"]["sql_fingerprint"]
            .as_str()
            .is_some_and(|s| s.len() == 16)),
        "{body}"
    );
    f.stop().await;
}

/// Rows an update or delete chose by a filter are read before its
/// transaction; a row another transaction changes meanwhile is written
/// only if it still matches — the role's filter and the request's — as
/// PostgreSQL re-checks an UPDATE's WHERE. Each case holds a row's lock
/// in a transaction of its own, sends the request, lets it wait on that
/// lock, then commits the change.
#[tokio::test]
async fn a_row_changed_while_a_write_waits_is_written_only_if_it_still_matches() {
    use mysql_async::prelude::Queryable;
    let f = Fixture::new().await;
    let own = json!({"owner": "{{$user.id}}"});
    f.rule("clerk", "pg_orders", "select", json!({"filter": own}))
        .await;
    f.rule(
        "clerk",
        "pg_orders",
        "update",
        json!({"filter": own, "columns": ["total"]}),
    )
    .await;
    f.rule("clerk", "pg_orders", "delete", json!({"filter": own}))
        .await;

    // PostgreSQL, a role's filter: order 1 passes to bob while ann's update waits.
    let other = common::postgres().await;
    let schema = &f.schema;
    other
        .batch_execute(&format!(
            "BEGIN; UPDATE {schema}.orders SET owner = 'bob' WHERE id = 1"
        ))
        .await
        .unwrap();
    let filter = enc(r#"{"id":{"$in":[1,2]}}"#);
    let path = format!("/api/pg_orders?filter={filter}");
    let update = f.call_as(
        "clerk",
        "ann",
        Method::PATCH,
        &path,
        Some(json!({"total": 1})),
    );
    let (status, body) =
        common::while_locked(update, common::wait_for_lock_wait_pg(schema), async {
            other.batch_execute("COMMIT").await.unwrap();
        })
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["meta"]["affected"], 1, "{body}");
    assert_eq!(
        f.pg_count("SELECT count(*) FROM {schema}.orders WHERE total = 1 AND id = 2")
            .await,
        1
    );
    assert_eq!(
        f.pg_count(
            "SELECT count(*) FROM {schema}.orders WHERE id = 1 AND total = 10.50 AND owner = 'bob'"
        )
        .await,
        1,
        "bob's order is not ann's to write"
    );

    // A delete as well: order 2 passes to cid; nothing of ann's is left to delete.
    other
        .batch_execute(&format!(
            "BEGIN; UPDATE {schema}.orders SET owner = 'cid' WHERE id = 2"
        ))
        .await
        .unwrap();
    let delete = f.call_as("clerk", "ann", Method::DELETE, &path, None);
    let (status, body) =
        common::while_locked(delete, common::wait_for_lock_wait_pg(schema), async {
            other.batch_execute("COMMIT").await.unwrap();
        })
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["meta"]["affected"], 0, "{body}");
    assert_eq!(
        f.pg_count("SELECT count(*) FROM {schema}.orders WHERE id IN (1, 2)")
            .await,
        2
    );

    // MariaDB, the request's own filter: review 1 drops to one star while
    // the update of reviews with three stars or more waits.
    let mut other = common::mariadb().await;
    let database = &f.database;
    other.query_drop("BEGIN").await.unwrap();
    other
        .query_drop(format!(
            "UPDATE {database}.reviews SET stars = 1 WHERE id = 1"
        ))
        .await
        .unwrap();
    let filter = enc(r#"{"stars":{"$gte":3}}"#);
    let path = format!("/api/my_reviews?filter={filter}");
    let update = f.call(Method::PATCH, &path, Some(json!({"body": "fine"})));
    let (status, body) = common::while_locked(
        update,
        common::wait_for_lock_wait_mariadb(database),
        async {
            other.query_drop("COMMIT").await.unwrap();
        },
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["meta"]["affected"], 1, "{body}");
    let rows: Vec<(i64, i64, String)> = other
        .query(format!(
            "SELECT id, stars, body FROM {database}.reviews WHERE id IN (1, 2) ORDER BY id"
        ))
        .await
        .unwrap();
    assert_eq!(
        rows,
        vec![(1, 1, "great".to_string()), (2, 3, "fine".to_string())]
    );
    f.stop().await;
}

#[tokio::test]
async fn the_aggregate_endpoint_groups_truncates_and_filters() {
    let f = Fixture::new().await;
    let measures = enc(
        r#"[{"aggregation":"count","alias":"n"},{"field":"total","aggregation":"sum","alias":"sum"}]"#,
    );
    let dimensions = enc(r#"[{"field":"status"}]"#);
    let body = f
        .get(&format!(
            "/api/pg_orders:aggregate?measures={measures}&dimensions={dimensions}&sort=-n,status"
        ))
        .await;
    assert_eq!(
        body["data"],
        json!([
            {"status": "open", "n": 3, "sum": "315.75"},
            {"status": "cancelled", "n": 1, "sum": "42.00"},
            {"status": "shipped", "n": 1, "sum": "99.00"},
        ])
    );
    // A having value with more decimals than the sum compares with every
    // digit (not rounded to the sum's scale first).
    for (having, expected) in [
        (json!({"sum": {"$gt": "315.745"}}), json!(["open"])),
        (json!({"sum": "42.004"}), json!([])),
        (
            json!({"sum": {"$lt": 99.001}}),
            json!(["cancelled", "shipped"]),
        ),
        (
            json!({"sum": {"$in": ["42.00", 99.001]}}),
            json!(["cancelled"]),
        ),
    ] {
        let body = f
            .get(&format!(
                "/api/pg_orders:aggregate?measures={measures}&dimensions={dimensions}&having={}&sort=status",
                enc(&having.to_string())
            ))
            .await;
        let statuses: Vec<Value> = body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| row["status"].clone())
            .collect();
        assert_eq!(Value::from(statuses), expected, "{having}");
    }
    // Months, a having over an alias, a limit.
    let dimensions = enc(r#"[{"field":"placed_at","granularity":"month","alias":"month"}]"#);
    let measures = enc(
        r#"[{"field":"customer_id","aggregation":"count","distinct":true,"alias":"customers"}]"#,
    );
    let having = enc(r#"{"customers":{"$gte":2}}"#);
    let body = f
        .get(&format!(
            "/api/pg_orders:aggregate?measures={measures}&dimensions={dimensions}&having={having}&sort=month"
        ))
        .await;
    assert_eq!(body["data"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(body["data"][0]["customers"], 2, "{body}");
    assert!(
        body["data"][0]["month"]
            .as_str()
            .unwrap()
            .starts_with("2024-02-01"),
        "{body}"
    );
    // Counts of several columns: rows where none is NULL, and distinct
    // combinations (ann/1 twice, bob/2 twice; bob's NULL note left out).
    let measures = enc(
        r#"[{"fields":["customer_id","owner"],"aggregation":"count","distinct":true,"alias":"pairs"},{"fields":["owner","note"],"aggregation":"count"},{"fields":["owner","note"],"aggregation":"count","distinct":true}]"#,
    );
    let body = f
        .get(&format!("/api/pg_orders:aggregate?measures={measures}"))
        .await;
    assert_eq!(
        body["data"],
        json!([{"pairs": 3, "count_owner_note": 4, "count_distinct_owner_note": 4}]),
        "{body}"
    );
    // Filter and MariaDB.
    let filter = enc(r#"{"stars":{"$gte":3}}"#);
    let measures = enc(r#"[{"field":"stars","aggregation":"avg","alias":"avg"}]"#);
    let body = f
        .get(&format!(
            "/api/my_reviews:aggregate?measures={measures}&filter={filter}"
        ))
        .await;
    assert_eq!(body["data"], json!([{"avg": 4.0}]));
    // Groups and a having on MariaDB, one measure twice: the outputs keep
    // their order in the source's SQL (the unparser wrote the average
    // first, and MariaDB's average was read as the group key).
    let measures = enc(
        r#"[{"field":"stars","aggregation":"avg","alias":"avg"},{"field":"stars","aggregation":"avg","alias":"again"}]"#,
    );
    let dimensions = enc(r#"[{"field":"customer_id","alias":"customer"}]"#);
    let having = enc(r#"{"avg":{"$gte":2}}"#);
    let body = f
        .get(&format!(
            "/api/my_reviews:aggregate?measures={measures}&dimensions={dimensions}&having={having}&sort=customer"
        ))
        .await;
    assert_eq!(
        body["data"],
        json!([{"customer": 1, "avg": 4.0, "again": 4.0}]),
        "{body}"
    );
    // Bad requests.
    let cases = [
        (
            format!(
                "measures={}",
                enc(r#"[{"aggregation":"median","field":"total"}]"#)
            ),
            "measures",
        ),
        (
            format!("measures={}", enc(r#"[{"aggregation":"sum"}]"#)),
            "field",
        ),
        (
            format!(
                "measures={}",
                enc(r#"[{"aggregation":"sum","fields":["total","id"]}]"#)
            ),
            "fields",
        ),
        (
            format!(
                "dimensions={}",
                enc(r#"[{"field":"status","granularity":"month"}]"#)
            ),
            "granularity",
        ),
        ("sort=total".to_string(), "total"),
        (format!("having={}", enc(r#"{"total":{"$gt":1}}"#)), "total"),
        (
            format!(
                "measures={}&having={}",
                enc(r#"[{"field":"total","aggregation":"sum","alias":"sum"}]"#),
                enc(r#"{"sum":{"$gt":"x"}}"#)
            ),
            "`x` is not a number",
        ),
    ];
    for (query, word) in cases {
        let response = f
            .call(
                Method::GET,
                &format!("/api/pg_orders:aggregate?{query}"),
                None,
            )
            .await;
        assert_error(&response, 400, &[word]);
    }
    f.stop().await;
}

#[tokio::test]
async fn each_caller_gets_its_own_openapi_document() {
    let f = Fixture::new().await;
    f.rule(
        "viewer",
        "pg_orders",
        "select",
        json!({"columns": ["id", "status", "total"]}),
    )
    .await;
    f.rule(
        "viewer",
        "pg_orders",
        "update",
        json!({"columns": ["status"]}),
    )
    .await;
    let admin = f.get("/api/openapi.json").await;
    assert_eq!(
        admin["openapi"].as_str().unwrap().get(..3),
        Some("3.1"),
        "{admin}"
    );
    let paths = admin["paths"].as_object().unwrap();
    for path in [
        "/api/pg_orders",
        "/api/pg_orders/{pk}",
        "/api/my_reviews:aggregate",
        "/api/sql",
    ] {
        assert!(paths.contains_key(path), "{path} missing");
    }
    assert!(
        paths.keys().any(|p| p.starts_with("/admin/")),
        "no admin API"
    );
    // No by-key routes for a table without a primary key.
    assert!(paths.contains_key("/api/pg_events"));
    assert!(!paths.contains_key("/api/pg_events/{pk}"));
    // A role's document: its collection, its operations, its columns.
    let (status, viewer) = f
        .call_as("viewer", "u1", Method::GET, "/api/openapi.json", None)
        .await;
    assert_eq!(status, 200, "{viewer}");
    let paths = viewer["paths"].as_object().unwrap();
    assert!(
        !paths
            .keys()
            .any(|p| p.contains("customers") || p.starts_with("/admin/")),
        "{paths:?}"
    );
    let orders = &paths["/api/pg_orders"];
    assert!(
        orders.get("get").is_some() && orders.get("post").is_none(),
        "{orders}"
    );
    assert!(paths["/api/pg_orders/{pk}"].get("patch").is_some());
    assert!(paths["/api/pg_orders/{pk}"].get("delete").is_none());
    assert!(!paths.contains_key("/api/pg_orders:aggregate"));
    let row = viewer["components"]["schemas"]["pg_orders"]["properties"]
        .as_object()
        .unwrap();
    let mut columns: Vec<&str> = row.keys().map(String::as_str).collect();
    columns.sort_unstable();
    assert_eq!(columns, vec!["id", "status", "total"]);
    // The served document is valid OpenAPI 3.1.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("openapi.json");
    std::fs::write(&path, serde_json::to_vec(&admin).unwrap()).unwrap();
    let output = std::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/openapi_validate.py"
        ))
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // The docs page needs no credentials and loads nothing from elsewhere.
    let (status, page) = f.server.get_text("/api/docs").await;
    assert_eq!(status, 200);
    assert!(
        page.contains("/api/openapi.json") && !page.contains("https://"),
        "{page}"
    );
    f.stop().await;
}

#[tokio::test]
async fn keyset_cursors_walk_every_row_once_in_order() {
    let f = Fixture::new().await;
    // Sorted by a column with NULLs and ties (tier), descending and ascending.
    for sort in ["tier", "-tier", "-name"] {
        let mut seen = Vec::new();
        let mut path = format!("/api/pg_customers?sort={sort}&fields=id&pageSize=2");
        loop {
            let body = f.get(&path).await;
            seen.extend(ids(&body));
            match body["meta"]["nextCursor"].as_str() {
                Some(next) => {
                    path =
                        format!("/api/pg_customers?sort={sort}&fields=id&pageSize=2&cursor={next}")
                }
                None => break,
            }
        }
        let all = ids(&f
            .get(&format!("/api/pg_customers?sort={sort}&fields=id"))
            .await);
        assert_eq!(seen, all, "sort {sort}");
    }
    // Orders by total descending, two per page, through every page.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    for _ in 0..5 {
        let body = f
            .get(&format!(
                "/api/pg_orders?sort=-total&fields=id&pageSize=2&cursor={cursor}"
            ))
            .await;
        seen.extend(ids(&body));
        match body["meta"]["nextCursor"].as_str() {
            Some(next) => cursor = next.to_string(),
            None => break,
        }
    }
    assert_eq!(seen, vec![4, 2, 5, 1, 3]);
    // The next pages keep the filter.
    let open = enc(r#"{"status":"open"}"#);
    let page = |cursor: &str| {
        format!("/api/pg_orders?filter={open}&sort=total&fields=id&pageSize=2&cursor={cursor}")
    };
    let body = f.get(&page("")).await;
    assert_eq!(ids(&body), vec![3, 1]);
    let next = body["meta"]["nextCursor"].as_str().unwrap().to_string();
    let body = f.get(&page(&next)).await;
    assert_eq!(ids(&body), vec![4], "{body}");
    // A cursor is bound to its order, and is not forged easily.
    let body = f
        .get("/api/pg_orders?sort=-total&fields=id&pageSize=2")
        .await;
    let next = body["meta"]["nextCursor"].as_str().unwrap().to_string();
    let response = f
        .call(
            Method::GET,
            &format!("/api/pg_orders?sort=total&cursor={next}"),
            None,
        )
        .await;
    assert_error(&response, 400, &["-total"]);
    let response = f.call(Method::GET, "/api/pg_orders?cursor=xyz", None).await;
    assert_error(&response, 400, &["cursor"]);
    let response = f
        .call(
            Method::GET,
            &format!("/api/pg_orders?sort=-total&page=2&cursor={next}"),
            None,
        )
        .await;
    assert_error(&response, 400, &["page"]);
    f.stop().await;
}

/// Schemathesis (PyPI; `.ci/test-all` installs it) generates requests from
/// the served OpenAPI document for every collection route: no answer may
/// be a 5xx, and every answer must match the document (status, content
/// type, body schema).
#[tokio::test]
async fn schemathesis_finds_no_server_error_and_answers_match_the_document() {
    let f = Fixture::new().await;
    // Schemathesis keeps a cache in its working directory: not in the clone.
    let scratch = tempfile::tempdir().unwrap();
    let output = tokio::process::Command::new("schemathesis")
        .current_dir(scratch.path())
        .args([
            "run",
            &format!("{}/api/openapi.json", f.server.base),
            "--header",
            &format!("Authorization: Bearer {TOKEN}"),
            "--include-path-regex",
            "^/api/",
            "--max-examples",
            "15",
            "--seed",
            "20261130",
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            "--no-color",
        ])
        .output()
        .await
        .expect("schemathesis runs (pip install schemathesis; .ci/test-all does)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found failures:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("passed"), "{stdout}");
    f.stop().await;
}

/// Reads repeated with other values take the fast path (the plan learned
/// once, then one prepared statement with `$1` bound by PostgreSQL), with
/// the planner's answers — per user for a role.
#[tokio::test]
async fn repeated_reads_take_the_fast_path_with_the_same_answers() {
    let f = Fixture::new().await;
    for (key, status) in [
        (1, "open"),
        (2, "shipped"),
        (3, "open"),
        (5, "cancelled"),
        (4, "open"),
    ] {
        let body = f
            .get(&format!("/api/pg_orders/{key}?fields=id,status"))
            .await;
        assert_eq!(body["data"], json!({"id": key, "status": status}));
    }
    let client = common::postgres().await;
    let prepared: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE $1",
            &[&format!("%{}%orders%$1%", f.schema)],
        )
        .await
        .unwrap()
        .get(0);
    assert!(prepared >= 1, "no backend ran the statement with $1");
    let missing = f
        .call(Method::GET, "/api/pg_orders/77?fields=id,status", None)
        .await;
    assert_error(&missing, 404, &["77"]);
    // Lists with a filter and a sort, several values.
    for (status, expected) in [
        ("open", vec![4, 1, 3]),
        ("shipped", vec![2]),
        ("open", vec![4, 1, 3]),
        ("x", vec![]),
    ] {
        let filter = enc(&format!(r#"{{"status":"{status}"}}"#));
        let body = f
            .get(&format!(
                "/api/pg_orders?filter={filter}&sort=-total&fields=id"
            ))
            .await;
        assert_eq!(ids(&body), expected, "{status}");
    }
    // A role: each user keeps getting their own rows.
    f.own_orders_only("clerk").await;
    for _ in 0..3 {
        for (user, expected) in [("ann", vec![1, 2]), ("bob", vec![3, 5])] {
            let filter = enc(r#"{"total":{"$gt":1}}"#);
            let (status, body) = f
                .call_as(
                    "clerk",
                    user,
                    Method::GET,
                    &format!("/api/pg_orders?filter={filter}&fields=id"),
                    None,
                )
                .await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(ids(&body), expected, "{user}");
            let (_, one) = f
                .call_as(
                    "clerk",
                    user,
                    Method::GET,
                    "/api/pg_orders/1?fields=id",
                    None,
                )
                .await;
            assert_eq!(one["data"].is_object(), user == "ann", "{user}: {one}");
        }
    }
    f.stop().await;
}

/// Reads without a filter — an aggregate grouped by a column, a list —
/// are learned by their request's shape too, as aggregates with a filter
/// are: from the third on, the statement goes straight to PostgreSQL (no
/// plan built), with the planner's answers, read afresh each time.
#[tokio::test]
async fn aggregates_and_reads_without_a_filter_skip_planning_with_the_same_answers() {
    let f = Fixture::new().await;
    let measures = enc(
        r#"[{"aggregation": "count", "alias": "n"}, {"field": "total", "aggregation": "sum", "alias": "sum"}]"#,
    );
    let dimensions = enc(r#"[{"field": "status"}]"#);
    let aggregate =
        format!("/api/pg_orders:aggregate?measures={measures}&dimensions={dimensions}&sort=status");
    let list = "/api/pg_customers?fields=id,name&sort=id";
    let learned = || unplanned_reads(&f);
    let groups = json!([
        {"status": "cancelled", "n": 1, "sum": "42.00"},
        {"status": "open", "n": 3, "sum": "315.75"},
        {"status": "shipped", "n": 1, "sum": "99.00"},
    ]);
    // Seen once, learned the second time, then taken.
    for _ in 0..2 {
        assert_eq!(f.get(&aggregate).await["data"], groups);
        assert_eq!(ids(&f.get(list).await), vec![1, 2, 3]);
    }
    let before = learned().await;
    for _ in 0..2 {
        assert_eq!(f.get(&aggregate).await["data"], groups);
        assert_eq!(ids(&f.get(list).await), vec![1, 2, 3]);
    }
    assert_eq!(learned().await, before + 4);
    // An aggregate with a filter: each request's own values, from the
    // third on without a plan.
    let of_customer = |id: i64| {
        let filter = enc(&format!(r#"{{"customer_id":{id}}}"#));
        format!("{aggregate}&filter={filter}")
    };
    for (id, expected) in [
        (
            1,
            json!([{"status": "open", "n": 1, "sum": "10.50"}, {"status": "shipped", "n": 1, "sum": "99.00"}]),
        ),
        (
            2,
            json!([{"status": "cancelled", "n": 1, "sum": "42.00"}, {"status": "open", "n": 1, "sum": "5.25"}]),
        ),
        (3, json!([{"status": "open", "n": 1, "sum": "300.00"}])),
        (
            1,
            json!([{"status": "open", "n": 1, "sum": "10.50"}, {"status": "shipped", "n": 1, "sum": "99.00"}]),
        ),
    ] {
        assert_eq!(f.get(&of_customer(id)).await["data"], expected, "{id}");
    }
    assert_eq!(learned().await, before + 4 + 2);
    // The statement runs again each time: a row written meanwhile counts.
    let (status, body) = f
        .call(
            Method::POST,
            "/api/pg_orders",
            Some(
                json!({"customer_id": 3, "status": "open", "total": 1, "placed_at": "2024-05-01"}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let data = f.get(&aggregate).await["data"].clone();
    assert_eq!(
        data[1],
        json!({"status": "open", "n": 4, "sum": "316.75"}),
        "{data}"
    );
    assert_eq!(learned().await, before + 4 + 2 + 1);
    f.stop().await;
}

/// Reads answered from a learned request shape, without building a plan
/// (`tributary_reads_total{path="request_shape"}`).
async fn unplanned_reads(f: &Fixture) -> u64 {
    counter(f, r#"tributary_reads_total{path="request_shape"}"#).await
}

/// A request whose shape came before skips planning (its values mapped to
/// the learned statement's parameters), with the planner's answers; values
/// the filter transforms, and values that no longer fit, keep the planner.
#[tokio::test]
async fn learned_request_shapes_skip_planning_with_the_same_answers() {
    let f = Fixture::new().await;
    let by_key = |key: i64| format!("/api/pg_orders/{key}?fields=id,status");
    for key in [1, 2] {
        f.get(&by_key(key)).await;
    }
    assert_eq!(
        unplanned_reads(&f).await,
        0,
        "learned only by the second request"
    );
    for (key, status) in [(3, "open"), (5, "cancelled"), (4, "open"), (1, "open")] {
        let body = f.get(&by_key(key)).await;
        assert_eq!(body["data"], json!({"id": key, "status": status}));
    }
    assert_eq!(unplanned_reads(&f).await, 4);
    assert_error(&f.call(Method::GET, &by_key(77), None).await, 404, &["77"]);
    // Lists: an `$in` list of two, and a number given as text.
    let list = |filter: &str| format!("/api/pg_orders?filter={}&sort=id&fields=id", enc(filter));
    for (filter, expected) in [
        (r#"{"id":{"$in":[1,3]},"status":"open"}"#, vec![1, 3]),
        (r#"{"id":{"$in":[2,5]},"status":"open"}"#, vec![]),
        (r#"{"id":{"$in":[2,5]},"status":"shipped"}"#, vec![2]),
        (r#"{"id":{"$in":[4,4]},"status":"open"}"#, vec![4]),
        (r#"{"customer_id":"2"}"#, vec![3, 5]),
        (r#"{"customer_id":"1"}"#, vec![1, 2]),
        (r#"{"customer_id":"3"}"#, vec![4]),
        (r#"{"customer_id":2}"#, vec![3, 5]),
    ] {
        assert_eq!(ids(&f.get(&list(filter)).await), expected, "{filter}");
    }
    // The 404 above, the third and fourth `$in` lists, the third text.
    assert_eq!(unplanned_reads(&f).await, 8);
    // Text that is no number for an integer column: the planner's 400.
    let (status, body) = f
        .call(Method::GET, &list(r#"{"customer_id":"x"}"#), None)
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(unplanned_reads(&f).await, 8);
    // Text PostgreSQL's protocol cannot carry is the request's fault (400),
    // learned shape or not.
    let (status, body) = f
        .call(
            Method::GET,
            &list(r#"{"customer_id":"1","status":"a\u0000b"}"#),
            None,
        )
        .await;
    assert_eq!(status, 400, "{body}");
    // Exact decimals are bound too: the third value of a shape is not planned.
    for (total, expected) in [
        ("10", vec![1, 2, 4, 5]),
        ("50.5", vec![2, 4]),
        ("98.99", vec![2, 4]),
    ] {
        let filter = format!(r#"{{"total":{{"$gt":"{total}"}}}}"#);
        assert_eq!(ids(&f.get(&list(&filter)).await), expected, "{total}");
    }
    assert_eq!(unplanned_reads(&f).await, 9);
    // `$includes` wraps its text in `%…%`: planned every time, rightly.
    for (text, expected) in [
        ("N", vec![1, 3, 4, 5]),
        ("ship", vec![2]),
        ("o", vec![1, 3, 4]),
    ] {
        let filter = format!(r#"{{"status":{{"$includes":"{text}"}}}}"#);
        assert_eq!(ids(&f.get(&list(&filter)).await), expected, "{text}");
    }
    assert_eq!(unplanned_reads(&f).await, 9);
    // A role's user: its own rows, the request shape learned per user.
    f.own_orders_only("clerk").await;
    for round in 0..3 {
        for (user, key, found) in [("ann", 1, true), ("bob", 1, false), ("bob", 3, true)] {
            let (status, body) = f
                .call_as("clerk", user, Method::GET, &by_key(key), None)
                .await;
            assert_eq!(status == 200, found, "{round} {user} {key}: {body}");
        }
    }
    // Each user's second request of a shape learns it: bob's from round
    // one, ann's from round two.
    assert_eq!(unplanned_reads(&f).await, 9 + 2 + 3);
    // GraphQL reads take the same road (learned from the second on, even
    // when the plan's shape was known before).
    let query =
        |key: i64| json!({"query": format!("{{ pg_orders_by_pk(id: {key}) {{ id status }} }}")});
    for (key, status) in [
        (1, "open"),
        (2, "shipped"),
        (5, "cancelled"),
        (2, "shipped"),
        (5, "cancelled"),
    ] {
        let (code, body) = f.call(Method::POST, "/graphql", Some(query(key))).await;
        assert_eq!(code, 200, "{body}");
        assert_eq!(
            body["data"]["pg_orders_by_pk"],
            json!({"id": key, "status": status})
        );
    }
    assert_eq!(unplanned_reads(&f).await, 14 + 3);
    f.stop().await;
}

/// Differential check of the request-shape fast path: for filters over
/// many operators, with values that make the compiler branch or transform
/// (months vs days, `%` in text, empty text, numbers as text, values of the
/// wrong type), a learned shape answers what the planner answers for a
/// shape it has never seen (a `pageSize` of its own).
#[tokio::test]
async fn learned_request_shapes_answer_as_the_planner_for_every_operator() {
    let f = Fixture::new().await;
    let templates: Vec<(&str, Vec<Value>)> = vec![
        (
            r#"{"status":@}"#,
            vec![
                json!("open"),
                json!("shipped"),
                json!(""),
                json!("OPEN"),
                json!(7001),
                json!("a\u{0}b"),
            ],
        ),
        (
            r#"{"id":{"$gt":@}}"#,
            vec![
                json!(0),
                json!(2),
                json!(-1),
                json!("3"),
                json!(2.5),
                json!(true),
            ],
        ),
        (
            r#"{"id":{"$in":[@,3]}}"#,
            vec![json!(1), json!(4), json!(3), json!("x")],
        ),
        (
            r#"{"customer_id":{"$notIn":[@]}}"#,
            vec![json!(1), json!(2), json!(9)],
        ),
        (
            r#"{"customer_id":@}"#,
            vec![
                json!("1"),
                json!("2"),
                json!("3"),
                json!(" 2"),
                json!("2.0"),
            ],
        ),
        (
            r#"{"note":{"$ne":@}}"#,
            vec![json!("n1"), json!("n2"), json!(""), json!(null)],
        ),
        (
            r#"{"note":{"$like":@}}"#,
            vec![json!("n%"), json!("%1"), json!("_2"), json!("%"), json!("")],
        ),
        (
            r#"{"status":{"$includes":@}}"#,
            vec![json!("o"), json!("%"), json!("_"), json!(""), json!("N")],
        ),
        (
            r#"{"status":{"$startsWith":@}}"#,
            vec![json!("o"), json!("s"), json!("")],
        ),
        (
            r#"{"$or":[{"status":@},{"id":@}]}"#,
            vec![json!("open"), json!(2), json!("x"), json!(5)],
        ),
        (
            r#"{"placed_at":{"$dateOn":@}}"#,
            vec![
                json!("2024-01-05"),
                json!("2024-01"),
                json!("2024-02-14"),
                json!("2024"),
            ],
        ),
        (
            r#"{"placed_at":{"$dateBefore":@}}"#,
            vec![json!("2024-02-01"), json!("2024-03"), json!("x")],
        ),
        (
            r#"{"total":{"$gt":@}}"#,
            vec![json!(10), json!("50.5"), json!(99)],
        ),
        // Learned with values the column's scale holds; then values it
        // would round (compared with every digit: planned).
        (
            r#"{"total":{"$gt":@}}"#,
            vec![json!(10.5), json!(20.25), json!(10.504), json!(5.245)],
        ),
        (
            r#"{"total":{"$lte":@}}"#,
            vec![json!("10.5"), json!("99"), json!("10.499"), json!("5.25")],
        ),
        (r#"{"note":{"$empty":@}}"#, vec![json!(true), json!(false)]),
        (r#"{"id":{"$isTruly":@}}"#, vec![json!(true), json!(false)]),
        (r#"{"customer.name":@}"#, vec![json!("Ann"), json!("Bob")]),
        (
            r#"{"owner":{"$eq":@},"id":{"$lte":@}}"#,
            vec![
                json!("ann"),
                json!(1),
                json!("bob"),
                json!(5),
                json!("ann"),
                json!(9),
            ],
        ),
    ];
    let mut fresh = 200;
    let before = unplanned_reads(&f).await;
    for (template, values) in &templates {
        let holes = template.matches('@').count();
        let fill = |values: &[Value]| {
            let mut text = template.to_string();
            for value in values {
                text = text.replacen('@', &value.to_string(), 1);
            }
            text
        };
        let sets: Vec<&[Value]> = values.chunks(holes).collect();
        let path = |filter: &str, page: i64| {
            format!(
                "/api/pg_orders?filter={}&sort=id&fields=id&pageSize={page}",
                enc(filter)
            )
        };
        // Learned from the first two value sets, then every set asked of both.
        for set in sets.iter().take(2).chain(sets.iter().take(2)) {
            f.call(Method::GET, &path(&fill(set), 50), None).await;
        }
        for set in &sets {
            let filter = fill(set);
            fresh += 1;
            let planned = f.call(Method::GET, &path(&filter, fresh), None).await;
            let learned = f.call(Method::GET, &path(&filter, 50), None).await;
            assert_eq!(
                planned.0, learned.0,
                "{filter}: {} vs {}",
                planned.1, learned.1
            );
            if planned.0 == 200 {
                assert_eq!(planned.1["data"], learned.1["data"], "{filter}");
            }
        }
    }
    assert!(
        unplanned_reads(&f).await >= before + 20,
        "the fast path was not taken"
    );
    f.stop().await;
}

/// Statements a source has received (`tributary_source_statements_total`).
async fn statements(f: &Fixture, source: &str) -> u64 {
    counter(
        f,
        &format!(r#"tributary_source_statements_total{{source="{source}"}}"#),
    )
    .await
}

/// The first three orders with their customers appended, as `role` (user
/// 1): the answer, and the statements PostgreSQL received for it.
async fn orders_with_customers_as(f: &Fixture, role: &str) -> (Value, u64) {
    let before = statements(f, "pg").await;
    let (status, body) = f
        .call_as(
            role,
            "1",
            Method::GET,
            "/api/pg_orders?fields=id&appends=customers&sort=id&pageSize=3",
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    (body, statements(f, "pg").await - before)
}

/// `appends` cost one statement per relation and level, however many rows
/// there are (no N+1), in one source and across two.
#[tokio::test]
async fn appends_send_one_statement_per_relation_and_level() {
    let f = Fixture::new().await;
    let path = "/api/pg_customers?appends=orders.line_items&pageSize=100";
    let before = statements(&f, "pg").await;
    let body = f.get(path).await;
    assert_eq!(body["data"].as_array().unwrap().len(), 3);
    assert_eq!(statements(&f, "pg").await - before, 3);
    // Forty more orders with a line each: still three statements.
    common::postgres_exec(&format!(
        "INSERT INTO {schema}.orders (customer_id, status, total, placed_at)
             SELECT 1 + g % 3, 'open', g, '2024-06-01' FROM generate_series(1, 40) g;
         INSERT INTO {schema}.line_items SELECT id, 1, 1 FROM {schema}.orders WHERE id > 100;",
        schema = f.schema
    ))
    .await;
    let before = statements(&f, "pg").await;
    let body = f.get(path).await;
    let orders: usize = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["orders"].as_array().unwrap().len())
        .sum();
    assert_eq!(orders, 45, "{body}");
    assert_eq!(statements(&f, "pg").await - before, 3);
    // A related row by its primary key in the same source is joined into
    // the rows' own statement: one statement.
    let before = statements(&f, "pg").await;
    let body = f
        .get("/api/pg_orders?fields=id&appends=customers&sort=id&pageSize=3")
        .await;
    assert_eq!(statements(&f, "pg").await - before, 1);
    let names: Vec<&Value> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| &o["customers"]["name"])
        .collect();
    assert_eq!(
        names,
        [&json!("Ann"), &json!("Ann"), &json!("Bob")],
        "{body}"
    );
    // As a role: the related table's rule holds in the join (a customer it
    // may not read is null, a column it may not read is not answered).
    f.rule("clerk", "pg_orders", "select", json!({})).await;
    f.rule(
        "clerk",
        "pg_customers",
        "select",
        json!({"filter": {"tier": {"$notEmpty": true}}, "columns": ["id", "name", "tier"]}),
    )
    .await;
    let (body, sent) = orders_with_customers_as(&f, "clerk").await;
    assert_eq!(sent, 1);
    assert_eq!(
        body["data"],
        json!([
            {"id": 1, "customers": {"id": 1, "name": "Ann", "tier": "gold"}},
            {"id": 2, "customers": {"id": 1, "name": "Ann", "tier": "gold"}},
            {"id": 3, "customers": null},
        ])
    );
    // Not where the role's rule caps the related rows: joined, the cap
    // would apply to the orders themselves.
    f.rule("capped", "pg_orders", "select", json!({})).await;
    f.rule("capped", "pg_customers", "select", json!({"limit": 1}))
        .await;
    let (body, sent) = orders_with_customers_as(&f, "capped").await;
    assert_eq!(body["data"].as_array().unwrap().len(), 3, "{body}");
    assert_eq!(sent, 2);
    // Across sources: one statement to each.
    let (pg, my) = (statements(&f, "pg").await, statements(&f, "my").await);
    f.get("/api/my_reviews?appends=customer").await;
    assert_eq!(statements(&f, "pg").await - pg, 1);
    assert_eq!(statements(&f, "my").await - my, 1);
    f.stop().await;
}

/// `POST /api/batch` as the admin.
async fn batch(f: &Fixture, operations: Value) -> (u16, Value) {
    f.call(
        Method::POST,
        "/api/batch",
        Some(json!({ "operations": operations })),
    )
    .await
}

/// Upserts inside a batch, as their routes spell them: a create with
/// `resolution` (and `on_conflict`), NocoBase's `updateOrCreate` and
/// `firstOrCreate` with `filterKeys`; all in the batch's one transaction.
#[tokio::test]
async fn a_batch_upserts_as_the_routes_do() {
    let f = Fixture::new().await;
    let (status, body) = batch(
        &f,
        json!([
            {"action": "create", "collection": "pg_customers", "resolution": "merge-duplicates",
             "values": [{"id": 1, "name": "Ann B"}, {"id": 40, "name": "New"}], "fields": "id,name"},
            {"action": "updateOrCreate", "collection": "pg_customers", "filterKeys": ["name"],
             "values": {"name": "Bob", "tier": "platinum"}, "fields": ["id", "tier"]},
            {"action": "firstOrCreate", "collection": "pg_customers", "filterKeys": "name",
             "values": {"name": "Cid", "tier": "none"}, "fields": "id,tier"},
            {"action": "create", "collection": "pg_customers", "resolution": "ignore-duplicates",
             "on_conflict": "id", "values": {"id": 2, "name": "ignored"}},
        ]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let data = &body["data"];
    assert_eq!(data[0]["affected"], 2, "{body}");
    let mut merged = data[0]["data"].as_array().unwrap().clone();
    merged.sort_by_key(|row| row["id"].as_i64());
    assert_eq!(
        merged,
        [
            json!({"id": 1, "name": "Ann B"}),
            json!({"id": 40, "name": "New"})
        ]
    );
    assert_eq!(
        data[1]["data"],
        json!({"id": 2, "tier": "platinum"}),
        "{body}"
    );
    assert_eq!(
        data[2]["data"],
        json!({"id": 3, "tier": "silver"}),
        "{body}"
    );
    assert_eq!(data[3], json!({"affected": 0, "data": null}), "{body}");
    assert_eq!(
        f.pg_count("SELECT count(*) FROM {schema}.customers WHERE name IN ('Ann B', 'New') OR tier = 'platinum'")
            .await,
        3
    );
    assert_eq!(
        f.pg_count(
            "SELECT count(*) FROM {schema}.customers WHERE name = 'ignored' OR tier = 'none'"
        )
        .await,
        0
    );
    // Refused before anything is written, placed at the operation.
    for (operation, at) in [
        (
            json!({"action": "update", "collection": "pg_customers", "key": 1,
                "resolution": "merge-duplicates", "values": {"name": "x"}}),
            "operations[1].resolution",
        ),
        (
            json!({"action": "create", "collection": "pg_customers", "on_conflict": "id",
                "values": {"id": 1, "name": "x"}}),
            "operations[1].on_conflict",
        ),
        (
            json!({"action": "create", "collection": "pg_customers", "resolution": "overwrite",
                "values": {"id": 1, "name": "x"}}),
            "operations[1].resolution",
        ),
        (
            json!({"action": "updateOrCreate", "collection": "pg_customers",
                "values": {"name": "x"}}),
            "operations[1].filterKeys",
        ),
    ] {
        let (status, body) = batch(
            &f,
            json!([{"action": "create", "collection": "pg_customers", "values": {"id": 41, "name": "y"}}, operation]),
        )
        .await;
        assert_eq!(
            (status, &body["error"]["path"]),
            (400, &json!(at)),
            "{body}"
        );
    }
    assert_eq!(
        f.pg_count("SELECT count(*) FROM {schema}.customers WHERE id = 41 OR name = 'x'")
            .await,
        0
    );
    f.stop().await;
}

/// An upsert in a batch sees what the batch's earlier operations wrote
/// (the rows are read in its transaction): a row created before is
/// updated, one destroyed before is created again; on PostgreSQL and
/// MariaDB.
#[tokio::test]
async fn a_batch_upsert_sees_the_rows_earlier_operations_wrote() {
    let f = Fixture::new().await;
    let (status, body) = batch(
        &f,
        json!([
            {"action": "create", "collection": "pg_customers",
             "values": [{"id": 50, "name": "New"}, {"id": 51, "name": "Gone"}]},
            {"action": "create", "collection": "pg_customers", "resolution": "merge-duplicates",
             "values": {"id": 50, "name": "Newer", "tier": "gold"}, "fields": "id,name,tier"},
            {"action": "destroy", "collection": "pg_customers", "key": 51},
            {"action": "updateOrCreate", "collection": "pg_customers", "filterKeys": ["id"],
             "values": {"id": 51, "name": "Back"}, "fields": "id,name"},
            {"action": "create", "collection": "pg_customers", "resolution": "ignore-duplicates",
             "values": {"id": 50, "name": "ignored"}},
        ]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let data = &body["data"];
    assert_eq!(
        data[1]["data"],
        json!({"id": 50, "name": "Newer", "tier": "gold"}),
        "{body}"
    );
    assert_eq!(data[3]["data"], json!({"id": 51, "name": "Back"}), "{body}");
    assert_eq!(data[4]["affected"], 0, "{body}");
    assert_eq!(
        f.pg_count(
            "SELECT count(*) FROM {schema}.customers WHERE (id = 50 AND name = 'Newer' AND tier = 'gold') \
             OR (id = 51 AND name = 'Back')"
        )
        .await,
        2
    );
    let (status, body) = batch(
        &f,
        json!([
            {"action": "create", "collection": "my_notes", "values": {"id": 90, "tags": ["x"]}},
            {"action": "create", "collection": "my_notes", "resolution": "merge-duplicates",
             "values": {"id": 90, "tags": ["y"]}, "fields": "id"},
            {"action": "destroy", "collection": "my_notes", "key": 1},
            {"action": "create", "collection": "my_notes", "resolution": "merge-duplicates",
             "values": {"id": 1, "tags": ["z"]}, "fields": "id"},
        ]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        [&body["data"][1], &body["data"][3]],
        [
            &json!({"affected": 1, "data": {"id": 90}}),
            &json!({"affected": 1, "data": {"id": 1}})
        ],
        "{body}"
    );
    // MariaDB's JSON is text: answered as the text it holds.
    let body = f.get("/api/my_notes?sort=id").await;
    assert_eq!(
        body["data"],
        json!([{"id": 1, "tags": "[\"z\"]"}, {"id": 2, "tags": "[\"c\"]"}, {"id": 3, "tags": null},
               {"id": 90, "tags": "[\"y\"]"}])
    );
    f.stop().await;
}

#[tokio::test]
async fn a_batch_of_writes_is_one_transaction() {
    let f = Fixture::new().await;
    // Writes to three collections; the update by filter finds the orders
    // the batch itself created (the engine's read cannot see them yet).
    let (status, body) = batch(
        &f,
        json!([
            {"action": "create", "collection": "pg_customers", "values": {"id": 10, "name": "Dee"}},
            {"action": "create", "collection": "pg_orders", "values": [
                {"customer_id": 10, "status": "open", "total": 1, "placed_at": "2024-05-01"},
                {"customer_id": 10, "status": "open", "total": 2, "placed_at": "2024-05-02"},
            ]},
            {"action": "update", "collection": "pg_orders", "filter": {"customer_id": 10}, "values": {"status": "batched"}},
            {"action": "destroy", "collection": "pg_posts", "key": 4},
            {"action": "update", "collection": "pg_customers", "key": "99", "values": {"name": "nobody"}},
        ]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let data = &body["data"];
    assert_eq!(data[0]["affected"], 1, "{body}");
    assert_eq!(data[0]["data"]["name"], "Dee", "{body}");
    assert_eq!(data[1]["affected"], 2, "{body}");
    assert_eq!(data[1]["data"].as_array().unwrap().len(), 2, "{body}");
    assert_eq!(data[2]["affected"], 2, "{body}");
    assert_eq!(data[2]["data"][0]["status"], "batched", "{body}");
    assert_eq!(data[3]["data"]["id"], 4, "{body}");
    // A key that names no row is no error inside a batch.
    assert_eq!(data[4], json!({"affected": 0, "data": null}));
    assert_eq!(
        f.pg_count(
            "SELECT count(*) FROM {schema}.orders WHERE customer_id = 10 AND status = 'batched'"
        )
        .await,
        2
    );
    assert_eq!(
        f.pg_count("SELECT count(*) FROM {schema}.posts WHERE id = 4")
            .await,
        0
    );

    // All or nothing. A failure after writes that went out rolls them back...
    let count = "SELECT count(*) FROM {schema}.customers WHERE id IN (11, 12)";
    let response = batch(
        &f,
        json!([
            {"action": "create", "collection": "pg_customers", "values": {"id": 11, "name": "Eve"}},
            {"action": "update", "collection": "pg_orders", "filter": {"customer_id": 10}, "values": {"status": null}},
        ]),
    )
    .await;
    assert_eq!(response.0, 409, "{}", response.1);
    assert_eq!(
        response.1["error"]["path"], "operations[1]",
        "{}",
        response.1
    );
    // ... and so does one in the last round trip, held-back writes and COMMIT.
    let response = batch(
        &f,
        json!([
            {"action": "create", "collection": "pg_customers", "values": {"id": 12, "name": "Fay"}},
            {"action": "create", "collection": "pg_customers", "values": {"id": 1, "name": "Ann again"}},
        ]),
    )
    .await;
    assert_eq!(response.0, 409, "{}", response.1);
    assert_eq!(
        response.1["error"]["path"], "operations[1]",
        "{}",
        response.1
    );
    assert_eq!(f.pg_count(count).await, 0);
    assert_eq!(
        f.pg_count("SELECT count(*) FROM {schema}.orders WHERE status = 'batched'")
            .await,
        2
    );

    // Bad batches are refused before anything is written, naming the place.
    let cases = [
        (json!([]), 400, "operations"),
        (
            json!([{"action": "upsert", "collection": "pg_customers"}]),
            400,
            "operations[0].action",
        ),
        (
            json!([{"action": "create", "collection": "nope", "values": {}}]),
            404,
            "operations[0].collection",
        ),
        (
            json!([{"action": "create", "collection": "pg_customers"}]),
            400,
            "operations[0].values",
        ),
        (
            json!([{"action": "destroy", "collection": "pg_customers"}]),
            400,
            "operations[0].filter",
        ),
        (
            json!([{"action": "destroy", "collection": "pg_customers", "filter": {}}]),
            400,
            "operations[0].filter",
        ),
        (
            json!([{"action": "destroy", "collection": "pg_customers", "key": 3, "values": {}}]),
            400,
            "operations[0].values",
        ),
        (
            json!([{"action": "destroy", "collection": "pg_customers", "key": 3, "extra": 1}]),
            400,
            "operations[0].extra",
        ),
        (
            json!([{"action": "destroy", "collection": "pg_line_items", "key": "1"}]),
            400,
            "operations[0].key",
        ),
        (
            json!([{"action": "destroy", "collection": "pg_events", "filter": {"kind": "a"}}]),
            400,
            "operations[0]",
        ),
        (
            json!([
                {"action": "create", "collection": "pg_customers", "values": {"id": 13, "name": "Gil"}},
                {"action": "update", "collection": "pg_orders", "key": 1, "values": {"total": "lots"}},
            ]),
            400,
            "operations[1].values.total",
        ),
        (
            json!([
                {"action": "create", "collection": "pg_customers", "values": {"id": 13, "name": "Gil"}},
                {"action": "create", "collection": "pg_orders", "values": [{"status": "open"}, {"nope": 1}]},
            ]),
            400,
            "operations[1].values[1].nope",
        ),
        // One transaction cannot span two databases.
        (
            json!([
                {"action": "create", "collection": "pg_customers", "values": {"id": 13, "name": "Gil"}},
                {"action": "create", "collection": "my_reviews", "values": {"customer_id": 1, "stars": 2}},
            ]),
            400,
            "operations[1].collection",
        ),
    ];
    for (operations, status, path) in cases {
        let response = batch(&f, operations.clone()).await;
        assert_eq!(response.0, status, "{operations}: {}", response.1);
        assert_eq!(
            response.1["error"]["path"], path,
            "{operations}: {}",
            response.1
        );
    }
    for body in [
        json!([]),
        json!({"operations": [], "more": 1}),
        json!({"ops": []}),
    ] {
        let response = f.call(Method::POST, "/api/batch", Some(body.clone())).await;
        assert_eq!(response.0, 400, "{body}: {}", response.1);
    }
    assert_eq!(
        f.pg_count("SELECT count(*) FROM {schema}.customers WHERE id = 13")
            .await,
        0
    );
    let body = f.get("/api/my_reviews?fields=id").await;
    assert_eq!(ids(&body), vec![1, 2, 3]);
    // A batch refused in shape has an audit row of its own.
    let body = f.get("/admin/audit?action=write.batch").await;
    let entries = body["entries"].as_array().unwrap();
    assert!(
        entries
            .iter()
            .any(|e| e["status"] == 404 && e["detail"]["error"].to_string().contains("nope")),
        "{body}"
    );

    // MariaDB: a row created and destroyed in one batch.
    let (status, body) = batch(
        &f,
        json!([
            // The auto-increment key the insert takes.
            {"action": "create", "collection": "my_reviews", "values": {"customer_id": 2, "stars": 4}},
            {"action": "destroy", "collection": "my_reviews", "key": 4},
            {"action": "update", "collection": "my_reviews", "key": 1, "values": {"body": "batched"}},
        ]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"][0]["data"]["id"], 4, "{body}");
    assert_eq!(body["data"][1]["data"]["stars"], 4, "{body}");
    let body = f.get("/api/my_reviews?fields=id,body").await;
    assert_eq!(ids(&body), vec![1, 2, 3]);
    assert_eq!(body["data"][0]["body"], "batched");

    // Each operation has its audit row; those of a rolled-back batch say so.
    let body = f.get("/admin/audit?action=write.insert").await;
    let entries = body["entries"].as_array().unwrap();
    let eve = entries
        .iter()
        .find(|e| {
            e["detail"]["keys"].to_string().contains("11") && e["collection"] == "pg_customers"
        })
        .unwrap_or_else(|| panic!("no audit row of the rolled-back create: {body}"));
    assert_eq!(eve["detail"]["rolled_back"], true, "{eve}");
    assert_eq!(eve["detail"]["batch"], 0, "{eve}");
    f.stop().await;
}

#[tokio::test]
async fn a_batch_holds_a_roles_rules() {
    let f = Fixture::new().await;
    f.clerk_inserts_orders().await;
    let order = |total: i64| {
        json!({"action": "create", "collection": "pg_orders",
               "values": {"customer_id": 1, "status": "clerk", "total": total, "placed_at": "2024-06-01"}})
    };
    let call = |operations: Value| {
        f.call_as(
            "clerk",
            "ann",
            Method::POST,
            "/api/batch",
            Some(json!({ "operations": operations })),
        )
    };
    // The second order fails the rule's check: the first is not kept.
    let response = call(json!([order(5), order(5000)])).await;
    assert_error(&response, 403, &["check"]);
    assert_eq!(
        response.1["error"]["path"], "operations[1]",
        "{}",
        response.1
    );
    // A collection the role may not write.
    let response = call(json!([
        order(5),
        {"action": "destroy", "collection": "pg_customers", "key": 1},
    ]))
    .await;
    assert_eq!(response.0, 403, "{}", response.1);
    assert_eq!(
        f.pg_count("SELECT count(*) FROM {schema}.orders WHERE status = 'clerk'")
            .await,
        0
    );
    // Within the rules: written with the preset, answered with the key only
    // (no select rule).
    let (status, body) = call(json!([order(5), order(6)])).await;
    assert_eq!(status, 200, "{body}");
    let keys: Vec<&String> = body["data"][0]["data"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(keys, ["id"], "{body}");
    assert_eq!(
        f.pg_count("SELECT count(*) FROM {schema}.orders WHERE status = 'clerk' AND owner = 'ann'")
            .await,
        2
    );
    f.stop().await;
}

/// A server with one PostgreSQL source `w` holding `docs (id, title,
/// secret)` with one row, reached as a role (`suffix`) granted `grants`;
/// with the server's folder, the schema and the role's name.
async fn docs_source_as(
    suffix: &str,
    grants: &str,
) -> (common::TestServer, tempfile::TempDir, String, String) {
    let schema = common::postgres_schema(
        "CREATE TABLE docs (id int PRIMARY KEY, title text NOT NULL, secret text NOT NULL);
         INSERT INTO docs VALUES (1, 'a', 's');",
    )
    .await;
    let (user, url) = common::postgres_role(&schema, suffix, grants).await;
    let dir = tempfile::tempdir().unwrap();
    let server = common::TestServer::start(dir.path()).await;
    server
        .register(json!({"name": "w", "url": url, "schemas": {"include": [schema]}}))
        .await;
    (server, dir, schema, user)
}

/// A source whose own database user lacks a privilege answers 403
/// `source_permission_denied` naming the source — not 400 (the request is
/// fine) nor 503 (the source is up): here a PostgreSQL role that may read
/// two of a table's three columns and not write it.
#[tokio::test]
async fn a_source_users_missing_privilege_is_a_403_naming_the_source() {
    let (server, _dir, schema, user) = docs_source_as(
        "reader",
        "GRANT SELECT (id, title) ON {schema}.docs TO {user};",
    )
    .await;
    let (status, body) = server
        .admin(Method::GET, "/api/w_docs?fields=id,title", None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"], json!([{"id": 1, "title": "a"}]));
    let denied = |(status, body): (u16, Value)| {
        assert_eq!(status, 403, "{body}");
        assert_eq!(body["error"]["code"], "source_permission_denied", "{body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("source `w`") && message.contains("permission denied"),
            "{body}"
        );
    };
    denied(server.admin(Method::GET, "/api/w_docs", None).await);
    denied(
        server
            .admin(
                Method::POST,
                "/api/w_docs",
                Some(json!({"id": 2, "title": "b", "secret": "s"})),
            )
            .await,
    );
    assert_eq!(common::postgres_count(&schema, "docs").await, 1);
    server.stop().await;
    common::drop_postgres_schema_and_role(&schema, &user).await;
}

/// The keys of each written row of an answer (`data` one row or an array),
/// sorted.
fn answered_keys(body: &Value) -> Vec<Vec<String>> {
    let rows = match &body["data"] {
        Value::Array(rows) => rows.clone(),
        row => vec![row.clone()],
    };
    rows.iter()
        .map(|row| row.as_object().unwrap().keys().cloned().collect())
        .collect()
}

/// `fields` and `except` shape a write's answer as a read's, on every
/// write route and in a batch; a wrong one is refused before anything is
/// written.
#[tokio::test]
async fn writes_answer_the_fields_asked_for() {
    let f = Fixture::new().await;
    let order = json!({"customer_id": 2, "status": "open", "total": 3, "placed_at": "2024-04-01"});
    let (status, body) = f
        .call(
            Method::POST,
            "/api/pg_orders?fields=status,id",
            Some(order.clone()),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"], json!({"id": 101, "status": "open"}));
    let (status, body) = f
        .call(
            Method::POST,
            "/api/pg_orders:create?except=note,owner&except=placed_at",
            Some(json!([order.clone(), order.clone()])),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        answered_keys(&body),
        vec![vec!["customer_id", "id", "status", "total"]; 2]
    );
    let (status, body) = f
        .call(
            Method::PATCH,
            "/api/pg_orders/101?fields=total",
            Some(json!({"total": "4.50"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"], json!({"total": "4.50"}));
    let (status, body) = f
        .call(
            Method::POST,
            "/api/pg_orders:update?filterByTk=102&fields=note",
            Some(json!({"note": "x"})),
        )
        .await;
    assert_eq!(
        (status, &body["data"]),
        (200, &json!({"note": "x"})),
        "{body}"
    );
    let filter = enc(r#"{"id":{"$in":[102,103]}}"#);
    let (status, body) = f
        .call(
            Method::PATCH,
            &format!("/api/pg_orders?filter={filter}&fields=id"),
            Some(json!({"status": "packed"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"], json!([{"id": 102}, {"id": 103}]));
    assert_eq!(body["meta"]["affected"], 2);
    let (status, body) = f
        .call(Method::DELETE, "/api/pg_orders/103?fields=id,status", None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"], json!({"id": 103, "status": "packed"}));
    let (status, body) = f
        .call(
            Method::DELETE,
            &format!("/api/my_reviews?filter={}&fields=stars", enc(r#"{"id":3}"#)),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"], json!([{"stars": 1}]));
    // In a batch: a list or a comma-separated string.
    let (status, body) = batch(
        &f,
        json!([
            {"action": "create", "collection": "pg_orders", "values": order, "fields": ["id"]},
            {"action": "update", "collection": "pg_orders", "key": 101, "values": {"note": "b"},
             "fields": "id,note", "except": "id"},
        ]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"][0]["data"], json!({"id": 104}), "{body}");
    assert_eq!(body["data"][1]["data"], json!({"note": "b"}), "{body}");
    // Refused before anything is written: an unknown column, a relation,
    // a column the role may not read (clerk has no select rule: only the
    // key), a batch's `fields` of the wrong type.
    let before = f.pg_count("SELECT count(*) FROM {schema}.orders").await;
    let response = f
        .call(
            Method::POST,
            "/api/pg_orders?fields=id,nope",
            Some(order.clone()),
        )
        .await;
    assert_error(&response, 400, &["no column `nope`"]);
    assert_eq!(response.1["error"]["path"], "fields", "{}", response.1);
    let response = f
        .call(Method::DELETE, "/api/pg_orders/101?except=customers", None)
        .await;
    assert_error(&response, 400, &["`customers` names a relation", "appends"]);
    assert_eq!(response.1["error"]["path"], "except", "{}", response.1);
    f.clerk_inserts_orders().await;
    let clerk_order =
        json!({"customer_id": 1, "status": "clerk", "total": 5, "placed_at": "2024-06-01"});
    let response = f
        .call_as(
            "clerk",
            "ann",
            Method::POST,
            "/api/pg_orders?fields=id,status",
            Some(clerk_order.clone()),
        )
        .await;
    assert_error(
        &response,
        403,
        &["`status`", "not readable by role `clerk`"],
    );
    let response = batch(
        &f,
        json!([{"action": "destroy", "collection": "pg_orders", "key": 101, "fields": 7}]),
    )
    .await;
    assert_error(&response, 400, &["`fields` is a list"]);
    assert_eq!(
        response.1["error"]["path"], "operations[0].fields",
        "{}",
        response.1
    );
    assert_eq!(
        f.pg_count("SELECT count(*) FROM {schema}.orders").await,
        before
    );
    let (status, body) = f
        .call_as(
            "clerk",
            "ann",
            Method::POST,
            "/api/pg_orders?fields=id",
            Some(clerk_order),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(answered_keys(&body), vec![vec!["id"]]);
    f.stop().await;
}

/// A source whose database user may write a table but not read one of its
/// columns: a write whose answer leaves that column out goes through (its
/// statement returns only what is answered), one answering every column is
/// refused whole by the database.
#[tokio::test]
async fn a_write_answering_only_readable_columns_needs_no_more_privilege() {
    let (server, _dir, schema, user) = docs_source_as(
        "writer",
        "GRANT SELECT (id, title), INSERT, UPDATE (title), DELETE ON {schema}.docs TO {user};",
    )
    .await;
    let (status, body) = server
        .admin(
            Method::POST,
            "/api/w_docs",
            Some(json!({"id": 2, "title": "b", "secret": "t"})),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "source_permission_denied", "{body}");
    assert_eq!(common::postgres_count(&schema, "docs").await, 1);
    let (status, body) = server
        .admin(
            Method::POST,
            "/api/w_docs?except=secret",
            Some(json!({"id": 2, "title": "b", "secret": "t"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"], json!({"id": 2, "title": "b"}));
    let (status, body) = server
        .admin(
            Method::PATCH,
            "/api/w_docs/2?fields=title",
            Some(json!({"title": "c"})),
        )
        .await;
    assert_eq!(
        (status, &body["data"]),
        (200, &json!({"title": "c"})),
        "{body}"
    );
    let (status, body) = server
        .admin(Method::DELETE, "/api/w_docs/1?fields=id", None)
        .await;
    assert_eq!((status, &body["data"]), (200, &json!({"id": 1})), "{body}");
    assert_eq!(common::postgres_count(&schema, "docs").await, 1);
    // `Prefer: return=minimal` answers nothing: only the key comes back.
    let (status, _, body) = preferring(
        &server.base,
        Method::POST,
        "/api/w_docs",
        "return=minimal",
        Some(json!({"id": 3, "title": "d", "secret": "u"})),
    )
    .await;
    assert_eq!((status, body.as_str()), (201, ""));
    assert_eq!(common::postgres_count(&schema, "docs").await, 2);
    server.stop().await;
    common::drop_postgres_schema_and_role(&schema, &user).await;
}

/// The ids of a list answer's rows.
fn row_ids(body: &Value) -> Vec<i64> {
    body["data"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|row| row["id"].as_i64().unwrap())
        .collect()
}

/// The customer each order is related to, by order id.
async fn customers_of_orders(f: &Fixture) -> Vec<(i64, Option<i64>)> {
    let body = f.get("/api/pg_orders?sort=id&fields=id,customer_id").await;
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| (row["id"].as_i64().unwrap(), row["customer_id"].as_i64()))
        .collect()
}

/// NocoBase's `add`, `remove` and `set` of an association relate existing
/// rows: a to-many relation's rows get (or lose) the row's key in their
/// column, `set` makes them exactly the given ones in one transaction; a
/// to-one relation's `set` / `remove` write the row's own column. Keys
/// come as `filterByTk` or as the body; each write is under the rules of
/// the collection it writes.
#[tokio::test]
async fn nocobase_associations_add_remove_and_set_related_rows() {
    let f = Fixture::new().await;
    let some = |pairs: &[(i64, Option<i64>)]| pairs.to_vec();
    let (status, body) = f
        .call(
            Method::POST,
            "/api/pg_customers/1/orders:add",
            Some(json!([3])),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // `remove` unrelates related rows only: order 5 is Bob's.
    let (status, body) = f
        .call(
            Method::POST,
            "/api/pg_customers/1/orders:remove?filterByTk=2",
            Some(json!([5])),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        customers_of_orders(&f).await,
        some(&[
            (1, Some(1)),
            (2, None),
            (3, Some(1)),
            (4, Some(3)),
            (5, Some(2))
        ])
    );
    // `set`: exactly these (order 4 leaves Cid, 1 and 2 come).
    let (status, body) = f
        .call(
            Method::POST,
            "/api/pg_customers/3/orders:set",
            Some(json!(["1", 2])),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        customers_of_orders(&f).await,
        some(&[
            (1, Some(3)),
            (2, Some(3)),
            (3, Some(1)),
            (4, None),
            (5, Some(2))
        ])
    );
    // A to-one relation: the order's own column.
    let (status, body) = f
        .call(
            Method::POST,
            "/api/pg_orders/4/customers:set?filterByTk=2",
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = f
        .call(Method::POST, "/api/pg_orders/3/customers:remove", None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        customers_of_orders(&f).await,
        some(&[
            (1, Some(3)),
            (2, Some(3)),
            (3, None),
            (4, Some(2)),
            (5, Some(2))
        ])
    );
    // Wrong uses: nothing written.
    for (path, body, status) in [
        ("/api/pg_customers/1/orders:add", None, 400),
        ("/api/pg_orders/4/customers:add?filterByTk=1", None, 400),
        ("/api/pg_orders/4/customers:set", Some(json!([1, 2])), 400),
        ("/api/pg_orders/4/customers:set?filterByTk=99", None, 404),
        ("/api/pg_orders/4/customers:remove?filterByTk=2", None, 400),
        ("/api/pg_orders:add?filterByTk=1", None, 400),
        (
            "/api/pg_customers/1/orders:add",
            Some(json!({"id": 4})),
            400,
        ),
    ] {
        let (got, answer) = f.call(Method::POST, path, body).await;
        assert_eq!(got, status, "{path}: {answer}");
    }
    // The writes are the related collection's updates, under its rules: a
    // role that may not write `customer_id` may not relate orders.
    f.rule("clerk", "pg_customers", "select", json!({})).await;
    f.rule("clerk", "pg_orders", "select", json!({})).await;
    f.rule(
        "clerk",
        "pg_orders",
        "update",
        json!({"columns": ["status"]}),
    )
    .await;
    let (status, body) = f
        .call_as(
            "clerk",
            "bob",
            Method::POST,
            "/api/pg_customers/1/orders:add",
            Some(json!([4])),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        customers_of_orders(&f).await,
        some(&[
            (1, Some(3)),
            (2, Some(3)),
            (3, None),
            (4, Some(2)),
            (5, Some(2))
        ])
    );
    f.stop().await;
}

/// NocoBase's association resources: `/api/{c}/{key}/{relation}:{action}`
/// reads and writes the rows of one row's relation only — also across
/// sources for reads; a create gets the relation's column filled in; a
/// row the caller cannot see has no associations.
#[tokio::test]
async fn nocobase_association_resources_keep_to_the_rows_related() {
    let f = Fixture::new().await;
    let body = f
        .get("/api/pg_customers/1/orders:list?sort=id&fields=id,status")
        .await;
    assert_eq!(row_ids(&body), vec![1, 2], "{body}");
    assert_eq!(body["meta"]["count"], 2, "{body}");
    let open = enc(r#"{"status":"open"}"#);
    let body = f
        .get(&format!(
            "/api/pg_customers/1/orders?filter={open}&fields=id"
        ))
        .await;
    assert_eq!(row_ids(&body), vec![1], "{body}");
    let body = f.get("/api/pg_customers/1/reviews:list?sort=id").await;
    assert_eq!(row_ids(&body), vec![1, 2], "{body}");
    // By key: only a related row; a to-one relation's one row needs no key.
    let (status, body) = f
        .call(
            Method::GET,
            "/api/pg_customers/1/orders:get?filterByTk=3",
            None,
        )
        .await;
    assert_eq!(status, 404, "{body}");
    let body = f.get("/api/pg_customers/1/orders:get?filterByTk=2").await;
    assert_eq!(body["data"]["status"], "shipped", "{body}");
    let body = f.get("/api/pg_orders/3/customers:get").await;
    assert_eq!(body["data"]["name"], "Bob", "{body}");
    // A create is related to the row; another value for the relation's
    // column is a 400, as is a create through the row's own reference.
    let (status, body) = f
        .call(
            Method::POST,
            "/api/pg_customers/3/orders:create",
            Some(json!({"status": "new", "total": "1", "placed_at": "2024-06-01"})),
        )
        .await;
    assert_eq!(
        (status, &body["data"]["customer_id"]),
        (201, &json!(3)),
        "{body}"
    );
    let (status, body) = f
        .call(
            Method::POST,
            "/api/pg_customers/3/orders:create",
            Some(
                json!({"customer_id": 1, "status": "new", "total": "1", "placed_at": "2024-06-01"}),
            ),
        )
        .await;
    assert_eq!(
        (status, &body["error"]["path"]),
        (400, &json!("customer_id")),
        "{body}"
    );
    let (status, body) = f
        .call(
            Method::POST,
            "/api/pg_orders/3/customers:create",
            Some(json!({"id": 9, "name": "Zed"})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        f.pg_count("SELECT count(*) FROM {schema}.orders WHERE customer_id = 3")
            .await,
        2
    );
    assert_eq!(
        f.pg_count("SELECT count(*) FROM {schema}.customers WHERE id = 9")
            .await,
        0
    );
    // Writes by key touch a related row only; by filter, related rows only.
    let (status, body) = f
        .call(
            Method::POST,
            "/api/pg_customers/1/orders:update?filterByTk=3",
            Some(json!({"status": "x"})),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = f
        .call(
            Method::POST,
            "/api/pg_customers/1/orders:update?filterByTk=1",
            Some(json!({"status": "x"})),
        )
        .await;
    assert_eq!(
        (status, &body["data"]["status"]),
        (200, &json!("x")),
        "{body}"
    );
    let open = enc(r#"{"status":{"$ne":"x"}}"#);
    let (status, body) = f
        .call(
            Method::POST,
            &format!("/api/pg_customers/2/orders:destroy?filter={open}"),
            None,
        )
        .await;
    assert_eq!(
        (status, &body["meta"]["affected"]),
        (200, &json!(2)),
        "{body}"
    );
    assert_eq!(
        f.pg_count("SELECT count(*) FROM {schema}.orders WHERE status = 'x' OR customer_id = 2")
            .await,
        1
    );
    assert_eq!(f.pg_count("SELECT count(*) FROM {schema}.orders").await, 4);
    // An order without a customer has no related customer.
    let (status, body) = f
        .call(
            Method::POST,
            "/api/pg_orders",
            Some(json!({"status": "lone", "total": "1", "placed_at": "2024-06-02"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let lone = body["data"]["id"].as_i64().unwrap();
    let body = f.get(&format!("/api/pg_orders/{lone}/customers")).await;
    assert_eq!(body["data"], json!([]), "{body}");
    let (status, body) = f
        .call(
            Method::GET,
            &format!("/api/pg_orders/{lone}/customers:get"),
            None,
        )
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = f
        .call(Method::DELETE, &format!("/api/pg_orders/{lone}"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    // A to-one relation's row is written without a key; several related
    // rows need a filter (or keys).
    let (status, body) = f
        .call(
            Method::PATCH,
            "/api/pg_orders/4/customers?fields=id,tier",
            Some(json!({"tier": "bronze"})),
        )
        .await;
    assert_eq!(
        (status, &body["data"]),
        (200, &json!([{"id": 3, "tier": "bronze"}])),
        "{body}"
    );
    let (status, body) = f
        .call(Method::DELETE, "/api/pg_customers/1/orders", None)
        .await;
    assert_eq!(
        (status, &body["error"]["path"]),
        (400, &json!("filter")),
        "{body}"
    );
    assert_eq!(
        f.pg_count("SELECT count(*) FROM {schema}.orders WHERE customer_id = 1")
            .await,
        2
    );
    // Unknown relation, unknown row, a row the role cannot see: 404.
    for path in [
        "/api/pg_customers/1/nothing:list",
        "/api/pg_customers/99/orders:list",
    ] {
        let (status, body) = f.call(Method::GET, path, None).await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    f.rule(
        "clerk",
        "pg_customers",
        "select",
        json!({"filter": {"tier": "gold"}}),
    )
    .await;
    f.rule("clerk", "pg_orders", "select", json!({})).await;
    let (status, body) = f
        .call_as(
            "clerk",
            "u",
            Method::GET,
            "/api/pg_customers/1/orders:list",
            None,
        )
        .await;
    assert_eq!((status, row_ids(&body)), (200, vec![1, 2]), "{body}");
    let (status, body) = f
        .call_as(
            "clerk",
            "u",
            Method::GET,
            "/api/pg_customers/2/orders:list",
            None,
        )
        .await;
    assert_eq!(status, 404, "{body}");
    f.stop().await;
}

/// A write sent with a `Prefer` header: its status, `Preference-Applied`
/// and body text.
async fn preferring(
    base: &str,
    method: Method,
    path: &str,
    prefer: &str,
    body: Option<Value>,
) -> (u16, String, String) {
    let mut request = reqwest::Client::new()
        .request(method, format!("{base}{path}"))
        .bearer_auth(TOKEN)
        .header("prefer", prefer);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let applied = response
        .headers()
        .get("preference-applied")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, applied, response.text().await.unwrap())
}

/// PostgREST's `Prefer: return=minimal`: a create answers 201, an update
/// or delete 204, with no body; the rows are written all the same, a write
/// by key that finds no row is still a 404, and an unknown `return=` is a
/// 400 before anything is written.
#[tokio::test]
async fn prefer_return_minimal_writes_and_answers_no_body() {
    let f = Fixture::new().await;
    let base = f.server.base.as_str();
    let minimal = "return=minimal";
    let created = preferring(
        base,
        Method::POST,
        "/api/pg_customers",
        minimal,
        Some(json!([{"id": 50, "name": "Min"}, {"id": 51, "name": "Max"}])),
    )
    .await;
    assert_eq!(created, (201, minimal.to_string(), String::new()));
    let count = "SELECT count(*) FROM {schema}.customers WHERE id IN (50, 51)";
    assert_eq!(f.pg_count(count).await, 2);
    let updated = preferring(
        base,
        Method::PATCH,
        "/api/pg_customers/50",
        minimal,
        Some(json!({"tier": "min"})),
    )
    .await;
    assert_eq!(updated, (204, minimal.to_string(), String::new()));
    assert_eq!(
        f.pg_count("SELECT count(*) FROM {schema}.customers WHERE id = 50 AND tier = 'min'")
            .await,
        1
    );
    let (status, _, body) = preferring(
        base,
        Method::PATCH,
        "/api/pg_customers/999",
        minimal,
        Some(json!({"tier": "min"})),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    // Combined with an upsert, and on NocoBase's route.
    let upserted = preferring(
        base,
        Method::POST,
        "/api/pg_customers:create",
        "resolution=merge-duplicates,return=minimal",
        Some(json!({"id": 51, "name": "Max B"})),
    )
    .await;
    assert_eq!(
        upserted,
        (
            201,
            "resolution=merge-duplicates, return=minimal".to_string(),
            String::new()
        )
    );
    assert_eq!(
        f.pg_count("SELECT count(*) FROM {schema}.customers WHERE name = 'Max B'")
            .await,
        1
    );
    let filter = enc(r#"{"id":{"$in":[50,51]}}"#);
    let deleted = preferring(
        base,
        Method::DELETE,
        &format!("/api/pg_customers?filter={filter}"),
        minimal,
        None,
    )
    .await;
    assert_eq!(deleted, (204, minimal.to_string(), String::new()));
    assert_eq!(f.pg_count(count).await, 0);
    // Refused before anything is written.
    let (status, _, body) = preferring(
        base,
        Method::POST,
        "/api/pg_customers",
        "return=headers-only",
        Some(json!({"id": 52, "name": "No"})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("return=headers-only"), "{body}");
    assert_eq!(
        f.pg_count("SELECT count(*) FROM {schema}.customers WHERE id = 52")
            .await,
        0
    );
    f.stop().await;
}

/// NocoBase's `whitelist` and `blacklist` on create and update: values
/// outside the one or in the other are left out, not refused; a name that
/// is no column is a 400.
#[tokio::test]
async fn nocobase_whitelist_and_blacklist_pick_the_values_written() {
    let f = Fixture::new().await;
    // A form posts every field; the route writes those it names.
    let (status, body) = f
        .call(
            Method::POST,
            "/api/pg_customers:create?whitelist=id,name",
            Some(json!({"id": 20, "name": "Eve", "tier": "gold", "secret": "x", "form_only": 1})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body["data"],
        json!({"id": 20, "name": "Eve", "tier": null, "secret": null})
    );
    let (status, body) = f
        .call(
            Method::POST,
            "/api/pg_customers?blacklist=secret",
            Some(json!([{"id": 21, "name": "Fay", "secret": "y"}, {"id": 22, "name": "Gus", "secret": "z"}])),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        f.pg_count(
            "SELECT count(*) FROM {schema}.customers WHERE id IN (20, 21, 22) AND secret IS NULL"
        )
        .await,
        3
    );
    let (status, body) = f
        .call(
            Method::POST,
            "/api/pg_customers:update?filterByTk=20&whitelist=tier&blacklist=name",
            Some(json!({"id": 99, "name": "Zed", "tier": "silver"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"],
        json!({"id": 20, "name": "Eve", "tier": "silver", "secret": null})
    );
    let filter = enc(r#"{"id":{"$in":[21,22]}}"#);
    let (status, body) = f
        .call(
            Method::PATCH,
            &format!("/api/pg_customers?filter={filter}&blacklist=id,secret&fields=id,tier"),
            Some(json!({"id": 7, "tier": "bronze", "secret": "w"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"],
        json!([{"id": 21, "tier": "bronze"}, {"id": 22, "tier": "bronze"}])
    );
    // Refused: a name that is no column; a delete takes no values.
    let response = f
        .call(
            Method::PATCH,
            "/api/pg_customers/20?whitelist=tier,nope",
            Some(json!({"tier": "x"})),
        )
        .await;
    assert_error(&response, 400, &["no column `nope`"]);
    assert_eq!(response.1["error"]["path"], "whitelist", "{}", response.1);
    // A whitelist that leaves no value is a 400, as an empty body is.
    let response = f
        .call(
            Method::PATCH,
            "/api/pg_customers/20?whitelist=tier",
            Some(json!({"name": "Zed"})),
        )
        .await;
    assert_eq!(response.0, 400, "{}", response.1);
    let response = f
        .call(Method::DELETE, "/api/pg_customers/20?blacklist=tier", None)
        .await;
    assert_error(&response, 400, &["unknown query parameter `blacklist`"]);
    assert_eq!(
        f.pg_count("SELECT count(*) FROM {schema}.customers WHERE id = 20 AND tier = 'silver'")
            .await,
        1
    );
    f.stop().await;
}

/// NocoBase's `paginate=false`: every row in one answer without page meta,
/// at most `max_rows` (3 here), with a cursor to go on when there were more.
#[tokio::test]
async fn nocobase_unpaginated_lists_answer_every_row_up_to_max_rows() {
    let config = FileConfig {
        max_rows: Some(3),
        ..FileConfig::default()
    };
    let f = Fixture(common::TwoSources::start(PG_DDL, MY_DDL, config).await);
    // `page` and `pageSize` are ignored, as NocoBase does.
    let body = f
        .get("/api/pg_orders:list?paginate=false&fields=id&sort=id&page=2&pageSize=2")
        .await;
    assert_eq!(ids(&body), vec![1, 2, 3]);
    let meta = body["meta"].as_object().unwrap();
    assert_eq!(meta.keys().collect::<Vec<_>>(), ["nextCursor"], "{body}");
    let cursor = enc(meta["nextCursor"].as_str().unwrap());
    let body = f
        .get(&format!(
            "/api/pg_orders:list?paginate=false&fields=id&sort=id&cursor={cursor}"
        ))
        .await;
    assert_eq!(ids(&body), vec![4, 5]);
    assert!(body.get("meta").is_none(), "{body}");
    // Fewer rows than max_rows: the envelope is `data` alone; `count` asks
    // for the total.
    let filter = enc(r#"{"status":"open","total":{"$lt":100}}"#);
    let body = f
        .get(&format!(
            "/api/pg_orders:list?paginate=false&fields=id&sort=-id&filter={filter}"
        ))
        .await;
    assert_eq!(body, json!({"data": [{"id": 3}, {"id": 1}]}));
    let body = f
        .get("/api/pg_orders?paginate=0&fields=id&sort=id&count=true")
        .await;
    assert_eq!(body["meta"]["count"], 5, "{body}");
    assert!(body["meta"].get("page").is_none(), "{body}");
    let response = f
        .call(Method::GET, "/api/pg_orders?paginate=maybe", None)
        .await;
    assert_error(&response, 400, &["`paginate` must be true or false"]);
    f.stop().await;
}

/// NocoBase's client writes several rows by key as `filterByTk[]=1&
/// filterByTk[]=2` (its bulk delete): a write of those rows, answered as
/// a write by filter; composite keys too.
#[tokio::test]
async fn nocobase_writes_take_several_keys() {
    let f = Fixture::new().await;
    let (status, body) = f
        .call(
            Method::POST,
            "/api/pg_orders:update?filterByTk[]=3&filterByTk[]=4&fields=id,note",
            Some(json!({"note": "both"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"data": [{"id": 3, "note": "both"}, {"id": 4, "note": "both"}], "meta": {"affected": 2}})
    );
    let (status, body) = f
        .call(
            Method::POST,
            "/api/pg_line_items:destroy?filterByTk[]=1,2&filterByTk[]=4,1&filterByTk[]=9,9",
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["meta"]["affected"], 2, "{body}");
    assert_eq!(
        f.pg_count("SELECT count(*) FROM {schema}.line_items").await,
        2
    );
    // A key of the wrong shape, or keys with a filter, write nothing.
    let response = f
        .call(
            Method::DELETE,
            "/api/pg_line_items?filterByTk=1,1&filterByTk=2",
            None,
        )
        .await;
    assert_error(&response, 400, &["has 2 columns"]);
    assert_eq!(response.1["error"]["path"], "filterByTk", "{}", response.1);
    let filter = enc(r#"{"id":1}"#);
    let response = f
        .call(
            Method::DELETE,
            &format!("/api/pg_orders?filterByTk=1&filterByTk=2&filter={filter}"),
            None,
        )
        .await;
    assert_error(&response, 400, &["not both"]);
    assert_eq!(
        f.pg_count("SELECT count(*) FROM {schema}.line_items").await,
        2
    );
    assert_eq!(f.pg_count("SELECT count(*) FROM {schema}.orders").await, 5);
    f.stop().await;
}

/// A create with PostgREST's `Prefer: resolution=…` as the test client
/// sends it: the status, the `Preference-Applied` header and the body.
async fn upsert(f: &Fixture, resolution: &str, query: &str, body: Value) -> (u16, String, Value) {
    let prefer = format!("return=representation, resolution={resolution}");
    let path = format!("/api/pg_customers{query}");
    let (status, applied, text) =
        preferring(&f.server.base, Method::POST, &path, &prefer, Some(body)).await;
    (status, applied, serde_json::from_str(&text).unwrap())
}

/// PostgREST's upsert on a create: merge-duplicates updates the rows whose
/// key is there, ignore-duplicates leaves them; on the primary key or a
/// unique key `on_conflict` names; all in one transaction.
#[tokio::test]
async fn creates_upsert_with_prefer_resolution() {
    let f = Fixture::new().await;
    let (status, applied, body) = upsert(
        &f,
        "merge-duplicates",
        "?fields=id,name,tier",
        json!([{"id": 1, "name": "Ann B"}, {"id": 30, "name": "Hal", "tier": "new"}]),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        applied,
        "resolution=merge-duplicates, return=representation"
    );
    let mut rows = body["data"].as_array().unwrap().clone();
    rows.sort_by_key(|r| r["id"].as_i64());
    assert_eq!(
        rows,
        [
            json!({"id": 1, "name": "Ann B", "tier": "gold"}),
            json!({"id": 30, "name": "Hal", "tier": "new"})
        ]
    );
    let (status, applied, body) = upsert(
        &f,
        "ignore-duplicates",
        "",
        json!([{"id": 2, "name": "Not Bob"}, {"id": 31, "name": "Ida"}]),
    )
    .await;
    assert_eq!(
        (status, applied.as_str()),
        (201, "resolution=ignore-duplicates, return=representation")
    );
    assert_eq!(ids(&body), vec![31], "{body}");
    assert_eq!(
        f.pg_count("SELECT count(*) FROM {schema}.customers WHERE id = 2 AND name = 'Bob'")
            .await,
        1
    );
    // On a unique key: the row with that name gets the other values.
    let client = common::postgres().await;
    client
        .batch_execute(&format!(
            "ALTER TABLE {}.customers ADD CONSTRAINT customers_name_key UNIQUE (name)",
            f.schema
        ))
        .await
        .unwrap();
    let (status, body) = f
        .call(Method::POST, "/admin/sources/pg/refresh", None)
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = upsert(
        &f,
        "merge-duplicates",
        "?on_conflict=name&fields=id,tier",
        json!({"name": "Cid", "tier": "bronze"}),
    )
    .await;
    assert_eq!(
        (status, &body["data"]),
        (201, &json!({"id": 3, "tier": "bronze"})),
        "{body}"
    );
    // Refused before anything is written: a key that is not unique, an
    // `on_conflict` without a resolution, an unknown resolution; without
    // `Prefer`, an existing key is a conflict.
    let (status, _, body) = upsert(
        &f,
        "merge-duplicates",
        "?on_conflict=tier",
        json!({"id": 3, "name": "x", "tier": "gold"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["path"], "on_conflict", "{body}");
    let response = f
        .call(
            Method::POST,
            "/api/pg_customers?on_conflict=id",
            Some(json!({"id": 3, "name": "x"})),
        )
        .await;
    assert_error(&response, 400, &["Prefer: resolution"]);
    let (status, _, body) = upsert(&f, "overwrite", "", json!({"id": 3, "name": "x"})).await;
    assert_eq!(status, 400, "{body}");
    let (status, _, body) = upsert(&f, "merge-duplicates", "", json!({"name": "x"})).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("conflict key") && m.contains("`id` is missing")),
        "{body}"
    );
    let response = f
        .call(
            Method::POST,
            "/api/pg_customers",
            Some(json!({"id": 3, "name": "x"})),
        )
        .await;
    assert_eq!(response.0, 409, "{}", response.1);
    assert_eq!(
        f.pg_count("SELECT count(*) FROM {schema}.customers WHERE name = 'x'")
            .await,
        0
    );
    f.stop().await;
}

/// NocoBase's `action` on `pg_customers` by name.
async fn create_or(f: &Fixture, action: &str, body: Value) -> (u16, Value) {
    let path = format!("/api/pg_customers:{action}?filterKeys[]=name&fields=id,name,tier");
    f.call(Method::POST, &path, Some(body)).await
}

/// On MariaDB a text key conflicts as its collation says (case and
/// trailing spaces ignored): an upsert updates the row stored under the
/// key as the database compares it, not only byte for byte — alone and in
/// a batch after earlier writes.
#[tokio::test]
async fn upserts_on_mariadb_text_keys_follow_its_collation() {
    let f = Fixture::new().await;
    common::mariadb_exec(&format!(
        "CREATE TABLE {db}.tags (id int AUTO_INCREMENT PRIMARY KEY, slug varchar(40) NOT NULL UNIQUE, \
         label varchar(40)); INSERT INTO {db}.tags (slug, label) VALUES ('Red', 'r'), ('blue ', 'b')",
        db = f.database
    ))
    .await;
    let (status, body) = f
        .call(Method::POST, "/admin/sources/my/refresh", None)
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = f
        .call(
            Method::POST,
            "/api/my_tags:updateOrCreate?filterKeys=slug",
            Some(json!({"slug": "red", "label": "R2"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"], json!({"id": 1, "slug": "Red", "label": "R2"}));
    // firstOrCreate answers the row it found, as stored.
    let (status, body) = f
        .call(
            Method::POST,
            "/api/my_tags:firstOrCreate?filterKeys=slug",
            Some(json!({"slug": "RED ", "label": "x"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"], json!({"id": 1, "slug": "Red", "label": "R2"}));
    let (status, body) = batch(
        &f,
        json!([
            {"action": "create", "collection": "my_tags", "values": {"slug": "green", "label": "g"}},
            {"action": "create", "collection": "my_tags", "resolution": "merge-duplicates",
             "on_conflict": "slug",
             "values": [{"slug": "BLUE", "label": "B2"}, {"slug": "Green ", "label": "G2"},
                        {"slug": "pink", "label": "p"}]},
        ]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"][1]["affected"], 3, "{body}");
    let body = f.get("/api/my_tags?sort=id").await;
    assert_eq!(
        body["data"],
        json!([
            {"id": 1, "slug": "Red", "label": "R2"},
            {"id": 2, "slug": "blue ", "label": "B2"},
            {"id": 3, "slug": "green", "label": "G2"},
            {"id": 4, "slug": "pink", "label": "p"},
        ])
    );
    f.stop().await;
}

/// NocoBase's `updateOrCreate` and `firstOrCreate`: the row `filterKeys`
/// find is updated (or kept and answered), else one is created.
#[tokio::test]
async fn nocobase_update_or_create_and_first_or_create() {
    let f = Fixture::new().await;
    let (status, body) = create_or(
        &f,
        "updateOrCreate",
        json!({"name": "Bob", "tier": "silver"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body["data"],
        json!({"id": 2, "name": "Bob", "tier": "silver"})
    );
    let (status, body) = create_or(
        &f,
        "updateOrCreate",
        json!({"id": 40, "name": "Jo", "tier": "new"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"], json!({"id": 40, "name": "Jo", "tier": "new"}));
    // firstOrCreate keeps and answers the row it finds.
    let (status, body) = create_or(
        &f,
        "firstOrCreate",
        json!({"id": 41, "name": "Cid", "tier": "x"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body["data"],
        json!({"id": 3, "name": "Cid", "tier": "silver"})
    );
    let (status, body) = create_or(&f, "firstOrCreate", json!({"id": 42, "name": "Kim"})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"], json!({"id": 42, "name": "Kim", "tier": null}));
    assert_eq!(
        f.pg_count("SELECT count(*) FROM {schema}.customers").await,
        5
    );
    // `filterKeys` is required and names columns.
    let response = f
        .call(
            Method::POST,
            "/api/pg_customers:updateOrCreate",
            Some(json!({"name": "x"})),
        )
        .await;
    assert_error(&response, 400, &["`filterKeys` is required"]);
    let response = f
        .call(
            Method::POST,
            "/api/pg_customers:firstOrCreate?filterKeys=nope",
            Some(json!({"name": "x"})),
        )
        .await;
    assert_error(&response, 400, &["no column `nope`"]);
    assert_eq!(response.1["error"]["path"], "filterKeys", "{}", response.1);
    f.stop().await;
}

/// A source whose pooled connections all stay in use past
/// `pool.acquire_timeout_ms` is busy, not down: 503 `source_busy` naming
/// it, with `Retry-After` (the SQL endpoint alike, GraphQL's error code
/// too), while the request holding the connection goes on and succeeds;
/// `/metrics` counts the waits that ran out.
#[tokio::test]
async fn a_source_whose_pool_stays_busy_answers_503_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::TestServer::start(dir.path()).await;
    let (schema, other) = common::pg_source_of_one_locked_connection(&server, 300).await;
    // The update waits for the row lock on the pool's only connection.
    let update = server.admin(Method::PATCH, "/api/pg_t/1", Some(json!({"v": 3})));
    let (status, body) =
        common::while_locked(update, common::wait_for_lock_wait_pg(&schema), async {
            let response = common::http_client()
                .get(format!("{}/api/pg_t/1", server.base))
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 503);
            let retry_after = response.headers().get("retry-after").cloned();
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], "source_busy", "{body}");
            let message = body["error"]["message"].as_str().unwrap();
            assert!(
                message.contains("pg") && message.contains("pool.acquire_timeout_ms"),
                "{message}"
            );
            assert_eq!(retry_after.as_ref().map(|v| v.to_str().unwrap()), Some("1"));
            // The SQL endpoint and GraphQL say the same.
            let sql = json!({"sql": format!("SELECT v FROM pg.{schema}.t")});
            let (status, answer) = server.admin(Method::POST, "/api/sql", Some(sql)).await;
            assert_eq!(status, 503, "{answer}");
            assert_eq!(answer["error"]["code"], "source_busy", "{answer}");
            let query = json!({"query": "{ pg_t { id v } }"});
            let (status, answer) = server.admin(Method::POST, "/graphql", Some(query)).await;
            assert_eq!(status, 200, "{answer}");
            assert_eq!(
                answer["errors"][0]["extensions"]["code"], "source_busy",
                "{answer}"
            );
            other.batch_execute("COMMIT").await.unwrap();
        })
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, row) = server.admin(Method::GET, "/api/pg_t/1", None).await;
    assert_eq!((status, &row["data"]["v"]), (200, &json!(3)), "{row}");
    // Operators see it: three waits that ran out (REST, SQL, GraphQL).
    let (status, metrics) = server.get_text("/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("tributary_pool_wait_timeouts_total{source=\"pg\"} 3\n"),
        "{metrics}"
    );
    server.stop().await;
    common::drop_postgres_schema(&schema).await;
}

/// When a source's connections are all in use, callers take turns: a
/// caller that queued three writes behind its own is not served before
/// another caller who came after with one (first come, first served would
/// have kept that one waiting for all three).
#[tokio::test]
async fn callers_take_turns_for_a_busy_sources_connections() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::TestServer::start(dir.path()).await;
    let (schema, other) = common::pg_source_of_one_locked_connection(&server, 30_000).await;
    // The order the writes ran in: the sequence PostgreSQL gives each row.
    common::postgres()
        .await
        .batch_execute(&format!(
            "CREATE TABLE {schema}.served (seq serial PRIMARY KEY, who text NOT NULL)"
        ))
        .await
        .unwrap();
    let (status, body) = server
        .admin(Method::POST, "/admin/sources/pg/refresh", None)
        .await;
    assert_eq!(status, 200, "{body}");
    let (dashboard, report) = two_callers(&server).await;
    let (dashboard, report) = (dashboard.as_str(), report.as_str());
    let waiting = |n: usize| {
        let server = &server;
        async move {
            let line = format!("tributary_pool_waiting_requests{{source=\"pg\"}} {n}\n");
            for _ in 0..200 {
                if server.get_text("/metrics").await.1.contains(&line) {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(25)).await;
            }
            panic!("never {n} requests waiting for pg's connection");
        }
    };
    // The dashboard's update holds the only connection, waiting for the
    // row lock; three more of its writes queue, then the report's one.
    let update = server.call(
        Method::PATCH,
        "/api/pg_t/1",
        Some(json!({"v": 3})),
        Some(dashboard),
    );
    let writes = async {
        common::wait_for_lock_wait_pg(&schema).await;
        let queued = futures::future::join_all(
            ["d1", "d2", "d3"].map(|who| Box::pin(served(&server, dashboard, who))),
        );
        let late = async {
            waiting(3).await;
            served(&server, report, "r1").await
        };
        let release = async {
            waiting(4).await;
            // The admin sees who uses the source: the dashboard's key holds
            // the connection with three more waiting, the report's waits.
            let (_, source) = server.admin(Method::GET, "/admin/sources/pg", None).await;
            let (pool, callers) = (&source["pool"], &source["pool"]["callers"]);
            assert_eq!(
                (&pool["max_size"], &pool["waiting"]),
                (&json!(1), &json!(4)),
                "{pool}"
            );
            assert_eq!(callers.as_array().map(Vec::len), Some(2), "{pool}");
            assert_eq!(
                (&callers[0]["in_use"], &callers[0]["waiting"]),
                (&json!(1), &json!(3))
            );
            assert_eq!(
                (&callers[1]["in_use"], &callers[1]["waiting"]),
                (&json!(0), &json!(1))
            );
            assert!(
                callers[1]["caller"].as_str().unwrap().starts_with("key:"),
                "{pool}"
            );
            other.batch_execute("COMMIT").await.unwrap();
        };
        let (queued, late, ()) = tokio::join!(queued, late, release);
        (queued, late)
    };
    let ((status, body), (queued, late)) = tokio::join!(update, writes);
    assert_eq!(status, 200, "{body}");
    for (status, body) in queued.iter().chain([&late]) {
        assert_eq!(*status, 201, "{body}");
    }
    let order: Vec<String> = common::postgres()
        .await
        .query(
            &format!("SELECT who FROM {schema}.served ORDER BY seq"),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    // One of the dashboard's (it was first), then the report's turn.
    assert_eq!(order.len(), 4, "{order:?}");
    assert_eq!(order[1], "r1", "{order:?}");
    assert!(order[0].starts_with('d'), "{order:?}");
    server.stop().await;
    common::drop_postgres_schema(&schema).await;
}

/// Writes a row of `served` saying `who`, with `token`'s key.
async fn served(server: &common::TestServer, token: &str, who: &str) -> (u16, Value) {
    let body = Some(json!({"who": who}));
    server
        .call(Method::POST, "/api/pg_served", body, Some(token))
        .await
}

/// `pool.max_per_caller` keeps connections for the other callers: with a
/// pool of two and a share of one, the dashboard's update holds its one
/// connection waiting for a row lock, its next request is refused 503 when
/// its share stays in use, and the report is served meanwhile at once.
#[tokio::test]
async fn a_callers_share_of_the_pool_keeps_room_for_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::TestServer::start(dir.path()).await;
    let (schema, other) = common::pg_source_of_one_locked_connection(&server, 300).await;
    let pool = json!({"pool": {"max_size": 2, "max_per_caller": 1, "acquire_timeout_ms": 300}});
    let (status, body) = server
        .admin(Method::PATCH, "/admin/sources/pg", Some(pool))
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, source) = server.admin(Method::GET, "/admin/sources/pg", None).await;
    assert_eq!(status, 200, "{source}");
    assert_eq!(source["config"]["pool"]["max_per_caller"], 1, "{source}");
    let (dashboard, report) = two_callers(&server).await;
    let (dashboard, report) = (dashboard.as_str(), report.as_str());
    let update = server.call(
        Method::PATCH,
        "/api/pg_t/1",
        Some(json!({"v": 3})),
        Some(dashboard),
    );
    let (status, body) =
        common::while_locked(update, common::wait_for_lock_wait_pg(&schema), async {
            let (status, answer) = server
                .call(Method::GET, "/api/pg_t/1", None, Some(dashboard))
                .await;
            assert_eq!(status, 503, "{answer}");
            assert_eq!(answer["error"]["code"], "source_busy", "{answer}");
            let message = answer["error"]["message"].as_str().unwrap();
            assert!(message.contains("pool.max_per_caller"), "{message}");
            let (status, answer) = server
                .call(Method::GET, "/api/pg_t/1", None, Some(report))
                .await;
            assert_eq!((status, &answer["data"]["v"]), (200, &json!(0)), "{answer}");
            other.batch_execute("COMMIT").await.unwrap();
        })
        .await;
    assert_eq!(status, 200, "{body}");
    // A batch whose transaction holds the dashboard's one connection while
    // its next operation's filter is read through the engine: the request
    // is not held to its caller's share for that read (it would wait for
    // itself).
    let batch = json!({"operations": [
        {"action": "update", "collection": "pg_t", "key": 1, "values": {"v": 4}},
        {"action": "update", "collection": "pg_t", "filter": {"v": 4}, "values": {"v": 5}},
    ]});
    let (status, body) = server
        .call(Method::POST, "/api/batch", Some(batch), Some(dashboard))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"][1]["affected"], 1, "{body}");
    // A share larger than the pool is refused.
    let pool = json!({"pool": {"max_size": 2, "max_per_caller": 3}});
    let (status, body) = server
        .admin(Method::PATCH, "/admin/sources/pg", Some(pool))
        .await;
    assert_eq!(status, 400, "{body}");
    server.stop().await;
    common::drop_postgres_schema(&schema).await;
}

/// Two admin API keys, "dashboard" and "report": two callers.
async fn two_callers(server: &common::TestServer) -> (String, String) {
    let mut keys = Vec::new();
    for name in ["dashboard", "report"] {
        let key = json!({"name": name, "role": "admin"});
        let (status, created) = server.admin(Method::POST, "/admin/keys", Some(key)).await;
        assert_eq!(status, 201, "{created}");
        keys.push(created["key"].as_str().unwrap().to_string());
    }
    let report = keys.pop().unwrap();
    (keys.pop().unwrap(), report)
}
