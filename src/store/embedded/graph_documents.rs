//! The embedded graph's side of the shared graph work: a grafeo session as a
//! [`CypherTx`], so [`crate::store::graph_exec`] (document replacement in one grafeo
//! transaction, neighbour expansion) runs here too, and the entity/chunk lookups hybrid
//! retrieval walks.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use futures_util::FutureExt;
use grafeo::database::BatchEdge;
use grafeo::{NodeId, Session};
use serde_json::Value;

use super::graph::{Inner, engine, params};
use super::graph_known::{Known, graph_key};
use super::graph_values::{plus_any, to_grafeo, to_json};
use crate::domain::graph::{
    ID_PROPERTY, Neighbor, NeighborQuery, Node, NodeUpsert, RelationshipUpsert, TENANT_PROPERTY,
    Written,
};
use crate::domain::ingest::{DocumentGraph, document_node_id};
use crate::domain::principal::Tenant;
use crate::store::graph_exec::{self as shared, CypherTx, Rows, WeightDelta, list};
use crate::store::{StoreError, StoreResult};

/// An entity's node and its mention count (`None`: not an integer).
pub(super) type Counted = (NodeId, Option<i64>);

/// Runs statements on the tenant's graph (in a transaction once one is begun).
pub(super) struct Tx<'a> {
    pub(super) session: Session,
    pub(super) tenant: &'a Tenant,
    /// Entity nodes looked up or created through the direct API, with their mention
    /// counts (`None`: not an integer), so a document's weights and mention counts do
    /// not look its entities up again. Any statement may delete nodes, so running one
    /// empties it.
    pub(super) entities: RefCell<HashMap<String, Option<Counted>>>,
    /// What document writes learned of entities and pairs ([`Inner::known`]), this
    /// tenant graph's key in it, and the stamp under which this transaction trusts and
    /// learns: a document's transaction until it runs a statement. Without one, pairs
    /// are only hints and nothing is learned of entities.
    pub(super) known: &'a Mutex<Known>,
    pub(super) key: u64,
    pub(super) stamp: Cell<Option<u64>>,
}

impl Tx<'_> {
    /// Runs `statement`; grafeo answers in `RETURN` order, which `columns` names.
    fn run_now(
        &self,
        statement: &str,
        columns: &[&str],
        pairs: Vec<(&'static str, Value)>,
    ) -> StoreResult<Rows> {
        self.entities.borrow_mut().clear();
        if self.stamp.take().is_some() {
            self.known().restamp(self.tenant.as_str());
        }
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

    /// A new node's identity properties and `props` (a null is no property, as in
    /// `SET n += $props`).
    fn create(
        &self,
        labels: &[&str],
        id: &str,
        props: impl IntoIterator<Item = (String, grafeo::Value)>,
    ) -> StoreResult<NodeId> {
        let identity = [
            (ID_PROPERTY.to_owned(), grafeo::Value::from(id)),
            (
                TENANT_PROPERTY.to_owned(),
                grafeo::Value::from(self.tenant.as_str()),
            ),
        ];
        let props = props
            .into_iter()
            .filter(|(_, v)| !matches!(v, grafeo::Value::Null));
        self.session
            .create_node_with_props(labels, identity.into_iter().chain(props))
            .map_err(engine)
    }

    /// [`CypherTx::create_node`] through the direct API (no statement to parse and
    /// plan), read back as the statement's `RETURN` would show it.
    fn create_node_now(&self, node: &NodeUpsert) -> StoreResult<Node> {
        let labels: Vec<&str> = node.labels.iter().map(String::as_str).collect();
        let props = node
            .properties
            .iter()
            .map(|(k, v)| (k.clone(), to_grafeo(v)));
        let created = self.create(&labels, &node.id, props)?;
        let stored = self.session.get_node(created);
        // As `RETURN n.id, labels(n), properties(n)` shows it.
        let shown = stored.and_then(|n| {
            let labels = n.labels.iter().map(|l| Value::from(l.as_str())).collect();
            let props = n
                .properties_as_btree()
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), to_json(v)))
                .collect();
            shared::node_from_values(
                &Value::from(node.id.as_str()),
                &Value::Array(labels),
                &Value::Object(props),
            )
        });
        shown.ok_or_else(|| StoreError::internal("node write returned no node"))
    }

    /// [`CypherTx::write_document`] through the direct API: each entity looked up once,
    /// the chunks and entities created without statements, and every `PART_OF` and
    /// `MENTIONS` link in one batch.
    fn write_document_now(&self, doc: &DocumentGraph, existed: bool) -> StoreResult<()> {
        let doc_node = self.write_document_node(doc, existed)?;
        // An entity's name as the statements would write it: the last one given.
        let names: HashMap<&str, &str> = doc
            .chunks
            .iter()
            .flat_map(|c| &c.entities)
            .map(|e| (e.id.as_str(), e.name.as_str()))
            .collect();
        let mut edges = Vec::new();
        let link = |src, dst, edge_type: &str| BatchEdge {
            src,
            dst,
            edge_type: edge_type.to_owned(),
            properties: HashMap::new(),
        };
        let text = |s: &str| grafeo::Value::from(s);
        for c in &doc.chunks {
            let props = [
                ("doc_id".to_owned(), text(&doc.doc_id)),
                ("index".to_owned(), grafeo::Value::Int64(c.index as i64)),
                ("collection".to_owned(), text(&doc.collection)),
            ];
            let chunk = self.create(&[CHUNK], &c.id, props)?;
            edges.push(link(chunk, doc_node, PART_OF));
            for e in &c.entities {
                let entity = match self.entity(&e.id) {
                    Some(node) => node,
                    None => {
                        let name = ("name".to_owned(), text(names[e.id.as_str()]));
                        let node = self.create(&[ENTITY], &e.id, [name])?;
                        self.learn_entity(&e.id, node, Some(0));
                        node
                    }
                };
                edges.push(link(chunk, entity, MENTIONS));
            }
        }
        if !edges.is_empty() {
            self.session.batch_create_edges(edges).map_err(engine)?;
        }
        Ok(())
    }

    /// The document node with `doc`'s properties: created, or (`existed`) labelled
    /// `Document` and its properties merged in as `SET n += $props` would.
    fn write_document_node(&self, doc: &DocumentGraph, existed: bool) -> StoreResult<NodeId> {
        let doc_node_id = document_node_id(&doc.doc_id);
        let props: Vec<(String, grafeo::Value)> = shared::document_properties(doc)
            .into_iter()
            .map(|(k, v)| (k, to_grafeo(&v)))
            .collect();
        if !existed {
            return self.create(&[DOCUMENT], &doc_node_id, props);
        }
        let node = self.find(None, &doc_node_id).ok_or_else(|| {
            StoreError::internal(format!("document node {doc_node_id:?} went missing"))
        })?;
        self.session
            .add_node_label(node, DOCUMENT)
            .map_err(engine)?;
        for (key, value) in props {
            match value {
                grafeo::Value::Null => self.session.remove_node_property(node, &key).map(drop),
                value => self.session.set_node_property(node, &key, value),
            }
            .map_err(engine)?;
        }
        Ok(node)
    }

    /// [`CypherTx::add_mention_counts`] through the direct API.
    fn add_mention_counts_now(&self, counts: &[(String, i64)]) -> StoreResult<()> {
        for (id, delta) in counts {
            let Some((node, count)) = self.entity_count(id) else {
                continue;
            };
            let stored = match count {
                Some(count) => Some(grafeo::Value::Int64(count)),
                None => self
                    .session
                    .get_node(node)
                    .and_then(|n| n.get_property(MENTIONS_PROPERTY).cloned()),
            };
            let count = plus_any(stored, *delta).map_err(|other| {
                StoreError::invalid(format!("entity {id:?}: mentions {other:?} is not a number"))
            })?;
            let learned = count.as_int64();
            self.session
                .set_node_property(node, MENTIONS_PROPERTY, count)
                .map_err(engine)?;
            self.learn_entity(id, node, learned);
        }
        Ok(())
    }
}

const DOCUMENT: &str = "Document";
pub(super) const ENTITY: &str = "Entity";
pub(super) const CHUNK: &str = "Chunk";
pub(super) const MENTIONS: &str = "MENTIONS";
const PART_OF: &str = "PART_OF";
pub(super) const MENTIONS_PROPERTY: &str = "mentions";

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

    async fn node_exists(&mut self, id: &str) -> StoreResult<bool> {
        Ok(self.find(None, id).is_some())
    }

    async fn create_node(&mut self, node: &NodeUpsert) -> StoreResult<Node> {
        self.create_node_now(node)
    }

    async fn write_document(&mut self, doc: &DocumentGraph, existed: bool) -> StoreResult<()> {
        self.write_document_now(doc, existed)
    }

    async fn add_mention_counts(&mut self, counts: Vec<(String, i64)>) -> StoreResult<()> {
        self.add_mention_counts_now(&counts)
    }

    async fn still_mentioned(&mut self, ids: Vec<String>) -> StoreResult<BTreeSet<String>> {
        Ok(ids.into_iter().filter(|id| self.mentioned(id)).collect())
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
    /// A transaction that neither trusts nor teaches [`Inner::known`].
    fn tx<'a>(&'a self, tenant: &'a Tenant) -> StoreResult<Tx<'a>> {
        Ok(Tx {
            session: self.session(tenant)?,
            tenant,
            entities: RefCell::default(),
            known: &self.known,
            key: graph_key(tenant.as_str()),
            stamp: Cell::new(None),
        })
    }

    /// A document's transaction: it trusts and keeps up to date what document writes
    /// learned ([`Known`]). Call as the tenant's writer.
    fn document_tx<'a>(&'a self, tenant: &'a Tenant) -> StoreResult<Tx<'a>> {
        let tx = self.tx(tenant)?;
        tx.stamp.set(Some(tx.known().stamp(tenant.as_str())));
        Ok(tx)
    }

    /// The shared node and relationship writes; callers hold the writer lock.
    pub(super) fn upsert_node(
        &self,
        tenant: &Tenant,
        node: &NodeUpsert,
    ) -> StoreResult<(Node, Written)> {
        let created = |(_, written): &(Node, Written)| matches!(written, Written::Created);
        self.unlearning(tenant, created, || {
            now(shared::upsert_node(&mut self.tx(tenant)?, node))
        })
    }

    pub(super) fn delete_node(&self, tenant: &Tenant, id: &str) -> StoreResult<()> {
        self.unlearning(
            tenant,
            |_| false,
            || now(shared::delete_node(&mut self.tx(tenant)?, id)),
        )
    }

    pub(super) fn upsert_relationship(
        &self,
        tenant: &Tenant,
        rel: &RelationshipUpsert,
    ) -> StoreResult<Written> {
        self.unlearning(
            tenant,
            |_| false,
            || now(shared::upsert_relationship(&mut self.tx(tenant)?, rel)),
        )
    }

    pub(super) fn has_relationship(
        &self,
        tenant: &Tenant,
        from: &str,
        to: &str,
        rel_type: &str,
    ) -> StoreResult<bool> {
        now(shared::relationship_exists(
            &mut self.tx(tenant)?,
            from,
            to,
            rel_type,
        ))
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
        parse(&self.read_rows(tenant, statement, columns, vec![("ids", list(ids))])?)
    }

    /// One statement's rows, read by `columns`.
    pub(super) fn read_rows(
        &self,
        tenant: &Tenant,
        statement: &str,
        columns: &[&str],
        params: Vec<(&'static str, Value)>,
    ) -> StoreResult<Rows> {
        self.tx(tenant)?.run_now(statement, columns, params)
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
                let tx = inner.document_tx(tenant)?;
                inner.in_transaction(tx, |tx| now(shared::apply(tx, &doc.doc_id, Some(doc))))
            })?;
            last = Some(ticket);
        }
        last.map_or(Ok(()), |ticket| self.sync_to(ticket))
    }

    /// Removes document `doc_id`; returns whether its node existed.
    pub(super) fn remove_document(&self, tenant: &Tenant, doc_id: &str) -> StoreResult<bool> {
        let (existed, ticket) = self.locked(tenant, |inner| {
            let tx = inner.document_tx(tenant)?;
            inner.in_transaction(tx, |tx| now(shared::apply(tx, doc_id, None)))
        })?;
        self.sync_to(ticket)?;
        Ok(existed)
    }

    /// [`shared::export::import`] in one transaction; call as the tenant's writer.
    pub(super) fn import(
        &self,
        tenant: &Tenant,
        nodes: &[NodeUpsert],
        relationships: &[RelationshipUpsert],
    ) -> StoreResult<()> {
        // Not a document's transaction: the graph gets a new stamp.
        self.in_transaction(self.tx(tenant)?, |tx| {
            now(shared::export::import(tx, nodes, relationships))
        })
    }

    /// `tx` as one transaction, rolled back on error. Call as the tenant's writer
    /// ([`Inner::locked`]). What a document's transaction taught [`Inner::known`] stays
    /// trusted only if it commits.
    fn in_transaction<T>(
        &self,
        mut tx: Tx<'_>,
        work: impl FnOnce(&mut Tx<'_>) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let tenant = tx.tenant;
        let learning = tx.stamp.get().is_some();
        self.unlearning(
            tenant,
            |_| learning,
            move || {
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
            },
        )
    }
}
