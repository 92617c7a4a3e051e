//! sqllogictest runner for federated SQL semantics: every `tests/slt/*.slt`
//! file runs through `POST /api/sql` of an in-process server whose sources
//! are the demo's SQLite databases (`crm`, `shop`), a PostgreSQL schema
//! (`pg`) and a MariaDB database (`my`) with the fixtures below. The
//! databases must answer (`.ci/setup-databases`); nothing is skipped.
//!
//! `cargo test --test sqllogictests` runs them all; a file name as argument
//! narrows the run.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)] // a test runner reports

mod common;

use std::path::PathBuf;

use async_trait::async_trait;
use common::TestServer;
use serde_json::{Value, json};
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType, Runner};

const PG_SCHEMA: &str = "slt";
const MY_DATABASE: &str = "tributary_slt";

const PG_FIXTURE: &str = "
CREATE TABLE customers (id int PRIMARY KEY, code text, region text NOT NULL, credit numeric(10,2), joined date);
INSERT INTO customers VALUES
  (1, 'a', 'EU', 10.50, '2024-01-01'),
  (2, 'A', 'US', NULL, '2024-02-29'),
  (3, NULL, 'EU', 0.01, NULL),
  (4, 'b ', 'APAC', 99999999.99, '2023-12-31');
CREATE TABLE empty_pg (id int PRIMARY KEY, label text);
ANALYZE;
";

const MY_FIXTURE: &str = "
CREATE TABLE orders (id INT PRIMARY KEY, customer_id INT NULL, code VARCHAR(10), amount DECIMAL(12,2) NOT NULL, placed DATETIME NULL);
INSERT INTO orders VALUES
  (10, 1, 'a', 5.25, '2024-03-01 10:00:00'),
  (11, 1, 'A', 1.00, NULL),
  (12, 2, 'b', 100.00, '2024-03-02 00:00:00'),
  (13, NULL, NULL, 7.00, '2024-03-03 12:30:00'),
  (14, 9, 'c', 2.50, NULL);
CREATE TABLE empty_my (id INT PRIMARY KEY, label VARCHAR(10));
";

/// A "connection": SQL sent to the server's endpoint.
struct Endpoint {
    http: reqwest::Client,
    url: String,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct QueryError(String);

fn cell(value: &Value) -> String {
    match value {
        Value::Null => "NULL".to_string(),
        Value::String(s) if s.is_empty() => "(empty)".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[async_trait]
impl AsyncDB for Endpoint {
    type Error = QueryError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, QueryError> {
        let response = self
            .http
            .post(&self.url)
            .bearer_auth(common::TOKEN)
            .json(&json!({ "sql": sql }))
            .send()
            .await
            .map_err(|e| QueryError(e.to_string()))?;
        let body: Value = response
            .json()
            .await
            .map_err(|e| QueryError(e.to_string()))?;
        if let Some(message) = body.pointer("/error/message").and_then(Value::as_str) {
            return Err(QueryError(message.to_string()));
        }
        let columns = body["columns"].as_array().map_or(0, Vec::len);
        let rows: Vec<Vec<String>> = body["rows"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|row| row.as_array().into_iter().flatten().map(cell).collect())
            .collect();
        Ok(DBOutput::Rows {
            types: vec![DefaultColumnType::Any; columns],
            rows,
        })
    }

    async fn shutdown(&mut self) {}

    async fn sleep(duration: std::time::Duration) {
        tokio::time::sleep(duration).await;
    }
}

async fn fixtures() {
    common::postgres_exec(&format!(
        "DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE; CREATE SCHEMA {PG_SCHEMA};"
    ))
    .await;
    common::postgres_exec(&format!("SET search_path = {PG_SCHEMA}; {PG_FIXTURE}")).await;
    common::mariadb_exec(&format!("DROP DATABASE IF EXISTS {MY_DATABASE}; CREATE DATABASE {MY_DATABASE}; USE {MY_DATABASE}; {MY_FIXTURE}"))
        .await;
}

async fn run() -> (usize, Vec<String>) {
    fixtures().await;
    let dir = tempfile::tempdir().unwrap();
    let (crm, shop) = tributary::demo::create_databases(&dir.path().join("databases")).unwrap();
    let server = TestServer::start(&dir.path().join("data")).await;
    server
        .register(json!({"name": "crm", "url": format!("sqlite://{}", crm.display())}))
        .await;
    server
        .register(json!({"name": "shop", "url": format!("sqlite://{}", shop.display())}))
        .await;
    server.register(json!({"name": "pg", "url": common::postgres_url_with(None, None), "schemas": {"include": [PG_SCHEMA]}})).await;
    server
        .register(json!({"name": "my", "url": common::mariadb_url_with_database(MY_DATABASE)}))
        .await;

    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/slt"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "slt"))
            .filter(|p| {
                filter.is_empty()
                    || filter
                        .iter()
                        .any(|f| p.to_string_lossy().contains(f.as_str()))
            })
            .collect();
    files.sort();
    let url = format!("{}/api/sql", server.base);
    let mut failures = Vec::new();
    for file in &files {
        let url = url.clone();
        let mut runner = Runner::new(move || {
            let url = url.clone();
            async move {
                Ok(Endpoint {
                    http: reqwest::Client::new(),
                    url,
                })
            }
        });
        runner.with_column_validator(|_, _| true);
        match runner.run_file_async(file).await {
            Ok(()) => println!("test {} ... ok", file.display()),
            Err(error) => {
                println!("test {} ... FAILED\n{error}", file.display());
                failures.push(file.display().to_string());
            }
        }
    }
    server.stop().await;
    (files.len(), failures)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(16 * 1024 * 1024)
        .build()
        .unwrap();
    let (total, failures) = runtime.block_on(run());
    println!(
        "\n{} passed, {} failed",
        total - failures.len(),
        failures.len()
    );
    if !failures.is_empty() {
        std::process::exit(1);
    }
}
