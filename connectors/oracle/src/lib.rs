//! The Oracle Database connector.
//!
//! The pure parts are always built and unit-tested: the dialect
//! (`"QUOTED"` identifiers, `:1` binds), the type mapping (`types.rs`, with
//! its table), value conversion, the introspection queries and their
//! assembly into the catalog model, write rendering with `RETURNING … INTO`
//! out binds, reading JSON columns as text (`json_text.rs`), connection
//! settings and error classification by `ORA-` code.
//!
//! The client layer (feature `client`) runs them through the `oracle` crate,
//! which compiles ODPI-C in and loads Oracle Instant Client (`libclntsh`) at
//! run time — so building needs no Oracle software, and a server without
//! Instant Client starts and answers an `unavailable` error naming what to
//! install when a source is used. The driver is synchronous: its calls run on
//! `spawn_blocking` over a small bounded pool of sessions, connected lazily,
//! and query rows stream to the caller in Arrow batches through a channel.
//!
//! Without the feature, [`create_connector`] answers a config error saying
//! how to build tributary with Oracle support.

// Without the client layer the pure modules are only exercised by their tests.
#[cfg_attr(not(feature = "client"), allow(dead_code))]
mod catalog_sql;
#[cfg_attr(not(feature = "client"), allow(dead_code))]
mod classify;
mod dialect;
#[cfg_attr(not(feature = "client"), allow(dead_code))]
mod introspect;
#[cfg_attr(not(feature = "client"), allow(dead_code))]
mod json_text;
#[cfg_attr(not(feature = "client"), allow(dead_code))]
mod settings;
#[cfg_attr(not(feature = "client"), allow(dead_code))]
mod types;
#[cfg_attr(not(feature = "client"), allow(dead_code))]
mod values;
#[cfg_attr(not(feature = "client"), allow(dead_code))]
mod write_sql;

#[cfg(feature = "client")]
mod client;

use std::sync::Arc;

use tributary_connector::{Connector, Result, SourceConfig};

pub use classify::INSTALL_MESSAGE;
pub use dialect::OracleDialect;

/// The driver, for tests and tools that set up fixtures next to a connector.
#[cfg(feature = "client")]
pub use oracle as driver;

/// What registering an Oracle source answers in a build without the
/// `client` feature.
pub const NO_SUPPORT_MESSAGE: &str = "this build has no Oracle support: build tributary with \
     `--features oracle` and install Oracle Instant Client (Basic or Basic Light, plus libaio) \
     on the library path";

/// The connector for an Oracle source. No I/O: sessions open on first use.
#[cfg(feature = "client")]
pub fn create_connector(config: &SourceConfig) -> Result<Arc<dyn Connector>> {
    Ok(Arc::new(client::OracleConnector::new(config)?))
}

/// Without the `client` feature: a config error saying how to get Oracle
/// support (after the config itself is checked).
#[cfg(not(feature = "client"))]
pub fn create_connector(config: &SourceConfig) -> Result<Arc<dyn Connector>> {
    settings::ConnectSettings::from_config(config).map_err(|e| e.for_source(&config.name))?;
    Err(tributary_connector::ConnectorError::config(NO_SUPPORT_MESSAGE).for_source(&config.name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_connector::ErrorKind;

    #[cfg(not(feature = "client"))]
    #[test]
    fn without_the_client_feature_registration_says_how_to_get_oracle_support() {
        let config =
            SourceConfig::from_url("erp", "oracle://app:secret@db.example:1521/FREEPDB1").unwrap();
        let err = create_connector(&config).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert_eq!(err.source_name(), Some("erp"));
        assert!(err.message().contains("--features oracle"), "{err}");
        assert!(err.message().contains("Instant Client"), "{err}");
        assert!(!err.to_string().contains("secret"), "{err}");
    }

    #[test]
    fn a_bad_config_is_reported_before_anything_else() {
        let config = SourceConfig::from_url("erp", "oracle://app:pw@db.example:1521").unwrap();
        let err = create_connector(&config).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(err.message().contains("service name"), "{err}");
    }
}
