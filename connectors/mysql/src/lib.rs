//! The MySQL and MariaDB connector: a lazily connected, bounded
//! `mysql_async` pool (rustls), introspection from `information_schema`,
//! streaming reads over the binary protocol, and a transactional write path
//! that emulates `RETURNING` where the server lacks it.
//!
//! The two flavors are told apart by the server's version string on every
//! new connection ([`Flavor`]); where their catalogs differ, the queries and
//! normalization live in `catalog.rs`.

mod advice;
mod catalog;
mod classify;
mod connector;
mod flavor;
mod introspect;
mod pool;
mod query;
mod types;
mod values;
mod write;

pub use connector::MySqlConnector;
pub use flavor::Flavor;
