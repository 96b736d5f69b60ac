//! Settings of the production backends beyond the vector and graph stores' own
//! sections (the event log, the search cache, Redis, the resilience layer), and the
//! start-up check that the chosen backends have what they need and fit together.

use std::num::{NonZeroU32, NonZeroU64};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::{ConfigError, GraphBackend, JwtAlgorithm, Millis, Settings, VectorBackend};

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum EventBackend {
    Embedded,
    Kafka,
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventSettings {
    pub backend: EventBackend,
    /// `host:port` list, for `backend = "kafka"`.
    pub kafka_brokers: String,
    pub topic: String,
    pub dead_letter_topic: String,
    pub group_id: String,
    /// Used when the server creates the topics at start-up.
    pub partitions: i32,
    pub replication: i32,
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
    /// Entries kept by the in-memory search cache.
    pub search_entries: NonZeroU64,
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
    /// Each production backend chosen has the addresses it needs, and the choices fit
    /// together (state shared by replicas must not live in one replica's memory).
    pub(super) fn validate_backends(&self) -> Result<(), ConfigError> {
        let required = [
            (
                self.vectors.backend == VectorBackend::Qdrant,
                "vectors.backend = \"qdrant\" needs vectors.qdrant_url",
                self.vectors.qdrant_url.is_empty(),
            ),
            (
                self.graph.backend == GraphBackend::Neo4j,
                "graph.backend = \"neo4j\" needs graph.neo4j_uri",
                self.graph.neo4j_uri.is_empty(),
            ),
            (
                self.events.backend == EventBackend::Kafka,
                "events.backend = \"kafka\" needs events.kafka_brokers, events.topic, \
                 events.dead_letter_topic and events.group_id",
                self.events.kafka_brokers.is_empty()
                    || self.events.topic.is_empty()
                    || self.events.dead_letter_topic.is_empty()
                    || self.events.group_id.is_empty(),
            ),
            (
                self.uses_redis(),
                "auth.backend = \"redis\", cache.backend = \"redis\", rate_limit.backend = \
                 \"redis\", audit.backend = \"redis\" and events.backend = \"kafka\" (ingest \
                 status) need redis.url",
                self.redis.url.expose_secret().is_empty(),
            ),
            (
                self.events.backend == EventBackend::Kafka,
                "events.partitions and events.replication must be greater than 0",
                self.events.partitions <= 0 || self.events.replication <= 0,
            ),
            (
                self.vectors.backend != VectorBackend::Embedded
                    && self.cache.backend == CacheBackend::Memory,
                "a shared vector store needs a shared search cache: set cache.backend = \
                 \"redis\" or cache.search_ttl_secs = 0",
                self.cache.search_ttl_secs > 0,
            ),
            (
                self.auth.backend == AuthBackend::Redis
                    && self.auth.jwt_algorithm == JwtAlgorithm::Hs256,
                "auth.backend = \"redis\" serves several replicas, so auth.jwt_secret must be \
                 set (every replica signs with it)",
                self.auth.jwt_secret.expose_secret().is_empty(),
            ),
        ];
        match required
            .iter()
            .find(|(chosen, _, missing)| *chosen && *missing)
        {
            Some((_, message, _)) => Err(ConfigError((*message).into())),
            None => Ok(()),
        }
    }

    /// Whether any store is set to Redis (ingest status lives there with Kafka).
    pub fn uses_redis(&self) -> bool {
        self.auth.backend == AuthBackend::Redis
            || self.cache.backend == CacheBackend::Redis
            || self.events.backend == EventBackend::Kafka
            || (self.rate_limit.enabled && self.rate_limit.backend == RateLimitBackend::Redis)
            || (self.audit.enabled && self.audit.backend == AuditBackend::Redis)
    }
}
