//! Advice a ping gives a source's admin that every connector words alike:
//! a pool allowed more connections than the database will accept. Past the
//! limit a busy pool's new connections are refused ("too many clients"),
//! requests fail under load that passed every test — the failure Hasura's
//! and PostgREST's users meet when two instances or a grown pool outrun
//! `max_connections`.

/// One limit on the connections the source's pool may open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionLimit {
    /// What sets it, as the admin would change it ("PostgreSQL's
    /// max_connections less its reserved connections").
    pub what: String,
    /// Connections it allows.
    pub limit: u64,
    /// Connections it counts that others hold now (the pool's own left out).
    pub held_by_others: u64,
}

impl ConnectionLimit {
    /// Connections the pool can still open under this limit.
    fn room(&self) -> u64 {
        self.limit.saturating_sub(self.held_by_others)
    }
}

/// Advice when a pool of `max_size` can outgrow the tightest of `limits`.
pub fn pool_larger_than_limit(max_size: usize, limits: &[ConnectionLimit]) -> Option<String> {
    let max_size = u64::try_from(max_size).unwrap_or(u64::MAX);
    let tightest = limits.iter().min_by_key(|limit| limit.room())?;
    let room = tightest.room();
    (max_size > room).then(|| {
        format!(
            "pool.max_size is {max_size}, but {} allows {} connections and others hold {} now: \
             past {room} of this pool's connections, requests will fail under load. Lower \
             pool.max_size or raise the limit.",
            tightest.what, tightest.limit, tightest.held_by_others
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(what: &str, limit: u64, held_by_others: u64) -> ConnectionLimit {
        ConnectionLimit {
            what: what.to_string(),
            limit,
            held_by_others,
        }
    }

    #[test]
    fn the_tightest_limit_is_named_when_the_pool_can_outgrow_it() {
        let limits = [limit("the server", 100, 60), limit("the role", 50, 0)];
        assert_eq!(pool_larger_than_limit(40, &limits), None, "room for 40");
        let advice = pool_larger_than_limit(41, &limits).unwrap();
        assert_eq!(
            advice,
            "pool.max_size is 41, but the server allows 100 connections and others hold 60 now: \
             past 40 of this pool's connections, requests will fail under load. Lower \
             pool.max_size or raise the limit."
        );
        let limits = [limit("the server", 100, 0), limit("the role", 3, 0)];
        let advice = pool_larger_than_limit(10, &limits).unwrap();
        assert!(
            advice.contains("but the role allows 3 connections"),
            "{advice}"
        );
        assert_eq!(pool_larger_than_limit(10, &[]), None, "no limit known");
        let full = [limit("the server", 10, 12)];
        assert!(
            pool_larger_than_limit(1, &full)
                .unwrap()
                .contains("past 0 of"),
            "others over the limit leave no room"
        );
    }
}
