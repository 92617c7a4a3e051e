//! Advice with a PostgreSQL ping: the limits on the connections the pool
//! may open — the server's `max_connections` (less the slots it reserves
//! for superusers when the source's role is not one), the role's and the
//! database's `CONNECTION LIMIT` — each with the connections others hold
//! under it now.

use deadpool_postgres::Object;
use tributary_connector::Result;
use tributary_connector::advice::ConnectionLimit;

use crate::error::from_pg;

/// Each limit followed by the client connections it counts now (a limit
/// of -1, a role or database without one, comes back NULL), then the
/// role's and the database's names.
const LIMITS: &str = "\
SELECT current_setting('max_connections')::int8
         - CASE WHEN r.rolsuper THEN 0
                ELSE current_setting('superuser_reserved_connections')::int8
                     + COALESCE(current_setting('reserved_connections', true)::int8, 0) END,
       (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'),
       NULLIF(r.rolconnlimit, -1)::int8,
       (SELECT count(*) FROM pg_stat_activity
         WHERE backend_type = 'client backend' AND usename = current_user),
       NULLIF(d.datconnlimit, -1)::int8,
       (SELECT count(*) FROM pg_stat_activity
         WHERE backend_type = 'client backend' AND datname = current_database()),
       current_user::text, current_database()::text
  FROM pg_roles r, pg_database d
 WHERE r.rolname = current_user AND d.datname = current_database()";

/// The limits on `conn`'s server, role and database, each with the client
/// connections it counts now (the pool's own among them).
pub(crate) async fn connection_limits(conn: &Object) -> Result<Vec<ConnectionLimit>> {
    let row = conn.query_one(LIMITS, &[]).await.map_err(from_pg)?;
    let limit = |what: String, index: usize| -> Result<Option<ConnectionLimit>> {
        let limit: Option<i64> = row.try_get(index).map_err(from_pg)?;
        let open: i64 = row.try_get(index + 1).map_err(from_pg)?;
        Ok(limit.map(|limit| ConnectionLimit {
            what,
            limit: u64::try_from(limit).unwrap_or(0),
            open: u64::try_from(open).unwrap_or(0),
        }))
    };
    let role: String = row.try_get(6).map_err(from_pg)?;
    let database: String = row.try_get(7).map_err(from_pg)?;
    let limits = [
        limit(
            "PostgreSQL's max_connections (less its reserved connections)".to_string(),
            0,
        )?,
        limit(format!("role {role}'s CONNECTION LIMIT"), 2)?,
        limit(format!("database {database}'s CONNECTION LIMIT"), 4)?,
    ];
    Ok(limits.into_iter().flatten().collect())
}
