//! Rank fusion for hybrid retrieval: reciprocal rank fusion or a weighted sum of
//! min-max normalised scores, then optional maximal marginal relevance.

use std::collections::HashMap;

use super::{
    Fusion, FusionKind, GraphRank, GraphResult, HybridHit, HybridResponse, Plan, Provenance,
    VectorRank,
};
use crate::domain::vector::{PointId, ScoredPoint};

struct Candidate {
    hit: ScoredPoint,
    vector: Option<VectorRank>,
    lexical: Option<VectorRank>,
    graph: Option<GraphRank>,
    fused: f32,
}

/// Reciprocal rank fusion's defaults: `k`, and the graph and lexical lists' weights
/// against the vector list's 1.
#[derive(Debug, Clone, Copy)]
pub(super) struct Rrf {
    pub k: u32,
    pub graph_weight: f32,
    pub lexical_weight: f32,
}

/// What fusion ranks: the dense and lexical hits, the graph-reached chunks found in
/// neither (searched by id), and the graph's ranking.
pub(super) struct Lists {
    pub vector: Vec<ScoredPoint>,
    pub lexical: Vec<ScoredPoint>,
    pub graph_only: Vec<ScoredPoint>,
    pub graph: GraphResult,
}

fn ranks(hits: &[ScoredPoint]) -> HashMap<PointId, VectorRank> {
    hits.iter()
        .enumerate()
        .map(|(i, h)| {
            let rank = VectorRank {
                rank: i + 1,
                score: h.score,
            };
            (h.id, rank)
        })
        .collect()
}

pub(super) fn fuse(plan: &Plan, mut lists: Lists, rrf: Rrf) -> HybridResponse {
    let had_lexical = !lists.lexical.is_empty();
    let entities = std::mem::take(&mut lists.graph.entities);
    let mut candidates = candidates(lists);
    let name = match plan.fusion {
        Fusion::Rrf { k } => {
            score_rrf(&mut candidates, k.unwrap_or(rrf.k) as f32, rrf);
            FusionKind::Rrf
        }
        Fusion::Weighted { alpha } => {
            // The text side is the mean of the rankings that ran (dense, and lexical
            // when the query was text).
            let text_lists = if had_lexical { 2.0 } else { 1.0 };
            score_weighted(&mut candidates, alpha, text_lists);
            FusionKind::Weighted
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
                lexical: c.lexical,
                graph: c.graph,
            },
        })
        .collect();
    HybridResponse {
        hits,
        entities,
        fusion: name,
    }
}

/// Every hit once, with its rank in each list that holds it. Graph-only hits passed
/// the filter in their own search; graph ids that found no hit did not.
fn candidates(lists: Lists) -> Vec<Candidate> {
    let Lists {
        vector,
        lexical,
        graph_only,
        graph,
    } = lists;
    let graph_rank: HashMap<PointId, (usize, f32, Vec<String>)> = graph
        .ranked
        .into_iter()
        .enumerate()
        .map(|(i, (id, (score, path)))| (id, (i + 1, score, path)))
        .collect();
    let vector_rank = ranks(&vector);
    let lexical_rank = ranks(&lexical);
    let mut candidates: Vec<Candidate> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for hit in vector.into_iter().chain(lexical).chain(graph_only) {
        if !seen.insert(hit.id) {
            continue;
        }
        candidates.push(Candidate {
            vector: vector_rank.get(&hit.id).cloned(),
            lexical: lexical_rank.get(&hit.id).cloned(),
            graph: graph_rank.get(&hit.id).map(graph_entry),
            hit,
            fused: 0.0,
        });
    }
    candidates
}

/// Σ weight / (k + rank) over the lists that hold each candidate.
fn score_rrf(candidates: &mut [Candidate], k: f32, rrf: Rrf) {
    let term = |rank: Option<usize>, weight: f32| rank.map_or(0.0, |r| weight / (k + r as f32));
    for c in candidates {
        c.fused = term(c.vector.as_ref().map(|v| v.rank), 1.0)
            + term(c.lexical.as_ref().map(|v| v.rank), rrf.lexical_weight)
            + term(c.graph.as_ref().map(|g| g.rank), rrf.graph_weight);
    }
}

/// `alpha` × the mean of the text lists' min-max normalised scores + (1 − `alpha`) ×
/// the graph's.
fn score_weighted(candidates: &mut [Candidate], alpha: f32, text_lists: f32) {
    let v = min_max(
        candidates
            .iter()
            .filter_map(|c| Some(c.vector.as_ref()?.score)),
    );
    let l = min_max(
        candidates
            .iter()
            .filter_map(|c| Some(c.lexical.as_ref()?.score)),
    );
    let g = min_max(
        candidates
            .iter()
            .filter_map(|c| Some(c.graph.as_ref()?.score)),
    );
    for c in candidates {
        let vs = c.vector.as_ref().map_or(0.0, |r| scale(r.score, v));
        let ls = c.lexical.as_ref().map_or(0.0, |r| scale(r.score, l));
        let gs = c.graph.as_ref().map_or(0.0, |r| scale(r.score, g));
        c.fused = alpha * (vs + ls) / text_lists + (1.0 - alpha) * gs;
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
