//! Hybrid retrieval (DESIGN.md §6): vector kNN, then graph expansion from the entities
//! the query names and the top hits mention, then rank fusion (RRF or weighted), with
//! optional MMR for diversity. Every hit says where it came from.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tracing::Instrument;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::{HybridSettings, Settings};
use crate::domain::Name;
use crate::domain::principal::Principal;
use crate::domain::vector::{CollectionName, Filter, PointId, Query, ScoredPoint, SearchQuery};
use crate::services::bounded;
use crate::services::budget::{Reserved, worst};
use crate::services::error::{Result, ServiceError};
use crate::services::vectors::{VectorService, check_filter};
use crate::store::GraphStore;

mod fusion;
mod graph;
mod ppr;

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HybridRequest {
    /// The question as text (embedded, and matched against entity names) …
    pub query: Option<String>,
    /// … or as a vector (then only the top hits' entities seed the graph).
    #[schema(min_items = 1)]
    pub vector: Option<Vec<f32>>,
    #[schema(value_type = Option<Name>)]
    pub collection: Option<String>,
    #[serde(default = "default_limit")]
    #[schema(minimum = 1)]
    pub limit: usize,
    pub filter: Option<Filter>,
    /// Graph hops from a seed entity to a chunk: 0 = text rankings only, 1 = chunks
    /// that mention a seed, 2 and 3 = also the chunks of entities those chunks mention
    /// (`hybrid.graph_ranker = "ppr"`) or of entities `RELATED_TO` a seed ("walk").
    #[serde(default = "default_hops")]
    #[schema(maximum = 3)]
    pub hops: u8,
    #[serde(default)]
    pub fusion: Option<Fusion>,
    pub mmr: Option<Mmr>,
    #[serde(default = "yes")]
    pub with_payload: bool,
}

fn default_limit() -> usize {
    10
}

fn default_hops() -> u8 {
    1
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Fusion {
    /// Reciprocal rank fusion: Σ 1 / (k + rank).
    Rrf {
        /// The constant added to each rank, 1 to 1,000,000; without it, the server's
        /// `hybrid.default_rrf_k`.
        #[schema(minimum = 1, maximum = 1_000_000)]
        k: Option<u32>,
    },
    /// `alpha` × vector score + (1 − alpha) × graph score, each min-max normalised.
    Weighted {
        #[schema(minimum = 0, maximum = 1)]
        alpha: f32,
    },
}

#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Mmr {
    /// 1 = pure relevance, 0 = pure diversity.
    #[schema(minimum = 0, maximum = 1)]
    pub lambda: f32,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HybridResponse {
    pub hits: Vec<HybridHit>,
    /// Entities that seeded or carried the graph expansion.
    pub entities: Vec<UsedEntity>,
    /// The fusion that ranked the hits.
    pub fusion: FusionKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FusionKind {
    Rrf,
    Weighted,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HybridHit {
    pub id: PointId,
    pub score: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<Map<String, Value>>,
    pub provenance: Provenance,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Provenance {
    pub vector: Option<VectorRank>,
    /// Rank and BM25 score in the lexical list, when the query was text.
    pub lexical: Option<VectorRank>,
    pub graph: Option<GraphRank>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct VectorRank {
    pub rank: usize,
    pub score: f32,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct GraphRank {
    pub rank: usize,
    pub score: f32,
    /// Entity names from the seed to the entity the chunk mentions.
    pub path: Vec<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UsedEntity {
    pub id: String,
    pub name: String,
    pub source: SeedSource,
    pub depth: u8,
}

/// How an entity entered the graph expansion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SeedSource {
    /// Named in the question.
    Query,
    /// Mentioned by a top vector hit.
    Vector,
    /// Reached through the graph: a chunk shared with a seed's chunk (PageRank) or a
    /// `RELATED_TO` step (walk).
    Graph,
}

/// A validated hybrid request.
struct Plan {
    collection: CollectionName,
    vector: Vec<f32>,
    query_text: Option<String>,
    limit: usize,
    filter: Option<Filter>,
    hops: u8,
    fusion: Fusion,
    mmr: Option<Mmr>,
    with_payload: bool,
}

/// Vector search fused with what the graph reaches from its hits and the query's
/// entities.
#[derive(Clone)]
pub struct HybridService {
    settings: Arc<Settings>,
    graph: Arc<dyn GraphStore>,
    vectors: VectorService,
}

impl HybridService {
    pub fn new(
        settings: Arc<Settings>,
        graph: Arc<dyn GraphStore>,
        vectors: VectorService,
    ) -> Self {
        Self {
            settings,
            graph,
            vectors,
        }
    }
}

impl HybridService {
    async fn plan(&self, req: HybridRequest) -> Result<Plan> {
        let limits = &self.settings.limits;
        let collection = self.vectors.collection_name(req.collection)?;
        bounded("limit", req.limit, 1, limits.max_search_limit.get())?;
        bounded(
            "hops",
            usize::from(req.hops),
            0,
            usize::from(limits.max_graph_hops),
        )?;
        if let Some(filter) = &req.filter {
            check_filter(filter, limits)?;
        }
        let fusion = req.fusion.unwrap_or(Fusion::Rrf { k: None });
        match fusion {
            Fusion::Weighted { alpha } if !(0.0..=1.0).contains(&alpha) => {
                return Err(ServiceError::Invalid(
                    "fusion.weighted.alpha must be between 0 and 1".into(),
                ));
            }
            Fusion::Rrf { k: Some(k) } if !(1..=HybridSettings::MAX_RRF_K).contains(&k) => {
                return Err(ServiceError::Invalid(format!(
                    "fusion.rrf.k must be between 1 and {}",
                    HybridSettings::MAX_RRF_K
                )));
            }
            _ => {}
        }
        if req.mmr.is_some_and(|m| !(0.0..=1.0).contains(&m.lambda)) {
            return Err(ServiceError::Invalid(
                "mmr.lambda must be between 0 and 1".into(),
            ));
        }
        let vector = self
            .vectors
            .query_vector(req.vector, req.query.clone())
            .await?;
        Ok(Plan {
            collection,
            vector,
            query_text: req.query,
            limit: req.limit,
            filter: req.filter,
            hops: req.hops,
            fusion,
            mmr: req.mmr,
            with_payload: req.with_payload,
        })
    }

    pub async fn search(
        &self,
        who: &Principal,
        req: HybridRequest,
    ) -> Result<Reserved<HybridResponse>> {
        let plan = self.plan(req).await?;
        let settings = &self.settings.hybrid;
        let candidates = settings.vector_candidates.get().max(plan.limit);
        let want_vectors = plan.mmr.is_some();
        // Both text lists and the graph's chunks are ranked without payloads; only the
        // page's are read.
        let ranked = 2 * candidates + settings.max_graph_chunks.get();
        let vectors = &self.vectors;
        let most = worst(ranked, vectors.point_worst(false, want_vectors))
            + worst(plan.limit, vectors.point_worst(plan.with_payload, false));
        let reservation = vectors.budget.reserve(&who.tenant, most).await?;
        let value = reservation
            .during(self.ranked(who, &plan, candidates, want_vectors))
            .await?;
        Ok(Reserved { value, reservation })
    }

    /// The page of `plan`, each text ranking `candidates` deep.
    async fn ranked(
        &self,
        who: &Principal,
        plan: &Plan,
        candidates: usize,
        want_vectors: bool,
    ) -> Result<HybridResponse> {
        let query = search_query(plan, candidates, None, want_vectors);
        // The two text rankings and the entities the question names are independent:
        // look them up side by side.
        let (vector_hits, lexical_hits, named) = tokio::try_join!(
            self.vectors.search_or_empty(who, &plan.collection, query),
            self.lexical(who, plan, candidates, want_vectors),
            self.named_seeds(&who.tenant, plan)
                .instrument(tracing::info_span!("entity_lookup")),
        )?;
        let graph = if plan.hops == 0 {
            GraphResult::default()
        } else {
            // The entities of the best hits of the two text rankings seed the graph.
            let k = self.settings.hybrid.default_rrf_k.get() as f32;
            let seeds: Vec<PointId> =
                crate::services::vectors::reciprocal_rank(&[&vector_hits, &lexical_hits], k)
                    .into_iter()
                    .map(|(hit, _)| hit.id)
                    .collect();
            self.expand(who, plan, named, &seeds)
                .instrument(tracing::info_span!("graph_expansion", hops = plan.hops))
                .await?
        };
        let graph_hits = self
            .graph_only_hits(
                who,
                plan,
                [&vector_hits, &lexical_hits],
                &graph,
                want_vectors,
            )
            .instrument(tracing::info_span!("graph_hits"))
            .await?;
        let mut value = {
            let _fusion = tracing::info_span!("fusion").entered();
            fusion::fuse(
                plan,
                fusion::Lists {
                    vector: vector_hits,
                    lexical: lexical_hits,
                    graph_only: graph_hits,
                    graph,
                },
                fusion::Rrf {
                    k: self.settings.hybrid.default_rrf_k.get(),
                    graph_weight: self.settings.hybrid.graph_weight,
                    lexical_weight: self.settings.hybrid.lexical_weight,
                },
            )
        };
        value.hits = self
            .with_payloads(who, plan, value.hits)
            .instrument(tracing::info_span!("page_payloads"))
            .await?;
        Ok(value)
    }

    /// The page's hits with their payloads, read by id once the page is known (a list
    /// ranked with payloads would hold every candidate's); a hit deleted since it was
    /// ranked is left out.
    async fn with_payloads(
        &self,
        who: &Principal,
        plan: &Plan,
        hits: Vec<HybridHit>,
    ) -> Result<Vec<HybridHit>> {
        if !plan.with_payload || hits.is_empty() {
            return Ok(hits);
        }
        let ids = hits.iter().map(|h| h.id).collect();
        let query = SearchQuery {
            with_payload: true,
            ..search_query(plan, hits.len(), Some(ids), false)
        };
        let points = self.vectors.search_or_empty(who, &plan.collection, query);
        let mut read: HashMap<PointId, ScoredPoint> =
            points.await?.into_iter().map(|p| (p.id, p)).collect();
        Ok(hits
            .into_iter()
            .filter_map(|hit| {
                let payload = read.remove(&hit.id)?.payload;
                Some(HybridHit { payload, ..hit })
            })
            .collect())
    }

    /// Graph-found chunks outside the text lists, with their vector score (and the
    /// filter) from a search restricted to their ids.
    async fn graph_only_hits(
        &self,
        who: &Principal,
        plan: &Plan,
        text_lists: [&[ScoredPoint]; 2],
        graph: &GraphResult,
        want_vectors: bool,
    ) -> Result<Vec<ScoredPoint>> {
        let known: HashSet<PointId> = text_lists.into_iter().flatten().map(|h| h.id).collect();
        let extra_ids: Vec<PointId> = graph
            .ranked
            .iter()
            .map(|(id, _)| *id)
            .filter(|id| !known.contains(id))
            .collect();
        if extra_ids.is_empty() {
            return Ok(Vec::new());
        }
        let n = extra_ids.len();
        let query = search_query(plan, n, Some(extra_ids), want_vectors);
        self.vectors
            .search_or_empty(who, &plan.collection, query)
            .await
    }

    /// The BM25 list for a text query; empty for a vector query, with the signal
    /// weighed at 0, or on a collection created before lexical indexes existed.
    async fn lexical(
        &self,
        who: &Principal,
        plan: &Plan,
        limit: usize,
        with_vector: bool,
    ) -> Result<Vec<ScoredPoint>> {
        let Some(text) = &plan.query_text else {
            return Ok(Vec::new());
        };
        if self.settings.hybrid.lexical_weight <= 0.0 {
            return Ok(Vec::new());
        }
        let mut query = search_query(plan, limit, None, with_vector);
        query.query = Query::Lexical(text.clone());
        match self
            .vectors
            .search_or_empty(who, &plan.collection, query)
            .await
        {
            Err(ServiceError::Store(e)) if e.kind == crate::store::ErrorKind::Conflict => {
                Ok(Vec::new())
            }
            other => other,
        }
    }
}

/// A search of the plan's ranking; without payloads, which only the page needs.
fn search_query(
    plan: &Plan,
    limit: usize,
    ids: Option<Vec<PointId>>,
    with_vector: bool,
) -> SearchQuery {
    SearchQuery {
        query: Query::Dense(plan.vector.clone()),
        limit,
        offset: 0,
        score_threshold: None,
        filter: plan.filter.clone(),
        ids,
        with_payload: false,
        with_vector,
    }
}

#[derive(Default)]
struct GraphResult {
    /// Chunk ids by graph score, best first, with score and entity path.
    ranked: Vec<(PointId, (f32, Vec<String>))>,
    entities: Vec<UsedEntity>,
}
