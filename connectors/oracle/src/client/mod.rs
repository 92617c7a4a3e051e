//! The client layer (feature `client`): `OracleConnector`, the `Connector`
//! implementation over the `oracle` crate — a lazy session pool, catalog
//! reads, streaming queries and transactional writes, every driver call on a
//! blocking thread.

mod driver;
mod pool;
mod query;
mod write;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use arrow_schema::SchemaRef;
use async_trait::async_trait;
use chrono::Utc;
use oracle::Connection;
use oracle::sql_type::ToSql;
use tributary_connector::{
    Connector, ConnectorError, Dialect, PingInfo, PoolStatus, Result, RowStream, SchemaFilter,
    SourceConfig, Statement, TableKey, WriteTx,
};
use tributary_schema_cache::{SourceKind, SourceSchema};

use crate::catalog_sql::{self, CatalogQuery, OWNERS_PER_QUERY};
use crate::dialect::OracleDialect;
use crate::introspect::{self, CatalogRows, TextRow};
use crate::json_text::JsonPlans;
use crate::settings::ConnectSettings;
use driver::Param;
use pool::SessionPool;
use write::OracleTx;

/// An Oracle source. Constructing it loads nothing and connects nowhere.
#[derive(Debug)]
pub struct OracleConnector {
    name: String,
    filter: SchemaFilter,
    pool: SessionPool,
    /// Statements with JSON columns, and how they are read (see `json_text.rs`).
    json_plans: Arc<JsonPlans>,
}

impl OracleConnector {
    /// Validates `config` and prepares a lazy, bounded session pool.
    pub fn new(config: &SourceConfig) -> Result<Self> {
        let settings =
            ConnectSettings::from_config(config).map_err(|e| e.for_source(&config.name))?;
        Ok(Self {
            name: config.name.clone(),
            filter: config.schemas.clone(),
            pool: SessionPool::new(settings),
            json_plans: Arc::default(),
        })
    }

    fn named(&self, err: ConnectorError) -> ConnectorError {
        err.for_source(&self.name)
    }

    fn host(&self) -> String {
        self.pool.settings().address()
    }

    async fn introspect_inner(&self) -> Result<SourceSchema> {
        let mut session = self.pool.acquire().await?;
        let (filter, host) = (self.filter.clone(), self.host());
        let (version, current, owners, rows) = session
            .run(move |conn| {
                let version = server_version(conn, &host)?;
                let (current, owners) = owners(conn, &filter, &host)?;
                let mut rows = CatalogRows::default();
                for chunk in owners.chunks(OWNERS_PER_QUERY) {
                    let run = |query: CatalogQuery| text_rows(conn, &query.statement(chunk), &host);
                    rows.relations.extend(run(CatalogQuery::Relations)?);
                    rows.columns.extend(run(CatalogQuery::Columns)?);
                    rows.constraints.extend(run(CatalogQuery::Constraints)?);
                    rows.foreign_keys.extend(run(CatalogQuery::ForeignKeys)?);
                    rows.indexes.extend(run(CatalogQuery::Indexes)?);
                    rows.drift.extend(run(CatalogQuery::Drift)?);
                }
                Ok((version, current, owners, rows))
            })
            .await?;
        Ok(SourceSchema {
            source: self.name.clone(),
            kind: SourceKind::Oracle,
            server_version: version,
            default_schema: Some(current),
            schemas: introspect::assemble(&owners, &rows),
            introspected_at: Utc::now(),
        })
    }

    async fn fingerprints_inner(&self) -> Result<BTreeMap<TableKey, String>> {
        let mut session = self.pool.acquire().await?;
        let (filter, host) = (self.filter.clone(), self.host());
        let rows = session
            .run(move |conn| {
                let (_, owners) = owners(conn, &filter, &host)?;
                let mut rows = Vec::new();
                for chunk in owners.chunks(OWNERS_PER_QUERY) {
                    rows.extend(text_rows(
                        conn,
                        &CatalogQuery::Drift.statement(chunk),
                        &host,
                    )?);
                }
                Ok(rows)
            })
            .await?;
        Ok(introspect::fingerprints(&rows))
    }
}

/// The server's version banner (`Oracle Database 23ai Free Release …`), or
/// its version number when the banner is empty.
fn server_version(conn: &Connection, host: &str) -> Result<String> {
    let (version, banner) = conn.server_version().map_err(|e| driver::error(e, host))?;
    let banner = banner.lines().next().unwrap_or_default().trim().to_string();
    Ok(if banner.is_empty() {
        version.to_string()
    } else {
        banner
    })
}

/// The session's schema and the owners the filter selects.
fn owners(conn: &Connection, filter: &SchemaFilter, host: &str) -> Result<(String, Vec<String>)> {
    let current = text_rows(conn, &Statement::new(catalog_sql::CURRENT_SCHEMA), host)?
        .into_iter()
        .next()
        .and_then(|row| row.into_iter().next().flatten())
        .unwrap_or_default();
    let users: Vec<(String, bool)> = if filter.include.is_empty() {
        Vec::new()
    } else {
        text_rows(conn, &Statement::new(catalog_sql::USERS), host)?
            .into_iter()
            .map(|row| {
                let name = row.first().cloned().flatten().unwrap_or_default();
                let maintained = row.get(1).cloned().flatten().as_deref() == Some("Y");
                (name, maintained)
            })
            .collect()
    };
    let owners = introspect::select_owners(filter, &current, &users);
    Ok((current, owners))
}

/// Every row of a catalog query, each cell as text.
fn text_rows(conn: &Connection, statement: &Statement, host: &str) -> Result<Vec<TextRow>> {
    let error = |e| driver::error(e, host);
    let params = Param::binds(&statement.params)?;
    let refs: Vec<&dyn ToSql> = params.iter().map(|p| p as &dyn ToSql).collect();
    let mut stmt = conn.statement(&statement.sql).build().map_err(error)?;
    let rows = stmt.query(&refs).map_err(error)?;
    rows.map(|row| {
        let row = row.map_err(error)?;
        row.sql_values()
            .iter()
            .map(|v| v.get::<Option<String>>().map_err(error))
            .collect()
    })
    .collect()
}

#[async_trait]
impl Connector for OracleConnector {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> SourceKind {
        SourceKind::Oracle
    }

    fn dialect(&self) -> &dyn Dialect {
        &OracleDialect
    }

    async fn ping(&self) -> Result<PingInfo> {
        let mut session = self.pool.acquire().await.map_err(|e| self.named(e))?;
        let host = self.host();
        let started = Instant::now();
        let version = session
            .run(move |conn| {
                conn.ping().map_err(|e| driver::error(e, &host))?;
                server_version(conn, &host)
            })
            .await
            .map_err(|e| self.named(e))?;
        Ok(PingInfo::new(version, started.elapsed()))
    }

    async fn introspect(&self) -> Result<SourceSchema> {
        self.introspect_inner().await.map_err(|e| self.named(e))
    }

    async fn drift_fingerprints(&self) -> Result<BTreeMap<TableKey, String>> {
        self.fingerprints_inner().await.map_err(|e| self.named(e))
    }

    async fn query(&self, statement: &Statement, schema: Option<SchemaRef>) -> Result<RowStream> {
        let plans = Arc::clone(&self.json_plans);
        query::stream(&self.pool, self.name.clone(), statement, schema, plans)
            .await
            .map_err(|e| self.named(e))
    }

    async fn begin(&self) -> Result<Box<dyn WriteTx>> {
        let session = self.pool.acquire().await.map_err(|e| self.named(e))?;
        Ok(Box::new(OracleTx::new(
            session,
            self.name.clone(),
            self.host(),
        )))
    }

    fn pool_status(&self) -> PoolStatus {
        self.pool.status()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_connector::ErrorKind;

    /// No Oracle Instant Client here: constructing works, the first use
    /// answers the install message (and the process keeps running).
    #[tokio::test]
    async fn without_instant_client_the_first_use_says_what_to_install() {
        let config = SourceConfig::from_url("erp", "oracle://app:pw@127.0.0.1:1/FREEPDB1").unwrap();
        let connector = OracleConnector::new(&config).expect("construction needs no library");
        assert_eq!(connector.pool_status().size, 0);
        let err = connector.ping().await.unwrap_err();
        assert_eq!(err.source_name(), Some("erp"));
        if err.message().contains("DPI-1047") {
            assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
            assert!(err.message().contains("Instant Client"), "{err}");
            assert!(err.message().contains("libaio"), "{err}");
        } else {
            // Instant Client is installed on this machine: nothing listens
            // on port 1, so the source is unavailable naming the address.
            assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
            assert!(err.message().contains("127.0.0.1:1"), "{err}");
        }
        // A second use answers the same, and the pool holds no session.
        assert_eq!(
            connector.ping().await.unwrap_err().kind(),
            ErrorKind::Unavailable
        );
        assert_eq!(connector.pool_status().size, 0);
    }
}
