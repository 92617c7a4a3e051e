//! `SqlServerConnector`: the `Connector` implementation for SQL Server,
//! tying the pool, introspection, streaming reads and the write path
//! together.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use arrow_schema::SchemaRef;
use async_trait::async_trait;
use chrono::Utc;
use tributary_connector::{
    Connector, ConnectorError, Dialect, PingInfo, PoolStatus, Result, RowStream, SchemaFilter,
    SourceConfig, Statement, TableKey, WriteTx,
};
use tributary_schema_cache::{SourceKind, SourceSchema};

use crate::dialect::SqlServerDialect;
use crate::introspect;
use crate::params::to_params;
use crate::pool::ConnectionPool;
use crate::query::{self, Read};
use crate::settings::settings;
use crate::write::SqlServerTx;

/// A registered SQL Server database.
#[derive(Debug)]
pub struct SqlServerConnector {
    name: String,
    schemas: SchemaFilter,
    pool: ConnectionPool,
}

impl SqlServerConnector {
    /// Validates `config` (of kind `sqlserver`) and prepares a lazy, bounded
    /// pool; connects to nothing. Call [`Connector::ping`] to check the
    /// database answers.
    pub fn new(config: &SourceConfig) -> Result<Self, ConnectorError> {
        Self::build(config).map_err(|e| e.for_source(&config.name))
    }

    fn build(config: &SourceConfig) -> Result<Self> {
        let mut config = config.clone();
        config.normalize()?;
        let settings = settings(&config)?;
        Ok(Self {
            name: config.name.clone(),
            schemas: config.schemas.clone(),
            pool: ConnectionPool::new(settings, &config.pool)?,
        })
    }

    fn named(&self, err: ConnectorError) -> ConnectorError {
        err.for_source(&self.name)
    }

    async fn introspect_inner(&self) -> Result<SourceSchema> {
        let mut conn = self.pool.acquire().await?;
        let endpoint = self.pool.endpoint();
        let server = introspect::server_info(&mut conn, endpoint).await?;
        let schemas = introspect::schemas(&mut conn, &self.schemas, endpoint).await?;
        let model = introspect::model(&mut conn, &schemas, endpoint).await?;
        Ok(SourceSchema {
            source: self.name.clone(),
            kind: SourceKind::Sqlserver,
            server_version: server.version,
            default_schema: server.default_schema,
            schemas: model,
            introspected_at: Utc::now(),
        })
    }

    async fn fingerprints_inner(&self) -> Result<BTreeMap<TableKey, String>> {
        let mut conn = self.pool.acquire().await?;
        let endpoint = self.pool.endpoint();
        let schemas: BTreeSet<String> = introspect::schemas(&mut conn, &self.schemas, endpoint)
            .await?
            .into_iter()
            .collect();
        introspect::fingerprints(&mut conn, &schemas, endpoint).await
    }

    async fn query_inner(
        &self,
        statement: &Statement,
        schema: Option<SchemaRef>,
    ) -> Result<RowStream> {
        let params = to_params(&statement.params)?;
        let conn = self.pool.acquire().await?;
        let connected = Instant::now();
        let stream = query::stream(
            conn,
            Read {
                source: self.name.clone(),
                endpoint: self.pool.endpoint().to_string(),
                sql: statement.sql.clone(),
                params,
                schema,
            },
        )
        .await?;
        Ok(stream.connected_at(connected))
    }
}

#[async_trait]
impl Connector for SqlServerConnector {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> SourceKind {
        SourceKind::Sqlserver
    }

    fn dialect(&self) -> &dyn Dialect {
        &SqlServerDialect
    }

    async fn ping(&self) -> Result<PingInfo> {
        async {
            let mut conn = self.pool.acquire().await?;
            let started = Instant::now();
            let server = introspect::server_info(&mut conn, self.pool.endpoint()).await?;
            Ok(PingInfo::new(server.version, started.elapsed()))
        }
        .await
        .map_err(|e| self.named(e))
    }

    async fn introspect(&self) -> Result<SourceSchema> {
        self.introspect_inner().await.map_err(|e| self.named(e))
    }

    async fn drift_fingerprints(&self) -> Result<BTreeMap<TableKey, String>> {
        self.fingerprints_inner().await.map_err(|e| self.named(e))
    }

    async fn query(&self, statement: &Statement, schema: Option<SchemaRef>) -> Result<RowStream> {
        self.query_inner(statement, schema)
            .await
            .map_err(|e| self.named(e))
    }

    async fn begin(&self) -> Result<Box<dyn WriteTx>> {
        let conn = self.pool.acquire().await.map_err(|e| self.named(e))?;
        let tx = SqlServerTx::begin(conn, &self.name, self.pool.endpoint()).await?;
        Ok(Box::new(tx))
    }

    fn pool_status(&self) -> PoolStatus {
        self.pool.status()
    }
}
