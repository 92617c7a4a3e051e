//! Prometheus metrics: HTTP requests (count and latency per route), pool
//! usage per source, and refresh outcomes; served at `/metrics`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tributary_connector::PoolStatus;

use crate::state::AppState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefreshLabels {
    source: String,
    /// `unchanged`, `changed` or `failed`.
    outcome: String,
}

/// How a read built as a plan (REST, GraphQL) was answered.
#[derive(Clone, Copy, Debug)]
pub enum ReadPath {
    /// A learned request shape: no plan built.
    RequestShape,
    /// A learned plan shape: planned, not optimized.
    PlanShape,
    /// The planner, optimizer and executor.
    Planner,
}

/// How a GraphQL operation was answered.
#[derive(Clone, Copy, Debug)]
pub enum GraphqlPath {
    /// A compiled plain query's plan.
    Plan,
    /// async-graphql's executor.
    Executor,
    /// A `@cached` query's kept answer.
    Cache,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReadPathLabels {
    /// `request_shape`, `plan_shape` or `planner`.
    path: &'static str,
}

/// Every metric the server exports.
pub struct Metrics {
    registry: Mutex<Registry>,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    pool_size: Family<SourceLabels, Gauge>,
    pool_idle: Family<SourceLabels, Gauge>,
    pool_waiting: Family<SourceLabels, Gauge>,
    pool_max: Family<SourceLabels, Gauge>,
    pool_wait_timeouts: Family<SourceLabels, Counter>,
    /// Each source's pool's own count at the last render: a pool made
    /// again (a changed config) counts from zero.
    wait_timeouts_seen: Mutex<HashMap<String, u64>>,
    refreshes: Family<RefreshLabels, Counter>,
    source_rows: Family<SourceLabels, Counter>,
    source_statements: Family<SourceLabels, Counter>,
    reads: Family<ReadPathLabels, Counter>,
    graphql: Family<ReadPathLabels, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

/// How a refresh ended, for the metric's label.
#[derive(Debug, Clone, Copy)]
pub enum RefreshOutcome {
    Unchanged,
    Changed,
    Failed,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("tributary");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_5, 2.0, 16))
        });
        let pool_size = Family::<SourceLabels, Gauge>::default();
        let pool_idle = Family::<SourceLabels, Gauge>::default();
        let pool_waiting = Family::<SourceLabels, Gauge>::default();
        let pool_max = Family::<SourceLabels, Gauge>::default();
        let pool_wait_timeouts = Family::<SourceLabels, Counter>::default();
        let refreshes = Family::<RefreshLabels, Counter>::default();
        let source_rows = Family::<SourceLabels, Counter>::default();
        let source_statements = Family::<SourceLabels, Counter>::default();
        let reads = Family::<ReadPathLabels, Counter>::default();
        let graphql = Family::<ReadPathLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency",
            latency.clone(),
        );
        registry.register(
            "pool_connections",
            "Open connections per source",
            pool_size.clone(),
        );
        registry.register(
            "pool_idle_connections",
            "Idle connections per source",
            pool_idle.clone(),
        );
        registry.register(
            "pool_waiting_requests",
            "Requests waiting for a connection",
            pool_waiting.clone(),
        );
        registry.register(
            "pool_max_connections",
            "Pool size limit per source",
            pool_max.clone(),
        );
        registry.register(
            "pool_wait_timeouts",
            "Requests that gave up waiting for a connection (pool.acquire_timeout_ms): \
             answered 503 source_busy",
            pool_wait_timeouts.clone(),
        );
        registry.register(
            "catalog_refreshes",
            "Catalog refreshes by source and outcome",
            refreshes.clone(),
        );
        registry.register(
            "source_statements",
            "Statements queries sent to each source",
            source_statements.clone(),
        );
        registry.register(
            "source_rows",
            "Rows queries read from each source",
            source_rows.clone(),
        );
        registry.register(
            "reads",
            "Reads built as plans (REST, GraphQL) by how they were answered",
            reads.clone(),
        );
        registry.register(
            "graphql_operations",
            "GraphQL operations by how they were answered (`plan`: a compiled plain query)",
            graphql.clone(),
        );
        Self {
            registry: Mutex::new(registry),
            requests,
            latency,
            pool_size,
            pool_idle,
            pool_waiting,
            pool_max,
            pool_wait_timeouts,
            wait_timeouts_seen: Mutex::new(HashMap::new()),
            refreshes,
            source_rows,
            source_statements,
            reads,
            graphql,
        }
    }

    /// Counts one read built as a plan.
    pub fn read(&self, path: ReadPath) {
        let path = match path {
            ReadPath::RequestShape => "request_shape",
            ReadPath::PlanShape => "plan_shape",
            ReadPath::Planner => "planner",
        };
        self.reads.get_or_create(&ReadPathLabels { path }).inc();
    }

    /// Counts one GraphQL operation.
    pub fn graphql(&self, path: GraphqlPath) {
        let path = match path {
            GraphqlPath::Plan => "plan",
            GraphqlPath::Executor => "executor",
            GraphqlPath::Cache => "cache",
        };
        self.graphql.get_or_create(&ReadPathLabels { path }).inc();
    }

    /// Counts one statement a query sent to `source`.
    pub fn source_statement(&self, source: &str) {
        self.source_statements
            .get_or_create(&SourceLabels {
                source: source.to_string(),
            })
            .inc();
    }

    /// Counts rows a query read from `source`.
    pub fn source_rows(&self, source: &str, rows: usize) {
        self.source_rows
            .get_or_create(&SourceLabels {
                source: source.to_string(),
            })
            .inc_by(u64::try_from(rows).unwrap_or(u64::MAX));
    }

    /// Counts one refresh of `source`.
    pub fn refresh(&self, source: &str, outcome: RefreshOutcome) {
        let outcome = match outcome {
            RefreshOutcome::Unchanged => "unchanged",
            RefreshOutcome::Changed => "changed",
            RefreshOutcome::Failed => "failed",
        };
        self.refreshes
            .get_or_create(&RefreshLabels {
                source: source.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// Forgets the per-source series of a removed source.
    pub fn forget_source(&self, source: &str) {
        let labels = SourceLabels {
            source: source.to_string(),
        };
        for family in [
            &self.pool_size,
            &self.pool_idle,
            &self.pool_waiting,
            &self.pool_max,
        ] {
            family.remove(&labels);
        }
        self.pool_wait_timeouts.remove(&labels);
        self.wait_timeouts_seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(source);
    }

    /// The text exposition, with pool gauges read at this moment.
    pub fn render(&self, pools: &[(String, PoolStatus)]) -> String {
        // Held from here: the pools' counts are brought up to date and
        // written by one render at a time.
        let registry = self
            .registry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut seen = self
            .wait_timeouts_seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (source, status) in pools {
            let labels = SourceLabels {
                source: source.clone(),
            };
            let as_gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
            self.pool_size
                .get_or_create(&labels)
                .set(as_gauge(status.size));
            self.pool_idle
                .get_or_create(&labels)
                .set(as_gauge(status.idle));
            self.pool_waiting
                .get_or_create(&labels)
                .set(as_gauge(status.waiting));
            self.pool_max
                .get_or_create(&labels)
                .set(as_gauge(status.max_size));
            // The pool counts its own, from zero when it was made; the
            // counter takes what it has not seen yet.
            let seen = seen.entry(source.clone()).or_insert(0);
            let unseen = if status.wait_timeouts >= *seen {
                status.wait_timeouts - *seen
            } else {
                status.wait_timeouts
            };
            *seen = status.wait_timeouts;
            self.pool_wait_timeouts
                .get_or_create(&labels)
                .inc_by(unseen);
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &registry);
        out
    }
}

/// Middleware: counts every request and records its latency under its route
/// pattern (not its concrete path, so ids do not explode the label set).
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let response = next.run(request).await;
    let metrics = &state.metrics;
    metrics
        .requests
        .get_or_create(&RequestLabels {
            method: method.clone(),
            route: route.clone(),
            status: response.status().as_u16(),
        })
        .inc();
    metrics
        .latency
        .get_or_create(&RouteLabels { method, route })
        .observe(started.elapsed().as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_timeouts_only_grow_also_when_a_pool_is_made_again() {
        let metrics = Metrics::new();
        let render = |wait_timeouts: u64| {
            let status = PoolStatus {
                wait_timeouts,
                ..PoolStatus::default()
            };
            let text = metrics.render(&[("pg".to_string(), status)]);
            text.lines()
                .find_map(|line| {
                    line.strip_prefix("tributary_pool_wait_timeouts_total{source=\"pg\"} ")
                })
                .map(str::to_string)
        };
        assert_eq!(render(2).as_deref(), Some("2"));
        assert_eq!(render(3).as_deref(), Some("3"), "one more");
        assert_eq!(render(3).as_deref(), Some("3"), "none since");
        // A changed config made a new pool, counting from zero.
        assert_eq!(render(1).as_deref(), Some("4"));
        metrics.forget_source("pg");
        assert_eq!(
            render(0).as_deref(),
            Some("0"),
            "a removed source starts over"
        );
    }
}
