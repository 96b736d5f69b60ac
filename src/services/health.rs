//! Readiness: one check per configured backend, run concurrently.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::state::AppState;
use crate::store::resilient::BreakerState;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Readiness {
    pub status: &'static str,
    /// Each store's check, and each production backend's circuit breaker
    /// (`breaker:<backend>`): "ok", or "error: …".
    pub checks: BTreeMap<String, String>,
}

impl Readiness {
    pub fn ready(&self) -> bool {
        self.status == "ready"
    }
}

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

async fn check<F>(f: F) -> String
where
    F: std::future::Future<Output = Result<(), crate::store::StoreError>>,
{
    match tokio::time::timeout(CHECK_TIMEOUT, f).await {
        Ok(Ok(())) => "ok".into(),
        Ok(Err(e)) => format!("error: {e}"),
        Err(_) => "error: timed out".into(),
    }
}

pub async fn readiness(state: &AppState) -> Readiness {
    let cache = async {
        match &state.search_cache {
            Some(cache) => Some(check(cache.ping()).await),
            None => None,
        }
    };
    let (vectors, graph, auth, events, cache) = tokio::join!(
        check(state.vectors.ping()),
        check(state.graph.ping()),
        check(state.auth_store.ping()),
        check(state.events.ping()),
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
    for breaker in &state.breakers {
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
