//! Advice for a source's admin, given with a ping: what the server's own
//! settings will refuse or make slow.
//!
//! - Connection limits: the server's `max_connections`, the account's
//!   `max_user_connections` (worded in `tributary_connector::advice`).
//! - The buffer pool: InnoDB serves every page from it; when the tables a
//!   source serves do not fit, the joins and key lookups Tributary pushes
//!   there re-read evicted pages from disk (TPC-H SF1 on MariaDB's default
//!   128 MiB pool: a join of orders and lineitem 69 s, with 2 GiB 7.6 s),
//!   while scans elsewhere barely notice.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Params, Row, Value as MyValue};
use tributary_connector::Result;
use tributary_connector::advice::ConnectionLimit;

use crate::classify::classify;
use crate::flavor::Flavor;

const MIB: u64 = 1024 * 1024;

/// The buffer pool's size and the bytes (data and indexes) of the InnoDB
/// tables in `schemas`, as the server estimates them; `None` when it will
/// not say.
pub(crate) async fn buffer_pool_and_tables(
    conn: &mut Conn,
    schemas: &[String],
) -> Result<Option<(u64, u64)>> {
    let marks = vec!["?"; schemas.len()].join(", ");
    let sql = format!(
        "SELECT CAST(@@innodb_buffer_pool_size AS UNSIGNED), \
         CAST(COALESCE(SUM(data_length + index_length), 0) AS UNSIGNED) \
         FROM information_schema.TABLES WHERE engine = 'InnoDB' AND table_schema IN ({marks})"
    );
    let params: Vec<MyValue> = schemas.iter().map(|s| MyValue::from(s.as_str())).collect();
    let row: Option<Row> = conn
        .exec_first(sql, Params::Positional(params))
        .await
        .map_err(classify)?;
    Ok(row.and_then(|row| Some((number(&row, 0)?, number(&row, 1)?))))
}

/// Column `index` of `row` as a count; `None` when it is not one.
fn number(row: &Row, index: usize) -> Option<u64> {
    row.get_opt(index)?.ok()
}

/// The server's name as its admin knows it.
fn server(flavor: Flavor) -> &'static str {
    match flavor {
        Flavor::MariaDb => "MariaDB",
        Flavor::MySql => "MySQL",
    }
}

/// The server's and the account's connection limits, each with the
/// connections it counts now (the pool's own among them). The account's
/// limit is the session value of `max_user_connections` (the account's own
/// when it has one), its connections the process list's rows of the
/// account, which every account may see.
pub(crate) async fn connection_limits(
    conn: &mut Conn,
    flavor: Flavor,
) -> Result<Vec<ConnectionLimit>> {
    let row: Option<Row> = conn
        .query_first(
            "SELECT @@max_connections, @@session.max_user_connections, \
             (SELECT COUNT(*) FROM information_schema.PROCESSLIST \
               WHERE USER = SUBSTRING_INDEX(CURRENT_USER(), '@', 1)), CURRENT_USER()",
        )
        .await
        .map_err(classify)?;
    let status: Option<Row> = conn
        .query_first("SHOW GLOBAL STATUS LIKE 'Threads_connected'")
        .await
        .map_err(classify)?;
    let read = || -> Option<_> {
        let (row, status) = (row.as_ref()?, status.as_ref()?);
        let user: String = row.get_opt(3)?.ok()?;
        Some((
            number(row, 0)?,
            number(row, 1)?,
            number(row, 2)?,
            user,
            number(status, 1)?,
        ))
    };
    let Some((server_limit, account, account_open, user, server_open)) = read() else {
        return Ok(Vec::new());
    };
    let mut limits = vec![ConnectionLimit {
        what: format!("{}'s max_connections", server(flavor)),
        limit: server_limit,
        open: server_open,
    }];
    if account > 0 {
        limits.push(ConnectionLimit {
            what: format!("account {user}'s max_user_connections"),
            limit: account,
            open: account_open,
        });
    }
    Ok(limits)
}

/// What to tell the admin when `tables` bytes do not fit in a buffer pool
/// of `pool` bytes.
pub(crate) fn buffer_pool(flavor: Flavor, pool: u64, tables: u64) -> Option<String> {
    (tables > pool).then(|| {
        format!(
            "{}'s buffer pool (innodb_buffer_pool_size = {} MiB) is smaller than the \
             InnoDB tables this source serves ({} MiB): joins and key lookups sent there \
             will re-read pages from disk. Give the pool room for the tables the queries \
             join (SET GLOBAL innodb_buffer_pool_size, and in the server's configuration \
             file so it lasts) if the server has the memory.",
            server(flavor),
            pool.div_ceil(MIB),
            tables.div_ceil(MIB)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advice_comes_only_when_the_tables_outgrow_the_pool() {
        let pool = 128 * MIB;
        assert_eq!(buffer_pool(Flavor::MariaDb, pool, 0), None);
        assert_eq!(
            buffer_pool(Flavor::MariaDb, pool, pool),
            None,
            "they fit exactly"
        );
        let advice = buffer_pool(Flavor::MariaDb, pool, 1_552 * MIB + 1).unwrap();
        assert!(
            advice.starts_with("MariaDB's buffer pool (innodb_buffer_pool_size = 128 MiB)"),
            "{advice}"
        );
        assert!(advice.contains("(1553 MiB)"), "sizes round up: {advice}");
        let advice = buffer_pool(Flavor::MySql, 8 * MIB, 9 * MIB).unwrap();
        assert!(advice.starts_with("MySQL's buffer pool (innodb_buffer_pool_size = 8 MiB)"));
    }
}
