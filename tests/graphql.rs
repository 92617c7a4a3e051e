//! The GraphQL API against real PostgreSQL and MariaDB: lists with
//! `where` / `order_by` / `limit` / `offset`, rows by key, aggregates,
//! relation filters within a source and across sources, a role's schema
//! (hidden columns are validation errors, hidden collections are absent)
//! and rows, the error shapes (validation, a source down while another
//! root field answers), the configured limits and GraphiQL. Answers are
//! compared whole.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TOKEN, TestServer};
use reqwest::Method;
use serde_json::{Value, json};
use tributary::config::FileConfig;

const PG_DDL: &str = r#"
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, tier text, born date);
CREATE TABLE orders (
    id serial PRIMARY KEY,
    customer_id int REFERENCES customers(id),
    status text NOT NULL,
    total numeric(10,2) NOT NULL,
    placed_at date NOT NULL,
    note text,
    owner text,
    big bigint,
    meta jsonb
);
CREATE TABLE line_items (order_id int REFERENCES orders(id), line int, qty int NOT NULL, PRIMARY KEY (order_id, line));
INSERT INTO customers VALUES (1, 'Ann', 'gold', '1990-01-02'), (2, 'Bob', NULL, NULL), (3, 'Cid', 'silver', NULL);
INSERT INTO orders (customer_id, status, total, placed_at, note, owner, big, meta) VALUES
    (1, 'open', 10.50, '2024-01-05', 'n1', 'ann', 9007199254740993, '{"rush": true}'),
    (1, 'shipped', 99.00, '2024-01-20', 'n2', 'ann', NULL, NULL),
    (2, 'open', 5.25, '2024-02-01', NULL, 'bob', NULL, NULL),
    (3, 'open', 300.00, '2024-02-14', 'n4', 'cid', NULL, NULL),
    (2, 'cancelled', 42.00, '2024-03-03', 'n5', 'bob', NULL, NULL);
INSERT INTO line_items VALUES (1, 1, 2), (1, 2, 5), (2, 1, 1), (4, 1, 7);
CREATE TABLE tags (id serial PRIMARY KEY, slug text CONSTRAINT tags_slug_key UNIQUE, label text, hits int NOT NULL DEFAULT 0);
INSERT INTO tags (slug, label, hits) VALUES ('red', 'Red', 1), ('blue', 'Blue', 5);
CREATE TABLE kinds (id int PRIMARY KEY, at timestamptz, wall timestamp, day date, t time, u uuid,
                    b bytea, n numeric(30,10), f double precision, ok boolean, tags text[]);
INSERT INTO kinds VALUES (1, '2024-05-01T12:00:00Z', '2024-05-01 12:00:00', '2024-05-01', '12:34:56',
    'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '\x0a1b', 12345678901234567890.0123456789, 1.5, true, '{a,b}');
"#;

const MY_DDL: &str = r#"
CREATE TABLE reviews (id int AUTO_INCREMENT PRIMARY KEY, customer_id int NOT NULL, stars int NOT NULL, body varchar(200), tags JSON);
INSERT INTO reviews (customer_id, stars, body, tags) VALUES (1, 5, 'great', '["a", "b"]'), (1, 3, 'ok', '{"x": {"y": 1}}'), (3, 1, 'bad', NULL);
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
        Self::with(FileConfig::default()).await
    }

    async fn with(file: FileConfig) -> Self {
        Self(common::TwoSources::start(PG_DDL, MY_DDL, file).await)
    }

    /// A GraphQL request as the admin; the whole response.
    async fn query(&self, query: &str) -> Value {
        self.request(None, json!({ "query": query })).await
    }

    /// A GraphQL request with variables as the admin; the whole response.
    async fn query_with(&self, query: &str, variables: Value) -> Value {
        self.request(None, json!({ "query": query, "variables": variables }))
            .await
    }

    /// A GraphQL request (`None`: as the admin, else as the role with user id).
    async fn request(&self, role: Option<(&str, &str)>, body: Value) -> Value {
        serde_json::from_str(&self.text(role, body).await).unwrap()
    }

    /// A GraphQL request's response as sent (its keys in their order).
    async fn text(&self, role: Option<(&str, &str)>, body: Value) -> String {
        let mut request = reqwest::Client::new()
            .post(format!("{}/graphql", self.server.base))
            .bearer_auth(TOKEN)
            .json(&body);
        if let Some((role, user)) = role {
            request = request.header("x-role", role).header("x-user-id", user);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200);
        response.text().await.unwrap()
    }

    async fn rule(&self, role: &str, collection: &str, action: &str, rule: Value) {
        let (status, body) = self
            .server
            .admin(
                Method::PUT,
                &format!("/admin/permissions/{role}/{collection}/{action}"),
                Some(rule),
            )
            .await;
        assert_eq!(status, 200, "{collection} {action}: {body}");
    }

    async fn stop(self) {
        self.0.stop().await;
    }
}

/// `_regex _iregex _nregex _niregex` mean PostgreSQL's `~ ~* !~ !~*` on
/// both sources: MariaDB's REGEXP would ignore case under its collation,
/// so there the engine matches. `_similar _nsimilar` are PostgreSQL's
/// `SIMILAR TO` (the whole value matches; case counts). A pattern that is
/// no regular expression is a 400 naming its path.
#[tokio::test]
async fn regular_expressions_match_as_in_postgresql_on_every_source() {
    let f = Fixture::new().await;
    let body = f
        .query(
            r#"{
              regex: pg_customers(where: {name: {_regex: "^[AB]"}}, order_by: {id: asc}) { name }
              iregex: pg_customers(where: {name: {_iregex: "^c"}}) { name }
              nregex: pg_orders(where: {note: {_nregex: "^n[12]$"}}, order_by: {id: asc}) { id }
              my_regex: my_reviews(where: {body: {_regex: "^B"}}) { id }
              my_iregex: my_reviews(where: {body: {_iregex: "^B"}}) { id }
              my_niregex: my_reviews(where: {body: {_niregex: "A"}}) { body }
              similar: pg_customers(where: {name: {_similar: "(A|B)%"}}, order_by: {id: asc}) { name }
              whole: pg_customers(where: {name: {_similar: "A"}}) { name }
              nsimilar: pg_orders(where: {note: {_nsimilar: "n[12]"}}, order_by: {id: asc}) { id }
              my_similar: my_reviews(where: {body: {_similar: "%a_"}}, order_by: {id: asc}) { body }
              my_similar_case: my_reviews(where: {body: {_similar: "OK"}}) { body }
              my_nsimilar: my_reviews(where: {body: {_nsimilar: "(g|b)%"}}) { body }
            }"#,
        )
        .await;
    assert_eq!(
        body,
        json!({"data": {
            "regex": [{"name": "Ann"}, {"name": "Bob"}],
            "iregex": [{"name": "Cid"}],
            "nregex": [{"id": 4}, {"id": 5}],
            "my_regex": [],
            "my_iregex": [{"id": 3}],
            "my_niregex": [{"body": "ok"}],
            "similar": [{"name": "Ann"}, {"name": "Bob"}],
            "whole": [],
            "nsimilar": [{"id": 4}, {"id": 5}],
            "my_similar": [{"body": "great"}, {"body": "bad"}],
            "my_similar_case": [],
            "my_nsimilar": [{"body": "ok"}],
        }})
    );
    for (query, words) in [
        (
            r#"{ pg_customers(where: {name: {_similar: "a\\\"b\\\"c\\\"d"}}) { id } }"#,
            "escape-double-quote",
        ),
        (
            r#"{ pg_customers(where: {name: {_regex: "(a"}}) { id } }"#,
            "not a regular expression",
        ),
    ] {
        let body = f.query(query).await;
        assert_eq!(body["data"], json!({"pg_customers": null}), "{body}");
        let error = &body["errors"][0];
        assert_eq!(error["extensions"]["code"], "invalid_input", "{body}");
        assert!(
            error["message"].as_str().is_some_and(|m| m.contains(words)),
            "{body}"
        );
    }
    f.stop().await;
}

#[tokio::test]
async fn lists_filter_sort_and_page_with_hasuras_operators() {
    let f = Fixture::new().await;
    let body = f
        .query(
            r#"{
              big: pg_orders(where: {status: {_eq: "open"}, total: {_gt: "5.25"}}, order_by: [{total: desc}], limit: 2) {
                id total placed_at big meta
              }
              second: pg_orders(order_by: {id: asc}, limit: 2, offset: 1) { id }
              neq: pg_orders(where: {note: {_neq: "n1"}}, order_by: {id: asc}) { id }
              nin: pg_orders(where: {note: {_nin: ["n2", "n4"]}}, order_by: {id: asc}) { id }
              not: pg_customers(where: {_not: {tier: {_eq: "gold"}}}) { id }
              or: pg_customers(where: {_or: [{name: {_ilike: "a%"}}, {tier: {_is_null: true}}]}, order_by: {id: desc}) { name }
              like: pg_customers(where: {name: {_nlike: "%o%"}, born: {_is_null: true}}) { name born }
              nulls: pg_customers(order_by: [{tier: asc_nulls_first}]) { id tier }
              in: my_reviews(where: {stars: {_in: [1, 5]}}, order_by: {stars: desc}) { id stars body }
            }"#,
        )
        .await;
    assert_eq!(
        body,
        json!({"data": {
            "big": [
                {"id": 4, "total": "300.00", "placed_at": "2024-02-14", "big": null, "meta": null},
                {"id": 1, "total": "10.50", "placed_at": "2024-01-05", "big": 9007199254740993_i64, "meta": {"rush": true}},
            ],
            "second": [{"id": 2}, {"id": 3}],
            // SQL's <>: the NULL note of order 3 matches neither _eq nor _neq.
            "neq": [{"id": 2}, {"id": 4}, {"id": 5}],
            "nin": [{"id": 1}, {"id": 5}],
            // NOT (tier = 'gold') is unknown for Bob's NULL tier.
            "not": [{"id": 3}],
            "or": [{"name": "Bob"}, {"name": "Ann"}],
            "like": [{"name": "Cid", "born": null}],
            "nulls": [{"id": 2, "tier": null}, {"id": 1, "tier": "gold"}, {"id": 3, "tier": "silver"}],
            "in": [{"id": 1, "stars": 5, "body": "great"}, {"id": 3, "stars": 1, "body": "bad"}],
        }})
    );
    // Variables and operationName, as GraphQL clients send them.
    let body = f
        .request(
            None,
            json!({
                "query": "query A($s: String!) { pg_orders(where: {status: {_eq: $s}}) { id } } query B { pg_customers(limit: 1) { id } }",
                "operationName": "A",
                "variables": {"s": "shipped"},
            }),
        )
        .await;
    assert_eq!(body, json!({"data": {"pg_orders": [{"id": 2}]}}));
    f.stop().await;
}

#[tokio::test]
async fn rows_by_key_and_aggregates() {
    let f = Fixture::new().await;
    let body = f
        .query(
            r#"{
              pg_orders_by_pk(id: 2) { id status }
              missing: pg_orders_by_pk(id: 999) { id }
              pg_line_items_by_pk(order_id: 1, line: 2) { qty }
              open: pg_orders_aggregate(where: {status: {_eq: "open"}}) {
                aggregate {
                  count
                  notes: count(columns: note)
                  sum { total }
                  avg { total }
                  min { placed_at total }
                  max { total }
                }
              }
              all: pg_orders_aggregate { aggregate {
                statuses: count(columns: [status], distinct: true)
                pairs: count(columns: [customer_id, owner], distinct: true)
                noted: count(columns: [customer_id, note])
                noted_pairs: count(columns: [owner, note], distinct: true)
              } }
              my_reviews_aggregate { aggregate { count avg { stars } sum { stars } } }
            }"#,
        )
        .await;
    assert_eq!(
        body,
        json!({"data": {
            "pg_orders_by_pk": {"id": 2, "status": "shipped"},
            "missing": null,
            "pg_line_items_by_pk": {"qty": 5},
            "open": {"aggregate": {
                "count": 3,
                "notes": 2,
                "sum": {"total": "315.75"},
                "avg": {"total": 105.25},
                "min": {"placed_at": "2024-01-05", "total": "5.25"},
                "max": {"total": "300.00"},
            }},
            // Of several columns: rows where none is NULL (one note is),
            // distinct combinations (ann/1 and bob/2 come twice).
            "all": {"aggregate": {"statuses": 3, "pairs": 3, "noted": 4, "noted_pairs": 4}},
            "my_reviews_aggregate": {"aggregate": {"count": 3, "avg": {"stars": 3.0}, "sum": {"stars": 9}}},
        }})
    );
    f.stop().await;
}

#[tokio::test]
async fn scalars_keep_precision_and_filter_by_their_text() {
    let f = Fixture::new().await;
    let body = f
        .query(
            r#"{
              pg_kinds { id at wall day t u b n f ok tags }
              hit: pg_kinds(where: {
                at: {_gte: "2024-05-01T11:00:00Z"}, wall: {_lt: "2024-05-02T00:00:00"}, day: {_eq: "2024-05-01"},
                u: {_eq: "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"}, n: {_gt: "12345678901234567890.0123456788"},
                ok: {_eq: true}, tags: {_is_null: false}
              }) { id }
              miss: pg_kinds(where: {n: {_gt: "12345678901234567890.0123456789"}}) { id }
              __type(name: "pg_kinds") { fields { name type { name } } }
            }"#,
        )
        .await;
    assert_eq!(
        body,
        json!({"data": {
            "pg_kinds": [{
                "id": 1, "at": "2024-05-01T12:00:00Z", "wall": "2024-05-01T12:00:00", "day": "2024-05-01",
                "t": "12:34:56", "u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "b": "Chs=",
                "n": "12345678901234567890.0123456789", "f": 1.5, "ok": true, "tags": ["a", "b"],
            }],
            "hit": [{"id": 1}],
            "miss": [],
            "__type": {"fields": [
                {"name": "id", "type": {"name": null}},
                {"name": "at", "type": {"name": "timestamptz"}},
                {"name": "wall", "type": {"name": "timestamp"}},
                {"name": "day", "type": {"name": "date"}},
                {"name": "t", "type": {"name": "time"}},
                {"name": "u", "type": {"name": "uuid"}},
                {"name": "b", "type": {"name": "bytea"}},
                {"name": "n", "type": {"name": "numeric"}},
                {"name": "f", "type": {"name": "Float"}},
                {"name": "ok", "type": {"name": "Boolean"}},
                {"name": "tags", "type": {"name": "json"}},
            ]},
        }})
    );
    // Bytes go in as base64 too, and what is not base64 is refused.
    let body = f
        .query(r#"mutation { insert_pg_kinds_one(object: {id: 2, b: "AP8="}) { b } update_pg_kinds_by_pk(pk_columns: {id: 1}, _set: {b: "/w=="}) { b } }"#)
        .await;
    assert_eq!(
        body,
        json!({"data": {"insert_pg_kinds_one": {"b": "AP8="}, "update_pg_kinds_by_pk": {"b": "/w=="}}})
    );
    let stored: String = common::postgres()
        .await
        .query_one(
            &format!(
                "SELECT encode(b, 'hex') FROM {}.kinds WHERE id = 2",
                f.schema
            ),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, "00ff");
    let body = f
        .query(r#"mutation { insert_pg_kinds_one(object: {id: 3, b: "\\x00"}) { id } }"#)
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "invalid_input",
        "{body}"
    );
    assert_eq!(body["errors"][0]["extensions"]["at"], "object.b", "{body}");
    f.stop().await;
}

#[tokio::test]
async fn where_filters_through_relations_within_and_across_sources() {
    let f = Fixture::new().await;
    let body = f
        .query(
            r#"{
              pg_orders(where: {customers: {name: {_eq: "Bob"}}}, order_by: {id: asc}) { id }
              pg_customers(where: {orders: {status: {_eq: "cancelled"}}}) { name }
              nested: pg_line_items(where: {orders: {customers: {tier: {_eq: "gold"}}}}, order_by: [{order_id: asc}, {line: asc}]) { order_id line }
              my_reviews(where: {customers: {tier: {_eq: "gold"}}}, order_by: {id: asc}) { id }
              reviewed: pg_customers(where: {reviews: {stars: {_lt: 2}}}) { name }
            }"#,
        )
        .await;
    assert_eq!(
        body,
        json!({"data": {
            "pg_orders": [{"id": 3}, {"id": 5}],
            "pg_customers": [{"name": "Bob"}],
            "nested": [{"order_id": 1, "line": 1}, {"order_id": 1, "line": 2}, {"order_id": 2, "line": 1}],
            "my_reviews": [{"id": 1}, {"id": 2}],
            "reviewed": [{"name": "Cid"}],
        }})
    );
    f.stop().await;
}

#[tokio::test]
async fn a_role_sees_its_collections_columns_and_rows_only() {
    let f = Fixture::new().await;
    f.rule(
        "clerk",
        "pg_orders",
        "select",
        json!({"filter": {"owner": "{{$user.id}}"}, "columns": ["id", "status", "total", "owner"]}),
    )
    .await;
    let clerk = Some(("clerk", "bob"));
    let body = f
        .request(
            clerk,
            json!({"query": "{ pg_orders(order_by: {id: desc}) { id status total } pg_orders_by_pk(id: 1) { id } }"}),
        )
        .await;
    // Order 1 is Ann's: not a row bob's clerk can read.
    assert_eq!(
        body,
        json!({"data": {
            "pg_orders": [{"id": 5, "status": "cancelled", "total": "42.00"}, {"id": 3, "status": "open", "total": "5.25"}],
            "pg_orders_by_pk": null,
        }})
    );
    // The role's schema: its readable columns only, no aggregate (no rule
    // for it), no other collection.
    let body = f
        .request(
            clerk,
            json!({"query": "{ __type(name: \"pg_orders\") { fields { name type { name kind ofType { name } } } } query: __type(name: \"Query\") { fields { name } } }"}),
        )
        .await;
    assert_eq!(
        body,
        json!({"data": {
            "__type": {"fields": [
                {"name": "id", "type": {"name": null, "kind": "NON_NULL", "ofType": {"name": "Int"}}},
                {"name": "status", "type": {"name": null, "kind": "NON_NULL", "ofType": {"name": "String"}}},
                {"name": "total", "type": {"name": null, "kind": "NON_NULL", "ofType": {"name": "numeric"}}},
                {"name": "owner", "type": {"name": "String", "kind": "SCALAR", "ofType": null}},
            ]},
            "query": {"fields": [{"name": "pg_orders"}, {"name": "pg_orders_by_pk"}]},
        }})
    );
    // A hidden column and a hidden collection fail validation; nothing runs.
    let body = f
        .request(clerk, json!({"query": "{ pg_orders { id note } }"}))
        .await;
    assert_eq!(
        body,
        json!({"data": null, "errors": [{
            "message": "Unknown field \"note\" on type \"pg_orders\".",
            "locations": [{"line": 1, "column": 18}],
            "extensions": {"code": "validation_failed"},
        }]})
    );
    let body = f
        .request(clerk, json!({"query": "{ pg_customers { id } }"}))
        .await;
    assert_eq!(
        body["errors"][0]["message"],
        "Unknown field \"pg_customers\" on type \"Query\"."
    );
    assert_eq!(body["errors"][0]["extensions"]["code"], "validation_failed");
    // A filter on a hidden column is not in the role's `where` either.
    let body = f
        .request(
            clerk,
            json!({"query": "{ pg_orders(where: {note: {_eq: \"n5\"}}) { id } }"}),
        )
        .await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "validation_failed");
    // A new rule changes the role's schema at once.
    f.rule(
        "clerk",
        "pg_customers",
        "select",
        json!({"columns": ["id", "name"]}),
    )
    .await;
    let body = f
        .request(
            clerk,
            json!({"query": "{ pg_customers(order_by: {id: asc}, limit: 1) { id name } }"}),
        )
        .await;
    assert_eq!(
        body,
        json!({"data": {"pg_customers": [{"id": 1, "name": "Ann"}]}})
    );
    // Aggregates count the role's rows only; a collection the role may
    // only aggregate has `x_aggregate` and no list.
    f.rule(
        "clerk",
        "pg_orders",
        "aggregate",
        json!({"filter": {"owner": "{{$user.id}}"}, "columns": ["id", "status", "total", "owner"]}),
    )
    .await;
    f.rule("clerk", "pg_line_items", "aggregate", json!({}))
        .await;
    let body = f
        .request(
            clerk,
            json!({"query": "{ pg_orders_aggregate { aggregate { count sum { total } } } pg_line_items_aggregate { aggregate { sum { qty } } } }"}),
        )
        .await;
    assert_eq!(
        body,
        json!({"data": {
            "pg_orders_aggregate": {"aggregate": {"count": 2, "sum": {"total": "47.25"}}},
            "pg_line_items_aggregate": {"aggregate": {"sum": {"qty": 15}}},
        }})
    );
    let body = f
        .request(clerk, json!({"query": "{ pg_line_items { qty } }"}))
        .await;
    assert_eq!(
        body["errors"][0]["message"],
        "Unknown field \"pg_line_items\" on type \"Query\". Did you mean \"pg_line_items_group_by\", \"pg_line_items_aggregate\"?",
        "{body}"
    );
    // A role with no rule at all has no schema: a GraphQL error says so.
    let body = f
        .request(Some(("nobody", "x")), json!({"query": "{ __typename }"}))
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "permission_denied",
        "{body}"
    );
    f.stop().await;
}

#[tokio::test]
async fn errors_follow_the_graphql_spec() {
    let f = Fixture::new().await;
    // A wrong type: a validation error, no data.
    let body = f.query("{ pg_orders(limit: \"x\") { id } }").await;
    assert_eq!(
        body,
        json!({"data": null, "errors": [{
            "message": "Invalid value for argument \"limit\", expected type \"Int\"",
            "locations": [{"line": 1, "column": 13}],
            "extensions": {"code": "validation_failed"},
        }]})
    );
    // A value the column's type cannot hold: a field error with its path
    // and code; the other root field answers.
    let body = f
        .query(r#"{ pg_orders(where: {placed_at: {_eq: "someday"}}) { id } pg_orders_by_pk(id: 1) { id } }"#)
        .await;
    assert_eq!(
        body["data"],
        json!({"pg_orders": null, "pg_orders_by_pk": {"id": 1}})
    );
    assert_eq!(body["errors"][0]["path"], json!(["pg_orders"]));
    assert_eq!(
        body["errors"][0]["extensions"],
        json!({"code": "invalid_input", "at": "where.placed_at._eq"})
    );
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("someday"),
        "{body}"
    );
    // Such an error names its place in the request wherever the `where`
    // is: among other conditions, in a list, in a relation field's own
    // (whose read puts the keys first), in an aggregate and in a mutation.
    for (query, field, at) in [
        (
            r#"{ x: pg_orders(where: {status: {_eq: "open"}, _or: [{id: {_gt: 1}}, {placed_at: {_lt: "soon"}}]}) { id } }"#,
            "x",
            "where._or[1].placed_at._lt",
        ),
        (
            r#"{ x: pg_orders(where: {placed_at: {_in: ["2024-01-05", "nope"]}}) { id } }"#,
            "x",
            "where.placed_at._in[1]",
        ),
        (
            r#"{ x: pg_customers { open: orders(where: {placed_at: {_gt: "later"}}) { id } } }"#,
            "x",
            "open.where.placed_at._gt",
        ),
        (
            r#"{ x: pg_orders_aggregate(where: {customers: {born: {_eq: "never"}}}) { aggregate { count } } }"#,
            "x",
            "where.customers.born._eq",
        ),
        (
            r#"mutation { x: delete_pg_orders(where: {placed_at: {_neq: "no day"}}) { affected_rows } }"#,
            "x",
            "where.placed_at._neq",
        ),
    ] {
        let body = f.query(query).await;
        assert_eq!(body["errors"][0]["path"], json!([field]), "{query}: {body}");
        assert_eq!(
            body["errors"][0]["extensions"],
            json!({"code": "invalid_input", "at": at}),
            "{query}: {body}"
        );
    }
    // A null operand is refused (SQL would match nothing).
    let body = f
        .query("{ pg_orders(where: {note: {_eq: null}}) { id } }")
        .await;
    assert_eq!(
        body["errors"][0]["extensions"],
        json!({"code": "invalid_input", "at": "where.note._eq"})
    );
    // Not JSON at all: an HTTP 400 with our error body.
    let response = reqwest::Client::new()
        .post(format!("{}/graphql", f.server.base))
        .bearer_auth(TOKEN)
        .body("query { x }")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    // Past `max_body_bytes`: 413, as on every route.
    let big = json!({"query": format!("{{ __typename }} #{}", "x".repeat(3 << 20))});
    let response = reqwest::Client::new()
        .post(format!("{}/graphql", f.server.base))
        .bearer_auth(TOKEN)
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 413);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "payload_too_large");
    // Without credentials: 401, as every data route.
    let (status, _) = f
        .server
        .call(
            Method::POST,
            "/graphql",
            Some(json!({"query": "{ __typename }"})),
            None,
        )
        .await;
    assert_eq!(status, 401);
    // GraphiQL needs none: it holds no data.
    let (status, page) = f.server.get_text("/graphql").await;
    assert_eq!(status, 200);
    assert!(page.contains("graphiql"), "{page}");

    // A query by GET (`?query=…&variables=…&operationName=…`) runs as the
    // caller, with credentials as a POST; a mutation is POST's only.
    let get = |url: String, token: Option<&'static str>| {
        let base = f.server.base.clone();
        async move {
            let mut request = reqwest::Client::new().get(format!("{base}{url}"));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };
    let query = "/graphql?operationName=One&query=query%20One(%24id%3A%20Int!)%20%7B%20pg_customers_by_pk(id%3A%20%24id)%20%7B%20name%20%7D%20%7D&variables=%7B%22id%22%3A%202%7D";
    assert_eq!(
        get(query.to_string(), Some(TOKEN)).await,
        (
            200,
            json!({"data": {"pg_customers_by_pk": {"name": "Bob"}}})
        )
    );
    let (status, body) = get(query.to_string(), None).await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = get(
        "/graphql?query=mutation%20%7B%20delete_pg_orders(where%3A%20%7B%7D)%20%7B%20affected_rows%20%7D%20%7D"
            .to_string(),
        Some(TOKEN),
    )
    .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (405, &json!("method_not_allowed")),
        "{body}"
    );
    let (status, body) = get(
        "/graphql?query=%7B%20pg_orders%20%7B%20id%20%7D%20%7D&variables=%7Bnot".to_string(),
        Some(TOKEN),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    // Nothing was deleted.
    assert_eq!(
        f.query("{ pg_orders_aggregate { aggregate { count } } }")
            .await,
        json!({"data": {"pg_orders_aggregate": {"aggregate": {"count": 5}}}})
    );
    f.stop().await;
}

#[tokio::test]
async fn a_source_down_is_named_while_the_other_root_field_answers() {
    let schema =
        common::postgres_schema("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);")
            .await;
    let database = common::mariadb_database(MY_DDL).await;
    let proxy = common::TcpProxy::start(common::postgres_addr()).await;
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let post = |query: &'static str| {
        let base = server.base.clone();
        async move {
            reqwest::Client::new()
                .post(format!("{base}/graphql"))
                .bearer_auth(TOKEN)
                .json(&json!({ "query": query }))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    server
        .register(json!({"name": "my", "url": common::mariadb_url_with_database(&database)}))
        .await;
    let query = "{ far_t { id } my_reviews(order_by: {id: asc}, limit: 1) { id } }";
    // Before `far` is registered its collection is not in the schema.
    let body = post(query).await;
    assert_eq!(
        body["errors"][0]["message"],
        "Unknown field \"far_t\" on type \"Query\"."
    );
    let far = json!({"name": "far", "url": common::postgres_url_with(Some(proxy.addr), None), "schemas": {"include": [schema]},
                     "pool": {"connect_timeout_ms": 1000, "acquire_timeout_ms": 1000}});
    server.register(far).await;
    assert_eq!(
        post(query).await,
        json!({"data": {"far_t": [{"id": 1}], "my_reviews": [{"id": 1}]}})
    );
    // The query has a plan now (it answered without an error); a plan
    // whose read fails hands the request to async-graphql, which names
    // the source that is down.
    proxy.cut().await;
    let body = post(query).await;
    assert_eq!(
        body["data"],
        json!({"far_t": null, "my_reviews": [{"id": 1}]}),
        "{body}"
    );
    let error = &body["errors"][0];
    assert_eq!(error["path"], json!(["far_t"]), "{body}");
    assert_eq!(error["extensions"]["code"], "source_unavailable", "{body}");
    assert!(error["message"].as_str().unwrap().contains("far"), "{body}");
    server.stop().await;
    common::drop_postgres_schema(&schema).await;
    common::drop_mariadb_database(&database).await;
}

#[tokio::test]
async fn configured_limits_hold() {
    let file =
        FileConfig::parse("[graphql]\nmax_depth = 3\nintrospection = false\ndefault_limit = 2\n")
            .unwrap();
    let f = Fixture::with(file).await;
    let body = f
        .query("{ pg_orders(order_by: {id: asc}) { id } asked: pg_orders(limit: 5000, order_by: {id: asc}) { id } }")
        .await;
    assert_eq!(
        body,
        json!({"data": {
            "pg_orders": [{"id": 1}, {"id": 2}],
            "asked": [{"id": 1}, {"id": 2}, {"id": 3}, {"id": 4}, {"id": 5}],
        }})
    );
    let body = f
        .query("{ pg_orders_aggregate { aggregate { sum { total } } } }")
        .await;
    assert_eq!(body["data"], Value::Null, "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "validation_failed");
    let body = f.query("{ __schema { types { name } } }").await;
    assert_eq!(body["data"], Value::Null, "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "validation_failed");
    f.stop().await;
}

/// A batch (a JSON array of requests, as Apollo's batch link sends) is
/// answered by an array of responses, each operation run in turn as a
/// request of its own: a failing mutation rolls back only itself, and a
/// later operation sees what an earlier one committed. More than
/// `max_batch` operations, or none, is a 400.
#[tokio::test]
async fn batched_requests_run_in_turn_each_on_its_own() {
    let file = FileConfig::parse("[graphql]\nmax_batch = 4\n").unwrap();
    let f = Fixture::with(file).await;
    let post = |body: String| {
        let base = f.server.base.clone();
        async move {
            let response = reqwest::Client::new()
                .post(format!("{base}/graphql"))
                .bearer_auth(TOKEN)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };
    let batch = json!([
        {"query": "mutation { insert_pg_customers_one(object: {id: 70, name: \"Gus\"}) { id } }"},
        // Fails on the key: only this operation rolls back.
        {"query": "mutation { a: insert_pg_customers_one(object: {id: 71, name: \"Hal\"}) { id } b: insert_pg_customers_one(object: {id: 1, name: \"dup\"}) { id } }"},
        {"query": "query Named($id: Int!) { pg_customers_by_pk(id: $id) { name } }", "variables": {"id": 70}, "operationName": "Named"},
        {"query": "{ pg_customers(where: {id: {_in: [70, 71]}}) { id } }"},
    ]);
    let (status, body) = post(format!("  \n{batch}")).await;
    assert_eq!(status, 200, "{body}");
    let answers = body.as_array().expect("an array of responses");
    assert_eq!(answers.len(), 4, "{body}");
    assert_eq!(
        answers[0],
        json!({"data": {"insert_pg_customers_one": {"id": 70}}})
    );
    assert_eq!(answers[1]["data"], Value::Null, "{body}");
    assert!(answers[1]["errors"][0]["message"].is_string(), "{body}");
    assert_eq!(
        answers[2],
        json!({"data": {"pg_customers_by_pk": {"name": "Gus"}}})
    );
    assert_eq!(answers[3], json!({"data": {"pg_customers": [{"id": 70}]}}));

    let five = Value::Array(vec![json!({"query": "{ __typename }"}); 5]).to_string();
    for (body, problem) in [
        (five.as_str(), "has 5"),
        ("[]", "has 0"),
        ("[{\"query\": 1}]", "list of them"),
    ] {
        let (status, answer) = post(body.to_string()).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_input", "{answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(problem), "{body}: {answer}");
    }
    f.stop().await;
}

/// Apollo's automatic persisted queries: a hash alone is unknown until the
/// text is sent once with it; then the hash alone runs it (with its
/// variables, as the caller: a role's schema still decides).
#[tokio::test]
async fn persisted_queries_run_by_their_hash_once_sent() {
    use sha2::{Digest, Sha256};
    let f = Fixture::new().await;
    let text = "query One($id: Int!) { pg_customers_by_pk(id: $id) { name } }";
    let hash = hex::encode(Sha256::digest(text.as_bytes()));
    let persisted = json!({"persistedQuery": {"version": 1, "sha256Hash": hash}});
    let by_hash = json!({"extensions": persisted, "variables": {"id": 2}});
    let body = f.request(None, by_hash.clone()).await;
    assert_eq!(
        body,
        json!({"data": null, "errors": [{"message": "PersistedQueryNotFound",
                                           "extensions": {"code": "persisted_query_not_found"}}]})
    );
    let body = f
        .request(
            None,
            json!({"query": text, "extensions": persisted, "variables": {"id": 1}}),
        )
        .await;
    assert_eq!(
        body,
        json!({"data": {"pg_customers_by_pk": {"name": "Ann"}}})
    );
    let body = f.request(None, by_hash).await;
    assert_eq!(
        body,
        json!({"data": {"pg_customers_by_pk": {"name": "Bob"}}})
    );
    // A role without pg_customers in its schema is refused by validation.
    let body = f
        .request(
            Some(("nobody", "x")),
            json!({"extensions": persisted, "variables": {"id": 2}}),
        )
        .await;
    assert_eq!(body["data"], Value::Null, "{body}");
    assert_ne!(
        body["errors"][0]["message"], "PersistedQueryNotFound",
        "{body}"
    );
    f.stop().await;
}

/// `returning` rows sorted by their `id` (RETURNING's order is the
/// source's), so answers compare whole.
fn sorted_returning(mut body: Value) -> Value {
    if let Some(data) = body["data"].as_object_mut() {
        for field in data.values_mut() {
            if let Some(rows) = field.get_mut("returning").and_then(Value::as_array_mut) {
                rows.sort_by_key(|row| row["id"].as_i64().or(row["order_id"].as_i64()));
            }
        }
    }
    body
}

/// The rows of each `returning` of a list of mutation responses, by `id`.
fn returning_ids(responses: &Value) -> Vec<Vec<(i64, Value)>> {
    responses
        .as_array()
        .unwrap()
        .iter()
        .map(|response| {
            let mut rows: Vec<(i64, Value)> = response["returning"]
                .as_array()
                .unwrap()
                .iter()
                .map(|row| (row["id"].as_i64().unwrap(), row["note"].clone()))
                .collect();
            rows.sort_by_key(|(id, _)| *id);
            rows
        })
        .collect()
}

#[tokio::test]
async fn update_many_runs_its_updates_in_turn_in_one_transaction() {
    let f = Fixture::new().await;
    // Each update writes over the one before it; every `where` selects
    // rows as they were before the request (no row had note "first").
    let body = f
        .query(
            r#"mutation {
              update_pg_orders_many(updates: [
                {where: {status: {_eq: "open"}}, _set: {note: "first"}},
                {where: {status: {_eq: "open"}}, _set: {note: "second"}, _inc: {total: "1"}},
                {where: {note: {_eq: "first"}}, _set: {note: "none"}}
              ]) { affected_rows returning { id note } }
            }"#,
        )
        .await;
    let responses = &body["data"]["update_pg_orders_many"];
    let affected: Vec<&Value> = responses
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|r| &r["affected_rows"])
        .collect();
    assert_eq!(affected, [&json!(3), &json!(3), &json!(0)], "{body}");
    assert_eq!(
        returning_ids(responses),
        vec![
            vec![
                (1, json!("first")),
                (3, json!("first")),
                (4, json!("first"))
            ],
            vec![
                (1, json!("second")),
                (3, json!("second")),
                (4, json!("second"))
            ],
            vec![],
        ]
    );
    assert_eq!(
        f.query(
            "{ pg_orders(where: {note: {_eq: \"second\"}}, order_by: {id: asc}) { id total } }"
        )
        .await,
        json!({"data": {"pg_orders": [
            {"id": 1, "total": "11.50"}, {"id": 3, "total": "6.25"}, {"id": 4, "total": "301.00"}
        ]}})
    );

    // A failing update rolls back the ones before it.
    let body = f
        .query(
            r#"mutation {
              update_pg_orders_many(updates: [
                {where: {status: {_eq: "open"}}, _set: {note: "lost"}},
                {where: {id: {_eq: 1}}, _set: {customer_id: 99}}
              ]) { affected_rows }
            }"#,
        )
        .await;
    assert_eq!(body["data"], Value::Null, "{body}");
    assert_eq!(
        body["errors"][0]["path"],
        json!(["update_pg_orders_many"]),
        "{body}"
    );
    assert_eq!(
        f.query("{ pg_orders_aggregate(where: {note: {_eq: \"lost\"}}) { aggregate { count } } }")
            .await,
        json!({"data": {"pg_orders_aggregate": {"aggregate": {"count": 0}}}})
    );
    f.stop().await;
}

#[tokio::test]
async fn mutations_insert_update_and_delete_with_returning() {
    let f = Fixture::new().await;
    let body = f
        .query(
            r#"mutation {
              insert_pg_customers(objects: [{id: 10, name: "Dee", tier: "gold"}, {id: 11, name: "O'Brien; DROP TABLE customers"}]) {
                affected_rows returning { id name tier }
              }
              insert_pg_customers_one(object: {id: 12, name: "Fay", born: "2000-02-29"}) { id born tier }
              update_pg_orders(where: {status: {_eq: "open"}}, _set: {note: "x"}, _inc: {total: "1.5"}) {
                affected_rows returning { id total note }
              }
              update_pg_customers_by_pk(pk_columns: {id: 2}, _set: {tier: "bronze"}) { id tier }
              delete_pg_line_items(where: {qty: {_lt: 2}}) { affected_rows returning { order_id line } }
              delete_pg_line_items_by_pk(order_id: 1, line: 2) { qty }
              missing: delete_pg_customers_by_pk(id: 999) { id }
              nothing: update_pg_orders(where: {status: {_eq: "lost"}}, _set: {note: "y"}) { affected_rows returning { id } }
              insert_my_reviews(objects: [{customer_id: 2, stars: 4, body: "fine"}]) { affected_rows returning { id stars } }
            }"#,
        )
        .await;
    // The last field writes to MariaDB after PostgreSQL: refused, and the
    // whole request rolled back (checked below, after the MariaDB-only run).
    assert_eq!(body["data"], Value::Null, "{body}");
    assert_eq!(body["errors"].as_array().unwrap().len(), 1, "{body}");
    let error = &body["errors"][0];
    assert_eq!(error["path"], json!(["insert_my_reviews"]), "{body}");
    assert_eq!(error["extensions"]["code"], "invalid_input", "{body}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("one mutation request writes to one source"),
        "{body}"
    );
    let check = "{ pg_customers(where: {id: {_gte: 10}}) { id } pg_line_items_aggregate { aggregate { count } } pg_orders(where: {note: {_eq: \"x\"}}) { id } }";
    assert_eq!(
        f.query(check).await,
        json!({"data": {"pg_customers": [], "pg_line_items_aggregate": {"aggregate": {"count": 4}}, "pg_orders": []}})
    );

    // The same PostgreSQL fields alone commit.
    let body = f
        .query(
            r#"mutation {
              insert_pg_customers(objects: [{id: 10, name: "Dee", tier: "gold"}, {id: 11, name: "O'Brien; DROP TABLE customers"}]) {
                affected_rows returning { id name tier }
              }
              insert_pg_customers_one(object: {id: 12, name: "Fay", born: "2000-02-29"}) { id born tier }
              update_pg_orders(where: {status: {_eq: "open"}}, _set: {note: "x"}, _inc: {total: "1.5"}) {
                affected_rows returning { id total note }
              }
              update_pg_customers_by_pk(pk_columns: {id: 2}, _set: {tier: "bronze"}) { id tier }
              delete_pg_line_items(where: {qty: {_lt: 2}}) { affected_rows returning { order_id line } }
              delete_pg_line_items_by_pk(order_id: 1, line: 2) { qty }
              missing: delete_pg_customers_by_pk(id: 999) { id }
              nothing: update_pg_orders(where: {status: {_eq: "lost"}}, _set: {note: "y"}) { affected_rows returning { id } }
            }"#,
        )
        .await;
    assert_eq!(
        sorted_returning(body),
        json!({"data": {
            "insert_pg_customers": {"affected_rows": 2, "returning": [
                {"id": 10, "name": "Dee", "tier": "gold"},
                {"id": 11, "name": "O'Brien; DROP TABLE customers", "tier": null},
            ]},
            "insert_pg_customers_one": {"id": 12, "born": "2000-02-29", "tier": null},
            "update_pg_orders": {"affected_rows": 3, "returning": [
                {"id": 1, "total": "12.00", "note": "x"},
                {"id": 3, "total": "6.75", "note": "x"},
                {"id": 4, "total": "301.50", "note": "x"},
            ]},
            "update_pg_customers_by_pk": {"id": 2, "tier": "bronze"},
            "delete_pg_line_items": {"affected_rows": 1, "returning": [{"order_id": 2, "line": 1}]},
            "delete_pg_line_items_by_pk": {"qty": 5},
            "missing": null,
            "nothing": {"affected_rows": 0, "returning": []},
        }})
    );
    assert_eq!(
        f.query("{ pg_customers(where: {id: {_gte: 10}}, order_by: {id: asc}) { id name } pg_line_items(order_by: [{order_id: asc}, {line: asc}]) { order_id line } }").await,
        json!({"data": {
            "pg_customers": [{"id": 10, "name": "Dee"}, {"id": 11, "name": "O'Brien; DROP TABLE customers"}, {"id": 12, "name": "Fay"}],
            "pg_line_items": [{"order_id": 1, "line": 1}, {"order_id": 4, "line": 1}],
        }})
    );

    // MariaDB: generated keys come back; `_inc` adds in the database.
    let body = f
        .query(
            r#"mutation {
              insert_my_reviews(objects: [{customer_id: 2, stars: 4, body: "fine"}]) { affected_rows returning { id stars } }
              update_my_reviews(where: {customer_id: {_eq: 1}}, _inc: {stars: -1}) { affected_rows returning { id stars } }
              delete_my_reviews_by_pk(id: 3) { id body }
            }"#,
        )
        .await;
    assert_eq!(
        sorted_returning(body),
        json!({"data": {
            "insert_my_reviews": {"affected_rows": 1, "returning": [{"id": 4, "stars": 4}]},
            "update_my_reviews": {"affected_rows": 2, "returning": [{"id": 1, "stars": 4}, {"id": 2, "stars": 2}]},
            "delete_my_reviews_by_pk": {"id": 3, "body": "bad"},
        }})
    );
    // Every write is in the audit log, the refused ones too.
    let (status, audit) = f
        .server
        .admin(Method::GET, "/admin/audit?action=write.insert", None)
        .await;
    assert_eq!(status, 200, "{audit}");
    let entries = audit["entries"].as_array().unwrap();
    // PostgreSQL's two and MariaDB's one in the refused request, then two and one.
    assert_eq!(entries.len(), 6, "{audit}");
    assert!(
        entries
            .iter()
            .any(|e| e["detail"]["rolled_back"] == true && e["outcome"] != "ok"),
        "{audit}"
    );
    f.stop().await;
}

#[tokio::test]
async fn a_failing_mutation_leaves_nothing_behind() {
    let f = Fixture::new().await;
    let body = f
        .query(
            r#"mutation {
              first: insert_pg_customers_one(object: {id: 20, name: "Gus"}) { id }
              dup: insert_pg_customers_one(object: {id: 1, name: "again"}) { id }
              after: delete_pg_line_items_by_pk(order_id: 4, line: 1) { qty }
            }"#,
        )
        .await;
    assert_failed_at(&body, "dup", "constraint_violation");
    assert_eq!(
        f.query("{ gus: pg_customers_by_pk(id: 20) { id } line: pg_line_items_by_pk(order_id: 4, line: 1) { qty } ann: pg_customers_by_pk(id: 1) { name } }").await,
        json!({"data": {"gus": null, "line": {"qty": 7}, "ann": {"name": "Ann"}}})
    );
    // The last field's write goes with the transaction's COMMIT: failing,
    // it takes the earlier writes with it; succeeding, all are kept.
    let body = f
        .query(
            r#"mutation {
              first: insert_pg_customers_one(object: {id: 21, name: "Hal"}) { id }
              gone: delete_pg_line_items_by_pk(order_id: 4, line: 1) { qty }
              dup: insert_pg_customers_one(object: {id: 1, name: "again"}) { id }
            }"#,
        )
        .await;
    assert_eq!(body["data"], Value::Null, "{body}");
    assert_eq!(body["errors"][0]["path"], json!(["dup"]), "{body}");
    let body = f
        .query(
            r#"mutation {
              first: insert_pg_customers_one(object: {id: 22, name: "Ida"}) { id }
              last: delete_pg_line_items_by_pk(order_id: 4, line: 1) { qty }
            }"#,
        )
        .await;
    assert_eq!(
        body,
        json!({"data": {"first": {"id": 22}, "last": {"qty": 7}}})
    );
    assert_eq!(
        f.query("{ pg_customers(where: {id: {_gt: 20}}) { id } line: pg_line_items_by_pk(order_id: 4, line: 1) { qty } }").await,
        json!({"data": {"pg_customers": [{"id": 22}], "line": null}})
    );
    // A value the column cannot hold fails before anything runs.
    let body = f
        .query(r#"mutation { insert_pg_orders_one(object: {customer_id: 1, status: "open", total: "123456789.001", placed_at: "2024-01-01"}) { id } }"#)
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "invalid_input",
        "{body}"
    );
    assert_eq!(
        body["errors"][0]["extensions"]["at"], "object.total",
        "{body}"
    );
    // Input types hold only writable columns: `id` is generated.
    let body = f
        .query(r#"mutation { insert_pg_orders_one(object: {id: 9, status: "open"}) { id } }"#)
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "validation_failed",
        "{body}"
    );
    f.stop().await;
}

/// The answer's first error is the source's database refusing a privilege:
/// `source_permission_denied`, with the database's words.
fn assert_source_denied(body: &Value) {
    let error = &body["errors"][0];
    assert_eq!(
        error["extensions"]["code"], "source_permission_denied",
        "{body}"
    );
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("permission denied")),
        "{body}"
    );
}

/// Registers source `w` on `schema` as a new PostgreSQL role that may use
/// the schema and holds `grants` ([`common::postgres_role`]); the role's
/// name.
async fn register_as_role(f: &Fixture, schema: &str, grants: &str) -> String {
    let (user, url) = common::postgres_role(schema, "writer", grants).await;
    f.server
        .register(json!({"name": "w", "url": url, "schemas": {"include": [schema]}}))
        .await;
    user
}

/// A write answering a row brings back the columns its answer reads and
/// the key, not the whole row: seen through a source whose database user
/// may not read `secret` (PostgreSQL refuses a `RETURNING` that names it).
/// Each mutation is sent twice: answered by the executor, then by its plan.
#[tokio::test]
async fn row_mutations_return_only_the_columns_they_answer() {
    let f = Fixture::new().await;
    let schema = common::postgres_schema(
        "CREATE TABLE docs (id int PRIMARY KEY, title text NOT NULL, secret text NOT NULL)",
    )
    .await;
    let user = register_as_role(
        &f,
        &schema,
        "GRANT INSERT, UPDATE, DELETE ON {schema}.docs TO {user};
         GRANT SELECT (id, title) ON {schema}.docs TO {user};",
    )
    .await;
    let insert = "mutation($id: Int!) { insert_w_docs_one(object: {id: $id, title: \"t\", secret: \"s\"}) { title } }";
    let update = "mutation($id: Int!) { update_w_docs_by_pk(pk_columns: {id: $id}, _set: {title: \"u\"}) { id title } }";
    let delete = "mutation($id: Int!) { delete_w_docs_by_pk(id: $id) { title } }";
    for id in [1, 2] {
        let vars = json!({ "id": id });
        assert_eq!(
            f.query_with(insert, vars.clone()).await,
            json!({"data": {"insert_w_docs_one": {"title": "t"}}})
        );
        assert_eq!(
            f.query_with(update, vars.clone()).await,
            json!({"data": {"update_w_docs_by_pk": {"id": id, "title": "u"}}})
        );
        assert_eq!(
            f.query_with(delete, vars).await,
            json!({"data": {"delete_w_docs_by_pk": {"title": "u"}}})
        );
    }
    // As do the fields answering `{ affected_rows returning { … } }`.
    let insert = r#"mutation { insert_w_docs(objects: [{id: 4, title: "a", secret: "s"}, {id: 5, title: "b", secret: "s"}]) { affected_rows returning { id } } }"#;
    assert_eq!(
        f.query(insert).await,
        json!({"data": {"insert_w_docs": {"affected_rows": 2, "returning": [{"id": 4}, {"id": 5}]}}})
    );
    let delete =
        "mutation { a: delete_w_docs_by_pk(id: 4) { id } b: delete_w_docs_by_pk(id: 5) { id } }";
    assert_eq!(
        f.query(delete).await,
        json!({"data": {"a": {"id": 4}, "b": {"id": 5}}})
    );
    // Asked for, `secret` is returned: the database refuses, nothing is written.
    let body = f
        .query(r#"mutation { insert_w_docs_one(object: {id: 3, title: "t", secret: "s"}) { id secret } }"#)
        .await;
    assert_eq!(body["data"], Value::Null, "{body}");
    assert_source_denied(&body);
    assert_eq!(common::postgres_count(&schema, "docs").await, 0);
    f.stop().await;
    common::drop_postgres_schema_and_role(&schema, &user).await;
}

/// Rows chosen by `where` are locked and checked again inside the
/// transaction: the lock reads the key and the columns the filter reads
/// (here, through a relation, the foreign key), not every column, so a
/// source's user denied reading one still writes by filter.
#[tokio::test]
async fn a_source_user_denied_a_column_writes_rows_chosen_by_where() {
    let f = Fixture::new().await;
    let schema = common::postgres_schema(
        "CREATE TABLE docs (id int PRIMARY KEY, title text NOT NULL, secret text NOT NULL);
         CREATE TABLE notes (id int PRIMARY KEY, doc_id int NOT NULL REFERENCES docs(id), secret text NOT NULL);
         INSERT INTO docs VALUES (1, 'a', 's'), (2, 'b', 's');
         INSERT INTO notes VALUES (10, 1, 's'), (11, 2, 's'), (12, 1, 's');",
    )
    .await;
    let user = register_as_role(
        &f,
        &schema,
        "GRANT INSERT, UPDATE, DELETE ON {schema}.docs, {schema}.notes TO {user};
         GRANT SELECT (id, title) ON {schema}.docs TO {user};
         GRANT SELECT (id, doc_id) ON {schema}.notes TO {user};",
    )
    .await;
    let update = r#"mutation { update_w_docs(where: {title: {_eq: "a"}}, _set: {title: "c"}) { affected_rows returning { id title } } }"#;
    assert_eq!(
        f.query(update).await,
        json!({"data": {"update_w_docs": {"affected_rows": 1, "returning": [{"id": 1, "title": "c"}]}}})
    );
    let delete = r#"mutation { delete_w_notes(where: {docs: {title: {_eq: "c"}}}) { affected_rows returning { id } } }"#;
    assert_eq!(
        f.query(delete).await,
        json!({"data": {"delete_w_notes": {"affected_rows": 2, "returning": [{"id": 10}, {"id": 12}]}}})
    );
    let db = common::postgres().await;
    let docs = db
        .query(
            &format!("SELECT id, title FROM {schema}.docs ORDER BY id"),
            &[],
        )
        .await
        .unwrap();
    let docs: Vec<(i32, String)> = docs.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(docs, [(1, "c".to_string()), (2, "b".to_string())]);
    let notes = db
        .query(&format!("SELECT id FROM {schema}.notes ORDER BY id"), &[])
        .await
        .unwrap();
    let notes: Vec<i32> = notes.iter().map(|r| r.get(0)).collect();
    assert_eq!(notes, [11]);
    f.stop().await;
    common::drop_postgres_schema_and_role(&schema, &user).await;
}

#[tokio::test]
async fn a_roles_mutations_follow_its_rules() {
    let f = Fixture::new().await;
    let clerk = Some(("clerk", "bob"));
    f.rule(
        "clerk",
        "pg_orders",
        "select",
        json!({"filter": {"owner": "{{$user.id}}"}, "columns": ["id", "status", "total", "owner"]}),
    )
    .await;
    f.rule(
        "clerk",
        "pg_orders",
        "insert",
        json!({"columns": ["customer_id", "status", "total", "placed_at", "owner"],
               "presets": {"owner": "{{$user.id}}"}, "check": {"total": {"$lt": 1000}}}),
    )
    .await;
    f.rule(
        "clerk",
        "pg_orders",
        "update",
        json!({"columns": ["status", "total"], "filter": {"owner": "{{$user.id}}"}, "check": {"total": {"$lt": 1000}}}),
    )
    .await;
    // The role's mutations: insert and update, no delete; a preset column
    // is not in the input, nor is a column the rule does not list.
    let body = f
        .request(
            clerk,
            json!({"query": "{ m: __type(name: \"Mutation\") { fields { name } } i: __type(name: \"pg_orders_insert_input\") { inputFields { name } } s: __type(name: \"pg_orders_set_input\") { inputFields { name } } }"}),
        )
        .await;
    assert_eq!(
        body,
        json!({"data": {
            "m": {"fields": [{"name": "insert_pg_orders"}, {"name": "insert_pg_orders_one"}, {"name": "update_pg_orders"}, {"name": "update_pg_orders_many"}, {"name": "update_pg_orders_by_pk"}]},
            "i": {"inputFields": [{"name": "customer_id"}, {"name": "status"}, {"name": "total"}, {"name": "placed_at"}]},
            "s": {"inputFields": [{"name": "status"}, {"name": "total"}]},
        }})
    );
    // The preset owns the row; the answer holds the readable columns.
    let body = f
        .request(
            clerk,
            json!({"query": "mutation { insert_pg_orders_one(object: {customer_id: 2, status: \"new\", total: 7, placed_at: \"2024-04-01\"}) { id status total owner } }"}),
        )
        .await;
    assert_eq!(
        body,
        json!({"data": {"insert_pg_orders_one": {"id": 6, "status": "new", "total": "7.00", "owner": "bob"}}})
    );
    // The check refuses a row; nothing is written.
    let body = f
        .request(
            clerk,
            json!({"query": "mutation { insert_pg_orders(objects: [{customer_id: 2, status: \"ok\", total: 1, placed_at: \"2024-04-02\"}, {customer_id: 2, status: \"big\", total: 5000, placed_at: \"2024-04-02\"}]) { affected_rows } }"}),
        )
        .await;
    assert_eq!(body["data"], Value::Null, "{body}");
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "permission_denied",
        "{body}"
    );
    // `where: {}` updates the role's own rows only (bob's: 3, 5 and 6).
    let body = f
        .request(
            clerk,
            json!({"query": "mutation { update_pg_orders(where: {}, _inc: {total: 1}) { affected_rows returning { id total } } }"}),
        )
        .await;
    assert_eq!(
        sorted_returning(body),
        json!({"data": {"update_pg_orders": {"affected_rows": 3, "returning": [
            {"id": 3, "total": "6.25"}, {"id": 5, "total": "43.00"}, {"id": 6, "total": "8.00"},
        ]}}})
    );
    // Ann's order 1 is not bob's to update: null, nothing written.
    let body = f
        .request(
            clerk,
            json!({"query": "mutation { update_pg_orders_by_pk(pk_columns: {id: 1}, _set: {status: \"mine\"}) { id } }"}),
        )
        .await;
    assert_eq!(body, json!({"data": {"update_pg_orders_by_pk": null}}));
    // An update the check refuses rolls back.
    let body = f
        .request(
            clerk,
            json!({"query": "mutation { update_pg_orders_by_pk(pk_columns: {id: 3}, _set: {total: 2000}) { id } }"}),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "permission_denied",
        "{body}"
    );
    let rows = f
        .query("{ pg_orders(order_by: {id: asc}) { id status total owner } }")
        .await;
    assert_eq!(
        rows,
        json!({"data": {"pg_orders": [
            {"id": 1, "status": "open", "total": "10.50", "owner": "ann"},
            {"id": 2, "status": "shipped", "total": "99.00", "owner": "ann"},
            {"id": 3, "status": "open", "total": "6.25", "owner": "bob"},
            {"id": 4, "status": "open", "total": "300.00", "owner": "cid"},
            {"id": 5, "status": "cancelled", "total": "43.00", "owner": "bob"},
            {"id": 6, "status": "new", "total": "8.00", "owner": "bob"},
        ]}})
    );
    // No delete rule: no delete field.
    let body = f
        .request(
            clerk,
            json!({"query": "mutation { delete_pg_orders(where: {}) { affected_rows } }"}),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "validation_failed",
        "{body}"
    );
    f.stop().await;
}

/// `body` answers a mutation that failed at the root field `path` with
/// `code`: no data, and that one error.
fn assert_failed_at(body: &Value, path: &str, code: &str) {
    assert_eq!(body["data"], Value::Null, "{body}");
    assert_eq!(body["errors"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(body["errors"][0]["path"], json!([path]), "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], code, "{body}");
}

/// The input fields of a GraphQL input type, as `role` (None: the admin) sees it.
async fn input_fields(f: &Fixture, role: Option<(&str, &str)>, ty: &str) -> Vec<String> {
    let query = format!("{{ __type(name: \"{ty}\") {{ inputFields {{ name }} }} }}");
    let body = f.request(role, json!({ "query": query })).await;
    body["data"]["__type"]["inputFields"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|field| field["name"].as_str().unwrap().to_string())
        .collect()
}

/// Hasura's nested inserts: related rows come with their row, in the
/// request's one transaction, their keys filled in — a customer with its
/// orders and their line items (array relationships, inserted after their
/// row), an order with its new customer (an object relationship, inserted
/// first). Another source's relation is not in the input; a key the
/// relation sets may not be given; a failing row leaves nothing behind;
/// `on_conflict` upserts related rows (beside their `data`) and top-level
/// ones.
#[tokio::test]
async fn inserts_related_rows_with_their_row_in_one_transaction() {
    let f = Fixture::new().await;
    assert_eq!(
        input_fields(&f, None, "pg_customers_insert_input").await,
        ["id", "name", "tier", "born", "orders"]
    );
    let body = f
        .query(
            r#"mutation { insert_pg_customers_one(object: {id: 10, name: "Dee", orders: {data: [
                {status: "new", total: 5, placed_at: "2024-06-01",
                 line_items: {data: [{line: 1, qty: 2}, {line: 2, qty: 3}]}},
                {status: "old", total: "1.5", placed_at: "2024-06-02"}]}}) {
              id name orders(order_by: {status: asc}) {
                status customer_id total line_items(order_by: {line: asc}) { line qty } } } }"#,
        )
        .await;
    assert_eq!(
        body,
        json!({"data": {"insert_pg_customers_one": {"id": 10, "name": "Dee", "orders": [
            {"status": "new", "customer_id": 10, "total": "5.00",
             "line_items": [{"line": 1, "qty": 2}, {"line": 2, "qty": 3}]},
            {"status": "old", "customer_id": 10, "total": "1.50", "line_items": []},
        ]}}})
    );
    let body = f
        .query(
            r#"mutation { insert_pg_orders(objects: [
                {status: "x", total: 1, placed_at: "2024-06-03", customers: {data: {id: 11, name: "Eve"}}},
                {status: "y", total: 2, placed_at: "2024-06-04", customer_id: 1}]) {
              affected_rows returning { status customer_id } } }"#,
        )
        .await;
    assert_eq!(
        body,
        json!({"data": {"insert_pg_orders": {"affected_rows": 3, "returning": [
            {"status": "x", "customer_id": 11}, {"status": "y", "customer_id": 1},
        ]}}})
    );
    let count = |sql: &str| {
        let sql = sql.replace("{schema}", &f.schema);
        async move {
            let client = common::postgres().await;
            client.query_one(&sql, &[]).await.unwrap().get::<_, i64>(0)
        }
    };
    assert_eq!(
        count("SELECT count(*) FROM {schema}.customers WHERE id = 11 AND name = 'Eve'").await,
        1
    );
    assert_eq!(count("SELECT count(*) FROM {schema}.line_items li JOIN {schema}.orders o ON o.id = li.order_id WHERE o.customer_id = 10").await, 2);
    let before = count("SELECT count(*) FROM {schema}.orders").await;
    // The second order misses a required value: the customer and the first
    // order, already sent, are rolled back with it.
    let body = f
        .query(
            r#"mutation { insert_pg_customers_one(object: {id: 12, name: "Fay", orders: {data: [
                {status: "a", total: 1, placed_at: "2024-06-05"}, {status: "b", total: 1}]}}) { id } }"#,
        )
        .await;
    assert_eq!(body["data"], Value::Null, "{body}");
    assert_eq!(
        count("SELECT count(*) FROM {schema}.customers WHERE id = 12").await,
        0
    );
    assert_eq!(count("SELECT count(*) FROM {schema}.orders").await, before);
    // A key the relation sets, given too: refused before anything is written.
    let body = f
        .query(
            r#"mutation { insert_pg_customers_one(object: {id: 13, name: "Gus", orders: {data: [
                {customer_id: 1, status: "a", total: 1, placed_at: "2024-06-05"}]}}) { id } }"#,
        )
        .await;
    assert_failed_at(&body, "insert_pg_customers_one", "invalid_input");
    assert_eq!(
        body["errors"][0]["extensions"]["at"], "object.orders.data[0].customer_id",
        "{body}"
    );
    assert_eq!(
        count("SELECT count(*) FROM {schema}.customers WHERE id = 13").await,
        0
    );
    // Upserts: a related row that is there already gives its key when
    // `on_conflict` updates it; one it leaves as it is cannot.
    assert_eq!(
        input_fields(&f, None, "pg_customers_obj_rel_insert_input").await,
        ["data", "on_conflict"]
    );
    let body = f
        .query(
            r#"mutation { insert_pg_orders_one(object: {status: "z", total: 3, placed_at: "2024-06-07",
                customers: {data: {id: 1, name: "Ann"},
                            on_conflict: {constraint: pg_customers_pkey, update_columns: [name]}}}) {
              status customer_id } }"#,
        )
        .await;
    assert_eq!(
        body,
        json!({"data": {"insert_pg_orders_one": {"status": "z", "customer_id": 1}}})
    );
    let before = count("SELECT count(*) FROM {schema}.orders").await;
    let body = f
        .query(
            r#"mutation { insert_pg_orders_one(object: {status: "z", total: 3, placed_at: "2024-06-07",
                customers: {data: {id: 2, name: "Bob"},
                            on_conflict: {constraint: pg_customers_pkey, update_columns: []}}}) { id } }"#,
        )
        .await;
    assert_failed_at(&body, "insert_pg_orders_one", "invalid_input");
    assert_eq!(
        body["errors"][0]["extensions"]["at"], "object.customers.data",
        "{body}"
    );
    assert_eq!(count("SELECT count(*) FROM {schema}.orders").await, before);
    // The field's own `on_conflict` upserts its rows, with their related rows.
    let body = f
        .query(
            r#"mutation { insert_pg_customers(objects: [{id: 1, name: "Ann B", orders: {data: [
                {status: "up", total: 1, placed_at: "2024-06-08"}]}}],
                on_conflict: {constraint: pg_customers_pkey, update_columns: [name]}) {
              affected_rows returning { id name } } }"#,
        )
        .await;
    assert_eq!(
        body,
        json!({"data": {"insert_pg_customers": {"affected_rows": 2, "returning": [{"id": 1, "name": "Ann B"}]}}})
    );
    assert_eq!(
        count("SELECT count(*) FROM {schema}.orders WHERE customer_id = 1 AND status = 'up'").await,
        1
    );
    f.stop().await;
}

/// Nested inserts on MariaDB: the keys `AUTO_INCREMENT` gives the row fill
/// its related rows' columns (array relationship), and a related row's key
/// fills the row's (object relationship).
#[tokio::test]
async fn nested_inserts_on_mariadb_fill_in_generated_keys() {
    let ddl = format!(
        "{MY_DDL}
        CREATE TABLE authors (id int AUTO_INCREMENT PRIMARY KEY, name varchar(100) NOT NULL);
        CREATE TABLE books (id int AUTO_INCREMENT PRIMARY KEY, author_id int NOT NULL,
                            title varchar(100) NOT NULL, FOREIGN KEY (author_id) REFERENCES authors(id));"
    );
    let f = Fixture(common::TwoSources::start(PG_DDL, &ddl, FileConfig::default()).await);
    let body = f
        .query(
            r#"mutation { insert_my_authors_one(object: {name: "Le Guin", books: {data: [
                {title: "The Dispossessed"}, {title: "A Wizard of Earthsea"}]}}) {
              name books(order_by: {title: asc}) { title } } }"#,
        )
        .await;
    assert_eq!(
        body,
        json!({"data": {"insert_my_authors_one": {"name": "Le Guin", "books": [
            {"title": "A Wizard of Earthsea"}, {"title": "The Dispossessed"}]}}})
    );
    let body = f
        .query(
            r#"mutation { insert_my_books(objects: [{title: "Kindred", authors: {data: {name: "Butler"}}}]) {
              affected_rows returning { title authors { name } } } }"#,
        )
        .await;
    assert_eq!(
        body,
        json!({"data": {"insert_my_books": {"affected_rows": 2, "returning": [
            {"title": "Kindred", "authors": {"name": "Butler"}}]}}})
    );
    let body = f
        .query(
            "{ my_authors(order_by: {id: asc}) { name books_aggregate { aggregate { count } } } }",
        )
        .await;
    assert_eq!(
        body,
        json!({"data": {"my_authors": [
            {"name": "Le Guin", "books_aggregate": {"aggregate": {"count": 2}}},
            {"name": "Butler", "books_aggregate": {"aggregate": {"count": 1}}}]}})
    );
    f.stop().await;
}

/// A role's nested inserts: a relation is in the input only when the role
/// may insert into the related collection; each related row is written
/// under its own collection's rule (its preset, its check).
#[tokio::test]
async fn a_roles_nested_inserts_follow_each_collections_rule() {
    let f = Fixture::new().await;
    let clerk = Some(("clerk", "bob"));
    f.rule(
        "clerk",
        "pg_customers",
        "select",
        json!({"columns": ["id", "name"]}),
    )
    .await;
    f.rule(
        "clerk",
        "pg_customers",
        "insert",
        json!({"columns": ["id", "name"]}),
    )
    .await;
    f.rule(
        "clerk",
        "pg_orders",
        "select",
        json!({"columns": ["id", "customer_id", "status", "owner"]}),
    )
    .await;
    assert_eq!(
        input_fields(&f, clerk, "pg_customers_insert_input").await,
        ["id", "name"]
    );
    f.rule(
        "clerk",
        "pg_orders",
        "insert",
        json!({"columns": ["customer_id", "status", "total", "placed_at"],
               "presets": {"owner": "{{$user.id}}"}, "check": {"total": {"$lt": 1000}}}),
    )
    .await;
    assert_eq!(
        input_fields(&f, clerk, "pg_customers_insert_input").await,
        ["id", "name", "orders"]
    );
    let body = f
        .request(
            clerk,
            json!({"query": r#"mutation { insert_pg_customers_one(object: {id: 14, name: "Hal",
                orders: {data: [{status: "a", total: 1, placed_at: "2024-06-06"}]}}) {
                id orders { status owner } } }"#}),
        )
        .await;
    assert_eq!(
        body,
        json!({"data": {"insert_pg_customers_one": {"id": 14, "orders": [{"status": "a", "owner": "bob"}]}}})
    );
    let body = f
        .request(
            clerk,
            json!({"query": r#"mutation { insert_pg_customers_one(object: {id: 15, name: "Ida",
                orders: {data: [{status: "a", total: 5000, placed_at: "2024-06-06"}]}}) { id } }"#}),
        )
        .await;
    assert_failed_at(&body, "insert_pg_customers_one", "permission_denied");
    let client = common::postgres().await;
    let left: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM {}.customers WHERE id = 15", f.schema),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
    f.stop().await;
}

/// A GraphQL-over-WebSocket client socket (`graphql-transport-ws`).
type LiveSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a live query socket to the fixture's server and sends
/// `connection_init` with `headers` in its payload.
async fn live_socket(f: &Fixture, headers: Value) -> LiveSocket {
    socket_speaking(f, "/graphql", "graphql-transport-ws", headers).await
}

/// A live query socket to `path` speaking `protocol`, `connection_init`
/// sent with `headers`.
async fn socket_speaking(f: &Fixture, path: &str, protocol: &str, headers: Value) -> LiveSocket {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = format!("{}{path}", f.server.base.replacen("http", "ws", 1));
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", protocol.parse().unwrap());
    let (mut socket, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(response.headers()["sec-websocket-protocol"], protocol);
    let init = json!({"type": "connection_init", "payload": {"headers": headers}});
    socket
        .send(tokio_tungstenite::tungstenite::Message::text(
            init.to_string(),
        ))
        .await
        .unwrap();
    socket
}

/// Creates an API key (`body` as `POST /admin/keys` takes it) and opens a
/// live query socket with it: the key's id and the socket.
async fn live_socket_with_key(f: &Fixture, body: Value) -> (String, LiveSocket) {
    let (status, key) = f
        .server
        .admin(Method::POST, "/admin/keys", Some(body))
        .await;
    assert_eq!(status, 201, "{key}");
    let secret = key["key"].as_str().unwrap();
    let socket = live_socket(f, json!({"Authorization": format!("Bearer {secret}")})).await;
    (key["id"].as_str().unwrap().to_string(), socket)
}

/// A live query socket as `headers`' caller, its `connection_ack` read.
async fn acked_socket(f: &Fixture, headers: Value) -> LiveSocket {
    let mut socket = live_socket(f, headers).await;
    assert_eq!(
        live_next(&mut socket).await,
        json!({"type": "connection_ack"})
    );
    socket
}

/// Sends `subscribe` for operation `id` with `payload`.
async fn subscribe(socket: &mut LiveSocket, id: &str, payload: &Value) {
    live_send(
        socket,
        json!({"id": id, "type": "subscribe", "payload": payload}),
    )
    .await;
}

async fn live_send(socket: &mut LiveSocket, message: Value) {
    use futures::SinkExt;
    socket
        .send(tokio_tungstenite::tungstenite::Message::text(
            message.to_string(),
        ))
        .await
        .unwrap();
}

/// The next message: a JSON text's value, or `{"close": code}`.
async fn live_next(socket: &mut LiveSocket) -> Value {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        let message = tokio::time::timeout(std::time::Duration::from_secs(20), socket.next())
            .await
            .expect("a message within 20 s")
            .expect("the socket open")
            .unwrap();
        match message {
            Message::Text(text) => return serde_json::from_str(text.as_str()).unwrap(),
            Message::Close(frame) => {
                return json!({"close": frame.map(|f| u16::from(f.code))});
            }
            _ => {}
        }
    }
}

/// The role `clerk` reads the orders it owns (`owner` is its user id).
async fn clerk_reads_own_orders(f: &Fixture) {
    f.rule(
        "clerk",
        "pg_orders",
        "select",
        json!({"filter": {"owner": "{{$user.id}}"}, "columns": ["id", "owner"]}),
    )
    .await;
}

/// Live queries over WebSocket: a `subscription` is its query run again,
/// its answer sent when the rows change (here after a REST insert); a
/// query is answered once; `complete` stops an operation; a role's rows
/// are its rows; no credentials, no socket.
#[tokio::test]
async fn subscriptions_send_their_answer_again_when_it_changes() {
    let file = FileConfig::parse("[graphql]\nlive_interval_ms = 50\n").unwrap();
    let f = Fixture::with(file).await;
    // The subscription root mirrors the query root, for clients and
    // GraphiQL to validate against; over HTTP a subscription is refused.
    let body = f
        .query("{ __schema { subscriptionType { fields(includeDeprecated: true) { name } } } }")
        .await;
    let fields = body["data"]["__schema"]["subscriptionType"]["fields"].to_string();
    for name in [
        "pg_customers",
        "pg_customers_by_pk",
        "pg_orders_aggregate",
        "pg_orders_group_by",
    ] {
        assert!(fields.contains(&format!("\"{name}\"")), "{name}: {body}");
    }
    let body = f.query("subscription { pg_customers { id } }").await;
    assert!(body["errors"][0]["message"].is_string(), "{body}");
    assert_eq!(body["data"], Value::Null, "{body}");
    let admin = json!({"Authorization": format!("Bearer {TOKEN}")});
    let mut socket = acked_socket(&f, admin.clone()).await;
    let names = "subscription Names { pg_customers(order_by: {id: asc}) { name } }";
    subscribe(&mut socket, "1", &json!({"query": names})).await;
    let first = live_next(&mut socket).await;
    assert_eq!(
        first,
        json!({"id": "1", "type": "next", "payload": {"data": {"pg_customers": [
            {"name": "Ann"}, {"name": "Bob"}, {"name": "Cid"}]}}})
    );
    let (status, body) = f
        .server
        .admin(
            Method::POST,
            "/api/pg_customers",
            Some(json!({"id": 9, "name": "Dee"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let changed = live_next(&mut socket).await;
    assert_eq!(
        changed["payload"]["data"]["pg_customers"][3],
        json!({"name": "Dee"}),
        "{changed}"
    );
    // A query is answered once; after `complete` the subscription is quiet.
    live_send(&mut socket, json!({"id": "1", "type": "complete"})).await;
    let count = "{ pg_customers_aggregate { aggregate { count } } }";
    subscribe(&mut socket, "2", &json!({"query": count})).await;
    assert_eq!(
        live_next(&mut socket).await,
        json!({"id": "2", "type": "next", "payload": {"data": {"pg_customers_aggregate": {"aggregate": {"count": 4}}}}})
    );
    assert_eq!(
        live_next(&mut socket).await,
        json!({"id": "2", "type": "complete"})
    );
    live_send(&mut socket, json!({"type": "ping"})).await;
    assert_eq!(live_next(&mut socket).await, json!({"type": "pong"}));
    // A document that does not validate ends with `error`.
    let wrong = "subscription { pg_customers { nothing } }";
    subscribe(&mut socket, "3", &json!({"query": wrong})).await;
    let error = live_next(&mut socket).await;
    assert_eq!(
        (&error["id"], &error["type"]),
        (&json!("3"), &json!("error")),
        "{error}"
    );
    // A role sees its rows only.
    clerk_reads_own_orders(&f).await;
    let clerk =
        json!({"Authorization": format!("Bearer {TOKEN}"), "X-Role": "clerk", "X-User-Id": "bob"});
    let mut socket = acked_socket(&f, clerk).await;
    let orders = "subscription { pg_orders(order_by: {id: asc}) { id owner } }";
    subscribe(&mut socket, "o", &json!({"query": orders})).await;
    assert_eq!(
        live_next(&mut socket).await["payload"]["data"]["pg_orders"],
        json!([{"id": 3, "owner": "bob"}, {"id": 5, "owner": "bob"}])
    );
    // Without credentials (and no anonymous role), the socket is closed;
    // with an API key revoked since it opened, at its next operation.
    let mut socket = live_socket(&f, json!({})).await;
    assert_eq!(live_next(&mut socket).await, json!({"close": 4403}));
    let (key_id, mut socket) = live_socket_with_key(
        &f,
        json!({"name": "dash", "role": "clerk", "user_id": "bob"}),
    )
    .await;
    assert_eq!(
        live_next(&mut socket).await,
        json!({"type": "connection_ack"})
    );
    let (status, body) = f
        .server
        .admin(Method::DELETE, &format!("/admin/keys/{key_id}"), None)
        .await;
    assert!(status < 300, "{status} {body}");
    let payload = json!({"query": orders});
    subscribe(&mut socket, "k", &payload).await;
    assert_eq!(live_next(&mut socket).await, json!({"close": 4403}));
    f.stop().await;
}

/// A stream sends the rows written after it started as they come, and
/// nothing while none comes.
#[tokio::test]
async fn streams_send_rows_written_later_as_they_come() {
    let file = FileConfig::parse("[graphql]\nlive_interval_ms = 50\n").unwrap();
    let f = Fixture::with(file).await;
    let admin = json!({"Authorization": format!("Bearer {TOKEN}")});
    let mut socket = acked_socket(&f, admin).await;
    let stream = r#"subscription {
      pg_orders_stream(batch_size: 10, cursor: {initial_value: {id: 5}}, where: {status: {_neq: "cancelled"}}) { id status }
    }"#;
    subscribe(&mut socket, "s", &json!({"query": stream})).await;
    // Quiet intervals pass: nothing is sent until a row comes.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let body = f
        .query(r#"mutation { cancelled: insert_pg_orders_one(object: {customer_id: 1, status: "cancelled", total: 1, placed_at: "2024-06-01"}) { id } new: insert_pg_orders_one(object: {customer_id: 2, status: "new", total: 2, placed_at: "2024-06-02"}) { id } }"#)
        .await;
    assert_eq!(
        body,
        json!({"data": {"cancelled": {"id": 6}, "new": {"id": 7}}})
    );
    assert_eq!(
        live_next(&mut socket).await,
        json!({"id": "s", "type": "next", "payload": {"data": {"pg_orders_stream": [{"id": 7, "status": "new"}]}}})
    );
    f.stop().await;
}

/// Hasura's streaming subscriptions: `x_stream` sends the rows after its
/// cursor in the cursor column's order, `batch_size` at a time, each batch
/// at once (the interval, ten minutes here, is waited only when no row is
/// left) — with `where`, relations and a role's rules as in a query; a
/// descending cursor walks down; a wrong cursor is an error.
#[tokio::test]
async fn streaming_subscriptions_send_rows_after_their_cursor_in_batches() {
    let file = FileConfig::parse("[graphql]\nlive_interval_ms = 600000\n").unwrap();
    let f = Fixture::with(file).await;
    assert_eq!(
        input_fields(&f, None, "pg_orders_stream_cursor_input").await,
        ["initial_value", "ordering"]
    );
    let admin = json!({"Authorization": format!("Bearer {TOKEN}")});
    let mut socket = acked_socket(&f, admin).await;
    let stream = r#"subscription {
      pg_orders_stream(batch_size: 2, cursor: {initial_value: {id: 1}}, where: {status: {_neq: "cancelled"}}) {
        status customers { name }
      }
    }"#;
    subscribe(&mut socket, "s", &json!({"query": stream})).await;
    let batch = |rows: Value| json!({"id": "s", "type": "next", "payload": {"data": {"pg_orders_stream": rows}}});
    // Orders 2 and 3, then 4 (5 is cancelled); the cursor column need
    // not be selected.
    assert_eq!(
        live_next(&mut socket).await,
        batch(json!([
            {"status": "shipped", "customers": {"name": "Ann"}},
            {"status": "open", "customers": {"name": "Bob"}},
        ]))
    );
    assert_eq!(
        live_next(&mut socket).await,
        batch(json!([{"status": "open", "customers": {"name": "Cid"}}]))
    );
    live_send(&mut socket, json!({"id": "s", "type": "complete"})).await;
    // Descending, from a variable's cursor; a role's rows only.
    clerk_reads_own_orders(&f).await;
    let clerk =
        json!({"Authorization": format!("Bearer {TOKEN}"), "X-Role": "clerk", "X-User-Id": "bob"});
    let mut socket = acked_socket(&f, clerk).await;
    let down = "subscription($c: [pg_orders_stream_cursor_input]!) { pg_orders_stream(batch_size: 10, cursor: $c) { id owner } }";
    let cursor = json!([{"initial_value": {"id": 7}, "ordering": "DESC"}]);
    subscribe(
        &mut socket,
        "d",
        &json!({"query": down, "variables": {"c": cursor}}),
    )
    .await;
    assert_eq!(
        live_next(&mut socket).await,
        json!({"id": "d", "type": "next", "payload": {"data": {"pg_orders_stream": [
            {"id": 5, "owner": "bob"}, {"id": 3, "owner": "bob"}]}}})
    );
    // A cursor on two columns is refused: the error, then the end.
    let two = "subscription { pg_orders_stream(batch_size: 1, cursor: {initial_value: {id: 1, owner: \"bob\"}}) { id } }";
    subscribe(&mut socket, "w", &json!({"query": two})).await;
    let wrong = live_next(&mut socket).await;
    assert_eq!(wrong["id"], "w", "{wrong}");
    assert_eq!(
        wrong["payload"]["errors"][0]["extensions"]["at"], "cursor",
        "{wrong}"
    );
    assert_eq!(
        live_next(&mut socket).await,
        json!({"id": "w", "type": "complete"})
    );
    // The clerk cannot walk a column it may not read.
    let hidden = "subscription { pg_orders_stream(batch_size: 1, cursor: {initial_value: {total: 1}}) { id } }";
    subscribe(&mut socket, "h", &json!({"query": hidden})).await;
    let refused = live_next(&mut socket).await;
    assert_eq!(
        (&refused["id"], &refused["type"]),
        (&json!("h"), &json!("error")),
        "{refused}"
    );
    f.stop().await;
}

/// The next message of a `subscriptions-transport-ws` socket that is not
/// a keep-alive (`ka`, sent every few seconds).
async fn next_but_keep_alive(socket: &mut LiveSocket) -> Value {
    loop {
        let message = live_next(socket).await;
        if message != json!({"type": "ka"}) {
            return message;
        }
    }
}

/// Hasura's clients carry over unchanged: its path `/v1/graphql`, its
/// headers (`X-Hasura-Admin-Secret` for the key, `X-Hasura-Role` and
/// `X-Hasura-User-Id`), and Apollo's older `subscriptions-transport-ws`
/// (subprotocol `graphql-ws`: `start` / `data` / `stop`, `ka` to keep the
/// socket alive, `connection_error` for refused credentials).
#[tokio::test]
async fn hasura_clients_carry_over_their_path_headers_and_socket_protocol() {
    let file = FileConfig::parse("[graphql]\nlive_interval_ms = 50\n").unwrap();
    let f = Fixture::with(file).await;
    clerk_reads_own_orders(&f).await;
    let response = reqwest::Client::new()
        .post(format!("{}/v1/graphql", f.server.base))
        .header("x-hasura-admin-secret", TOKEN)
        .header("x-hasura-role", "clerk")
        .header("x-hasura-user-id", "bob")
        .json(&json!({"query": "{ pg_orders(order_by: {id: asc}) { id owner } }"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"data": {"pg_orders": [{"id": 3, "owner": "bob"}, {"id": 5, "owner": "bob"}]}})
    );
    let secret = json!({"x-hasura-admin-secret": TOKEN});
    let mut socket = socket_speaking(&f, "/v1/graphql", "graphql-ws", secret).await;
    assert_eq!(
        live_next(&mut socket).await,
        json!({"type": "connection_ack"})
    );
    assert_eq!(live_next(&mut socket).await, json!({"type": "ka"}));
    let names = "subscription { pg_customers(order_by: {id: asc}) { name } }";
    live_send(
        &mut socket,
        json!({"id": "1", "type": "start", "payload": {"query": names}}),
    )
    .await;
    let data = |names: Value| json!({"id": "1", "type": "data", "payload": {"data": {"pg_customers": names}}});
    assert_eq!(
        next_but_keep_alive(&mut socket).await,
        data(json!([{"name": "Ann"}, {"name": "Bob"}, {"name": "Cid"}]))
    );
    let (status, body) = f
        .server
        .admin(
            Method::POST,
            "/api/pg_customers",
            Some(json!({"id": 9, "name": "Dee"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        next_but_keep_alive(&mut socket).await,
        data(json!([{"name": "Ann"}, {"name": "Bob"}, {"name": "Cid"}, {"name": "Dee"}]))
    );
    // `stop` ends it; a query is answered once and completed.
    live_send(&mut socket, json!({"id": "1", "type": "stop"})).await;
    let count = "{ pg_customers_aggregate { aggregate { count } } }";
    live_send(
        &mut socket,
        json!({"id": "2", "type": "start", "payload": {"query": count}}),
    )
    .await;
    assert_eq!(
        next_but_keep_alive(&mut socket).await,
        json!({"id": "2", "type": "data", "payload": {"data": {"pg_customers_aggregate": {"aggregate": {"count": 4}}}}})
    );
    assert_eq!(
        next_but_keep_alive(&mut socket).await,
        json!({"id": "2", "type": "complete"})
    );
    live_send(&mut socket, json!({"type": "connection_terminate"})).await;
    assert_eq!(
        next_but_keep_alive(&mut socket).await,
        json!({"close": 1000})
    );
    // Wrong credentials: `connection_error`, then the socket closes.
    let wrong = json!({"x-hasura-admin-secret": "not-a-key"});
    let mut socket = socket_speaking(&f, "/v1/graphql", "graphql-ws", wrong).await;
    let refused = live_next(&mut socket).await;
    assert_eq!(refused["type"], "connection_error", "{refused}");
    assert_eq!(live_next(&mut socket).await, json!({"close": 4403}));
    f.stop().await;
}

/// Hasura's `@cached`: a query's answer is kept for `ttl` seconds per
/// document, variables and caller, answered again without reading the
/// sources; `refresh: true` reads again; a changed rule is never answered
/// from before it; another role has its own answer; a mutation may not
/// ask, nor may a `ttl` beyond the configured most.
#[tokio::test]
async fn cached_queries_answer_from_their_kept_answer_until_it_expires() {
    let file = FileConfig::parse("[graphql]\ncache_max_ttl_secs = 2\n").unwrap();
    let f = Fixture::with(file).await;
    let names = "query Names($n: Int!) @cached(ttl: 2) { pg_customers(order_by: {id: asc}, limit: $n) { name } }";
    let first =
        json!({"data": {"pg_customers": [{"name": "Ann"}, {"name": "Bob"}, {"name": "Cid"}]}});
    assert_eq!(f.query_with(names, json!({"n": 5})).await, first);
    let (status, body) = f
        .server
        .admin(
            Method::POST,
            "/api/pg_customers",
            Some(json!({"id": 9, "name": "Dee"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    // Kept: the same answer, no statement sent, counted as the cache's.
    let (sent, kept) = (statements(&f, "pg").await, operations(&f, "cache").await);
    assert_eq!(f.query_with(names, json!({"n": 5})).await, first);
    assert_eq!(statements(&f, "pg").await, sent);
    assert_eq!(operations(&f, "cache").await, kept + 1);
    // Other variables are another answer; `refresh` reads again and keeps it.
    assert_eq!(
        f.query_with(names, json!({"n": 1})).await,
        json!({"data": {"pg_customers": [{"name": "Ann"}]}})
    );
    let fresh = json!({"data": {"pg_customers": [{"name": "Ann"}, {"name": "Bob"}, {"name": "Cid"}, {"name": "Dee"}]}});
    let refresh = names.replace("ttl: 2", "ttl: 2, refresh: true");
    assert_eq!(f.query_with(&refresh, json!({"n": 5})).await, fresh);
    assert_eq!(f.query_with(names, json!({"n": 5})).await, fresh);
    // Expired, it reads again.
    let (status, body) = f
        .server
        .admin(Method::DELETE, "/api/pg_customers/9", None)
        .await;
    assert!(status < 300, "{status} {body}");
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(f.query_with(names, json!({"n": 5})).await, first);
    // A role has its own answers, and a changed rule is in force at once.
    clerk_reads_own_orders(&f).await;
    let orders = r#"query @cached(ttl: 2) { pg_orders(order_by: {id: asc}) { id } }"#;
    let clerk = Some(("clerk", "bob"));
    let mine = f.request(clerk, json!({"query": orders})).await;
    assert_eq!(mine, json!({"data": {"pg_orders": [{"id": 3}, {"id": 5}]}}));
    let all = f.query(orders).await;
    assert_eq!(
        all["data"]["pg_orders"].as_array().unwrap().len(),
        5,
        "{all}"
    );
    f.rule(
        "clerk",
        "pg_orders",
        "select",
        json!({"filter": {"$and": [{"owner": "{{$user.id}}"}, {"status": "open"}]}, "columns": ["id", "owner"]}),
    )
    .await;
    assert_eq!(
        f.request(clerk, json!({"query": orders})).await,
        json!({"data": {"pg_orders": [{"id": 3}]}})
    );
    // A role whose rules do not name the caller: its users share answers.
    f.rule("viewer", "pg_orders", "select", json!({"columns": ["id"]}))
        .await;
    let first = f
        .request(Some(("viewer", "ann")), json!({"query": orders}))
        .await;
    assert_eq!(
        first["data"]["pg_orders"].as_array().unwrap().len(),
        5,
        "{first}"
    );
    let sent = statements(&f, "pg").await;
    assert_eq!(
        f.request(Some(("viewer", "bob")), json!({"query": orders}))
            .await,
        first
    );
    assert_eq!(
        statements(&f, "pg").await,
        sent,
        "bob got ann's kept answer"
    );
    for wrong in [
        r#"mutation @cached { delete_pg_orders(where: {id: {_eq: 1}}) { affected_rows } }"#,
        r#"query @cached(ttl: 3) { pg_orders { id } }"#,
        r#"query @cached(ttl: 1, forever: true) { pg_orders { id } }"#,
    ] {
        let body = f.query(wrong).await;
        assert_eq!(body["data"], Value::Null, "{wrong}: {body}");
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "validation_failed",
            "{wrong}: {body}"
        );
    }
    assert_eq!(
        f.query("{ pg_orders_aggregate { aggregate { count } } }")
            .await,
        json!({"data": {"pg_orders_aggregate": {"aggregate": {"count": 5}}}})
    );
    f.stop().await;
}

/// A live query socket's credentials are checked again every
/// `live_auth_interval_secs`: a key revoked while a subscription runs
/// closes the socket (4403); a socket that never sends `connection_init`
/// is closed when that interval ends (4408).
#[tokio::test]
async fn live_sockets_are_closed_when_their_key_is_revoked_or_never_initialised() {
    let file =
        FileConfig::parse("[graphql]\nlive_interval_ms = 600000\nlive_auth_interval_secs = 1\n")
            .unwrap();
    let f = Fixture::with(file).await;
    let (key_id, mut socket) =
        live_socket_with_key(&f, json!({"name": "wall", "role": "admin"})).await;
    assert_eq!(
        live_next(&mut socket).await,
        json!({"type": "connection_ack"})
    );
    let names = json!({"query": "subscription { pg_customers(order_by: {id: asc}) { name } }"});
    subscribe(&mut socket, "1", &names).await;
    assert_eq!(live_next(&mut socket).await["type"], "next");
    let (status, body) = f
        .server
        .admin(Method::DELETE, &format!("/admin/keys/{key_id}"), None)
        .await;
    assert!(status < 300, "{status} {body}");
    assert_eq!(live_next(&mut socket).await, json!({"close": 4403}));
    // Connected, never initialised.
    let url = format!("{}/graphql", f.server.base.replacen("http", "ws", 1));
    let (mut silent, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    assert_eq!(live_next(&mut silent).await, json!({"close": 4408}));
    f.stop().await;
}

/// Subscribers of one live query as one caller share its runs: a second
/// one is answered from the running query without a statement of its own
/// (the interval here is longer than the test); another user's
/// subscription to the same document runs on its own, with that user's
/// rows.
#[tokio::test]
async fn subscribers_of_one_live_query_share_its_runs() {
    let file = FileConfig::parse("[graphql]\nlive_interval_ms = 600000\n").unwrap();
    let f = Fixture::with(file).await;
    clerk_reads_own_orders(&f).await;
    let user = |id: &str| json!({"Authorization": format!("Bearer {TOKEN}"), "X-Role": "clerk", "X-User-Id": id});
    let orders = json!({"query": "subscription { pg_orders(order_by: {id: asc}) { id } }"});
    let mut subscribers = Vec::new();
    for id in ["bob", "bob", "ann"] {
        let socket = acked_socket(&f, user(id)).await;
        subscribers.push(socket);
    }
    let before = statements(&f, "pg").await;
    subscribe(&mut subscribers[0], "a", &orders).await;
    let bobs = json!([{"id": 3}, {"id": 5}]);
    assert_eq!(
        live_next(&mut subscribers[0]).await["payload"]["data"]["pg_orders"],
        bobs
    );
    let after_first = statements(&f, "pg").await;
    assert!(after_first > before, "the first subscriber's query ran");
    subscribe(&mut subscribers[1], "b", &orders).await;
    assert_eq!(
        live_next(&mut subscribers[1]).await["payload"]["data"]["pg_orders"],
        bobs
    );
    assert_eq!(
        statements(&f, "pg").await,
        after_first,
        "the second joined the first's run"
    );
    subscribe(&mut subscribers[2], "c", &orders).await;
    assert_eq!(
        live_next(&mut subscribers[2]).await["payload"]["data"]["pg_orders"],
        json!([{"id": 1}, {"id": 2}])
    );
    assert!(
        statements(&f, "pg").await > after_first,
        "another user's runs on its own"
    );
    // A role whose rules do not name the caller reads the same rows for
    // every user: its users share one run.
    f.rule(
        "viewer",
        "pg_customers",
        "select",
        json!({"columns": ["id", "name"]}),
    )
    .await;
    let viewer = |id: &str| json!({"Authorization": format!("Bearer {TOKEN}"), "X-Role": "viewer", "X-User-Id": id});
    let names = json!({"query": "subscription { pg_customers(order_by: {id: asc}) { name } }"});
    let everyone = json!([{"name": "Ann"}, {"name": "Bob"}, {"name": "Cid"}]);
    let mut sent = None;
    for id in ["ann", "bob"] {
        let mut socket = acked_socket(&f, viewer(id)).await;
        subscribe(&mut socket, "v", &names).await;
        assert_eq!(
            live_next(&mut socket).await["payload"]["data"]["pg_customers"],
            everyone
        );
        let now = statements(&f, "pg").await;
        if let Some(first) = sent {
            assert_eq!(now, first, "bob joined ann's run");
        }
        sent = Some(now);
        subscribers.push(socket);
    }
    f.stop().await;
}

/// A live query shared by a role's users stops when the permissions
/// change: its subscribers go on under the new rules, sent the answer
/// only when it changed.
#[tokio::test]
async fn shared_live_queries_follow_changed_rules() {
    let file = FileConfig::parse("[graphql]\nlive_interval_ms = 50\n").unwrap();
    let f = Fixture::with(file).await;
    f.rule(
        "viewer",
        "pg_customers",
        "select",
        json!({"columns": ["id", "name"]}),
    )
    .await;
    let viewer = |id: &str| json!({"Authorization": format!("Bearer {TOKEN}"), "X-Role": "viewer", "X-User-Id": id});
    let names = json!({"query": "subscription { pg_customers(order_by: {id: asc}) { name } }"});
    let mut sockets = Vec::new();
    for id in ["ann", "bob"] {
        let mut socket = acked_socket(&f, viewer(id)).await;
        subscribe(&mut socket, "v", &names).await;
        assert_eq!(
            live_next(&mut socket).await["payload"]["data"]["pg_customers"],
            json!([{"name": "Ann"}, {"name": "Bob"}, {"name": "Cid"}])
        );
        sockets.push(socket);
    }
    // The rule narrows to the caller's own row: each sees its own now.
    f.rule(
        "viewer",
        "pg_customers",
        "select",
        json!({"columns": ["id", "name"], "filter": {"name": {"$iLike": "{{$user.id}}"}}}),
    )
    .await;
    for (socket, name) in sockets.iter_mut().zip(["Ann", "Bob"]) {
        assert_eq!(
            live_next(socket).await["payload"]["data"]["pg_customers"],
            json!([{"name": name}])
        );
    }
    f.stop().await;
}

/// Statements a source has received (`tributary_source_statements_total`).
async fn statements(f: &Fixture, source: &str) -> u64 {
    source_counter(f, "statements", source).await
}

/// A source's counter `tributary_source_<counter>_total`.
async fn source_counter(f: &Fixture, counter: &str, source: &str) -> u64 {
    let (_, metrics) = f.server.get_text("/metrics").await;
    let prefix = format!("tributary_source_{counter}_total{{source=\"{source}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |n| n.trim().parse().unwrap())
}

const NESTED: &str = r#"{
  pg_customers(order_by: {id: asc}, limit: 3) {
    name
    latest: orders(order_by: {id: desc}, limit: 1) { id line_items(order_by: {line: asc}) { line qty } }
    orders_aggregate { aggregate { count sum { total } } }
    open: orders(where: {status: {_eq: "open"}}, order_by: {id: asc}) { id }
    reviews(order_by: {id: asc}) { stars }
  }
}"#;

#[tokio::test]
async fn relationships_nest_objects_arrays_and_aggregates_across_sources() {
    let f = Fixture::new().await;
    let body = f.query(NESTED).await;
    assert_eq!(
        body,
        json!({"data": {"pg_customers": [
            {"name": "Ann",
             "latest": [{"id": 2, "line_items": [{"line": 1, "qty": 1}]}],
             "orders_aggregate": {"aggregate": {"count": 2, "sum": {"total": "109.50"}}},
             "open": [{"id": 1}],
             "reviews": [{"stars": 5}, {"stars": 3}]},
            {"name": "Bob",
             "latest": [{"id": 5, "line_items": []}],
             "orders_aggregate": {"aggregate": {"count": 2, "sum": {"total": "47.25"}}},
             "open": [{"id": 3}],
             "reviews": []},
            {"name": "Cid",
             "latest": [{"id": 4, "line_items": [{"line": 1, "qty": 7}]}],
             "orders_aggregate": {"aggregate": {"count": 1, "sum": {"total": "300.00"}}},
             "open": [{"id": 4}],
             "reviews": [{"stars": 1}]},
        ]}}),
    );
    // Object relationships, within a source and across sources, by key too.
    let body = f
        .query("{ pg_orders_by_pk(id: 3) { id customers { name } } my_reviews(order_by: {id: asc}) { id customers { name } } }")
        .await;
    assert_eq!(
        body,
        json!({"data": {
            "pg_orders_by_pk": {"id": 3, "customers": {"name": "Bob"}},
            "my_reviews": [
                {"id": 1, "customers": {"name": "Ann"}},
                {"id": 2, "customers": {"name": "Ann"}},
                {"id": 3, "customers": {"name": "Cid"}},
            ],
        }})
    );
    // A mutation's returning rows have their relations too.
    let body = f
        .query(r#"mutation { insert_pg_orders_one(object: {customer_id: 3, status: "new", total: 1, placed_at: "2024-05-01"}) { id customers { name } } }"#)
        .await;
    assert_eq!(
        body,
        json!({"data": {"insert_pg_orders_one": {"id": 6, "customers": {"name": "Cid"}}}})
    );
    // A role's nested rows are its rows.
    f.rule(
        "clerk",
        "pg_customers",
        "select",
        json!({"columns": ["id", "name"]}),
    )
    .await;
    f.rule(
        "clerk",
        "pg_orders",
        "select",
        json!({"filter": {"owner": "{{$user.id}}"}, "columns": ["id", "customer_id", "status"]}),
    )
    .await;
    let body = f
        .request(
            Some(("clerk", "bob")),
            json!({"query": "{ pg_customers(order_by: {id: asc}) { name orders(order_by: {id: asc}) { id } } }"}),
        )
        .await;
    assert_eq!(
        body,
        json!({"data": {"pg_customers": [
            {"name": "Ann", "orders": []},
            {"name": "Bob", "orders": [{"id": 3}, {"id": 5}]},
            {"name": "Cid", "orders": []},
        ]}})
    );
    f.stop().await;
}

/// Root fields selecting only columns, `__typename` and row relationships
/// are answered in one walk of their rows, not field by field by
/// async-graphql. The same selection under a root inline fragment is
/// always resolved by async-graphql: both must answer the same text, keys
/// in the same order, for aliases, `__typename`, fragments, `@skip` /
/// `@include`, a field selected twice, nulls, every scalar, rows by key
/// (found or not, with their related rows) and relations across sources.
#[tokio::test]
async fn plain_answers_written_at_once_match_async_graphqls() {
    let f = Fixture::new().await;
    // One root field each: async-graphql answers root fields under a
    // fragment in another order than the document's.
    let selections = [
        "pg_customers(order_by: {id: asc}) { __typename who: name id name tier born \
         o: orders(order_by: {id: desc}) { __typename id total big meta note placed_at \
         customers { name t: __typename } line_items(order_by: {line: asc}) { line qty } } \
         reviews(order_by: {id: asc}) { stars body tags customers { id } } }",
        "pg_customers_by_pk(id: 1) { name orders(order_by: {id: asc}, limit: 1) { id status } }",
        "pg_customers_by_pk(id: 9) { name orders { id } }",
        "a: pg_orders_by_pk(id: 2) { id ...Order customers { ... on pg_customers { name } } }",
        "b: pg_orders_by_pk(id: 5) { id id status @skip(if: $skip) note @include(if: $skip) }",
        "pg_kinds { id at wall day t u b n f ok tags }",
        "my_reviews(order_by: {id: desc}) { id tags body customers { name orders(limit: 1, order_by: {id: asc}) { id } } }",
        // A relation twice under one key and an aggregate under a row:
        // answered by async-graphql alone, whichever way it is sent.
        "pg_customers(order_by: {id: asc}) { orders { id } orders { status } \
         orders_aggregate { aggregate { count } } }",
    ];
    let fragment = "fragment Order on pg_orders { status total }";
    for selection in selections {
        let declared = if selection.contains("$skip") {
            "query Q($skip: Boolean!)"
        } else {
            "query Q"
        };
        let fragment = if selection.contains("...Order") {
            fragment
        } else {
            ""
        };
        let variables = json!({"skip": true});
        let direct = f
            .text(
                None,
                json!({"query": format!("{declared} {{ {selection} }} {fragment}"), "variables": variables}),
            )
            .await;
        let resolved = f
            .text(
                None,
                json!({
                    "query": format!("{declared} {{ ... on Query {{ {selection} }} }} {fragment}"),
                    "variables": variables,
                }),
            )
            .await;
        assert!(!direct.contains("\"errors\""), "{selection}: {direct}");
        assert_eq!(direct, resolved, "{selection}");
    }
    f.stop().await;
}

/// GraphQL operations answered by `path` (`plan` or `executor`) so far
/// (`tributary_graphql_operations_total`).
async fn operations(f: &Fixture, path: &str) -> u64 {
    let (_, metrics) = f.server.get_text("/metrics").await;
    let prefix = format!("tributary_graphql_operations_total{{path=\"{path}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |n| n.trim().parse().unwrap())
}

/// async-graphql's answer to `document` with `variables`: the document is
/// sent with a comment added (`reference {i}`), a text no plan is kept for.
async fn by_executor(f: &Fixture, document: &str, variables: &Value, i: usize) -> String {
    let executor = operations(f, "executor").await;
    let body = json!({"query": format!("{document}\n# reference {i}"), "variables": variables});
    let answer = f.text(None, body).await;
    assert_eq!(operations(f, "executor").await, executor + 1, "{document}");
    answer
}

/// The answer to `document` with `variables`, which its plan gives.
async fn by_plan(f: &Fixture, document: &str, variables: &Value) -> String {
    let plans = operations(f, "plan").await;
    let answer = f
        .text(None, json!({"query": document, "variables": variables}))
        .await;
    assert_eq!(
        operations(f, "plan").await,
        plans + 1,
        "{document}: {variables}"
    );
    answer
}

/// A plain query of rows sent again is answered from its compiled plan,
/// byte for byte as async-graphql answers it: each answer here is checked
/// against the same document's with a comment added (a text not seen
/// before, so async-graphql runs it), for several variables' values.
#[tokio::test]
async fn plain_queries_sent_again_answer_from_their_plan_as_async_graphql_does() {
    let f = Fixture::new().await;
    // Each document, its root fields' keys, and values for its variables.
    let documents: [(&str, &[&str], Vec<Value>); 5] = [
        (
            "query Q($id: Int!) { pg_customers_by_pk(id: $id) { __typename who: name id \
             orders(order_by: {id: asc}) { id status total customers { name } } } }",
            &["pg_customers_by_pk"],
            vec![json!({"id": 1}), json!({"id": 2}), json!({"id": 9})],
        ),
        (
            "query Q($id: Int = 3) { c: pg_customers_by_pk(id: $id) { name tier } \
             o: pg_orders_by_pk(id: 4) { id big meta customers { name born } } }",
            &["c", "o"],
            vec![json!({}), json!({"id": 1}), json!({"id": 2})],
        ),
        (
            "{ pg_customers(order_by: {id: asc}, limit: 2) { name \
             o: orders(order_by: {id: desc}, limit: 1) { id line_items(order_by: {line: asc}) { line qty } } } \
             pg_kinds { id at wall day t u b n f ok tags } }",
            &["pg_customers", "pg_kinds"],
            vec![json!({})],
        ),
        (
            "query Q($order: Int!, $line: Int!) { pg_line_items_by_pk(order_id: $order, line: $line) { qty } }",
            &["pg_line_items_by_pk"],
            vec![
                json!({"order": 1, "line": 2}),
                json!({"order": 4, "line": 1}),
                json!({"order": 4, "line": 2}),
            ],
        ),
        // Across sources: MariaDB's reviews with PostgreSQL's customers.
        (
            "{ my_reviews(order_by: {id: desc}, where: {stars: {_gte: 3}}) { id tags body \
             customers { name orders(limit: 1, order_by: {id: asc}) { id } } } }",
            &["my_reviews"],
            vec![json!({})],
        ),
    ];
    let mut sent_to_plans = 0;
    for (document, roots, values) in &documents {
        // The first time, async-graphql answers and the plan is made.
        let first = &values[0];
        let learned = f
            .text(None, json!({"query": document, "variables": first}))
            .await;
        assert!(!learned.contains("\"errors\""), "{document}: {learned}");
        for (i, variables) in values.iter().enumerate() {
            let reference = by_executor(&f, document, variables, i).await;
            let planned = by_plan(&f, document, variables).await;
            sent_to_plans += 1;
            assert!(!planned.contains("\"errors\""), "{document}: {planned}");
            assert_eq!(planned, reference, "{document} with {variables}");
            // Root fields in the document's order, as the spec asks
            // (async-graphql's executor puts them in the order answered;
            // its answers are put back in order too).
            let at = |key: &str| planned.find(&format!("\"{key}\":")).unwrap();
            assert!(roots.windows(2).all(|w| at(w[0]) < at(w[1])), "{planned}");
        }
    }
    assert!(sent_to_plans >= 9);
    let plain = documents[0].0;
    let answer = f.query_with(plain, json!({"id": 2})).await;
    assert_eq!(
        answer["data"]["pg_customers_by_pk"]["who"], "Bob",
        "{answer}"
    );

    // Values the plan does not take go to async-graphql, which reports
    // them as ever; a plan is never used for them.
    let plans = operations(&f, "plan").await;
    for (i, variables) in [json!({"id": "two"}), json!({"id": null}), json!({})]
        .into_iter()
        .enumerate()
    {
        let answer = f
            .text(None, json!({"query": plain, "variables": variables}))
            .await;
        let reference = f
            .text(
                None,
                json!({"query": format!("{plain}\n# refused {i}"), "variables": variables}),
            )
            .await;
        assert_eq!(answer, reference);
        assert!(answer.contains("\"errors\""), "{variables}: {answer}");
    }
    assert_eq!(operations(&f, "plan").await, plans);
    // Not plain: a fragment, a directive, a variable below the root, an
    // aggregate — always async-graphql's.
    for (document, variables) in [
        (
            "{ pg_customers { ... on pg_customers { name } } }",
            json!({}),
        ),
        (
            "query Q($s: Boolean!) { pg_customers { name @skip(if: $s) } }",
            json!({"s": false}),
        ),
        (
            "query Q($n: Int) { pg_customers { orders(limit: $n) { id } } }",
            json!({"n": 1}),
        ),
        ("{ pg_orders_aggregate { aggregate { count } } }", json!({})),
    ] {
        for _ in 0..2 {
            let answer = f.query_with(document, variables.clone()).await;
            assert!(answer["errors"].is_null(), "{document}: {answer}");
        }
    }
    assert_eq!(operations(&f, "plan").await, plans);
    f.stop().await;
}

/// The audit log's write rows, oldest first, without their ids and times.
async fn write_audit(f: &Fixture) -> Vec<Value> {
    let (status, audit) = f
        .server
        .admin(Method::GET, "/admin/audit?action=write.&limit=1000", None)
        .await;
    assert_eq!(status, 200, "{audit}");
    let mut entries = audit["entries"].as_array().unwrap().clone();
    entries.reverse();
    for entry in &mut entries {
        let entry = entry.as_object_mut().unwrap();
        assert!(entry.remove("id").is_some() && entry.remove("at").is_some());
    }
    entries
}

/// A plain mutation (root fields answering a row of columns:
/// `insert_x_one`, `update_x_by_pk`, `delete_x_by_pk`) sent again is
/// answered from its plan: the same answer, byte for byte, and the same
/// audit rows as async-graphql's executor gives the same document with a
/// comment added; a failing one answers as there and leaves nothing.
#[tokio::test]
async fn plain_mutations_sent_again_answer_from_their_plan_as_async_graphql_does() {
    let f = Fixture::new().await;
    let document = "mutation M($id: Int!, $name: String!) { \
        a: insert_pg_customers_one(object: {id: $id, name: $name, tier: \"new\"}) { __typename id name tier } \
        b: update_pg_customers_by_pk(pk_columns: {id: $id}, _set: {tier: \"gold\"}) { tier } \
        gone: delete_pg_customers_by_pk(id: $id) { id name } }";
    let learned = f
        .request(
            None,
            json!({"query": document, "variables": {"id": 30, "name": "Lea"}}),
        )
        .await;
    assert_eq!(
        learned,
        json!({"data": {
            "a": {"__typename": "pg_customers", "id": 30, "name": "Lea", "tier": "new"},
            "b": {"tier": "gold"},
            "gone": {"id": 30, "name": "Lea"},
        }})
    );
    let cases = [
        json!({"id": 31, "name": "O'Brien; DROP TABLE customers"}),
        // Ann's key: the insert fails, and so the request.
        json!({"id": 1, "name": "dup"}),
        json!({"id": 32, "name": "Max"}),
    ];
    for (i, variables) in cases.iter().enumerate() {
        let before = write_audit(&f).await.len();
        let reference = by_executor(&f, document, variables, i).await;
        let between = write_audit(&f).await.len();
        let planned = by_plan(&f, document, variables).await;
        assert_eq!(planned, reference, "{variables}");
        let audit = write_audit(&f).await;
        // A row per field, but for the fields after a failed one.
        let rows = if planned.contains("\"errors\"") { 1 } else { 3 };
        assert_eq!(between - before, rows, "{audit:?}");
        assert_eq!(audit[before..between], audit[between..], "{variables}");
    }
    let failed: Value = serde_json::from_str(
        &f.text(None, json!({"query": document, "variables": cases[1]}))
            .await,
    )
    .unwrap();
    assert_failed_at(&failed, "a", "constraint_violation");
    assert_eq!(
        f.query("{ pg_customers(order_by: {id: asc}) { id name tier } }")
            .await,
        json!({"data": {"pg_customers": [
            {"id": 1, "name": "Ann", "tier": "gold"},
            {"id": 2, "name": "Bob", "tier": null},
            {"id": 3, "name": "Cid", "tier": "silver"},
        ]}})
    );

    // A row not found answers null, as there.
    let delete = "mutation M($id: Int!) { gone: delete_pg_customers_by_pk(id: $id) { id name } }";
    f.text(None, json!({"query": delete, "variables": {"id": 98}}))
        .await;
    let missing = json!({"id": 99});
    let reference = by_executor(&f, delete, &missing, 0).await;
    assert_eq!(by_plan(&f, delete, &missing).await, reference);
    assert_eq!(reference, r#"{"data":{"gone":null}}"#);

    // A failure at the last field rolls back the fields before it.
    let two = "mutation M($id: Int!) { a: insert_pg_customers_one(object: {id: $id, name: \"Ned\"}) { id } \
               b: insert_pg_customers_one(object: {id: 2, name: \"again\"}) { id } }";
    for _ in 0..2 {
        let ok = f.query_with(two, json!({"id": 40})).await;
        assert_failed_at(&ok, "b", "constraint_violation");
    }
    let plans = operations(&f, "plan").await;
    // It never answered without an error: never planned.
    let body = f.query_with(two, json!({"id": 40})).await;
    assert_failed_at(&body, "b", "constraint_violation");
    assert_eq!(operations(&f, "plan").await, plans);
    assert_eq!(
        f.query("{ pg_customers_by_pk(id: 40) { id } }").await,
        json!({"data": {"pg_customers_by_pk": null}})
    );

    // A value the plan does not take (not an Int) goes to async-graphql,
    // which reports it as ever; nothing is written.
    let plans = operations(&f, "plan").await;
    let answer = f
        .text(
            None,
            json!({"query": document, "variables": {"id": "33", "name": "Zed"}}),
        )
        .await;
    let reference = f
        .text(
            None,
            json!({"query": format!("{document}\n# refused"), "variables": {"id": "33", "name": "Zed"}}),
        )
        .await;
    assert_eq!(answer, reference);
    assert!(answer.contains("\"errors\""), "{answer}");
    assert_eq!(operations(&f, "plan").await, plans);

    // A role whose rule checks the rows it inserts: its writes cannot wait
    // for the COMMIT, so the executor answers such a document every time.
    f.rule(
        "clerk",
        "pg_orders",
        "insert",
        json!({"columns": ["customer_id", "status", "total", "placed_at"],
               "presets": {"owner": "{{$user.id}}"}, "check": {"total": {"$lt": 1000}}}),
    )
    .await;
    f.rule(
        "clerk",
        "pg_orders",
        "select",
        json!({"columns": ["id", "status", "owner"]}),
    )
    .await;
    let checked = json!({"query": "mutation M($t: numeric!) { insert_pg_orders_one(object: \
        {customer_id: 2, status: \"new\", total: $t, placed_at: \"2024-04-01\"}) { status owner } }",
        "variables": {"t": "7"}});
    for _ in 0..3 {
        let body = f.request(Some(("clerk", "bob")), checked.clone()).await;
        assert_eq!(
            body,
            json!({"data": {"insert_pg_orders_one": {"status": "new", "owner": "bob"}}})
        );
    }
    let refused = json!({"query": checked["query"], "variables": {"t": "5000"}});
    let body = f.request(Some(("clerk", "bob")), refused).await;
    assert_failed_at(&body, "insert_pg_orders_one", "permission_denied");
    assert_eq!(operations(&f, "plan").await, plans);
    // Bob's two orders and the three inserted, each once.
    assert_eq!(
        f.query(r#"{ pg_orders_aggregate(where: {owner: {_eq: "bob"}}) { aggregate { count } } }"#)
            .await,
        json!({"data": {"pg_orders_aggregate": {"aggregate": {"count": 5}}}})
    );
    f.stop().await;
}

/// A plan is the role's: the caller's rules and session variables apply
/// to each request it answers, and a rule changed takes effect at once.
#[tokio::test]
async fn plans_read_as_each_caller_under_the_rules_in_force() {
    let f = Fixture::new().await;
    f.rule(
        "clerk",
        "pg_orders",
        "select",
        json!({"filter": {"owner": "{{$user.id}}"}, "columns": ["id", "status", "owner"]}),
    )
    .await;
    let document = json!({"query": "query Q($id: Int!) { pg_orders_by_pk(id: $id) { id owner } \
                                    pg_orders(order_by: {id: asc}) { id } }", "variables": {"id": 3}});
    let ids = |answer: &Value| answer["data"]["pg_orders"].clone();
    let plans = operations(&f, "plan").await;
    let bob = f.request(Some(("clerk", "bob")), document.clone()).await;
    assert_eq!(
        bob["data"]["pg_orders_by_pk"],
        json!({"id": 3, "owner": "bob"}),
        "{bob}"
    );
    assert_eq!(ids(&bob), json!([{"id": 3}, {"id": 5}]));
    // Sent again (a plan now), as bob and as ann.
    let bob_again = f.request(Some(("clerk", "bob")), document.clone()).await;
    assert_eq!(bob_again, bob);
    let ann = f.request(Some(("clerk", "ann")), document.clone()).await;
    assert_eq!(ann["data"]["pg_orders_by_pk"], Value::Null, "{ann}");
    assert_eq!(ids(&ann), json!([{"id": 1}, {"id": 2}]));
    assert_eq!(operations(&f, "plan").await, plans + 2);
    // Another rule: the schema is built again, and with it the plans.
    f.rule(
        "clerk",
        "pg_orders",
        "select",
        json!({"filter": {"status": "open"}, "columns": ["id", "owner"]}),
    )
    .await;
    let open = f.request(Some(("clerk", "bob")), document.clone()).await;
    assert_eq!(
        ids(&open),
        json!([{"id": 1}, {"id": 3}, {"id": 4}]),
        "{open}"
    );
    assert_eq!(
        open["data"]["pg_orders_by_pk"],
        json!({"id": 3, "owner": "bob"})
    );
    let open_again = f.request(Some(("clerk", "bob")), document).await;
    assert_eq!(open_again, open);
    assert_eq!(operations(&f, "plan").await, plans + 3);
    f.stop().await;
}

/// Nested fields cost one statement per relation field and level, however
/// many rows there are (no N+1), in one source and across two.
#[tokio::test]
async fn nested_fields_send_one_statement_per_relation_and_level() {
    let f = Fixture::new().await;
    let (pg, my) = (statements(&f, "pg").await, statements(&f, "my").await);
    let body = f.query(NESTED).await;
    assert_eq!(body["data"]["pg_customers"].as_array().unwrap().len(), 3);
    // customers, orders (latest), line_items, orders_aggregate, orders (open).
    assert_eq!(statements(&f, "pg").await - pg, 5);
    assert_eq!(statements(&f, "my").await - my, 1);
    // Thirty more customers with orders, lines and reviews: the same.
    common::postgres_exec(&format!(
        "INSERT INTO {schema}.customers SELECT g, 'c' || g FROM generate_series(10, 39) g;
         INSERT INTO {schema}.orders (customer_id, status, total, placed_at)
             SELECT 10 + g % 30, 'open', g, '2024-06-01' FROM generate_series(1, 90) g;
         INSERT INTO {schema}.line_items SELECT id, 1, 1 FROM {schema}.orders WHERE id > 5;",
        schema = f.schema
    ))
    .await;
    common::mariadb_exec(&format!(
        "INSERT INTO {database}.reviews (customer_id, stars) SELECT seq, 2 FROM seq_10_to_39",
        database = f.database
    ))
    .await;
    let (pg, my) = (statements(&f, "pg").await, statements(&f, "my").await);
    let body = f.query(&NESTED.replace("limit: 3", "limit: 40")).await;
    let customers = body["data"]["pg_customers"].as_array().unwrap();
    assert_eq!(customers.len(), 33, "{body}");
    let last = &customers[32];
    assert_eq!(last["orders_aggregate"]["aggregate"]["count"], 3, "{body}");
    assert_eq!(last["latest"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(
        last["latest"][0]["line_items"].as_array().unwrap().len(),
        1,
        "{body}"
    );
    assert_eq!(last["reviews"], json!([{"stars": 2}]), "{body}");
    assert_eq!(statements(&f, "pg").await - pg, 5);
    assert_eq!(statements(&f, "my").await - my, 1);
    // An object relationship with only columns under it rides its rows'
    // statement (joined), under each alias; one with more is read apart.
    let pg = statements(&f, "pg").await;
    let body = f
        .query("{ pg_orders(order_by: {id: asc}, limit: 3) { id customers { name } who: customers { id tier } } }")
        .await;
    assert_eq!(
        body,
        json!({"data": {"pg_orders": [
            {"id": 1, "customers": {"name": "Ann"}, "who": {"id": 1, "tier": "gold"}},
            {"id": 2, "customers": {"name": "Ann"}, "who": {"id": 1, "tier": "gold"}},
            {"id": 3, "customers": {"name": "Bob"}, "who": {"id": 2, "tier": null}},
        ]}})
    );
    assert_eq!(statements(&f, "pg").await - pg, 1);
    let pg = statements(&f, "pg").await;
    let body = f
        .query("{ pg_orders_by_pk(id: 4) { id customers { name orders_aggregate { aggregate { count } } } } }")
        .await;
    assert_eq!(
        body,
        json!({"data": {"pg_orders_by_pk": {"id": 4, "customers": {"name": "Cid", "orders_aggregate": {"aggregate": {"count": 1}}}}}})
    );
    assert_eq!(statements(&f, "pg").await - pg, 3);
    // What @skip / @include leave out is not read.
    let (pg, my) = (statements(&f, "pg").await, statements(&f, "my").await);
    let body = f
        .request(
            None,
            json!({
                "query": "query($no: Boolean!) { pg_customers(where: {id: {_eq: 1}}) { name orders @skip(if: true) { id } reviews @include(if: $no) { stars } orders_aggregate { aggregate { count } } } }",
                "variables": {"no": false},
            }),
        )
        .await;
    assert_eq!(
        body,
        json!({"data": {"pg_customers": [{"name": "Ann", "orders_aggregate": {"aggregate": {"count": 2}}}]}})
    );
    assert_eq!(
        statements(&f, "pg").await - pg,
        2,
        "customers and the aggregate"
    );
    assert_eq!(statements(&f, "my").await - my, 0, "no review read");
    // On fragments too, spread or inline, by literal or variable; a
    // fragment kept (or spread twice, once kept) is read.
    let (pg, my) = (statements(&f, "pg").await, statements(&f, "my").await);
    let body = f
        .request(
            None,
            json!({
                "query": "query($no: Boolean!, $yes: Boolean!) { pg_customers(where: {id: {_eq: 1}}) { name ...Bought @skip(if: true) ... @include(if: $no) { reviews { stars } } ... @include(if: $yes) { tier ...Bought @include(if: $no) } } } fragment Bought on pg_customers { orders { id } }",
                "variables": {"no": false, "yes": true},
            }),
        )
        .await;
    assert_eq!(
        body,
        json!({"data": {"pg_customers": [{"name": "Ann", "tier": "gold"}]}})
    );
    assert_eq!(statements(&f, "pg").await - pg, 1, "the customers only");
    assert_eq!(statements(&f, "my").await - my, 0, "no review read");
    let pg = statements(&f, "pg").await;
    let body = f
        .query("{ pg_customers(where: {id: {_eq: 1}}) { name ...Bought @skip(if: true) ...Bought } } fragment Bought on pg_customers { orders(order_by: {id: asc}) { id } }")
        .await;
    assert_eq!(
        body,
        json!({"data": {"pg_customers": [{"name": "Ann", "orders": [{"id": 1}, {"id": 2}]}]}})
    );
    assert_eq!(statements(&f, "pg").await - pg, 2, "customers and orders");
    f.stop().await;
}

#[tokio::test]
async fn group_by_with_having_order_and_pages() {
    let f = Fixture::new().await;
    let body = f
        .query(
            r#"{
              g: pg_orders_group_by(by: [status], order_by: [{aggregate: {sum: {total: desc}}}]) {
                keys { status } aggregate { count sum { total } }
              }
              h: pg_orders_group_by(
                by: [customer_id, status], where: {status: {_neq: "cancelled"}},
                having: {_and: [{count: {_gte: 1}}, {sum: {total: {_gt: "50"}}}]},
                order_by: {keys: {customer_id: asc}}
              ) { keys { customer_id status } aggregate { count max { placed_at } } }
              p: pg_orders_group_by(by: [status], order_by: [{keys: {status: asc}}], limit: 1, offset: 1) {
                keys { s: status note }
              }
              r: my_reviews_group_by(by: [customer_id], having: {avg: {stars: {_gte: 3}}}) {
                keys { customer_id } aggregate { avg { stars } }
              }
            }"#,
        )
        .await;
    assert_eq!(
        body,
        json!({"data": {
            "g": [
                {"keys": {"status": "open"}, "aggregate": {"count": 3, "sum": {"total": "315.75"}}},
                {"keys": {"status": "shipped"}, "aggregate": {"count": 1, "sum": {"total": "99.00"}}},
                {"keys": {"status": "cancelled"}, "aggregate": {"count": 1, "sum": {"total": "42.00"}}},
            ],
            "h": [
                {"keys": {"customer_id": 1, "status": "shipped"}, "aggregate": {"count": 1, "max": {"placed_at": "2024-01-20"}}},
                {"keys": {"customer_id": 3, "status": "open"}, "aggregate": {"count": 1, "max": {"placed_at": "2024-02-14"}}},
            ],
            // A column outside `by` has no value in the keys.
            "p": [{"keys": {"s": "open", "note": null}}],
            "r": [{"keys": {"customer_id": 1}, "aggregate": {"avg": {"stars": 4.0}}}],
        }})
    );
    // Over no rows: a count of 0 and null sums and extremes (custom scalars).
    let body = f
        .query("{ pg_orders_aggregate(where: {id: {_eq: -1}}) { aggregate { count sum { total } max { placed_at } } } }")
        .await;
    assert_eq!(
        body,
        json!({"data": {"pg_orders_aggregate": {"aggregate": {"count": 0, "sum": {"total": null}, "max": {"placed_at": null}}}}})
    );
    // Spread: sample and population deviation and variance, by group too.
    let body = f
        .query(
            r#"{
              all: pg_orders_aggregate { aggregate {
                stddev { total } stddev_samp { total } stddev_pop { total }
                variance { total } var_samp { total } var_pop { total }
              } }
              per: my_reviews_group_by(by: [customer_id], order_by: {keys: {customer_id: asc}}) {
                aggregate { stddev { stars } variance { stars } }
              }
            }"#,
        )
        .await;
    let close = |value: &Value, expected: f64| {
        value
            .as_f64()
            .is_some_and(|v| (v - expected).abs() < 1e-6 * expected.abs().max(1.0))
    };
    let all = &body["data"]["all"]["aggregate"];
    for (function, expected) in [
        ("stddev", 122.452_745_987_993_27),
        ("stddev_samp", 122.452_745_987_993_27),
        ("stddev_pop", 109.525_065_624_267_03),
        ("variance", 14_994.675),
        ("var_samp", 14_994.675),
        ("var_pop", 11_995.74),
    ] {
        assert!(
            close(&all[function]["total"], expected),
            "{function}: {body}"
        );
    }
    let per = &body["data"]["per"];
    assert!(
        close(&per[0]["aggregate"]["stddev"]["stars"], 2f64.sqrt()),
        "{body}"
    );
    assert!(
        close(&per[0]["aggregate"]["variance"]["stars"], 2.0),
        "{body}"
    );
    // One row: no sample deviation (NULL, as in PostgreSQL).
    assert_eq!(
        per[1]["aggregate"]["stddev"]["stars"],
        Value::Null,
        "{body}"
    );
    // `having: {count}` counts rows, also beside a count of columns.
    let body = f
        .query(
            r#"{ pg_orders_group_by(by: [status], having: {count: {_gt: 2}}) {
                keys { status } aggregate { count(columns: [note, owner]) }
            } }"#,
        )
        .await;
    assert_eq!(
        body,
        json!({"data": {"pg_orders_group_by": [
            {"keys": {"status": "open"}, "aggregate": {"count": 2}},
        ]}})
    );
    // Having and order by a deviation or variance (not selected), and
    // customers ordered by the deviation of their orders' totals.
    let body = f
        .query(
            r#"{
              spread: my_reviews_group_by(by: [customer_id], having: {stddev: {stars: {_gt: 1}}}) {
                keys { customer_id }
              }
              by_variance: pg_orders_group_by(by: [customer_id],
                  order_by: [{aggregate: {variance: {total: desc_nulls_last}}}]) {
                keys { customer_id }
              }
              pg_customers(order_by: {orders_aggregate: {stddev: {total: asc_nulls_first}}}) { id }
            }"#,
        )
        .await;
    assert_eq!(
        body,
        json!({"data": {
            "spread": [{"keys": {"customer_id": 1}}],
            "by_variance": [
                {"keys": {"customer_id": 1}},
                {"keys": {"customer_id": 2}},
                {"keys": {"customer_id": 3}},
            ],
            "pg_customers": [{"id": 3}, {"id": 2}, {"id": 1}],
        }})
    );
    // Dates truncated to a month or a quarter (answered as dates), and a
    // truncated column that is not a key.
    let body = f
        .query(
            r#"{
              m: pg_orders_group_by(by: [placed_at], granularity: {placed_at: month},
                                    order_by: {keys: {placed_at: desc}}) {
                keys { placed_at } aggregate { count }
              }
              q: pg_orders_group_by(by: [status, placed_at], granularity: {placed_at: quarter},
                                    where: {status: {_eq: "open"}}) {
                keys { status placed_at } aggregate { sum { total } }
              }
            }"#,
        )
        .await;
    assert_eq!(
        body,
        json!({"data": {
            "m": [
                {"keys": {"placed_at": "2024-03-01"}, "aggregate": {"count": 1}},
                {"keys": {"placed_at": "2024-02-01"}, "aggregate": {"count": 2}},
                {"keys": {"placed_at": "2024-01-01"}, "aggregate": {"count": 2}},
            ],
            "q": [{"keys": {"status": "open", "placed_at": "2024-01-01"}, "aggregate": {"sum": {"total": "315.75"}}}],
        }})
    );
    let body = f
        .query("{ pg_orders_group_by(by: [status], granularity: {placed_at: year}) { keys { status } } }")
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["at"], "granularity.placed_at",
        "{body}"
    );
    // Keys outside `by` cannot order; an empty `by` is refused.
    let body = f
        .query("{ pg_orders_group_by(by: [status], order_by: {keys: {note: asc}}) { keys { status } } }")
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "invalid_input",
        "{body}"
    );
    assert_eq!(
        body["errors"][0]["extensions"]["at"], "order_by[0].keys.note",
        "{body}"
    );
    let body = f
        .query("{ pg_orders_group_by(by: []) { keys { status } } }")
        .await;
    assert_eq!(body["errors"][0]["extensions"]["at"], "by", "{body}");
    // A role groups its own rows only.
    f.rule(
        "clerk",
        "pg_orders",
        "aggregate",
        json!({"filter": {"owner": "{{$user.id}}"}, "columns": ["status", "total"]}),
    )
    .await;
    let body = f
        .request(
            Some(("clerk", "bob")),
            json!({"query": "{ pg_orders_group_by(by: [status], order_by: {keys: {status: asc}}) { keys { status } aggregate { sum { total } } } }"}),
        )
        .await;
    assert_eq!(
        body,
        json!({"data": {"pg_orders_group_by": [
            {"keys": {"status": "cancelled"}, "aggregate": {"sum": {"total": "42.00"}}},
            {"keys": {"status": "open"}, "aggregate": {"sum": {"total": "5.25"}}},
        ]}})
    );
    f.stop().await;
}

/// Rows a mutation chose by `where` (or an upsert by `on_conflict.where`)
/// are read before the request's transaction; one that another transaction
/// changes meanwhile is written only if it still matches. Each case holds
/// a row's lock in a transaction of its own, sends the mutation, lets it
/// wait on that lock, then commits the change.
#[tokio::test]
async fn rows_changed_while_a_mutation_waits_are_written_only_if_they_still_match() {
    let f = Fixture::new().await;
    let schema = &f.schema;
    let other = common::postgres().await;

    // An upsert: red's hits rise past the `where` while it waits.
    other
        .batch_execute(&format!(
            "BEGIN; UPDATE {schema}.tags SET hits = 10 WHERE slug = 'red'"
        ))
        .await
        .unwrap();
    let upsert = f.query(
        r#"mutation { insert_pg_tags(
            objects: [{slug: "red", label: "RED"}, {slug: "blue", label: "BLUE"}],
            on_conflict: {constraint: tags_slug_key, update_columns: [label], where: {hits: {_lt: 3}}}
          ) { affected_rows returning { slug label } } }"#,
    );
    let body = common::while_locked(upsert, common::wait_for_lock_wait_pg(schema), async {
        other.batch_execute("COMMIT").await.unwrap();
    })
    .await;
    assert_eq!(
        body,
        json!({"data": {"insert_pg_tags": {"affected_rows": 0, "returning": []}}})
    );

    // An update by `where` after another field of the same request: order
    // 1 ships while it waits; the open orders left are updated.
    other
        .batch_execute(&format!(
            "BEGIN; UPDATE {schema}.orders SET status = 'shipped' WHERE id = 1"
        ))
        .await
        .unwrap();
    let update = f.query(
        r#"mutation {
          insert_pg_customers_one(object: {id: 40, name: "Dee"}) { id }
          update_pg_orders(where: {status: {_eq: "open"}}, _set: {note: "seen"}) {
            affected_rows returning { id }
          }
        }"#,
    );
    let body = common::while_locked(update, common::wait_for_lock_wait_pg(schema), async {
        other.batch_execute("COMMIT").await.unwrap();
    })
    .await;
    assert_eq!(
        sorted_returning(body),
        json!({"data": {
            "insert_pg_customers_one": {"id": 40},
            "update_pg_orders": {"affected_rows": 2, "returning": [{"id": 3}, {"id": 4}]},
        }})
    );
    assert_eq!(
        f.query(
            "{ pg_orders(order_by: {id: asc}) { id status note } pg_tags(order_by: {id: asc}) { label } }"
        )
        .await,
        json!({"data": {
            "pg_orders": [
                {"id": 1, "status": "shipped", "note": "n1"},
                {"id": 2, "status": "shipped", "note": "n2"},
                {"id": 3, "status": "open", "note": "seen"},
                {"id": 4, "status": "open", "note": "seen"},
                {"id": 5, "status": "cancelled", "note": "n5"},
            ],
            "pg_tags": [{"label": "Red"}, {"label": "Blue"}],
        }})
    );
    f.stop().await;
}

/// A mutation's `where` (and a key under a rule's filter) sees what the
/// request's earlier fields wrote, as in Hasura: the fields run in turn in
/// one transaction, and the rows they inserted or changed are chosen by
/// their values now — on PostgreSQL and MariaDB, as the admin and as a role.
#[tokio::test]
async fn later_fields_see_the_rows_earlier_fields_wrote() {
    let f = Fixture::new().await;
    let body = f
        .query(
            r#"mutation {
              add: insert_pg_customers_one(object: {id: 50, name: "Eve", tier: "new"}) { id }
              ship: update_pg_orders(where: {status: {_eq: "open"}, customer_id: {_eq: 2}},
                                     _set: {status: "shipped"}) { affected_rows }
              promote: update_pg_customers(where: {tier: {_eq: "new"}}, _set: {tier: "bronze"}) {
                affected_rows returning { id tier }
              }
              rename: update_pg_customers(where: {name: {_eq: "Bob"}}, _set: {name: "Rob"}) { affected_rows }
              again: update_pg_customers(where: {name: {_eq: "Bob"}}, _set: {tier: "lost"}) { affected_rows }
              drop: delete_pg_orders(where: {status: {_eq: "shipped"}, customer_id: {_eq: 2}}) {
                affected_rows returning { id }
              }
              gone: delete_pg_customers(where: {tier: {_eq: "bronze"}}) { affected_rows returning { id } }
            }"#,
        )
        .await;
    assert_eq!(
        body,
        json!({"data": {
            "add": {"id": 50},
            "ship": {"affected_rows": 1},
            // Inserted by the first field: the engine alone would not see it.
            "promote": {"affected_rows": 1, "returning": [{"id": 50, "tier": "bronze"}]},
            "rename": {"affected_rows": 1},
            // Bob is Rob now.
            "again": {"affected_rows": 0},
            // Order 3 was open before the request; shipped by `ship`.
            "drop": {"affected_rows": 1, "returning": [{"id": 3}]},
            "gone": {"affected_rows": 1, "returning": [{"id": 50}]},
        }})
    );
    assert_eq!(
        f.query(
            "{ pg_customers(order_by: {id: asc}) { id name tier } pg_orders(where: {customer_id: {_eq: 2}}) { id status } }"
        )
        .await,
        json!({"data": {
            "pg_customers": [
                {"id": 1, "name": "Ann", "tier": "gold"},
                {"id": 2, "name": "Rob", "tier": null},
                {"id": 3, "name": "Cid", "tier": "silver"},
            ],
            "pg_orders": [{"id": 5, "status": "cancelled"}],
        }})
    );

    let body = f
        .query(
            r#"mutation {
              add: insert_my_reviews_one(object: {customer_id: 9, stars: 2, body: "meh"}) { body }
              rate: update_my_reviews(where: {body: {_eq: "meh"}}, _set: {stars: 4}) {
                affected_rows returning { customer_id stars }
              }
            }"#,
        )
        .await;
    assert_eq!(
        body,
        json!({"data": {
            "add": {"body": "meh"},
            "rate": {"affected_rows": 1, "returning": [{"customer_id": 9, "stars": 4}]},
        }})
    );

    // A role whose update rule admits new customers only: the row it just
    // inserted is found by its key under that filter.
    for (action, rule) in [
        ("select", json!({"columns": ["id", "name", "tier"]})),
        ("insert", json!({"columns": ["id", "name", "tier"]})),
        (
            "update",
            json!({"columns": ["name"], "filter": {"tier": "new"}}),
        ),
    ] {
        f.rule("clerk", "pg_customers", action, rule).await;
    }
    let body = f
        .request(
            Some(("clerk", "bob")),
            json!({"query": r#"mutation {
              insert_pg_customers_one(object: {id: 60, name: "Fay", tier: "new"}) { id }
              update_pg_customers_by_pk(pk_columns: {id: 60}, _set: {name: "Fay B"}) { id name }
              old: update_pg_customers_by_pk(pk_columns: {id: 1}, _set: {name: "not Ann"}) { id }
            }"#}),
        )
        .await;
    assert_eq!(
        body,
        json!({"data": {
            "insert_pg_customers_one": {"id": 60},
            "update_pg_customers_by_pk": {"id": 60, "name": "Fay B"},
            "old": null,
        }})
    );
    f.stop().await;
}

/// The second look at the rows a `where` chose reads the locked rows as
/// the transaction sees them, also once the engine has learned the
/// filter's shape and reads the table by a prepared statement: those rows
/// are not the table's (here `ship` changed order 3 in the transaction,
/// and only the locked row says it is shipped now).
#[tokio::test]
async fn the_second_look_reads_the_locked_rows_under_a_learned_filter_shape() {
    let f = Fixture::new().await;
    // The filter's shape is learned from its reads through the engine.
    for status in ["none", "lost", "void"] {
        let body = f
            .query(&format!(
                r#"mutation {{ delete_pg_orders(where: {{status: {{_eq: "{status}"}}, customer_id: {{_eq: 2}}}}) {{ affected_rows }} }}"#
            ))
            .await;
        assert_eq!(
            body,
            json!({"data": {"delete_pg_orders": {"affected_rows": 0}}})
        );
    }
    let body = f
        .query(
            r#"mutation {
              ship: update_pg_orders(where: {status: {_eq: "open"}, customer_id: {_eq: 2}},
                                     _set: {status: "shipped"}) { affected_rows }
              drop: delete_pg_orders(where: {status: {_eq: "shipped"}, customer_id: {_eq: 2}}) {
                affected_rows returning { id }
              }
            }"#,
        )
        .await;
    assert_eq!(
        body,
        json!({"data": {
            "ship": {"affected_rows": 1},
            "drop": {"affected_rows": 1, "returning": [{"id": 3}]},
        }})
    );
    f.stop().await;
}

/// Fields whose write is one statement answering a row of columns wait,
/// and go out together with the request's `COMMIT`: their answers (aliases,
/// `__typename`, a row not found), the rows left and the audit rows are as
/// when each field runs in turn. A later field that reads rows (here by a
/// text key, which goes through the engine) finds theirs; one failing
/// keeps none of them; a request that fails before its end sends nothing
/// of what it held back (the sequence did not move).
#[tokio::test]
async fn held_back_writes_answer_as_if_each_field_ran_in_turn() {
    let schema = common::postgres_schema(
        "CREATE TABLE items (id int PRIMARY KEY, n int NOT NULL CHECK (n > 0));
         CREATE TABLE codes (code text PRIMARY KEY, n int NOT NULL);
         CREATE TABLE tags (id serial PRIMARY KEY, slug text NOT NULL);
         INSERT INTO codes VALUES ('old', 1);",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    server
        .register(json!({"name": "pg", "url": common::postgres_url_with(None, None), "schemas": {"include": [schema]}}))
        .await;
    let graphql = |query: &str| {
        let body = json!({ "query": query });
        let server = &server;
        async move { server.admin(Method::POST, "/graphql", Some(body)).await.1 }
    };
    assert_eq!(
        graphql(
            r#"mutation {
              a: insert_pg_items_one(object: {id: 1, n: 1}) { id n __typename }
              b: delete_pg_items_by_pk(id: 1) { n }
              missing: delete_pg_items_by_pk(id: 99) { id }
              c: insert_pg_items_one(object: {id: 2, n: 5}) { id }
            }"#
        )
        .await,
        json!({"data": {
            "a": {"id": 1, "n": 1, "__typename": "pg_items"},
            "b": {"n": 1},
            "missing": null,
            "c": {"id": 2},
        }})
    );
    assert_eq!(
        graphql(
            r#"mutation {
              add: insert_pg_codes_one(object: {code: "x", n: 1}) { code n }
              bump: update_pg_codes_by_pk(pk_columns: {code: "x"}, _inc: {n: 1}) { code n }
              gone: delete_pg_codes_by_pk(code: "old") { n }
            }"#
        )
        .await,
        json!({"data": {
            "add": {"code": "x", "n": 1},
            "bump": {"code": "x", "n": 2},
            "gone": {"n": 1},
        }})
    );
    let body = graphql(
        r#"mutation {
          a: insert_pg_items_one(object: {id: 3, n: 1}) { id }
          bad: insert_pg_items_one(object: {id: 4, n: 0}) { id }
          after: delete_pg_items_by_pk(id: 2) { id }
        }"#,
    )
    .await;
    assert_failed_at(&body, "bad", "constraint_violation");
    assert_eq!(
        graphql("{ pg_items { id n } pg_codes { code n } }").await,
        json!({"data": {"pg_items": [{"id": 2, "n": 5}], "pg_codes": [{"code": "x", "n": 2}]}})
    );
    // Audit rows: each field's, with the rolled-back `a` and the failed
    // `bad`; `after` never ran.
    let (_, audit) = server.admin(Method::GET, "/admin/audit", None).await;
    let mut rows: Vec<(String, u64, bool)> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"].as_str().unwrap().starts_with("write."))
        .map(|e| {
            let action = e["action"].as_str().unwrap().to_string();
            let status = e["status"].as_u64().unwrap();
            (action, status, e["detail"]["rolled_back"] == true)
        })
        .collect();
    rows.sort();
    let row = |action: &str, status, rolled_back| (action.to_string(), status, rolled_back);
    assert_eq!(
        rows,
        vec![
            row("write.delete", 200, false),
            row("write.delete", 200, false),
            row("write.delete", 200, false),
            row("write.insert", 200, false),
            row("write.insert", 200, false),
            row("write.insert", 200, false),
            row("write.insert", 409, false),
            row("write.insert", 409, true),
            row("write.update", 200, false),
        ],
        "{audit}"
    );
    // A request failing before its end (no column to set) sends nothing
    // of the insert it held back: the key's sequence did not move.
    let body = graphql(
        r#"mutation {
          t: insert_pg_tags_one(object: {slug: "s1"}) { id }
          bad: update_pg_tags_by_pk(pk_columns: {id: 1}, _set: {}) { id }
        }"#,
    )
    .await;
    assert_eq!(body["errors"][0]["path"], json!(["bad"]), "{body}");
    assert_eq!(
        graphql(r#"mutation { t: insert_pg_tags_one(object: {slug: "s2"}) { id slug } }"#).await,
        json!({"data": {"t": {"id": 1, "slug": "s2"}}})
    );
    server.stop().await;
    common::drop_postgres_schema(&schema).await;
}

/// Held-back writes to a source that is down: the request answers no data
/// and one error at its first field, naming the source.
#[tokio::test]
async fn held_back_writes_to_a_source_that_is_down_name_it() {
    let schema = common::postgres_schema("CREATE TABLE t (id int PRIMARY KEY);").await;
    let proxy = common::TcpProxy::start(common::postgres_addr()).await;
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    server
        .register(
            json!({"name": "far", "url": common::postgres_url_with(Some(proxy.addr), None),
                         "schemas": {"include": [schema]},
                         "pool": {"connect_timeout_ms": 1000, "acquire_timeout_ms": 1000}}),
        )
        .await;
    let mutation = json!({"query": "mutation { a: insert_far_t_one(object: {id: 1}) { id } b: delete_far_t_by_pk(id: 1) { id } }"});
    let (_, body) = server
        .admin(Method::POST, "/graphql", Some(mutation.clone()))
        .await;
    assert_eq!(body, json!({"data": {"a": {"id": 1}, "b": {"id": 1}}}));
    proxy.cut().await;
    // Sent again, the mutation's plan answers (it ran without an error).
    let (_, body) = server.admin(Method::POST, "/graphql", Some(mutation)).await;
    let (_, metrics) = server.get_text("/metrics").await;
    assert!(
        metrics.contains("tributary_graphql_operations_total{path=\"plan\"} 1"),
        "{metrics}"
    );
    assert_failed_at(&body, "a", "source_unavailable");
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("far"), "{body}");
    server.stop().await;
    common::drop_postgres_schema(&schema).await;
}

#[tokio::test]
async fn upserts_update_existing_keys_under_the_update_rule() {
    let f = Fixture::new().await;
    let body = f
        .query(
            r#"mutation {
              up: insert_pg_customers(
                objects: [{id: 1, name: "Ann B", tier: "platinum"}, {id: 30, name: "New"}],
                on_conflict: {constraint: pg_customers_pkey, update_columns: [name]}
              ) { affected_rows returning { id name tier } }
              nothing: insert_pg_customers(
                objects: [{id: 2, name: "not Bob"}],
                on_conflict: {constraint: pg_customers_pkey, update_columns: []}
              ) { affected_rows returning { id } }
            }"#,
        )
        .await;
    assert_eq!(
        sorted_returning(body),
        json!({"data": {
            // Ann's tier is not among update_columns: it stays.
            "up": {"affected_rows": 2, "returning": [
                {"id": 1, "name": "Ann B", "tier": "gold"},
                {"id": 30, "name": "New", "tier": null},
            ]},
            "nothing": {"affected_rows": 0, "returning": []},
        }})
    );
    assert_eq!(
        f.query(
            "{ pg_customers(where: {id: {_in: [1, 2, 30]}}, order_by: {id: asc}) { id name } }"
        )
        .await,
        json!({"data": {"pg_customers": [
            {"id": 1, "name": "Ann B"}, {"id": 2, "name": "Bob"}, {"id": 30, "name": "New"},
        ]}})
    );
    // On a unique constraint, updating only the existing rows `where`
    // admits; a NULL in the key conflicts with nothing.
    let body = f
        .query(
            r#"mutation { insert_pg_tags(
                objects: [{slug: "red", label: "RED"}, {slug: "green", label: "Green"},
                          {slug: "blue", label: "BLUE"}, {slug: null, label: "none"}],
                on_conflict: {constraint: tags_slug_key, update_columns: [label], where: {hits: {_lt: 3}}}
              ) { affected_rows returning { id slug label } } }"#,
        )
        .await;
    assert_eq!(
        sorted_returning(body),
        json!({"data": {"insert_pg_tags": {"affected_rows": 3, "returning": [
            {"id": 1, "slug": "red", "label": "RED"},
            {"id": 3, "slug": "green", "label": "Green"},
            {"id": 4, "slug": null, "label": "none"},
        ]}}})
    );
    assert_eq!(
        f.query("{ pg_tags(order_by: {id: asc}) { slug label } }")
            .await,
        json!({"data": {"pg_tags": [
            {"slug": "red", "label": "RED"}, {"slug": "blue", "label": "Blue"},
            {"slug": "green", "label": "Green"}, {"slug": null, "label": "none"},
        ]}})
    );
    // Every object must give the key.
    let body = f
        .query(r#"mutation { insert_pg_customers(objects: [{name: "keyless"}], on_conflict: {constraint: pg_customers_pkey, update_columns: [name]}) { affected_rows } }"#)
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "invalid_input",
        "{body}"
    );
    assert_eq!(
        body["errors"][0]["extensions"]["at"], "objects[0]",
        "{body}"
    );
    // A role updates only the existing rows its update rule admits (gold
    // customers here); the others are left as they are.
    f.rule(
        "clerk",
        "pg_customers",
        "select",
        json!({"columns": ["id", "name"]}),
    )
    .await;
    f.rule(
        "clerk",
        "pg_customers",
        "insert",
        json!({"columns": ["id", "name"]}),
    )
    .await;
    f.rule(
        "clerk",
        "pg_customers",
        "update",
        json!({"columns": ["name"], "filter": {"tier": "gold"}}),
    )
    .await;
    let body = f
        .request(
            Some(("clerk", "bob")),
            json!({"query": r#"mutation { insert_pg_customers(objects: [{id: 1, name: "A2"}, {id: 2, name: "B2"}, {id: 40, name: "D"}], on_conflict: {constraint: pg_customers_pkey, update_columns: [name]}) { affected_rows returning { id name } } }"#}),
        )
        .await;
    assert_eq!(
        sorted_returning(body),
        json!({"data": {"insert_pg_customers": {"affected_rows": 2, "returning": [
            {"id": 1, "name": "A2"}, {"id": 40, "name": "D"},
        ]}}})
    );
    assert_eq!(
        f.query("{ pg_customers_by_pk(id: 2) { name } }").await,
        json!({"data": {"pg_customers_by_pk": {"name": "Bob"}}})
    );
    f.stop().await;
}

/// An upsert sees what the request's earlier fields wrote (the rows are
/// read in its transaction): a row inserted before is updated, one deleted
/// before is inserted again, and `where` is checked on the rows as the
/// transaction has them.
#[tokio::test]
async fn upserts_see_the_rows_earlier_fields_wrote() {
    let f = Fixture::new().await;
    let body = f
        .query(
            r#"mutation {
              made: insert_pg_customers(objects: [{id: 40, name: "New"}, {id: 41, name: "Gone"}]) {
                affected_rows
              }
              again: insert_pg_customers_one(object: {id: 40, name: "Newer", tier: "gold"},
                on_conflict: {constraint: pg_customers_pkey, update_columns: [name]}) { id name tier }
              gone: delete_pg_customers_by_pk(id: 41) { id }
              back: insert_pg_customers_one(object: {id: 41, name: "Back"},
                on_conflict: {constraint: pg_customers_pkey, update_columns: [name]}) { id name }
              hot: update_pg_tags(where: {slug: {_eq: "red"}}, _set: {hits: 9}) { affected_rows }
              red: insert_pg_tags(objects: [{slug: "red", label: "RED"}],
                on_conflict: {constraint: tags_slug_key, update_columns: [label], where: {hits: {_lt: 3}}}
              ) { affected_rows }
            }"#,
        )
        .await;
    assert_eq!(
        body,
        json!({"data": {
            "made": {"affected_rows": 2},
            // The tier is not among update_columns: the row keeps its own.
            "again": {"id": 40, "name": "Newer", "tier": null},
            "gone": {"id": 41},
            "back": {"id": 41, "name": "Back"},
            "hot": {"affected_rows": 1},
            "red": {"affected_rows": 0},
        }})
    );
    assert_eq!(
        f.query(
            r#"{ pg_customers(where: {id: {_in: [40, 41]}}, order_by: {id: asc}) { id name }
                 pg_tags(where: {slug: {_eq: "red"}}) { label hits } }"#
        )
        .await,
        json!({"data": {
            "pg_customers": [{"id": 40, "name": "Newer"}, {"id": 41, "name": "Back"}],
            "pg_tags": [{"label": "Red", "hits": 9}],
        }})
    );
    f.stop().await;
}

/// `order_by` a related object's column (within a source and across
/// sources) and an aggregate of an array relationship's rows (a role's
/// counts are of its rows), `distinct_on`, and `x_aggregate` over the rows
/// `order_by` / `limit` pick, with their `nodes`.
#[tokio::test]
async fn orders_through_relations_distinct_on_and_aggregate_nodes() {
    let f = Fixture::new().await;
    let ids = |body: &Value, field: &str, key: &str| -> Vec<Value> {
        body["data"][field]
            .as_array()
            .unwrap_or_else(|| panic!("{body}"))
            .iter()
            .map(|row| row[key].clone())
            .collect()
    };
    let body = f
        .query("{ pg_orders(order_by: [{customers: {name: desc}}, {id: asc}]) { id } }")
        .await;
    assert_eq!(ids(&body, "pg_orders", "id"), [4, 3, 5, 1, 2], "{body}");
    let body = f
        .query("{ my_reviews(order_by: [{customers: {name: desc}}, {id: desc}]) { id } }")
        .await;
    assert_eq!(ids(&body, "my_reviews", "id"), [3, 2, 1], "{body}");
    for (order, names) in [
        (
            "[{orders_aggregate: {count: desc}}, {id: asc}]",
            ["Ann", "Bob", "Cid"],
        ),
        (
            "{orders_aggregate: {sum: {total: asc}}}",
            ["Bob", "Ann", "Cid"],
        ),
        // Across sources; Bob has no review: a count of 0, a NULL maximum.
        ("{reviews_aggregate: {count: asc}}", ["Bob", "Cid", "Ann"]),
        (
            "{reviews_aggregate: {max: {stars: desc_nulls_last}}}",
            ["Ann", "Cid", "Bob"],
        ),
    ] {
        let body = f
            .query(&format!("{{ pg_customers(order_by: {order}) {{ name }} }}"))
            .await;
        assert_eq!(ids(&body, "pg_customers", "name"), names, "{order}: {body}");
    }
    // distinct_on: the first row of each value in the order.
    let body = f
        .query("{ pg_orders(distinct_on: [customer_id], order_by: [{customer_id: asc}, {total: desc}]) { id } }")
        .await;
    assert_eq!(ids(&body, "pg_orders", "id"), [2, 5, 4], "{body}");
    let body = f
        .query("{ pg_orders(distinct_on: status) { status } }")
        .await;
    assert_eq!(
        ids(&body, "pg_orders", "status"),
        ["cancelled", "open", "shipped"],
        "{body}"
    );
    let body = f
        .query("{ my_reviews(distinct_on: customer_id, order_by: [{customer_id: asc}, {stars: asc}]) { id } }")
        .await;
    assert_eq!(ids(&body, "my_reviews", "id"), [2, 3], "{body}");
    let body = f
        .query("{ pg_orders(distinct_on: status, order_by: {id: asc}) { id } }")
        .await;
    assert_eq!(body["data"], json!({"pg_orders": null}), "{body}");
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "invalid_input",
        "{body}"
    );
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("distinct_on"),
        "{body}"
    );
    // x_aggregate over the two largest orders, with those rows.
    let body = f
        .query("{ pg_orders_aggregate(order_by: {total: desc}, limit: 2) { aggregate { count sum { total } } nodes { id customers { name } } } }")
        .await;
    assert_eq!(
        body,
        json!({"data": {"pg_orders_aggregate": {
            "aggregate": {"count": 2, "sum": {"total": "399.00"}},
            "nodes": [{"id": 4, "customers": {"name": "Cid"}}, {"id": 2, "customers": {"name": "Ann"}}],
        }}})
    );
    let body = f
        .query(r#"{ pg_orders_aggregate(where: {status: {_eq: "open"}}) { nodes { id } } }"#)
        .await;
    assert_eq!(
        body,
        json!({"data": {"pg_orders_aggregate": {"nodes": [{"id": 1}, {"id": 3}, {"id": 4}]}}})
    );
    // Nested, each parent's rows.
    let body = f
        .query("{ pg_customers(order_by: {id: asc}) { orders_aggregate(order_by: {id: asc}) { nodes { id } } } }")
        .await;
    assert_eq!(
        body,
        json!({"data": {"pg_customers": [
            {"orders_aggregate": {"nodes": [{"id": 1}, {"id": 2}]}},
            {"orders_aggregate": {"nodes": [{"id": 3}, {"id": 5}]}},
            {"orders_aggregate": {"nodes": [{"id": 4}]}},
        ]}})
    );
    // A role orders by the related rows it may read, and only by those.
    for action in ["select", "aggregate"] {
        f.rule(
            "clerk",
            "pg_orders",
            action,
            json!({"filter": {"owner": "{{$user.id}}"}, "columns": ["id", "customer_id", "status", "total"]}),
        )
        .await;
    }
    f.rule(
        "clerk",
        "pg_customers",
        "select",
        json!({"columns": ["id", "name"]}),
    )
    .await;
    let body = f
        .request(
            Some(("clerk", "bob")),
            json!({"query": "{ pg_customers(order_by: [{orders_aggregate: {count: desc}}, {id: asc}]) { name } }"}),
        )
        .await;
    assert_eq!(
        ids(&body, "pg_customers", "name"),
        ["Bob", "Ann", "Cid"],
        "{body}"
    );
    let body = f
        .request(
            Some(("clerk", "bob")),
            json!({"query": "{ pg_customers(order_by: {orders_aggregate: {max: {note: asc}}}) { name } }"}),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "validation_failed",
        "{body}"
    );
    f.stop().await;
}

/// Golden cases: each folder of `tests/graphql_golden` holds a request
/// (`query.graphql`; `request.json` may add `variables` and
/// `operationName`) and the whole response expected (`response.json`).
/// They run in name order against one fixture (a mutation's case may be
/// followed by one reading what it left). `TRIBUTARY_BLESS=1` writes the
/// responses instead: review their diff before committing.
#[tokio::test]
async fn golden_requests_answer_their_recorded_responses() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/graphql_golden");
    let mut cases: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_dir())
        .collect();
    cases.sort();
    assert!(cases.len() >= 10, "{} golden cases", cases.len());
    let bless = std::env::var_os("TRIBUTARY_BLESS").is_some();
    let f = Fixture::new().await;
    let mut failures = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().to_string();
        let query = std::fs::read_to_string(case.join("query.graphql")).unwrap();
        let mut body = match std::fs::read_to_string(case.join("request.json")) {
            Ok(text) => serde_json::from_str::<Value>(&text).unwrap(),
            Err(_) => json!({}),
        };
        body["query"] = Value::String(query);
        let answer = f.request(None, body).await;
        let expected_path = case.join("response.json");
        if bless {
            let text = serde_json::to_string_pretty(&answer).unwrap();
            std::fs::write(&expected_path, text + "\n").unwrap();
            continue;
        }
        let expected: Value = serde_json::from_str(
            &std::fs::read_to_string(&expected_path)
                .unwrap_or_else(|e| panic!("{name}: {e} (TRIBUTARY_BLESS=1 writes it)")),
        )
        .unwrap();
        if answer != expected {
            failures.push(format!(
                "{name}:\n  expected {expected}\n  answered {answer}"
            ));
        }
    }
    f.stop().await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `_cast: {String: …}` compares a JSON column's text (as Hasura's), with
/// our string semantics on both sources (`_like` case-sensitive on MariaDB
/// too); only `String` is a cast there is.
#[tokio::test]
async fn json_columns_compare_as_text_under_cast() {
    let f = Fixture::new().await;
    let body = f
        .query(
            r#"{
              ilike: pg_orders(where: {meta: {_cast: {String: {_ilike: "%RUSH%"}}}}) { id }
              eq: pg_orders(where: {meta: {_cast: {String: {_eq: "{\"rush\": true}"}}}}) { id }
              null: pg_orders(where: {meta: {_cast: {String: {_is_null: false}}}, id: {_lt: 3}}) { id }
              like: my_reviews(where: {tags: {_cast: {String: {_like: "%\"x\"%"}}}}) { id }
              cased: my_reviews(where: {tags: {_cast: {String: {_like: "%\"A\"%"}}}}) { id }
              both: my_reviews(where: {tags: {_cast: {String: {_ilike: "%A%", _nlike: "%x%"}}}}) { id }
            }"#,
        )
        .await;
    assert_eq!(
        body,
        json!({"data": {
            "ilike": [{"id": 1}], "eq": [{"id": 1}], "null": [{"id": 1}],
            "like": [{"id": 2}], "cased": [], "both": [{"id": 1}],
        }})
    );
    // MariaDB's JSON is text: the comparisons run there, byte-exact, so
    // only the matching rows leave it.
    for (pattern, expected) in [
        (r#"%\"x\"%"#, json!([{"id": 2}])),
        (r#"%\"A\"%"#, json!([])),
    ] {
        let read = source_counter(&f, "rows", "my").await;
        let body = f
            .query(&format!(
                r#"{{ my_reviews(where: {{tags: {{_cast: {{String: {{_like: "{pattern}"}}}}}}}}) {{ id }} }}"#
            ))
            .await;
        assert_eq!(body, json!({"data": {"my_reviews": expected}}), "{pattern}");
        let n = expected.as_array().map_or(0, Vec::len) as u64;
        assert_eq!(
            source_counter(&f, "rows", "my").await - read,
            n,
            "{pattern}"
        );
    }
    // Grouped by the text too, on both sources.
    let body = f
        .query(
            "{ my: my_reviews_group_by(by: [tags], order_by: [{keys: {tags: asc}}]) { keys { tags } aggregate { count } } \
               pg: pg_orders_group_by(by: [meta], order_by: [{keys: {meta: desc}}]) { keys { meta } aggregate { count } } }",
        )
        .await;
    assert_eq!(
        body,
        json!({"data": {
            "my": [
                {"keys": {"tags": ["a", "b"]}, "aggregate": {"count": 1}},
                {"keys": {"tags": {"x": {"y": 1}}}, "aggregate": {"count": 1}},
                {"keys": {"tags": null}, "aggregate": {"count": 1}},
            ],
            "pg": [
                {"keys": {"meta": null}, "aggregate": {"count": 4}},
                {"keys": {"meta": {"rush": true}}, "aggregate": {"count": 1}},
            ],
        }})
    );
    let body = f
        .query(r#"{ pg_orders(where: {meta: {_cast: {Int: {_eq: 1}}}}) { id } }"#)
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "validation_failed",
        "{body}"
    );
    f.stop().await;
}

/// jsonb's operators on JSON columns of both sources, with jsonb's meaning.
#[tokio::test]
async fn json_columns_filter_by_containment_and_keys() {
    let f = Fixture::new().await;
    let body = f
        .query(
            r#"{
              rush: pg_orders(where: {meta: {_contains: {rush: true}}}) { id }
              keyed: pg_orders(where: {meta: {_has_key: "rush"}}) { id }
              a: my_reviews(where: {tags: {_contains: ["a"]}}) { id }
              deep: my_reviews(where: {tags: {_contains: {x: {y: 1.0}}}}) { id }
              any: my_reviews(where: {tags: {_has_keys_any: ["x", "zz"]}}) { id }
              all: my_reviews(where: {tags: {_has_keys_all: ["a", "b"]}}) { id }
              within: my_reviews(where: {tags: {_contained_in: ["a", "b", "c"]}}) { id }
              not_a: my_reviews(where: {_not: {tags: {_has_key: "a"}}}) { id }
            }"#,
        )
        .await;
    assert_eq!(
        body,
        json!({"data": {
            "rush": [{"id": 1}], "keyed": [{"id": 1}], "a": [{"id": 1}], "deep": [{"id": 2}],
            "any": [{"id": 2}], "all": [{"id": 1}], "within": [{"id": 1}],
            // A NULL document is unknown: neither a match nor a `_not` one.
            "not_a": [{"id": 2}],
        }})
    );
    let body = f
        .query(r#"{ pg_orders(where: {status: {_has_key: "x"}}) { id } }"#)
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "validation_failed",
        "{body}"
    );
    f.stop().await;
}

/// Hasura's in-place edits of jsonb documents (`_append _prepend
/// _delete_key _delete_elem _delete_at_path`) on `update_x`,
/// `update_x_by_pk` and `update_x_many`: made by PostgreSQL's operators in
/// the statement, operands bound (an injection attempt is stored or
/// removed as text), a column changed once, only JSON documents the caller
/// may update (not text, not a role's unlisted column).
#[tokio::test]
async fn jsonb_documents_are_edited_in_place() {
    let f = Fixture::new().await;
    let evil = "'; DROP TABLE orders; --";
    let body = f
        .query_with(
            r#"mutation($evil: String!, $doc: jsonb!, $tail: jsonb!) {
              a: update_pg_orders_by_pk(pk_columns: {id: 1}, _append: {meta: {late: false, nested: {b: 1, c: [1, 2]}}}) { meta }
              b: update_pg_orders_by_pk(pk_columns: {id: 2}, _set: {note: "arr"}, _prepend: {meta: [0]}) { meta }
              c: update_pg_orders(where: {id: {_in: [3, 4]}}, _set: {meta: [1, 2, 3]}) { affected_rows }
              d: update_pg_orders(where: {id: {_in: [3, 4]}}, _prepend: {meta: $doc}, _delete_elem: {}) { returning { id meta } }
              e: update_pg_orders_many(updates: [
                {where: {id: {_eq: 3}}, _delete_elem: {meta: -1}},
                {where: {id: {_eq: 4}}, _delete_key: {meta: "x"}},
                {where: {id: {_eq: 1}}, _delete_at_path: {meta: ["nested", "c", "0"]}},
              ]) { returning { id meta } }
              f: update_pg_orders_by_pk(pk_columns: {id: 1}, _delete_key: {meta: "late"}) { meta }
              g: update_pg_orders_by_pk(pk_columns: {id: 5}, _set: {meta: {k: 1}}) { id }
              h: update_pg_orders_by_pk(pk_columns: {id: 5}, _append: {meta: $tail}) { meta }
              i: update_pg_orders_by_pk(pk_columns: {id: 5}, _delete_key: {meta: $evil}, _delete_at_path: {}) { meta }
            }"#,
            json!({"evil": evil, "doc": {"x": 1}, "tail": {"x": evil}}),
        )
        .await;
    assert_eq!(
        sorted_returning(body),
        json!({"data": {
            "a": {"meta": {"rush": true, "late": false, "nested": {"b": 1, "c": [1, 2]}}},
            // NULL stays NULL (jsonb's `||`).
            "b": {"meta": null},
            "c": {"affected_rows": 2},
            // An object prepended to an array becomes its first item.
            "d": {"returning": [{"id": 3, "meta": [{"x": 1}, 1, 2, 3]}, {"id": 4, "meta": [{"x": 1}, 1, 2, 3]}]},
            "e": [
                {"returning": [{"id": 3, "meta": [{"x": 1}, 1, 2]}]},
                // An array's string items equal to the key go; objects stay.
                {"returning": [{"id": 4, "meta": [{"x": 1}, 1, 2, 3]}]},
                {"returning": [{"id": 1, "meta": {"rush": true, "late": false, "nested": {"b": 1, "c": [2]}}}]},
            ],
            "f": {"meta": {"rush": true, "nested": {"b": 1, "c": [2]}}},
            "g": {"id": 5},
            "h": {"meta": {"k": 1, "x": evil}},
            // The key named by the text is removed; none is named `x`.
            "i": {"meta": {"k": 1, "x": evil}},
        }})
    );
    let body = f
        .query(
            r#"mutation { update_pg_orders_by_pk(pk_columns: {id: 5}, _delete_key: {meta: "x"}, _append: {}) { meta } }"#,
        )
        .await;
    assert_eq!(
        body,
        json!({"data": {"update_pg_orders_by_pk": {"meta": {"k": 1}}}})
    );
    let count = f
        .query("{ pg_orders_aggregate { aggregate { count } } }")
        .await;
    assert_eq!(
        count,
        json!({"data": {"pg_orders_aggregate": {"aggregate": {"count": 5}}}})
    );
    // Sent again, the document is answered from its plan: the same edit.
    let again = r#"mutation($id: Int!) { update_pg_orders_by_pk(pk_columns: {id: $id}, _append: {meta: [9]}) { meta } }"#;
    let plans = operations(&f, "plan").await;
    for expected in [json!([{"x": 1}, 1, 2, 9]), json!([{"x": 1}, 1, 2, 9, 9])] {
        let body = f.query_with(again, json!({"id": 3})).await;
        assert_eq!(
            body,
            json!({"data": {"update_pg_orders_by_pk": {"meta": expected}}})
        );
    }
    assert_eq!(operations(&f, "plan").await, plans + 1);
    // One change per column: refused at its place, nothing written.
    let body = f
        .query(
            r#"mutation {
              ok: update_pg_orders_by_pk(pk_columns: {id: 5}, _set: {note: "changed"}) { id }
              twice: update_pg_orders_by_pk(pk_columns: {id: 5}, _set: {meta: {}}, _append: {meta: {y: 1}}) { id }
            }"#,
        )
        .await;
    assert_eq!(body["data"], Value::Null, "{body}");
    assert_eq!(body["errors"][0]["path"], json!(["twice"]), "{body}");
    assert_eq!(
        body["errors"][0]["extensions"],
        json!({"code": "invalid_input", "at": "_append.meta"}),
        "{body}"
    );
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("`meta` is changed twice"),
        "{body}"
    );
    let note = f.query("{ pg_orders_by_pk(id: 5) { note meta } }").await;
    assert_eq!(
        note,
        json!({"data": {"pg_orders_by_pk": {"note": "n5", "meta": {"k": 1}}}})
    );
    // Only JSON documents: not text, not arrays (no such arguments).
    for query in [
        r#"mutation { update_pg_orders(where: {}, _append: {note: "x"}) { affected_rows } }"#,
        r#"mutation { update_pg_kinds(where: {}, _append: {tags: ["c"]}) { affected_rows } }"#,
        r#"mutation { update_pg_orders(where: {}, _delete_elem: {meta: "first"}) { affected_rows } }"#,
    ] {
        let body = f.query(query).await;
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "validation_failed",
            "{query}: {body}"
        );
    }
    assert_eq!(
        input_fields(&f, None, "pg_orders_delete_at_path_input").await,
        ["meta"]
    );
    // A role updating `status` only has no edits of `meta`.
    f.rule(
        "clerk",
        "pg_orders",
        "select",
        json!({"columns": ["id", "status", "meta"]}),
    )
    .await;
    f.rule(
        "clerk",
        "pg_orders",
        "update",
        json!({"columns": ["status"]}),
    )
    .await;
    let body = f
        .request(
            Some(("clerk", "bob")),
            json!({"query": "mutation { update_pg_orders(where: {}, _append: {meta: {}}) { affected_rows } }"}),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "validation_failed",
        "{body}"
    );
    f.stop().await;
}

/// MariaDB's JSON documents take the same edits, made by the server as
/// jsonb's operators make them (MariaDB's JSON functions merge and remove
/// otherwise): the rows are locked, their documents read, edited and
/// written back in the request's transaction. Concurrent edits of other
/// keys of one document all land; an edit PostgreSQL would refuse is a
/// 400 at its place and nothing of the request is written.
#[tokio::test]
async fn mariadb_json_documents_are_edited_as_jsonb() {
    let f = Fixture::new().await;
    let evil = "'; DROP TABLE reviews; --";
    let body = f
        .query_with(
            r#"mutation($evil: String!) {
              a: update_my_reviews_by_pk(pk_columns: {id: 1}, _append: {tags: ["c", $evil]}) { tags }
              b: update_my_reviews_by_pk(pk_columns: {id: 2}, _prepend: {tags: {x: 0, w: 2}}, _set: {stars: 4}) { tags stars }
              c: update_my_reviews(where: {id: {_in: [1, 2, 3]}}, _delete_key: {tags: $evil}) { affected_rows returning { id tags } }
              d: update_my_reviews_by_pk(pk_columns: {id: 2}, _delete_at_path: {tags: ["x", "y"]}) { tags }
              e: update_my_reviews_many(updates: [
                {where: {id: {_eq: 1}}, _delete_elem: {tags: -1}},
                {where: {id: {_eq: 2}}, _append: {tags: {z: {k: [1.50]}}}},
              ]) { returning { id tags } }
            }"#,
            json!({"evil": evil}),
        )
        .await;
    assert_eq!(
        sorted_returning(body),
        json!({"data": {
            "a": {"tags": ["a", "b", "c", evil]},
            // The document's keys win over the prepended object's.
            "b": {"tags": {"w": 2, "x": {"y": 1}}, "stars": 4},
            // A NULL document stays NULL; the row is still updated.
            "c": {"affected_rows": 3, "returning": [
                {"id": 1, "tags": ["a", "b", "c"]},
                {"id": 2, "tags": {"w": 2, "x": {"y": 1}}},
                {"id": 3, "tags": null},
            ]},
            "d": {"tags": {"w": 2, "x": {}}},
            "e": [
                {"returning": [{"id": 1, "tags": ["a", "b"]}]},
                {"returning": [{"id": 2, "tags": {"w": 2, "x": {}, "z": {"k": [1.5]}}}]},
            ],
        }})
    );
    // Refused as PostgreSQL refuses it: nothing of the request written.
    let body = f
        .query(
            r#"mutation {
              ok: update_my_reviews_by_pk(pk_columns: {id: 1}, _append: {tags: ["never"]}) { id }
              bad: update_my_reviews_by_pk(pk_columns: {id: 2}, _delete_elem: {tags: 0}) { id }
            }"#,
        )
        .await;
    assert_eq!(body["data"], Value::Null, "{body}");
    assert_eq!(body["errors"][0]["path"], json!(["bad"]), "{body}");
    assert_eq!(
        body["errors"][0]["extensions"],
        json!({"code": "invalid_input", "at": "_delete_elem.tags"}),
        "{body}"
    );
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("cannot delete from object using integer index"),
        "{body}"
    );
    let stored = f
        .query("{ my_reviews(order_by: {id: asc}) { id tags } }")
        .await;
    assert_eq!(
        stored["data"]["my_reviews"][0],
        json!({"id": 1, "tags": ["a", "b"]})
    );
    // Concurrent edits of one document lose none of each other's keys.
    f.query(
        r#"mutation { update_my_reviews_by_pk(pk_columns: {id: 3}, _set: {tags: {}}) { id } }"#,
    )
    .await;
    let edits = (0..8).map(|i| {
        f.query_with(
            r#"mutation($doc: json!) { update_my_reviews_by_pk(pk_columns: {id: 3}, _append: {tags: $doc}) { id } }"#,
            json!({"doc": {format!("k{i}"): i}}),
        )
    });
    for body in futures::future::join_all(edits).await {
        assert_eq!(body["data"]["update_my_reviews_by_pk"]["id"], 3, "{body}");
    }
    let body = f.query("{ my_reviews_by_pk(id: 3) { tags } }").await;
    let expected: serde_json::Map<String, Value> =
        (0..8).map(|i| (format!("k{i}"), json!(i))).collect();
    assert_eq!(
        body["data"]["my_reviews_by_pk"]["tags"],
        Value::Object(expected)
    );
    // An update that changes what its own filter tests: its rows are read
    // back by their keys, not by the filter they no longer pass.
    let body = f
        .query(
            r#"mutation { update_my_reviews(where: {stars: {_eq: 1}}, _set: {stars: 2}, _append: {tags: {done: true}}) { affected_rows returning { id stars } } }"#,
        )
        .await;
    assert_eq!(
        body["data"]["update_my_reviews"],
        json!({"affected_rows": 1, "returning": [{"id": 3, "stars": 2}]}),
        "{body}"
    );
    assert_eq!(
        input_fields(&f, None, "my_reviews_append_input").await,
        ["tags"]
    );
    f.stop().await;
}

/// SQLite's JSON documents are edited by the server as well (in the
/// transaction SQLite's write lock makes), their untouched text kept as
/// stored; PostgreSQL's refusal of a path step into an array that is not
/// a number is the answer's.
#[tokio::test]
async fn sqlite_json_documents_are_edited_as_jsonb() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::sqlite_file(
        dir.path(),
        "docs.db",
        r#"CREATE TABLE docs (id INTEGER PRIMARY KEY, body JSON);
           INSERT INTO docs VALUES (1, '{"price": 12.50, "tags": ["a", "b"]}'), (2, NULL);"#,
    );
    let server = TestServer::start(&dir.path().join("data")).await;
    server
        .register(json!({"name": "lite", "url": format!("sqlite://{}", db.display())}))
        .await;
    let graphql = |query: &'static str| {
        let server = &server;
        async move {
            let (status, body) = server
                .admin(Method::POST, "/graphql", Some(json!({"query": query})))
                .await;
            assert_eq!(status, 200, "{body}");
            body
        }
    };
    let body = graphql(
        r#"mutation {
          a: update_lite_docs_by_pk(pk_columns: {id: 1}, _delete_at_path: {body: ["tags", "0"]}) { body }
          b: update_lite_docs(where: {}, _append: {body: {n: 1}}) { affected_rows }
        }"#,
    )
    .await;
    assert_eq!(
        body,
        json!({"data": {"a": {"body": {"price": 12.5, "tags": ["b"]}}, "b": {"affected_rows": 2}}})
    );
    let stored: Vec<Option<String>> = rusqlite::Connection::open(&db)
        .unwrap()
        .prepare("SELECT body FROM docs ORDER BY id")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        stored,
        [
            Some(r#"{"price":12.50,"tags":["b"],"n":1}"#.to_string()),
            None
        ]
    );
    let body = graphql(
        r#"mutation { update_lite_docs_by_pk(pk_columns: {id: 1}, _delete_at_path: {body: ["tags", "x"]}) { id } }"#,
    )
    .await;
    assert_eq!(
        body["errors"][0]["message"],
        "`body` cannot be edited: path element at position 2 is not an integer: \"x\"",
        "{body}"
    );
    assert_eq!(
        body["errors"][0]["extensions"]["at"],
        "_delete_at_path.body"
    );
    // A stored document that is not JSON (SQLite does not check) is named,
    // and a bulk edit meeting it writes none of its rows.
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute("INSERT INTO docs VALUES (3, 'not json')", [])
        .unwrap();
    let body = graphql(
        r#"mutation { update_lite_docs(where: {}, _append: {body: {m: 2}}) { affected_rows } }"#,
    )
    .await;
    assert_eq!(body["data"], Value::Null, "{body}");
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.starts_with("`body` cannot be edited: the stored document is not JSON"),
        "{body}"
    );
    let body = graphql("{ lite_docs_by_pk(id: 1) { body } }").await;
    assert_eq!(
        body["data"]["lite_docs_by_pk"]["body"]["m"],
        Value::Null,
        "{body}"
    );
    server.stop().await;
}

/// A nested array relationship's `limit` / `offset` hold per parent and
/// are applied in the plan (a window per key): a page of each parent's
/// rows is read, not all of them, so `max_rows` bounds only what is
/// answered.
#[tokio::test]
async fn nested_pages_are_cut_per_parent_in_the_plan() {
    let f = Fixture::with(FileConfig::parse("max_rows = 4\n").unwrap()).await;
    let body = f
        .query("{ pg_customers(order_by: {id: asc}) { name orders(order_by: {id: desc}, limit: 1, offset: 1) { id } } }")
        .await;
    assert_eq!(
        body,
        json!({"data": {"pg_customers": [
            {"name": "Ann", "orders": [{"id": 1}]},
            {"name": "Bob", "orders": [{"id": 3}]},
            {"name": "Cid", "orders": []},
        ]}})
    );
    // Across sources, ordered by a text column.
    let body = f
        .query("{ pg_customers(order_by: {id: asc}) { reviews(order_by: {body: asc}, limit: 1) { body } } }")
        .await;
    assert_eq!(
        body,
        json!({"data": {"pg_customers": [
            {"reviews": [{"body": "great"}]}, {"reviews": []}, {"reviews": [{"body": "bad"}]},
        ]}})
    );
    // Without a limit every related row is read: more than max_rows is refused.
    let body = f.query("{ pg_customers { orders { id } } }").await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("max_rows"),
        "{body}"
    );
    f.stop().await;
}

/// `x_by_pk` with one array relationship keyed by its key (a customer with
/// its latest orders) reads the related rows first with the row joined to
/// them: one statement, where it was the row's then its related rows'.
/// The answers are those of the same selection through the list field: with
/// related rows, without any (then the row is read alone), for a key that
/// is not there, with relations under the related rows, and for a role that
/// may see the related rows but not the row.
#[tokio::test]
async fn a_row_by_key_with_its_related_rows_is_one_statement() {
    let f = Fixture::new().await;
    f.rule(
        "viewer",
        "pg_customers",
        "select",
        json!({"filter": {"tier": {"$exists": true}}}),
    )
    .await;
    f.rule("viewer", "pg_orders", "select", json!({})).await;
    f.rule("viewer", "pg_line_items", "select", json!({})).await;
    let plain = r#"id name orders(order_by: {id: desc}, limit: 1, where: {status: {_neq: "cancelled"}}) { id status }"#;
    let nested = "name orders(order_by: {id: asc}, offset: 1) { id line_items(order_by: {line: asc}) { line qty } }";
    for (role, id, selection, sent) in [
        (None, 1, plain, 1),
        (None, 2, plain, 1),
        // No orders: then the customer alone.
        (
            None,
            3,
            "id orders(where: {status: {_eq: \"shipped\"}}) { id }",
            2,
        ),
        (None, 99, plain, 2),
        (None, 1, nested, 2),
        // Across sources: MariaDB's reviews, then the customer from PostgreSQL.
        (None, 1, "name reviews(order_by: {id: desc}) { stars }", 1),
        // The orders select their customer (with more under it): read as before.
        (
            None,
            1,
            "name orders(order_by: {id: asc}) { id customers { name orders_aggregate { aggregate { count } } } }",
            4,
        ),
        (Some(("viewer", "u")), 1, plain, 1),
        // Bob's orders are visible, Bob is not.
        (Some(("viewer", "u")), 2, plain, 1),
    ] {
        let before = statements(&f, "pg").await;
        let by_key = f
            .request(
                role,
                json!({"query": format!("{{ pg_customers_by_pk(id: {id}) {{ {selection} }} }}")}),
            )
            .await;
        let used = statements(&f, "pg").await - before;
        let listed = f
            .request(
                role,
                json!({"query": format!("{{ pg_customers(where: {{id: {{_eq: {id}}}}}) {{ {selection} }} }}")}),
            )
            .await;
        let expected = listed["data"]["pg_customers"]
            .get(0)
            .cloned()
            .unwrap_or(Value::Null);
        assert_eq!(
            by_key,
            json!({"data": {"pg_customers_by_pk": expected}}),
            "{role:?} {id} {selection}"
        );
        assert_eq!(used, sent, "{role:?} {id} {selection}: statements");
    }
    // What the cases answered, so that the comparison above compared rows.
    let body = f
        .query(&format!("{{ pg_customers_by_pk(id: 1) {{ {plain} }} }}"))
        .await;
    assert_eq!(
        body,
        json!({"data": {"pg_customers_by_pk": {"id": 1, "name": "Ann", "orders": [{"id": 2, "status": "shipped"}]}}})
    );
    let body = f
        .request(
            Some(("viewer", "u")),
            json!({"query": "{ pg_customers_by_pk(id: 2) { id orders { id } } }"}),
        )
        .await;
    assert_eq!(body, json!({"data": {"pg_customers_by_pk": null}}));
    f.stop().await;
}

/// A nested page of MariaDB's rows is cut per parent inside MariaDB
/// (`row_number()` pushed down): only the page's rows leave it. Ordered
/// or partitioned by text, the window compares the text's bytes there, as
/// here (MariaDB's collation would order `again` before `Great` and put
/// `great` and `Great` in one partition).
#[tokio::test]
async fn nested_pages_of_mariadb_rows_are_cut_in_mariadb() {
    let f = Fixture::new().await;
    more_rows_per_parent(&f).await;
    let read = source_counter(&f, "rows", "my").await;
    let body = f
        .query(
            "{ pg_customers(order_by: {id: asc}) { name \
               reviews(order_by: [{stars: desc}, {id: desc}], limit: 1, offset: 1) { id stars } } }",
        )
        .await;
    assert_eq!(
        body,
        json!({"data": {"pg_customers": [
            {"name": "Ann", "reviews": [{"id": 1, "stars": 5}]},
            {"name": "Bob", "reviews": []},
            {"name": "Cid", "reviews": [{"id": 3, "stars": 1}]},
        ]}})
    );
    assert_eq!(
        source_counter(&f, "rows", "my").await - read,
        2,
        "only each parent's page leaves MariaDB"
    );
    // By text: in code point order, still cut in MariaDB.
    common::mariadb_exec(&format!(
        "INSERT INTO {database}.reviews (customer_id, stars, body) VALUES (1, 2, 'Great')",
        database = f.database
    ))
    .await;
    let read = source_counter(&f, "rows", "my").await;
    let body = f
        .query(
            "{ pg_customers(order_by: {id: asc}) { name \
               reviews(order_by: [{body: asc}, {id: asc}], limit: 2) { body } } }",
        )
        .await;
    assert_eq!(
        body,
        json!({"data": {"pg_customers": [
            {"name": "Ann", "reviews": [{"body": "Great"}, {"body": "again"}]},
            {"name": "Bob", "reviews": []},
            {"name": "Cid", "reviews": [{"body": "bad"}, {"body": "worse"}]},
        ]}})
    );
    assert_eq!(source_counter(&f, "rows", "my").await - read, 4);
    let body = f
        .query(
            "{ my_reviews(distinct_on: body, order_by: [{body: asc}, {id: desc}], \
               where: {customer_id: {_eq: 1}}) { body } }",
        )
        .await;
    assert_eq!(
        body,
        json!({"data": {"my_reviews": [
            {"body": "Great"}, {"body": "again"}, {"body": "great"}, {"body": "ok"}
        ]}})
    );
    f.stop().await;
}

/// More orders and reviews per customer, so that each customer has several
/// rows of one status and of one number of stars: orders 6 and 7 (Ann's
/// open and shipped), 8 (Bob's open); reviews 4 (Ann's, 5 stars) and 5
/// (Cid's, 1 star).
async fn more_rows_per_parent(f: &Fixture) {
    common::postgres_exec(&format!(
        "INSERT INTO {schema}.orders (customer_id, status, total, placed_at, owner) VALUES
             (1, 'open', 20.00, '2024-04-01', 'ann'),
             (1, 'shipped', 15.00, '2024-04-02', 'ann'),
             (2, 'open', 7.00, '2024-04-03', 'bob');",
        schema = f.schema
    ))
    .await;
    common::mariadb_exec(&format!(
        "INSERT INTO {database}.reviews (customer_id, stars, body) VALUES (1, 5, 'again'), (3, 1, 'worse')",
        database = f.database
    ))
    .await;
}

/// `distinct_on` on a nested array relationship holds per parent (the
/// first row of each value among each parent's rows, in the field's
/// order), before the parent's page; within PostgreSQL and across sources
/// (MariaDB's rows).
#[tokio::test]
async fn nested_distinct_on_keeps_the_first_row_of_each_value_per_parent() {
    let f = Fixture::new().await;
    more_rows_per_parent(&f).await;
    let body = f
        .query(
            "{ pg_customers(order_by: {id: asc}) {
                 name
                 latest: orders(distinct_on: [status], order_by: [{status: asc}, {placed_at: desc}]) { id status }
                 cheapest: orders(distinct_on: status, order_by: [{status: desc}, {total: asc}], limit: 1, offset: 1) { id }
                 first: orders(distinct_on: status) { id }
                 reviews(distinct_on: stars, order_by: [{stars: desc}, {id: desc}]) { id stars }
               } }",
        )
        .await;
    assert_eq!(
        body,
        json!({"data": {"pg_customers": [
            {"name": "Ann",
             "latest": [{"id": 6, "status": "open"}, {"id": 7, "status": "shipped"}],
             "cheapest": [{"id": 1}],
             "first": [{"id": 1}, {"id": 2}],
             "reviews": [{"id": 4, "stars": 5}, {"id": 2, "stars": 3}]},
            {"name": "Bob",
             "latest": [{"id": 5, "status": "cancelled"}, {"id": 8, "status": "open"}],
             "cheapest": [{"id": 5}],
             "first": [{"id": 5}, {"id": 3}],
             "reviews": []},
            {"name": "Cid",
             "latest": [{"id": 4, "status": "open"}],
             "cheapest": [],
             "first": [{"id": 4}],
             "reviews": [{"id": 5, "stars": 1}]},
        ]}}),
    );
    // One parent: its rows are the read's.
    let body = f
        .query("{ pg_customers_by_pk(id: 1) { orders(distinct_on: status, order_by: [{status: asc}, {total: desc}]) { id } } }")
        .await;
    assert_eq!(
        body,
        json!({"data": {"pg_customers_by_pk": {"orders": [{"id": 6}, {"id": 2}]}}})
    );
    // The order must begin with the distinct columns, as at the root.
    let body = f
        .query("{ pg_customers { name orders(distinct_on: status, order_by: {id: asc}) { id } } }")
        .await;
    assert_eq!(body["data"], json!({"pg_customers": null}), "{body}");
    assert_eq!(
        body["errors"][0]["extensions"],
        json!({"code": "invalid_input", "at": "orders.distinct_on"}),
        "{body}"
    );
    assert_eq!(body["errors"][0]["path"], json!(["pg_customers"]), "{body}");
    let body = f
        .query("{ pg_customers { orders(distinct_on: nope) { id } } }")
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "validation_failed",
        "{body}"
    );
    f.stop().await;
}

/// `nodes` in a nested `<relation>_aggregate`: each parent's rows that the
/// aggregate counts (`where`, `order_by`, `limit`, `offset`, `distinct_on`
/// as for the root `x_aggregate`), with their own relations; a role's rows
/// only.
#[tokio::test]
async fn nested_aggregates_answer_their_nodes_per_parent() {
    let f = Fixture::new().await;
    more_rows_per_parent(&f).await;
    let body = f
        .query(
            r#"{ pg_customers(order_by: {id: asc}) {
                 name
                 top_open: orders_aggregate(where: {status: {_eq: "open"}}, order_by: {total: desc}, limit: 2) {
                   aggregate { count sum { total } }
                   nodes { id total line_items { qty } }
                 }
                 per_status: orders_aggregate(distinct_on: status, order_by: [{status: asc}, {total: desc}]) {
                   aggregate { count sum { total } }
                   nodes { id }
                 }
                 second: orders_aggregate(order_by: {id: asc}, offset: 1, limit: 1) { nodes { id } }
                 reviews_aggregate(order_by: {stars: asc}, limit: 1) { aggregate { max { stars } } nodes { body } }
               } }"#,
        )
        .await;
    assert_eq!(
        body,
        json!({"data": {"pg_customers": [
            {"name": "Ann",
             "top_open": {"aggregate": {"count": 2, "sum": {"total": "30.50"}},
                          "nodes": [{"id": 6, "total": "20.00", "line_items": []},
                                    {"id": 1, "total": "10.50", "line_items": [{"qty": 2}, {"qty": 5}]}]},
             "per_status": {"aggregate": {"count": 2, "sum": {"total": "119.00"}},
                            "nodes": [{"id": 6}, {"id": 2}]},
             "second": {"nodes": [{"id": 2}]},
             "reviews_aggregate": {"aggregate": {"max": {"stars": 3}}, "nodes": [{"body": "ok"}]}},
            {"name": "Bob",
             "top_open": {"aggregate": {"count": 2, "sum": {"total": "12.25"}},
                          "nodes": [{"id": 8, "total": "7.00", "line_items": []},
                                    {"id": 3, "total": "5.25", "line_items": []}]},
             "per_status": {"aggregate": {"count": 2, "sum": {"total": "49.00"}},
                            "nodes": [{"id": 5}, {"id": 8}]},
             "second": {"nodes": [{"id": 5}]},
             "reviews_aggregate": {"aggregate": {"max": {"stars": null}}, "nodes": []}},
            {"name": "Cid",
             "top_open": {"aggregate": {"count": 1, "sum": {"total": "300.00"}},
                          "nodes": [{"id": 4, "total": "300.00", "line_items": [{"qty": 7}]}]},
             "per_status": {"aggregate": {"count": 1, "sum": {"total": "300.00"}},
                            "nodes": [{"id": 4}]},
             "second": {"nodes": []},
             // Two reviews of 1 star: the key breaks the tie, for the
             // aggregate and its nodes alike.
             "reviews_aggregate": {"aggregate": {"max": {"stars": 1}}, "nodes": [{"body": "bad"}]}},
        ]}}),
    );
    // One parent (the read's own order and limit), and a parent without rows.
    let body = f
        .query("{ pg_customers_by_pk(id: 1) { orders_aggregate(order_by: {total: desc}, limit: 1) { aggregate { sum { total } } nodes { id } } } }")
        .await;
    assert_eq!(
        body,
        json!({"data": {"pg_customers_by_pk": {"orders_aggregate": {
            "aggregate": {"sum": {"total": "99.00"}}, "nodes": [{"id": 2}],
        }}}})
    );
    let body = f
        .query("{ pg_orders_by_pk(id: 3) { line_items_aggregate { aggregate { count } nodes { qty } } customers { orders_aggregate(where: {id: {_gt: 3}}) { nodes { id } } } } }")
        .await;
    assert_eq!(
        body,
        json!({"data": {"pg_orders_by_pk": {
            "line_items_aggregate": {"aggregate": {"count": 0}, "nodes": []},
            "customers": {"orders_aggregate": {"nodes": [{"id": 5}, {"id": 8}]}},
        }}})
    );
    // At the root, an aggregate of the distinct rows (no order needed).
    let body = f
        .query("{ pg_orders_aggregate(distinct_on: status) { aggregate { count } } }")
        .await;
    assert_eq!(
        body,
        json!({"data": {"pg_orders_aggregate": {"aggregate": {"count": 3}}}})
    );
    // A role's nodes are the rows it may read.
    for action in ["select", "aggregate"] {
        f.rule(
            "clerk",
            "pg_orders",
            action,
            json!({"filter": {"owner": "{{$user.id}}"}, "columns": ["id", "customer_id", "status", "total"]}),
        )
        .await;
    }
    f.rule(
        "clerk",
        "pg_customers",
        "select",
        json!({"columns": ["id", "name"]}),
    )
    .await;
    let body = f
        .request(
            Some(("clerk", "bob")),
            json!({"query": "{ pg_customers(order_by: {id: asc}) { name orders_aggregate(order_by: {id: desc}) { aggregate { count } nodes { id } } } }"}),
        )
        .await;
    assert_eq!(
        body,
        json!({"data": {"pg_customers": [
            {"name": "Ann", "orders_aggregate": {"aggregate": {"count": 0}, "nodes": []}},
            {"name": "Bob", "orders_aggregate": {"aggregate": {"count": 3}, "nodes": [{"id": 8}, {"id": 5}, {"id": 3}]}},
            {"name": "Cid", "orders_aggregate": {"aggregate": {"count": 0}, "nodes": []}},
        ]}})
    );
    f.stop().await;
}

/// Nested `distinct_on` and nested aggregates' `nodes` cost the same
/// statements for three parents and for thirty-three: one per relation
/// field and level (an aggregate with `nodes`: its aggregate and its read).
#[tokio::test]
async fn nested_distinct_on_and_nodes_send_statements_per_level_not_per_row() {
    let f = Fixture::new().await;
    more_rows_per_parent(&f).await;
    const QUERY: &str = r#"{ pg_customers(order_by: {id: asc}, limit: 3) {
        id
        orders(distinct_on: status, order_by: [{status: asc}, {id: desc}], limit: 1) { id }
        orders_aggregate(distinct_on: status, order_by: [{status: asc}, {total: desc}], limit: 2) {
          aggregate { count }
          nodes { id line_items(order_by: {line: asc}) { qty } }
        }
        reviews(distinct_on: stars, order_by: [{stars: asc}, {id: asc}]) { stars }
      } }"#;
    let (pg, my) = (statements(&f, "pg").await, statements(&f, "my").await);
    let body = f.query(QUERY).await;
    assert_eq!(
        body["data"]["pg_customers"][0],
        json!({"id": 1, "orders": [{"id": 6}],
               "orders_aggregate": {"aggregate": {"count": 2},
                                    "nodes": [{"id": 6, "line_items": []}, {"id": 2, "line_items": [{"qty": 1}]}]},
               "reviews": [{"stars": 3}, {"stars": 5}]}),
        "{body}"
    );
    // customers, orders, the aggregate, its nodes, their line items.
    assert_eq!(statements(&f, "pg").await - pg, 5);
    assert_eq!(statements(&f, "my").await - my, 1);
    common::postgres_exec(&format!(
        "INSERT INTO {schema}.customers SELECT g, 'c' || g FROM generate_series(10, 39) g;
         INSERT INTO {schema}.orders (customer_id, status, total, placed_at)
             SELECT 10 + g % 30, CASE WHEN g <= 60 THEN 'open' ELSE 'shipped' END, g, '2024-06-01'
             FROM generate_series(1, 120) g;
         INSERT INTO {schema}.line_items SELECT id, 1, 1 FROM {schema}.orders WHERE id > 8;",
        schema = f.schema
    ))
    .await;
    common::mariadb_exec(&format!(
        "INSERT INTO {database}.reviews (customer_id, stars) SELECT seq DIV 2, 2 FROM seq_20_to_79",
        database = f.database
    ))
    .await;
    let (pg, my) = (statements(&f, "pg").await, statements(&f, "my").await);
    let body = f.query(&QUERY.replace("limit: 3", "limit: 40")).await;
    let customers = body["data"]["pg_customers"].as_array().unwrap();
    assert_eq!(customers.len(), 33, "{body}");
    // Customer 39: orders 37 and 67 (open, totals 29 and 59), 97 and 127
    // (shipped, totals 89 and 119); two reviews of 2 stars.
    assert_eq!(
        customers[32],
        json!({"id": 39, "orders": [{"id": 67}],
               "orders_aggregate": {"aggregate": {"count": 2},
                                    "nodes": [{"id": 67, "line_items": [{"qty": 1}]},
                                              {"id": 127, "line_items": [{"qty": 1}]}]},
               "reviews": [{"stars": 2}]}),
        "{body}"
    );
    assert_eq!(statements(&f, "pg").await - pg, 5);
    assert_eq!(statements(&f, "my").await - my, 1);
    f.stop().await;
}

/// An object relationship read along with its rows (joined, or the parent
/// of a by-key read through its related rows) reads only the columns
/// selected under it: a source user granted some of the related table's
/// columns answers a query that selects only those.
#[tokio::test]
async fn appended_relations_read_only_the_columns_selected() {
    let schema = common::postgres_schema(
        "CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, secret text);
         CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL REFERENCES customers (id), total int);
         INSERT INTO customers VALUES (1, 'Ann', 's1'), (2, 'Bob', 's2');
         INSERT INTO orders VALUES (10, 1, 5), (11, 1, 6), (12, 2, 7);",
    )
    .await;
    let (reader, url) = common::postgres_role(
        &schema,
        "reader",
        "GRANT SELECT ON {schema}.orders TO {user};
         GRANT SELECT (id, name) ON {schema}.customers TO {user};",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    server
        .register(json!({"name": "pg", "url": url, "schemas": {"include": [schema]}}))
        .await;
    let graphql = |query: &str| {
        let body = json!({ "query": query });
        let server = &server;
        async move { server.admin(Method::POST, "/graphql", Some(body)).await.1 }
    };
    assert_eq!(
        graphql("{ pg_orders(order_by: {id: asc}) { id customers { name } } }").await,
        json!({"data": {"pg_orders": [
            {"id": 10, "customers": {"name": "Ann"}},
            {"id": 11, "customers": {"name": "Ann"}},
            {"id": 12, "customers": {"name": "Bob"}},
        ]}})
    );
    assert_eq!(
        graphql("{ pg_customers_by_pk(id: 1) { name orders(order_by: {id: desc}, limit: 1) { id total } } }").await,
        json!({"data": {"pg_customers_by_pk": {"name": "Ann", "orders": [{"id": 11, "total": 6}]}}})
    );
    // The grant holds: the column left out is refused by PostgreSQL.
    let refused = graphql("{ pg_orders(limit: 1) { customers { secret } } }").await;
    assert_source_denied(&refused);
    server.stop().await;
    common::drop_postgres_schema_and_role(&schema, &reader).await;
}
