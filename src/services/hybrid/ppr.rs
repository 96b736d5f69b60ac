//! Personalised PageRank over the entity–chunk graph around the seeds (HippoRAG's graph
//! ranker). The subgraph is pulled from the store in bounded layers (the chunks that
//! mention the chosen entities, then every entity of those chunks) and ranked here, so
//! it works the same on every graph executor and needs no engine plugin.
//!
//! Layer 1 pulls the chunks of the seeds; each further hop pulls the chunks of the
//! [`FRONTIER`] entities with the most mass per chunk so far. An entity mentioned by
//! more chunks than the whole budget is never expanded: its chunks could not all be
//! pulled, any subset would be arbitrary, and it passes each of them almost nothing (it
//! still takes part through the chunks pulled for other entities). A walk leaves an entity
//! along each of its `mentions` chunks (its degree in the whole graph, as kept at
//! ingest), so the mass it sends to the pulled ones is what they would get in the full
//! graph; the rest leaks. A hub therefore passes almost nothing on, and a chunk that
//! shares specific entities with the seeds' chunks gathers the most.

use std::collections::HashMap;

use crate::domain::ingest::{ChunkLink, EntityId, Mention};

/// Entities one further hop expands from.
pub(super) const FRONTIER: usize = 8;
/// Power iterations at most; the error after `t` is below `damping^t`.
const ITERATIONS: usize = 30;
/// Stop early once an iteration moves less total mass than this.
const TOLERANCE: f32 = 1e-6;

/// An entity of the pulled subgraph.
#[derive(Debug, Clone)]
pub(super) struct EntityNode {
    pub id: EntityId,
    /// Entity names from the seed it was reached from to this one.
    pub path: Vec<String>,
    /// Chunks that mention it in the whole graph (at least those pulled).
    pub degree: usize,
    /// Hops from a seed (0 for a seed).
    pub depth: u8,
    /// Whether its chunks have been pulled.
    pub expanded: bool,
    /// Reset weight (0 unless a seed).
    pub seed: f32,
    chunks: Vec<usize>,
}

#[derive(Debug, Clone)]
struct ChunkNode {
    id: String,
    /// The entity it was pulled through: its path is the chunk's.
    via: usize,
    entities: Vec<usize>,
    /// Whether its entity list is complete (read with `chunk_mentions`).
    complete: bool,
}

/// The entity–chunk subgraph pulled so far.
#[derive(Debug, Default)]
pub(super) struct Subgraph {
    pub entities: Vec<EntityNode>,
    entity_index: HashMap<EntityId, usize>,
    chunks: Vec<ChunkNode>,
    chunk_index: HashMap<String, usize>,
}

impl Subgraph {
    /// Starts from the seeds: (id, name, mentions, weight).
    pub fn new(seeds: impl IntoIterator<Item = (EntityId, String, u64, f32)>) -> Self {
        let mut graph = Self::default();
        for (id, name, mentions, weight) in seeds {
            let e = graph.entity(id, vec![name], mentions, 0);
            graph.entities[e].seed = graph.entities[e].seed.max(weight);
        }
        graph
    }

    fn entity(&mut self, id: EntityId, path: Vec<String>, mentions: u64, depth: u8) -> usize {
        if let Some(&i) = self.entity_index.get(&id) {
            let node = &mut self.entities[i];
            node.degree = node.degree.max(mentions as usize);
            return i;
        }
        let i = self.entities.len();
        self.entity_index.insert(id.clone(), i);
        self.entities.push(EntityNode {
            id,
            path,
            degree: (mentions as usize).max(1),
            depth,
            expanded: false,
            seed: 0.0,
            chunks: Vec::new(),
        });
        i
    }

    fn link(&mut self, chunk: usize, entity: usize) {
        if !self.chunks[chunk].entities.contains(&entity) {
            self.chunks[chunk].entities.push(entity);
            let e = &mut self.entities[entity];
            e.chunks.push(chunk);
            e.degree = e.degree.max(e.chunks.len());
        }
    }

    /// Ids of the `n` unexpanded entities of at most `max_degree` chunks that would pass
    /// on the most mass per chunk, best first (ties by id); marks them expanded.
    pub fn frontier(&mut self, mass: &[f32], n: usize, max_degree: usize) -> Vec<EntityId> {
        let scored = (0..self.entities.len())
            .filter(|&i| !self.entities[i].expanded && self.entities[i].degree <= max_degree)
            .map(|i| (i, mass[i] / self.entities[i].degree as f32))
            .collect();
        self.expand_best(scored, n)
    }

    /// Ids of the seeds of at most `max_degree` chunks, best first, marked expanded.
    pub fn seeds(&mut self, max_degree: usize) -> Vec<EntityId> {
        let scored = (0..self.entities.len())
            .filter(|&i| self.entities[i].degree <= max_degree)
            .map(|i| (i, self.entities[i].seed))
            .collect();
        self.expand_best(scored, usize::MAX)
    }

    /// The ids of the `n` best of `scored` (entity, score) with a score above 0, best
    /// first (ties by id, so the order is deterministic), marked expanded.
    fn expand_best(&mut self, mut scored: Vec<(usize, f32)>, n: usize) -> Vec<EntityId> {
        scored.retain(|&(_, s)| s > 0.0);
        scored.sort_by(|a, b| {
            b.1.total_cmp(&a.1)
                .then_with(|| self.entities[a.0].id.cmp(&self.entities[b.0].id))
        });
        scored.truncate(n);
        scored
            .into_iter()
            .map(|(i, _)| {
                self.entities[i].expanded = true;
                self.entities[i].id.clone()
            })
            .collect()
    }

    /// Adds the chunks `entity_mentions` returned for expanded entities; returns the
    /// ids of chunks whose entity lists are still to be read.
    pub fn add_chunks(&mut self, links: Vec<ChunkLink>) -> Vec<String> {
        let mut incomplete = Vec::new();
        for m in links {
            let Some(&via) = self.entity_index.get(&m.entity) else {
                continue;
            };
            let chunk = match self.chunk_index.get(&m.chunk) {
                Some(&c) => c,
                None => {
                    let c = self.chunks.len();
                    self.chunk_index.insert(m.chunk.clone(), c);
                    self.chunks.push(ChunkNode {
                        id: m.chunk.clone(),
                        via,
                        entities: Vec::new(),
                        complete: false,
                    });
                    incomplete.push(m.chunk);
                    c
                }
            };
            self.link(chunk, via);
        }
        incomplete
    }

    /// Adds every entity of the chunks `chunk_mentions` returned.
    pub fn add_entities(&mut self, mentions: Vec<Mention>) {
        for m in mentions {
            let Some(&chunk) = self.chunk_index.get(&m.chunk) else {
                continue;
            };
            self.chunks[chunk].complete = true;
            let via = self.chunks[chunk].via;
            let mut path = self.entities[via].path.clone();
            path.push(m.entity.name);
            let depth = self.entities[via].depth + 1;
            let e = self.entity(m.entity.id, path, m.entity.mentions, depth);
            self.link(chunk, e);
        }
    }

    /// The stationary mass of a walk that restarts at the seeds (in proportion to
    /// their weights) with probability `1 − damping` at every step: entities first,
    /// then chunks, as one vector indexed entity-then-chunk.
    pub fn rank(&self, damping: f32) -> Vec<f32> {
        let (n_e, n_c) = (self.entities.len(), self.chunks.len());
        let total: f32 = self.entities.iter().map(|e| e.seed).sum();
        if total <= 0.0 {
            return vec![0.0; n_e + n_c];
        }
        let reset: Vec<f32> = self.entities.iter().map(|e| e.seed / total).collect();
        let mut mass = vec![0.0f32; n_e + n_c];
        mass[..n_e].copy_from_slice(&reset);
        let mut next = vec![0.0f32; n_e + n_c];
        for _ in 0..ITERATIONS {
            next.fill(0.0);
            for (i, r) in reset.iter().enumerate() {
                next[i] = (1.0 - damping) * r;
            }
            for (i, e) in self.entities.iter().enumerate() {
                let share = damping * mass[i] / e.degree as f32;
                for &c in &e.chunks {
                    next[n_e + c] += share;
                }
            }
            for (c, chunk) in self.chunks.iter().enumerate() {
                if chunk.entities.is_empty() {
                    continue;
                }
                let share = damping * mass[n_e + c] / chunk.entities.len() as f32;
                for &e in &chunk.entities {
                    next[e] += share;
                }
            }
            let moved: f32 = mass.iter().zip(&next).map(|(a, b)| (a - b).abs()).sum();
            std::mem::swap(&mut mass, &mut next);
            if moved < TOLERANCE {
                break;
            }
        }
        mass
    }

    /// Chunks by mass, best first (ties by id), with their mass and path.
    pub fn ranked_chunks(&self, mass: &[f32]) -> Vec<(&str, f32, &[String])> {
        let n_e = self.entities.len();
        let mut ranked: Vec<(&str, f32, &[String])> = self
            .chunks
            .iter()
            .enumerate()
            .filter(|(c, _)| mass[n_e + c] > 0.0)
            .map(|(c, chunk)| {
                let path = self.entities[chunk.via].path.as_slice();
                (chunk.id.as_str(), mass[n_e + c], path)
            })
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        ranked
    }

    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    /// Whether every pulled chunk's entity list has been read.
    #[cfg(test)]
    fn complete(&self) -> bool {
        self.chunks.iter().all(|c| c.complete)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ingest::EntityRef;

    fn id(key: &str) -> EntityId {
        EntityId::from_key(key)
    }

    fn ids(keys: &[&str]) -> Vec<EntityId> {
        keys.iter().map(|k| id(k)).collect()
    }

    fn mention(chunk: &str, entity: &str, mentions: u64) -> Mention {
        Mention {
            chunk: chunk.into(),
            entity: EntityRef {
                id: id(entity),
                name: entity.into(),
                mentions,
            },
        }
    }

    fn link(chunk: &str, entity: &str) -> ChunkLink {
        ChunkLink {
            chunk: chunk.into(),
            entity: id(entity),
        }
    }

    /// seed A ─ c1 ─ B ─ c2 (bridge); hub H in c1, c3 and 1,000 chunks elsewhere.
    fn graph() -> Subgraph {
        let mut g = Subgraph::new([(id("A"), "A".to_owned(), 1, 1.0)]);
        assert_eq!(g.seeds(10), ids(&["A"]));
        let new = g.add_chunks(vec![link("c1", "A")]);
        assert_eq!(new, ["c1"]);
        g.add_entities(vec![
            mention("c1", "A", 1),
            mention("c1", "B", 2),
            mention("c1", "H", 1000),
        ]);
        g
    }

    #[test]
    fn a_bridge_chunk_outranks_one_reached_only_through_a_hub() {
        let mut g = graph();
        let mass = g.rank(0.5);
        // B passes on more per chunk than the hub, so it is expanded first.
        assert_eq!(g.frontier(&mass, 1, 10), ids(&["B"]));
        let new = g.add_chunks(vec![link("c2", "B")]);
        assert_eq!(new, ["c2"]);
        g.add_entities(vec![mention("c2", "B", 2), mention("c2", "X", 1)]);
        // A specific leaf passes on more per chunk than the hub.
        assert_eq!(
            g.frontier(&g.rank(0.5), 8, 10),
            ids(&["X"]),
            "the hub is past the budget"
        );
        assert_eq!(g.frontier(&g.rank(0.5), 8, 1000), ids(&["H"]));
        g.add_chunks(vec![link("c3", "H")]);
        g.add_entities(vec![mention("c3", "H", 1000), mention("c3", "Y", 1)]);
        assert!(g.complete());
        let mass = g.rank(0.5);
        let ranked = g.ranked_chunks(&mass);
        let order: Vec<&str> = ranked.iter().map(|r| r.0).collect();
        assert_eq!(order, ["c1", "c2", "c3"]);
        assert_eq!(ranked[1].2, ["A", "B"]);
        // Mass is a distribution: it never grows past what the seeds put in.
        assert!(mass.iter().sum::<f32>() <= 1.0 + 1e-4);
    }

    #[test]
    fn no_seed_weight_means_no_mass() {
        let g = Subgraph::new([(id("A"), "A".to_owned(), 1, 0.0)]);
        assert!(g.rank(0.5).iter().all(|m| *m == 0.0));
    }
}
