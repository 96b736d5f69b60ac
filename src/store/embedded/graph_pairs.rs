//! Where the embedded graph's co-occurrence edges are, so that a document's weights
//! find a pair's edge without walking an adjacency list ([`super::graph_weights`]).

use std::collections::HashMap;
use std::hash::BuildHasher;

use grafeo::{EdgeId, NodeId};

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

    pub(super) fn get(&mut self, graph: u64, a: NodeId, b: NodeId) -> Option<EdgeId> {
        let key = (graph, a, b);
        if let Some(&edge) = self.newer.get(&key) {
            return Some(edge);
        }
        let edge = self.older.remove(&key)?;
        self.put(graph, a, b, edge);
        Some(edge)
    }

    pub(super) fn put(&mut self, graph: u64, a: NodeId, b: NodeId, edge: EdgeId) {
        if self.newer.len() >= Self::GENERATION {
            self.older = std::mem::take(&mut self.newer);
        }
        self.newer.insert((graph, a, b), edge);
    }

    pub(super) fn forget(&mut self, graph: u64, a: NodeId, b: NodeId) {
        self.newer.remove(&(graph, a, b));
        self.older.remove(&(graph, a, b));
    }

    /// Drops every hint, when a WAL rewrite hands the graph to a new engine.
    pub(super) fn clear(&mut self) {
        self.newer.clear();
        self.older.clear();
    }
}

#[cfg(test)]
mod tests {
    use grafeo::{EdgeId, NodeId};

    use super::PairHints;

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
}
