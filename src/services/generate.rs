//! Retrieval-augmented generation: hybrid retrieval picks the context, the prompt
//! numbers each passage, and the configured OpenAI-compatible chat model answers,
//! citing passages as `[n]`. Without a configured model this is a 501.

use std::sync::Arc;
use tracing::Instrument;

use serde::{Deserialize, Serialize};

use crate::config::Settings;
use crate::domain::Name;
use crate::domain::payload;
use crate::domain::principal::Principal;
use crate::domain::vector::{Filter, PointId};
use crate::llm::{ChatClient, DeltaStream, Message};
use crate::services::error::{Result, ServiceError};
use crate::services::hybrid::{self, Fusion, HybridRequest, HybridService};

const SYSTEM_PROMPT: &str = "You answer questions using only the numbered context passages \
given with the question. Cite the passages you use as [n]. If the passages do not contain \
the answer, say that you do not know.";

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GenerateRequest {
    #[schema(min_length = 1)]
    pub query: String,
    #[schema(value_type = Option<Name>)]
    pub collection: Option<String>,
    /// Passages to retrieve; defaults to and is capped by `llm.max_context_chunks`.
    #[schema(minimum = 1)]
    pub limit: Option<usize>,
    pub filter: Option<Filter>,
    #[serde(default = "default_hops")]
    #[schema(maximum = 3)]
    pub hops: u8,
    pub fusion: Option<Fusion>,
    #[serde(default)]
    pub stream: bool,
}

fn default_hops() -> u8 {
    1
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Citation {
    /// The `[n]` the answer uses.
    #[serde(rename = "ref")]
    pub reference: usize,
    pub id: PointId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub doc_id: Option<String>,
    pub score: f32,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GenerateResponse {
    pub answer: String,
    pub model: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
    pub citations: Vec<Citation>,
}

/// What the handler sends: a whole answer, or citations first and then a stream.
pub enum Generated {
    Whole(GenerateResponse),
    Stream {
        citations: Vec<Citation>,
        deltas: DeltaStream,
    },
}

/// Answers from the chat model, grounded in hybrid search results.
#[derive(Clone)]
pub struct GenerateService {
    settings: Arc<Settings>,
    /// `None` when no chat model is configured (501).
    llm: Option<Arc<ChatClient>>,
    hybrid: HybridService,
}

impl GenerateService {
    pub fn new(
        settings: Arc<Settings>,
        llm: Option<Arc<ChatClient>>,
        hybrid: HybridService,
    ) -> Self {
        Self {
            settings,
            llm,
            hybrid,
        }
    }
}

impl GenerateService {
    fn client(&self) -> Result<&ChatClient> {
        self.llm.as_deref().ok_or_else(|| {
            ServiceError::NotConfigured(
                "generation needs an LLM: set llm.base_url and llm.model (an OpenAI-compatible \
                 chat endpoint)"
                    .into(),
            )
        })
    }

    pub async fn generate(&self, who: &Principal, req: GenerateRequest) -> Result<Generated> {
        let llm = self.client()?;
        let settings = &self.settings.llm;
        let limit = req.limit.unwrap_or(settings.max_context_chunks.get());
        crate::services::bounded("limit", limit, 1, settings.max_context_chunks.get())?;
        let retrieved = self
            .hybrid
            .search(
                who,
                HybridRequest {
                    query: Some(req.query.clone()),
                    vector: None,
                    collection: req.collection,
                    limit,
                    filter: req.filter,
                    hops: req.hops,
                    fusion: req.fusion,
                    mmr: None,
                    with_payload: true,
                },
            )
            .await?;
        // The passages and their room in the read budget go before the model is asked.
        let (context, citations) = context(&retrieved.value.hits, settings.max_context_chars.get());
        drop(retrieved);
        let messages = [
            Message {
                role: "system",
                content: SYSTEM_PROMPT.to_owned(),
            },
            Message {
                role: "user",
                content: format!("Context:\n{context}\nQuestion: {}", req.query),
            },
        ];
        if req.stream {
            let deltas = llm
                .stream(&messages)
                .instrument(tracing::info_span!("llm", stream = true))
                .await?;
            return Ok(Generated::Stream { citations, deltas });
        }
        let answer = llm
            .complete(&messages)
            .instrument(tracing::info_span!("llm", stream = false))
            .await?;
        Ok(Generated::Whole(GenerateResponse {
            answer: answer.text,
            model: answer.model,
            finish_reason: answer.finish_reason,
            citations,
        }))
    }
}

/// Numbered passages, whole ones only, until the character budget is spent.
fn context(hits: &[hybrid::HybridHit], budget: usize) -> (String, Vec<Citation>) {
    let mut text = String::new();
    let mut citations = Vec::new();
    let mut used = 0;
    for hit in hits {
        let payload = hit.payload.as_ref();
        let Some(passage) = payload.and_then(payload::text) else {
            continue;
        };
        let size = passage.chars().count();
        if used + size > budget && !citations.is_empty() {
            break;
        }
        used += size;
        let reference = citations.len() + 1;
        let doc_id = payload.and_then(payload::doc_id).map(str::to_owned);
        text.push_str(&format!("[{reference}] {passage}\n\n"));
        citations.push(Citation {
            reference,
            id: hit.id,
            doc_id,
            score: hit.score,
        });
    }
    (text, citations)
}
