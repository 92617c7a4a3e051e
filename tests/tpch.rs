//! TPC-H SF0.1 through `POST /api/sql`, split across two real databases:
//! customer, nation, region, supplier, part and partsupp in PostgreSQL
//! (source `pg`, schema `tpch`), orders and lineitem in MariaDB (source `my`,
//! database `tributary_tpch`). Each of the 22 queries runs unchanged (bare
//! table names) and its rows are compared, in order, with the reference
//! answer in `tests/tpch/answers/`. `tests/tpch/setup` loads the data (once
//! per test binary; it returns at once when the data are already there).

// Tests fail loudly; the setup's output and per-query timings go to stderr.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use common::TestServer;
use reqwest::Method;
use serde_json::{Value, json};

/// Numbers agree when they are this close, relative to the larger one.
const RELATIVE_TOLERANCE: f64 = 1e-6;

fn tpch_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tpch")
}

/// Runs `tests/tpch/setup` once per test binary; every test sees its outcome.
fn load_data() {
    static LOADED: OnceLock<Result<(), String>> = OnceLock::new();
    let outcome = LOADED.get_or_init(|| {
        let script = tpch_dir().join("setup");
        let output = Command::new(&script)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        if output.status.success() {
            eprint!("{stdout}");
            Ok(())
        } else {
            Err(format!(
                "{} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
                script.display(),
                output.status
            ))
        }
    });
    if let Err(message) = outcome {
        panic!("{message}");
    }
}

/// A server with the two TPC-H sources registered.
async fn tpch_server(dir: &Path) -> TestServer {
    let server = TestServer::start(dir).await;
    let sources = [
        json!({"name": "pg", "url": common::postgres_url_with(None, None), "schemas": {"include": ["tpch"]}}),
        json!({"name": "my", "url": common::mariadb_url_with_database("tributary_tpch")}),
    ];
    for source in sources {
        let (status, body) = server
            .admin(Method::POST, "/admin/sources", Some(source.clone()))
            .await;
        assert_eq!(status, 201, "registering {source}: {body}");
    }
    server
}

/// Records of a CSV text (RFC 4180: `"`-quoted fields, `""` inside quotes).
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, '\r') => {}
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !record.is_empty() {
        record.push(field);
        records.push(record);
    }
    records
}

/// One unit in the last decimal place of a number written as text.
fn last_place(text: &str) -> f64 {
    let decimals = text
        .split_once('.')
        .map_or(0, |(_, fraction)| fraction.len());
    10f64.powi(-i32::try_from(decimals).unwrap_or(0))
}

fn numbers_match(actual: f64, expected: f64) -> bool {
    let difference = (actual - expected).abs();
    difference <= RELATIVE_TOLERANCE * actual.abs().max(expected.abs()) || difference < 1e-12
}

/// Whether a JSON cell of the engine equals an answer cell: numbers (decimals
/// arrive as strings) within the tolerance, text without CHAR padding, dates
/// as ISO text, NULL as an empty field.
fn cell_matches(actual: &Value, expected: &str) -> bool {
    match actual {
        Value::Null => expected.is_empty(),
        Value::Bool(b) => expected == b.to_string(),
        Value::Number(n) => match (n.as_f64(), expected.parse::<f64>()) {
            (Some(a), Ok(e)) => numbers_match(a, e),
            _ => false,
        },
        Value::String(s) => {
            let s = s.trim_end();
            s == expected.trim_end()
                || match (s.parse::<f64>(), expected.parse::<f64>()) {
                    // An exact decimal of a fixed scale (an average of
                    // decimal(15,2) is decimal(19,6)) may differ from the
                    // reference's double by one unit in its last place.
                    (Ok(a), Ok(e)) => numbers_match(a, e) || (a - e).abs() < 0.99 * last_place(s),
                    _ => false,
                }
        }
        Value::Array(_) | Value::Object(_) => false,
    }
}

fn row_matches(actual: &Value, expected: &[String]) -> bool {
    actual.as_array().is_some_and(|cells| {
        cells.len() == expected.len()
            && cells
                .iter()
                .zip(expected)
                .all(|(cell, field)| cell_matches(cell, field))
    })
}

/// The plan's per-source SQL (`explain: true`), for failure messages.
async fn source_sql(server: &TestServer, sql: &str) -> String {
    let (status, body) = server
        .admin(
            Method::POST,
            "/api/sql",
            Some(json!({"sql": sql, "explain": true})),
        )
        .await;
    if status != 200 {
        return format!("(explain failed: {status} {body})");
    }
    body["sources"]
        .as_array()
        .map(|sources| {
            sources
                .iter()
                .map(|s| format!("  [{}] {}", s["source"], s["sql"].as_str().unwrap_or("?")))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_else(|| format!("(no sources in {body})"))
}

/// Runs query `number` and compares its rows with the answer, in order.
async fn check_query(number: u32) {
    load_data();
    let name = format!("q{number:02}");
    let sql = std::fs::read_to_string(tpch_dir().join(format!("queries/{name}.sql"))).unwrap();
    let answer = std::fs::read_to_string(tpch_dir().join(format!("answers/{name}.csv"))).unwrap();
    let mut expected = parse_csv(&answer);
    let header = expected.remove(0);

    let dir = tempfile::tempdir().unwrap();
    let server = tpch_server(dir.path()).await;
    let started = Instant::now();
    let (status, body) = server
        .admin(Method::POST, "/api/sql", Some(json!({"sql": sql})))
        .await;
    let seconds = started.elapsed().as_secs_f64();
    if status != 200 {
        let sources = source_sql(&server, &sql).await;
        panic!("{name}: HTTP {status} after {seconds:.1} s: {body}\nsource SQL:\n{sources}");
    }
    let rows = body["rows"].as_array().cloned().unwrap_or_default();
    let mismatch = rows
        .iter()
        .zip(&expected)
        .position(|(actual, wanted)| !row_matches(actual, wanted))
        .or_else(|| (rows.len() != expected.len()).then(|| rows.len().min(expected.len())));
    if let Some(index) = mismatch {
        let sources = source_sql(&server, &sql).await;
        let got = rows
            .get(index)
            .map_or("(none)".to_string(), Value::to_string);
        let wanted = expected
            .get(index)
            .map_or("(none)".to_string(), |r| format!("{r:?}"));
        panic!(
            "{name}: {} rows (truncated: {}), answer has {}; first difference at row {index}:\n  \
             got      {got}\n  expected {wanted}\n  answer columns {header:?}\n  \
             result columns {}\nsource SQL:\n{sources}",
            rows.len(),
            body["truncated"],
            expected.len(),
            body["columns"]
        );
    }
    assert_eq!(body["truncated"], json!(false), "{name}: {body}");
    eprintln!("{name}: ok ({} rows, {seconds:.1} s)", rows.len());
    server.stop().await;
}

macro_rules! tpch_queries {
    ($($test:ident => $number:literal),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $test() {
                check_query($number).await;
            }
        )*
    };
}

tpch_queries!(
    q01 => 1, q02 => 2, q03 => 3, q04 => 4, q05 => 5, q06 => 6, q07 => 7, q08 => 8,
    q09 => 9, q10 => 10, q11 => 11, q12 => 12, q13 => 13, q14 => 14, q15 => 15, q16 => 16,
    q17 => 17, q18 => 18, q19 => 19, q20 => 20, q21 => 21, q22 => 22,
);

#[test]
fn answers_parse_and_cells_compare() {
    assert_eq!(
        parse_csv("a,b\n1,\"x, \"\"y\"\"\"\n2,\n"),
        vec![
            vec!["a".to_string(), "b".to_string()],
            vec!["1".to_string(), "x, \"y\"".to_string()],
            vec!["2".to_string(), String::new()],
        ]
    );
    assert!(cell_matches(
        &json!("Supplier#000000647       "),
        "Supplier#000000647"
    ));
    assert!(cell_matches(&json!("5054096266.6828"), "5054096266.6828"));
    assert!(cell_matches(
        &json!(25.537587116854998),
        "25.537587116854997"
    ));
    assert!(!cell_matches(&json!("0.06"), "0.05"));
    assert!(!cell_matches(&json!(" x"), "x"));
}

/// q10 joins customer, orders, lineitem and nation as written: (customer ⋈
/// orders) ⋈ lineitem ⋈ nation. Regrouped by source, MariaDB joins orders
/// with lineitem (its filters included, the string one made exact) and
/// PostgreSQL customer with nation: two statements, not four whole tables.
#[tokio::test]
async fn q10_joins_the_tables_of_each_source_inside_it() {
    load_data();
    let sql = std::fs::read_to_string(tpch_dir().join("queries/q10.sql")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = tpch_server(dir.path()).await;
    let statements = server.source_statements(&sql).await;
    assert_eq!(statements.len(), 2, "{statements:#?}");
    let mariadb = &statements.iter().find(|(s, _)| s == "my").unwrap().1;
    assert!(
        mariadb.contains("`orders`")
            && mariadb.contains("JOIN")
            && mariadb.contains("`lineitem`")
            && mariadb.contains("`l_returnflag` = 'R'")
            && mariadb.contains("`o_orderdate` >="),
        "{mariadb}"
    );
    let postgres = &statements.iter().find(|(s, _)| s == "pg").unwrap().1;
    assert!(
        postgres.contains("\"customer\"")
            && postgres.contains("JOIN")
            && postgres.contains("\"nation\""),
        "{postgres}"
    );
    server.stop().await;
}

/// Aggregates over a cross-source join are computed in two steps: MariaDB
/// aggregates orders per join key (the partial aggregate), DataFusion
/// combines the partials per nation. The answer is the one the same query
/// gives when the aggregate cannot be split (a LIMIT in between keeps it
/// whole), for count, sum, min, max and avg (of integers, and of decimals
/// with their type and rounding).
#[tokio::test]
async fn cross_source_aggregates_push_partial_aggregates() {
    load_data();
    let dir = tempfile::tempdir().unwrap();
    let server = tpch_server(dir.path()).await;
    let select = "SELECT n_name, count(*) AS n, sum(o_totalprice) AS total, min(o_orderdate) AS first, \
                  max(o_totalprice) AS biggest, avg(o_shippriority) AS priority, count(o_clerk) AS clerks, \
                  avg(o_totalprice) AS mean";
    let joined = "pg.customer JOIN my.orders ON c_custkey = o_custkey JOIN pg.nation ON c_nationkey = n_nationkey";
    let split =
        format!("{select} FROM {joined} WHERE o_orderstatus = 'F' GROUP BY n_name ORDER BY n_name");
    let whole = format!(
        "{select} FROM (SELECT * FROM {joined} WHERE o_orderstatus = 'F' LIMIT 100000000) AS j \
         GROUP BY n_name ORDER BY n_name"
    );
    let sources = server.source_statements(&split).await;
    let mariadb = &sources.iter().find(|(s, _)| s == "my").unwrap().1;
    assert!(
        mariadb.contains("GROUP BY `o_custkey`")
            && mariadb.contains("sum(`o_totalprice`)")
            && mariadb.contains("count(`o_totalprice`)"),
        "the decimal average is split too: {mariadb}"
    );
    let rows = |sql: String| {
        let server = &server;
        async move {
            let (status, body) = server
                .admin(Method::POST, "/api/sql", Some(json!({"sql": sql})))
                .await;
            assert_eq!(status, 200, "{body}");
            body["rows"].clone()
        }
    };
    let (split_rows, whole_rows) = (rows(split).await, rows(whole).await);
    assert_eq!(split_rows.as_array().unwrap().len(), 25);
    // PostgreSQL's round(avg(o_totalprice), 6) for ALGERIA (141809.348294736842).
    assert_eq!(split_rows[0][7], json!("141809.348295"));
    assert_eq!(split_rows, whole_rows);
    server.stop().await;
}

/// q04's EXISTS is a semi join of orders with lineitem, both in MariaDB:
/// one statement with `EXISTS (…)` (its answer is checked by `q04`).
#[tokio::test]
async fn q04_semi_join_runs_inside_mariadb() {
    load_data();
    let sql = std::fs::read_to_string(tpch_dir().join("queries/q04.sql")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = tpch_server(dir.path()).await;
    let statements = server.source_statements(&sql).await;
    assert_eq!(statements.len(), 1, "{statements:#?}");
    let (source, mariadb) = &statements[0];
    assert_eq!(source, "my");
    assert!(
        mariadb.contains("EXISTS") && mariadb.contains("GROUP BY"),
        "{mariadb}"
    );
    server.stop().await;
}

/// q18 lists its tables comma-separated (`FROM customer, orders, lineitem
/// WHERE …`): its joins get their keys before they are regrouped, so
/// MariaDB joins orders (with the IN subquery) and lineitem itself and
/// sums per order; lineitem is never read whole (its answer is checked by
/// `q18`).
#[tokio::test]
async fn q18_joins_orders_and_lineitem_inside_mariadb() {
    load_data();
    let sql = std::fs::read_to_string(tpch_dir().join("queries/q18.sql")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = tpch_server(dir.path()).await;
    let statements = server.source_statements(&sql).await;
    let mariadb: Vec<&String> = statements
        .iter()
        .filter(|(source, _)| source == "my")
        .map(|(_, sql)| sql)
        .collect();
    assert_eq!(mariadb.len(), 1, "{statements:#?}");
    assert!(
        mariadb[0].contains("JOIN `tributary_tpch`.`lineitem`") && mariadb[0].contains("EXISTS"),
        "{}",
        mariadb[0]
    );
    server.stop().await;
}

/// q21's EXISTS and NOT EXISTS over lineitem filter l1 only: they are moved
/// from the cross-source join onto l1 and run in MariaDB with it, their
/// correlated references (`l1.l_suppkey` inside the subqueries) keeping
/// their qualifier (its answer is checked by `q21`).
#[tokio::test]
async fn q21_semi_and_anti_joins_run_inside_mariadb() {
    load_data();
    let sql = std::fs::read_to_string(tpch_dir().join("queries/q21.sql")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = tpch_server(dir.path()).await;
    let statements = server.source_statements(&sql).await;
    let mariadb: Vec<&String> = statements
        .iter()
        .filter(|(s, _)| s == "my")
        .map(|(_, sql)| sql)
        .collect();
    assert!(
        mariadb.iter().any(|sql| sql.contains("WHERE EXISTS")
            && sql.contains("NOT EXISTS")
            && sql.contains("`l1`.`l_suppkey`")),
        "{mariadb:#?}"
    );
    server.stop().await;
}

/// q05 joins customer and supplier on their nation keys: regrouped into
/// one PostgreSQL statement that join would return customers × suppliers
/// per nation. Tables of a source are only grouped on a key, so customer
/// stays apart; supplier ⋈ nation ⋈ region (keys) go together.
#[tokio::test]
async fn q05_never_joins_two_tables_of_a_source_on_a_non_key() {
    load_data();
    let sql = std::fs::read_to_string(tpch_dir().join("queries/q05.sql")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = tpch_server(dir.path()).await;
    let statements = server.source_statements(&sql).await;
    for (_, sql) in &statements {
        assert!(
            !(sql.contains("\"customer\"") && sql.contains("\"supplier\"")),
            "{sql}"
        );
    }
    assert!(
        statements.iter().any(|(source, sql)| source == "pg"
            && sql.contains("\"supplier\"")
            && sql.contains("JOIN")
            && sql.contains("\"region\"")),
        "{statements:#?}"
    );
    server.stop().await;
}
