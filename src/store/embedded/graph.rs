//! Embedded [`GraphStore`] on `grafeo`, persisted with its write-ahead log under
//! `<data_dir>/graph`.
//!
//! Each tenant lives in its own named graph, so even client Cypher cannot reach another
//! tenant's nodes; every node also carries a `tenant` property and every statement
//! matches on it, so the same Cypher runs unchanged on a Neo4j server.
//!
//! Writes are serialised per tenant graph (MERGE is then race-free and grafeo's MVCC
//! conflicts cannot occur) and tenants write in parallel. Commits do not sync the WAL
//! (`DurabilityMode::NoSync`: grafeo still hands each commit to the OS); a write is
//! acknowledged after a group-committed sync that began after its commit returned, so
//! concurrent writers of every tenant share one fsync.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use async_trait::async_trait;
use grafeo::{GrafeoDB, QueryResult, Session, Value};

use super::cypher_sandbox::{self, Forkable, Forker, SandboxLimits};
use super::graph_known::Known;
pub(super) use super::graph_values::engine;
use super::graph_values::{node_from_row, to_grafeo};
use super::graph_wal::WalBound;
pub(super) use super::lock;
use super::space::Space;
use crate::domain::graph::{
    CypherQuery, CypherResult, FindNodes, Neighbor, NeighborQuery, Node, NodeUpsert, Relationship,
    RelationshipUpsert, Written,
};
use crate::domain::ingest::{
    ChunkLink, DocId, DocumentExtent, DocumentGraph, EntityId, EntityRef, Mention, Related,
    document_node_id,
};
use crate::domain::principal::Tenant;
use crate::store::client_cypher::{self, QuerySlots};
use crate::store::cypher::{self, documents as q};
use crate::store::graph_exec as shared;
use crate::store::{GraphSize, GraphStore, StoreError, StoreResult, blocking};

pub(super) struct Inner {
    /// The engine; replaced (under the gate, held exclusively) when its log is
    /// compacted, so it is read through [`Inner::db`] under the gate.
    pub(super) engine: RwLock<Arc<GrafeoDB>>,
    pub(super) wal: WalBound,
    /// Named graphs known to exist, to skip the catalog lookup on the hot path. Held
    /// while a graph is created, so a fork never sees a half-made one.
    pub(super) graphs: Mutex<HashSet<String>>,
    /// One writer per tenant graph at a time; see the module docs.
    pub(super) writers: Mutex<HashMap<Tenant, Arc<Mutex<()>>>>,
    /// Commits made so far, and (under the lock) how many of them a WAL sync covers.
    pub(super) commits: AtomicU64,
    pub(super) synced: Mutex<u64>,
    /// Held shared by every write, exclusively by a backup, close, and a WAL rewrite
    /// while it cuts the log or makes its copy live: what the engine holds does not
    /// change while they run.
    pub(super) writes: RwLock<()>,
    /// Held by a fork of the Cypher sandbox, and by a WAL compaction or a backup while
    /// it runs engine calls without the gate.
    pub(super) forks: Mutex<()>,
    /// Held shared by every engine call, read or write (but for a backup and a WAL
    /// rewrite's cuts, which hold `writes` and `forks` instead), exclusively by a fork of the
    /// Cypher sandbox, by the swap of a WAL compaction and by close. Lock order: a
    /// tenant's writer, `writes`, `forks`, `gate`, `graphs`.
    pub(super) gate: RwLock<()>,
    /// Slots for client Cypher, overall and per tenant.
    pub(super) query_slots: QuerySlots,
    pub(super) sandbox: SandboxLimits,
    pub(super) forker: Forker,
    /// Node properties every tenant graph indexes (see [`index_graph`]).
    pub(super) indexed: Vec<String>,
    /// What document writes learned of entities and co-occurrence edges, so that the
    /// next documents read neither back (nor walk adjacency lists to find an edge).
    pub(super) known: Mutex<Known>,
    /// Set by close (holding `writes`); a WAL rewrite then stops at its next step.
    pub(super) closed: AtomicBool,
    /// This store, for the thread a WAL rewrite runs on.
    pub(super) me: Weak<Inner>,
    /// Checked before every write that adds to the graph (deletes never are).
    pub(super) space: Space,
}

/// Settings the embedded graph store needs from the configuration.
pub struct EmbeddedGraphOptions {
    pub query_timeout: Duration,
    pub max_concurrent_queries: usize,
    pub max_concurrent_queries_per_tenant: usize,
    /// Memory one client Cypher query may allocate in its sandbox.
    pub query_memory_bytes: u64,
    /// The WAL is rewritten as a copy of the live graph once over this size (and twice
    /// its size after the last rewrite); see [`super::graph_wal`].
    pub wal_limit_bytes: u64,
    /// Node properties indexed for finds by value, beside `id` and `doc_id`.
    pub indexed_properties: Vec<String>,
    /// Writes are refused while the data directory's disk is short of space.
    pub space: Space,
}

#[derive(Clone)]
pub struct EmbeddedGraphStore {
    pub(super) inner: Arc<Inner>,
}

type Params = HashMap<String, Value>;

pub(super) fn params(
    tenant: &Tenant,
    pairs: impl IntoIterator<Item = (&'static str, Value)>,
) -> Params {
    let mut p: Params = pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    p.insert("tenant".into(), Value::from(tenant.as_str()));
    p
}

/// Each tenant's named graph is `tenant_<name>`.
pub(super) const GRAPH_PREFIX: &str = "tenant_";

pub(super) fn index_graph(db: &GrafeoDB, name: &str, indexed: &[String]) -> StoreResult<()> {
    db.set_current_graph(Some(name)).map_err(engine)?;
    for property in indexed {
        db.create_property_index(property);
    }
    db.set_current_graph(None).map_err(engine)
}

impl Inner {
    /// The engine. Call it holding the gate (or `writes`, exclusively): a compaction
    /// replaces it under both.
    pub(super) fn db(&self) -> Arc<GrafeoDB> {
        self.engine
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn graph_name(&self, tenant: &Tenant) -> StoreResult<String> {
        let name = format!("{GRAPH_PREFIX}{tenant}");
        let mut graphs = lock(&self.graphs);
        if !graphs.contains(&name) {
            let db = self.db();
            db.create_graph(&name).map_err(engine)?;
            index_graph(&db, &name, &self.indexed)?;
            graphs.insert(name.clone());
        }
        Ok(name)
    }

    pub(super) fn session(&self, tenant: &Tenant) -> StoreResult<Session> {
        let session = self.db().session();
        session.use_graph(&self.graph_name(tenant)?);
        Ok(session)
    }

    fn run(&self, tenant: &Tenant, query: &str, p: Params) -> StoreResult<QueryResult> {
        self.session(tenant)?
            .execute_cypher_with_params(query, p)
            .map_err(engine)
    }

    fn count(&self, tenant: &Tenant, query: &str, p: Params) -> StoreResult<i64> {
        let result = self.run(tenant, query, p)?;
        Ok(match result.rows().first().and_then(|r| r.first()) {
            Some(Value::Int64(n)) => *n,
            _ => 0,
        })
    }

    fn node(&self, tenant: &Tenant, id: &str) -> StoreResult<Option<Node>> {
        let result = self.run(
            tenant,
            cypher::GET_NODE,
            params(tenant, [("id", Value::from(id))]),
        )?;
        Ok(result.rows().first().and_then(|r| node_from_row(r)))
    }

    fn exists(&self, tenant: &Tenant, id: &str) -> StoreResult<bool> {
        Ok(self.count(
            tenant,
            cypher::COUNT_NODE,
            params(tenant, [("id", Value::from(id))]),
        )? > 0)
    }
}

/// The gate every engine read holds; a fork takes it exclusively (see
/// [`cypher_sandbox`]), so no read is half-way through the engine in the child.
pub(super) fn read_gate(gate: &RwLock<()>) -> std::sync::RwLockReadGuard<'_, ()> {
    gate.read().unwrap_or_else(|p| p.into_inner())
}

impl EmbeddedGraphStore {
    /// Runs `f` for `tenant` on a blocking thread, holding the read gate.
    async fn read<T, F>(&self, tenant: &Tenant, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner, &Tenant) -> StoreResult<T> + Send + 'static,
    {
        let (inner, tenant) = (self.inner.clone(), tenant.clone());
        blocking(move || {
            let _gate = read_gate(&inner.gate);
            f(&inner, &tenant)
        })
        .await
    }
}

fn missing(id: &str) -> StoreError {
    StoreError::not_found(format!("node {id:?} does not exist"))
}

#[async_trait]
impl GraphStore for EmbeddedGraphStore {
    async fn upsert_node(&self, tenant: &Tenant, node: NodeUpsert) -> StoreResult<(Node, Written)> {
        self.inner.space.check()?;
        let (inner, tenant) = (self.inner.clone(), tenant.clone());
        blocking(move || inner.write(&tenant, |inner| inner.upsert_node(&tenant, &node))).await
    }

    async fn get_node(&self, tenant: &Tenant, id: &str) -> StoreResult<Node> {
        let id = id.to_owned();
        self.read(tenant, move |inner, tenant| {
            inner.node(tenant, &id)?.ok_or_else(|| missing(&id))
        })
        .await
    }

    async fn find_nodes(&self, tenant: &Tenant, find: FindNodes) -> StoreResult<Vec<Node>> {
        self.read(tenant, move |inner, tenant| {
            let statement = cypher::find_nodes(
                &find.label,
                find.equals.keys().map(String::as_str),
                find.offset,
                find.limit,
            );
            let mut p = params(tenant, []);
            for (i, (k, v)) in find.equals.iter().enumerate() {
                p.insert(format!("k{i}"), Value::from(k.as_str()));
                p.insert(format!("v{i}"), to_grafeo(v));
            }
            let result = inner.run(tenant, &statement, p)?;
            Ok(result
                .rows()
                .iter()
                .filter_map(|r| node_from_row(r))
                .collect())
        })
        .await
    }

    async fn delete_node(&self, tenant: &Tenant, id: &str) -> StoreResult<()> {
        let (inner, tenant, id) = (self.inner.clone(), tenant.clone(), id.to_owned());
        blocking(move || inner.write(&tenant, |inner| inner.delete_node(&tenant, &id))).await
    }

    async fn upsert_relationship(
        &self,
        tenant: &Tenant,
        rel: RelationshipUpsert,
    ) -> StoreResult<Written> {
        self.inner.space.check()?;
        let (inner, tenant) = (self.inner.clone(), tenant.clone());
        blocking(move || inner.write(&tenant, |inner| inner.upsert_relationship(&tenant, &rel)))
            .await
    }

    async fn has_relationship(
        &self,
        tenant: &Tenant,
        from: &str,
        to: &str,
        rel_type: &str,
    ) -> StoreResult<bool> {
        let (from, to, rel_type) = (from.to_owned(), to.to_owned(), rel_type.to_owned());
        self.read(tenant, move |inner, tenant| {
            inner.has_relationship(tenant, &from, &to, &rel_type)
        })
        .await
    }

    async fn neighbors(&self, tenant: &Tenant, query: NeighborQuery) -> StoreResult<Vec<Neighbor>> {
        self.read(tenant, move |inner, tenant| {
            if !inner.exists(tenant, &query.id)? {
                return Err(missing(&query.id));
            }
            inner.expand(tenant, &query)
        })
        .await
    }

    /// Admitted by [`client_cypher::admit_on_grafeo`], then run in a sandboxed child
    /// process (see [`cypher_sandbox`]) under one of the tenant's query slots.
    async fn query(&self, tenant: &Tenant, query: CypherQuery) -> StoreResult<CypherResult> {
        client_cypher::admit_on_grafeo(&query).map_err(StoreError::invalid)?;
        let _slot = self.inner.query_slots.try_acquire(tenant)?;
        let graph = self
            .read(tenant, |inner, tenant| inner.graph_name(tenant))
            .await?;
        let inner = self.inner.clone();
        let target = cypher_sandbox::Target {
            graph,
            tenant: tenant.clone(),
        };
        cypher_sandbox::run(inner.clone(), target, query, inner.sandbox).await
    }

    async fn replace_documents(
        &self,
        tenant: &Tenant,
        docs: Vec<DocumentGraph>,
    ) -> StoreResult<()> {
        self.inner.space.check()?;
        let (inner, tenant) = (self.inner.clone(), tenant.clone());
        blocking(move || inner.write_documents(&tenant, &docs)).await
    }

    async fn remove_document(&self, tenant: &Tenant, doc_id: &DocId) -> StoreResult<bool> {
        let (inner, tenant, doc_id) = (self.inner.clone(), tenant.clone(), doc_id.clone());
        blocking(move || inner.remove_document(&tenant, &doc_id)).await
    }

    async fn document_extents(
        &self,
        tenant: &Tenant,
        doc_ids: Vec<DocId>,
    ) -> StoreResult<Vec<DocumentExtent>> {
        let ids = doc_ids.iter().map(|d| document_node_id(d)).collect();
        self.read(tenant, move |inner, tenant| {
            inner.read_by_ids(tenant, q::EXTENTS, &q::EXTENT_COLUMNS, ids, shared::extents)
        })
        .await
    }

    async fn entities(&self, tenant: &Tenant, ids: Vec<EntityId>) -> StoreResult<Vec<EntityRef>> {
        let ids = shared::node_ids(ids);
        self.read(tenant, move |inner, tenant| {
            inner.read_by_ids(
                tenant,
                q::ENTITIES,
                &q::ENTITY_COLUMNS,
                ids,
                shared::entities,
            )
        })
        .await
    }

    async fn chunk_mentions(
        &self,
        tenant: &Tenant,
        chunks: Vec<String>,
    ) -> StoreResult<Vec<Mention>> {
        self.read(tenant, move |inner, tenant| {
            inner.read_by_ids(
                tenant,
                q::CHUNK_MENTIONS,
                &q::MENTION_COLUMNS,
                chunks,
                shared::mentions,
            )
        })
        .await
    }

    async fn entity_mentions(
        &self,
        tenant: &Tenant,
        entities: Vec<EntityId>,
        limit: usize,
    ) -> StoreResult<Vec<ChunkLink>> {
        let entities = shared::node_ids(entities);
        self.read(tenant, move |inner, tenant| {
            inner.read_by_ids(
                tenant,
                &q::entity_mentions(limit),
                &q::LINK_COLUMNS,
                entities,
                shared::links,
            )
        })
        .await
    }

    async fn related_entities(
        &self,
        tenant: &Tenant,
        entities: Vec<EntityId>,
        limit: usize,
    ) -> StoreResult<Vec<Related>> {
        let entities = shared::node_ids(entities);
        self.read(tenant, move |inner, tenant| {
            inner.read_by_ids(
                tenant,
                &q::related(limit),
                &q::RELATED_COLUMNS,
                entities,
                shared::related,
            )
        })
        .await
    }

    async fn tenants(&self) -> StoreResult<Vec<Tenant>> {
        Ok(self.inner.tenants())
    }

    async fn size(&self, tenant: &Tenant) -> StoreResult<GraphSize> {
        self.read(tenant, |inner, tenant| inner.size(tenant)).await
    }

    async fn export_nodes(
        &self,
        tenant: &Tenant,
        after: Option<String>,
        limit: usize,
    ) -> StoreResult<Vec<Node>> {
        self.read(tenant, move |inner, tenant| {
            inner.export_nodes(tenant, after, limit)
        })
        .await
    }

    async fn import(
        &self,
        tenant: &Tenant,
        nodes: Vec<NodeUpsert>,
        relationships: Vec<RelationshipUpsert>,
    ) -> StoreResult<()> {
        self.inner.space.check()?;
        let (inner, tenant) = (self.inner.clone(), tenant.clone());
        blocking(move || {
            inner.write(&tenant, |inner| {
                inner.import(&tenant, &nodes, &relationships)
            })
        })
        .await
    }

    async fn export_relationships(
        &self,
        tenant: &Tenant,
        from: Vec<String>,
    ) -> StoreResult<Vec<Relationship>> {
        self.read(tenant, move |inner, tenant| {
            inner.export_relationships(tenant, from)
        })
        .await
    }

    async fn ping(&self) -> StoreResult<()> {
        let inner = self.inner.clone();
        blocking(move || {
            let _gate = read_gate(&inner.gate);
            inner
                .db()
                .session()
                .execute_cypher("RETURN 1")
                .map(|_| ())
                .map_err(engine)
        })
        .await
    }

    fn interrupt_queries(&self) {
        self.inner.forker.interrupt();
    }

    async fn close(&self) -> StoreResult<()> {
        let inner = self.inner.clone();
        blocking(move || {
            let _writes = inner.writes.write().unwrap_or_else(|p| p.into_inner());
            let _forks = lock(&inner.forks);
            let _gate = inner.gate.write().unwrap_or_else(|p| p.into_inner());
            inner.closed.store(true, Ordering::Release);
            let db = inner.db();
            db.wal_checkpoint().map_err(engine)?;
            db.close().map_err(engine)
        })
        .await
    }
}

impl Forkable for Inner {
    fn forker(&self) -> &Forker {
        &self.forker
    }

    fn while_quiet(&self, fork: &mut dyn FnMut(&GrafeoDB)) {
        let _forks = lock(&self.forks);
        let _gate = self.gate.write().unwrap_or_else(|p| p.into_inner());
        let _graphs = lock(&self.graphs);
        fork(&self.db());
    }
}
