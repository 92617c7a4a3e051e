//! Tributary, the server: configuration, the metadata store, the live
//! sources and their catalog, the federated SQL engine and its endpoint, the REST and GraphQL APIs,
//! the admin API, authentication, permissions and the audit log, health and metrics, the demo and the command line. Connectors live in `connectors/`, the catalog model
//! and its cache in `schema-cache/`.

pub mod admin;
pub mod admission;
pub mod app;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod client;
pub mod config;
pub mod demo;
pub mod engine;
pub mod error;
pub mod filter;
pub mod graphql;
pub mod health;
pub mod local_sql;
pub mod metadata;
pub mod metrics;
pub mod openapi;
pub mod permissions;
pub mod rate_limit;
pub mod rest;
pub mod results;
pub mod sources;
pub mod sql_api;
pub mod sql_stream;
pub mod state;
pub mod tls;
