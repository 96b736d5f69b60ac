//! Readiness: one check per configured backend, run concurrently.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::store::open::Stores;
use crate::store::resilient::BreakerState;
use crate::store::{ErrorKind, StoreError};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Readiness {
    pub status: &'static str,
    /// Each store's check, and each production backend's circuit breaker
    /// (`breaker:<backend>`): "ok", or "error: " and a class of error (`unavailable`,
    /// `timeout`, `upstream`, …). The backend's own error text goes to the log only:
    /// this endpoint answers unauthenticated callers.
    pub checks: BTreeMap<String, String>,
}

impl Readiness {
    pub fn ready(&self) -> bool {
        self.status == "ready"
    }
}

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

async fn check<F>(name: &str, f: F) -> String
where
    F: std::future::Future<Output = Result<(), StoreError>>,
{
    match tokio::time::timeout(CHECK_TIMEOUT, f).await {
        Ok(Ok(())) => "ok".into(),
        Ok(Err(e)) => {
            tracing::warn!(check = name, error = %e, "readiness check failed");
            format!("error: {}", class(e.kind))
        }
        Err(_) => {
            tracing::warn!(check = name, "readiness check timed out");
            "error: timeout".into()
        }
    }
}

fn class(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::NotFound => "not_found",
        ErrorKind::Conflict => "conflict",
        ErrorKind::Invalid => "invalid",
        ErrorKind::Unavailable => "unavailable",
        ErrorKind::Busy => "busy",
        ErrorKind::Throttled => "throttled",
        ErrorKind::Timeout => "timeout",
        ErrorKind::Upstream => "upstream",
        ErrorKind::Full => "full",
        ErrorKind::Internal => "internal",
        ErrorKind::Unsupported => "unsupported",
    }
}

/// Readiness: every store pinged, every circuit breaker read.
#[derive(Clone)]
pub struct HealthService {
    pub stores: Stores,
}

impl HealthService {
    pub async fn readiness(&self) -> Readiness {
        let cache = async {
            match &self.stores.search_cache {
                Some(cache) => Some(check("search_cache", cache.ping()).await),
                None => None,
            }
        };
        let (vectors, graph, auth, events, cache) = tokio::join!(
            check("vectors", self.stores.vectors.ping()),
            check("graph", self.stores.graph.ping()),
            check("auth", self.stores.auth.ping()),
            check("events", self.stores.events.ping()),
            cache,
        );
        let mut checks = BTreeMap::from([
            ("vectors".to_owned(), vectors),
            ("graph".to_owned(), graph),
            ("auth".to_owned(), auth),
            ("events".to_owned(), events),
        ]);
        if let Some(cache) = cache {
            checks.insert("search_cache".into(), cache);
        }
        // Checked after the pings, so a probe that just closed a breaker counts.
        for breaker in &self.stores.breakers {
            let state = breaker.state();
            let verdict = match state {
                BreakerState::Open => format!("error: circuit breaker {}", state.as_str()),
                _ => "ok".to_owned(),
            };
            checks.insert(format!("breaker:{}", breaker.backend()), verdict);
        }
        let status = if checks.values().all(|v| v == "ok") {
            "ready"
        } else {
            "not_ready"
        };
        Readiness { status, checks }
    }
}
