//! Storage traits the services depend on, and the one error type every adapter returns.
//! Each trait has an in-process default under [`embedded`]. Every method takes the
//! caller's tenant: isolation is enforced here, never trusted from a request body.

pub mod backup;
pub mod cache;
pub mod client_cypher;
pub(crate) mod cpu;
pub mod cypher;
pub mod embedded;
pub mod graph_exec;
pub mod graph_rows;
pub mod kafka;
pub mod neo4j;
pub mod open;
pub mod qdrant;
pub mod qdrant_mapping;
pub mod redis;
pub mod resilient;

use std::time::Duration;

pub(crate) use cpu::blocking;
pub use cpu::holding;

use async_trait::async_trait;

use crate::domain::audit::{AuditPage, AuditQuery, AuditRecord};
use crate::domain::graph::{
    CypherQuery, CypherResult, FindNodes, Neighbor, NeighborQuery, Node, NodeUpsert, Relationship,
    RelationshipUpsert, Written,
};
use crate::domain::ingest::{
    ChunkLink, DocId, DocumentExtent, DocumentGraph, EntityId, EntityRef, Event, IngestStatus,
    LogEntry, Mention, Outcome, Related,
};
use crate::domain::principal::{Scope, Tenant};
use crate::domain::vector::{
    CollectionInfo, CollectionName, CollectionSpec, Filter, PayloadIndex, Point, PointId, Record,
    ScoredPoint, SearchQuery,
};

/// What went wrong, coarsely enough to decide retry and HTTP status on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    Conflict,
    /// The request is well-formed but the store cannot accept it (e.g. bad Cypher).
    Invalid,
    /// The backend cannot serve now; retrying later may work.
    Unavailable,
    /// The backend is healthy but refused this call because of a concurrent change to
    /// the same data (a deadlock or lock conflict); retrying soon may work.
    Busy,
    Timeout,
    /// The backend answered with an error of its own.
    Upstream,
    /// The caller already runs as many of these at once as it may (a tenant's share of
    /// the Cypher slots); retrying once one ends may work (429). Never the backend's
    /// health, so never counted by a circuit breaker.
    Throttled,
    /// The disk under the data directory is too full to take this write (507); frees
    /// up when space does. Deletes never get it.
    Full,
    /// A bug or broken invariant on our side.
    Internal,
    /// This deployment's store does not offer the operation (501).
    Unsupported,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct StoreError {
    pub kind: ErrorKind,
    pub message: String,
    /// For `Unavailable`: when trying again may work (an open circuit breaker's cool-down).
    pub retry_after: Option<std::time::Duration>,
}

impl StoreError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }

    pub fn busy(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Busy, message)
    }

    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Timeout, message)
    }

    pub fn upstream(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Upstream, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Result of creating a collection: created now, or already there with the same spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    New,
    Existing,
}

/// How many nodes and relationships one tenant's graph holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GraphSize {
    pub nodes: u64,
    pub relationships: u64,
}

/// A document's ingest status and the tenant it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantStatus {
    pub tenant: Tenant,
    pub status: IngestStatus,
}

/// How many points one collection holds.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectionPoints {
    pub tenant: String,
    pub collection: String,
    pub points: u64,
}

#[async_trait]
pub trait VectorStore: Send + Sync {
    /// Creates the collection; an existing one with the same spec is `Existing`, with a
    /// different spec a `Conflict`.
    async fn create_collection(
        &self,
        tenant: &Tenant,
        name: &CollectionName,
        spec: CollectionSpec,
    ) -> StoreResult<Created>;
    async fn collection_info(
        &self,
        tenant: &Tenant,
        name: &CollectionName,
    ) -> StoreResult<CollectionInfo>;
    /// The collection's dimensions and distance, without counting its points: for
    /// checks made on every write (`collection_info` counts exactly, which costs a scan
    /// on the embedded store).
    async fn collection_spec(
        &self,
        tenant: &Tenant,
        name: &CollectionName,
    ) -> StoreResult<CollectionSpec> {
        let info = self.collection_info(tenant, name).await?;
        Ok(CollectionSpec {
            dim: info.dim,
            distance: info.distance,
        })
    }
    /// The collection's client-made payload indexes, without counting its points (for
    /// the limit checked before an index is made).
    async fn payload_indexes(
        &self,
        tenant: &Tenant,
        name: &CollectionName,
    ) -> StoreResult<Vec<PayloadIndex>> {
        Ok(self.collection_info(tenant, name).await?.payload_indexes)
    }
    async fn drop_collection(&self, tenant: &Tenant, name: &CollectionName) -> StoreResult<()>;
    /// Durable when it returns: a restart keeps every upserted point.
    async fn upsert(
        &self,
        tenant: &Tenant,
        collection: &CollectionName,
        points: Vec<Point>,
    ) -> StoreResult<()>;
    async fn search(
        &self,
        tenant: &Tenant,
        collection: &CollectionName,
        query: SearchQuery,
    ) -> StoreResult<Vec<ScoredPoint>>;
    async fn retrieve(
        &self,
        tenant: &Tenant,
        collection: &CollectionName,
        ids: Vec<PointId>,
    ) -> StoreResult<Vec<Record>>;
    /// Deletes the given ids; returns how many existed.
    async fn delete_ids(
        &self,
        tenant: &Tenant,
        collection: &CollectionName,
        ids: Vec<PointId>,
    ) -> StoreResult<usize>;
    /// Deletes every point matching `filter`; returns how many matched.
    async fn delete_by_filter(
        &self,
        tenant: &Tenant,
        collection: &CollectionName,
        filter: Filter,
    ) -> StoreResult<usize>;
    /// Indexes a payload field (again: a no-op); durable when it returns.
    async fn create_index(
        &self,
        tenant: &Tenant,
        collection: &CollectionName,
        index: PayloadIndex,
    ) -> StoreResult<()>;
    /// Drops a payload field's index; returns whether there was one.
    async fn delete_index(
        &self,
        tenant: &Tenant,
        collection: &CollectionName,
        field: &str,
    ) -> StoreResult<bool>;
    /// The number of points in every collection of every tenant (the `vectors_points`
    /// gauge).
    async fn point_counts(&self) -> StoreResult<Vec<CollectionPoints>>;
    /// The number of points in all of `tenant`'s collections (its storage quota).
    async fn tenant_points(&self, tenant: &Tenant) -> StoreResult<u64> {
        let counts = self.point_counts().await?;
        let own = counts.iter().filter(|c| c.tenant == tenant.as_str());
        Ok(own.map(|c| c.points).sum())
    }
    /// How many collections `tenant` has.
    async fn collection_count(&self, tenant: &Tenant) -> StoreResult<usize>;
    /// Up to `limit` of the collection's points with payloads and vectors, in id order
    /// from `from` (the start when `None`), and the id the next page starts at (`None`
    /// after the last): for copying a collection to another store.
    async fn scroll(
        &self,
        tenant: &Tenant,
        collection: &CollectionName,
        from: Option<PointId>,
        limit: usize,
    ) -> StoreResult<(Vec<Record>, Option<PointId>)>;
    async fn ping(&self) -> StoreResult<()>;
    /// Makes everything durable and releases the engine; called once at shutdown.
    async fn close(&self) -> StoreResult<()>;
}

#[async_trait]
pub trait GraphStore: Send + Sync {
    async fn upsert_node(&self, tenant: &Tenant, node: NodeUpsert) -> StoreResult<(Node, Written)>;
    async fn get_node(&self, tenant: &Tenant, id: &str) -> StoreResult<Node>;
    async fn find_nodes(&self, tenant: &Tenant, find: FindNodes) -> StoreResult<Vec<Node>>;
    /// Removes the node and its relationships.
    async fn delete_node(&self, tenant: &Tenant, id: &str) -> StoreResult<()>;
    /// Both end nodes must exist (`NotFound` otherwise).
    async fn upsert_relationship(
        &self,
        tenant: &Tenant,
        rel: RelationshipUpsert,
    ) -> StoreResult<Written>;
    /// Whether a `rel_type` relationship runs from `from` to `to`.
    async fn has_relationship(
        &self,
        tenant: &Tenant,
        from: &str,
        to: &str,
        rel_type: &str,
    ) -> StoreResult<bool>;
    async fn neighbors(&self, tenant: &Tenant, query: NeighborQuery) -> StoreResult<Vec<Neighbor>>;
    /// Runs client Cypher read-only, confined to the tenant's graph.
    async fn query(&self, tenant: &Tenant, query: CypherQuery) -> StoreResult<CypherResult>;

    /// Makes each document's subgraph exactly as given, all in one transaction: old
    /// chunks and their mentions go, the new ones come, `RELATED_TO` weights follow,
    /// and entities no chunk mentions any more are removed. Idempotent.
    async fn replace_documents(&self, tenant: &Tenant, docs: Vec<DocumentGraph>)
    -> StoreResult<()>;
    /// Removes the document, its chunks and the entities only it mentioned; returns
    /// whether it existed.
    async fn remove_document(&self, tenant: &Tenant, doc_id: &DocId) -> StoreResult<bool>;
    /// The stored extents of the documents among `doc_ids` that have one.
    async fn document_extents(
        &self,
        tenant: &Tenant,
        doc_ids: Vec<DocId>,
    ) -> StoreResult<Vec<DocumentExtent>>;
    /// Entities with these node ids that exist.
    async fn entities(&self, tenant: &Tenant, ids: Vec<EntityId>) -> StoreResult<Vec<EntityRef>>;
    /// What the given chunks mention.
    async fn chunk_mentions(
        &self,
        tenant: &Tenant,
        chunks: Vec<String>,
    ) -> StoreResult<Vec<Mention>>;
    /// Chunks mentioning the given entities, at most `limit` links, in the order of
    /// `entities`.
    async fn entity_mentions(
        &self,
        tenant: &Tenant,
        entities: Vec<EntityId>,
        limit: usize,
    ) -> StoreResult<Vec<ChunkLink>>;
    /// Entities one `RELATED_TO` hop from the given ones, at most `limit`.
    async fn related_entities(
        &self,
        tenant: &Tenant,
        entities: Vec<EntityId>,
        limit: usize,
    ) -> StoreResult<Vec<Related>>;
    /// The tenants that have a graph here.
    async fn tenants(&self) -> StoreResult<Vec<Tenant>>;
    /// How many nodes and relationships the tenant's graph holds.
    async fn size(&self, tenant: &Tenant) -> StoreResult<GraphSize>;
    /// Up to `limit` of the tenant's nodes in id order, after node `after` (from the
    /// first when `None`), with every label and property the store keeps for them: for
    /// copying a graph to another store.
    async fn export_nodes(
        &self,
        tenant: &Tenant,
        after: Option<String>,
        limit: usize,
    ) -> StoreResult<Vec<Node>>;
    /// Writes nodes and relationships copied from another store, as they are, in one
    /// transaction: nodes merged on id (labels added, properties set), then
    /// relationships merged on their ends and type (properties set; one whose end does
    /// not exist is skipped).
    async fn import(
        &self,
        tenant: &Tenant,
        nodes: Vec<NodeUpsert>,
        relationships: Vec<RelationshipUpsert>,
    ) -> StoreResult<()>;
    /// Every relationship leaving the given nodes.
    async fn export_relationships(
        &self,
        tenant: &Tenant,
        from: Vec<String>,
    ) -> StoreResult<Vec<Relationship>>;
    async fn ping(&self) -> StoreResult<()>;
    /// Stops the client Cypher queries still running and refuses new ones (503): called
    /// when shutdown begins, so draining never waits for a runaway query.
    fn interrupt_queries(&self) {}
    async fn close(&self) -> StoreResult<()>;
}

/// The durable, ordered log of ingest events and the status of each document.
///
/// One consumer reads it: entries after the committed offset, in order. Appending
/// marks each event's document `pending` in the same durable step, so a 202 always has
/// a status behind it; [`EventLog::complete`] records outcomes and moves the offset
/// together, so a crash between processing and commit replays the batch (processing
/// is idempotent) and never loses it.
#[async_trait]
pub trait EventLog: Send + Sync {
    /// Durable when it returns; gives each event its sequence number.
    async fn append(&self, events: Vec<Event>) -> StoreResult<Vec<u64>>;
    /// Up to `max` entries after the committed offset, oldest first; no entry is taken
    /// once those taken hold `max_bytes` of encoded events (the first always is), so a
    /// batch of large documents stays small.
    async fn read(&self, max: usize, max_bytes: usize) -> StoreResult<Vec<LogEntry>>;
    /// Waits until something may have been appended, or `timeout` passes.
    async fn wait(&self, timeout: std::time::Duration);
    /// Applies the outcomes (each only if the document's status still belongs to that
    /// event) and commits the offset up to `upto`, atomically.
    async fn complete(&self, outcomes: Vec<Outcome>, upto: u64) -> StoreResult<()>;
    async fn status(&self, tenant: &Tenant, id: &DocId) -> StoreResult<Option<IngestStatus>>;
    /// Entries appended but not yet committed.
    async fn pending(&self) -> StoreResult<u64>;
    /// Up to about `limit` document statuses from `cursor` (the start when `None`), and
    /// the next page's cursor (`None` after the last): for copying them to another
    /// store. A cursor is only meaningful to the store that gave it.
    async fn export_statuses(
        &self,
        cursor: Option<String>,
        limit: usize,
    ) -> StoreResult<(Vec<TenantStatus>, Option<String>)>;
    /// Stores statuses copied from another store as they are, replacing a document's
    /// status; durable when it returns.
    async fn import_statuses(&self, statuses: Vec<TenantStatus>) -> StoreResult<()>;
    async fn ping(&self) -> StoreResult<()>;
}

/// A stored API key; the secret itself is never stored, only its SHA-256.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ApiKeyRecord {
    pub id: String,
    pub name: String,
    pub tenant: String,
    pub scopes: Vec<Scope>,
    pub hash: String,
    /// Seconds since the Unix epoch.
    pub created_at: u64,
}

/// A refresh token; like keys, only its hash is stored. Tokens minted from one login
/// share a `family`, so a replayed (already rotated) token can revoke them all.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RefreshRecord {
    pub id: String,
    pub family: String,
    /// The API key the login used; it must still exist at refresh time.
    pub key_id: String,
    pub hash: String,
    /// Seconds since the Unix epoch.
    pub expires_at: u64,
    /// Set once the token has been exchanged for a new one.
    pub used: bool,
}

/// What [`AuthStore::token_state`] read.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenState {
    pub revoked: bool,
    /// The token's API key; `None` when revoked, when it names none, or when the key is
    /// gone.
    pub key: Option<ApiKeyRecord>,
}

#[async_trait]
pub trait AuthStore: Send + Sync {
    async fn insert_key(&self, record: ApiKeyRecord) -> StoreResult<()>;
    async fn get_key(&self, id: &str) -> StoreResult<Option<ApiKeyRecord>>;
    async fn list_keys(&self, tenant: Option<&str>) -> StoreResult<Vec<ApiKeyRecord>>;
    /// Returns whether the key existed.
    async fn delete_key(&self, id: &str) -> StoreResult<bool>;
    async fn count_keys(&self) -> StoreResult<u64>;
    async fn insert_refresh(&self, record: RefreshRecord) -> StoreResult<()>;
    async fn get_refresh(&self, id: &str) -> StoreResult<Option<RefreshRecord>>;
    /// Marks the refresh token used, atomically; `false` when it already was (a replay).
    async fn use_refresh(&self, id: &str) -> StoreResult<bool>;
    /// Revokes an id (an access token's `jti`, or a refresh family) until `until`.
    async fn revoke(&self, id: &str, until: u64) -> StoreResult<()>;
    async fn is_revoked(&self, id: &str) -> StoreResult<bool>;
    /// What every request with a bearer token reads, in one call: whether any of `ids`
    /// is revoked and, if none is, API key `key_id` (when the token names one).
    async fn token_state(&self, ids: &[String], key_id: Option<&str>) -> StoreResult<TokenState>;
    /// Forgets revocations and refresh tokens that expired before `now`.
    async fn purge_expired(&self, now: u64) -> StoreResult<()>;
    async fn ping(&self) -> StoreResult<()>;
}

/// The audit trail: append-only, read newest first, trimmed by age and count.
#[async_trait]
pub trait AuditLog: Send + Sync {
    async fn append(&self, records: Vec<AuditRecord>) -> StoreResult<()>;
    /// Up to `query.limit` matching records, newest first, and the next page's cursor.
    async fn query(&self, query: AuditQuery) -> StoreResult<AuditPage>;
    /// Drops records older than `before_ms`, then the oldest beyond `max_records`.
    async fn trim(&self, before_ms: u64, max_records: u64) -> StoreResult<()>;
    async fn ping(&self) -> StoreResult<()>;
}

/// What a shared rate-limit bucket (GCRA) said about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    pub allowed: bool,
    /// Requests the caller may still make at once.
    pub remaining: u32,
    /// Until the bucket is full again.
    pub reset: Duration,
    /// When refused: until one request is allowed.
    pub retry_after: Duration,
}

/// Rate-limit buckets every replica shares. One call takes one request from `key`'s
/// bucket (one request per `interval`, up to `burst` at once), atomically.
#[async_trait]
pub trait RateLimitStore: Send + Sync {
    async fn take(&self, key: &str, interval: Duration, burst: u32) -> StoreResult<Taken>;
}
