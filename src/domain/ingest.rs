//! Ingest events as they sit in the event log, the status the API reports for each
//! document, and the graph a processed document becomes.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::domain::principal::Tenant;
use crate::domain::vector::CollectionName;

/// A document id: 1 to [`DocId::MAX_BYTES`] bytes, displayable (see
/// [`super::is_displayable_id`]). Deserialising one validates it too, so a log record
/// or stored status holding another does not decode. The configured
/// `limits.max_id_len` (at most `MAX_BYTES`) is the service's tighter bound.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(try_from = "String", into = "String")]
pub struct DocId(String);

impl DocId {
    /// The longest id any configuration accepts.
    pub const MAX_BYTES: usize = 4096;

    pub fn parse(id: &str) -> Option<Self> {
        DocId::try_from(id.to_owned()).ok()
    }
}

string_newtype!(DocId);

impl TryFrom<String> for DocId {
    type Error = String;

    fn try_from(id: String) -> Result<Self, String> {
        if !(1..=DocId::MAX_BYTES).contains(&id.len()) {
            return Err(format!(
                "document id must be 1 to {} bytes long",
                DocId::MAX_BYTES
            ));
        }
        if !super::is_displayable_id(&id) {
            return Err(
                "document id must not contain control or bidirectional-text characters".into(),
            );
        }
        Ok(DocId(id))
    }
}

/// What an event asks for. A document id is the unit: a later event for the same id
/// replaces (or deletes) everything an earlier one produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Operation {
    Upsert {
        text: String,
        #[serde(default)]
        metadata: Map<String, Value>,
    },
    Delete,
}

impl Operation {
    pub fn kind(&self) -> OperationKind {
        match self {
            Operation::Upsert { .. } => OperationKind::Upsert,
            Operation::Delete => OperationKind::Delete,
        }
    }
}

/// Which operation an event asked for, as statuses and 202 answers report it
/// (`"upsert"`, `"delete"`, or `"unreadable"` for a record this version cannot read).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OperationKind {
    Upsert,
    Delete,
    Unreadable,
}

/// One accepted event, durable in the log before the client hears 202. Its tenant is a
/// [`Tenant`]: a record whose tenant is not a valid name does not decode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub tenant: Tenant,
    pub id: DocId,
    pub collection: CollectionName,
    #[serde(flatten)]
    pub operation: Operation,
    /// The accepting request's correlation id, carried into the worker's logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// Seconds since the Unix epoch.
    pub received_at: u64,
}

impl Event {
    /// This event's status in `state` as record `seq` (see [`IngestStatus::new`]).
    pub fn status(&self, seq: u64, state: IngestState) -> IngestStatus {
        IngestStatus::new(
            seq,
            self.id.clone(),
            self.collection.to_string(),
            self.operation.kind(),
            state,
        )
    }

    /// Reads an event from a log record; a record this version cannot read gives an
    /// [`Unreadable`] with whatever of it can be read and why.
    pub fn decode(bytes: &[u8]) -> Result<Event, Unreadable> {
        serde_json::from_slice(bytes).map_err(|e| {
            let value = serde_json::from_slice::<Value>(bytes).ok();
            Unreadable::from_json(value.as_ref(), format!("unreadable event: {e}"))
        })
    }
}

/// A record the log holds but this version cannot read (written by another version,
/// or damaged). Never written to a log; the worker records it `failed` with the
/// reason where its tenant and id are known, so it neither stalls the log nor
/// vanishes (a Kafka log dead-letters it as well).
#[derive(Debug, Clone, PartialEq)]
pub struct Unreadable {
    /// The record's tenant, when it names a valid one; without it no status can be
    /// recorded where a client could read it.
    pub tenant: Option<Tenant>,
    /// The record's document id, when it holds a valid one.
    pub id: Option<DocId>,
    /// Empty when unknown.
    pub collection: String,
    pub correlation_id: Option<String>,
    pub reason: String,
}

impl Unreadable {
    /// Record `seq`'s final status (`failed`, operation `unreadable`, with the reason)
    /// and whose it is, when the record names a valid tenant and document id; without
    /// them no client could read a status.
    pub fn failed_status(self, seq: u64) -> Option<(Tenant, IngestStatus)> {
        let (tenant, id) = (self.tenant?, self.id?);
        let status = IngestStatus {
            error: Some(self.reason),
            ..IngestStatus::new(
                seq,
                id,
                self.collection,
                OperationKind::Unreadable,
                IngestState::Failed,
            )
        };
        Some((tenant, status))
    }

    /// What can be read of a record that did not decode; `value` is the record as
    /// JSON, when it is JSON at all.
    pub fn from_json(value: Option<&Value>, reason: String) -> Unreadable {
        let field = |name: &str| value.and_then(|v| v.get(name)).and_then(Value::as_str);
        Unreadable {
            tenant: field("tenant").and_then(Tenant::parse),
            id: field("id").and_then(DocId::parse),
            collection: field("collection").unwrap_or_default().to_owned(),
            correlation_id: field("correlation_id").map(str::to_owned),
            reason,
        }
    }
}

/// A log record with its position: an event, or what could be read of one that did
/// not decode.
#[derive(Debug, Clone, PartialEq)]
pub struct LogEntry {
    pub seq: u64,
    pub event: Result<Event, Unreadable>,
}

impl LogEntry {
    /// The record's tenant and document id, when it names valid ones.
    pub fn document(&self) -> Option<(&Tenant, &DocId)> {
        match &self.event {
            Ok(e) => Some((&e.tenant, &e.id)),
            Err(u) => u.tenant.as_ref().zip(u.id.as_ref()),
        }
    }

    pub fn correlation_id(&self) -> Option<&str> {
        match &self.event {
            Ok(e) => e.correlation_id.as_deref(),
            Err(u) => u.correlation_id.as_deref(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum IngestState {
    Pending,
    Processed,
    Failed,
}

/// What `GET /ingest/{id}` reports. `seq` ties the status to the newest event for the
/// document, so an older event finishing late cannot overwrite a newer one's status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IngestStatus {
    pub id: DocId,
    pub status: IngestState,
    pub operation: OperationKind,
    pub collection: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chunks: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entities: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Seconds since the Unix epoch.
    pub updated_at: u64,
    pub seq: u64,
}

impl IngestStatus {
    /// Record `seq`'s status in `state`: no counts or error yet, and not stamped
    /// (`updated_at` is set where it is stored).
    pub fn new(
        seq: u64,
        id: DocId,
        collection: String,
        operation: OperationKind,
        status: IngestState,
    ) -> Self {
        IngestStatus {
            id,
            status,
            operation,
            collection,
            chunks: None,
            entities: None,
            error: None,
            updated_at: 0,
            seq,
        }
    }
}

/// How the worker finished one event; applied together with the offset commit.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The document is now as the event said (or the event failed): update its status.
    Done {
        tenant: Tenant,
        status: IngestStatus,
    },
    /// The document was deleted: drop its status (if it is still this event's).
    Deleted { tenant: Tenant, id: DocId, seq: u64 },
}

/// Namespace of chunk point ids: `UUIDv5(CHUNK_NAMESPACE, "tenant/doc/index")`.
const CHUNK_NAMESPACE: Uuid = Uuid::from_u128(0x6f1d_1c8e_4a0b_5d7e_9c43_2b6a_8e51_d0f4);

/// The point id (and graph node id) of chunk `index` of document `doc` in `tenant`:
/// the same inputs always give the same id, which makes re-ingest idempotent.
pub fn chunk_id(tenant: &str, doc: &str, index: usize) -> Uuid {
    // Lengths make the name unambiguous whatever characters the document id holds.
    let name = format!("{}:{tenant}/{}:{doc}/{index}", tenant.len(), doc.len());
    Uuid::new_v5(&CHUNK_NAMESPACE, name.as_bytes())
}

/// Graph node id of a document.
pub fn document_node_id(doc: &str) -> String {
    format!("{DOCUMENT_NODE_PREFIX}{doc}")
}

const DOCUMENT_NODE_PREFIX: &str = "doc:";

/// The labels of the nodes ingest writes, and the types of its relationships: the graph
/// API neither writes nor deletes these, so a client cannot give an entity a second node
/// under its id, or a count the pipeline cannot add to.
pub const INGEST_LABELS: [&str; 3] = ["Document", "Chunk", "Entity"];
pub const INGEST_RELATIONSHIPS: [&str; 3] = ["PART_OF", "MENTIONS", "RELATED_TO"];

/// Whether `id` is in the id space of ingest's document and entity nodes (`doc:…`,
/// `entity:…`). Chunk nodes carry their point's UUID.
pub fn is_ingest_node_id(id: &str) -> bool {
    id.starts_with(DOCUMENT_NODE_PREFIX) || id.starts_with(EntityId::PREFIX)
}

/// The graph node id of an entity, `entity:<key>` with the key as ingest normalised it
/// (see `services::ingest::entities`). Built from a key, or parsed from a node id read
/// back from the graph, so it cannot be mixed up with a chunk's or a document's id.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct EntityId(String);

impl EntityId {
    const PREFIX: &'static str = "entity:";

    pub fn from_key(key: &str) -> Self {
        EntityId(format!("{}{key}", Self::PREFIX))
    }

    /// A node id ingest wrote for an entity; `None` for any other (graphs written before
    /// the graph API kept to its own ids may hold an `Entity` node of a client's).
    pub fn parse(node_id: &str) -> Option<Self> {
        node_id
            .strip_prefix(Self::PREFIX)
            .is_some_and(|key| !key.is_empty())
            .then(|| EntityId(node_id.to_owned()))
    }
}

string_newtype!(EntityId);

/// The graph one processed document becomes: `(:Document)<-[:PART_OF]-(:Chunk)
/// -[:MENTIONS]->(:Entity)`, plus `RELATED_TO {weight}` between entities that share a
/// chunk (weight = number of chunks they share).
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentGraph {
    pub doc_id: DocId,
    pub collection: CollectionName,
    /// Document properties (e.g. a title from the metadata).
    pub properties: Map<String, Value>,
    pub chunks: Vec<ChunkNode>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChunkNode {
    pub id: String,
    pub index: usize,
    /// Entities the chunk mentions, with their display names; keys are unique.
    pub entities: Vec<EntityRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntityRef {
    /// Graph node id (`entity:<key>`).
    pub id: EntityId,
    pub name: String,
    /// How many chunks mention it, as kept by ingest (0 where not read back): rare
    /// entities are specific, hubs are not.
    pub mentions: u64,
}

/// A chunk-to-entity link read back from the graph.
#[derive(Debug, Clone, PartialEq)]
pub struct Mention {
    pub chunk: String,
    pub entity: EntityRef,
}

/// The stored version of a document, as its `Document` node records it: the collection
/// its points are in and how many chunks it has (their ids are `0..chunks`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentExtent {
    pub doc_id: DocId,
    pub collection: CollectionName,
    pub chunks: usize,
}

/// A chunk that mentions an entity, by node ids.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkLink {
    pub chunk: String,
    pub entity: EntityId,
}

/// An entity reached from another over `RELATED_TO`.
#[derive(Debug, Clone, PartialEq)]
pub struct Related {
    pub from: EntityId,
    pub entity: EntityRef,
    pub weight: f64,
}

/// How many chunks each pair of entities shares, keyed `(smaller id, larger id)`.
pub fn co_occurrence<'a>(
    chunks: impl IntoIterator<Item = Vec<&'a str>>,
) -> std::collections::BTreeMap<(String, String), i64> {
    let mut pairs = std::collections::BTreeMap::new();
    for mut ids in chunks {
        ids.sort_unstable();
        ids.dedup();
        for (i, a) in ids.iter().enumerate() {
            for b in &ids[i + 1..] {
                *pairs.entry(((*a).to_owned(), (*b).to_owned())).or_insert(0) += 1;
            }
        }
    }
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_ids_are_checked_wherever_they_come_from() {
        assert_eq!(DocId::parse("doc-1 é").unwrap().as_str(), "doc-1 é");
        let too_long = "x".repeat(DocId::MAX_BYTES + 1);
        for bad in ["", "a\nb", "admin\u{202E}txt", too_long.as_str()] {
            assert!(DocId::parse(bad).is_none(), "{bad:?}");
        }
        // A log record whose id is not one does not decode, and names no document.
        let record = serde_json::json!({
            "tenant": "acme", "id": "a\u{0}b", "collection": "documents",
            "op": "delete", "received_at": 0,
        });
        let bad = Event::decode(record.to_string().as_bytes()).unwrap_err();
        assert_eq!(
            (bad.tenant.as_ref().map(Tenant::as_str), &bad.id),
            (Some("acme"), &None)
        );
        assert!(
            bad.failed_status(7).is_none(),
            "no status without a document id"
        );
        let good = serde_json::json!({
            "tenant": "acme", "id": "a", "collection": "documents",
            "op": "delete", "received_at": 0,
        });
        let event = Event::decode(good.to_string().as_bytes()).unwrap();
        assert_eq!(
            (event.id.as_str(), event.collection.as_str()),
            ("a", "documents")
        );
        let bad_collection = serde_json::json!({
            "tenant": "acme", "id": "a", "collection": "../etc",
            "op": "delete", "received_at": 0,
        });
        assert!(Event::decode(bad_collection.to_string().as_bytes()).is_err());
    }

    #[test]
    fn entity_ids_are_the_node_ids_ingest_writes() {
        let paris = EntityId::from_key("paris");
        assert_eq!(paris.as_str(), "entity:paris");
        assert_eq!(EntityId::parse("entity:paris"), Some(paris));
        // A client's own `Entity` node, a chunk's or a document's id is not one.
        for other in [
            "paris",
            "entity:",
            "doc:paris",
            "6f1d1c8e-4a0b-5d7e-9c43-2b6a8e51d0f4",
        ] {
            assert_eq!(EntityId::parse(other), None, "{other:?}");
        }
    }

    #[test]
    fn chunk_ids_are_stable_and_unambiguous() {
        assert_eq!(chunk_id("t", "doc", 0), chunk_id("t", "doc", 0));
        assert_ne!(chunk_id("t", "doc", 0), chunk_id("t", "doc", 1));
        assert_ne!(chunk_id("t", "a/b", 0), chunk_id("t/a", "b", 0));
        assert_ne!(chunk_id("other", "doc", 0), chunk_id("t", "doc", 0));
    }

    #[test]
    fn co_occurrence_counts_shared_chunks_once_per_chunk() {
        let pairs = co_occurrence([vec!["b", "a", "a"], vec!["a", "b", "c"], vec!["c"]]);
        assert_eq!(pairs[&("a".into(), "b".into())], 2);
        assert_eq!(pairs[&("a".into(), "c".into())], 1);
        assert_eq!(pairs[&("b".into(), "c".into())], 1);
        assert_eq!(pairs.len(), 3);
    }
}
