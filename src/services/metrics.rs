//! The scrape: refreshes the gauges that mirror store state, then renders the registry.

use std::sync::Arc;

use crate::metrics::Metrics;
use crate::store::embedded::space::Space;
use crate::store::{EventLog, VectorStore};

/// The registry and the stores whose state some gauges mirror.
#[derive(Clone)]
pub struct MetricsService {
    pub metrics: Arc<Metrics>,
    pub events: Arc<dyn EventLog>,
    pub vectors: Arc<dyn VectorStore>,
    /// The data directory's free space, for `data_dir_free_bytes`.
    pub space: Space,
}

impl MetricsService {
    /// Prometheus text for `GET /metrics`. A store that cannot answer leaves its gauge at
    /// the last value (and logs why) rather than failing the whole scrape.
    pub async fn scrape(&self) -> String {
        let metrics = &self.metrics;
        match self.events.pending().await {
            Ok(n) => metrics
                .ingest_pending
                .set(i64::try_from(n).unwrap_or(i64::MAX)),
            Err(e) => tracing::warn!(error = %e, "metrics: reading the ingest backlog"),
        }
        match self.vectors.point_counts().await {
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
        if let Some(free) = self.space.available() {
            metrics
                .data_dir_free_bytes
                .set(i64::try_from(free).unwrap_or(i64::MAX));
        }
        metrics.render()
    }
}
