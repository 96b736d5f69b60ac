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
use crate::store::backup::Backup;
use crate::store::cache::{CachedVectors, MemorySearchCache, SearchCache};
use crate::store::client_cypher::QuerySlots;
use crate::store::embedded::audit::EmbeddedAuditLog;
use crate::store::embedded::auth::EmbeddedAuthStore;
use crate::store::embedded::events::EmbeddedEventLog;
use crate::store::embedded::graph::{EmbeddedGraphOptions, EmbeddedGraphStore};
use crate::store::embedded::space::Space;
use crate::store::embedded::vectors::{EmbeddedVectorOptions, EmbeddedVectorStore, Tuning};
use crate::store::kafka::{KafkaEventLog, largest_message};
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
    /// The embedded stores among them, for snapshots; the event log first (see
    /// [`open`]).
    pub backups: Vec<Arc<dyn Backup>>,
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
    let mut opener = Opener {
        settings,
        metrics,
        policy: Policy::from(&settings.resilience),
        breakers: Vec::new(),
        redis: None,
        backups: Vec::new(),
    };
    if settings.uses_redis() {
        let r = &settings.redis;
        let guard = opener.guard("redis");
        opener.redis = Some(
            Redis::connect(&r.url, &r.key_prefix, guard, opener.policy.timeout)
                .map_err(failed("redis"))?,
        );
    }
    let vectors = opener.vectors().await?;
    let graph = opener.graph().await?;
    let events = opener.events().await?;
    let auth = opener.auth().await?;
    let search_cache = opener.search_cache()?;
    let vectors = match &search_cache {
        Some(cache) => Arc::new(CachedVectors::new(vectors, cache.clone(), metrics.clone())),
        None => vectors,
    };
    let rate_limits = opener.rate_limits()?;
    let audit = opener.audit().await?;
    // A snapshot copies the event log before the stores ingest writes to: an event
    // processed while the others are copied is then still pending in the copy, and a
    // restored server processes it again (ingest is idempotent). The other order could
    // keep an event marked done whose vectors the copy missed.
    let mut backups = opener.backups;
    backups.sort_by_key(|b| b.name() != "events");
    Ok(Stores {
        vectors,
        audit,
        graph,
        events,
        auth,
        search_cache,
        rate_limits,
        breakers: opener.breakers,
        backups,
    })
}

/// What opening the stores shares: the settings, one resilience guard per production
/// backend (kept for the health checks) and the Redis connection the Redis-backed
/// stores share.
struct Opener<'a> {
    settings: &'a Settings,
    metrics: &'a Arc<Metrics>,
    policy: Policy,
    breakers: Vec<Arc<Resilience>>,
    redis: Option<Redis>,
    backups: Vec<Arc<dyn Backup>>,
}

impl Opener<'_> {
    fn guard(&mut self, backend: &'static str) -> Arc<Resilience> {
        let g = Resilience::new(backend, self.policy, self.metrics);
        self.breakers.push(g.clone());
        g
    }

    /// Keeps `store` for snapshots and returns it.
    fn embedded<T: Backup + 'static>(&mut self, store: T) -> Arc<T> {
        let store = Arc::new(store);
        self.backups.push(store.clone());
        store
    }

    fn redis(&self) -> Result<Redis, OpenError> {
        self.redis.clone().ok_or_else(|| OpenError {
            store: "redis",
            error: StoreError::invalid("redis.url is not set"),
        })
    }

    async fn vectors(&mut self) -> Result<Arc<dyn VectorStore>, OpenError> {
        let settings = self.settings;
        Ok(match &settings.vectors.backend {
            VectorBackend::Embedded => self.embedded(
                EmbeddedVectorStore::open(&settings.server.data_dir, vector_options(settings))
                    .await
                    .map_err(failed("vector"))?,
            ),
            VectorBackend::Qdrant(qdrant) => {
                let guard = self.guard("qdrant");
                let timeout = self.policy.timeout;
                Arc::new(
                    QdrantVectorStore::connect(&settings.vectors, qdrant, guard, timeout)
                        .map_err(failed("vector"))?,
                )
            }
        })
    }

    async fn graph(&mut self) -> Result<Arc<dyn GraphStore>, OpenError> {
        let settings = self.settings;
        let limits = &settings.limits;
        Ok(match &settings.graph.backend {
            GraphBackend::Embedded => self.embedded(
                EmbeddedGraphStore::open(&settings.server.data_dir, graph_options(settings))
                    .await
                    .map_err(failed("graph"))?,
            ),
            GraphBackend::Neo4j(neo4j) => {
                let guard = self.guard("neo4j");
                let slots = QuerySlots::new(
                    limits.max_concurrent_queries.get(),
                    limits.max_concurrent_queries_per_tenant.get(),
                );
                let query_timeout = limits.query_timeout_ms.get();
                Arc::new(
                    Neo4jGraphStore::connect(
                        neo4j,
                        guard,
                        self.policy.timeout,
                        query_timeout,
                        slots,
                    )
                    .await
                    .map_err(failed("graph"))?,
                )
            }
        })
    }

    async fn events(&mut self) -> Result<Arc<dyn EventLog>, OpenError> {
        let settings = self.settings;
        Ok(match &settings.events.backend {
            EventBackend::Embedded => self.embedded(
                EmbeddedEventLog::open(&settings.server.data_dir, space(settings))
                    .await
                    .map_err(failed("event log"))?,
            ),
            EventBackend::Kafka(kafka) => {
                let state = RedisIngestState::new(self.redis()?);
                let guard = self.guard("kafka");
                let ingest = &settings.ingest;
                let largest =
                    largest_message(ingest.max_text_bytes.get(), ingest.max_metadata_bytes);
                let timeout = self.policy.timeout;
                Arc::new(
                    KafkaEventLog::connect(kafka, state, guard, timeout, largest)
                        .await
                        .map_err(failed("event log"))?,
                )
            }
        })
    }

    async fn auth(&mut self) -> Result<Arc<dyn AuthStore>, OpenError> {
        Ok(match self.settings.auth.backend {
            AuthBackend::Embedded => self.embedded(
                EmbeddedAuthStore::open(&self.settings.server.data_dir, space(self.settings))
                    .await
                    .map_err(failed("auth"))?,
            ),
            AuthBackend::Redis => Arc::new(RedisAuthStore::new(self.redis()?)),
        })
    }

    /// `None` when cache entries would live 0 seconds.
    fn search_cache(&self) -> Result<Option<Arc<dyn SearchCache>>, OpenError> {
        let cache = &self.settings.cache;
        let ttl = Duration::from_secs(cache.search_ttl_secs);
        Ok(match cache.backend {
            _ if ttl.is_zero() => None,
            CacheBackend::Memory => Some(Arc::new(MemorySearchCache::new(
                cache.search_max_bytes.get(),
                ttl,
            ))),
            CacheBackend::Redis => Some(Arc::new(RedisSearchCache::new(self.redis()?, ttl))),
        })
    }

    fn rate_limits(&self) -> Result<Option<Arc<dyn RateLimitStore>>, OpenError> {
        let limits = &self.settings.rate_limit;
        Ok(match (limits.enabled, limits.backend) {
            (true, RateLimitBackend::Redis) => Some(Arc::new(RedisRateLimits::new(self.redis()?))),
            _ => None,
        })
    }

    async fn audit(&mut self) -> Result<Option<Arc<dyn AuditLog>>, OpenError> {
        let audit = &self.settings.audit;
        Ok(match (audit.enabled, audit.backend) {
            (false, _) => None,
            (true, AuditBackend::Embedded) => Some(
                self.embedded(
                    EmbeddedAuditLog::open(&self.settings.server.data_dir, space(self.settings))
                        .await
                        .map_err(failed("audit"))?,
                ),
            ),
            (true, AuditBackend::Redis) => Some(Arc::new(RedisAuditLog::new(
                self.redis()?,
                audit.max_records,
            ))),
        })
    }
}

fn vector_options(settings: &Settings) -> EmbeddedVectorOptions {
    let v = &settings.vectors;
    let indexing_threads = match v.indexing_threads {
        0 => std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1)),
        n => n,
    };
    EmbeddedVectorOptions {
        default_name: v.default_collection.clone(),
        default_spec: CollectionSpec {
            dim: v.default_dim.get(),
            distance: v.default_distance,
        },
        tuning: Tuning {
            indexing_threads,
            engine_wal_limit_bytes: v.engine_wal_limit_bytes,
            indexing_threshold_kb: (v.indexing_threshold_kb != 0)
                .then_some(v.indexing_threshold_kb),
            quantization: v.quantization,
        },
        maintenance_every: v.maintenance_ms.get(),
        checkpoint_every: v.checkpoint_interval_ms.get(),
        checkpoint_bytes: v.checkpoint_log_bytes,
        search_slots: v.search_slots,
        space: space(settings),
    }
}

/// The free-space check every embedded store makes before a write that takes space.
pub fn space(settings: &Settings) -> Space {
    Space::new(
        &settings.server.data_dir,
        settings.server.disk_reserve_bytes,
    )
}

fn graph_options(settings: &Settings) -> EmbeddedGraphOptions {
    let limits = &settings.limits;
    EmbeddedGraphOptions {
        query_timeout: limits.query_timeout_ms.get(),
        max_concurrent_queries: limits.max_concurrent_queries.get(),
        max_concurrent_queries_per_tenant: limits.max_concurrent_queries_per_tenant.get(),
        query_memory_bytes: limits.query_memory_bytes.get(),
        wal_limit_bytes: settings.graph.wal_limit_bytes.get(),
        indexed_properties: settings.graph.indexed_properties.clone(),
        space: space(settings),
    }
}
