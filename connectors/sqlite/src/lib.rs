//! Embedded SQLite connector: serves a SQLite database file (the demo's and
//! the hermetic tests' source) through the `Connector` contract.
//!
//! - Connection: `connection.path` (a `sqlite://path` URL is folded into it).
//!   The file must exist: registering a source never creates a database.
//!   TLS options and network fields are ignored (there is no network).
//! - Pool: a bounded set of blocking connections used on blocking threads;
//!   `busy_timeout` = acquire timeout; statement timeout via a progress
//!   handler (→ `Timeout`).
//! - Catalog: one schema, `main` ([`introspect`](crate::introspect)).
//! - Types: by declared type ([`types`](crate::types)); values that do not
//!   fit their column's type are delivered as NULL with a warning
//!   ([`values`](crate::values)).

mod classify;
mod connector;
mod ddl;
mod introspect;
mod pool;
mod query;
mod temporal;
mod types;
mod values;
mod write;

pub use connector::SqliteConnector;
