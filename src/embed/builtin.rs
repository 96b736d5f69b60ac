//! The built-in embedder: a static model2vec model distilled from all-MiniLM-L6-v2
//! (see `models/minilm-l6-static/NOTICE.md`), compiled into the binary so a fresh
//! install embeds text with no download. Tokenize, look up one int8 vector per token,
//! mean-pool, L2-normalise: microseconds per sentence, no GPU.

use std::path::Path;

use async_trait::async_trait;
use model2vec_rs::model::StaticModel;

use super::Embedder;
use crate::config::EmbedderSettings;
use crate::store::{StoreError, StoreResult, blocking};

const MODEL_NAME: &str = "minilm-l6-static";
const TOKENIZER: &[u8] = include_bytes!("../../models/minilm-l6-static/tokenizer.json");
const WEIGHTS: &[u8] = include_bytes!("../../models/minilm-l6-static/model.safetensors");
const CONFIG: &[u8] = include_bytes!("../../models/minilm-l6-static/config.json");

/// Below this many bytes of input, encoding runs inline: it is faster than a hop to the
/// blocking pool.
const INLINE_BYTES: usize = 8 * 1024;

pub struct BuiltinEmbedder {
    model: StaticModel,
    name: String,
    max_tokens: usize,
}

impl BuiltinEmbedder {
    /// The shipped model, or the model2vec model in `settings.model_dir` if set.
    pub fn load(settings: &EmbedderSettings) -> StoreResult<Self> {
        let (model, name) = if settings.model_dir.is_empty() {
            (Self::shipped()?, MODEL_NAME.to_owned())
        } else {
            let dir = Path::new(&settings.model_dir);
            let model = StaticModel::from_pretrained(dir, None, Some(true), None).map_err(|e| {
                StoreError::invalid(format!("embedder.model_dir {}: {e}", dir.display()))
            })?;
            (model, dir.display().to_string())
        };
        Ok(Self {
            model,
            name,
            max_tokens: settings.max_tokens.get(),
        })
    }

    /// The model compiled into the binary.
    pub fn shipped() -> StoreResult<StaticModel> {
        StaticModel::from_bytes(TOKENIZER, WEIGHTS, CONFIG, Some(true))
            .map_err(|e| StoreError::internal(format!("loading the built-in model: {e}")))
    }

    fn encode(model: &StaticModel, texts: &[String], max_tokens: usize) -> Vec<Vec<f32>> {
        model.encode_with_args(texts, Some(max_tokens), texts.len().max(1))
    }
}

#[async_trait]
impl Embedder for BuiltinEmbedder {
    fn dim(&self) -> usize {
        self.model.dim()
    }

    fn model(&self) -> &str {
        &self.name
    }

    async fn embed(&self, texts: Vec<String>) -> StoreResult<Vec<Vec<f32>>> {
        let bytes: usize = texts.iter().map(String::len).sum();
        if bytes <= INLINE_BYTES {
            return Ok(Self::encode(&self.model, &texts, self.max_tokens));
        }
        let (model, max_tokens) = (self.model.clone(), self.max_tokens);
        blocking(move || Ok(Self::encode(&model, &texts, max_tokens))).await
    }
}
