//! `tributary demo`: two embedded SQLite sources made from SQL this project
//! ships — a small CRM and a small shop whose orders reference CRM customers
//! across the two — registered in a fresh data directory, with the
//! cross-source relation declared. No database server needed.

use std::path::{Path, PathBuf};

use rusqlite::Connection;
use serde_json::json;
use tributary_connector::SourceConfig;
use tributary_schema_cache::{Relation, RelationOrigin, TableRef};

use crate::app::Application;
use crate::sources::SourceError;

const CRM_SQL: &str = include_str!("crm.sql");
const SHOP_SQL: &str = include_str!("shop.sql");

/// Why the demo could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot prepare the demo directory {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create the demo database {path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Metadata(#[from] crate::metadata::MetadataError),
}

/// Writes `crm.db` and `shop.db` into `dir` (replacing earlier copies).
pub fn create_databases(dir: &Path) -> Result<(PathBuf, PathBuf), DemoError> {
    std::fs::create_dir_all(dir).map_err(|source| DemoError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let make = |name: &str, sql: &str| -> Result<PathBuf, DemoError> {
        let path = dir.join(name);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(DemoError::Io { path, source }),
        }
        let sqlite_err = |source| DemoError::Sqlite {
            path: path.clone(),
            source,
        };
        let connection = Connection::open(&path).map_err(sqlite_err)?;
        connection.execute_batch(sql).map_err(sqlite_err)?;
        connection.execute_batch("ANALYZE").map_err(sqlite_err)?;
        Ok(path)
    };
    Ok((make("crm.db", CRM_SQL)?, make("shop.db", SHOP_SQL)?))
}

/// Registers the two demo sources in a built (not yet serving) application
/// and declares `shop.main.orders.customer_id → crm.main.customers.id`.
pub async fn register(app: &Application, databases: &Path) -> Result<(), DemoError> {
    let (crm, shop) = create_databases(databases)?;
    let state = app.state();
    for (name, path) in [("crm", crm), ("shop", shop)] {
        let config = SourceConfig::from_url(name, &format!("sqlite://{}", path.display()))
            .map_err(SourceError::InvalidConfig)?;
        state.sources.register(config).await?;
    }
    let relation = Relation {
        name: "order_customer".to_string(),
        from: TableRef::new("shop", "main", "orders"),
        from_columns: vec!["customer_id".to_string()],
        to: TableRef::new("crm", "main", "customers"),
        to_columns: vec!["id".to_string()],
        origin: RelationOrigin::Declared,
    };
    state.store.insert_relation(&relation).await?;
    state.sources.reload_declared().await?;
    Ok(())
}

/// The lines the demo prints: where to look and what to try.
pub fn banner(base: &str, token: &str) -> String {
    let auth = format!("-H 'Authorization: Bearer {token}'");
    let example = json!({"name": "my_pg", "url": "postgres://user:password@127.0.0.1:5432/db"});
    let query = json!({"sql": "SELECT c.country, count(DISTINCT o.id) AS orders, sum(i.quantity * i.unit_price) AS total \
        FROM shop.orders o JOIN crm.customers c ON c.id = o.customer_id \
        JOIN shop.order_items i ON i.order_id = o.id GROUP BY c.country ORDER BY total DESC"});
    format!(
        "Tributary demo is running with two SQLite sources (crm, shop).\n\n\
         Admin token: {token}\n\n\
         Try:\n\
         \x20 curl {base}/readyz\n\
         \x20 curl {auth} {base}/admin/sources\n\
         \x20 curl {auth} '{base}/admin/catalog?source=shop'\n\
         \x20 curl {auth} {base}/admin/relations\n\
         \x20 curl {auth} {base}/api/sql -H 'content-type: application/json' -d '{query}'\n\
         \x20 curl {auth} -X POST {base}/admin/sources/crm/refresh\n\
         \x20 curl {auth} -X POST {base}/admin/sources -H 'content-type: application/json' -d '{example}'\n\
         \x20 curl {base}/metrics\n\n\
         Or the CLI: TRIBUTARY_ADMIN_TOKEN={token} tributary catalog --server {base}\n\
         Stop with Ctrl-C.\n"
    )
}
