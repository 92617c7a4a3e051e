//! Shared helpers of the SQLite integration tests: a fresh database file per
//! test (in its own temporary directory, so tests run in parallel) and a
//! connector over it.

#![allow(dead_code)] // each test crate uses a subset
#![allow(clippy::expect_used)] // test set-up fails loudly

use std::path::PathBuf;

use tempfile::TempDir;
use tributary_connector::SourceConfig;
use tributary_connector_sqlite::SqliteConnector;

/// A database file that lives as long as the value.
pub struct TestDb {
    pub dir: TempDir,
    pub path: PathBuf,
}

impl TestDb {
    /// Creates the file and runs `sql` in it.
    pub fn new(sql: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("test.db");
        let db = rusqlite::Connection::open(&path).expect("create database");
        db.execute_batch(sql).expect("fixture SQL");
        Self { dir, path }
    }

    /// A direct connection, for changes made "outside" the connector.
    pub fn raw(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(&self.path).expect("open database")
    }

    /// A config for this file, built from a `sqlite://` URL like an admin would.
    pub fn config(&self) -> SourceConfig {
        SourceConfig::from_url("lite", &format!("sqlite://{}", self.path.display()))
            .expect("config")
    }

    pub fn connector(&self) -> SqliteConnector {
        SqliteConnector::new(&self.config()).expect("connector")
    }
}
