//! Authentication end to end: API key lifecycle (create, use, revoke,
//! rotate with and without grace), 401 without or with bad credentials,
//! the anonymous role, JWT bearer tokens, admin-only routes, permission
//! rules checked before they are stored, the audit log, and rate limits.
//! Uses the embedded SQLite demo database, so no server is needed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TOKEN, TestServer};
use jsonwebtoken::{EncodingKey, Header, encode};
use reqwest::Method;
use serde_json::{Value, json};
use tributary::config::FileConfig;

const JWT_SECRET: &str = "a-shared-secret-of-at-least-32-bytes!";

/// A server with one SQLite source `shop` (table `items`).
async fn server(dir: &std::path::Path, config: &str) -> TestServer {
    let database = dir.join("shop.db");
    let connection = rusqlite::Connection::open(&database).unwrap();
    connection
        .execute_batch(
            "CREATE TABLE items (id INTEGER PRIMARY KEY, owner TEXT NOT NULL, name TEXT, secret TEXT);
             INSERT INTO items VALUES (1, 'ann', 'pen', 's1'), (2, 'bob', 'ink', 's2'), (3, 'ann', 'cup', 's3'), (4, 'cat', NULL, 's4');",
        )
        .unwrap();
    drop(connection);
    let file = FileConfig::parse(config).unwrap();
    let server = TestServer::start_config(&dir.join("data"), Some(TOKEN), 0, file).await;
    server
        .register(json!({"name": "shop", "url": format!("sqlite://{}", database.display())}))
        .await;
    server
}

/// Creates a key (`POST /admin/keys` must answer 201): its record and secret.
async fn new_key(server: &TestServer, body: Value) -> (Value, String) {
    let (status, created) = server.admin(Method::POST, "/admin/keys", Some(body)).await;
    assert_eq!(status, 201, "{created}");
    let secret = created["key"].as_str().unwrap().to_string();
    (created, secret)
}

async fn sql(server: &TestServer, token: Option<&str>, query: &str) -> (u16, Value) {
    server
        .call(
            Method::POST,
            "/api/sql",
            Some(json!({ "sql": query })),
            token,
        )
        .await
}

#[tokio::test]
async fn api_keys_live_until_revoked_and_rotation_keeps_a_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), "").await;
    let (status, body) = server
        .admin(
            Method::PUT,
            "/admin/permissions/owner/shop_items/select",
            Some(json!({"filter": {"owner": "{{$user.id}}"}, "columns": ["id", "owner", "name"]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let (status, created) = server
        .admin(
            Method::POST,
            "/admin/keys",
            Some(json!({"name": "ann's app", "role": "owner", "user_id": "ann"})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let secret = created["key"].as_str().unwrap().to_string();
    let id = created["id"].as_str().unwrap().to_string();

    // The secret is shown once: lists hold no secret, only its prefix.
    let (_, list) = server.admin(Method::GET, "/admin/keys", None).await;
    assert!(!list.to_string().contains(&secret));
    assert!(list.to_string().contains(&secret[..8]));

    let (status, body) = sql(&server, Some(&secret), "SELECT * FROM items ORDER BY id").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"], json!([[1, "ann", "pen"], [3, "ann", "cup"]]));
    // X-API-Key works too.
    let response = reqwest::Client::new()
        .post(format!("{}/api/sql", server.base))
        .header("x-api-key", &secret)
        .json(&json!({"sql": "SELECT count(*) FROM items"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 403, "no aggregate rule");

    // Rotation with a grace period: both keys work.
    let (status, rotated) = server
        .admin(
            Method::POST,
            &format!("/admin/keys/{id}/rotate"),
            Some(json!({"grace_secs": 3600})),
        )
        .await;
    assert_eq!(status, 201, "{rotated}");
    let new_secret = rotated["key"].as_str().unwrap().to_string();
    assert_eq!(rotated["role"], "owner");
    assert_eq!(rotated["user_id"], "ann");
    assert_eq!(rotated["rotated_from"], id.as_str());
    assert_eq!(
        sql(&server, Some(&secret), "SELECT id FROM items").await.0,
        200
    );
    assert_eq!(
        sql(&server, Some(&new_secret), "SELECT id FROM items")
            .await
            .0,
        200
    );

    // Rotation without grace: the old key stops at once.
    let new_id = rotated["id"].as_str().unwrap();
    let (status, third) = server
        .admin(Method::POST, &format!("/admin/keys/{new_id}/rotate"), None)
        .await;
    assert_eq!(status, 201, "{third}");
    let (status, body) = sql(&server, Some(&new_secret), "SELECT id FROM items").await;
    assert_eq!(status, 401);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{body}"
    );

    // Revocation: the very next request is refused.
    let third_secret = third["key"].as_str().unwrap();
    let third_id = third["id"].as_str().unwrap();
    assert_eq!(
        sql(&server, Some(third_secret), "SELECT id FROM items")
            .await
            .0,
        200
    );
    let (status, _) = server
        .admin(Method::DELETE, &format!("/admin/keys/{third_id}"), None)
        .await;
    assert_eq!(status, 204);
    let (status, body) = sql(&server, Some(third_secret), "SELECT id FROM items").await;
    assert_eq!(status, 401);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("revoked"),
        "{body}"
    );
    server.stop().await;
}

#[tokio::test]
async fn requests_without_good_credentials_get_401_and_non_admins_403() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), "").await;
    let (status, body) = sql(&server, None, "SELECT 1").await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "unauthorized");
    assert_eq!(sql(&server, Some("trb_not-a-key"), "SELECT 1").await.0, 401);
    assert_eq!(
        sql(&server, Some("a.b.c"), "SELECT 1").await.0,
        401,
        "no JWT configured"
    );

    let (_, secret) = new_key(&server, json!({"name": "r", "role": "reader"})).await;
    let secret = secret.as_str();
    let (status, body) = server
        .call(Method::GET, "/admin/keys", None, Some(secret))
        .await;
    assert_eq!(status, 403, "{body}");
    // A role without rules sees no table.
    let (status, body) = sql(&server, Some(secret), "SELECT * FROM items").await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("items"),
        "{body}"
    );
    server.stop().await;
}

#[tokio::test]
async fn the_anonymous_role_serves_requests_without_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), "anonymous_role = \"public\"").await;
    let (status, body) = server
        .admin(
            Method::PUT,
            "/admin/permissions/public/shop_items/select",
            Some(json!({"columns": ["id", "name"]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = sql(&server, None, "SELECT * FROM items ORDER BY id").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["rows"],
        json!([[1, "pen"], [2, "ink"], [3, "cup"], [4, null]])
    );
    let (status, body) = sql(&server, None, "SELECT secret FROM items").await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("secret"),
        "{body}"
    );
    let (status, _) = server.call(Method::GET, "/admin/keys", None, None).await;
    assert_eq!(status, 403, "the anonymous role is not an admin");
    server.stop().await;
}

#[tokio::test]
async fn a_variable_the_caller_lacks_matches_no_row() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), "").await;
    // `name` is NULL in row 4: a caller without a user id must not get it
    // through `name = {{$user.id}}` (that is not `name IS NULL`).
    for (filter, label) in [
        (json!({"name": "{{$user.id}}"}), "$eq"),
        (json!({"name": {"$in": ["{{$user.id}}"]}}), "$in"),
        (json!({"name": {"$ne": "{{$user.claims.team}}"}}), "$ne"),
    ] {
        let (status, body) = server
            .admin(
                Method::PUT,
                "/admin/permissions/mine/shop_items/select",
                Some(json!({ "filter": filter })),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let (_, secret) = new_key(&server, json!({"name": label, "role": "mine"})).await;
        let (status, body) = sql(&server, Some(&secret), "SELECT id FROM items").await;
        assert_eq!(status, 200, "{label}: {body}");
        assert_eq!(body["rows"], json!([]), "{label}");
    }
    // With the user id, the same rule finds the user's rows.
    let (status, body) = server
        .admin(
            Method::PUT,
            "/admin/permissions/mine/shop_items/select",
            Some(json!({"filter": {"owner": "{{$user.id}}"}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, secret) = new_key(
        &server,
        json!({"name": "bob", "role": "mine", "user_id": "bob"}),
    )
    .await;
    let (_, body) = sql(&server, Some(&secret), "SELECT id FROM items").await;
    assert_eq!(body["rows"], json!([[2]]));
    server.stop().await;
}

fn token(claims: &Value) -> String {
    encode(
        &Header::default(),
        claims,
        &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn jwt_bearer_tokens_carry_role_and_user() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[jwt]\nsecret = \"{JWT_SECRET}\"\naudience = \"tributary\"\nrole_claim = \"app.role\"\n\
         allowed_roles_claim = \"app.roles\"\n"
    );
    let server = server(dir.path(), &config).await;
    for role in ["owner", "auditor"] {
        let (status, body) = server
            .admin(
                Method::PUT,
                &format!("/admin/permissions/{role}/shop_items/select"),
                Some(json!({"filter": {"owner": "{{$user.id}}"}, "columns": ["id"]})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let now = chrono::Utc::now().timestamp();
    let good = token(&json!({
        "sub": "bob", "aud": "tributary", "exp": now + 600,
        "app": {"role": "owner", "roles": ["owner", "auditor"]}
    }));
    let (status, body) = sql(&server, Some(&good), "SELECT id FROM items").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"], json!([[2]]));

    // X-Role picks one of the allowed roles, and no other.
    let ask = |role: &'static str| {
        reqwest::Client::new()
            .post(format!("{}/api/sql", server.base))
            .bearer_auth(&good)
            .header("x-role", role)
            .json(&json!({"sql": "SELECT id FROM items"}))
            .send()
    };
    assert_eq!(ask("auditor").await.unwrap().status().as_u16(), 200);
    assert_eq!(ask("admin").await.unwrap().status().as_u16(), 403);

    let expired = token(
        &json!({"sub": "bob", "aud": "tributary", "exp": now - 3600, "app": {"role": "owner"}}),
    );
    let wrong_audience =
        token(&json!({"sub": "bob", "aud": "other", "exp": now + 600, "app": {"role": "owner"}}));
    let other_secret = encode(
        &Header::default(),
        &json!({"sub": "bob", "aud": "tributary", "exp": now + 600, "app": {"role": "owner"}}),
        &EncodingKey::from_secret(b"another-secret-of-at-least-32-bytes!!"),
    )
    .unwrap();
    for bad in [expired, wrong_audience, other_secret] {
        let (status, body) = sql(&server, Some(&bad), "SELECT id FROM items").await;
        assert_eq!(status, 401, "{body}");
    }
    server.stop().await;
}

#[tokio::test]
async fn rules_are_checked_against_the_catalog_before_they_are_stored() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), "").await;
    let cases = [
        ("/admin/permissions/r/nope/select", json!({}), 404, None),
        ("/admin/permissions/r/shop_items/fly", json!({}), 400, None),
        (
            "/admin/permissions/r/shop_items/select",
            json!({"columns": ["id", "ghost"]}),
            400,
            None,
        ),
        (
            "/admin/permissions/r/shop_items/select",
            json!({"filter": {"$and": [{"ghost": 1}]}}),
            400,
            Some("filter.$and[0].ghost"),
        ),
        (
            "/admin/permissions/r/shop_items/select",
            json!({"filter": {"id": {"$near": 1}}}),
            400,
            Some("filter.id.$near"),
        ),
        (
            "/admin/permissions/r/shop_items/select",
            json!({"filter": {"owner": "{{$user.name}}"}}),
            400,
            Some("filter.owner"),
        ),
        (
            "/admin/permissions/r/shop_items/select",
            json!({"filter": {"id": "x"}}),
            400,
            Some("filter.id"),
        ),
        (
            "/admin/permissions/r/shop_items/delete",
            json!({"limit": 5}),
            400,
            None,
        ),
        (
            "/admin/permissions/admin/shop_items/select",
            json!({}),
            400,
            None,
        ),
        (
            "/admin/permissions/r/shop_items/select",
            json!({"colums": "*"}),
            422,
            None,
        ),
    ];
    for (path, rule, expected, at) in cases {
        let (status, body) = server.admin(Method::PUT, path, Some(rule.clone())).await;
        assert_eq!(status, expected, "{path} {rule}: {body}");
        if let Some(at) = at {
            assert_eq!(body["error"]["path"], at, "{body}");
        }
    }
    let (_, list) = server.admin(Method::GET, "/admin/permissions", None).await;
    assert_eq!(list["permissions"], json!([]), "nothing stored");
    server.stop().await;
}

#[tokio::test]
async fn admin_actions_are_audited_with_who_and_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), "").await;
    let (created, reader) = new_key(&server, json!({"name": "r", "role": "reader"})).await;
    let reader = reader.as_str();
    // A denied attempt by a non-admin is audited too.
    let (status, _) = server
        .call(Method::DELETE, "/admin/sources/shop", None, Some(reader))
        .await;
    assert_eq!(status, 403);
    let (status, body) = server
        .admin(Method::GET, "/admin/audit?limit=10", None)
        .await;
    assert_eq!(status, 200, "{body}");
    let entries = body["entries"].as_array().unwrap();
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "admin.delete /admin/sources/{name}",
            "admin.post /admin/keys",
            "admin.post /admin/sources",
        ],
        "{body}"
    );
    assert_eq!(entries[0]["outcome"], "denied");
    assert_eq!(entries[0]["role"], "reader");
    assert_eq!(entries[0]["key_id"], created["id"]);
    assert_eq!(entries[1]["outcome"], "ok");
    assert_eq!(entries[1]["key_id"], "bootstrap");
    assert_eq!(entries[2]["target"], "/admin/sources");
    let (_, denied) = server
        .admin(Method::GET, "/admin/audit?outcome=denied", None)
        .await;
    assert_eq!(denied["entries"].as_array().unwrap().len(), 1, "{denied}");
    let (status, _) = server
        .admin(Method::GET, "/admin/audit?limit=abc", None)
        .await;
    assert_eq!(status, 400);
    server.stop().await;
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(
        dir.path(),
        "[rate_limit]\nrequests_per_second = 0.01\nburst = 3\n",
    )
    .await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..5 {
        let response = reqwest::Client::new()
            .post(format!("{}/api/sql", server.base))
            .bearer_auth(TOKEN)
            .json(&json!({"sql": "SELECT 1"}))
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
        if response.status().as_u16() == 429 {
            retry_after = response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
        }
    }
    // The server's own start-up registration used one request of the burst.
    assert_eq!(statuses, [200, 200, 429, 429, 429], "{statuses:?}");
    assert!(retry_after.is_some_and(|s| s >= 1), "{retry_after:?}");
    server.stop().await;
}

/// Two servers on one data directory (replicas sharing the store): a key
/// made on one works on the other and its revocation holds there on the
/// very next request; a rule changed on one holds on the other within the
/// rules loop's second.
#[tokio::test]
async fn replicas_sharing_a_store_share_keys_and_rules() {
    let dir = tempfile::tempdir().unwrap();
    let first = server(dir.path(), "").await;
    let second = TestServer::start_config(
        &dir.path().join("data"),
        Some(TOKEN),
        0,
        FileConfig::default(),
    )
    .await;
    let rule = |filter: Value| json!({"filter": filter, "columns": ["id", "owner"]});
    let (status, body) = first
        .admin(
            Method::PUT,
            "/admin/permissions/owner/shop_items/select",
            Some(rule(json!({"owner": "ann"}))),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (created, secret) = new_key(&first, json!({"name": "app", "role": "owner"})).await;
    let ids = |body: &Value| body["rows"].clone();
    let query = "SELECT id FROM items ORDER BY id";
    let (status, body) = sql(&first, Some(&secret), query).await;
    assert_eq!((status, ids(&body)), (200, json!([[1], [3]])), "{body}");
    // The second replica learns the rule from the store (within a second).
    let mut answer = Value::Null;
    for _ in 0..50 {
        let (status, body) = sql(&second, Some(&secret), query).await;
        answer = body;
        if status == 200 && ids(&answer) == json!([[1], [3]]) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(ids(&answer), json!([[1], [3]]), "{answer}");
    let (status, body) = first
        .admin(
            Method::PUT,
            "/admin/permissions/owner/shop_items/select",
            Some(rule(json!({"owner": "bob"}))),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    for _ in 0..50 {
        let (_, body) = sql(&second, Some(&secret), query).await;
        answer = body;
        if ids(&answer) == json!([[2]]) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(ids(&answer), json!([[2]]), "{answer}");
    // Revoked on the first: refused by the second at once.
    let id = created["id"].as_str().unwrap();
    let (status, body) = first
        .admin(Method::DELETE, &format!("/admin/keys/{id}"), None)
        .await;
    assert!(status == 200 || status == 204, "{status} {body}");
    let (status, body) = sql(&second, Some(&secret), query).await;
    assert_eq!(status, 401, "{body}");
    second.stop().await;
    first.stop().await;
}

/// The admin token taken out of the configuration stops working: a server
/// started without one revokes the stored `bootstrap` key; an admin key
/// made meanwhile still works.
#[tokio::test]
async fn a_removed_admin_token_stops_working() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let first = TestServer::start_with(&data, Some(TOKEN)).await;
    let (_, admin_key) = new_key(&first, json!({"name": "ops", "role": "admin"})).await;
    first.stop().await;
    let second = TestServer::start_with(&data, None).await;
    let (status, body) = second
        .call(Method::GET, "/admin/keys", None, Some(TOKEN))
        .await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = second
        .call(Method::GET, "/admin/keys", None, Some(&admin_key))
        .await;
    assert_eq!(status, 200, "{body}");
    second.stop().await;
    // A revoked token stays revoked, configured again or not; a new one works.
    let third = TestServer::start_with(&data, Some(TOKEN)).await;
    let (status, body) = third
        .call(Method::GET, "/admin/keys", None, Some(TOKEN))
        .await;
    assert_eq!(status, 401, "{body}");
    third.stop().await;
    let fresh = "a-new-admin-token-of-enough-length";
    let fourth = TestServer::start_with(&data, Some(fresh)).await;
    let (status, body) = fourth
        .call(Method::GET, "/admin/keys", None, Some(fresh))
        .await;
    assert_eq!(status, 200, "{body}");
    fourth.stop().await;
}
