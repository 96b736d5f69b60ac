//! Typed configuration: compiled-in `config/default.toml`, then an optional file, then
//! `RAGBRAIN__SECTION__KEY` environment variables; validated once at start-up.

use std::num::{NonZeroU32, NonZeroU64, NonZeroUsize};
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::SecretString;
use serde::Deserialize;

use crate::domain::vector::Distance;

mod backends;
mod validate;
mod values;
mod written;

pub use backends::{
    AuditBackend, AuditSettings, AuthBackend, CacheBackend, CacheSettings, EmbedderBackend,
    EventBackend, EventSettings, GraphBackend, KafkaSettings, Neo4jSettings,
    OpenAiEmbedderSettings, QdrantSettings, RateLimitBackend, RedisSettings, ResilienceSettings,
    VectorBackend,
};

pub use values::{Millis, QuotaSettings, Quotas, Required};

const DEFAULTS: &str = include_str!("../../config/default.toml");

/// Why the configuration could not be used; the message names the offending key.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub limits: Limits,
    pub vectors: VectorSettings,
    pub graph: GraphSettings,
    pub embedder: EmbedderSettings,
    pub llm: LlmSettings,
    pub ingest: IngestSettings,
    pub hybrid: HybridSettings,
    pub auth: AuthSettings,
    pub rate_limit: RateLimitSettings,
    pub events: EventSettings,
    pub cache: CacheSettings,
    pub audit: AuditSettings,
    pub redis: RedisSettings,
    pub resilience: ResilienceSettings,
    pub log: LogSettings,
    pub snapshots: SnapshotSettings,
    pub telemetry: TelemetrySettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    pub data_dir: PathBuf,
    /// Writes to the embedded stores are refused while less than this is free on the
    /// data directory's filesystem; 0: never.
    pub disk_reserve_bytes: u64,
    pub request_timeout_ms: Millis,
    pub body_limit_bytes: NonZeroUsize,
    pub shutdown_grace_ms: u64,
    /// Browser origins allowed to call the API; empty: no CORS, `["*"]`: any.
    pub cors_allowed_origins: Vec<String>,
    /// Gzip responses when the client accepts it (never event streams).
    pub compression: bool,
    /// `Strict-Transport-Security` max-age; 0 leaves the header off (set it only when
    /// clients reach the server over HTTPS).
    pub hsts_max_age_secs: u64,
    /// A client must send a request's whole header within this long, or the connection
    /// is closed (slow-header clients hold no connection for long).
    pub header_read_timeout_ms: Millis,
    /// A keep-alive connection with no request in flight is closed after this long.
    pub idle_timeout_ms: Millis,
    /// Connections held open at once. At the bound, the connection idle longest is
    /// closed for each new one; the bound is lowered to fit the open-file limit.
    pub max_connections: NonZeroUsize,
    /// A second listener, plain HTTP, serving only `/health/*` and `/metrics`, so probes
    /// and scrapers need no client certificate when the API requires one; 0: none.
    pub admin_port: u16,
    pub tls: TlsSettings,
}

/// HTTPS on the API listener; off while `cert_file` is empty.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM: the server certificate, then its chain.
    pub cert_file: String,
    /// PEM: the certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: String,
    /// PEM: CAs whose client certificates are accepted; set, every client must present
    /// one (mutual TLS). Empty: no client certificates.
    pub client_ca_file: String,
    /// How often the files are checked for changes (a changed file is reloaded without
    /// a restart; SIGHUP reloads at once).
    pub reload_ms: Millis,
}

/// Requests per minute per caller for each route class, and the burst allowed at once.
/// No `deny_unknown_fields`: serde cannot combine it with `flatten`, but every key
/// other than the three named here must be a class, so a stray key is still refused
/// ("unknown variant").
#[derive(Debug, Clone, Deserialize)]
pub struct RateLimitSettings {
    pub enabled: bool,
    /// `memory`: each server counts alone (N replicas allow N times a quota); `redis`:
    /// one bucket per caller and class for every replica, in Redis.
    pub backend: RateLimitBackend,
    /// Take the client IP from the first `X-Forwarded-For` address; only behind a proxy
    /// that sets it, or clients could pick their own key.
    pub trust_forwarded_for: bool,
    /// One quota per route class, keyed by [`Class::as_str`]
    /// (`[rate_limit] ingest = { per_minute = 10, burst = 10 }`).
    #[serde(flatten)]
    pub quotas: Quotas,
}

/// Hard limits on every size a client controls.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub max_batch_points: NonZeroUsize,
    pub max_vector_dim: NonZeroUsize,
    pub max_search_limit: NonZeroUsize,
    pub max_search_offset: usize,
    pub max_payload_bytes: NonZeroUsize,
    pub max_filter_conditions: usize,
    pub max_filter_depth: usize,
    pub max_labels: NonZeroUsize,
    pub max_properties_bytes: usize,
    pub max_graph_hops: u8,
    pub max_neighbors_limit: NonZeroUsize,
    pub max_find_limit: NonZeroUsize,
    pub max_find_offset: usize,
    pub max_query_rows: NonZeroUsize,
    pub max_query_bytes: NonZeroUsize,
    pub query_timeout_ms: Millis,
    pub max_concurrent_queries: NonZeroUsize,
    /// Client Cypher queries one tenant may run at once, so one tenant cannot take
    /// every slot.
    pub max_concurrent_queries_per_tenant: NonZeroUsize,
    /// Memory one client Cypher query may allocate on the embedded engine; past it the
    /// query is stopped and answered 422.
    pub query_memory_bytes: NonZeroU64,
    /// Most elements a `range()` in client Cypher may build.
    pub max_query_list: NonZeroUsize,
    /// Largest client Cypher result, in bytes of JSON.
    pub max_query_result_bytes: NonZeroUsize,
    pub max_id_len: NonZeroUsize,
    /// Vector collections one tenant may have.
    pub max_collections: NonZeroUsize,
    /// Payload indexes one collection may have.
    pub max_payload_indexes: NonZeroUsize,
    /// Points one tenant may keep, over all its collections.
    pub max_points_per_tenant: NonZeroU64,
    /// Graph nodes and relationships, together, one tenant may keep.
    pub max_graph_items_per_tenant: NonZeroU64,
    /// Bytes that large answers in flight may reserve at once, each its worst case;
    /// past it they wait their turn (`services::budget`).
    pub read_budget_bytes: NonZeroU64,
    /// Bytes of it one tenant's large answers may hold at once (at most all of it).
    pub read_budget_per_tenant_bytes: NonZeroU64,
}

/// The compressed copy of its vectors a collection keeps in RAM for the search walk.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum VectorQuantization {
    /// The walk reads the full 32-bit vectors.
    None,
    /// One byte per dimension, in HNSW-indexed segments only; the best candidates are
    /// scored again on the full vectors, so results keep their exact scores.
    Int8,
    /// Four bits per dimension after a random rotation (TurboQuant), in every segment:
    /// segments not yet indexed are scanned on it too, reading an eighth of the bytes.
    /// The best candidates are scored again on the full vectors.
    Turbo,
}

/// `[vectors]`, read through [`written::VectorSection`] like the other backend sections.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "written::VectorSection")]
pub struct VectorSettings {
    pub backend: VectorBackend,
    pub default_collection: String,
    pub default_dim: NonZeroUsize,
    pub default_distance: Distance,
    /// How often the maintenance task optimises and checkpoints collections.
    pub maintenance_ms: Millis,
    /// A collection's operation log is checkpointed when older than this…
    pub checkpoint_interval_ms: Millis,
    /// …or larger than this.
    pub checkpoint_log_bytes: u64,
    /// The engine's own WAL (never replayed) is released above this size.
    pub engine_wal_limit_bytes: u64,
    /// Threads one HNSW build may use; 0: half the cores, at least one.
    pub indexing_threads: usize,
    /// Segments over this many KiB of vectors get an HNSW index; 0: the engine's default.
    pub indexing_threshold_kb: usize,
    /// Embedded searches run at most this many at a time; 0: no bound.
    pub search_slots: usize,
    /// Compressed vectors for the HNSW walk of collections created from now on.
    pub quantization: VectorQuantization,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "written::GraphSection")]
pub struct GraphSettings {
    pub backend: GraphBackend,
    /// The embedded graph's WAL is rewritten as a copy of the live graph above this.
    pub wal_limit_bytes: NonZeroU64,
    /// Node properties the embedded graph indexes for finds by value (`id` and `doc_id`
    /// always are).
    pub indexed_properties: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "written::EmbedderSection")]
pub struct EmbedderSettings {
    pub backend: EmbedderBackend,
    /// Builtin: a directory holding another model2vec model; empty: the shipped one.
    pub model_dir: String,
    /// Builtin: inputs longer than this many tokens are truncated.
    pub max_tokens: NonZeroUsize,
    /// Vectors kept by the embedding cache; 0 disables it.
    pub cache_entries: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmSettings {
    pub base_url: String,
    pub model: String,
    pub api_key: SecretString,
    pub timeout_ms: Millis,
    pub max_tokens: u32,
    pub temperature: f32,
    pub max_context_chunks: NonZeroUsize,
    pub max_context_chars: NonZeroUsize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestSettings {
    pub worker: bool,
    pub chunk_size_chars: NonZeroUsize,
    pub chunk_overlap_chars: usize,
    pub max_text_bytes: NonZeroUsize,
    pub max_metadata_bytes: usize,
    pub max_batch_events: NonZeroUsize,
    /// Events accepted and not yet processed, at most; more are refused with 503. 0: no
    /// bound.
    pub max_pending: u64,
    pub max_entities_per_chunk: usize,
    pub worker_batch: NonZeroUsize,
    pub worker_batch_bytes: NonZeroUsize,
    pub retry_max_backoff_ms: u64,
    pub max_attempts: NonZeroU32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HybridSettings {
    pub vector_candidates: NonZeroUsize,
    pub max_graph_chunks: NonZeroUsize,
    pub seed_chunks: usize,
    pub max_seed_entities: usize,
    /// At most [`HybridSettings::MAX_RRF_K`].
    pub default_rrf_k: NonZeroU32,
    /// The graph list's weight in reciprocal rank fusion, against the vector list's 1.
    pub graph_weight: f32,
    /// The lexical (BM25) list's weight in reciprocal rank fusion; 0 leaves it out.
    pub lexical_weight: f32,
    /// How the graph list is ranked.
    pub graph_ranker: GraphRanker,
    /// PageRank: the chance a walk goes on rather than restarting at a seed.
    pub ppr_damping: f32,
    /// Walk: an entity one `RELATED_TO` hop further scores this much of its parent.
    pub hop_decay: f32,
}

impl HybridSettings {
    /// The largest reciprocal rank fusion `k`, in settings and in requests. Scores are
    /// `f32`; past about a million, `1 / (k + rank)` no longer tells nearby ranks apart,
    /// so every fused list would end in ties.
    pub const MAX_RRF_K: u32 = 1_000_000;
}

/// The graph list's ranker in hybrid search.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum GraphRanker {
    /// Personalised PageRank over the entity–chunk graph around the seeds.
    Ppr,
    /// `RELATED_TO` steps from the seeds; chunks scored by their best path.
    Walk,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    pub backend: AuthBackend,
    pub jwt_algorithm: JwtAlgorithm,
    pub jwt_secret: SecretString,
    /// PEM public key that verifies RS256/EdDSA tokens (e.g. an identity provider's).
    pub jwt_public_key_file: PathBuf,
    /// PEM private key for signing RS256/EdDSA tokens here; without it, tokens come only
    /// from the identity provider and `/auth/token` answers 501.
    pub jwt_private_key_file: PathBuf,
    pub refresh_token_ttl_secs: NonZeroU64,
    pub jwt_issuer: String,
    pub jwt_audience: String,
    pub access_token_ttl_secs: NonZeroU64,
    pub clock_skew_secs: u64,
    pub anonymous_read: bool,
    pub anonymous_tenant: String,
    pub bootstrap_tenant: String,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub enum JwtAlgorithm {
    #[serde(rename = "HS256")]
    Hs256,
    #[serde(rename = "RS256")]
    Rs256,
    EdDSA,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

/// OpenTelemetry traces: off unless `otlp_endpoint` is set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySettings {
    /// Where spans are exported over OTLP; empty: no traces.
    pub otlp_endpoint: String,
    pub otlp_protocol: OtlpProtocol,
    /// The share of traces started here that are kept; a caller's sampled
    /// `traceparent` is always followed.
    pub sampling_ratio: f64,
    /// The `service.name` resource attribute.
    pub service_name: String,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OtlpProtocol {
    /// OTLP over HTTP with protobuf bodies (port 4318, `/v1/traces`).
    Http,
    /// OTLP over gRPC (port 4317).
    Grpc,
}

/// Snapshots of the embedded stores taken through the API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotSettings {
    /// Files kept under `<data_dir>/snapshots`; the oldest go once a new one is taken.
    pub keep: NonZeroUsize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
}

impl Settings {
    /// Loads defaults, then `file` (if any), then the environment, and validates.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Toml::string(DEFAULTS));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            figment = figment.merge(Toml::file(path));
        }
        figment = figment.merge(Env::prefixed("RAGBRAIN__").split("__"));
        let settings: Settings = figment.extract().map_err(|e| ConfigError(one_line(&e)))?;
        settings.validate()?;
        Ok(settings)
    }
}

/// Figment errors can span lines and echo env-var casing; start-up reports each as
/// `section.key: problem (from source)` on one line.
fn one_line(error: &figment::Error) -> String {
    error
        .clone()
        .into_iter()
        .map(|e| {
            let key = e.path.join(".").to_ascii_lowercase();
            let source = e
                .metadata
                .as_ref()
                .map(|m| format!(" (from {})", m.name))
                .unwrap_or_default();
            let problem = match &e.kind {
                // serde's words for a 0 in a `NonZero*` setting.
                figment::error::Kind::InvalidValue(_, expected)
                    if expected.starts_with("a nonzero") =>
                {
                    "must be greater than 0".to_owned()
                }
                kind => kind.to_string(),
            };
            if key.is_empty() {
                format!("{problem}{source}")
            } else {
                format!("{key}: {problem}{source}")
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests;
