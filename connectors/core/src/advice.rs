//! Advice a ping gives a source's admin that every connector words alike:
//! a pool allowed more connections than the database will accept. Past the
//! limit a busy pool's new connections are refused ("too many clients"),
//! requests fail under load that passed every test — the failure Hasura's
//! and PostgREST's users meet when two instances or a grown pool outrun
//! `max_connections`.

use crate::connector::PoolStatus;
use crate::error::Result;

/// One limit on the connections the source's pool may open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionLimit {
    /// What sets it, as the admin would change it ("PostgreSQL's
    /// max_connections less its reserved connections").
    pub what: String,
    /// Connections it allows.
    pub limit: u64,
    /// Connections it counts now, the pool's own among them.
    pub open: u64,
}

/// Advice when a pool that has `pool.size` connections open now and may
/// open `pool.max_size` can outgrow the tightest of `limits`, after the
/// connections others hold under it.
pub fn pool_larger_than_limit(pool: &PoolStatus, limits: &[ConnectionLimit]) -> Option<String> {
    let ours = u64::try_from(pool.size).unwrap_or(0);
    let max_size = u64::try_from(pool.max_size).unwrap_or(u64::MAX);
    let others = |limit: &ConnectionLimit| limit.open.saturating_sub(ours);
    let room = |limit: &ConnectionLimit| limit.limit.saturating_sub(others(limit));
    let tightest = limits.iter().min_by_key(|limit| room(limit))?;
    let room = room(tightest);
    (max_size > room).then(|| {
        format!(
            "pool.max_size is {max_size}, but {} allows {} connections and others hold {} now: \
             past {room} of this pool's connections, requests will fail under load. Lower \
             pool.max_size or raise the limit.",
            tightest.what,
            tightest.limit,
            others(tightest)
        )
    })
}

/// Advice a database would not give (no rights on its statistics, another
/// kind of server) is none: advice never fails a ping; why is logged.
pub fn unless_unsaid(source: &str, advice: Result<Option<String>>) -> Option<String> {
    advice.unwrap_or_else(|error| {
        tracing::debug!(source, %error, "no advice: the server would not say");
        None
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(what: &str, limit: u64, open: u64) -> ConnectionLimit {
        ConnectionLimit {
            what: what.to_string(),
            limit,
            open,
        }
    }

    fn pool(max_size: usize, size: usize) -> PoolStatus {
        PoolStatus {
            max_size,
            size,
            ..PoolStatus::default()
        }
    }

    #[test]
    fn the_tightest_limit_is_named_when_the_pool_can_outgrow_it() {
        // 62 open on the server, 2 of them the pool's own: others hold 60.
        let limits = [limit("the server", 100, 62), limit("the role", 50, 2)];
        assert_eq!(
            pool_larger_than_limit(&pool(40, 2), &limits),
            None,
            "room for 40"
        );
        let advice = pool_larger_than_limit(&pool(41, 2), &limits).unwrap();
        assert_eq!(
            advice,
            "pool.max_size is 41, but the server allows 100 connections and others hold 60 now: \
             past 40 of this pool's connections, requests will fail under load. Lower \
             pool.max_size or raise the limit."
        );
        let limits = [limit("the server", 100, 0), limit("the role", 3, 0)];
        let advice = pool_larger_than_limit(&pool(10, 0), &limits).unwrap();
        assert!(
            advice.contains("but the role allows 3 connections"),
            "{advice}"
        );
        assert_eq!(
            pool_larger_than_limit(&pool(10, 0), &[]),
            None,
            "no limit known"
        );
        let full = [limit("the server", 10, 12)];
        assert!(
            pool_larger_than_limit(&pool(1, 0), &full)
                .unwrap()
                .contains("past 0 of"),
            "others over the limit leave no room"
        );
    }

    #[test]
    fn advice_the_server_would_not_give_is_none() {
        let refused = Err(crate::ConnectorError::new(
            crate::ErrorKind::PermissionDenied,
            "no rights",
        ));
        assert_eq!(unless_unsaid("pg", refused), None);
        assert_eq!(unless_unsaid("pg", Ok(Some("x".into()))), Some("x".into()));
    }
}
