//! The embedded graph's co-occurrence weights (`RELATED_TO` between entities that share
//! a chunk), updated through grafeo's direct API inside a document's transaction.
//!
//! grafeo has no lookup of the edge between two nodes. A pair's edge and weight are
//! first taken from what the document writes before [learned](super::graph_known::Known):
//! as they are while nothing else has written the graph since, else as a hint read back
//! and checked. Failing that, the edge is found by walking one end's adjacency: the
//! out-edges of `a` or the in-edges of `b`. An entity's edges grow with its mentions (a
//! `MENTIONS` edge in per chunk, a `RELATED_TO` per entity it shares a chunk with), so
//! the walk starts from the end with fewer mentions. A document that names a hub next to
//! a specific entity then walks the specific one's few edges, not the hub's thousands;
//! only two hubs together cost a walk of a hub. The walk still grows with the corpus
//! (every copy of a document adds a `MENTIONS` to each of its entities), which what was
//! learned spares a pair seen before.

use std::collections::{BTreeMap, HashMap, HashSet};

use grafeo::{EdgeId, NodeId};

use super::graph::engine;
use super::graph_documents::Tx;
use super::graph_known::Pair;
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
    /// looked up once; a pair whose edge is not known either shares one walk of its
    /// first entity's out-edges with the other pairs of that entity, when the first
    /// has no more mentions than the second, or walks the second's in-edges.
    pub(super) fn add_weights_now(&self, pairs: &[WeightDelta]) -> StoreResult<()> {
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
                let known = match self.known_pair(a, b) {
                    Some(Pair::Trusted(edge, weight)) => {
                        Some((edge, Some(grafeo::Value::Int64(weight))))
                    }
                    Some(Pair::Hint(edge)) => self.related(edge, a, b),
                    None => None,
                };
                if let Some(found) = known {
                    self.add_weight(a, b, p, vec![found])?;
                } else if b_mentions < a_mentions {
                    let found = self
                        .session
                        .get_neighbors_incoming(b)
                        .into_iter()
                        .filter(|&(near, _)| near == a)
                        .filter_map(|(_, edge)| self.related(edge, a, b))
                        .collect();
                    self.add_weight(a, b, p, found)?;
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
                self.add_weight(a, b, p, found.remove(&b).unwrap_or_default())?;
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
    /// when there is none and the delta is positive); an edge falling to 0 goes. What
    /// was learned of the pair follows.
    fn add_weight(
        &self,
        a: NodeId,
        b: NodeId,
        p: &WeightDelta,
        edges: Vec<Found>,
    ) -> StoreResult<()> {
        if edges.is_empty() && p.delta > 0 {
            let weight = grafeo::Value::Int64(p.delta);
            let edge = self
                .session
                .create_edge_with_props(a, b, RELATED_TO, [(WEIGHT, weight.clone())])
                .map_err(engine)?;
            self.learn_pair(a, b, edge, &weight);
        }
        for (edge, weight) in edges {
            match plus(weight, p.delta) {
                Ok(Some(weight)) => {
                    self.session
                        .set_edge_property(edge, WEIGHT, weight.clone())
                        .map_err(engine)?;
                    self.learn_pair(a, b, edge, &weight);
                }
                Ok(None) => {
                    self.known().forget_pair(self.key, a, b);
                    self.session.delete_edge(edge).map_err(engine)?;
                }
                Err(other) => {
                    return Err(StoreError::invalid(format!(
                        "RELATED_TO weight {other:?} between {:?} and {:?} is not a number",
                        p.a, p.b
                    )));
                }
            }
        }
        Ok(())
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
    use grafeo::GrafeoDB;
    use grafeo::Value::{Float64, Int64, Null};

    use super::{RELATED_TO, WEIGHT, plus, plus_any};

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
