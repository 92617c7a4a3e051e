//! The contracts every Tributary connector implements, and what they share:
//! the [`Connector`] trait and the transactional write path ([`WriteTx`]),
//! source configuration (pool, TLS, schema selection), SQL values and write
//! rendering per dialect, Arrow batch building, drift detection and errors.

pub mod advice;
pub mod batch;
pub mod config;
pub mod connector;
pub mod dialect;
pub mod drift;
pub mod error;
mod json_edit;
pub mod render;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod tls;
pub mod value;
pub mod write;

pub use batch::{BATCH_ROWS, BatchBuilder, CellSink, FIRST_BATCH_CAPACITY};
pub use config::{
    ConnectionOptions, PoolOptions, SchemaFilter, Secret, SourceConfig, TlsMode, TlsOptions,
};
pub use connector::{Connector, PingInfo, PoolStatus, RowStream, TableKey, WaitTimeouts};
pub use dialect::{Dialect, MySqlDialect, PostgresDialect, ReturningSupport, SqliteDialect};
pub use drift::Drift;
pub use error::{ConnectorError, ErrorKind, Result};
pub use render::{SqlBuilder, Statement};
pub use value::{Interval, Value};
pub use write::{
    BatchError, CompareOp, Delete, Insert, JsonEdit, Lock, Predicate, Update, WriteOp,
    WriteOutcome, WriteTarget, WriteTx,
};
