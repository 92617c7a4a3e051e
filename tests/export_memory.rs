//! Memory stays bounded on a 6-million-row export: the real server binary
//! streams `SELECT *` over a 6,000,000-row PostgreSQL view as NDJSON while
//! its peak resident memory is read from /proc. `benches/export_memory.sh`
//! takes the same measurement with the release binary.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly
#![allow(clippy::print_stderr)] // the measurement is reported, not only asserted

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tributary_connector::testkit;

const ROWS: u64 = 6_000_000;

/// The view, in a schema of its own so registering the source introspects
/// nothing else. `CREATE OR REPLACE` keeps the setup idempotent.
const SCHEMA: &str = "tributary_export";
const VIEW_DDL: &str = "CREATE SCHEMA IF NOT EXISTS tributary_export;
    CREATE OR REPLACE VIEW tributary_export.tributary_export_6m AS
    SELECT g AS id,
           'row-' || g AS label,
           (g * 0.01)::numeric(12,2) AS amount,
           timestamp '2020-01-01' + g * interval '1 second' AS at
    FROM generate_series(1::bigint, 6000000::bigint) AS g";

/// The bound on the server's peak RSS (VmHWM).
///
/// Held materialized in its most compact form, Arrow, the result is
///   id Int64 8 B + label Utf8 (≈10.9 B of text + 4 B offset) + amount
///   Decimal128 16 B + at Timestamp 8 B ≈ 47 B/row × 6,000,000 ≈ 280 MB,
/// before any server baseline; as NDJSON text (≈85 B/line) it is ≈500 MB,
/// and as the JSON answer's `Vec<Vec<Value>>` well over 1 GB. A server that
/// streams holds a few batches of 8,192 rows at a time (measured with the
/// debug build: 69 MiB before the export, 110 MiB throughout it), so
/// 200 MiB is far above streaming and below any materialized copy.
const PEAK_BOUND_BYTES: u64 = 200 * 1024 * 1024;

/// How much RSS may still grow between the first million rows and the last:
/// the five millions in between would add ≈235 MB if they were kept.
const GROWTH_BOUND_BYTES: u64 = 32 * 1024 * 1024;

/// The server child process, killed when the test ends however it ends.
struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `VmXXX:` line of /proc/<pid>/status, in bytes.
fn proc_status_bytes(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(key))
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"));
    let kib: u64 = line
        .trim_start_matches(key)
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kib * 1024
}

/// Counts lines as chunks arrive, keeping only the first and the last.
#[derive(Default)]
struct Lines {
    count: u64,
    first: Option<Vec<u8>>,
    last: Vec<u8>,
    partial: Vec<u8>,
}

impl Lines {
    fn feed(&mut self, chunk: &[u8]) {
        let ends: Vec<usize> = chunk
            .iter()
            .enumerate()
            .filter_map(|(i, b)| (*b == b'\n').then_some(i))
            .collect();
        let (Some(&first_end), Some(&last_end)) = (ends.first(), ends.last()) else {
            self.partial.extend_from_slice(chunk);
            return;
        };
        let mut first_line = std::mem::take(&mut self.partial);
        first_line.extend_from_slice(&chunk[..first_end]);
        if self.count == 0 {
            self.first = Some(first_line.clone());
        }
        self.last = match ends.len() {
            1 => first_line,
            n => chunk[ends[n - 2] + 1..last_end].to_vec(),
        };
        self.count += ends.len() as u64;
        self.partial = chunk[last_end + 1..].to_vec();
    }

    fn parsed(line: &[u8]) -> Value {
        serde_json::from_slice(line).unwrap()
    }
}

#[tokio::test]
async fn a_six_million_row_export_streams_in_bounded_memory() {
    common::postgres_exec(VIEW_DDL).await;
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    // The row cap (default 100,000) must not cut the export, nor the time
    // limit (default 60 s) a debug build's slower stream.
    let config = dir.path().join("tributary.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\ndata_dir = {:?}\nadmin_token = {:?}\n\
             refresh_interval_secs = 0\nquery_timeout_secs = 3600\nmax_rows = {}\nlog = \"warn\"\n",
            dir.path().join("data").display().to_string(),
            common::TOKEN,
            ROWS * 2,
        ),
    )
    .unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_tributary"));
    command
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for var in [
        "TRIBUTARY_LISTEN",
        "TRIBUTARY_DATA_DIR",
        "TRIBUTARY_CONFIG",
        "TRIBUTARY_ADMIN_TOKEN",
        "TRIBUTARY_REFRESH_INTERVAL_SECS",
        "TRIBUTARY_LOG",
    ] {
        command.env_remove(var);
    }
    let server = Server {
        child: command.spawn().unwrap(),
        base: format!("http://127.0.0.1:{port}"),
    };
    let pid = server.child.id();
    let http = common::http_client();
    let mut up = false;
    for _ in 0..200 {
        if http
            .get(format!("{}/healthz", server.base))
            .send()
            .await
            .is_ok()
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "the server answers /healthz");

    // The source's own statement timeout (default 30 s) would cancel the
    // export on the PostgreSQL side.
    let registered = http
        .post(format!("{}/admin/sources", server.base))
        .bearer_auth(common::TOKEN)
        .json(&json!({
            "name": "pg",
            "url": testkit::postgres_url(),
            "schemas": {"include": [SCHEMA]},
            "pool": {"statement_timeout_ms": 0},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        registered.status(),
        201,
        "{}",
        registered.text().await.unwrap()
    );
    let baseline = proc_status_bytes(pid, "VmRSS:");

    let started = Instant::now();
    let mut response = http
        .post(format!("{}/api/sql", server.base))
        .bearer_auth(common::TOKEN)
        .header("accept", "application/x-ndjson")
        .json(&json!({"sql": "SELECT * FROM pg.tributary_export.tributary_export_6m"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/x-ndjson"
    );
    let mut lines = Lines::default();
    let mut bytes = 0_usize;
    // RSS after each million rows: flat when streaming, a ramp when not.
    let mut rss_per_million = Vec::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        bytes += chunk.len();
        lines.feed(&chunk);
        if lines.count >= (rss_per_million.len() as u64 + 1) * 1_000_000 {
            rss_per_million.push(proc_status_bytes(pid, "VmRSS:"));
        }
    }
    let elapsed = started.elapsed();
    let peak = proc_status_bytes(pid, "VmHWM:");
    let mib = |b: u64| b / (1024 * 1024);
    eprintln!(
        "export: {} rows, {} MiB of NDJSON in {:.1} s; server RSS {} MiB before, \
         after each million rows {:?} MiB, peak (VmHWM) {} MiB, bound {} MiB",
        lines.count,
        bytes / (1024 * 1024),
        elapsed.as_secs_f64(),
        mib(baseline),
        rss_per_million.iter().map(|b| mib(*b)).collect::<Vec<_>>(),
        mib(peak),
        mib(PEAK_BOUND_BYTES),
    );

    assert!(lines.partial.is_empty(), "the body ends with a full line");
    assert_eq!(lines.count, ROWS, "every row, none cut by the row cap");
    assert_eq!(
        Lines::parsed(lines.first.as_deref().unwrap()),
        json!({"id": 1, "label": "row-1", "amount": "0.01", "at": "2020-01-01T00:00:01"})
    );
    assert_eq!(
        Lines::parsed(&lines.last),
        json!({"id": 6_000_000, "label": "row-6000000", "amount": "60000.00", "at": "2020-03-10T10:40:00"})
    );
    assert!(
        peak < PEAK_BOUND_BYTES,
        "peak RSS {} MiB: the export was held in memory",
        mib(peak)
    );
    let growth = rss_per_million[5].saturating_sub(rss_per_million[0]);
    assert!(
        growth < GROWTH_BOUND_BYTES,
        "RSS grew {} MiB with the rows: they are kept somewhere",
        mib(growth)
    );
}
