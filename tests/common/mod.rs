//! All test infrastructure for the server's integration tests: an in-process
//! server on a free port, admin API calls, the real PostgreSQL and MariaDB
//! test databases (which must answer: these tests fail, never skip), and a
//! TCP proxy that can be cut to make a source go down.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // each test binary uses a part

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tributary::app::Application;
use tributary::config::{FileConfig, Overrides, ServerConfig};
use tributary_connector::testkit;

pub const TOKEN: &str = "test-admin-token-0123456789";

/// A server running in this process on 127.0.0.1 with a free port.
pub struct TestServer {
    pub base: String,
    pub data_dir: PathBuf,
    http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Starts a server with the admin token, periodic refresh off.
    pub async fn start(data_dir: &Path) -> Self {
        Self::start_with(data_dir, Some(TOKEN)).await
    }

    pub async fn start_with(data_dir: &Path, token: Option<&str>) -> Self {
        Self::start_full(data_dir, token, 0).await
    }

    /// A server that drift-checks its sources every `interval_secs` (0: never).
    pub async fn start_full(data_dir: &Path, token: Option<&str>, interval_secs: u64) -> Self {
        Self::start_config(data_dir, token, interval_secs, FileConfig::default()).await
    }

    /// A server with settings from a config file's model.
    pub async fn start_config(
        data_dir: &Path,
        token: Option<&str>,
        interval_secs: u64,
        file: FileConfig,
    ) -> Self {
        let config = ServerConfig::resolve(
            file,
            Overrides {
                listen: Some("127.0.0.1:0".into()),
                data_dir: Some(data_dir.to_path_buf()),
                admin_token: token.map(ToString::to_string),
                refresh_interval_secs: Some(interval_secs),
                ..Overrides::default()
            },
        )
        .unwrap();
        let app = Application::build(config).await.expect("server builds");
        let base = format!("http://{}", app.local_addr());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            app.run(async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        Self {
            base,
            data_dir: data_dir.to_path_buf(),
            http: reqwest::Client::new(),
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops the server and waits until it has.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }

    /// An admin call with the token; returns the status and the JSON body (Null when empty).
    pub async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call(method, path, body, Some(TOKEN)).await
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("server answers");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    /// Registers a source; it must succeed (201).
    pub async fn register(&self, body: Value) {
        let (status, response) = self.admin(Method::POST, "/admin/sources", Some(body)).await;
        assert_eq!(status, 201, "{response}");
    }

    /// The statement each source receives for a query (`explain: true`),
    /// as `(source, sql)` in plan order.
    pub async fn source_statements(&self, sql: &str) -> Vec<(String, String)> {
        let body = json!({"sql": sql, "explain": true});
        let (status, body) = self.admin(Method::POST, "/api/sql", Some(body)).await;
        assert_eq!(status, 200, "{body}");
        body["sources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["source"].as_str().unwrap().to_string(),
                    s["sql"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    /// A raw request body (for malformed JSON).
    pub async fn admin_raw(&self, method: Method, path: &str, body: &str) -> (u16, Value) {
        let response = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// `POST /api/sql` with an `Accept` header; the status, content type and raw body.
    pub async fn sql_as(&self, accept: &str, body: Value) -> (u16, String, Vec<u8>) {
        let response = self
            .http
            .post(format!("{}/api/sql", self.base))
            .bearer_auth(TOKEN)
            .header("accept", accept)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        (
            status,
            content_type,
            response.bytes().await.unwrap().to_vec(),
        )
    }

    pub async fn get_text(&self, path: &str) -> (u16, String) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }
}

/// An HTTP client for a test with no server in this process: reqwest uses
/// the process's rustls provider, which starting a server installs.
pub fn http_client() -> reqwest::Client {
    tributary_connector::tls::install_crypto_provider();
    reqwest::Client::new()
}

/// Asserts an error response: status, `error.code`, and words in `error.message`.
pub fn assert_error(response: &(u16, Value), status: u16, code: &str, words: &[&str]) {
    let (got_status, body) = response;
    assert_eq!(*got_status, status, "{body}");
    assert_eq!(
        body.pointer("/error/code").and_then(Value::as_str),
        Some(code),
        "{body}"
    );
    let message = body
        .pointer("/error/message")
        .and_then(Value::as_str)
        .unwrap_or_default();
    for word in words {
        assert!(message.contains(word), "`{word}` not in `{message}`");
    }
}

/// A fresh SQLite database file made from `sql`.
pub fn sqlite_file(dir: &Path, name: &str, sql: &str) -> PathBuf {
    let path = dir.join(name);
    let connection = rusqlite_open(&path);
    connection.execute_batch(sql).unwrap();
    path
}

fn rusqlite_open(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).unwrap()
}

/// A connection to the PostgreSQL test database; panics naming the URL when it does not answer.
pub async fn postgres() -> tokio_postgres::Client {
    let url = testkit::postgres_url();
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!("PostgreSQL at {url} does not answer ({e}); run .ci/setup-databases")
        });
    tokio::spawn(connection);
    client
}

/// A PostgreSQL schema only this test uses, created with `ddl` (which may use `{schema}`).
pub async fn postgres_schema(ddl: &str) -> String {
    let schema = testkit::unique_name("t");
    let client = postgres().await;
    client
        .batch_execute(&format!(
            "CREATE SCHEMA {schema}; SET search_path = {schema};"
        ))
        .await
        .unwrap();
    client
        .batch_execute(&ddl.replace("{schema}", &schema))
        .await
        .unwrap();
    schema
}

pub async fn postgres_exec(sql: &str) {
    postgres().await.batch_execute(sql).await.unwrap();
}

pub async fn drop_postgres_schema(schema: &str) {
    postgres_exec(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await;
}

/// A new PostgreSQL role `<schema>_<suffix>` that may use `schema` and
/// holds `grants` (`{schema}` and `{user}` in them replaced): its name,
/// and a URL that logs in as it.
pub async fn postgres_role(schema: &str, suffix: &str, grants: &str) -> (String, String) {
    let user = format!("{schema}_{suffix}");
    let grants = grants.replace("{schema}", schema).replace("{user}", &user);
    postgres_exec(&format!(
        "CREATE ROLE {user} LOGIN PASSWORD '{suffix}-pw';
         GRANT USAGE ON SCHEMA {schema} TO {user};
         {grants}"
    ))
    .await;
    let password = format!("{suffix}-pw");
    let mut url = url::Url::parse(&postgres_url_with(None, Some(&password))).unwrap();
    url.set_username(&user).unwrap();
    (user, url.to_string())
}

/// Drops `schema` and then `role` (made by [`postgres_role`]).
pub async fn drop_postgres_schema_and_role(schema: &str, role: &str) {
    drop_postgres_schema(schema).await;
    postgres_exec(&format!("DROP ROLE {role}")).await;
}

/// Rows of `<schema>.<table>` in PostgreSQL.
pub async fn postgres_count(schema: &str, table: &str) -> i64 {
    postgres()
        .await
        .query_one(&format!("SELECT count(*) FROM {schema}.{table}"), &[])
        .await
        .unwrap()
        .get(0)
}

/// A connection to the MariaDB test server; panics naming the URL when it does not answer.
pub async fn mariadb() -> mysql_async::Conn {
    let url = testkit::mysql_url();
    let opts = mysql_async::Opts::from_url(&url).unwrap();
    mysql_async::Conn::new(opts).await.unwrap_or_else(|e| {
        panic!("MariaDB at {url} does not answer ({e}); run .ci/setup-databases")
    })
}

pub async fn mariadb_exec(sql: &str) {
    use mysql_async::prelude::Queryable;
    let mut conn = mariadb().await;
    conn.query_drop(sql).await.unwrap();
    conn.disconnect().await.unwrap();
}

/// A MariaDB database only this test uses, created with `ddl` run inside it.
pub async fn mariadb_database(ddl: &str) -> String {
    let database = testkit::unique_name("t");
    mariadb_exec(&format!(
        "CREATE DATABASE {database}; USE {database}; {ddl}"
    ))
    .await;
    database
}

pub async fn drop_mariadb_database(database: &str) {
    mariadb_exec(&format!("DROP DATABASE IF EXISTS {database}")).await;
}

/// `postgres://…` of the test server, with another host/port or password.
pub fn postgres_url_with(addr: Option<SocketAddr>, password: Option<&str>) -> String {
    let mut url = url::Url::parse(&testkit::postgres_url()).unwrap();
    if let Some(addr) = addr {
        url.set_host(Some(&addr.ip().to_string())).unwrap();
        url.set_port(Some(addr.port())).unwrap();
    }
    if let Some(password) = password {
        url.set_password(Some(password)).unwrap();
    }
    url.to_string()
}

pub fn mariadb_url_with_database(database: &str) -> String {
    let mut url = url::Url::parse(&testkit::mysql_url()).unwrap();
    url.set_path(&format!("/{database}"));
    url.to_string()
}

/// A TCP proxy to a database that a test can cut, to make a source go down.
pub struct TcpProxy {
    pub addr: SocketAddr,
    links: Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
    task: JoinHandle<()>,
}

impl TcpProxy {
    /// Forwards 127.0.0.1:<free port> to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let links = Arc::new(std::sync::Mutex::new(Vec::new()));
        let registry = links.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let link = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                registry.lock().unwrap().push(link.abort_handle());
            }
        });
        Self { addr, links, task }
    }

    /// Closes the listener and every forwarded connection: the port refuses from now on.
    pub async fn cut(self) {
        self.task.abort();
        let _ = self.task.await;
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }
}

/// 127.0.0.1:5432 (or wherever the PostgreSQL test URL points).
pub fn postgres_addr() -> SocketAddr {
    let url = url::Url::parse(&testkit::postgres_url()).unwrap();
    let host = url.host_str().unwrap_or("127.0.0.1");
    format!("{host}:{}", url.port().unwrap_or(5432))
        .parse()
        .unwrap()
}

/// A server with a PostgreSQL schema (source `pg`) and a MariaDB database
/// (source `my`) made for one test, and the cross-source relation
/// `customer` from `my.reviews.customer_id` to `pg.customers.id` (both DDLs
/// must create those tables).
pub struct TwoSources {
    pub server: TestServer,
    pub schema: String,
    pub database: String,
    _dir: tempfile::TempDir,
}

impl TwoSources {
    pub async fn start(pg_ddl: &str, my_ddl: &str, file: FileConfig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let schema = postgres_schema(pg_ddl).await;
        let database = mariadb_database(my_ddl).await;
        let server = TestServer::start_config(dir.path(), Some(TOKEN), 0, file).await;
        server
            .register(json!({"name": "pg", "url": postgres_url_with(None, None), "schemas": {"include": [schema]}}))
            .await;
        server
            .register(json!({"name": "my", "url": mariadb_url_with_database(&database)}))
            .await;
        let (status, body) = server
            .admin(
                Method::POST,
                "/admin/relations",
                Some(json!({
                    "name": "customer",
                    "from": format!("my.{database}.reviews"),
                    "from_columns": ["customer_id"],
                    "to": format!("pg.{schema}.customers"),
                    "to_columns": ["id"],
                })),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        Self {
            server,
            schema,
            database,
            _dir: dir,
        }
    }

    /// Stops the server and drops the schema and the database.
    pub async fn stop(self) {
        self.server.stop().await;
        drop_postgres_schema(&self.schema).await;
        drop_mariadb_database(&self.database).await;
    }
}

/// Runs `request` while a row it will write is locked by another
/// transaction: once `waiting` sees it blocked on that lock, `release`
/// commits the change; answers the request's outcome. A request that ends
/// without waiting fails the test with its answer.
pub async fn while_locked<T: std::fmt::Debug>(
    request: impl Future<Output = T>,
    waiting: impl Future<Output = ()>,
    release: impl Future<Output = ()>,
) -> T {
    let mut request = std::pin::pin!(request);
    tokio::select! {
        answer = &mut request => {
            panic!("the request ended without waiting for the row lock: {answer:?}")
        }
        () = waiting => {}
    }
    release.await;
    request.await
}

/// A PostgreSQL source `pg` of ONE pooled connection (waited for at most
/// `acquire_timeout_ms`) on a new schema whose table `t (id, v)` holds row
/// 1, which a transaction on another connection has locked (commit on it
/// to release). A write to row 1 through the server then holds the pool's
/// connection while it waits. Answers the schema and that connection.
pub async fn pg_source_of_one_locked_connection(
    server: &TestServer,
    acquire_timeout_ms: u64,
) -> (String, tokio_postgres::Client) {
    let schema =
        postgres_schema("CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 0);")
            .await;
    server
        .register(serde_json::json!({"name": "pg", "url": postgres_url_with(None, None),
                                      "schemas": {"include": [schema]},
                                      "pool": {"max_size": 1, "acquire_timeout_ms": acquire_timeout_ms}}))
        .await;
    let other = postgres().await;
    other
        .batch_execute(&format!("BEGIN; UPDATE {schema}.t SET v = 2 WHERE id = 1"))
        .await
        .unwrap();
    (schema, other)
}

/// Until a statement on `schema` waits for a row lock in PostgreSQL.
pub async fn wait_for_lock_wait_pg(schema: &str) {
    let client = postgres().await;
    for _ in 0..200 {
        let waiting: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE $1",
                &[&format!("%{schema}%")],
            )
            .await
            .unwrap()
            .get(0);
        if waiting > 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no statement waited for the row lock");
}

/// Until a locking read (`… FOR UPDATE`) on `database` runs in MariaDB:
/// sent after the request's own reads, it waits for the row lock the test
/// holds. (MariaDB's processlist, not `innodb_trx`: that one did not always
/// list the waiting transaction.)
pub async fn wait_for_lock_wait_mariadb(database: &str) {
    use mysql_async::prelude::Queryable;
    let mut conn = mariadb().await;
    let sql = format!(
        "SELECT count(*) FROM information_schema.processlist \
         WHERE info LIKE '%`{database}`.%FOR UPDATE%' AND id <> connection_id()"
    );
    for _ in 0..200 {
        let waiting: Option<i64> = conn.query_first(sql.as_str()).await.unwrap();
        if waiting.unwrap_or(0) > 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no locking read on `{database}` ran");
}
