//! Opens the store chosen by configuration for each trait: the embedded default, or the
//! production adapter behind its backend's resilience guard. Also builds the search
//! cache and wraps the vector store with it.

use std::sync::Arc;
use std::time::Duration;

use crate::config::{
    AuditBackend, AuthBackend, CacheBackend, EventBackend, GraphBackend, RateLimitBackend,
    Settings, VectorBackend,
};
use crate::domain::vector::CollectionSpec;
use crate::metrics::Metrics;
use crate::store::cache::{CachedVectors, MemorySearchCache, SearchCache};
use crate::store::client_cypher::QuerySlots;
use crate::store::embedded::audit::EmbeddedAuditLog;
use crate::store::embedded::auth::EmbeddedAuthStore;
use crate::store::embedded::events::EmbeddedEventLog;
use crate::store::embedded::graph::{EmbeddedGraphOptions, EmbeddedGraphStore};
use crate::store::embedded::vectors::{EmbeddedVectorOptions, EmbeddedVectorStore, Tuning};
use crate::store::kafka::KafkaEventLog;
use crate::store::neo4j::Neo4jGraphStore;
use crate::store::qdrant::QdrantVectorStore;
use crate::store::redis::{
    Redis, RedisAuditLog, RedisAuthStore, RedisIngestState, RedisRateLimits, RedisSearchCache,
};
use crate::store::resilient::{Policy, Resilience};
use crate::store::{
    AuditLog, AuthStore, EventLog, GraphStore, RateLimitStore, StoreError, VectorStore,
};

/// Every store the server uses, and the guards of the production backends among them.
#[derive(Clone)]
pub struct Stores {
    pub vectors: Arc<dyn VectorStore>,
    pub graph: Arc<dyn GraphStore>,
    pub events: Arc<dyn EventLog>,
    pub auth: Arc<dyn AuthStore>,
    /// `None` when search results are not cached.
    pub search_cache: Option<Arc<dyn SearchCache>>,
    /// The audit trail; `None` when auditing is off.
    pub audit: Option<Arc<dyn AuditLog>>,
    /// Rate-limit buckets shared by replicas; `None` when each server keeps its own.
    pub rate_limits: Option<Arc<dyn RateLimitStore>>,
    pub breakers: Vec<Arc<Resilience>>,
}

/// Which store failed to open, and why.
pub struct OpenError {
    pub store: &'static str,
    pub error: StoreError,
}

fn failed(store: &'static str) -> impl Fn(StoreError) -> OpenError {
    move |error| OpenError { store, error }
}

pub async fn open(settings: &Settings, metrics: &Arc<Metrics>) -> Result<Stores, OpenError> {
    let data_dir = &settings.server.data_dir;
    let policy = Policy::from(&settings.resilience);
    let timeout = policy.timeout;
    let mut breakers = Vec::new();
    let mut guard = |backend: &'static str| {
        let g = Resilience::new(backend, policy, metrics);
        breakers.push(g.clone());
        g
    };
    let redis = if settings.uses_redis() {
        let r = &settings.redis;
        Some(
            Redis::connect(&r.url, &r.key_prefix, guard("redis"), timeout)
                .map_err(failed("redis"))?,
        )
    } else {
        None
    };
    let redis = || {
        redis.clone().ok_or_else(|| OpenError {
            store: "redis",
            error: StoreError::invalid("redis.url is not set"),
        })
    };

    let vectors: Arc<dyn VectorStore> = match settings.vectors.backend {
        VectorBackend::Embedded => {
            let options = EmbeddedVectorOptions {
                default_name: settings.vectors.default_collection.clone(),
                default_spec: CollectionSpec {
                    dim: settings.vectors.default_dim,
                    distance: settings.vectors.default_distance,
                },
                tuning: Tuning {
                    indexing_threads: match settings.vectors.indexing_threads {
                        0 => {
                            std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
                        }
                        n => n,
                    },
                    engine_wal_limit_bytes: settings.vectors.engine_wal_limit_bytes,
                    indexing_threshold_kb: match settings.vectors.indexing_threshold_kb {
                        0 => None,
                        n => Some(n),
                    },
                    quantization: settings.vectors.quantization,
                },
                maintenance_every: Duration::from_millis(settings.vectors.maintenance_ms),
                checkpoint_every: Duration::from_millis(settings.vectors.checkpoint_interval_ms),
                checkpoint_bytes: settings.vectors.checkpoint_log_bytes,
            };
            Arc::new(
                EmbeddedVectorStore::open(data_dir, options)
                    .await
                    .map_err(failed("vector"))?,
            )
        }
        VectorBackend::Qdrant => Arc::new(
            QdrantVectorStore::connect(&settings.vectors, guard("qdrant"), timeout)
                .map_err(failed("vector"))?,
        ),
    };
    let graph: Arc<dyn GraphStore> = match settings.graph.backend {
        GraphBackend::Embedded => {
            let options = EmbeddedGraphOptions {
                query_timeout: Duration::from_millis(settings.limits.query_timeout_ms),
                max_concurrent_queries: settings.limits.max_concurrent_queries,
                max_concurrent_queries_per_tenant: settings
                    .limits
                    .max_concurrent_queries_per_tenant,
                query_memory_bytes: settings.limits.query_memory_bytes,
                wal_limit_bytes: settings.graph.wal_limit_bytes,
                indexed_properties: settings.graph.indexed_properties.clone(),
            };
            Arc::new(
                EmbeddedGraphStore::open(data_dir, options)
                    .await
                    .map_err(failed("graph"))?,
            )
        }
        GraphBackend::Neo4j => Arc::new(
            Neo4jGraphStore::connect(
                &settings.graph,
                guard("neo4j"),
                timeout,
                Duration::from_millis(settings.limits.query_timeout_ms),
                QuerySlots::new(
                    settings.limits.max_concurrent_queries,
                    settings.limits.max_concurrent_queries_per_tenant,
                ),
            )
            .await
            .map_err(failed("graph"))?,
        ),
    };
    let events: Arc<dyn EventLog> = match settings.events.backend {
        EventBackend::Embedded => Arc::new(
            EmbeddedEventLog::open(data_dir)
                .await
                .map_err(failed("event log"))?,
        ),
        EventBackend::Kafka => Arc::new(
            KafkaEventLog::connect(
                &settings.events,
                RedisIngestState::new(redis()?),
                guard("kafka"),
                timeout,
            )
            .await
            .map_err(failed("event log"))?,
        ),
    };
    let auth: Arc<dyn AuthStore> = match settings.auth.backend {
        AuthBackend::Embedded => Arc::new(
            EmbeddedAuthStore::open(data_dir)
                .await
                .map_err(failed("auth"))?,
        ),
        AuthBackend::Redis => Arc::new(RedisAuthStore::new(redis()?)),
    };
    let ttl = Duration::from_secs(settings.cache.search_ttl_secs);
    let search_cache: Option<Arc<dyn SearchCache>> = match settings.cache.backend {
        _ if ttl.is_zero() => None,
        CacheBackend::Memory => Some(Arc::new(MemorySearchCache::new(
            settings.cache.search_entries,
            ttl,
        ))),
        CacheBackend::Redis => Some(Arc::new(RedisSearchCache::new(redis()?, ttl))),
    };
    let vectors = match &search_cache {
        Some(cache) => Arc::new(CachedVectors::new(vectors, cache.clone(), metrics.clone())),
        None => vectors,
    };
    let rate_limits: Option<Arc<dyn RateLimitStore>> =
        match (settings.rate_limit.enabled, settings.rate_limit.backend) {
            (true, RateLimitBackend::Redis) => Some(Arc::new(RedisRateLimits::new(redis()?))),
            _ => None,
        };
    let audit: Option<Arc<dyn AuditLog>> = match (settings.audit.enabled, settings.audit.backend) {
        (false, _) => None,
        (true, AuditBackend::Embedded) => Some(Arc::new(
            EmbeddedAuditLog::open(data_dir)
                .await
                .map_err(failed("audit"))?,
        )),
        (true, AuditBackend::Redis) => Some(Arc::new(RedisAuditLog::new(
            redis()?,
            settings.audit.max_records,
        ))),
    };
    Ok(Stores {
        vectors,
        audit,
        graph,
        events,
        auth,
        search_cache,
        rate_limits,
        breakers,
    })
}
