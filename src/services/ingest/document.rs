//! What one ingest event becomes: its chunk points, its document subgraph and its
//! status, and the clean-up of what an older version of the document left behind.

use serde_json::{Map, Value};

use super::entities::Entity;
use super::{ENTITIES_KEY, IngestService};
use crate::domain::ingest::{
    ChunkNode, DocId, DocumentExtent, DocumentGraph, EntityId, EntityRef, Event, IngestState,
    IngestStatus, Operation, Outcome, chunk_id,
};
use crate::domain::payload::{self, ChunkPayload};
use crate::domain::principal::Tenant;
use crate::domain::vector::{
    CollectionName, Condition, Filter, MatchSpec, MatchValue, Point, PointId,
};
use crate::store::{ErrorKind, StoreError};

/// One document on its way through the batch.
pub(super) struct Doc {
    pub(super) seq: u64,
    pub(super) event: Event,
    /// Chunk texts and their entities; empty for a delete.
    pub(super) chunks: Vec<(String, Vec<Entity>)>,
    pub(super) vectors: Vec<Vec<f32>>,
}

pub(super) fn processed(doc: &Doc) -> Outcome {
    let entities = doc
        .chunks
        .iter()
        .flat_map(|(_, found)| found.iter().map(|e| e.key.as_str()))
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    Outcome::Done {
        tenant: doc.event.tenant.clone(),
        status: status(
            doc.seq,
            &doc.event,
            IngestState::Processed,
            Some((doc.chunks.len(), entities)),
            None,
        ),
    }
}

/// Entities the client named: `metadata.title` (the document is about it) and each of
/// `metadata.entities`.
pub(super) fn metadata_entities(metadata: &Map<String, Value>) -> Vec<String> {
    let names = metadata
        .get(ENTITIES_KEY)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str);
    payload::metadata_title(metadata)
        .into_iter()
        .chain(names)
        .map(str::to_owned)
        .collect()
}

/// What is embedded for a chunk: the chunk, after the document's title unless the chunk
/// already starts with it, so every chunk carries what its document is about.
pub(super) fn embedding_text(title: Option<&str>, chunk: &str) -> String {
    match title {
        Some(t) if !chunk.starts_with(t) => format!("{t}\n{chunk}"),
        _ => chunk.to_owned(),
    }
}

pub(super) fn status(
    seq: u64,
    event: &Event,
    state: IngestState,
    counts: Option<(usize, usize)>,
    error: Option<String>,
) -> IngestStatus {
    IngestStatus {
        chunks: counts.map(|c| c.0),
        entities: counts.map(|c| c.1),
        error,
        ..event.status(seq, state)
    }
}

pub(super) fn points(doc: &Doc) -> Vec<Point> {
    let Operation::Upsert { metadata, .. } = &doc.event.operation else {
        return Vec::new();
    };
    doc.chunks
        .iter()
        .zip(&doc.vectors)
        .enumerate()
        .map(|(index, ((text, entities), vector))| {
            let payload = ChunkPayload {
                text: text.clone(),
                doc_id: doc.event.id.to_string(),
                chunk_index: index,
                entities: entities.iter().map(|e| e.name.clone()).collect(),
                metadata: metadata.clone(),
            };
            Point {
                id: PointId::Uuid(chunk_id(doc.event.tenant.as_str(), &doc.event.id, index)),
                vector: vector.clone(),
                payload: payload.into_map(),
            }
        })
        .collect()
}

pub(super) fn document_graph(doc: &Doc) -> DocumentGraph {
    let mut properties = Map::new();
    if let Operation::Upsert { metadata, .. } = &doc.event.operation
        && let Some(title) = metadata.get("title").and_then(Value::as_str)
    {
        properties.insert("title".into(), title.into());
    }
    DocumentGraph {
        doc_id: doc.event.id.clone(),
        collection: doc.event.collection.clone(),
        properties,
        chunks: doc
            .chunks
            .iter()
            .enumerate()
            .map(|(index, (_, entities))| ChunkNode {
                id: chunk_id(doc.event.tenant.as_str(), &doc.event.id, index).to_string(),
                index,
                entities: entities
                    .iter()
                    .map(|e| EntityRef {
                        mentions: 0,
                        id: EntityId::from_key(&e.key),
                        name: e.name.clone(),
                    })
                    .collect(),
            })
            .collect(),
    }
}

impl IngestService {
    /// Collection and chunk count of the version now in the graph, if any.
    pub(super) async fn previous(
        &self,
        tenant: &Tenant,
        id: &DocId,
    ) -> Result<Option<DocumentExtent>, StoreError> {
        let mut found = self
            .graph
            .document_extents(tenant, vec![id.clone()])
            .await?;
        Ok(found.pop())
    }

    /// Deletes chunk points `range` of the document; a missing collection holds none.
    pub(super) async fn delete_points(
        &self,
        tenant: &Tenant,
        collection: &CollectionName,
        id: &DocId,
        range: std::ops::Range<usize>,
    ) -> Result<(), StoreError> {
        let result = if range.is_empty() {
            // Unknown extent (no graph record): delete by the doc_id payload field.
            let filter = Filter {
                must: vec![Condition {
                    key: Some(payload::DOC_ID.into()),
                    matches: Some(MatchSpec {
                        value: Some(MatchValue::Keyword(id.to_string())),
                        any: None,
                    }),
                    ..Condition::default()
                }],
                ..Filter::default()
            };
            self.vectors
                .delete_by_filter(tenant, collection, filter)
                .await
        } else {
            let ids = range
                .map(|i| PointId::Uuid(chunk_id(tenant.as_str(), id, i)))
                .collect();
            self.vectors.delete_ids(tenant, collection, ids).await
        };
        match result {
            Err(e) if e.kind != ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}
