//! How a transaction on the embedded graph finds nodes and entities: through the `id`
//! index as the statements would, from what document writes learned
//! ([`super::graph_known`]), and whether a chunk still mentions an entity.

use grafeo::NodeId;

use super::graph_documents::{CHUNK, Counted, ENTITY, MENTIONS, MENTIONS_PROPERTY, Tx};
use crate::domain::graph::{ID_PROPERTY, TENANT_PROPERTY};

impl Tx<'_> {
    /// The node with `id` in this tenant's graph, labelled `label` if one is given, as
    /// the statements' `MATCH (:Label {id, tenant})` (or `MATCH (n {id, tenant})`)
    /// finds it through the `id` index, in this transaction's view.
    pub(super) fn find(&self, label: Option<&str>, id: &str) -> Option<NodeId> {
        self.find_reading(label, id, None).map(|(n, _)| n)
    }

    /// [`Tx::find`], reading the node's `property` as well when one is named.
    fn find_reading(
        &self,
        label: Option<&str>,
        id: &str,
        property: Option<&str>,
    ) -> Option<(NodeId, Option<grafeo::Value>)> {
        let tenant = grafeo::Value::from(self.tenant.as_str());
        self.session
            .find_nodes_by_property(ID_PROPERTY, &grafeo::Value::from(id))
            .into_iter()
            .find_map(|n| {
                let node = self.session.get_node(n)?;
                (label.is_none_or(|l| node.has_label(l))
                    && node.get_property(TENANT_PROPERTY) == Some(&tenant))
                .then(|| (n, property.and_then(|p| node.get_property(p).cloned())))
            })
    }

    /// Entity `id`'s node, looked up once per transaction.
    pub(super) fn entity(&self, id: &str) -> Option<NodeId> {
        self.entity_mentions(id).map(|(node, _)| node)
    }

    /// Entity `id`'s node and its mention count (a count that is not an integer
    /// counts as 0).
    pub(super) fn entity_mentions(&self, id: &str) -> Option<(NodeId, i64)> {
        self.entity_count(id)
            .map(|(node, count)| (node, count.unwrap_or(0)))
    }

    /// Entity `id`'s node and its mention count in this transaction's view (`None`: not
    /// an integer; no property counts as 0): from this transaction's lookups, from what
    /// document writes learned, or looked up.
    pub(super) fn entity_count(&self, id: &str) -> Option<Counted> {
        if let Some(&found) = self.entities.borrow().get(id) {
            return found;
        }
        let stamp = self.stamp.get();
        let learned = stamp.and_then(|stamp| self.known().entity(self.key, stamp, id));
        let found = learned.or_else(|| {
            let (node, mentions) = self.find_reading(Some(ENTITY), id, Some(MENTIONS_PROPERTY))?;
            let count = match mentions {
                None | Some(grafeo::Value::Null) => Some(0),
                Some(other) => other.as_int64(),
            };
            self.learn_entity(id, node, count);
            Some((node, count))
        });
        self.entities.borrow_mut().insert(id.to_owned(), found);
        found
    }

    /// Whether a `Chunk` still `MENTIONS` entity `id` in this transaction's view, as
    /// the statement of [`crate::store::graph_exec::CypherTx::still_mentioned`] finds
    /// it. The statement reads every chunk that mentions the entity, building each to
    /// test its label, so a replaced document that dropped a hub walked the hub's
    /// thousands of mentions; this stops at the first.
    pub(super) fn mentioned(&self, id: &str) -> bool {
        let Some(entity) = self.entity(id) else {
            return false;
        };
        // The adjacency lists every edge, deleted ones too: the reads check that it is
        // there for this transaction (the document's old chunks went in it). Newest
        // first: the oldest mentions are the likeliest to have gone with their chunks.
        let linked = |edge| {
            self.session
                .get_edge(edge)
                .is_some_and(|e| e.edge_type.as_str() == MENTIONS)
        };
        let chunk = |node| {
            self.session
                .get_node(node)
                .is_some_and(|n| n.has_label(CHUNK))
        };
        self.session
            .get_neighbors_incoming(entity)
            .into_iter()
            .rev()
            .any(|(near, edge)| linked(edge) && chunk(near))
    }
}
