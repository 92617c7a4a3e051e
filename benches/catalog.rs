//! Catalog benchmarks against the real PostgreSQL test server:
//! introspecting a schema of 1,000 tables × 20 columns (target < 2 s), and
//! loading that catalog from the cache file at start-up (target < 100 ms).
//!
//! `cargo bench --bench catalog` (needs `.ci/setup-databases`). The floor for
//! introspection is PostgreSQL itself: `floor_raw_column_query` reads every
//! column row of the schema from pg_attribute with a bare driver, so
//! introspection is reported as a ratio against it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tributary_connector::{Connector, SourceConfig, testkit};
use tributary_connector_postgres::PostgresConnector;
use tributary_schema_cache::{CatalogStore, FileCatalogStore, PersistedCatalog, SchemaCache};

const TABLES: usize = 1_000;
const COLUMNS: usize = 20;
const SCHEMA: &str = "bench_catalog_1000x20";

/// Creates the benchmark schema once (kept between runs; it takes a while).
async fn ensure_schema() {
    let (client, connection) =
        tokio_postgres::connect(&testkit::postgres_url(), tokio_postgres::NoTls)
            .await
            .expect("the PostgreSQL test server must answer (run .ci/setup-databases)");
    tokio::spawn(connection);
    let existing: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = $1",
            &[&SCHEMA],
        )
        .await
        .unwrap()
        .get(0);
    if usize::try_from(existing).unwrap() == TABLES {
        return;
    }
    let mut ddl = format!("DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; CREATE SCHEMA {SCHEMA};");
    for t in 0..TABLES {
        let mut columns = vec!["id bigint PRIMARY KEY".to_string()];
        for c in 1..COLUMNS {
            let ty = ["integer", "text", "numeric(12,2)", "timestamptz", "boolean"][c % 5];
            columns.push(format!("c{c} {ty}"));
        }
        ddl.push_str(&format!(
            "CREATE TABLE {SCHEMA}.t{t} ({});",
            columns.join(", ")
        ));
        if t > 0 {
            ddl.push_str(&format!(
                "ALTER TABLE {SCHEMA}.t{t} ADD FOREIGN KEY (c5) REFERENCES {SCHEMA}.t{} (id) NOT VALID;",
                t - 1
            ));
        }
    }
    client.batch_execute(&ddl).await.unwrap();
    client.batch_execute("ANALYZE").await.unwrap();
}

fn benches(c: &mut Criterion) {
    tributary_connector::tls::install_crypto_provider();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(ensure_schema());
    let mut config = SourceConfig::from_url("bench", &testkit::postgres_url()).unwrap();
    config.schemas.include = vec![SCHEMA.to_string()];
    let connector = PostgresConnector::new(&config).unwrap();
    let model = runtime.block_on(connector.introspect()).unwrap();
    assert_eq!(model.tables().count(), TABLES);

    let mut group = c.benchmark_group("catalog");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.bench_function("introspect_postgres_1000_tables_x_20_columns", |b| {
        b.to_async(&runtime)
            .iter(|| async { connector.introspect().await.unwrap() });
    });
    let (raw, raw_connection) = runtime
        .block_on(tokio_postgres::connect(
            &testkit::postgres_url(),
            tokio_postgres::NoTls,
        ))
        .unwrap();
    runtime.spawn(raw_connection);
    group.bench_function("floor_raw_column_query", |b| {
        b.to_async(&runtime).iter(|| async {
            raw.query(
                "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull \
                 FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND a.attnum > 0 AND NOT a.attisdropped",
                &[&SCHEMA],
            )
            .await
            .unwrap()
        });
    });
    group.bench_function("drift_fingerprints_postgres_1000_tables", |b| {
        b.to_async(&runtime)
            .iter(|| async { connector.drift_fingerprints().await.unwrap() });
    });

    let dir = tempfile::tempdir().unwrap();
    let store = FileCatalogStore::in_dir(dir.path());
    let mut sources = std::collections::BTreeMap::new();
    sources.insert("bench".to_string(), model);
    store.save(&PersistedCatalog::V1 { sources }).unwrap();
    group.bench_function("load_catalog_from_cache_1000_tables", |b| {
        b.iter(|| SchemaCache::open(Box::new(FileCatalogStore::in_dir(dir.path()))).unwrap());
    });
    group.finish();
}

criterion_group!(catalog, benches);
criterion_main!(catalog);
