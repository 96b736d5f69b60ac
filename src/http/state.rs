//! `AppState`: the stores, services and settings every handler can reach; cheap to clone.

use std::sync::Arc;

use crate::config::Settings;
use crate::embed::Embedder;
use crate::llm::ChatClient;
use crate::metrics::Metrics;
use crate::services::auth::AuthService;
use crate::services::ratelimit::RateLimits;
use crate::store::cache::SearchCache;
use crate::store::resilient::Resilience;
use crate::store::{AuthStore, EventLog, GraphStore, VectorStore};

#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub vectors: Arc<dyn VectorStore>,
    pub graph: Arc<dyn GraphStore>,
    pub auth_store: Arc<dyn AuthStore>,
    pub auth: Arc<AuthService>,
    pub events: Arc<dyn EventLog>,
    /// The search-result cache, when on (already wrapped around `vectors`).
    pub search_cache: Option<Arc<dyn SearchCache>>,
    /// The circuit breakers of the production backends in use (none when embedded).
    pub breakers: Vec<Arc<Resilience>>,
    pub embedder: Arc<dyn Embedder>,
    /// The chat model for generation; `None` when not configured (501).
    pub llm: Option<Arc<ChatClient>>,
    pub metrics: Arc<Metrics>,
    /// Per-class request quotas; `None` when rate limiting is disabled.
    pub rate_limits: Option<Arc<RateLimits>>,
}
