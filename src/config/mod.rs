//! Typed configuration: compiled-in `config/default.toml`, then an optional file, then
//! `RAGBRAIN__SECTION__KEY` environment variables; validated once at start-up.

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::domain::vector::Distance;

mod backends;

pub use backends::{
    AuthBackend, CacheBackend, CacheSettings, EventBackend, EventSettings, RedisSettings,
    ResilienceSettings,
};

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
    pub redis: RedisSettings,
    pub resilience: ResilienceSettings,
    pub log: LogSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    pub data_dir: PathBuf,
    pub request_timeout_ms: u64,
    pub body_limit_bytes: usize,
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
    pub header_read_timeout_ms: u64,
    /// A keep-alive connection with no request in flight is closed after this long.
    pub idle_timeout_ms: u64,
    /// Connections held open at once. At the bound, the connection idle longest is
    /// closed for each new one; the bound is lowered to fit the open-file limit.
    pub max_connections: usize,
}

/// Requests per minute per caller for each route class, and the burst allowed at once.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    pub enabled: bool,
    /// Take the client IP from the first `X-Forwarded-For` address; only behind a proxy
    /// that sets it, or clients could pick their own key.
    pub trust_forwarded_for: bool,
    pub ingest: QuotaSettings,
    pub vector_write: QuotaSettings,
    pub graph_write: QuotaSettings,
    pub generate: QuotaSettings,
    pub search: QuotaSettings,
    pub graph_read: QuotaSettings,
    pub read: QuotaSettings,
    pub admin: QuotaSettings,
    pub auth: QuotaSettings,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaSettings {
    pub per_minute: u32,
    pub burst: u32,
}

/// Hard limits on every size a client controls.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub max_batch_points: usize,
    pub max_vector_dim: usize,
    pub max_search_limit: usize,
    pub max_search_offset: usize,
    pub max_payload_bytes: usize,
    pub max_filter_conditions: usize,
    pub max_filter_depth: usize,
    pub max_labels: usize,
    pub max_properties_bytes: usize,
    pub max_graph_hops: u8,
    pub max_neighbors_limit: usize,
    pub max_find_limit: usize,
    pub max_find_offset: usize,
    pub max_query_rows: usize,
    pub max_query_bytes: usize,
    pub query_timeout_ms: u64,
    pub max_concurrent_queries: usize,
    /// Client Cypher queries one tenant may run at once, so one tenant cannot take
    /// every slot.
    pub max_concurrent_queries_per_tenant: usize,
    /// Memory one client Cypher query may allocate on the embedded engine; past it the
    /// query is stopped and answered 422.
    pub query_memory_bytes: u64,
    /// Most elements a `range()` in client Cypher may build.
    pub max_query_list: usize,
    /// Largest client Cypher result, in bytes of JSON.
    pub max_query_result_bytes: usize,
    pub max_id_len: usize,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum VectorBackend {
    Embedded,
    Qdrant,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum GraphBackend {
    Embedded,
    Neo4j,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VectorSettings {
    pub backend: VectorBackend,
    pub default_collection: String,
    pub default_dim: usize,
    pub default_distance: Distance,
    pub optimize_idle_ms: u64,
    pub optimize_check_ms: u64,
    /// Qdrant's gRPC endpoint (port 6334), for `backend = "qdrant"`.
    pub qdrant_url: String,
    pub qdrant_api_key: SecretString,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphSettings {
    pub backend: GraphBackend,
    /// Bolt address (`host:port` or `bolt://host:port`), for `backend = "neo4j"`.
    pub neo4j_uri: String,
    pub neo4j_user: String,
    pub neo4j_password: SecretString,
    /// Empty: the server's default database.
    pub neo4j_database: String,
    pub neo4j_max_connections: usize,
    /// Whether `/graphs/query` runs client Cypher on the Bolt server. Off by default:
    /// one graph holds every tenant there, and read-only Cypher can read across tenants,
    /// so turn it on only when the server serves a single tenant.
    pub neo4j_client_cypher: bool,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum EmbedderBackend {
    Builtin,
    OpenAi,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbedderSettings {
    pub backend: EmbedderBackend,
    pub model_dir: String,
    pub base_url: String,
    pub model: String,
    pub api_key: SecretString,
    pub dim: usize,
    pub batch_size: usize,
    pub timeout_ms: u64,
    pub max_retries: u32,
    pub max_tokens: usize,
    /// Vectors kept by the embedding cache; 0 disables it.
    pub cache_entries: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmSettings {
    pub base_url: String,
    pub model: String,
    pub api_key: SecretString,
    pub timeout_ms: u64,
    pub max_tokens: u32,
    pub temperature: f32,
    pub max_context_chunks: usize,
    pub max_context_chars: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestSettings {
    pub worker: bool,
    pub chunk_size_chars: usize,
    pub chunk_overlap_chars: usize,
    pub max_text_bytes: usize,
    pub max_metadata_bytes: usize,
    pub max_batch_events: usize,
    pub max_entities_per_chunk: usize,
    pub worker_batch: usize,
    pub retry_max_backoff_ms: u64,
    pub max_attempts: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HybridSettings {
    pub vector_candidates: usize,
    pub max_graph_chunks: usize,
    pub seed_chunks: usize,
    pub max_seed_entities: usize,
    pub default_rrf_k: u32,
    pub hop_decay: f32,
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
    pub refresh_token_ttl_secs: u64,
    pub jwt_issuer: String,
    pub jwt_audience: String,
    pub access_token_ttl_secs: u64,
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

    /// Checks the relations serde cannot express; each message names its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("server.request_timeout_ms", self.server.request_timeout_ms),
            (
                "server.body_limit_bytes",
                self.server.body_limit_bytes as u64,
            ),
            (
                "limits.max_batch_points",
                self.limits.max_batch_points as u64,
            ),
            ("limits.max_vector_dim", self.limits.max_vector_dim as u64),
            (
                "limits.max_search_limit",
                self.limits.max_search_limit as u64,
            ),
            (
                "limits.max_payload_bytes",
                self.limits.max_payload_bytes as u64,
            ),
            ("limits.max_labels", self.limits.max_labels as u64),
            (
                "limits.max_neighbors_limit",
                self.limits.max_neighbors_limit as u64,
            ),
            ("limits.max_find_limit", self.limits.max_find_limit as u64),
            ("limits.max_query_rows", self.limits.max_query_rows as u64),
            ("limits.max_query_bytes", self.limits.max_query_bytes as u64),
            ("limits.query_timeout_ms", self.limits.query_timeout_ms),
            (
                "limits.max_concurrent_queries",
                self.limits.max_concurrent_queries as u64,
            ),
            (
                "limits.max_concurrent_queries_per_tenant",
                self.limits.max_concurrent_queries_per_tenant as u64,
            ),
            ("limits.query_memory_bytes", self.limits.query_memory_bytes),
            ("limits.max_query_list", self.limits.max_query_list as u64),
            (
                "limits.max_query_result_bytes",
                self.limits.max_query_result_bytes as u64,
            ),
            ("limits.max_id_len", self.limits.max_id_len as u64),
            (
                "server.header_read_timeout_ms",
                self.server.header_read_timeout_ms,
            ),
            ("server.idle_timeout_ms", self.server.idle_timeout_ms),
            ("server.max_connections", self.server.max_connections as u64),
            ("vectors.default_dim", self.vectors.default_dim as u64),
            ("vectors.optimize_check_ms", self.vectors.optimize_check_ms),
            (
                "auth.access_token_ttl_secs",
                self.auth.access_token_ttl_secs,
            ),
            (
                "auth.refresh_token_ttl_secs",
                self.auth.refresh_token_ttl_secs,
            ),
            ("embedder.batch_size", self.embedder.batch_size as u64),
            ("embedder.timeout_ms", self.embedder.timeout_ms),
            ("embedder.max_tokens", self.embedder.max_tokens as u64),
            ("llm.timeout_ms", self.llm.timeout_ms),
            ("llm.max_context_chunks", self.llm.max_context_chunks as u64),
            ("llm.max_context_chars", self.llm.max_context_chars as u64),
            (
                "ingest.chunk_size_chars",
                self.ingest.chunk_size_chars as u64,
            ),
            ("ingest.max_text_bytes", self.ingest.max_text_bytes as u64),
            (
                "ingest.max_batch_events",
                self.ingest.max_batch_events as u64,
            ),
            ("ingest.worker_batch", self.ingest.worker_batch as u64),
            ("ingest.max_attempts", u64::from(self.ingest.max_attempts)),
            (
                "hybrid.vector_candidates",
                self.hybrid.vector_candidates as u64,
            ),
            (
                "hybrid.max_graph_chunks",
                self.hybrid.max_graph_chunks as u64,
            ),
            ("hybrid.default_rrf_k", u64::from(self.hybrid.default_rrf_k)),
            ("resilience.timeout_ms", self.resilience.timeout_ms),
            (
                "resilience.max_attempts",
                u64::from(self.resilience.max_attempts),
            ),
            (
                "resilience.backoff_base_ms",
                self.resilience.backoff_base_ms,
            ),
            (
                "resilience.failure_threshold",
                u64::from(self.resilience.failure_threshold),
            ),
            ("resilience.open_ms", self.resilience.open_ms),
            ("cache.search_entries", self.cache.search_entries),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(ConfigError(format!("{key} must be greater than 0")));
        }
        if self.limits.max_concurrent_queries_per_tenant > self.limits.max_concurrent_queries {
            return Err(ConfigError(
                "limits.max_concurrent_queries_per_tenant must not exceed \
                 limits.max_concurrent_queries"
                    .into(),
            ));
        }
        // One route class ↔ one `[rate_limit]` key; the mapping lives with the classes.
        let classes = crate::services::ratelimit::Class::ALL;
        if let Some(class) = classes.iter().find(|c| {
            let q = c.quota(&self.rate_limit);
            q.per_minute == 0 || q.burst == 0
        }) {
            return Err(ConfigError(format!(
                "rate_limit.{}: per_minute and burst must be greater than 0",
                class.as_str()
            )));
        }
        if !(1..=3).contains(&self.limits.max_graph_hops) {
            return Err(ConfigError(
                "limits.max_graph_hops must be 1, 2 or 3".into(),
            ));
        }
        if self.vectors.default_dim > self.limits.max_vector_dim {
            return Err(ConfigError(
                "vectors.default_dim must not exceed limits.max_vector_dim".into(),
            ));
        }
        let names = [
            (
                "vectors.default_collection",
                &self.vectors.default_collection,
            ),
            ("auth.anonymous_tenant", &self.auth.anonymous_tenant),
            ("auth.bootstrap_tenant", &self.auth.bootstrap_tenant),
        ];
        for (key, value) in names {
            if !crate::domain::is_valid_name(value) {
                return Err(ConfigError(format!(
                    "{key} must match ^[A-Za-z0-9][A-Za-z0-9_-]{{0,63}}$"
                )));
            }
        }
        if self.ingest.chunk_overlap_chars >= self.ingest.chunk_size_chars {
            return Err(ConfigError(
                "ingest.chunk_overlap_chars must be smaller than ingest.chunk_size_chars".into(),
            ));
        }
        if !(0.0..=1.0).contains(&self.hybrid.hop_decay) {
            return Err(ConfigError(
                "hybrid.hop_decay must be between 0 and 1".into(),
            ));
        }
        if self.embedder.backend == EmbedderBackend::OpenAi
            && (self.embedder.base_url.is_empty()
                || self.embedder.model.is_empty()
                || self.embedder.dim == 0)
        {
            return Err(ConfigError(
                "embedder.backend = \"openai\" needs embedder.base_url, embedder.model and embedder.dim".into(),
            ));
        }
        if !self.llm.base_url.is_empty() && self.llm.model.is_empty() {
            return Err(ConfigError(
                "llm.base_url is set, so llm.model must be too".into(),
            ));
        }
        if self.auth.jwt_algorithm != JwtAlgorithm::Hs256
            && self.auth.jwt_public_key_file.as_os_str().is_empty()
        {
            return Err(ConfigError(
                "auth.jwt_algorithm RS256/EdDSA needs auth.jwt_public_key_file".into(),
            ));
        }
        let secret = self.auth.jwt_secret.expose_secret();
        if !secret.is_empty() && secret.len() < 32 {
            return Err(ConfigError(
                "auth.jwt_secret must be at least 32 bytes (or empty to generate one)".into(),
            ));
        }
        self.validate_backends()?;
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return Err(ConfigError(format!(
                "log.level {:?} is not a valid filter directive",
                self.log.level
            )));
        }
        Ok(())
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
            if key.is_empty() {
                format!("{}{source}", e.kind)
            } else {
                format!("{key}: {}{source}", e.kind)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}
