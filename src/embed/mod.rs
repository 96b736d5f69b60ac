//! Text → vector. [`Embedder`] is what the ingest pipeline and text search call; the
//! default is the static model shipped in the binary ([`builtin`]), and any
//! OpenAI-compatible `/v1/embeddings` endpoint can replace it by configuration
//! ([`openai`]).

pub mod builtin;
pub mod cache;
pub mod openai;

use std::sync::Arc;

use async_trait::async_trait;

use crate::config::{EmbedderBackend, EmbedderSettings};
use crate::metrics::Metrics;
use crate::store::{StoreError, StoreResult};

#[async_trait]
pub trait Embedder: Send + Sync {
    /// Length of every vector this embedder returns.
    fn dim(&self) -> usize;
    /// Names the model in status and logs.
    fn model(&self) -> &str;
    /// One unit-length vector per text, in order.
    async fn embed(&self, texts: Vec<String>) -> StoreResult<Vec<Vec<f32>>>;
}

/// Builds the embedder chosen by configuration, behind the embedding cache unless
/// `embedder.cache_entries` is 0.
pub fn from_settings(
    settings: &EmbedderSettings,
    metrics: Arc<Metrics>,
) -> StoreResult<Arc<dyn Embedder>> {
    let embedder: Arc<dyn Embedder> = match &settings.backend {
        EmbedderBackend::Builtin => Arc::new(builtin::BuiltinEmbedder::load(settings)?),
        EmbedderBackend::OpenAi(openai) => Arc::new(openai::OpenAiEmbedder::new(openai)?),
    };
    Ok(if settings.cache_entries == 0 {
        embedder
    } else {
        Arc::new(cache::CachedEmbedder::new(
            embedder,
            settings.cache_entries,
            metrics,
        ))
    })
}

/// Embeds one text; the common case for a search query.
pub async fn embed_one(embedder: &dyn Embedder, text: &str) -> StoreResult<Vec<f32>> {
    embedder
        .embed(vec![text.to_owned()])
        .await?
        .pop()
        .ok_or_else(|| StoreError::internal("the embedder returned no vector"))
}
