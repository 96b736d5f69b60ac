//! Embedded [`GraphStore`] on `grafeo`, persisted with its write-ahead log under
//! `<data_dir>/graph`.
//!
//! Each tenant lives in its own named graph, so even client Cypher cannot reach another
//! tenant's nodes; every node also carries a `tenant` property and every statement
//! matches on it, so the same Cypher runs unchanged on a Neo4j server. Writes are
//! serialised (MERGE is then race-free) and committed with a synchronous WAL fsync.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use grafeo::{Config, DurabilityMode, GrafeoDB, QueryResult, Role, Session, Value};

use super::graph_values::{node_from_row, to_grafeo, to_json};
use crate::domain::graph::{
    CypherQuery, CypherResult, FindNodes, Neighbor, NeighborQuery, Node, NodeUpsert,
    RelationshipUpsert, Written,
};
use crate::domain::ingest::{DocumentGraph, EntityRef, Mention, Related};
use crate::domain::principal::Tenant;
use crate::store::cypher;
use crate::store::{ErrorKind, GraphStore, StoreError, StoreResult, blocking};

pub(super) struct Inner {
    db: GrafeoDB,
    /// Named graphs known to exist, to skip the catalog lookup on the hot path.
    graphs: Mutex<HashSet<String>>,
    /// One writer at a time; see the module docs.
    pub(super) writer: Mutex<()>,
    /// Slots for client Cypher; see [`GraphStore::query`] below.
    query_slots: Arc<tokio::sync::Semaphore>,
    query_timeout: Duration,
}

/// Settings the embedded graph store needs from the configuration.
pub struct EmbeddedGraphOptions {
    pub query_timeout: Duration,
    pub max_concurrent_queries: usize,
}

#[derive(Clone)]
pub struct EmbeddedGraphStore {
    inner: Arc<Inner>,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Maps engine errors: timeouts and permission/syntax problems are the caller's or the
/// clock's, everything else is ours.
pub(super) fn engine(e: grafeo::Error) -> StoreError {
    let text = e.to_string();
    let lower = text.to_ascii_lowercase();
    let kind = match &e {
        grafeo::Error::Query(_) if lower.contains("timeout") || lower.contains("timed out") => {
            ErrorKind::Timeout
        }
        grafeo::Error::Query(_) => ErrorKind::Invalid,
        _ => ErrorKind::Internal,
    };
    StoreError::new(kind, format!("graph engine: {text}"))
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

impl EmbeddedGraphStore {
    pub async fn open(data_dir: &Path, options: EmbeddedGraphOptions) -> StoreResult<Self> {
        let path = data_dir.join("graph");
        let query_timeout = options.query_timeout;
        let db = blocking(move || {
            let config = Config::persistent(&path)
                .with_wal_durability(DurabilityMode::Sync)
                .with_query_timeout(query_timeout);
            GrafeoDB::with_config(config).map_err(engine)
        })
        .await?;
        let graphs: HashSet<String> = db.list_graphs().into_iter().collect();
        for name in &graphs {
            index_graph(&db, name)?;
        }
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                graphs: Mutex::new(graphs),
                writer: Mutex::new(()),
                query_slots: Arc::new(tokio::sync::Semaphore::new(options.max_concurrent_queries)),
                query_timeout,
            }),
        })
    }
}

/// Node properties looked up by value on every hot path. grafeo keeps property
/// indexes per graph, in memory, so each tenant graph gets them when it is created and
/// again on every open; without them each lookup scans the whole graph.
const INDEXED: [&str; 2] = ["id", "doc_id"];

fn index_graph(db: &GrafeoDB, name: &str) -> StoreResult<()> {
    db.set_current_graph(Some(name)).map_err(engine)?;
    for property in INDEXED {
        db.create_property_index(property);
    }
    db.set_current_graph(None).map_err(engine)
}

impl Inner {
    fn graph_name(&self, tenant: &Tenant) -> StoreResult<String> {
        let name = format!("tenant_{tenant}");
        if !lock(&self.graphs).contains(&name) {
            self.db.create_graph(&name).map_err(engine)?;
            index_graph(&self.db, &name)?;
            lock(&self.graphs).insert(name.clone());
        }
        Ok(name)
    }

    pub(super) fn session(&self, tenant: &Tenant) -> StoreResult<Session> {
        let session = self.db.session();
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

fn missing(id: &str) -> StoreError {
    StoreError::not_found(format!("node {id:?} does not exist"))
}

#[async_trait]
impl GraphStore for EmbeddedGraphStore {
    async fn upsert_node(&self, tenant: &Tenant, node: NodeUpsert) -> StoreResult<(Node, Written)> {
        let (inner, tenant) = (self.inner.clone(), tenant.clone());
        blocking(move || {
            let _w = lock(&inner.writer);
            inner.upsert_node(&tenant, &node)
        })
        .await
    }

    async fn get_node(&self, tenant: &Tenant, id: &str) -> StoreResult<Node> {
        let (inner, tenant, id) = (self.inner.clone(), tenant.clone(), id.to_owned());
        blocking(move || inner.node(&tenant, &id)?.ok_or_else(|| missing(&id))).await
    }

    async fn find_nodes(&self, tenant: &Tenant, find: FindNodes) -> StoreResult<Vec<Node>> {
        let (inner, tenant) = (self.inner.clone(), tenant.clone());
        blocking(move || {
            let statement =
                cypher::find_nodes(&find.label, find.equals.len(), find.offset, find.limit);
            let mut p = params(&tenant, []);
            for (i, (k, v)) in find.equals.iter().enumerate() {
                p.insert(format!("k{i}"), Value::from(k.as_str()));
                p.insert(format!("v{i}"), to_grafeo(v));
            }
            let result = inner.run(&tenant, &statement, p)?;
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
        blocking(move || {
            let _w = lock(&inner.writer);
            inner.delete_node(&tenant, &id)
        })
        .await
    }

    async fn upsert_relationship(
        &self,
        tenant: &Tenant,
        rel: RelationshipUpsert,
    ) -> StoreResult<Written> {
        let (inner, tenant) = (self.inner.clone(), tenant.clone());
        blocking(move || {
            let _w = lock(&inner.writer);
            inner.upsert_relationship(&tenant, &rel)
        })
        .await
    }

    async fn neighbors(&self, tenant: &Tenant, query: NeighborQuery) -> StoreResult<Vec<Neighbor>> {
        let (inner, tenant) = (self.inner.clone(), tenant.clone());
        blocking(move || {
            if !inner.exists(&tenant, &query.id)? {
                return Err(missing(&query.id));
            }
            inner.expand(&tenant, &query)
        })
        .await
    }

    /// grafeo checks its deadline only between result chunks, so a query that aggregates
    /// a huge intermediate result cannot be interrupted. Each query therefore holds one of
    /// a few slots for as long as it really runs, and the caller gets 504 at the deadline
    /// either way; when every slot is held, further queries get 503 at once.
    async fn query(&self, tenant: &Tenant, query: CypherQuery) -> StoreResult<CypherResult> {
        cypher::ensure_read_only(&query.query).map_err(StoreError::invalid)?;
        let slot = self
            .inner
            .query_slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| {
                StoreError::new(ErrorKind::Unavailable, "every Cypher query slot is busy")
            })?;
        let (inner, tenant) = (self.inner.clone(), tenant.clone());
        let deadline = inner.query_timeout + Duration::from_millis(250);
        let run = blocking(move || {
            let _slot = slot;
            run_read_only(&inner, &tenant, &query)
        });
        tokio::time::timeout(deadline, run).await.map_err(|_| {
            StoreError::new(ErrorKind::Timeout, "Cypher query exceeded the time limit")
        })?
    }

    async fn replace_documents(
        &self,
        tenant: &Tenant,
        docs: Vec<DocumentGraph>,
    ) -> StoreResult<()> {
        let (inner, tenant) = (self.inner.clone(), tenant.clone());
        blocking(move || inner.write_documents(&tenant, &docs)).await
    }

    async fn remove_document(&self, tenant: &Tenant, doc_id: &str) -> StoreResult<bool> {
        let (inner, tenant, doc_id) = (self.inner.clone(), tenant.clone(), doc_id.to_owned());
        blocking(move || inner.remove_document(&tenant, &doc_id)).await
    }

    async fn entities(&self, tenant: &Tenant, ids: Vec<String>) -> StoreResult<Vec<EntityRef>> {
        let (inner, tenant) = (self.inner.clone(), tenant.clone());
        blocking(move || inner.read_entities(&tenant, ids)).await
    }

    async fn chunk_mentions(
        &self,
        tenant: &Tenant,
        chunks: Vec<String>,
    ) -> StoreResult<Vec<Mention>> {
        let (inner, tenant) = (self.inner.clone(), tenant.clone());
        blocking(move || inner.read_mentions(&tenant, cypher::documents::CHUNK_MENTIONS, chunks))
            .await
    }

    async fn entity_mentions(
        &self,
        tenant: &Tenant,
        entities: Vec<String>,
        limit: usize,
    ) -> StoreResult<Vec<Mention>> {
        let (inner, tenant) = (self.inner.clone(), tenant.clone());
        blocking(move || {
            inner.read_mentions(
                &tenant,
                &cypher::documents::entity_mentions(limit),
                entities,
            )
        })
        .await
    }

    async fn related_entities(
        &self,
        tenant: &Tenant,
        entities: Vec<String>,
        limit: usize,
    ) -> StoreResult<Vec<Related>> {
        let (inner, tenant) = (self.inner.clone(), tenant.clone());
        blocking(move || inner.read_related(&tenant, entities, limit)).await
    }

    async fn ping(&self) -> StoreResult<()> {
        let inner = self.inner.clone();
        blocking(move || {
            inner
                .db
                .session()
                .execute_cypher("RETURN 1")
                .map(|_| ())
                .map_err(engine)
        })
        .await
    }

    async fn close(&self) -> StoreResult<()> {
        let inner = self.inner.clone();
        blocking(move || {
            let _w = lock(&inner.writer);
            inner.db.close().map_err(engine)
        })
        .await
    }
}

fn run_read_only(inner: &Inner, tenant: &Tenant, query: &CypherQuery) -> StoreResult<CypherResult> {
    let session = inner.db.session_with_role(Role::ReadOnly);
    session.use_graph(&inner.graph_name(tenant)?);
    let mut p: Params = query
        .params
        .iter()
        .map(|(k, v)| (k.clone(), to_grafeo(v)))
        .collect();
    p.insert("tenant".into(), Value::from(tenant.as_str()));
    let result = session
        .execute_cypher_with_params(&query.query, p)
        .map_err(engine)?;
    let truncated = result.rows().len() > query.max_rows;
    let rows = result
        .rows()
        .iter()
        .take(query.max_rows)
        .map(|r| r.iter().map(to_json).collect())
        .collect();
    Ok(CypherResult {
        columns: result.columns.clone(),
        rows,
        truncated,
    })
}
