//! The embedded graph's side of the shared graph work: a grafeo session as a
//! [`CypherTx`], so [`crate::store::graph_exec`] (document replacement in one grafeo
//! transaction, neighbour expansion) runs here too, and the entity/chunk lookups hybrid
//! retrieval walks.

use std::collections::HashMap;

use async_trait::async_trait;
use futures_util::FutureExt;
use grafeo::database::BatchEdge;
use grafeo::{EdgeId, NodeId, Session};
use serde_json::Value;

use super::graph::{Inner, engine, params};
use super::graph_values::{to_grafeo, to_json};
use crate::domain::graph::{
    ID_PROPERTY, Neighbor, NeighborQuery, Node, NodeUpsert, RelationshipUpsert, TENANT_PROPERTY,
    Written,
};
use crate::domain::ingest::{ChunkLink, DocumentGraph};
use crate::domain::principal::Tenant;
use crate::store::graph_exec::{self as shared, CypherTx, Rows, WeightDelta, list};
use crate::store::{StoreError, StoreResult};

/// Runs statements on the tenant's graph (in a transaction once one is begun).
struct Tx<'a> {
    session: Session,
    tenant: &'a Tenant,
}

impl Tx<'_> {
    /// Runs `statement`; grafeo answers in `RETURN` order, which `columns` names.
    fn run_now(
        &self,
        statement: &str,
        columns: &[&str],
        pairs: Vec<(&'static str, Value)>,
    ) -> StoreResult<Rows> {
        let pairs = pairs.into_iter().map(|(k, v)| (k, to_grafeo(&v)));
        let result = self
            .session
            .execute_cypher_with_params(statement, params(self.tenant, pairs))
            .map_err(engine)?;
        let values = result
            .rows()
            .iter()
            .map(|r| r.iter().map(to_json).collect())
            .collect();
        Rows::new(columns, values)
    }

    /// [`CypherTx::add_weights`] through grafeo's direct API, in the open transaction:
    /// the statement's effect without parsing, planning or a row per pair. Each entity
    /// is looked up once (not twice per pair), and an existing edge is searched for
    /// among the out-edges of `a` or the in-edges of `b`, whichever list is shorter,
    /// so a hub on either end costs no more than its partner's degree.
    fn add_weights_now(&self, pairs: &[WeightDelta]) -> StoreResult<()> {
        let mut entities: HashMap<&str, Option<Entity>> = HashMap::new();
        for p in pairs {
            let a = *entities.entry(&p.a).or_insert_with(|| self.entity(&p.a));
            let b = *entities.entry(&p.b).or_insert_with(|| self.entity(&p.b));
            let (Some(a), Some(b)) = (a, b) else {
                continue;
            };
            let edges = self.related(a, b);
            if edges.is_empty() && p.delta > 0 {
                let weight = [(WEIGHT, grafeo::Value::Int64(p.delta))];
                self.session
                    .create_edge_with_props(a.node, b.node, RELATED_TO, weight)
                    .map_err(engine)?;
            }
            for (edge, weight) in edges {
                let written = match plus(weight, p.delta) {
                    Ok(Some(weight)) => self.session.set_edge_property(edge, WEIGHT, weight),
                    Ok(None) => self.session.delete_edge(edge).map(drop),
                    Err(other) => {
                        return Err(StoreError::invalid(format!(
                            "RELATED_TO weight {other:?} between {:?} and {:?} is not a number",
                            p.a, p.b
                        )));
                    }
                };
                written.map_err(engine)?;
            }
        }
        Ok(())
    }

    /// The node labelled `label` with `id` in this tenant's graph, as the statements'
    /// `MATCH (:Label {id, tenant})` finds it (through the `id` index), in this
    /// transaction's view.
    fn find(&self, label: &str, id: &str) -> Option<NodeId> {
        let tenant = grafeo::Value::from(self.tenant.as_str());
        self.session
            .find_nodes_by_property(ID_PROPERTY, &grafeo::Value::from(id))
            .into_iter()
            .find(|&n| {
                self.session.get_node(n).is_some_and(|node| {
                    node.has_label(label) && node.get_property(TENANT_PROPERTY) == Some(&tenant)
                })
            })
    }

    /// Entity `id` with its degrees, for [`Tx::related`].
    fn entity(&self, id: &str) -> Option<Entity> {
        let node = self.find(ENTITY, id)?;
        let (out, into) = self.session.get_degree(node);
        Some(Entity { node, out, into })
    }

    /// [`CypherTx::create_mentions`] through the direct API: each chunk and entity
    /// looked up once, the links created in one batch.
    fn create_mentions_now(&self, links: &[ChunkLink]) -> StoreResult<()> {
        let mut nodes: HashMap<(&str, &str), Option<NodeId>> = HashMap::new();
        let mut edges = Vec::with_capacity(links.len());
        for l in links {
            let chunk = *nodes
                .entry((CHUNK, &l.chunk))
                .or_insert_with(|| self.find(CHUNK, &l.chunk));
            let entity = *nodes
                .entry((ENTITY, &l.entity))
                .or_insert_with(|| self.find(ENTITY, &l.entity));
            if let (Some(src), Some(dst)) = (chunk, entity) {
                edges.push(BatchEdge {
                    src,
                    dst,
                    edge_type: MENTIONS.to_owned(),
                    properties: HashMap::new(),
                });
            }
        }
        if !edges.is_empty() {
            self.session.batch_create_edges(edges).map_err(engine)?;
        }
        Ok(())
    }

    /// [`CypherTx::add_mention_counts`] through the direct API.
    fn add_mention_counts_now(&self, counts: &[(String, i64)]) -> StoreResult<()> {
        for (id, delta) in counts {
            let Some(node) = self.find(ENTITY, id) else {
                continue;
            };
            let stored = self
                .session
                .get_node(node)
                .and_then(|n| n.get_property(MENTIONS_PROPERTY).cloned());
            let count = plus_any(stored, *delta).map_err(|other| {
                StoreError::invalid(format!("entity {id:?}: mentions {other:?} is not a number"))
            })?;
            self.session
                .set_node_property(node, MENTIONS_PROPERTY, count)
                .map_err(engine)?;
        }
        Ok(())
    }

    /// The `RELATED_TO` edges from `a` to `b` visible to this transaction, with their
    /// weights.
    fn related(&self, a: Entity, b: Entity) -> Vec<(EdgeId, Option<grafeo::Value>)> {
        let (candidates, far) = if a.out <= b.into {
            (self.session.get_neighbors_outgoing(a.node), b.node)
        } else {
            (self.session.get_neighbors_incoming(b.node), a.node)
        };
        candidates
            .into_iter()
            .filter(|&(node, _)| node == far)
            .filter_map(|(_, edge)| self.session.get_edge(edge))
            .filter(|edge| {
                edge.src == a.node && edge.dst == b.node && edge.edge_type.as_str() == RELATED_TO
            })
            .map(|edge| (edge.id, edge.get_property(WEIGHT).cloned()))
            .collect()
    }
}

/// An entity node and its degrees when first looked up (they only pick which side's
/// edge list to scan, so they need not follow the writes that come after).
#[derive(Clone, Copy)]
struct Entity {
    node: NodeId,
    out: usize,
    into: usize,
}

/// `coalesce(value, 0) + delta`; `Err(value)` when the stored value is not a number.
fn plus_any(value: Option<grafeo::Value>, delta: i64) -> Result<grafeo::Value, grafeo::Value> {
    use grafeo::Value::{Float64, Int64, Null};
    Ok(match value {
        None | Some(Null) => Int64(delta),
        Some(Int64(w)) => Int64(w.saturating_add(delta)),
        Some(Float64(w)) => Float64(w + delta as f64),
        Some(other) => return Err(other),
    })
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

const ENTITY: &str = "Entity";
const CHUNK: &str = "Chunk";
const MENTIONS: &str = "MENTIONS";
const MENTIONS_PROPERTY: &str = "mentions";
const RELATED_TO: &str = "RELATED_TO";
const WEIGHT: &str = "weight";

#[async_trait]
impl CypherTx for Tx<'_> {
    async fn run(
        &mut self,
        statement: &str,
        columns: &[&str],
        params: Vec<(&'static str, Value)>,
    ) -> StoreResult<Rows> {
        self.run_now(statement, columns, params)
    }

    async fn add_weights(&mut self, pairs: Vec<WeightDelta>) -> StoreResult<()> {
        self.add_weights_now(&pairs)
    }

    async fn create_mentions(&mut self, links: Vec<ChunkLink>) -> StoreResult<()> {
        self.create_mentions_now(&links)
    }

    async fn add_mention_counts(&mut self, counts: Vec<(String, i64)>) -> StoreResult<()> {
        self.add_mention_counts_now(&counts)
    }
}

/// The shared sequencing never waits on anything but the embedded engine, which
/// answers synchronously: its future completes on the first poll.
fn now<T>(work: impl std::future::Future<Output = StoreResult<T>>) -> StoreResult<T> {
    work.now_or_never().unwrap_or_else(|| {
        Err(StoreError::internal(
            "embedded graph work did not complete synchronously",
        ))
    })
}

impl Inner {
    fn tx<'a>(&self, tenant: &'a Tenant) -> StoreResult<Tx<'a>> {
        Ok(Tx {
            session: self.session(tenant)?,
            tenant,
        })
    }

    /// The shared node and relationship writes; callers hold the writer lock.
    pub(super) fn upsert_node(
        &self,
        tenant: &Tenant,
        node: &NodeUpsert,
    ) -> StoreResult<(Node, Written)> {
        now(shared::upsert_node(&mut self.tx(tenant)?, node))
    }

    pub(super) fn delete_node(&self, tenant: &Tenant, id: &str) -> StoreResult<()> {
        now(shared::delete_node(&mut self.tx(tenant)?, id))
    }

    pub(super) fn upsert_relationship(
        &self,
        tenant: &Tenant,
        rel: &RelationshipUpsert,
    ) -> StoreResult<Written> {
        now(shared::upsert_relationship(&mut self.tx(tenant)?, rel))
    }

    /// The shared breadth-first expansion on the tenant's graph.
    pub(super) fn expand(
        &self,
        tenant: &Tenant,
        query: &NeighborQuery,
    ) -> StoreResult<Vec<Neighbor>> {
        now(shared::expand(&mut self.tx(tenant)?, query))
    }

    /// Runs the read-only document `statement` over `$ids` without a transaction and
    /// parses its rows (`columns`, in `RETURN` order) with `parse`.
    pub(super) fn read_by_ids<T>(
        &self,
        tenant: &Tenant,
        statement: &str,
        columns: &[&str],
        ids: Vec<String>,
        parse: fn(&Rows) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let rows = self
            .tx(tenant)?
            .run_now(statement, columns, vec![("ids", list(ids))])?;
        parse(&rows)
    }

    /// Replaces every document in `docs`, each in its own transaction, so a write from
    /// the API waits for at most one document; one WAL sync covers them all.
    pub(super) fn write_documents(
        &self,
        tenant: &Tenant,
        docs: &[DocumentGraph],
    ) -> StoreResult<()> {
        let mut last = None;
        for doc in docs {
            let (_, ticket) = self.locked(tenant, |inner| {
                inner.in_transaction(tenant, |tx| now(shared::apply(tx, &doc.doc_id, Some(doc))))
            })?;
            last = Some(ticket);
        }
        last.map_or(Ok(()), |ticket| self.sync_to(ticket))
    }

    /// Removes document `doc_id`; returns whether its node existed.
    pub(super) fn remove_document(&self, tenant: &Tenant, doc_id: &str) -> StoreResult<bool> {
        let (existed, ticket) = self.locked(tenant, |inner| {
            inner.in_transaction(tenant, |tx| now(shared::apply(tx, doc_id, None)))
        })?;
        self.sync_to(ticket)?;
        Ok(existed)
    }

    /// One transaction, rolled back on error. Call as the tenant's writer
    /// ([`Inner::locked`]).
    fn in_transaction<T>(
        &self,
        tenant: &Tenant,
        work: impl FnOnce(&mut Tx<'_>) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let mut tx = self.tx(tenant)?;
        tx.session.begin_transaction().map_err(engine)?;
        match work(&mut tx) {
            Ok(out) => {
                tx.session.commit().map_err(engine)?;
                Ok(out)
            }
            Err(e) => {
                let _ = tx.session.rollback();
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use grafeo::Value::{Float64, Int64, Null};

    use super::{plus, plus_any};

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
}
