//! Shared helpers for the connector's database tests: a uniquely named
//! database per test (dropped at the end, also when the test panics), source
//! configs pointing at it, and setup SQL run through a separate admin
//! connection. A test server that does not answer fails the test.

#![allow(dead_code)] // each test file uses a different part of this module
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Schema};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder};
use tributary_connector::SourceConfig;
use tributary_connector::testkit;

/// A database of its own for one test.
pub struct TestDb {
    pub name: String,
    /// True when the server is MariaDB.
    pub mariadb: bool,
    /// The server's `VERSION()`.
    pub version: String,
    admin: Option<Conn>,
}

async fn admin_connection() -> Conn {
    tributary_connector::tls::install_crypto_provider();
    let url = testkit::mysql_url();
    let opts = Opts::from_url(&url).expect("TRIBUTARY_TEST_MYSQL_URL is not a mysql:// URL");
    // TCP only, as the connector does: a local socket may belong to another server.
    let opts: Opts = OptsBuilder::from_opts(opts).prefer_socket(false).into();
    let host = format!("{}:{}", opts.ip_or_hostname(), opts.tcp_port());
    Conn::new(opts).await.unwrap_or_else(|e| {
        panic!("the MySQL/MariaDB test server at {host} does not answer (set TRIBUTARY_TEST_MYSQL_URL): {e}")
    })
}

impl TestDb {
    /// Creates `<prefix>_<unique>` and runs `statements` in it.
    pub async fn create(prefix: &str, statements: &[&str]) -> Self {
        let mut admin = admin_connection().await;
        let version: String = admin
            .query_first("SELECT VERSION()")
            .await
            .unwrap()
            .unwrap();
        let name = testkit::unique_name(prefix);
        admin
            .query_drop(format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
            .await
            .unwrap();
        admin.query_drop(format!("USE `{name}`")).await.unwrap();
        let mut db = Self {
            name,
            mariadb: version.contains("MariaDB"),
            version,
            admin: Some(admin),
        };
        db.exec(statements).await;
        db
    }

    /// Runs statements on the admin connection, inside the test database.
    pub async fn exec(&mut self, statements: &[&str]) {
        let admin = self.admin.as_mut().expect("database already dropped");
        for statement in statements {
            admin
                .query_drop(*statement)
                .await
                .unwrap_or_else(|e| panic!("setup statement failed: {e}\n{statement}"));
        }
    }

    /// How many statements run in this database now, on connections other
    /// than the admin's (idle connections do not count). MySQL 9 refuses
    /// to list the process list while another test's statement holds text
    /// its utf8mb3 view cannot hold (error 3854): asked again then.
    pub async fn running_statements(&mut self) -> i64 {
        let admin = self.admin.as_mut().expect("database already dropped");
        let mut attempts = 0;
        loop {
            let count = admin
                .exec_first(
                    "SELECT count(*) FROM information_schema.PROCESSLIST \
                     WHERE DB = ? AND COMMAND <> 'Sleep' AND ID <> CONNECTION_ID()",
                    (self.name.as_str(),),
                )
                .await;
            match count {
                Err(mysql_async::Error::Server(e)) if e.code == 3854 && attempts < 50 => {
                    attempts += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                other => return other.unwrap().unwrap(),
            }
        }
    }

    /// Polls until `count` statements run in this database, for at most
    /// 20 seconds; returns the last count seen.
    pub async fn await_running(&mut self, count: i64) -> i64 {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let running = self.running_statements().await;
            if running == count || tokio::time::Instant::now() >= deadline {
                return running;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// The server's major version (8 or 9 for MySQL, 10 or 11 for MariaDB).
    pub fn major_version(&self) -> u32 {
        self.version
            .split('.')
            .next()
            .and_then(|major| major.parse().ok())
            .unwrap_or_default()
    }

    /// A source config for this database (kind from the URL: mysql).
    pub fn config(&self, source: &str) -> SourceConfig {
        let mut config = SourceConfig::from_url(source, &testkit::mysql_url()).unwrap();
        config.connection.database = Some(self.name.clone());
        config
    }

    /// Drops the database.
    pub async fn drop_db(mut self) {
        if let Some(mut admin) = self.admin.take() {
            admin
                .query_drop(format!("DROP DATABASE `{}`", self.name))
                .await
                .unwrap();
            admin.disconnect().await.unwrap();
        }
    }
}

impl Drop for TestDb {
    /// A test that panicked before `drop_db` still removes its database, from
    /// a thread of its own (the test's runtime may be unwinding).
    fn drop(&mut self) {
        if self.admin.take().is_none() {
            return;
        }
        let name = self.name.clone();
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let mut admin = admin_connection().await;
                let _ = admin
                    .query_drop(format!("DROP DATABASE IF EXISTS `{name}`"))
                    .await;
                let _ = admin.disconnect().await;
            });
        });
        let _ = cleanup.join();
    }
}

/// `testkit::batch_to_strings`, also for `Timestamp(µs, "UTC")` columns:
/// arrow-cast formats named time zones only with its `chrono-tz` feature,
/// which the workspace does not enable, so such columns are relabelled with
/// the equivalent fixed offset `+00:00` first (same instants).
pub fn batch_to_strings(batch: &RecordBatch) -> Vec<Vec<Option<String>>> {
    let utc = Some(Arc::<str>::from("+00:00"));
    let fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Timestamp(unit, Some(_)) => f
                .as_ref()
                .clone()
                .with_data_type(DataType::Timestamp(*unit, utc.clone())),
            _ => f.as_ref().clone(),
        })
        .collect();
    let columns = batch
        .columns()
        .iter()
        .zip(&fields)
        .map(|(c, f)| arrow_cast::cast(c, f.data_type()).unwrap())
        .collect();
    let relabelled = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
    testkit::batch_to_strings(&relabelled)
}
