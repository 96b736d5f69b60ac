//! Where each store lives. A section that can use a production engine names it with
//! `backend = "…"`, and the chosen backend's own keys are read into its variant
//! (`VectorBackend::Qdrant` carries the Qdrant URL; see [`super::written`] for how), so
//! code that reaches a backend cannot miss what it needs, and code for another backend
//! cannot read it. Also the settings of Redis and the resilience layer, and the start-up
//! check of the choices that span sections.

use std::num::{NonZeroU32, NonZeroU64, NonZeroUsize};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::{ConfigError, JwtAlgorithm, Millis, Required, Settings};

/// Where vectors live (`[vectors] backend`).
#[derive(Debug, Clone)]
pub enum VectorBackend {
    /// qdrant-edge in the data directory.
    Embedded,
    Qdrant(QdrantSettings),
}

/// `[vectors] backend = "qdrant"`.
#[derive(Debug, Clone)]
pub struct QdrantSettings {
    /// The server's gRPC endpoint (port 6334).
    pub url: Required,
    /// Empty: none.
    pub api_key: SecretString,
}

impl QdrantSettings {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: Required::new(url),
            api_key: empty_secret(),
        }
    }
}

/// Where the graph lives (`[graph] backend`).
#[derive(Debug, Clone)]
pub enum GraphBackend {
    /// grafeo in the data directory.
    Embedded,
    /// Any Bolt server speaking Neo4j 5 Cypher.
    Neo4j(Neo4jSettings),
}

/// `[graph] backend = "neo4j"`.
#[derive(Debug, Clone)]
pub struct Neo4jSettings {
    /// `host:port` or `bolt://host:port`.
    pub uri: Required,
    pub user: String,
    pub password: SecretString,
    /// Empty: the server's default database.
    pub database: String,
    pub max_connections: NonZeroUsize,
    /// Whether `/graphs/query` runs client Cypher on the server. Off by default: one
    /// graph holds every tenant there, and read-only Cypher can read across tenants,
    /// so turn it on only when the server serves a single tenant.
    pub client_cypher: bool,
}

/// Where the ingest log lives (`[events] backend`).
#[derive(Debug, Clone)]
pub enum EventBackend {
    /// redb in the data directory.
    Embedded,
    /// Kafka; ingest statuses then live in Redis.
    Kafka(KafkaSettings),
}

/// `[events] backend = "kafka"`.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    /// `host:port` list.
    pub brokers: Required,
    pub topic: Required,
    pub dead_letter_topic: Required,
    pub group_id: Required,
    /// Used when the server creates the topics at start-up.
    pub partitions: NonZeroU32,
    pub replication: NonZeroU32,
}

/// What turns text into vectors (`[embedder] backend`).
#[derive(Debug, Clone)]
pub enum EmbedderBackend {
    /// A static model2vec model in the process (`[embedder] model_dir`).
    Builtin,
    OpenAi(OpenAiEmbedderSettings),
}

/// `[embedder] backend = "openai"`: any OpenAI-compatible `/embeddings` endpoint.
#[derive(Debug, Clone)]
pub struct OpenAiEmbedderSettings {
    /// The client POSTs `<base_url>/embeddings`.
    pub base_url: Required,
    pub model: Required,
    pub api_key: SecretString,
    /// The dimension the model returns, checked on every response.
    pub dim: NonZeroUsize,
    pub batch_size: NonZeroUsize,
    pub timeout_ms: Millis,
    pub max_retries: u32,
}

fn empty_secret() -> SecretString {
    String::new().into()
}

/// Where API keys, refresh tokens and revocations live.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AuthBackend {
    Embedded,
    Redis,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CacheBackend {
    Memory,
    Redis,
}

/// Where rate-limit buckets live: each server's memory, or Redis, shared by replicas.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RateLimitBackend {
    Memory,
    Redis,
}

/// `[events]`: the ingest log.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "super::written::EventSection")]
pub struct EventSettings {
    pub backend: EventBackend,
}

/// Where the audit trail is kept.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AuditBackend {
    Embedded,
    Redis,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSettings {
    pub enabled: bool,
    pub backend: AuditBackend,
    /// Records waiting to be written; past it, records are dropped and counted in
    /// `audit_dropped_total`, so auditing never slows or blocks a request.
    pub queue_capacity: usize,
    /// Records older than this are removed (checked every minute).
    pub retention_days: u64,
    /// The oldest records beyond this count are removed.
    pub max_records: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheSettings {
    pub backend: CacheBackend,
    /// How long a search result is served from the cache; 0 turns the cache off.
    pub search_ttl_secs: u64,
    /// Bytes of results (JSON) the in-memory search cache holds at most.
    pub search_max_bytes: NonZeroU64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    /// `redis://[user:password@]host:port[/db]`; needed by any store set to Redis.
    pub url: SecretString,
    /// Prefix of every key the server writes, so several deployments can share a server.
    pub key_prefix: String,
}

/// Applied to every call to a production backend; each backend has its own breaker.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResilienceSettings {
    pub timeout_ms: Millis,
    pub max_attempts: NonZeroU32,
    pub backoff_base_ms: Millis,
    pub backoff_max_ms: u64,
    pub failure_threshold: NonZeroU32,
    pub open_ms: Millis,
}

impl Settings {
    /// The choices fit together: state shared by replicas must not live in one
    /// replica's memory, and Redis is reachable when a store uses it. (What each
    /// backend needs on its own is checked as its section is read.)
    pub(super) fn validate_backends(&self) -> Result<(), ConfigError> {
        let rules = [
            (
                self.uses_redis() && self.redis.url.expose_secret().is_empty(),
                "auth.backend = \"redis\", cache.backend = \"redis\", rate_limit.backend = \
                 \"redis\", audit.backend = \"redis\" and events.backend = \"kafka\" (ingest \
                 status) need redis.url",
            ),
            (
                !matches!(self.vectors.backend, VectorBackend::Embedded)
                    && self.cache.backend == CacheBackend::Memory
                    && self.cache.search_ttl_secs > 0,
                "a shared vector store needs a shared search cache: set cache.backend = \
                 \"redis\" or cache.search_ttl_secs = 0",
            ),
            (
                self.auth.backend == AuthBackend::Redis
                    && self.auth.jwt_algorithm == JwtAlgorithm::Hs256
                    && self.auth.jwt_secret.expose_secret().is_empty(),
                "auth.backend = \"redis\" serves several replicas, so auth.jwt_secret must be \
                 set (every replica signs with it)",
            ),
        ];
        match rules.iter().find(|(broken, _)| *broken) {
            Some((_, message)) => Err(ConfigError((*message).into())),
            None => Ok(()),
        }
    }

    /// Whether any store is set to Redis (ingest status lives there with Kafka).
    pub fn uses_redis(&self) -> bool {
        self.auth.backend == AuthBackend::Redis
            || self.cache.backend == CacheBackend::Redis
            || matches!(self.events.backend, EventBackend::Kafka(_))
            || (self.rate_limit.enabled && self.rate_limit.backend == RateLimitBackend::Redis)
            || (self.audit.enabled && self.audit.backend == AuditBackend::Redis)
    }

    /// Whether any store a migration copies (vectors, graph, events, keys) is the
    /// embedded one, kept under `server.data_dir`.
    pub fn uses_embedded_store(&self) -> bool {
        matches!(self.vectors.backend, VectorBackend::Embedded)
            || matches!(self.graph.backend, GraphBackend::Embedded)
            || matches!(self.events.backend, EventBackend::Embedded)
            || self.auth.backend == AuthBackend::Embedded
    }
}
