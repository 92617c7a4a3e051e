//! `SqliteConnector`: the `Connector` implementation over a bounded pool of
//! connections to one SQLite database file.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use arrow_schema::SchemaRef;
use async_trait::async_trait;
use futures::StreamExt;
use tributary_connector::{
    Connector, ConnectorError, Dialect, PingInfo, PoolStatus, Result, RowStream, SourceConfig,
    SqliteDialect, Statement, TableKey, TlsMode, WriteTx,
};
use tributary_schema_cache::{SourceKind, SourceSchema};

use crate::classify::classify;
use crate::introspect;
use crate::pool::{Pool, run_blocking};
use crate::query;
use crate::write::SqliteTx;

/// A registered SQLite database file.
///
/// TLS options and the network fields of the connection (`host`, `user`,
/// `password`, …) do not apply to an embedded database and are ignored.
#[derive(Debug)]
pub struct SqliteConnector {
    name: String,
    config: SourceConfig,
    pool: Pool,
}

impl SqliteConnector {
    /// Checks the config and prepares the (lazy) pool; opens nothing.
    pub fn new(config: &SourceConfig) -> Result<Self, ConnectorError> {
        let name = config.name.clone();
        let fail = |message: String| ConnectorError::config(message).for_source(&name);
        if config.kind != SourceKind::Sqlite {
            return Err(fail(format!(
                "a {} source cannot use the SQLite connector",
                config.kind
            )));
        }
        let path = match (&config.connection.path, &config.connection.url) {
            (Some(path), _) => path.clone(),
            (None, Some(_)) => {
                let mut normalized = config.clone();
                normalized.normalize().map_err(|e| e.for_source(&name))?;
                normalized
                    .connection
                    .path
                    .ok_or_else(|| fail("a sqlite source needs `path`".into()))?
            }
            (None, None) => {
                return Err(fail(
                    "a sqlite source needs `path` (or a sqlite:// URL)".into(),
                ));
            }
        };
        check_path(&path).map_err(fail)?;
        if config.tls.mode != TlsMode::default() || config.tls.ca_file.is_some() {
            tracing::info!(source = %name, "TLS options do not apply to a SQLite file and are ignored");
        }
        let options = config.pool.clone();
        options.validate().map_err(|e| e.for_source(&name))?;
        Ok(Self {
            name,
            config: config.clone(),
            pool: Pool::new(path, options),
        })
    }

    fn tag(&self, err: ConnectorError) -> ConnectorError {
        err.for_source(&self.name)
    }
}

/// Refuses paths a pool cannot share (in-memory databases, URIs).
fn check_path(path: &Path) -> Result<(), String> {
    let text = path.to_string_lossy();
    if text.trim().is_empty() {
        return Err("the SQLite path is empty".into());
    }
    if text == ":memory:" || text.starts_with("file:") {
        return Err(format!(
            "`{text}` is not a database file: each pooled connection would see its own database; use a file path"
        ));
    }
    Ok(())
}

#[async_trait]
impl Connector for SqliteConnector {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> SourceKind {
        SourceKind::Sqlite
    }

    fn dialect(&self) -> &dyn Dialect {
        &SqliteDialect
    }

    async fn ping(&self) -> Result<PingInfo> {
        let started = Instant::now();
        let conn = self.pool.acquire().await.map_err(|e| self.tag(e))?;
        let (_conn, version) = run_blocking(conn, |c| {
            c.timed(|db| {
                db.query_row("SELECT sqlite_version()", [], |r| r.get::<_, String>(0))
                    .map_err(classify)
            })
        })
        .await
        .map_err(|e| self.tag(e))?;
        Ok(PingInfo::new(
            version.map_err(|e| self.tag(e))?,
            started.elapsed(),
        ))
    }

    async fn introspect(&self) -> Result<SourceSchema> {
        let conn = self.pool.acquire().await.map_err(|e| self.tag(e))?;
        let (source, filter) = (self.name.clone(), self.config.schemas.clone());
        let (_conn, model) = run_blocking(conn, move |c| {
            c.timed(|db| introspect::introspect(db, &source, &filter))
        })
        .await
        .map_err(|e| self.tag(e))?;
        model.map_err(|e| self.tag(e))
    }

    async fn drift_fingerprints(&self) -> Result<BTreeMap<TableKey, String>> {
        let conn = self.pool.acquire().await.map_err(|e| self.tag(e))?;
        let filter = self.config.schemas.clone();
        let (_conn, fingerprints) = run_blocking(conn, move |c| {
            c.timed(|db| introspect::drift_fingerprints(db, &filter))
        })
        .await
        .map_err(|e| self.tag(e))?;
        fingerprints.map_err(|e| self.tag(e))
    }

    async fn query(&self, statement: &Statement, schema: Option<SchemaRef>) -> Result<RowStream> {
        let stream = query::query(&self.pool, statement, schema)
            .await
            .map_err(|e| self.tag(e))?;
        let schema = stream.schema().clone();
        let connected = stream.connected();
        let source = self.name.clone();
        let named = RowStream::new(
            schema,
            stream.map(move |batch| batch.map_err(|e| e.for_source(&source))),
        );
        Ok(match connected {
            Some(at) => named.connected_at(at),
            None => named,
        })
    }

    async fn begin(&self) -> Result<Box<dyn WriteTx>> {
        let tx = SqliteTx::begin(&self.pool, &self.name)
            .await
            .map_err(|e| self.tag(e))?;
        Ok(Box::new(tx))
    }

    fn pool_status(&self) -> PoolStatus {
        self.pool.status()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_connector::ErrorKind;

    #[test]
    fn construction_opens_nothing() {
        let config = SourceConfig::from_url("demo", "sqlite:///nonexistent/dir/demo.db").unwrap();
        let connector = SqliteConnector::new(&config).unwrap();
        assert_eq!(connector.pool_status().size, 0);
        assert_eq!(connector.pool_status().max_size, 10);
    }

    #[test]
    fn in_memory_and_other_kinds_are_refused() {
        let mut config = SourceConfig::from_url("demo", "sqlite:///tmp/x.db").unwrap();
        config.connection.path = Some(":memory:".into());
        let err = SqliteConnector::new(&config).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert_eq!(err.source_name(), Some("demo"));
        let mut config = SourceConfig::from_url("demo", "sqlite:///tmp/x.db").unwrap();
        config.kind = SourceKind::Postgres;
        assert_eq!(
            SqliteConnector::new(&config).unwrap_err().kind(),
            ErrorKind::Config
        );
    }
}
