//! Request rate limits: one token bucket per caller (an API key or user id,
//! or a client IP), configured by the `[rate_limit]` table. The auth
//! middleware asks [`RateLimiter::check`] and answers 429 with `Retry-After`
//! when it says no.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;

/// The `[rate_limit]` table of the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Sustained rate each caller may send.
    pub requests_per_second: f64,
    /// Requests a caller that has been quiet may send at once.
    pub burst: u32,
    /// What a bucket belongs to.
    #[serde(default)]
    pub per: RateLimitBy,
}

impl RateLimitConfig {
    /// Checks the values; the message names the key at fault.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.requests_per_second.is_finite() && self.requests_per_second > 0.0) {
            return Err(format!(
                "`requests_per_second` must be a number above 0 (got {})",
                self.requests_per_second
            ));
        }
        if self.burst == 0 {
            return Err("`burst` must be at least 1".into());
        }
        Ok(())
    }
}

/// Whom requests are counted for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RateLimitBy {
    /// The authenticated API key id or user id; the client IP for anonymous requests.
    #[default]
    Key,
    /// The client IP, whoever is authenticated.
    Ip,
}

/// Buckets that have not been touched are pruned at most this often.
const PRUNE_INTERVAL: Duration = Duration::from_secs(60);

/// Past this many buckets, pruning runs on every new key instead of once per
/// [`PRUNE_INTERVAL`], so a flood of distinct callers (spoofed keys, many
/// IPs) cannot grow the map between two prunes unchecked.
const PRUNE_EAGERLY_ABOVE: usize = 100_000;

/// Token buckets per key, behind one lock (each check holds it for a few
/// arithmetic operations).
pub struct RateLimiter {
    /// Tokens added per second.
    rate: f64,
    /// Bucket capacity.
    burst: f64,
    per: RateLimitBy,
    state: Mutex<Buckets>,
}

struct Buckets {
    by_key: HashMap<String, Bucket>,
    last_prune: Instant,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl Bucket {
    /// Tokens at `now`: what was left plus what flowed in since, capped at the burst.
    fn tokens_at(self, now: Instant, rate: f64, burst: f64) -> f64 {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        (self.tokens + elapsed * rate).min(burst)
    }
}

impl RateLimiter {
    /// A limiter with every bucket full. Values [`RateLimitConfig::validate`]
    /// refuses are raised to the smallest usable ones instead of panicking.
    pub fn new(config: RateLimitConfig) -> Self {
        Self::starting_at(config, Instant::now())
    }

    fn starting_at(config: RateLimitConfig, now: Instant) -> Self {
        let rate = if config.requests_per_second.is_finite() && config.requests_per_second > 0.0 {
            config.requests_per_second
        } else {
            f64::MIN_POSITIVE
        };
        Self {
            rate,
            burst: f64::from(config.burst.max(1)),
            per: config.per,
            state: Mutex::new(Buckets {
                by_key: HashMap::new(),
                last_prune: now,
            }),
        }
    }

    /// What buckets belong to (the caller picks the key accordingly).
    pub fn per(&self) -> RateLimitBy {
        self.per
    }

    /// Takes one token from `key`'s bucket; `Err` carries how long until
    /// the next token arrives.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        self.check_at(key, Instant::now())
    }

    /// [`Self::check`] at a given time (tests drive the clock).
    fn check_at(&self, key: &str, now: Instant) -> Result<(), Duration> {
        // A poisoned lock only means another check panicked mid-update; the
        // buckets are plain numbers and still usable.
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let due = now.saturating_duration_since(state.last_prune) >= PRUNE_INTERVAL;
        if due || (state.by_key.len() >= PRUNE_EAGERLY_ABOVE && !state.by_key.contains_key(key)) {
            self.prune(&mut state, now);
        }
        let tokens = state.by_key.get(key).map_or(self.burst, |bucket| {
            bucket.tokens_at(now, self.rate, self.burst)
        });
        let (tokens, answer) = if tokens >= 1.0 {
            (tokens - 1.0, Ok(()))
        } else {
            let wait = Duration::from_secs_f64((1.0 - tokens) / self.rate);
            (tokens, Err(wait))
        };
        state.by_key.insert(
            key.to_string(),
            Bucket {
                tokens,
                updated: now,
            },
        );
        answer
    }

    /// Drops buckets that have refilled: a full bucket is the same as none.
    fn prune(&self, state: &mut Buckets, now: Instant) {
        state
            .by_key
            .retain(|_, bucket| bucket.tokens_at(now, self.rate, self.burst) < self.burst);
        state.last_prune = now;
    }

    #[cfg(test)]
    fn tracked_keys(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .by_key
            .len()
    }
}

/// The `Retry-After` value for a wait: whole seconds, rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    let whole = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    whole.max(1)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn limiter(requests_per_second: f64, burst: u32, start: Instant) -> RateLimiter {
        RateLimiter::starting_at(
            RateLimitConfig {
                requests_per_second,
                burst,
                per: RateLimitBy::Key,
            },
            start,
        )
    }

    #[test]
    fn a_burst_passes_then_the_next_request_waits_one_interval() {
        let start = Instant::now();
        let limiter = limiter(4.0, 3, start);
        for _ in 0..3 {
            assert_eq!(limiter.check_at("alice", start), Ok(()));
        }
        let wait = limiter.check_at("alice", start).unwrap_err();
        // One token every 1/4 s.
        assert!((wait.as_secs_f64() - 0.25).abs() < 1e-6, "{wait:?}");
        // Refused requests take nothing: the wait shrinks with time only.
        let later = start + Duration::from_millis(100);
        let wait = limiter.check_at("alice", later).unwrap_err();
        assert!((wait.as_secs_f64() - 0.15).abs() < 1e-6, "{wait:?}");
    }

    #[test]
    fn tokens_refill_with_time_up_to_the_burst() {
        let start = Instant::now();
        let limiter = limiter(2.0, 2, start);
        assert!(limiter.check_at("k", start).is_ok());
        assert!(limiter.check_at("k", start).is_ok());
        assert!(limiter.check_at("k", start).is_err());
        // Half a second at 2/s is one token.
        let half = start + Duration::from_millis(500);
        assert!(limiter.check_at("k", half).is_ok());
        assert!(limiter.check_at("k", half).is_err());
        // An hour later the bucket holds the burst, not 7,200 tokens.
        let hour = half + Duration::from_secs(3600);
        assert!(limiter.check_at("k", hour).is_ok());
        assert!(limiter.check_at("k", hour).is_ok());
        assert!(limiter.check_at("k", hour).is_err());
    }

    #[test]
    fn keys_have_their_own_buckets() {
        let start = Instant::now();
        let limiter = limiter(1.0, 1, start);
        assert!(limiter.check_at("alice", start).is_ok());
        assert!(limiter.check_at("alice", start).is_err());
        assert!(limiter.check_at("bob", start).is_ok());
        assert!(limiter.check_at("10.0.0.7", start).is_ok());
        assert!(limiter.check_at("bob", start).is_err());
    }

    #[test]
    fn refilled_buckets_are_pruned_and_busy_ones_kept() {
        let start = Instant::now();
        // One token every 20 s, five at most.
        let limiter = limiter(0.05, 5, start);
        for key in ["a", "b", "c"] {
            assert!(limiter.check_at(key, start).is_ok());
        }
        for _ in 0..4 {
            assert!(limiter.check_at("busy", start).is_ok());
        }
        assert_eq!(limiter.tracked_keys(), 4);
        // Before the prune interval nothing is dropped.
        assert!(
            limiter
                .check_at("d", start + Duration::from_secs(1))
                .is_ok()
        );
        assert_eq!(limiter.tracked_keys(), 5);
        // 60 s on, buckets that spent one token have refilled; `busy` (one
        // token left, three more since) has not.
        let pruned_at = start + PRUNE_INTERVAL;
        assert!(limiter.check_at("e", pruned_at).is_ok());
        assert_eq!(limiter.tracked_keys(), 2, "`busy` and the new `e` remain");
        // A pruned key starts again with a full bucket.
        for _ in 0..5 {
            assert!(limiter.check_at("a", pruned_at).is_ok());
        }
        assert!(limiter.check_at("a", pruned_at).is_err());
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_secs(Duration::from_millis(2001)), 3);
    }

    #[test]
    fn config_parses_and_bad_values_are_named() {
        let config: RateLimitConfig =
            toml::from_str("requests_per_second = 5.0\nburst = 10\n").unwrap();
        assert_eq!(config.per, RateLimitBy::Key);
        assert!(config.validate().is_ok());
        let by_ip: RateLimitConfig =
            toml::from_str("requests_per_second = 0.5\nburst = 1\nper = \"ip\"\n").unwrap();
        assert_eq!(by_ip.per, RateLimitBy::Ip);
        assert_eq!(RateLimiter::new(by_ip).per(), RateLimitBy::Ip);

        let zero: RateLimitConfig =
            toml::from_str("requests_per_second = 0.0\nburst = 1\n").unwrap();
        assert!(zero.validate().unwrap_err().contains("requests_per_second"));
        let no_burst: RateLimitConfig =
            toml::from_str("requests_per_second = 1.0\nburst = 0\n").unwrap();
        assert!(no_burst.validate().unwrap_err().contains("burst"));
        let typo = toml::from_str::<RateLimitConfig>(
            "requests_per_second = 1.0\nburst = 1\nper = \"user\"\n",
        );
        assert!(typo.is_err());
    }
}
