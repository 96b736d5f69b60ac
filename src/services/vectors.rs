//! Vector operations: validate the request against the configured limits, then call the
//! store for the caller's tenant. Transport-agnostic: tests and other front ends call
//! these directly.

use std::fmt::Display;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::{Limits, Settings};
use crate::domain::principal::Principal;
use crate::domain::vector::{
    CollectionInfo, CollectionName, CollectionSpec, ConditionKind, Distance, Filter, PayloadIndex,
    Point, PointId, Query, Record, ScoredPoint, SearchQuery, TENANT_KEY, is_indexable_field,
};
use crate::embed::Embedder;
use crate::services::error::{Result, ServiceError};
use crate::services::{bounded, bounded_json};
use crate::store::{Created, VectorStore};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCollection {
    pub dim: usize,
    #[serde(default = "default_distance")]
    pub distance: Distance,
}

fn default_distance() -> Distance {
    Distance::Cosine
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpsertRequest {
    pub collection: Option<String>,
    pub points: Vec<PointInput>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PointInput {
    pub id: PointId,
    pub vector: Vec<f32>,
    #[serde(default)]
    pub payload: Map<String, Value>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UpsertResponse {
    pub collection: String,
    pub upserted: usize,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    pub collection: Option<String>,
    /// The query as a vector, or as `text` for the server to embed: exactly one (mode
    /// `dense`). Mode `lexical` takes `text` only; `both` takes `text`, and `vector`
    /// too if the dense side should not embed the text.
    pub vector: Option<Vec<f32>>,
    pub text: Option<String>,
    /// `dense` (default): nearest vectors; `lexical`: BM25 over the points' text;
    /// `both`: the two lists fused by reciprocal rank (scores are then the fused ones).
    #[serde(default)]
    pub mode: SearchMode,
    #[serde(default = "default_limit")]
    pub limit: usize,
    #[serde(default)]
    pub offset: usize,
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

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteRequest {
    pub collection: Option<String>,
    pub ids: Option<Vec<PointId>>,
    pub filter: Option<Filter>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeleteResponse {
    pub deleted: usize,
}

/// Collections and points: validation against the limits, then the vector store; text
/// queries are embedded here.
#[derive(Clone)]
pub struct VectorService {
    settings: Arc<Settings>,
    vectors: Arc<dyn VectorStore>,
    embedder: Arc<dyn Embedder>,
}

impl VectorService {
    pub fn new(
        settings: Arc<Settings>,
        vectors: Arc<dyn VectorStore>,
        embedder: Arc<dyn Embedder>,
    ) -> Self {
        Self {
            settings,
            vectors,
            embedder,
        }
    }
}

/// Checks a payload field a client wants indexed.
fn indexable(field: &str) -> Result<()> {
    if is_indexable_field(field) {
        Ok(())
    } else {
        Err(ServiceError::Invalid(format!(
            "field {field:?} cannot be indexed: use a payload key (letters, digits, _ and -, \
             starting with a letter or _; dots for nested keys; at most 128 bytes), not \
             {TENANT_KEY:?}"
        )))
    }
}

impl VectorService {
    pub(crate) fn collection_name(&self, name: Option<String>) -> Result<CollectionName> {
        let name = name.unwrap_or_else(|| self.settings.vectors.default_collection.clone());
        collection_name(&name)
    }

    pub async fn create_collection(
        &self,
        who: &Principal,
        name: &str,
        req: CreateCollection,
    ) -> Result<Created> {
        let name = &collection_name(name)?;
        let limits = &self.settings.limits;
        bounded("dim", req.dim, 1, limits.max_vector_dim)?;
        let spec = CollectionSpec {
            dim: req.dim,
            distance: req.distance,
        };
        Ok(self
            .vectors
            .create_collection(&who.tenant, name, spec)
            .await?)
    }

    pub async fn collection_info(&self, who: &Principal, name: &str) -> Result<CollectionInfo> {
        let name = &collection_name(name)?;
        Ok(self.vectors.collection_info(&who.tenant, name).await?)
    }

    /// Indexes a payload field, then returns the collection with its indexes.
    pub async fn create_index(
        &self,
        who: &Principal,
        name: &str,
        index: PayloadIndex,
    ) -> Result<CollectionInfo> {
        let name = &collection_name(name)?;
        indexable(&index.field)?;
        self.vectors.create_index(&who.tenant, name, index).await?;
        Ok(self.vectors.collection_info(&who.tenant, name).await?)
    }

    pub async fn delete_index(&self, who: &Principal, name: &str, field: &str) -> Result<()> {
        let name = &collection_name(name)?;
        indexable(field)?;
        if self.vectors.delete_index(&who.tenant, name, field).await? {
            Ok(())
        } else {
            Err(ServiceError::NotFound(format!(
                "collection {name:?} has no index on {field:?}"
            )))
        }
    }

    pub async fn drop_collection(&self, who: &Principal, name: &str) -> Result<()> {
        let name = &collection_name(name)?;
        Ok(self.vectors.drop_collection(&who.tenant, name).await?)
    }

    pub async fn upsert(&self, who: &Principal, req: UpsertRequest) -> Result<UpsertResponse> {
        let limits = &self.settings.limits;
        let collection = self.collection_name(req.collection)?;
        bounded(
            "number of points",
            req.points.len(),
            1,
            limits.max_batch_points,
        )?;
        let mut points = Vec::with_capacity(req.points.len());
        for p in req.points {
            check_vector(
                &p.vector,
                limits,
                format_args!("vector of point {:?}", p.id),
            )?;
            if p.payload.contains_key(TENANT_KEY) {
                return Err(ServiceError::Invalid(
                    "payload key \"tenant\" is reserved".into(),
                ));
            }
            bounded_json(
                format_args!("payload of point {:?}", p.id),
                &p.payload,
                limits.max_payload_bytes,
            )?;
            points.push(Point {
                id: p.id,
                vector: p.vector,
                payload: p.payload,
            });
        }
        let upserted = points.len();
        self.vectors
            .upsert(&who.tenant, &collection, points)
            .await?;
        Ok(UpsertResponse {
            collection: collection.to_string(),
            upserted,
        })
    }

    pub async fn search(&self, who: &Principal, req: SearchRequest) -> Result<SearchResponse> {
        let limits = &self.settings.limits;
        let collection = self.collection_name(req.collection)?;
        bounded("limit", req.limit, 1, limits.max_search_limit)?;
        bounded("offset", req.offset, 0, limits.max_search_offset)?;
        if req.score_threshold.is_some_and(|t| !t.is_finite()) {
            return Err(ServiceError::Invalid(
                "score_threshold must be finite".into(),
            ));
        }
        if let Some(filter) = &req.filter {
            check_filter(filter, limits)?;
        }
        // The ranking asked for, and for mode `both` the second one to fuse with it.
        let (first, second) = match req.mode {
            SearchMode::Dense => (
                Query::Dense(self.query_vector(req.vector, req.text).await?),
                None,
            ),
            SearchMode::Lexical if req.vector.is_some() => {
                return Err(ServiceError::Invalid(
                    "mode lexical searches by `text` only; drop `vector`".into(),
                ));
            }
            SearchMode::Lexical => (Query::Lexical(self.query_text(req.text)?), None),
            SearchMode::Both if req.score_threshold.is_some() => {
                return Err(ServiceError::Invalid(
                    "score_threshold applies to one ranking; not with mode both".into(),
                ));
            }
            SearchMode::Both => {
                let text = self.query_text(req.text)?;
                let vector = match req.vector {
                    Some(v) => self.query_vector(Some(v), None).await?,
                    None => self.embed(&text).await?,
                };
                (Query::Dense(vector), Some(Query::Lexical(text)))
            }
        };
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
                self.search_or_empty(who, &collection, q).await?
            }
            Some(second) => {
                // Each list to the page's end, fused, then the page cut out.
                let depth = req.offset + req.limit;
                let (a, b) = tokio::try_join!(
                    self.search_or_empty(who, &collection, query(first, depth, 0)),
                    self.search_or_empty(who, &collection, query(second, depth, 0)),
                )?;
                reciprocal_rank(&[&a, &b], RRF_K)
                    .into_iter()
                    .skip(req.offset)
                    .take(req.limit)
                    .map(|(hit, score)| ScoredPoint {
                        score,
                        ..hit.clone()
                    })
                    .collect()
            }
        };
        Ok(SearchResponse { hits })
    }

    /// Embeds validated query text with the server's embedder.
    async fn embed(&self, text: &str) -> Result<Vec<f32>> {
        Ok(crate::embed::embed_one(self.embedder.as_ref(), text).await?)
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
            self.settings.limits.max_query_bytes,
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
        match self.vectors.search(&who.tenant, collection, query).await {
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

    pub async fn delete(&self, who: &Principal, req: DeleteRequest) -> Result<DeleteResponse> {
        let limits = &self.settings.limits;
        let collection = self.collection_name(req.collection)?;
        let deleted = match (req.ids, req.filter) {
            (Some(ids), None) => {
                bounded("number of ids", ids.len(), 1, limits.max_batch_points)?;
                self.vectors
                    .delete_ids(&who.tenant, &collection, ids)
                    .await?
            }
            (None, Some(filter)) => {
                check_filter(&filter, limits)?;
                if filter == Filter::default() {
                    return Err(ServiceError::Invalid(
                        "an empty filter would delete everything; drop the collection instead"
                            .into(),
                    ));
                }
                self.vectors
                    .delete_by_filter(&who.tenant, &collection, filter)
                    .await?
            }
            _ => {
                return Err(ServiceError::Invalid(
                    "give exactly one of `ids` or `filter`".into(),
                ));
            }
        };
        Ok(DeleteResponse { deleted })
    }

    pub async fn retrieve(
        &self,
        who: &Principal,
        collection: Option<String>,
        ids: Vec<PointId>,
    ) -> Result<RetrieveResponse> {
        let collection = self.collection_name(collection)?;
        bounded(
            "number of ids",
            ids.len(),
            1,
            self.settings.limits.max_batch_points,
        )?;
        let points = self.vectors.retrieve(&who.tenant, &collection, ids).await?;
        Ok(RetrieveResponse { points })
    }
}

/// `name` as a collection name, or why it is not one.
pub fn collection_name(name: &str) -> Result<CollectionName> {
    CollectionName::parse(name).ok_or_else(|| {
        ServiceError::Invalid(format!(
            "collection name {name:?} must match ^[A-Za-z0-9][A-Za-z0-9_-]{{0,63}}$"
        ))
    })
}

fn check_vector(vector: &[f32], limits: &Limits, what: impl Display) -> Result<()> {
    bounded(
        format_args!("dimensions of {what}"),
        vector.len(),
        1,
        limits.max_vector_dim,
    )?;
    if vector.iter().any(|v| !v.is_finite()) {
        return Err(ServiceError::Invalid(format!(
            "{what} contains a non-finite number"
        )));
    }
    Ok(())
}

/// Checks shape, size and the reserved tenant key, counting conditions against the limit.
pub fn check_filter(filter: &Filter, limits: &Limits) -> Result<()> {
    let mut count = 0;
    check_filter_level(filter, limits, 1, &mut count)
}

fn check_filter_level(
    filter: &Filter,
    limits: &Limits,
    depth: usize,
    count: &mut usize,
) -> Result<()> {
    if depth > limits.max_filter_depth {
        return Err(ServiceError::Invalid(format!(
            "filter nests deeper than {} levels",
            limits.max_filter_depth
        )));
    }
    for condition in filter
        .must
        .iter()
        .chain(&filter.should)
        .chain(&filter.must_not)
    {
        *count += 1;
        if *count > limits.max_filter_conditions {
            return Err(ServiceError::Invalid(format!(
                "filter has more than {} conditions",
                limits.max_filter_conditions
            )));
        }
        let key = match condition.kind().map_err(ServiceError::Invalid)? {
            ConditionKind::Nested(inner) => {
                check_filter_level(&inner, limits, depth + 1, count)?;
                continue;
            }
            ConditionKind::Match(key, _)
            | ConditionKind::MatchAny(key, _)
            | ConditionKind::Range(key, _) => key,
        };
        if key == TENANT_KEY || key.starts_with("tenant.") || key.starts_with("tenant[") {
            return Err(ServiceError::Invalid(
                "payload key \"tenant\" is reserved".into(),
            ));
        }
    }
    Ok(())
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RetrieveResponse {
    pub points: Vec<Record>,
}
