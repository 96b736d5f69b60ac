//! `AppState`: what the handlers reach, cheap to clone. Each handler takes the one
//! service it calls; the stores themselves stay behind the services.

use std::ops::Deref;
use std::sync::Arc;

use crate::config::Settings;
use crate::metrics::Metrics;
use crate::services::audit::AuditService;
use crate::services::auth::AuthService;
use crate::services::generate::GenerateService;
use crate::services::graphs::GraphService;
use crate::services::health::HealthService;
use crate::services::hybrid::HybridService;
use crate::services::ingest::IngestService;
use crate::services::metrics::MetricsService;
use crate::services::ratelimit::RateLimits;
use crate::services::snapshots::SnapshotService;
use crate::services::vectors::VectorService;

/// One pointer to the [`Services`]: axum clones the state for every handler and every
/// `from_fn_with_state` middleware of every request, and a clone of the services
/// themselves touched some forty reference counts each time (about 5% of a graph
/// write's CPU under 16 concurrent writers).
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    pub fn new(services: Services) -> Self {
        Self(Arc::new(services))
    }
}

impl Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

pub struct Services {
    pub settings: Arc<Settings>,
    pub auth: Arc<AuthService>,
    pub audit: AuditService,
    pub vectors: VectorService,
    pub graphs: GraphService,
    pub ingest: IngestService,
    pub hybrid: HybridService,
    pub snapshots: Arc<SnapshotService>,
    pub generate: GenerateService,
    pub health: HealthService,
    pub scrape: MetricsService,
    /// The registry the metrics middleware records into.
    pub metrics: Arc<Metrics>,
    /// Per-class request quotas; `None` when rate limiting is disabled.
    pub rate_limits: Option<Arc<RateLimits>>,
}
