//! `MySqlConnector`: the `Connector` implementation for MySQL and MariaDB,
//! tying the pool, introspection, streaming reads and the write path together.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use arrow_schema::SchemaRef;
use async_trait::async_trait;
use chrono::Utc;
use mysql_async::prelude::Queryable;
use tributary_connector::advice::{pool_larger_than_limit, unless_unsaid};
use tributary_connector::{
    Connector, ConnectorError, Dialect, MySqlDialect, PingInfo, PoolStatus, Result, RowStream,
    SourceConfig, Statement, TableKey, WriteTx,
};
use tributary_schema_cache::{SourceKind, SourceSchema};

use crate::advice;
use crate::classify::classify;
use crate::flavor::{Flavor, ServerInfo};
use crate::introspect::{self, Selection};
use crate::pool::ConnectionPool;
use crate::query;
use crate::values::to_param;
use crate::write::MySqlTx;

static WITH_RETURNING: MySqlDialect = MySqlDialect { mariadb: true };
static WITHOUT_RETURNING: MySqlDialect = MySqlDialect { mariadb: false };

/// A MySQL or MariaDB source. The flavor is detected on every new
/// connection from the server's version string; until the first connection
/// [`Connector::kind`] is the configured kind.
#[derive(Debug)]
pub struct MySqlConnector {
    name: String,
    configured_kind: SourceKind,
    selection: Selection,
    server: Arc<ServerInfo>,
    pool: ConnectionPool,
}

impl MySqlConnector {
    /// Validates `config` and prepares a lazy, bounded pool; connects to nothing.
    pub fn new(config: &SourceConfig) -> Result<Self, ConnectorError> {
        Self::build(config).map_err(|e| e.for_source(&config.name))
    }

    fn build(config: &SourceConfig) -> Result<Self> {
        if !matches!(config.kind, SourceKind::Mysql | SourceKind::Mariadb) {
            return Err(ConnectorError::config(format!(
                "the MySQL connector cannot serve a {} source",
                config.kind
            )));
        }
        let mut config = config.clone();
        config.normalize()?;
        let server = Arc::new(ServerInfo::default());
        let pool = ConnectionPool::new(&config, Arc::clone(&server))?;
        Ok(Self {
            name: config.name.clone(),
            configured_kind: config.kind,
            selection: Selection {
                database: config.connection.database.clone(),
                filter: config.schemas.clone(),
            },
            server,
            pool,
        })
    }

    fn flavor(&self) -> Flavor {
        self.server.flavor().unwrap_or(match self.configured_kind {
            SourceKind::Mariadb => Flavor::MariaDb,
            _ => Flavor::MySql,
        })
    }

    /// MariaDB 10.5+ returns from inserts and deletes; older MariaDB and
    /// MySQL do not.
    fn mysql_dialect(&self) -> &'static MySqlDialect {
        if self.server.has_returning() {
            &WITH_RETURNING
        } else {
            &WITHOUT_RETURNING
        }
    }

    fn named(&self, err: ConnectorError) -> ConnectorError {
        err.for_source(&self.name)
    }

    async fn server_version(&self, conn: &mut mysql_async::Conn) -> Result<String> {
        let version: Option<String> = conn
            .query_first("SELECT VERSION()")
            .await
            .map_err(classify)?;
        let version = version.unwrap_or_default();
        self.server.record(&version);
        Ok(version)
    }

    /// Advice when the pool may open more connections than the server or
    /// the account will accept; none when the server will not say.
    async fn pool_advice(&self, conn: &mut mysql_async::Conn) -> Option<String> {
        let limits = advice::connection_limits(conn, self.flavor()).await;
        let pool = self.pool.status();
        unless_unsaid(
            &self.name,
            limits.map(|limits| pool_larger_than_limit(&pool, &limits)),
        )
    }

    /// Advice when the selected databases' tables outgrow the buffer
    /// pool. Advice only: a server that will not say (no rights on a
    /// table's statistics, no InnoDB) gets none, and the ping stands.
    async fn buffer_pool_advice(&self, conn: &mut mysql_async::Conn) -> Option<String> {
        let sizes = async {
            let schemas = self.selection.schemas(conn).await?;
            if schemas.is_empty() {
                return Ok(None);
            }
            advice::buffer_pool_and_tables(conn, &schemas).await
        };
        let flavor = self.flavor();
        let advice = sizes.await.map(|sizes| {
            sizes.and_then(|(pool, tables)| advice::buffer_pool(flavor, pool, tables))
        });
        unless_unsaid(&self.name, advice)
    }

    async fn introspect_inner(&self) -> Result<SourceSchema> {
        let mut conn = self.pool.acquire().await?;
        let server_version = self.server_version(&mut conn).await?;
        let flavor = self.flavor();
        let schemas = self.selection.schemas(&mut conn).await?;
        let schemas = introspect::schemas(&mut conn, flavor, &schemas).await?;
        Ok(SourceSchema {
            source: self.name.clone(),
            kind: flavor.kind(),
            server_version,
            default_schema: self.selection.database.clone(),
            schemas,
            introspected_at: Utc::now(),
        })
    }

    async fn fingerprints_inner(&self) -> Result<BTreeMap<TableKey, String>> {
        let mut conn = self.pool.acquire().await?;
        let schemas = self.selection.schemas(&mut conn).await?;
        introspect::fingerprints(&mut conn, self.flavor(), &schemas).await
    }

    async fn query_inner(
        &self,
        statement: &Statement,
        schema: Option<SchemaRef>,
    ) -> Result<RowStream> {
        let params = statement
            .params
            .iter()
            .map(to_param)
            .collect::<Result<Vec<_>>>()?;
        let conn = self.pool.acquire().await?;
        let connected = Instant::now();
        let stream = query::stream(
            conn,
            self.name.clone(),
            statement.sql.clone(),
            params,
            schema,
        )
        .await?;
        Ok(stream.connected_at(connected))
    }
}

#[async_trait]
impl Connector for MySqlConnector {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> SourceKind {
        self.server
            .flavor()
            .map_or(self.configured_kind, Flavor::kind)
    }

    fn dialect(&self) -> &dyn Dialect {
        self.mysql_dialect()
    }

    async fn ping(&self) -> Result<PingInfo> {
        let mut conn = self.pool.acquire().await.map_err(|e| self.named(e))?;
        let started = Instant::now();
        let version = self
            .server_version(&mut conn)
            .await
            .map_err(|e| self.named(e))?;
        let mut info = PingInfo::new(version, started.elapsed());
        info.advice.extend(self.pool_advice(&mut conn).await);
        info.advice.extend(self.buffer_pool_advice(&mut conn).await);
        Ok(info)
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
        let tx = self.pool.begin().await.map_err(|e| self.named(e))?;
        // The flavor is known once a connection exists.
        Ok(Box::new(MySqlTx::new(
            tx,
            self.name.clone(),
            *self.mysql_dialect(),
        )))
    }

    fn pool_status(&self) -> PoolStatus {
        self.pool.status()
    }
}
