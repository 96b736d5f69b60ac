//! The checks serde cannot express: relations between settings, bounds, names, and
//! what each chosen backend needs. Each message names the offending key.

use secrecy::ExposeSecret;

use super::{ConfigError, HybridSettings, JwtAlgorithm, Settings};

impl Settings {
    /// Checks the relations serde cannot express; each message names its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_limits_and_names()?;
        self.validate_retrieval()?;
        self.validate_auth()?;
        self.validate_backends()?;
        self.validate_server()
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
        if self.limits.max_id_len.get() > crate::domain::ingest::DocId::MAX_BYTES {
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

    /// Chunking, fusion and ranking parameters, and the LLM endpoint.
    fn validate_retrieval(&self) -> Result<(), ConfigError> {
        if self.ingest.chunk_overlap_chars >= self.ingest.chunk_size_chars.get() {
            return Err(ConfigError(
                "ingest.chunk_overlap_chars must be smaller than ingest.chunk_size_chars".into(),
            ));
        }
        if !(self.hybrid.graph_weight.is_finite() && self.hybrid.graph_weight >= 0.0) {
            return Err(ConfigError(
                "hybrid.graph_weight must be a number of at least 0".into(),
            ));
        }
        if self.hybrid.default_rrf_k.get() > HybridSettings::MAX_RRF_K {
            return Err(ConfigError(format!(
                "hybrid.default_rrf_k must be at most {}",
                HybridSettings::MAX_RRF_K
            )));
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
        let ratio = self.telemetry.sampling_ratio;
        if !(0.0..=1.0).contains(&ratio) {
            return Err(ConfigError(format!(
                "telemetry.sampling_ratio must be between 0 and 1, not {ratio}"
            )));
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
