//! Hybrid retrieval (DESIGN.md §6): vector kNN, then graph expansion from the entities
//! the query names and the top hits mention, then rank fusion (RRF or weighted), with
//! optional MMR for diversity. Every hit says where it came from.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::domain::ingest::entity_node_id;
use crate::domain::principal::Principal;
use crate::domain::vector::{Filter, PointId, ScoredPoint, SearchQuery};
use crate::error::{ApiError, Result};
use crate::services::bounded;
use crate::services::ingest::entities;
use crate::services::vectors::{check_filter, collection_name, query_vector, search_or_empty};
use crate::state::AppState;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HybridRequest {
    /// The question as text (embedded, and matched against entity names) …
    pub query: Option<String>,
    /// … or as a vector (then only the top hits' entities seed the graph).
    pub vector: Option<Vec<f32>>,
    pub collection: Option<String>,
    #[serde(default = "default_limit")]
    pub limit: usize,
    pub filter: Option<Filter>,
    /// Graph hops from a seed entity to a chunk: 0 = vector only, 1 = chunks that
    /// mention a seed, 2 and 3 = also through `RELATED_TO` entities.
    #[serde(default = "default_hops")]
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

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Fusion {
    /// Reciprocal rank fusion: Σ 1 / (k + rank).
    Rrf { k: Option<u32> },
    /// `alpha` × vector score + (1 − alpha) × graph score, each min-max normalised.
    Weighted { alpha: f32 },
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mmr {
    /// 1 = pure relevance, 0 = pure diversity.
    pub lambda: f32,
}

#[derive(Debug, Clone, Serialize)]
pub struct HybridResponse {
    pub hits: Vec<HybridHit>,
    /// Entities that seeded or carried the graph expansion.
    pub entities: Vec<UsedEntity>,
    pub fusion: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct HybridHit {
    pub id: PointId,
    pub score: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<Map<String, Value>>,
    pub provenance: Provenance,
}

#[derive(Debug, Clone, Serialize)]
pub struct Provenance {
    pub vector: Option<VectorRank>,
    pub graph: Option<GraphRank>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VectorRank {
    pub rank: usize,
    pub score: f32,
}

#[derive(Debug, Clone, Serialize)]
pub struct GraphRank {
    pub rank: usize,
    pub score: f32,
    /// Entity names from the seed to the entity the chunk mentions.
    pub path: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct UsedEntity {
    pub id: String,
    pub name: String,
    /// `query` (named in the question), `vector` (mentioned by a top hit) or `graph`
    /// (reached over RELATED_TO).
    pub source: &'static str,
    pub depth: u8,
}

/// A validated hybrid request.
struct Plan {
    collection: String,
    vector: Vec<f32>,
    query_text: Option<String>,
    limit: usize,
    filter: Option<Filter>,
    hops: u8,
    fusion: Fusion,
    mmr: Option<Mmr>,
    with_payload: bool,
}

async fn plan(state: &AppState, req: HybridRequest) -> Result<Plan> {
    let limits = &state.settings.limits;
    let collection = collection_name(state, req.collection)?;
    bounded("limit", req.limit, 1, limits.max_search_limit)?;
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
            return Err(ApiError::Unprocessable(
                "fusion.weighted.alpha must be between 0 and 1".into(),
            ));
        }
        Fusion::Rrf { k: Some(0) } => {
            return Err(ApiError::Unprocessable(
                "fusion.rrf.k must be at least 1".into(),
            ));
        }
        _ => {}
    }
    if req.mmr.is_some_and(|m| !(0.0..=1.0).contains(&m.lambda)) {
        return Err(ApiError::Unprocessable(
            "mmr.lambda must be between 0 and 1".into(),
        ));
    }
    let vector = query_vector(state, req.vector, req.query.clone()).await?;
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
    state: &AppState,
    who: &Principal,
    req: HybridRequest,
) -> Result<HybridResponse> {
    let plan = plan(state, req).await?;
    let settings = &state.settings.hybrid;
    let candidates = settings.vector_candidates.max(plan.limit);
    let want_vectors = plan.mmr.is_some();
    let query = search_query(&plan, candidates, None, want_vectors);
    let vector_hits = search_or_empty(state, who, &plan.collection, query).await?;
    let graph = if plan.hops == 0 {
        GraphResult::default()
    } else {
        expand(state, who, &plan, &vector_hits).await?
    };
    // Graph-found chunks outside the vector list get their vector score (and the
    // filter) from a search restricted to their ids.
    let known: HashSet<PointId> = vector_hits.iter().map(|h| h.id).collect();
    let extra_ids: Vec<PointId> = graph
        .ranked
        .iter()
        .map(|(id, _)| *id)
        .filter(|id| !known.contains(id))
        .collect();
    let mut graph_hits = Vec::new();
    if !extra_ids.is_empty() {
        let n = extra_ids.len();
        graph_hits = state
            .vectors
            .search(
                &who.tenant,
                &plan.collection,
                search_query(&plan, n, Some(extra_ids), want_vectors),
            )
            .await?;
    }
    Ok(fuse(
        &plan,
        vector_hits,
        graph_hits,
        graph,
        state.settings.hybrid.default_rrf_k,
    ))
}

fn search_query(
    plan: &Plan,
    limit: usize,
    ids: Option<Vec<PointId>>,
    with_vector: bool,
) -> SearchQuery {
    SearchQuery {
        vector: plan.vector.clone(),
        limit,
        offset: 0,
        score_threshold: None,
        filter: plan.filter.clone(),
        ids,
        with_payload: plan.with_payload,
        with_vector,
    }
}

#[derive(Default)]
struct GraphResult {
    /// Chunk ids by graph score, best first, with score and entity path.
    ranked: Vec<(PointId, (f32, Vec<String>))>,
    entities: Vec<UsedEntity>,
}

/// Seeds, then up to `hops − 1` RELATED_TO hops, then the chunks mentioning any
/// reached entity, each scored by its best path: seed weight × decay per hop ×
/// normalised edge weight.
async fn expand(
    state: &AppState,
    who: &Principal,
    plan: &Plan,
    hits: &[ScoredPoint],
) -> Result<GraphResult> {
    let settings = &state.settings.hybrid;
    let tenant = &who.tenant;
    // entity id → (score, path of names, source, depth)
    let mut reached: BTreeMap<String, (f32, Vec<String>, &'static str, u8)> = BTreeMap::new();
    if let Some(text) = &plan.query_text {
        let keys = query_entity_ids(text, settings.max_seed_entities);
        for e in state.graph.entities(tenant, keys).await? {
            reached.insert(e.id.clone(), (1.0, vec![e.name], "query", 0));
        }
    }
    let top: Vec<String> = hits
        .iter()
        .take(settings.seed_chunks)
        .filter_map(|h| match h.id {
            PointId::Uuid(u) => Some(u.to_string()),
            PointId::Num(_) => None,
        })
        .collect();
    if !top.is_empty() {
        let rank: HashMap<String, usize> = top
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, id)| (id, i))
            .collect();
        for m in state.graph.chunk_mentions(tenant, top).await? {
            let weight = 0.5 / (1.0 + rank.get(&m.chunk).copied().unwrap_or(0) as f32);
            if reached.len() >= settings.max_seed_entities && !reached.contains_key(&m.entity.id) {
                continue;
            }
            let entry = reached.entry(m.entity.id.clone()).or_insert((
                0.0,
                vec![m.entity.name.clone()],
                "vector",
                0,
            ));
            entry.0 = entry.0.max(weight);
        }
    }
    let mut frontier: Vec<String> = reached.keys().cloned().collect();
    for depth in 1..plan.hops {
        if frontier.is_empty() {
            break;
        }
        let related = state
            .graph
            .related_entities(tenant, frontier.clone(), settings.max_graph_chunks)
            .await?;
        let max_w = related.iter().map(|r| r.weight).fold(1.0, f64::max);
        let mut next = Vec::new();
        for r in related {
            let Some((parent, path, _, _)) = reached.get(&r.from).cloned() else {
                continue;
            };
            let score = parent * settings.hop_decay * (r.weight / max_w) as f32;
            if reached.get(&r.entity.id).is_none_or(|e| e.0 < score) {
                let mut path = path;
                path.push(r.entity.name.clone());
                if !reached.contains_key(&r.entity.id) {
                    next.push(r.entity.id.clone());
                }
                reached.insert(r.entity.id.clone(), (score, path, "graph", depth));
            }
        }
        frontier = next;
    }
    let ids: Vec<String> = reached.keys().cloned().collect();
    let mentions = if ids.is_empty() {
        Vec::new()
    } else {
        state
            .graph
            .entity_mentions(tenant, ids, settings.max_graph_chunks)
            .await?
    };
    // chunk id → (summed score, best single score, path of the best entity)
    let mut chunks: BTreeMap<String, (f32, f32, Vec<String>)> = BTreeMap::new();
    for m in mentions {
        let Some((score, path, _, _)) = reached.get(&m.entity.id) else {
            continue;
        };
        let entry = chunks.entry(m.chunk).or_insert((0.0, 0.0, Vec::new()));
        if *score > entry.1 {
            entry.1 = *score;
            entry.2 = path.clone();
        }
        // Several reached entities in one chunk add up.
        entry.0 += score;
    }
    let mut ranked: Vec<(PointId, (f32, Vec<String>))> = chunks
        .into_iter()
        .filter_map(|(id, (score, _, path))| Some((PointId::Uuid(id.parse().ok()?), (score, path))))
        .collect();
    // Stable: ties keep chunk-id order, so results are deterministic.
    ranked.sort_by(|a, b| b.1.0.total_cmp(&a.1.0));
    let entities = reached
        .into_iter()
        .map(|(id, (_, path, source, depth))| UsedEntity {
            name: path.last().cloned().unwrap_or_default(),
            id,
            source,
            depth,
        })
        .collect();
    Ok(GraphResult { ranked, entities })
}

/// Entity node ids the query might name: every 1–4 word window, normalised, plus the
/// extractor's own spans.
fn query_entity_ids(text: &str, max: usize) -> Vec<String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut keys: Vec<String> = entities::extract(text, &[], max)
        .into_iter()
        .map(|e| e.key)
        .collect();
    for n in (1..=4).rev() {
        for window in words.windows(n) {
            if let Some(key) = entities::normalize(&window.join(" ")) {
                keys.push(key);
            }
        }
    }
    let mut seen = HashSet::new();
    keys.retain(|k| seen.insert(k.clone()));
    keys.into_iter()
        .take(max * 8)
        .map(|k| entity_node_id(&k))
        .collect()
}

struct Candidate {
    hit: ScoredPoint,
    vector: Option<VectorRank>,
    graph: Option<GraphRank>,
    fused: f32,
}

fn fuse(
    plan: &Plan,
    vector_hits: Vec<ScoredPoint>,
    graph_hits: Vec<ScoredPoint>,
    graph: GraphResult,
    default_k: u32,
) -> HybridResponse {
    let graph_rank: HashMap<PointId, (usize, f32, Vec<String>)> = graph
        .ranked
        .into_iter()
        .enumerate()
        .map(|(i, (id, (score, path)))| (id, (i + 1, score, path)))
        .collect();
    let mut candidates: Vec<Candidate> = Vec::new();
    for (i, hit) in vector_hits.into_iter().enumerate() {
        let vector = Some(VectorRank {
            rank: i + 1,
            score: hit.score,
        });
        let graph = graph_rank.get(&hit.id).map(graph_entry);
        candidates.push(Candidate {
            hit,
            vector,
            graph,
            fused: 0.0,
        });
    }
    // Graph-only hits passed the filter in their own search; unknown ids did not.
    for hit in graph_hits {
        let graph = graph_rank.get(&hit.id).map(graph_entry);
        candidates.push(Candidate {
            hit,
            vector: None,
            graph,
            fused: 0.0,
        });
    }
    let name = match plan.fusion {
        Fusion::Rrf { k } => {
            let k = k.unwrap_or(default_k) as f32;
            for c in &mut candidates {
                c.fused = c.vector.as_ref().map_or(0.0, |v| 1.0 / (k + v.rank as f32))
                    + c.graph.as_ref().map_or(0.0, |g| 1.0 / (k + g.rank as f32));
            }
            "rrf"
        }
        Fusion::Weighted { alpha } => {
            let v = min_max(
                candidates
                    .iter()
                    .filter(|c| c.vector.is_some())
                    .map(|c| c.hit.score),
            );
            let g = min_max(
                candidates
                    .iter()
                    .filter_map(|c| c.graph.as_ref().map(|g| g.score)),
            );
            for c in &mut candidates {
                let vs = c.vector.as_ref().map_or(0.0, |r| scale(r.score, v));
                let gs = c.graph.as_ref().map_or(0.0, |r| scale(r.score, g));
                c.fused = alpha * vs + (1.0 - alpha) * gs;
            }
            "weighted"
        }
    };
    candidates.sort_by(|a, b| b.fused.total_cmp(&a.fused));
    if let Some(mmr) = plan.mmr {
        candidates = diversify(candidates, mmr.lambda, plan.limit);
    }
    candidates.truncate(plan.limit);
    let hits = candidates
        .into_iter()
        .map(|c| HybridHit {
            id: c.hit.id,
            score: c.fused,
            payload: c.hit.payload,
            provenance: Provenance {
                vector: c.vector,
                graph: c.graph,
            },
        })
        .collect();
    HybridResponse {
        hits,
        entities: graph.entities,
        fusion: name,
    }
}

fn graph_entry(g: &(usize, f32, Vec<String>)) -> GraphRank {
    GraphRank {
        rank: g.0,
        score: g.1,
        path: g.2.clone(),
    }
}

fn min_max(scores: impl Iterator<Item = f32>) -> (f32, f32) {
    scores.fold((f32::MAX, f32::MIN), |(lo, hi), s| (lo.min(s), hi.max(s)))
}

fn scale(score: f32, (lo, hi): (f32, f32)) -> f32 {
    if hi > lo {
        (score - lo) / (hi - lo)
    } else {
        1.0
    }
}

/// Maximal marginal relevance over the fused ranking: each pick maximises
/// λ·relevance − (1 − λ)·(highest cosine to anything already picked).
fn diversify(candidates: Vec<Candidate>, lambda: f32, limit: usize) -> Vec<Candidate> {
    let top = candidates
        .first()
        .map_or(1.0, |c| c.fused)
        .max(f32::MIN_POSITIVE);
    let mut pool: Vec<Candidate> = candidates;
    let mut picked: Vec<Candidate> = Vec::new();
    while !pool.is_empty() && picked.len() < limit {
        let best = pool
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let redundancy = picked
                    .iter()
                    .map(|p| cosine(c.hit.vector.as_deref(), p.hit.vector.as_deref()))
                    .fold(0.0, f32::max);
                (i, lambda * c.fused / top - (1.0 - lambda) * redundancy)
            })
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map_or(0, |(i, _)| i);
        picked.push(pool.remove(best));
    }
    for c in &mut picked {
        c.hit.vector = None;
    }
    picked
}

fn cosine(a: Option<&[f32]>, b: Option<&[f32]>) -> f32 {
    let (Some(a), Some(b)) = (a, b) else {
        return 0.0;
    };
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}
