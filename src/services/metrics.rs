//! The scrape: refreshes the gauges that mirror store state, then renders the registry.

use crate::state::AppState;

/// Prometheus text for `GET /metrics`. A store that cannot answer leaves its gauge at
/// the last value (and logs why) rather than failing the whole scrape.
pub async fn scrape(state: &AppState) -> String {
    let metrics = &state.metrics;
    match state.events.pending().await {
        Ok(n) => metrics
            .ingest_pending
            .set(i64::try_from(n).unwrap_or(i64::MAX)),
        Err(e) => tracing::warn!(error = %e, "metrics: reading the ingest backlog"),
    }
    match state.vectors.point_counts().await {
        Ok(counts) => {
            metrics.vectors_points.reset();
            for c in counts {
                metrics
                    .vectors_points
                    .with_label_values(&[&c.tenant, &c.collection])
                    .set(i64::try_from(c.points).unwrap_or(i64::MAX));
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: counting vector points"),
    }
    metrics.render()
}
