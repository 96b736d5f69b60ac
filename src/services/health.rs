//! Readiness: one check per configured backend, run concurrently.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::state::AppState;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Readiness {
    pub status: &'static str,
    pub checks: BTreeMap<&'static str, String>,
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
    let (vectors, graph, auth, events) = tokio::join!(
        check(state.vectors.ping()),
        check(state.graph.ping()),
        check(state.auth_store.ping()),
        check(state.events.ping()),
    );
    let checks = BTreeMap::from([
        ("vectors", vectors),
        ("graph", graph),
        ("auth", auth),
        ("events", events),
    ]);
    let status = if checks.values().all(|v| v == "ok") {
        "ready"
    } else {
        "not_ready"
    };
    Readiness { status, checks }
}
