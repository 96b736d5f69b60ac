//! The checks serde cannot express: relations between settings, bounds, names, and
//! what each chosen backend needs. Each message names the offending key.

use secrecy::ExposeSecret;

use super::{ConfigError, EmbedderBackend, JwtAlgorithm, Settings};

impl Settings {
    /// Checks the relations serde cannot express; each message names its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_sizes()?;
        self.validate_limits_and_names()?;
        self.validate_retrieval()?;
        self.validate_auth()?;
        self.validate_backends()?;
        self.validate_server()
    }

    /// Every count and size that must not be 0 (times are [`super::Millis`], which
    /// cannot be).
    fn validate_sizes(&self) -> Result<(), ConfigError> {
        let positive = [
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
            ("server.max_connections", self.server.max_connections as u64),
            ("vectors.default_dim", self.vectors.default_dim as u64),
            ("graph.wal_limit_bytes", self.graph.wal_limit_bytes),
            (
                "auth.access_token_ttl_secs",
                self.auth.access_token_ttl_secs,
            ),
            (
                "auth.refresh_token_ttl_secs",
                self.auth.refresh_token_ttl_secs,
            ),
            ("embedder.batch_size", self.embedder.batch_size as u64),
            ("embedder.max_tokens", self.embedder.max_tokens as u64),
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
            (
                "resilience.max_attempts",
                u64::from(self.resilience.max_attempts),
            ),
            (
                "resilience.failure_threshold",
                u64::from(self.resilience.failure_threshold),
            ),
            ("cache.search_entries", self.cache.search_entries),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(ConfigError(format!("{key} must be greater than 0")));
        }
        Ok(())
    }

    /// Limits that relate to each other, rate-limit quotas, graph index names and
    /// the names of the default collection and tenants.
    fn validate_limits_and_names(&self) -> Result<(), ConfigError> {
        if self.limits.max_concurrent_queries_per_tenant > self.limits.max_concurrent_queries {
            return Err(ConfigError(
                "limits.max_concurrent_queries_per_tenant must not exceed \
                 limits.max_concurrent_queries"
                    .into(),
            ));
        }
        if let Some(bad) = self
            .graph
            .indexed_properties
            .iter()
            .find(|p| !crate::domain::is_valid_identifier(p))
        {
            return Err(ConfigError(format!(
                "graph.indexed_properties: {bad:?} is not a property name \
                 (a letter, then letters, digits or underscores)"
            )));
        }
        if !(1..=3).contains(&self.limits.max_graph_hops) {
            return Err(ConfigError(
                "limits.max_graph_hops must be 1, 2 or 3".into(),
            ));
        }
        if self.limits.max_id_len > crate::domain::ingest::DocId::MAX_BYTES {
            return Err(ConfigError(format!(
                "limits.max_id_len must be at most {}",
                crate::domain::ingest::DocId::MAX_BYTES
            )));
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
        Ok(())
    }

    /// Chunking, fusion and ranking parameters, and the embedder and LLM endpoints.
    fn validate_retrieval(&self) -> Result<(), ConfigError> {
        if self.ingest.chunk_overlap_chars >= self.ingest.chunk_size_chars {
            return Err(ConfigError(
                "ingest.chunk_overlap_chars must be smaller than ingest.chunk_size_chars".into(),
            ));
        }
        if !(self.hybrid.graph_weight.is_finite() && self.hybrid.graph_weight >= 0.0) {
            return Err(ConfigError(
                "hybrid.graph_weight must be a number of at least 0".into(),
            ));
        }
        if !(self.hybrid.ppr_damping > 0.0 && self.hybrid.ppr_damping < 1.0) {
            return Err(ConfigError(
                "hybrid.ppr_damping must be between 0 and 1 (exclusive)".into(),
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
        Ok(())
    }

    /// Token signing: the key an algorithm needs and the secret's length.
    fn validate_auth(&self) -> Result<(), ConfigError> {
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
        Ok(())
    }

    /// TLS files, the admin port and the log filter.
    fn validate_server(&self) -> Result<(), ConfigError> {
        let tls = &self.server.tls;
        if tls.cert_file.is_empty() != tls.key_file.is_empty() {
            return Err(ConfigError(
                "server.tls.cert_file and server.tls.key_file are set together".into(),
            ));
        }
        if tls.cert_file.is_empty() && !tls.client_ca_file.is_empty() {
            return Err(ConfigError(
                "server.tls.client_ca_file needs server.tls.cert_file and key_file".into(),
            ));
        }
        if self.server.admin_port != 0 && self.server.admin_port == self.server.port {
            return Err(ConfigError(
                "server.admin_port must differ from server.port".into(),
            ));
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return Err(ConfigError(format!(
                "log.level {:?} is not a valid filter directive",
                self.log.level
            )));
        }
        Ok(())
    }
}
