//! The graph half of hybrid retrieval: seed entities (named in the query, or mentioned
//! by the top vector hits), then rank chunks around them, by personalised PageRank over
//! the entity–chunk graph ([`super::ppr`], the default) or by walking `RELATED_TO` for
//! `hops − 1` steps and scoring the chunks that mention any entity reached.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::ppr::{FRONTIER, Subgraph};
use super::{GraphResult, HybridService, Plan, SeedSource, UsedEntity};
use crate::config::GraphRanker;
use crate::domain::ingest::EntityId;
use crate::domain::principal::{Principal, Tenant};
use crate::domain::vector::PointId;
use crate::services::error::Result;
use crate::services::ingest::entities;

/// An entity reached by the expansion, by its best path.
#[derive(Debug, Clone)]
pub(super) struct Reached {
    score: f32,
    /// Entity names from the seed to this entity.
    path: Vec<String>,
    source: SeedSource,
    depth: u8,
    /// Chunks that mention it, as kept at ingest.
    mentions: u64,
}

/// Entities by node id.
pub(super) type ReachedMap = BTreeMap<EntityId, Reached>;

impl HybridService {
    /// Graph-ranked chunks around the seeds: `named` (from [`Self::named_seeds`]) and
    /// the entities the top `hits` mention, by the configured ranker.
    pub(super) async fn expand(
        &self,
        who: &Principal,
        plan: &Plan,
        named: ReachedMap,
        hits: &[PointId],
    ) -> Result<GraphResult> {
        let seeds = self.hit_seeds(&who.tenant, named, hits).await?;
        match self.settings.hybrid.graph_ranker {
            GraphRanker::Ppr => self.page_rank(&who.tenant, plan.hops, seeds).await,
            GraphRanker::Walk => self.walk_and_score(&who.tenant, plan.hops, seeds).await,
        }
    }

    /// Personalised PageRank from the seeds over the entity–chunk subgraph pulled in
    /// `hops` layers, at most `hybrid.max_graph_chunks` chunks in all (shared evenly
    /// among the layers still to come, so the seeds' chunks cannot take the whole
    /// budget from the hops after them).
    async fn page_rank(&self, tenant: &Tenant, hops: u8, seeds: ReachedMap) -> Result<GraphResult> {
        let settings = &self.settings.hybrid;
        let mut graph = Subgraph::new(seeds.iter().map(|(id, r)| {
            let name = r.path.last().cloned().unwrap_or_default();
            (id.clone(), name, r.mentions, r.score)
        }));
        let max_degree = settings.max_graph_chunks.get();
        let mut ids = graph.seeds(max_degree);
        // Set by every layer; with no layer there are no chunks to rank.
        let mut mass = Vec::new();
        for depth in 1..=hops {
            let room = settings
                .max_graph_chunks
                .get()
                .saturating_sub(graph.chunk_count());
            let limit = room / usize::from(hops - depth + 1);
            if ids.is_empty() || limit == 0 {
                break;
            }
            let found = self.graph.entity_mentions(tenant, ids, limit).await?;
            let new = graph.add_chunks(found);
            if !new.is_empty() {
                graph.add_entities(self.graph.chunk_mentions(tenant, new).await?);
            }
            mass = graph.rank(settings.ppr_damping);
            ids = if depth < hops {
                graph.frontier(&mass, FRONTIER, max_degree)
            } else {
                Vec::new()
            };
        }
        let ranked = graph
            .ranked_chunks(&mass)
            .into_iter()
            .filter_map(|(id, score, path)| {
                Some((PointId::Uuid(id.parse().ok()?), (score, path.to_vec())))
            })
            .collect();
        let entities = graph
            .entities
            .iter()
            .filter(|e| e.expanded)
            .map(|e| UsedEntity {
                id: e.id.to_string(),
                name: e.path.last().cloned().unwrap_or_default(),
                source: seeds.get(&e.id).map_or(SeedSource::Graph, |s| s.source),
                depth: e.depth,
            })
            .collect();
        Ok(GraphResult { ranked, entities })
    }

    /// Seeds, then up to `hops − 1` RELATED_TO hops, then the chunks mentioning any
    /// reached entity, each scored by its best path: seed weight × decay per hop ×
    /// normalised edge weight.
    async fn walk_and_score(
        &self,
        tenant: &Tenant,
        hops: u8,
        mut reached: ReachedMap,
    ) -> Result<GraphResult> {
        self.walk(tenant, hops, &mut reached).await?;
        let ranked = self.score_chunks(tenant, &reached).await?;
        let entities = reached
            .into_iter()
            .map(|(id, r)| UsedEntity {
                name: r.path.last().cloned().unwrap_or_default(),
                id: id.into(),
                source: r.source,
                depth: r.depth,
            })
            .collect();
        Ok(GraphResult { ranked, entities })
    }

    /// Entities the query names, weighted by specificity. It needs no text hits, so it
    /// runs beside the text searches.
    pub(super) async fn named_seeds(&self, tenant: &Tenant, plan: &Plan) -> Result<ReachedMap> {
        let settings = &self.settings.hybrid;
        let mut reached = ReachedMap::new();
        if plan.hops == 0 {
            return Ok(reached);
        }
        if let Some(text) = &plan.query_text {
            let keys = query_entity_ids(text, settings.max_seed_entities);
            for e in self.graph.entities(tenant, keys).await? {
                let seed = Reached {
                    score: specificity(e.mentions),
                    path: vec![e.name],
                    source: SeedSource::Query,
                    depth: 0,
                    mentions: e.mentions,
                };
                reached.insert(e.id, seed);
            }
        }
        Ok(reached)
    }

    /// `reached` and the entities the top hits (`hits`, ids best first) mention
    /// (0.5 / (1 + rank) × specificity), at most `hybrid.max_seed_entities` in all.
    async fn hit_seeds(
        &self,
        tenant: &Tenant,
        mut reached: ReachedMap,
        hits: &[PointId],
    ) -> Result<ReachedMap> {
        let settings = &self.settings.hybrid;
        let top: Vec<String> = hits
            .iter()
            .take(settings.seed_chunks)
            .filter_map(|id| match id {
                PointId::Uuid(u) => Some(u.to_string()),
                PointId::Num(_) => None,
            })
            .collect();
        if top.is_empty() {
            return Ok(reached);
        }
        let rank: HashMap<String, usize> = top
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, id)| (id, i))
            .collect();
        for m in self.graph.chunk_mentions(tenant, top).await? {
            let weight = 0.5 / (1.0 + rank.get(&m.chunk).copied().unwrap_or(0) as f32)
                * specificity(m.entity.mentions);
            if reached.len() >= settings.max_seed_entities && !reached.contains_key(&m.entity.id) {
                continue;
            }
            let entry = reached.entry(m.entity.id).or_insert_with(|| Reached {
                score: 0.0,
                path: vec![m.entity.name],
                source: SeedSource::Vector,
                depth: 0,
                mentions: m.entity.mentions,
            });
            entry.score = entry.score.max(weight);
        }
        Ok(reached)
    }

    /// Breadth-first over `RELATED_TO`, keeping each entity's best-scoring path.
    async fn walk(&self, tenant: &Tenant, hops: u8, reached: &mut ReachedMap) -> Result<()> {
        let settings = &self.settings.hybrid;
        let mut frontier = best(reached.iter(), FRONTIER);
        for depth in 1..hops {
            if frontier.is_empty() {
                break;
            }
            let related = self
                .graph
                .related_entities(tenant, frontier, settings.max_graph_chunks.get())
                .await?;
            let max_w = related.iter().map(|r| r.weight).fold(1.0, f64::max);
            let mut next = Vec::new();
            for r in related {
                let Some(parent) = reached.get(&r.from).cloned() else {
                    continue;
                };
                let score = parent.score
                    * settings.hop_decay
                    * (r.weight / max_w) as f32
                    * specificity(r.entity.mentions);
                if reached.get(&r.entity.id).is_some_and(|e| e.score >= score) {
                    continue;
                }
                if !reached.contains_key(&r.entity.id) {
                    next.push(r.entity.id.clone());
                }
                let mut path = parent.path;
                path.push(r.entity.name);
                let hop = Reached {
                    score,
                    path,
                    source: SeedSource::Graph,
                    depth,
                    mentions: r.entity.mentions,
                };
                reached.insert(r.entity.id, hop);
            }
            let next: HashSet<EntityId> = next.into_iter().collect();
            frontier = best(
                reached.iter().filter(|(id, _)| next.contains(*id)),
                FRONTIER,
            );
        }
        Ok(())
    }

    /// Chunks mentioning any reached entity, best first; a chunk's score is the sum over
    /// the entities it mentions, and its path is the best single one's.
    async fn score_chunks(
        &self,
        tenant: &Tenant,
        reached: &ReachedMap,
    ) -> Result<Vec<(PointId, (f32, Vec<String>))>> {
        if reached.is_empty() {
            return Ok(Vec::new());
        }
        // Best first: the store's limit then drops the least relevant entities' chunks,
        // never those of whichever entities sort last by name.
        let ids = best(reached.iter(), reached.len());
        let limit = self.settings.hybrid.max_graph_chunks.get();
        let mentions = self.graph.entity_mentions(tenant, ids, limit).await?;
        // chunk id → (summed score, best single score, path of the best entity)
        let mut chunks: BTreeMap<String, (f32, f32, Vec<String>)> = BTreeMap::new();
        for m in mentions {
            let Some(r) = reached.get(&m.entity) else {
                continue;
            };
            let entry = chunks.entry(m.chunk).or_insert((0.0, 0.0, Vec::new()));
            if r.score > entry.1 {
                entry.1 = r.score;
                entry.2 = r.path.clone();
            }
            entry.0 += r.score;
        }
        let mut ranked: Vec<(PointId, (f32, Vec<String>))> = chunks
            .into_iter()
            .filter_map(|(id, (score, _, path))| {
                Some((PointId::Uuid(id.parse().ok()?), (score, path)))
            })
            .collect();
        // Stable: ties keep chunk-id order, so results are deterministic.
        ranked.sort_by(|a, b| b.1.0.total_cmp(&a.1.0));
        Ok(ranked)
    }
}

/// The ids of the `n` best-scoring entities of `reached`, best first (ties by id, so
/// the order is deterministic).
fn best<'a>(reached: impl Iterator<Item = (&'a EntityId, &'a Reached)>, n: usize) -> Vec<EntityId> {
    let mut ranked: Vec<(&EntityId, f32)> = reached.map(|(id, r)| (id, r.score)).collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    ranked
        .into_iter()
        .take(n)
        .map(|(id, _)| id.clone())
        .collect()
}

/// How much a mention of an entity says about a chunk: 1 for an entity one chunk
/// mentions, less for each chunk more (HippoRAG's node specificity, softened by a
/// square root so that an entity of a few chunks still counts). A count of 0 (data
/// written before counts were kept) counts as 1.
fn specificity(mentions: u64) -> f32 {
    1.0 / (mentions.max(1) as f32).sqrt()
}

/// Entity node ids the query might name: every 1–4 word window, normalised, plus the
/// extractor's own spans.
fn query_entity_ids(text: &str, max: usize) -> Vec<EntityId> {
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
        .map(|k| EntityId::from_key(&k))
        .collect()
}
