//! The embedded graph's co-occurrence weights (`RELATED_TO` between entities that share
//! a chunk), updated through grafeo's direct API inside a document's transaction.
//!
//! grafeo has no lookup of the edge between two nodes. A pair's edge is first looked
//! for in [`PairHints`], where the writes before left it; failing that, by walking one
//! end's adjacency: the out-edges of `a` or the in-edges of `b`. An entity's edges grow
//! with its mentions (a `MENTIONS` edge in per chunk, a `RELATED_TO` per entity it
//! shares a chunk with), so the walk starts from the end with fewer mentions. A
//! document that names a hub next to a specific entity then walks the specific one's
//! few edges, not the hub's thousands; only two hubs together cost a walk of a hub.
//! The walk still grows with the corpus (every copy of a document adds a `MENTIONS` to
//! each of its entities), which is what the hints take off a pair seen before.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::BuildHasher;

use grafeo::{EdgeId, NodeId};

use super::graph::{engine, lock};
use super::graph_documents::Tx;
use super::graph_values::plus_any;
use crate::store::graph_exec::WeightDelta;
use crate::store::{StoreError, StoreResult};

const RELATED_TO: &str = "RELATED_TO";
const WEIGHT: &str = "weight";

/// A `RELATED_TO` edge from `a` to `b` and its weight.
type Found = (EdgeId, Option<grafeo::Value>);

impl Tx<'_> {
    /// [`crate::store::graph_exec::CypherTx::add_weights`] in the open transaction: the
    /// statement's effect without parsing, planning or a row per pair. Each entity is
    /// looked up once; pairs whose first entity has no more mentions than the second
    /// share one walk of its out-edges, the others each walk the second's in-edges.
    pub(super) fn add_weights_now(&self, pairs: &[WeightDelta]) -> StoreResult<()> {
        let graph = lock(self.hints).graph_key(self.tenant.as_str());
        let mut by_first: BTreeMap<&str, Vec<&WeightDelta>> = BTreeMap::new();
        for p in pairs {
            by_first.entry(p.a.as_str()).or_default().push(p);
        }
        for (a, group) in by_first {
            let Some((a, a_mentions)) = self.entity_mentions(a) else {
                continue;
            };
            let mut from_a = Vec::new();
            for p in group {
                let Some((b, b_mentions)) = self.entity_mentions(p.b.as_str()) else {
                    continue;
                };
                let hinted = lock(self.hints).get(graph, a, b);
                if let Some(found) = hinted.and_then(|edge| self.related(edge, a, b)) {
                    self.add_weight(graph, a, b, p, vec![found])?;
                } else if b_mentions < a_mentions {
                    let found = self
                        .session
                        .get_neighbors_incoming(b)
                        .into_iter()
                        .filter(|&(near, _)| near == a)
                        .filter_map(|(_, edge)| self.related(edge, a, b))
                        .collect();
                    self.add_weight(graph, a, b, p, found)?;
                } else {
                    from_a.push((b, p));
                }
            }
            if from_a.is_empty() {
                continue;
            }
            let wanted: HashSet<NodeId> = from_a.iter().map(|&(b, _)| b).collect();
            let mut found: HashMap<NodeId, Vec<Found>> = HashMap::new();
            for (far, edge) in self.session.get_neighbors_outgoing(a) {
                if wanted.contains(&far)
                    && let Some(edge) = self.related(edge, a, far)
                {
                    found.entry(far).or_default().push(edge);
                }
            }
            for (b, p) in from_a {
                self.add_weight(graph, a, b, p, found.remove(&b).unwrap_or_default())?;
            }
        }
        Ok(())
    }

    /// `edge`, if it is a `RELATED_TO` from `a` to `b` in this transaction's view.
    fn related(&self, edge: EdgeId, a: NodeId, b: NodeId) -> Option<Found> {
        let edge = self.session.get_edge(edge)?;
        (edge.src == a && edge.dst == b && edge.edge_type.as_str() == RELATED_TO)
            .then(|| (edge.id, edge.get_property(WEIGHT).cloned()))
    }

    /// Adds `p.delta` to the `RELATED_TO` edges `edges` from `a` to `b` (creating one
    /// when there is none and the delta is positive); an edge falling to 0 goes. The
    /// hints learn where the pair's edge is, or forget it.
    fn add_weight(
        &self,
        graph: u64,
        a: NodeId,
        b: NodeId,
        p: &WeightDelta,
        edges: Vec<Found>,
    ) -> StoreResult<()> {
        if edges.is_empty() && p.delta > 0 {
            let weight = [(WEIGHT, grafeo::Value::Int64(p.delta))];
            let edge = self
                .session
                .create_edge_with_props(a, b, RELATED_TO, weight)
                .map_err(engine)?;
            lock(self.hints).put(graph, a, b, edge);
        }
        for (edge, weight) in edges {
            let written = match plus(weight, p.delta) {
                Ok(Some(weight)) => {
                    lock(self.hints).put(graph, a, b, edge);
                    self.session.set_edge_property(edge, WEIGHT, weight)
                }
                Ok(None) => {
                    lock(self.hints).forget(graph, a, b);
                    self.session.delete_edge(edge).map(drop)
                }
                Err(other) => {
                    return Err(StoreError::invalid(format!(
                        "RELATED_TO weight {other:?} between {:?} and {:?} is not a number",
                        p.a, p.b
                    )));
                }
            };
            written.map_err(engine)?;
        }
        Ok(())
    }
}

/// Where each entity pair's `RELATED_TO` edge was last written, for every tenant
/// graph: (graph, a, b) → edge. Only a hint: each use reads the edge back in the
/// transaction's view and checks its ends and type, so an entry left stale by a rollback,
/// a delete or a WAL rewrite costs the walk it saves, never a wrong write. (The walk
/// would add the delta to every `RELATED_TO` from `a` to `b`; a hit adds it to the one
/// edge. Writes `MERGE` relationships, so there is never more than one.)
///
/// Bounded: two generations of at most [`PairHints::GENERATION`] entries each; when the
/// newer one fills it becomes the older and the older goes, so a pair used since is
/// kept (it moves up on a hit) and one not used for a generation is dropped.
#[derive(Default)]
pub(super) struct PairHints {
    newer: HashMap<(u64, NodeId, NodeId), EdgeId>,
    older: HashMap<(u64, NodeId, NodeId), EdgeId>,
}

impl PairHints {
    /// Entries per generation: 7/8 of 2^19, the most a table of 2^19 slots of 33 bytes
    /// holds, so a generation takes at most 17 MiB and the hints 35 MiB, however many
    /// pairs and tenants there are.
    const GENERATION: usize = (1 << 19) / 8 * 7;

    /// The key part that keeps tenants' graphs apart (their node ids overlap).
    pub(super) fn graph_key(&self, graph: &str) -> u64 {
        self.newer.hasher().hash_one(graph)
    }

    fn get(&mut self, graph: u64, a: NodeId, b: NodeId) -> Option<EdgeId> {
        let key = (graph, a, b);
        if let Some(&edge) = self.newer.get(&key) {
            return Some(edge);
        }
        let edge = self.older.remove(&key)?;
        self.put(graph, a, b, edge);
        Some(edge)
    }

    fn put(&mut self, graph: u64, a: NodeId, b: NodeId, edge: EdgeId) {
        if self.newer.len() >= Self::GENERATION {
            self.older = std::mem::take(&mut self.newer);
        }
        self.newer.insert((graph, a, b), edge);
    }

    fn forget(&mut self, graph: u64, a: NodeId, b: NodeId) {
        self.newer.remove(&(graph, a, b));
        self.older.remove(&(graph, a, b));
    }

    /// Drops every hint (after a WAL rewrite renumbers the graph).
    pub(super) fn clear(&mut self) {
        self.newer.clear();
        self.older.clear();
    }
}

/// A weight plus `delta` as [`plus_any`], or `None` when the sum is 0 or less (the
/// edge goes).
fn plus(weight: Option<grafeo::Value>, delta: i64) -> Result<Option<grafeo::Value>, grafeo::Value> {
    let sum = plus_any(weight, delta)?;
    let positive = match sum {
        grafeo::Value::Int64(w) => w > 0,
        grafeo::Value::Float64(w) => w > 0.0,
        _ => false,
    };
    Ok(positive.then_some(sum))
}

#[cfg(test)]
mod tests {
    use grafeo::Value::{Float64, Int64, Null};
    use grafeo::{EdgeId, GrafeoDB, NodeId};

    use super::{PairHints, RELATED_TO, WEIGHT, plus, plus_any};

    #[test]
    fn weights_add_like_coalesce_and_fall_away_at_zero() {
        assert_eq!(plus(None, 2), Ok(Some(Int64(2))));
        assert_eq!(plus(Some(Null), 1), Ok(Some(Int64(1))));
        assert_eq!(plus(None, -1), Ok(None));
        assert_eq!(plus(Some(Int64(3)), -1), Ok(Some(Int64(2))));
        assert_eq!(plus(Some(Int64(1)), -1), Ok(None));
        assert_eq!(plus(Some(Float64(1.5)), 1), Ok(Some(Float64(2.5))));
        assert_eq!(plus(Some(Float64(0.5)), -1), Ok(None));
        assert_eq!(plus_any(Some(Int64(1)), -2), Ok(Int64(-1)));
        let text = grafeo::Value::from("heavy");
        assert_eq!(plus(Some(text.clone()), 1), Err(text));
    }

    #[test]
    fn hints_keep_two_generations_and_move_a_used_pair_up() {
        let mut hints = PairHints::default();
        let (g, other) = (hints.graph_key("tenant_a"), hints.graph_key("tenant_b"));
        let pair = |i: usize| (NodeId(i as u64), NodeId(i as u64 + 1));
        let fill = |hints: &mut PairHints, from: usize| {
            for i in from..from + PairHints::GENERATION {
                let (a, b) = pair(i);
                hints.put(g, a, b, EdgeId(i as u64));
            }
        };
        fill(&mut hints, 0);
        fill(&mut hints, PairHints::GENERATION);
        // Pair 0 is in the older generation now; using it keeps it.
        let (a, b) = pair(0);
        assert_eq!(hints.get(g, a, b), Some(EdgeId(0)));
        assert_eq!(hints.get(other, a, b), None, "graphs are kept apart");
        fill(&mut hints, 2 * PairHints::GENERATION);
        assert_eq!(hints.get(g, a, b), Some(EdgeId(0)));
        let (c, d) = pair(1);
        assert_eq!(hints.get(g, c, d), None, "an unused pair goes");
        assert!(hints.newer.len() + hints.older.len() <= 2 * PairHints::GENERATION);
        hints.forget(g, a, b);
        assert_eq!(hints.get(g, a, b), None);
    }

    /// What the hints rely on: an edge made, or a weight set, in a transaction that
    /// rolled back is not there for the next one, so a hint it left fails the check.
    #[test]
    fn a_rolled_back_edge_or_weight_is_not_seen_afterwards() {
        let db = GrafeoDB::new_in_memory();
        let mut session = db.session();
        let a = session.create_node(&["Entity"]).unwrap();
        let b = session.create_node(&["Entity"]).unwrap();
        let kept = session
            .create_edge_with_props(a, b, RELATED_TO, [(WEIGHT, grafeo::Value::Int64(1))])
            .unwrap();
        session.begin_transaction().unwrap();
        let gone = session.create_edge(b, a, RELATED_TO).unwrap();
        session
            .set_edge_property(kept, WEIGHT, grafeo::Value::Int64(5))
            .unwrap();
        session.rollback().unwrap();
        let mut next = db.session();
        next.begin_transaction().unwrap();
        assert!(next.get_edge(gone).is_none());
        let edge = next.get_edge(kept).unwrap();
        assert_eq!(edge.get_property(WEIGHT), Some(&grafeo::Value::Int64(1)));
    }
}
