//! What the embedded graph's document writes have learned of entities and their
//! co-occurrence edges, so that a document's write need not read them back from the
//! engine ([`super::graph_documents`], [`super::graph_weights`]).

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher, Hash};

use grafeo::{EdgeId, NodeId};

/// Each entity's node and `mentions`, and where each entity pair's `RELATED_TO` edge
/// is with its `weight`, as the document writes last left them, for every tenant graph.
///
/// **Trusted or a hint.** Every entry carries the stamp its graph had when it was made.
/// While that stamp is the graph's current one, the document writes, each of which
/// keeps the entries it changes up to date, are the only writes the graph has had
/// since: the entry is what the engine holds, and a document's write uses it as it
/// is. Everything else that may change entities or their edges gives the graph a new
/// stamp ([`Known::restamp`]): a write through the API other than a new node, an
/// import, a statement run inside a document's transaction (it may delete entities),
/// and a document transaction that does not commit (what it wrote here did not
/// happen). An entry with an older stamp is only a hint: a pair's edge is read back
/// in the transaction's view and checked to be a `RELATED_TO` from `a` to `b`, so it
/// costs the walk it saves, never a wrong write; an entity's is not used.
///
/// **Bounded**: two generations each ([`Recent`]).
pub(super) struct Known {
    /// Each graph's current stamp; stamps are never reused, so an entry made under
    /// one is never taken for another graph's or another time's.
    stamps: HashMap<String, u64>,
    last_stamp: u64,
    entities: Recent<(u64, String), Entry<NodeId>>,
    pairs: Recent<(u64, NodeId, NodeId), Entry<EdgeId>>,
}

/// A node or edge and its count (`mentions` or `weight`), as of `stamp`.
#[derive(Clone, Copy)]
struct Entry<Id> {
    id: Id,
    /// [`UNKNOWN`] where the engine holds something else than an integer.
    count: i64,
    stamp: u64,
}

/// The count of an entry whose value must be read from the engine.
const UNKNOWN: i64 = i64::MIN;

/// A pair's edge as [`Known::pair`] finds it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Pair {
    /// The pair's one `RELATED_TO` edge, and its weight.
    Trusted(EdgeId, i64),
    /// Where the pair's edge was: read it back before use.
    Hint(EdgeId),
}

impl Default for Known {
    fn default() -> Self {
        Self {
            stamps: HashMap::new(),
            last_stamp: 0,
            entities: Recent::new(ENTITY_GENERATION),
            pairs: Recent::new(PAIR_GENERATION),
        }
    }
}

/// Entries per generation: 7/8 of a power of two, the most a table of that many slots
/// holds. Pairs: 2^19 slots of 49 bytes, 24.5 MiB a generation. Entities: 2^17 slots of
/// 57 bytes and their ids, about 11 MiB a generation for ids of 30 bytes.
const PAIR_GENERATION: usize = (1 << 19) / 8 * 7;
const ENTITY_GENERATION: usize = (1 << 17) / 8 * 7;

impl Known {
    /// `graph`'s current stamp.
    pub(super) fn stamp(&mut self, graph: &str) -> u64 {
        if let Some(&stamp) = self.stamps.get(graph) {
            return stamp;
        }
        self.last_stamp += 1;
        self.stamps.insert(graph.to_owned(), self.last_stamp);
        self.last_stamp
    }

    /// Gives `graph` a new stamp: nothing learned of it so far is trusted any more.
    pub(super) fn restamp(&mut self, graph: &str) {
        self.last_stamp += 1;
        self.stamps.insert(graph.to_owned(), self.last_stamp);
    }

    /// Entity `id`'s node and mention count ([`None`]: not a plain integer), if
    /// learned under `stamp`.
    pub(super) fn entity(
        &mut self,
        key: u64,
        stamp: u64,
        id: &str,
    ) -> Option<(NodeId, Option<i64>)> {
        let entry = self.entities.get(&(key, id.to_owned()))?;
        (entry.stamp == stamp).then(|| (entry.id, known_count(entry.count)))
    }

    pub(super) fn learn_entity(
        &mut self,
        key: u64,
        stamp: u64,
        id: &str,
        node: NodeId,
        count: Option<i64>,
    ) {
        let entry = Entry {
            id: node,
            count: count.unwrap_or(UNKNOWN),
            stamp,
        };
        self.entities.put((key, id.to_owned()), entry);
    }

    /// Where the pair's edge is: trusted if learned under `stamp` with an integer weight.
    pub(super) fn pair(&mut self, key: u64, stamp: u64, a: NodeId, b: NodeId) -> Option<Pair> {
        let entry = self.pairs.get(&(key, a, b))?;
        Some(match known_count(entry.count) {
            Some(weight) if entry.stamp == stamp => Pair::Trusted(entry.id, weight),
            _ => Pair::Hint(entry.id),
        })
    }

    /// Learns the pair's one edge and its weight under `stamp` (a stamp no graph has,
    /// such as 0, makes it a hint).
    pub(super) fn learn_pair(
        &mut self,
        key: u64,
        stamp: u64,
        (a, b): (NodeId, NodeId),
        edge: EdgeId,
        weight: Option<i64>,
    ) {
        let entry = Entry {
            id: edge,
            count: weight.unwrap_or(UNKNOWN),
            stamp,
        };
        self.pairs.put((key, a, b), entry);
    }

    pub(super) fn forget_pair(&mut self, key: u64, a: NodeId, b: NodeId) {
        self.pairs.remove(&(key, a, b));
    }
}

/// The key part that keeps tenants' graphs apart in [`Known`] (their node ids
/// overlap). Two graphs whose keys collide share hints, which are checked; trust needs
/// the graph's own stamp.
pub(super) fn graph_key(graph: &str) -> u64 {
    BuildHasherDefault::<DefaultHasher>::default().hash_one(graph)
}

fn known_count(count: i64) -> Option<i64> {
    (count != UNKNOWN).then_some(count)
}

/// A map bounded by two generations of at most `generation` entries each: when the
/// newer one fills it becomes the older and the older goes, so an entry used since is
/// kept (it moves up on a hit) and one not used for a generation is dropped.
struct Recent<K, V> {
    generation: usize,
    newer: HashMap<K, V>,
    older: HashMap<K, V>,
}

impl<K: Hash + Eq, V: Copy> Recent<K, V> {
    fn new(generation: usize) -> Self {
        Self {
            generation,
            newer: HashMap::new(),
            older: HashMap::new(),
        }
    }

    fn get(&mut self, key: &K) -> Option<V> {
        if let Some(&value) = self.newer.get(key) {
            return Some(value);
        }
        let (key, value) = self.older.remove_entry(key)?;
        self.put(key, value);
        Some(value)
    }

    fn put(&mut self, key: K, value: V) {
        if self.newer.len() >= self.generation && !self.newer.contains_key(&key) {
            self.older = std::mem::take(&mut self.newer);
        }
        self.newer.insert(key, value);
    }

    fn remove(&mut self, key: &K) {
        self.newer.remove(key);
        self.older.remove(key);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.newer.len() + self.older.len()
    }
}

#[cfg(test)]
mod tests {
    use grafeo::{EdgeId, NodeId};

    use super::{Known, Pair, Recent, graph_key};

    #[test]
    fn recent_keeps_two_generations_and_moves_a_used_entry_up() {
        let mut recent = Recent::new(4);
        for i in 0..8 {
            recent.put(i, i);
        }
        // 0..4 are the older generation now; using 0 keeps it.
        assert_eq!(recent.get(&0), Some(0));
        for i in 8..12 {
            recent.put(i, i);
        }
        assert_eq!(recent.get(&0), Some(0));
        assert_eq!(recent.get(&1), None, "an unused entry goes");
        assert!(recent.len() <= 8);
        recent.put(0, 7);
        assert_eq!(recent.get(&0), Some(7), "a put replaces");
        recent.remove(&0);
        assert_eq!(recent.get(&0), None);
    }

    #[test]
    fn entries_are_trusted_under_their_graphs_stamp_only() {
        let mut known = Known::default();
        let (a, b) = (NodeId(1), NodeId(2));
        let (acme, other) = (graph_key("acme"), graph_key("other"));
        let stamp = known.stamp("acme");
        assert_eq!(known.stamp("acme"), stamp, "a stamp lasts until a restamp");
        known.learn_entity(acme, stamp, "e1", a, Some(3));
        known.learn_entity(acme, stamp, "e2", b, None);
        known.learn_pair(acme, stamp, (a, b), EdgeId(9), Some(5));
        assert_eq!(known.entity(acme, stamp, "e1"), Some((a, Some(3))));
        assert_eq!(known.entity(acme, stamp, "e2"), Some((b, None)));
        assert_eq!(
            known.pair(acme, stamp, a, b),
            Some(Pair::Trusted(EdgeId(9), 5))
        );

        // Another graph's stamp never trusts acme's entries, even under a colliding key.
        let theirs = known.stamp("other");
        assert_ne!(theirs, stamp);
        assert_eq!(known.entity(acme, theirs, "e1"), None);
        assert_eq!(
            known.pair(other, theirs, a, b),
            None,
            "graphs are kept apart"
        );

        // After a restamp an entity is unknown and a pair only a hint.
        known.restamp("acme");
        let now = known.stamp("acme");
        assert_ne!(now, stamp);
        assert_eq!(known.entity(acme, now, "e1"), None);
        assert_eq!(known.pair(acme, now, a, b), Some(Pair::Hint(EdgeId(9))));
        // An edge whose weight is not an integer is a hint even under its stamp.
        known.learn_pair(acme, now, (a, b), EdgeId(9), None);
        assert_eq!(known.pair(acme, now, a, b), Some(Pair::Hint(EdgeId(9))));
        known.forget_pair(acme, a, b);
        assert_eq!(known.pair(acme, now, a, b), None);
    }
}
