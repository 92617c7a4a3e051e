//! The PostgreSQL connector: a deadpool pool of tokio-postgres connections
//! (rustls TLS), introspection from `pg_catalog`, streaming reads decoded
//! from the binary wire format, and transactional writes with `RETURNING`.
//!
//! It also serves KingbaseES (`kingbase://user:pw@host:54321/db`), which
//! speaks the same protocol: a source of kind `kingbase` gets the
//! [`Flavor::Kingbase`], which introspects from `information_schema` and
//! `sys_catalog` instead of `pg_catalog`; see [`flavor`] for what differs
//! (compatibility modes, upper-case names, user-defined types).
//!
//! * Sessions are opened with `-c TimeZone=UTC -c DateStyle=ISO -c
//!   standard_conforming_strings=on` and, when
//!   the pool sets one, `-c statement_timeout=N` (a statement over the limit
//!   fails with a `Timeout` error).
//! * The type mapping, the binary decoding and the text fallback for types
//!   without a decoder are described in [`types`].
//! * Failures carry the source name and a kind chosen by SQLSTATE: `23xxx`
//!   constraint, `40001`/`40P01` conflict, `28xxx` authentication,
//!   `42P01`/`42703` not found, `22xxx`/`42601` (and other `42xxx`) invalid
//!   input, `57014` timeout, `08xxx`/`57P01`–`57P03` unavailable.

mod advice;
mod decode;
mod encode;
mod error;
pub mod flavor;
mod introspect;
mod introspect_kingbase;
mod pool;
mod query;
pub mod types;
mod write;

use std::collections::BTreeMap;
use std::time::Instant;

use arrow_schema::SchemaRef;
use async_trait::async_trait;
use deadpool_postgres::{Object, Pool};
use tributary_connector::advice::{pool_larger_than_limit, unless_unsaid};
use tributary_connector::{
    Connector, ConnectorError, Dialect, ErrorKind, PingInfo, PoolStatus, PostgresDialect, Result,
    RowStream, SchemaFilter, SourceConfig, Statement, TableKey, WaitTimeouts, WriteOp,
    WriteOutcome, WriteTx,
};
use tributary_schema_cache::{SourceKind, SourceSchema};

pub use encode::PgParam;
pub use flavor::Flavor;

use crate::error::{from_pg, from_pool, is_stale_plan};
use crate::query::{
    ConnGuard, DegradedStatements, check_params, output_schema, prepare_read, stream_batches,
};

/// A registered PostgreSQL (or KingbaseES) database.
pub struct PostgresConnector {
    name: String,
    pool: Pool,
    schemas: SchemaFilter,
    dialect: PostgresDialect,
    flavor: Flavor,
    /// KingbaseES reads that needed their text columns cast.
    degraded: DegradedStatements,
    wait_timeouts: WaitTimeouts,
}

impl std::fmt::Debug for PostgresConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConnector")
            .field("name", &self.name)
            .field("flavor", &self.flavor)
            .field("schemas", &self.schemas)
            .field("pool", &self.pool.status())
            .finish_non_exhaustive()
    }
}

impl PostgresConnector {
    /// Builds the connector and its (lazy) pool from a normalized source
    /// config of kind `postgres` or `kingbase` (which chooses the
    /// [`Flavor`]). Nothing connects until the first use; call
    /// [`Connector::ping`] to check the database answers.
    pub fn new(config: &SourceConfig) -> Result<Self, ConnectorError> {
        let flavor = Flavor::from_kind(config.kind).map_err(|e| e.for_source(&config.name))?;
        let pool = pool::build_pool(config).map_err(|e| e.for_source(&config.name))?;
        Ok(Self {
            name: config.name.clone(),
            pool,
            schemas: config.schemas.clone(),
            dialect: PostgresDialect,
            flavor,
            degraded: DegradedStatements::default(),
            wait_timeouts: WaitTimeouts::default(),
        })
    }

    /// The server flavor this connector was configured for.
    pub fn flavor(&self) -> Flavor {
        self.flavor
    }

    async fn conn(&self) -> Result<Object> {
        self.wait_timeouts
            .noted(self.pool.get().await.map_err(from_pool))
    }

    /// Advice when the pool may open more connections than PostgreSQL
    /// will accept (see `tributary_connector::advice`). Advice only: a
    /// server that will not say (KingbaseES, no rights) gets none.
    async fn pool_advice(&self, conn: &Object) -> Option<String> {
        if self.flavor != Flavor::Postgres {
            return None;
        }
        let limits = advice::connection_limits(conn).await;
        let pool = self.pool_status();
        unless_unsaid(
            &self.name,
            limits.map(|limits| pool_larger_than_limit(&pool, &limits)),
        )
    }

    async fn start_query(
        &self,
        statement: &Statement,
        schema: Option<SchemaRef>,
    ) -> Result<RowStream> {
        // Guarded from the start: if the caller gives up while the statement
        // runs (a time limit, a client that left), it is cancelled on the
        // server and the connection is not reused mid-statement.
        let mut guard = ConnGuard::new(self.conn().await?);
        let connected = Instant::now();
        let params = PgParam::all(&statement.params);
        let mut retried = false;
        let started = loop {
            let Some(conn) = guard.conn() else {
                return Err(ConnectorError::internal("the connection went away"));
            };
            // Only statements with parameters, or marked as repeating, are
            // kept prepared: their text comes again (the engine's fast
            // path), whereas federated SQL inlines its values and would
            // grow the per-connection cache without end.
            let cached = !statement.params.is_empty() || statement.repeats;
            let prepared = match prepare_read(
                self.flavor,
                conn,
                &statement.sql,
                cached,
                schema.as_ref(),
                &self.degraded,
            )
            .await
            {
                Ok(prepared) => prepared,
                Err(e) => break Err(e),
            };
            if let Err(e) = check_params(prepared.statement.params(), &params) {
                break Err(e);
            }
            match conn.query_raw(&prepared.statement, params.iter()).await {
                Ok(rows) => break Ok((prepared, rows)),
                // The table changed under a cached statement: forget the
                // cached plans of this connection and prepare afresh, once.
                Err(e) if !retried && is_stale_plan(&e) => {
                    conn.statement_cache.clear();
                    retried = true;
                }
                Err(e) => break Err(from_pg(e)),
            }
        };
        let (prepared, rows) = match started {
            Ok(started) => started,
            Err(error) => {
                // The statement failed on the server: the connection is idle.
                guard.complete();
                return Err(error);
            }
        };
        let schema = output_schema(&prepared, schema)?;
        let batches = stream_batches(
            guard,
            rows,
            prepared.columns,
            schema.clone(),
            self.name.clone(),
        )?;
        Ok(RowStream::new(schema, batches).connected_at(connected))
    }
}

/// How often a catalog read is tried when concurrent DDL got in its way.
const CATALOG_ATTEMPTS: u32 = 4;

/// The catalog queries read one snapshot, but the `pg_get_*def` and
/// `format_type` functions look objects up in the live catalog caches: an
/// object dropped concurrently then fails with an internal error
/// ("cache lookup failed"). A fresh snapshot no longer sees it.
fn is_concurrent_ddl(err: &ConnectorError) -> bool {
    err.kind() == ErrorKind::Internal
        && err.message().contains("[SQLSTATE XX000]")
        && (err.message().contains("cache lookup failed")
            || err.message().contains("could not open relation"))
}

#[async_trait]
impl Connector for PostgresConnector {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> SourceKind {
        self.flavor.kind()
    }

    fn dialect(&self) -> &dyn Dialect {
        &self.dialect
    }

    async fn ping(&self) -> Result<PingInfo> {
        async {
            let conn = self.conn().await?;
            let started = Instant::now();
            let row = conn
                .query_one(self.flavor.version_sql(), &[])
                .await
                .map_err(from_pg)?;
            let latency = started.elapsed();
            let mut info = PingInfo::new(row.get(0), latency);
            info.advice.extend(self.pool_advice(&conn).await);
            Ok(info)
        }
        .await
        .map_err(|e: ConnectorError| e.for_source(&self.name))
    }

    async fn introspect(&self) -> Result<SourceSchema> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let conn = self.conn().await.map_err(|e| e.for_source(&self.name))?;
            let result = match self.flavor {
                Flavor::Postgres => introspect::introspect(conn, &self.name, &self.schemas).await,
                Flavor::Kingbase => {
                    introspect_kingbase::introspect(conn, &self.name, &self.schemas).await
                }
            };
            match result {
                Err(e) if attempt < CATALOG_ATTEMPTS && is_concurrent_ddl(&e) => continue,
                result => return result.map_err(|e| e.for_source(&self.name)),
            }
        }
    }

    async fn drift_fingerprints(&self) -> Result<BTreeMap<TableKey, String>> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let conn = self.conn().await.map_err(|e| e.for_source(&self.name))?;
            let result = match self.flavor {
                Flavor::Postgres => introspect::drift_fingerprints(conn, &self.schemas).await,
                Flavor::Kingbase => {
                    introspect_kingbase::drift_fingerprints(conn, &self.schemas).await
                }
            };
            match result {
                Err(e) if attempt < CATALOG_ATTEMPTS && is_concurrent_ddl(&e) => continue,
                result => return result.map_err(|e| e.for_source(&self.name)),
            }
        }
    }

    async fn query(&self, statement: &Statement, schema: Option<SchemaRef>) -> Result<RowStream> {
        self.start_query(statement, schema)
            .await
            .map_err(|e| e.for_source(&self.name))
    }

    async fn begin(&self) -> Result<Box<dyn WriteTx>> {
        let conn = self.conn().await.map_err(|e| e.for_source(&self.name))?;
        Ok(Box::new(write::PgWriteTx::begin(
            conn,
            &self.name,
            self.flavor,
        )))
    }

    async fn write_one(&self, op: &WriteOp) -> Result<WriteOutcome> {
        async {
            let conn = self.conn().await?;
            write::write_one(conn, self.flavor, op).await
        }
        .await
        .map_err(|e| e.for_source(&self.name))
    }

    fn pool_status(&self) -> PoolStatus {
        let status = self.pool.status();
        PoolStatus {
            max_size: status.max_size,
            size: status.size,
            idle: status.available,
            waiting: status.waiting,
            wait_timeouts: self.wait_timeouts.count(),
        }
    }
}
