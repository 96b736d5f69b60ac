//! The backend sections as the file writes them: flat, `backend = "…"` beside the keys
//! of every backend the section can use (the defaults carry them all, so one key or one
//! environment variable switches a section back). Each is read as a plain struct, so
//! figment names the key of any error, and then turned into its typed section, where
//! only the chosen backend's keys survive, inside its variant, checked.

use std::num::{NonZeroU32, NonZeroU64, NonZeroUsize};

use secrecy::SecretString;
use serde::Deserialize;

use super::backends::{
    EmbedderBackend, EventBackend, GraphBackend, KafkaSettings, Neo4jSettings,
    OpenAiEmbedderSettings, QdrantSettings, VectorBackend,
};
use super::{
    EmbedderSettings, EventSettings, GraphSettings, Millis, Required, VectorQuantization,
    VectorSettings,
};
use crate::domain::vector::Distance;

/// `key` of the backend `backend`, which cannot work with it empty.
fn required(value: String, key: &str, backend: &str) -> Result<Required, String> {
    Required::try_from(value).map_err(|_| format!("{key}: must be set when backend = {backend:?}"))
}

#[derive(Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
enum VectorKind {
    Embedded,
    Qdrant,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct VectorSection {
    backend: VectorKind,
    qdrant_url: String,
    qdrant_api_key: SecretString,
    default_collection: String,
    default_dim: NonZeroUsize,
    default_distance: Distance,
    maintenance_ms: Millis,
    checkpoint_interval_ms: Millis,
    checkpoint_log_bytes: u64,
    engine_wal_limit_bytes: u64,
    indexing_threads: usize,
    indexing_threshold_kb: usize,
    search_slots: usize,
    quantization: VectorQuantization,
}

const MAX_SEARCH_SLOTS: usize = 4096;

impl TryFrom<VectorSection> for VectorSettings {
    type Error = String;

    fn try_from(s: VectorSection) -> Result<Self, String> {
        let backend = match s.backend {
            VectorKind::Embedded => VectorBackend::Embedded,
            VectorKind::Qdrant => VectorBackend::Qdrant(QdrantSettings {
                url: required(s.qdrant_url, "qdrant_url", "qdrant")?,
                api_key: s.qdrant_api_key,
            }),
        };
        // A semaphore holds at most `usize::MAX >> 3` permits; far more than any machine's
        // cores is a mistake anyway.
        if s.search_slots > MAX_SEARCH_SLOTS {
            return Err(format!(
                "vectors.search_slots is {}; at most {MAX_SEARCH_SLOTS} (0: no bound)",
                s.search_slots
            ));
        }
        Ok(VectorSettings {
            backend,
            default_collection: s.default_collection,
            default_dim: s.default_dim,
            default_distance: s.default_distance,
            maintenance_ms: s.maintenance_ms,
            checkpoint_interval_ms: s.checkpoint_interval_ms,
            checkpoint_log_bytes: s.checkpoint_log_bytes,
            engine_wal_limit_bytes: s.engine_wal_limit_bytes,
            indexing_threads: s.indexing_threads,
            indexing_threshold_kb: s.indexing_threshold_kb,
            search_slots: s.search_slots,
            quantization: s.quantization,
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum GraphKind {
    Embedded,
    Neo4j,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GraphSection {
    backend: GraphKind,
    wal_limit_bytes: NonZeroU64,
    indexed_properties: Vec<String>,
    neo4j_uri: String,
    neo4j_user: String,
    neo4j_password: SecretString,
    neo4j_database: String,
    neo4j_max_connections: NonZeroUsize,
    neo4j_client_cypher: bool,
}

impl TryFrom<GraphSection> for GraphSettings {
    type Error = String;

    fn try_from(s: GraphSection) -> Result<Self, String> {
        let backend = match s.backend {
            GraphKind::Embedded => GraphBackend::Embedded,
            GraphKind::Neo4j => GraphBackend::Neo4j(Neo4jSettings {
                uri: required(s.neo4j_uri, "neo4j_uri", "neo4j")?,
                user: s.neo4j_user,
                password: s.neo4j_password,
                database: s.neo4j_database,
                max_connections: s.neo4j_max_connections,
                client_cypher: s.neo4j_client_cypher,
            }),
        };
        Ok(GraphSettings {
            backend,
            wal_limit_bytes: s.wal_limit_bytes,
            indexed_properties: s.indexed_properties,
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum EventKind {
    Embedded,
    Kafka,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EventSection {
    backend: EventKind,
    kafka_brokers: String,
    topic: String,
    dead_letter_topic: String,
    group_id: String,
    partitions: NonZeroU32,
    replication: NonZeroU32,
}

impl TryFrom<EventSection> for EventSettings {
    type Error = String;

    fn try_from(s: EventSection) -> Result<Self, String> {
        let backend = match s.backend {
            EventKind::Embedded => EventBackend::Embedded,
            EventKind::Kafka => EventBackend::Kafka(KafkaSettings {
                brokers: required(s.kafka_brokers, "kafka_brokers", "kafka")?,
                topic: required(s.topic, "topic", "kafka")?,
                dead_letter_topic: required(s.dead_letter_topic, "dead_letter_topic", "kafka")?,
                group_id: required(s.group_id, "group_id", "kafka")?,
                partitions: s.partitions,
                replication: s.replication,
            }),
        };
        Ok(EventSettings { backend })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum EmbedderKind {
    Builtin,
    OpenAi,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EmbedderSection {
    backend: EmbedderKind,
    model_dir: String,
    max_tokens: NonZeroUsize,
    base_url: String,
    model: String,
    api_key: SecretString,
    dim: usize,
    batch_size: NonZeroUsize,
    timeout_ms: Millis,
    max_retries: u32,
    cache_entries: u64,
}

impl TryFrom<EmbedderSection> for EmbedderSettings {
    type Error = String;

    fn try_from(s: EmbedderSection) -> Result<Self, String> {
        let backend = match s.backend {
            EmbedderKind::Builtin => EmbedderBackend::Builtin,
            EmbedderKind::OpenAi => EmbedderBackend::OpenAi(OpenAiEmbedderSettings {
                base_url: required(s.base_url, "base_url", "openai")?,
                model: required(s.model, "model", "openai")?,
                api_key: s.api_key,
                dim: NonZeroUsize::new(s.dim)
                    .ok_or("dim: must be greater than 0 when backend = \"openai\"")?,
                batch_size: s.batch_size,
                timeout_ms: s.timeout_ms,
                max_retries: s.max_retries,
            }),
        };
        Ok(EmbedderSettings {
            backend,
            model_dir: s.model_dir,
            max_tokens: s.max_tokens,
            cache_entries: s.cache_entries,
        })
    }
}
