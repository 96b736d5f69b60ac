//! Prometheus metrics: one registry per server (no globals), the instruments the layers
//! record into, and the text rendering behind `GET /metrics`. Gauges that mirror store
//! state (`ingest_pending`, `vectors_points`) are refreshed at scrape time, so they are
//! exact and cost nothing on the request path.

use prometheus::core::Collector;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Request latency buckets, in seconds: 1 ms to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

pub struct Metrics {
    registry: Registry,
    pub http_requests_total: IntCounterVec,
    pub http_request_duration_seconds: HistogramVec,
    pub http_requests_in_flight: IntGauge,
    pub rate_limited_total: IntCounterVec,
    pub rate_limit_fallback_total: IntCounterVec,
    pub quota_refused_total: IntCounterVec,
    pub audit_dropped_total: IntCounter,
    pub auth_failures_total: IntCounterVec,
    pub ingest_events_total: IntCounterVec,
    pub ingest_pending: IntGauge,
    pub data_dir_free_bytes: IntGauge,
    pub read_budget_reserved_bytes: IntGauge,
    pub read_budget_waits_total: IntCounter,
    pub cache_requests_total: IntCounterVec,
    pub vectors_points: IntGaugeVec,
    pub backend_requests_total: IntCounterVec,
    pub backend_request_duration_seconds: HistogramVec,
    pub backend_retries_total: IntCounterVec,
    pub circuit_breaker_state: IntGaugeVec,
}

/// Registers `metric` (built from constant, valid options) and returns it.
fn registered<M: Collector + Clone + 'static>(
    registry: &Registry,
    metric: prometheus::Result<M>,
) -> M {
    let metric = metric.expect("valid metric");
    registry
        .register(Box::new(metric.clone()))
        .expect("unique metric");
    metric
}

fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    registered(r, IntCounterVec::new(Opts::new(name, help), labels))
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    registered(r, IntGauge::new(name, help))
}

fn gauges(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    registered(r, IntGaugeVec::new(Opts::new(name, help), labels))
}

/// A latency histogram over [`LATENCY_BUCKETS`].
fn latency(r: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec());
    registered(r, HistogramVec::new(opts, labels))
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let r = &registry;
        gauges(
            r,
            "build_info",
            "Always 1; labels say which build is running",
            &["version"],
        )
        .with_label_values(&[env!("CARGO_PKG_VERSION")])
        .set(1);
        Self {
            http_requests_total: counter(
                r,
                "http_requests_total",
                "HTTP requests answered, by method, matched route and status",
                &["method", "route", "status"],
            ),
            http_request_duration_seconds: latency(
                r,
                "http_request_duration_seconds",
                "Time from request received to response headers, by matched route",
                &["method", "route"],
            ),
            http_requests_in_flight: gauge(
                r,
                "http_requests_in_flight",
                "HTTP requests being served now",
            ),
            rate_limited_total: counter(
                r,
                "rate_limited_total",
                "Requests refused with 429, by route class",
                &["class"],
            ),
            rate_limit_fallback_total: counter(
                r,
                "rate_limit_fallback_total",
                "Rate-limit checks this server decided alone because the shared store failed, by route class",
                &["class"],
            ),
            quota_refused_total: counter(
                r,
                "quota_refused_total",
                "Writes refused (409) because they would pass the tenant's storage quota, \
                 by tenant and quota (points, graph_items)",
                &["tenant", "quota"],
            ),
            audit_dropped_total: registered(
                r,
                IntCounter::new(
                    "audit_dropped_total",
                    "Audit records dropped: the queue was full or the store failed",
                ),
            ),
            auth_failures_total: counter(
                r,
                "auth_failures_total",
                "Requests refused by authentication or authorisation, by reason",
                &["reason"],
            ),
            ingest_events_total: counter(
                r,
                "ingest_events_total",
                "Ingest events by outcome: accepted, processed, deleted, failed",
                &["outcome"],
            ),
            ingest_pending: gauge(
                r,
                "ingest_pending",
                "Events accepted but not yet processed by the ingest worker",
            ),
            data_dir_free_bytes: gauge(
                r,
                "data_dir_free_bytes",
                "Bytes free on the data directory's filesystem; writes to the embedded \
                 stores are refused (507) below server.disk_reserve_bytes",
            ),
            read_budget_reserved_bytes: gauge(
                r,
                "read_budget_reserved_bytes",
                "Bytes of limits.read_budget_bytes that large answers in flight have reserved",
            ),
            read_budget_waits_total: registered(
                r,
                IntCounter::new(
                    "read_budget_waits_total",
                    "Large reads that waited for room in limits.read_budget_bytes",
                ),
            ),
            cache_requests_total: counter(
                r,
                "cache_requests_total",
                "Cache lookups, by cache and result (hit or miss)",
                &["cache", "result"],
            ),
            vectors_points: gauges(
                r,
                "vectors_points",
                "Points stored per collection",
                &["tenant", "collection"],
            ),
            backend_requests_total: counter(
                r,
                "backend_requests_total",
                "Calls to production backends by backend, operation and outcome \
                 (ok, error, timeout, unavailable, rejected)",
                &["backend", "op", "outcome"],
            ),
            backend_request_duration_seconds: latency(
                r,
                "backend_request_duration_seconds",
                "Time of each call to a production backend, retries included",
                &["backend", "op"],
            ),
            backend_retries_total: counter(
                r,
                "backend_retries_total",
                "Retries of idempotent backend calls after a transient failure",
                &["backend", "op"],
            ),
            circuit_breaker_state: gauges(
                r,
                "circuit_breaker_state",
                "Each backend's circuit breaker: 0 closed, 1 open, 2 half-open",
                &["backend"],
            ),
            registry,
        }
    }

    /// The registry in Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metrics.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    /// The name of every metric family this server exports, including families with
    /// no samples yet (which a scrape leaves out).
    pub fn names(&self) -> Vec<String> {
        let collectors: [&dyn Collector; 14] = [
            &self.http_requests_total,
            &self.http_request_duration_seconds,
            &self.http_requests_in_flight,
            &self.rate_limited_total,
            &self.auth_failures_total,
            &self.ingest_events_total,
            &self.ingest_pending,
            &self.data_dir_free_bytes,
            &self.cache_requests_total,
            &self.vectors_points,
            &self.backend_requests_total,
            &self.backend_request_duration_seconds,
            &self.backend_retries_total,
            &self.circuit_breaker_state,
        ];
        let mut names: Vec<String> = collectors
            .iter()
            .flat_map(|c| c.desc())
            .map(|d| d.fq_name.clone())
            .chain(self.registry.gather().iter().map(|f| f.name().to_owned()))
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Lets other parts (store adapters) register their own instruments.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_with_build_info() {
        let m = Metrics::new();
        m.http_requests_total
            .with_label_values(&["GET", "/health/live", "200"])
            .inc();
        m.cache_requests_total
            .with_label_values(&["search", "hit"])
            .inc();
        let text = m.render();
        assert!(
            text.contains(
                r#"http_requests_total{method="GET",route="/health/live",status="200"} 1"#
            )
        );
        assert!(text.contains(r#"cache_requests_total{cache="search",result="hit"} 1"#));
        assert!(text.contains(&format!(
            r#"build_info{{version="{}"}} 1"#,
            env!("CARGO_PKG_VERSION")
        )));
        assert!(text.contains("# TYPE ingest_pending gauge"));
    }
}
