//! The SQL Server (and Azure SQL) connector: a deadpool pool of tiberius TDS
//! connections over rustls, introspection from the `sys.*` catalog views,
//! streaming reads with `@Pn` parameters decoded into Arrow batches, and a
//! transactional write path that returns rows with `OUTPUT`.
//!
//! * Connection settings, TLS modes and timeouts: [`settings`] (core's URL
//!   parser takes SQL Server's `encrypt` and `trust_server_certificate`).
//! * The type mapping: [`types`]; bound values: `params.rs`.
//! * Write SQL (`OUTPUT`, identity columns, tables with triggers):
//!   [`render`].
//! * Failures carry the source name and a kind chosen by SQL Server's error
//!   number: 2627/2601/547/515 constraint, 1205/3960 conflict, 18456 and the
//!   password errors authentication, 4060 config, 208/207 not found, 1222
//!   timeout, other user errors (severity ≤ 16; truncation 8152/2628,
//!   conversions, identity inserts) invalid input; unreachable servers,
//!   TLS failures and severity ≥ 20 unavailable, naming `host:port`. Row
//!   values quoted in messages are removed.

mod catalog;
mod connector;
mod decode;
mod dialect;
mod error;
mod introspect;
mod params;
mod pool;
mod query;
pub mod render;
pub mod settings;
pub mod types;
mod write;

pub use connector::SqlServerConnector;
pub use dialect::SqlServerDialect;
pub use settings::DEFAULT_PORT;
