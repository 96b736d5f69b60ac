//! `/vectors/search`: the query (a vector, text to embed, or text for BM25), the mode
//! (dense, lexical, or both fused by reciprocal rank) and the search itself.

use serde::{Deserialize, Serialize};
use tracing::Instrument;

use super::{VectorService, check_filter, check_vector};
use crate::domain::Name;
use crate::domain::principal::Principal;
use crate::domain::vector::{CollectionName, Filter, PointId, Query, ScoredPoint, SearchQuery};
use crate::services::bounded;
use crate::services::budget::{Reserved, worst};
use crate::services::error::{Result, ServiceError};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    #[schema(value_type = Option<Name>)]
    pub collection: Option<String>,
    /// The query as a vector, or as `text` for the server to embed: exactly one (mode
    /// `dense`). Mode `lexical` takes `text` only; `both` takes `text`, and `vector`
    /// too if the dense side should not embed the text. Like a point's vector: finite,
    /// of length at most about 9.2e18.
    pub vector: Option<Vec<f32>>,
    pub text: Option<String>,
    /// `dense` (default): nearest vectors; `lexical`: BM25 over the points' text;
    /// `both`: the two lists fused by reciprocal rank (scores are then the fused ones).
    #[serde(default)]
    pub mode: SearchMode,
    #[serde(default = "default_limit")]
    #[schema(minimum = 1)]
    pub limit: usize,
    #[serde(default)]
    pub offset: usize,
    /// Mode `both` only: how deep each ranking is taken and the fused list kept; pages
    /// are cut from that one list, so pages sent with the same window never repeat or
    /// skip a hit, and a page past its end is empty. Default: the page's end (`offset +
    /// limit`), as Elasticsearch's `rank_window_size` defaults to the page size: a
    /// deeper window costs the first page both speed and recall (docs/PERFORMANCE.md,
    /// "Pages of a fused search").
    #[schema(minimum = 1)]
    pub rank_window: Option<usize>,
    pub score_threshold: Option<f32>,
    pub filter: Option<Filter>,
    #[serde(default = "yes")]
    pub with_payload: bool,
    #[serde(default)]
    pub with_vector: bool,
}

fn default_limit() -> usize {
    10
}

fn yes() -> bool {
    true
}

/// What `/vectors/search` ranks by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SearchMode {
    #[default]
    Dense,
    Lexical,
    Both,
}

/// The `k` of reciprocal rank fusion for mode `both` (the usual 60).
const RRF_K: f32 = 60.0;

/// Reciprocal rank fusion of ranked lists: each hit scores Σ 1 / (k + rank) over the
/// lists that hold it. Returns the hits (borrowed, so callers clone only what they
/// keep) with their fused scores, best first; ties keep the earlier list's order.
pub(crate) fn reciprocal_rank<'a>(
    lists: &[&'a [ScoredPoint]],
    k: f32,
) -> Vec<(&'a ScoredPoint, f32)> {
    let mut fused: Vec<(&ScoredPoint, f32)> = Vec::new();
    let mut at: std::collections::HashMap<PointId, usize> = std::collections::HashMap::new();
    for list in lists {
        for (rank, hit) in list.iter().enumerate() {
            let score = 1.0 / (k + rank as f32 + 1.0);
            match at.get(&hit.id) {
                Some(&i) => fused[i].1 += score,
                None => {
                    at.insert(hit.id, fused.len());
                    fused.push((hit, score));
                }
            }
        }
    }
    fused.sort_by(|a, b| b.1.total_cmp(&a.1));
    fused
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SearchResponse {
    pub hits: Vec<ScoredPoint>,
}

impl VectorService {
    pub async fn search(
        &self,
        who: &Principal,
        mut req: SearchRequest,
    ) -> Result<Reserved<SearchResponse>> {
        let limits = &self.settings.limits;
        let collection = self.collection_name(req.collection.take())?;
        bounded("limit", req.limit, 1, limits.max_search_limit.get())?;
        bounded("offset", req.offset, 0, limits.max_search_offset)?;
        if req.score_threshold.is_some_and(|t| !t.is_finite()) {
            return Err(ServiceError::Invalid(
                "score_threshold must be finite".into(),
            ));
        }
        if let Some(filter) = &req.filter {
            check_filter(filter, limits)?;
        }
        let window = self.rank_window(&req)?;
        let page = worst(
            req.limit,
            self.point_worst(req.with_payload, req.with_vector),
        );
        let reservation = self.budget.reserve(&who.tenant, page).await?;
        let hits = reservation
            .during(self.page(who, &collection, req, window))
            .await?;
        Ok(Reserved {
            value: SearchResponse { hits },
            reservation,
        })
    }

    /// The page `req` asks for, ranked over `window` hits in mode `both`.
    async fn page(
        &self,
        who: &Principal,
        collection: &CollectionName,
        mut req: SearchRequest,
        window: usize,
    ) -> Result<Vec<ScoredPoint>> {
        let (first, second) = self.rankings(&mut req).await?;
        let query = |by: Query, limit, offset| SearchQuery {
            query: by,
            limit,
            offset,
            score_threshold: req.score_threshold,
            filter: req.filter.clone(),
            ids: None,
            with_payload: req.with_payload,
            with_vector: req.with_vector,
        };
        let hits = match second {
            None => {
                let q = query(first, req.limit, req.offset);
                self.search_or_empty(who, collection, q).await?
            }
            Some(second) => {
                // Each list to the window's depth as ids and scores only (with
                // payloads, a deep page would hold both lists' whole depth of them),
                // fused, kept to the window, the page cut out; then only the page's
                // points are read in full.
                let bare = |by| SearchQuery {
                    with_payload: false,
                    with_vector: false,
                    ..query(by, window, 0)
                };
                let (a, b) = tokio::try_join!(
                    self.search_or_empty(who, collection, bare(first.clone())),
                    self.search_or_empty(who, collection, bare(second)),
                )?;
                let page: Vec<(PointId, f32)> = reciprocal_rank(&[&a, &b], RRF_K)
                    .into_iter()
                    .take(window)
                    .skip(req.offset)
                    .take(req.limit)
                    .map(|(hit, score)| (hit.id, score))
                    .collect();
                let full = req.with_payload || req.with_vector;
                let mut read = if full && !page.is_empty() {
                    let q = SearchQuery {
                        ids: Some(page.iter().map(|&(id, _)| id).collect()),
                        ..query(first, page.len(), 0)
                    };
                    let points = self.search_or_empty(who, collection, q).await?;
                    points.into_iter().map(|p| (p.id, p)).collect()
                } else {
                    std::collections::HashMap::new()
                };
                page.into_iter()
                    .filter_map(|(id, score)| match read.remove(&id) {
                        Some(p) => Some(ScoredPoint { score, ..p }),
                        // Deleted between the two reads.
                        None if full => None,
                        None => Some(ScoredPoint {
                            id,
                            score,
                            payload: None,
                            vector: None,
                        }),
                    })
                    .collect()
            }
        };
        Ok(hits)
    }

    /// Mode `both`'s fusion window (see [`SearchRequest::rank_window`]), checked against
    /// the deepest page a search may reach; refused with another mode, where pages are
    /// cut from one ranking anyway.
    fn rank_window(&self, req: &SearchRequest) -> Result<usize> {
        let limits = &self.settings.limits;
        let deepest = limits.max_search_offset + limits.max_search_limit.get();
        match req.rank_window {
            Some(_) if req.mode != SearchMode::Both => Err(ServiceError::Invalid(
                "rank_window applies to mode both only".into(),
            )),
            Some(window) => {
                bounded("rank_window", window, 1, deepest)?;
                Ok(window)
            }
            None => Ok(req.offset + req.limit),
        }
    }

    /// The ranking asked for, and for mode `both` the second one to fuse with it; takes
    /// the request's vector and text.
    async fn rankings(&self, req: &mut SearchRequest) -> Result<(Query, Option<Query>)> {
        Ok(match req.mode {
            SearchMode::Dense => (
                Query::Dense(
                    self.query_vector(req.vector.take(), req.text.take())
                        .await?,
                ),
                None,
            ),
            SearchMode::Lexical if req.vector.is_some() => {
                return Err(ServiceError::Invalid(
                    "mode lexical searches by `text` only; drop `vector`".into(),
                ));
            }
            SearchMode::Lexical => (Query::Lexical(self.query_text(req.text.take())?), None),
            SearchMode::Both if req.score_threshold.is_some() => {
                return Err(ServiceError::Invalid(
                    "score_threshold applies to one ranking; not with mode both".into(),
                ));
            }
            SearchMode::Both => {
                let text = self.query_text(req.text.take())?;
                let vector = match req.vector.take() {
                    Some(v) => self.query_vector(Some(v), None).await?,
                    None => self.embed(&text).await?,
                };
                (Query::Dense(vector), Some(Query::Lexical(text)))
            }
        })
    }

    /// Embeds validated query text with the server's embedder.
    async fn embed(&self, text: &str) -> Result<Vec<f32>> {
        let embedded = crate::embed::embed_one(self.embedder.as_ref(), text)
            .instrument(tracing::info_span!("embed"))
            .await;
        Ok(embedded?)
    }

    /// Query text: present, not blank, within the query size limit.
    fn query_text(&self, text: Option<String>) -> Result<String> {
        let text = text.ok_or_else(|| {
            ServiceError::Invalid("a lexical search needs the query as `text`".into())
        })?;
        bounded(
            "query text length in bytes",
            text.len(),
            1,
            self.settings.limits.max_query_bytes.get(),
        )?;
        if text.trim().is_empty() {
            return Err(ServiceError::Invalid("text must not be blank".into()));
        }
        Ok(text)
    }

    /// Searches `collection`; the default collection reads as empty until the tenant's
    /// first write creates it (a named collection that does not exist is a 404).
    pub(crate) async fn search_or_empty(
        &self,
        who: &Principal,
        collection: &CollectionName,
        query: SearchQuery,
    ) -> Result<Vec<ScoredPoint>> {
        let by = match query.query {
            Query::Dense(_) => "dense",
            Query::Lexical(_) => "lexical",
        };
        let span = tracing::info_span!("vector_search", collection = %collection, by);
        match self
            .vectors
            .search(&who.tenant, collection, query)
            .instrument(span)
            .await
        {
            Err(e)
                if e.kind == crate::store::ErrorKind::NotFound
                    && collection.as_str() == self.settings.vectors.default_collection =>
            {
                Ok(Vec::new())
            }
            other => Ok(other?),
        }
    }

    /// The query vector: given, or embedded from `text`; exactly one of the two.
    pub async fn query_vector(
        &self,
        vector: Option<Vec<f32>>,
        text: Option<String>,
    ) -> Result<Vec<f32>> {
        let limits = &self.settings.limits;
        match (vector, text) {
            (Some(vector), None) => {
                check_vector(&vector, limits, "vector")?;
                Ok(vector)
            }
            (None, Some(text)) => self.embed(&self.query_text(Some(text))?).await,
            _ => Err(ServiceError::Invalid(
                "give exactly one of `vector` or `text`".into(),
            )),
        }
    }
}
