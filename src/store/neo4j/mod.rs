//! [`GraphStore`] on a Bolt server (Neo4j 5, or any server speaking its Cypher) via
//! `neo4rs`. It runs the same parameterised Cypher as the embedded graph
//! ([`crate::store::cypher`], [`crate::store::graph_exec`]) through a one-rule
//! dialect: every node pattern's first mention gets the base label `_rb_node`, whose
//! uniqueness constraint on `(tenant, id)` is created at start-up. That constraint is
//! the index every id lookup uses, and the guarantee that one tenant's id names one
//! node whatever its labels. Client Cypher runs in READ access mode.
//!
//! Client Cypher (`/graphs/query`) is off unless `graph.neo4j_client_cypher` is set:
//! every tenant shares the server's graph, and a read-only query can still read other
//! tenants' nodes, so it is only safe on a single-tenant server. When on, it runs in
//! READ access mode, and rows from neo4rs being keyed by column name, columns come in
//! name order (the embedded engine keeps `RETURN` order).

mod bolt;
mod copy;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use neo4rs::{ConfigBuilder, Graph};
use secrecy::ExposeSecret;
use serde_json::{Map, Value};

pub use self::bolt::{BASE_LABEL, dialect};
use self::bolt::{BoltTx, bolt, bolt_err, hide_internal, query};
use crate::config::Neo4jSettings;
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
use crate::store::cypher::{self, NODE_COLUMNS, documents as q};
use crate::store::graph_exec::{self as shared, CypherTx, Rows, list, node_from};
use crate::store::resilient::{Resilience, Retry};
use crate::store::{ErrorKind, GraphSize, GraphStore, StoreError, StoreResult};

const CONSTRAINT: &str = "CREATE CONSTRAINT ragbrain_node_key IF NOT EXISTS \
     FOR (n:`_rb_node`) REQUIRE (n.tenant, n.id) IS UNIQUE";

pub struct Neo4jGraphStore {
    graph: Graph,
    guard: Arc<Resilience>,
    query_timeout: Duration,
    query_slots: QuerySlots,
    client_cypher: bool,
}

impl Neo4jGraphStore {
    /// Connects (the pool opens connections on demand) and creates the node key
    /// constraint when missing.
    pub async fn connect(
        settings: &Neo4jSettings,
        guard: Arc<Resilience>,
        timeout: Duration,
        query_timeout: Duration,
        query_slots: QuerySlots,
    ) -> StoreResult<Self> {
        let mut config = ConfigBuilder::default()
            .uri(settings.uri.as_str())
            .user(settings.user.as_str())
            .password(settings.password.expose_secret())
            .max_connections(settings.max_connections.get())
            .fetch_size(1000)
            .connection_timeout(timeout);
        if !settings.database.is_empty() {
            config = config.db(settings.database.as_str());
        }
        let config = config
            .build()
            .map_err(|e| StoreError::invalid(format!("graph.neo4j_uri: {e}")))?;
        let graph = Graph::connect(config).map_err(bolt_err)?;
        let store = Self {
            graph,
            guard,
            query_timeout,
            query_slots,
            client_cypher: settings.client_cypher,
        };
        store
            .guard
            .run("create_constraint", Retry::Idempotent, || async {
                store
                    .graph
                    .run(neo4rs::query(CONSTRAINT))
                    .await
                    .map(drop)
                    .map_err(bolt_err)
            })
            .await?;
        Ok(store)
    }

    async fn begin<'a>(&self, tenant: &'a Tenant) -> StoreResult<BoltTx<'a>> {
        let txn = self.graph.start_txn().await.map_err(bolt_err)?;
        Ok(BoltTx { txn, tenant })
    }

    /// One read statement on its own; rows as named by `columns`.
    async fn read<K: AsRef<str> + Clone + Send + Sync>(
        &self,
        op: &'static str,
        tenant: &Tenant,
        statement: &str,
        columns: &[&str],
        params: Vec<(K, Value)>,
    ) -> StoreResult<Rows> {
        self.guard
            .run(op, Retry::Idempotent, || async {
                let q = query(statement, tenant, params.clone())?;
                let mut stream = self.graph.execute_read(q).await.map_err(bolt_err)?;
                let mut rows = Vec::new();
                while let Some(row) = stream.next().await.map_err(bolt_err)? {
                    rows.push(bolt::values(&row, columns)?);
                }
                Rows::new(columns, rows)
            })
            .await
    }
}

#[async_trait]
impl GraphStore for Neo4jGraphStore {
    async fn upsert_node(&self, tenant: &Tenant, node: NodeUpsert) -> StoreResult<(Node, Written)> {
        self.guard
            .run("upsert_node", Retry::Idempotent, || async {
                let mut tx = self.begin(tenant).await?;
                let result = shared::upsert_node(&mut tx, &node).await;
                tx.finish(result).await
            })
            .await
    }

    async fn get_node(&self, tenant: &Tenant, id: &str) -> StoreResult<Node> {
        let rows = self
            .read(
                "get_node",
                tenant,
                cypher::GET_NODE,
                &NODE_COLUMNS,
                vec![("id", id.into())],
            )
            .await?;
        match rows.first() {
            Some(row) => node_from(&row)?,
            None => None,
        }
        .ok_or_else(|| shared::missing(id))
    }

    async fn find_nodes(&self, tenant: &Tenant, find: FindNodes) -> StoreResult<Vec<Node>> {
        let statement = cypher::find_nodes(
            &find.label,
            find.equals.keys().map(String::as_str),
            find.offset,
            find.limit,
        );
        let mut keys = Vec::with_capacity(find.equals.len() * 2);
        for (i, (k, v)) in find.equals.iter().enumerate() {
            keys.push((format!("k{i}"), Value::from(k.as_str())));
            keys.push((format!("v{i}"), v.clone()));
        }
        let rows = self
            .read("find_nodes", tenant, &statement, &NODE_COLUMNS, keys)
            .await?;
        let nodes: Vec<Option<Node>> = rows
            .iter()
            .map(|r| node_from(&r))
            .collect::<StoreResult<_>>()?;
        Ok(nodes.into_iter().flatten().collect())
    }

    async fn delete_node(&self, tenant: &Tenant, id: &str) -> StoreResult<()> {
        self.guard
            .run("delete_node", Retry::LostRaces, || async {
                let mut tx = self.begin(tenant).await?;
                let result = shared::delete_node(&mut tx, id).await;
                tx.finish(result).await
            })
            .await
    }

    async fn upsert_relationship(
        &self,
        tenant: &Tenant,
        rel: RelationshipUpsert,
    ) -> StoreResult<Written> {
        self.guard
            .run("upsert_relationship", Retry::Idempotent, || async {
                let mut tx = self.begin(tenant).await?;
                let result = shared::upsert_relationship(&mut tx, &rel).await;
                tx.finish(result).await
            })
            .await
    }

    async fn has_relationship(
        &self,
        tenant: &Tenant,
        from: &str,
        to: &str,
        rel_type: &str,
    ) -> StoreResult<bool> {
        self.guard
            .run("has_relationship", Retry::Idempotent, || async {
                let mut tx = self.begin(tenant).await?;
                let result = shared::relationship_exists(&mut tx, from, to, rel_type).await;
                tx.finish(result).await
            })
            .await
    }

    async fn neighbors(&self, tenant: &Tenant, query: NeighborQuery) -> StoreResult<Vec<Neighbor>> {
        self.guard
            .run("neighbors", Retry::Idempotent, || async {
                let mut tx = self.begin(tenant).await?;
                let result = async {
                    if !tx.node_exists(&query.id).await? {
                        return Err(shared::missing(&query.id));
                    }
                    shared::expand(&mut tx, &query).await
                }
                .await;
                tx.finish(result).await
            })
            .await
    }

    async fn query(&self, tenant: &Tenant, query: CypherQuery) -> StoreResult<CypherResult> {
        if !self.client_cypher {
            return Err(StoreError::new(
                ErrorKind::Unsupported,
                "client Cypher is off on the shared graph server (graph.neo4j_client_cypher)",
            ));
        }
        client_cypher::admit(&query).map_err(StoreError::invalid)?;
        let _slot = self.query_slots.try_acquire(tenant)?;
        let run = self.guard.run("query", Retry::Once, || async {
            let mut q = neo4rs::query(&query.query).param("tenant", tenant.as_str());
            for (k, v) in &query.params {
                q = q.param(k, bolt(v.clone())?);
            }
            // READ access mode: the server itself refuses any write.
            let mut stream = self.graph.execute_read(q).await.map_err(bolt_err)?;
            let mut columns: Vec<String> = Vec::new();
            let mut rows = Vec::new();
            let mut truncated = false;
            let mut bytes = 0;
            while let Some(row) = stream.next().await.map_err(bolt_err)? {
                if rows.len() == query.max_rows {
                    truncated = true;
                    break;
                }
                let map: Map<String, Value> = row
                    .to()
                    .map_err(|e| StoreError::upstream(format!("graph server row: {e}")))?;
                if columns.is_empty() {
                    columns = map.keys().cloned().collect();
                }
                bytes += serde_json::to_vec(&map).map_or(0, |v| v.len());
                if bytes > query.max_result_bytes {
                    return Err(client_cypher::result_too_large(query.max_result_bytes));
                }
                rows.push(
                    columns
                        .iter()
                        .map(|c| {
                            map.get(c)
                                .cloned()
                                .map(hide_internal)
                                .unwrap_or(Value::Null)
                        })
                        .collect(),
                );
            }
            Ok(CypherResult {
                columns,
                rows,
                truncated,
            })
        });
        tokio::time::timeout(self.query_timeout, run)
            .await
            .map_err(|_| client_cypher::deadline_passed())?
    }

    async fn replace_documents(
        &self,
        tenant: &Tenant,
        docs: Vec<DocumentGraph>,
    ) -> StoreResult<()> {
        self.guard
            .run("replace_documents", Retry::Idempotent, || async {
                let mut tx = self.begin(tenant).await?;
                let result = async {
                    for doc in &docs {
                        shared::apply(&mut tx, &doc.doc_id, Some(doc)).await?;
                    }
                    Ok(())
                }
                .await;
                tx.finish(result).await
            })
            .await
    }

    async fn remove_document(&self, tenant: &Tenant, doc_id: &DocId) -> StoreResult<bool> {
        self.guard
            .run("remove_document", Retry::Idempotent, || async {
                let mut tx = self.begin(tenant).await?;
                let result = shared::apply(&mut tx, doc_id, None).await;
                tx.finish(result).await
            })
            .await
    }

    async fn document_extents(
        &self,
        tenant: &Tenant,
        doc_ids: Vec<DocId>,
    ) -> StoreResult<Vec<DocumentExtent>> {
        let ids = doc_ids.iter().map(|d| document_node_id(d));
        let rows = self
            .read(
                "document_extents",
                tenant,
                q::EXTENTS,
                &q::EXTENT_COLUMNS,
                vec![("ids", list(ids))],
            )
            .await?;
        shared::extents(&rows)
    }

    async fn entities(&self, tenant: &Tenant, ids: Vec<EntityId>) -> StoreResult<Vec<EntityRef>> {
        let ids = shared::node_ids(ids);
        let rows = self
            .read(
                "entities",
                tenant,
                q::ENTITIES,
                &q::ENTITY_COLUMNS,
                vec![("ids", list(ids))],
            )
            .await?;
        shared::entities(&rows)
    }

    async fn chunk_mentions(
        &self,
        tenant: &Tenant,
        chunks: Vec<String>,
    ) -> StoreResult<Vec<Mention>> {
        let rows = self
            .read(
                "chunk_mentions",
                tenant,
                q::CHUNK_MENTIONS,
                &q::MENTION_COLUMNS,
                vec![("ids", list(chunks))],
            )
            .await?;
        shared::mentions(&rows)
    }

    async fn entity_mentions(
        &self,
        tenant: &Tenant,
        entities: Vec<EntityId>,
        limit: usize,
    ) -> StoreResult<Vec<ChunkLink>> {
        let entities = shared::node_ids(entities);
        let rows = self
            .read(
                "entity_mentions",
                tenant,
                &q::entity_mentions(limit),
                &q::LINK_COLUMNS,
                vec![("ids", list(entities))],
            )
            .await?;
        shared::links(&rows)
    }

    async fn related_entities(
        &self,
        tenant: &Tenant,
        entities: Vec<EntityId>,
        limit: usize,
    ) -> StoreResult<Vec<Related>> {
        let entities = shared::node_ids(entities);
        let rows = self
            .read(
                "related_entities",
                tenant,
                &q::related(limit),
                &q::RELATED_COLUMNS,
                vec![("ids", list(entities))],
            )
            .await?;
        shared::related(&rows)
    }

    async fn tenants(&self) -> StoreResult<Vec<Tenant>> {
        self.tenants_on_server().await
    }

    async fn size(&self, tenant: &Tenant) -> StoreResult<GraphSize> {
        self.graph_size(tenant).await
    }

    async fn export_nodes(
        &self,
        tenant: &Tenant,
        after: Option<String>,
        limit: usize,
    ) -> StoreResult<Vec<Node>> {
        self.node_page(tenant, after, limit).await
    }

    async fn import(
        &self,
        tenant: &Tenant,
        nodes: Vec<NodeUpsert>,
        relationships: Vec<RelationshipUpsert>,
    ) -> StoreResult<()> {
        self.import_page(tenant, nodes, relationships).await
    }

    async fn export_relationships(
        &self,
        tenant: &Tenant,
        from: Vec<String>,
    ) -> StoreResult<Vec<Relationship>> {
        self.relationships_from(tenant, from).await
    }

    async fn ping(&self) -> StoreResult<()> {
        self.guard
            .run("ping", Retry::Idempotent, || async {
                let mut rows = self
                    .graph
                    .execute(neo4rs::query("RETURN 1 AS ok"))
                    .await
                    .map_err(bolt_err)?;
                while rows.next().await.map_err(bolt_err)?.is_some() {}
                Ok(())
            })
            .await
    }

    async fn close(&self) -> StoreResult<()> {
        Ok(())
    }
}
