//! Ingest: accept events (validate, append durably, answer 202), report each
//! document's status, and queue deletions. The [`worker`] turns events into chunks,
//! vectors and graph; [`chunk`] and [`entities`] are its text rules.

mod backlog;
pub mod chunk;
mod document;
pub mod entities;
pub mod worker;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::{Limits, Settings};
use crate::domain::ingest::{DocId, Event, IngestState, IngestStatus, Operation, OperationKind};
use crate::domain::principal::Principal;
use crate::domain::unix_now;
use crate::domain::vector::CollectionName;
use crate::domain::{DisplayedId, Name};
use crate::embed::Embedder;
use crate::metrics::Metrics;
use crate::services::error::{Result, ServiceError};
use crate::services::quota::Kept;
use crate::services::vectors::{VectorService, room_for_one_more};
use crate::services::{bounded, bounded_json};
use crate::store::ErrorKind;
use crate::store::{EventLog, GraphStore, VectorStore};

/// Metadata key whose string list names entities the text may not spell out.
pub const ENTITIES_KEY: &str = "entities";

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IngestRequest {
    /// The document id; generated (UUIDv4) when absent. Re-using an id replaces the
    /// document.
    #[schema(value_type = Option<DisplayedId>)]
    pub id: Option<String>,
    #[schema(min_length = 1)]
    pub text: String,
    /// Kept with every chunk. `title` (a string) becomes an entity of every chunk and is
    /// embedded with each; `entities` (a list of strings) names entities the text may
    /// not spell out.
    #[serde(default)]
    pub metadata: Map<String, Value>,
    #[schema(value_type = Option<Name>)]
    pub collection: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    #[schema(min_items = 1)]
    pub events: Vec<IngestRequest>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Accepted {
    pub id: DocId,
    pub status: IngestState,
    pub operation: OperationKind,
    pub collection: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BatchAccepted {
    pub accepted: Vec<Accepted>,
}

/// A client's document id, within the configured length.
fn doc_id(id: String, limits: &Limits) -> Result<DocId> {
    bounded(
        "document id length in bytes",
        id.len(),
        1,
        limits.max_id_len.get(),
    )?;
    DocId::try_from(id).map_err(ServiceError::Invalid)
}

/// Accepts documents into the event log and runs the worker that chunks, embeds and
/// stores them as points and graph.
#[derive(Clone)]
pub struct IngestService {
    settings: Arc<Settings>,
    vectors: Arc<dyn VectorStore>,
    graph: Arc<dyn GraphStore>,
    events: Arc<dyn EventLog>,
    embedder: Arc<dyn Embedder>,
    metrics: Arc<Metrics>,
    /// Collection names and defaults, as the vector API resolves them, and the tenants'
    /// quotas.
    collections: VectorService,
    backlog: backlog::Backlog,
}

impl IngestService {
    pub fn new(
        settings: Arc<Settings>,
        vectors: Arc<dyn VectorStore>,
        graph: Arc<dyn GraphStore>,
        events: Arc<dyn EventLog>,
        embedder: Arc<dyn Embedder>,
        metrics: Arc<Metrics>,
        collections: VectorService,
    ) -> Self {
        Self {
            settings,
            vectors,
            graph,
            events,
            embedder,
            metrics,
            collections,
            backlog: backlog::Backlog::default(),
        }
    }

    /// Events accepted but not yet processed by the worker.
    pub async fn pending(&self) -> Result<u64> {
        Ok(self.events.pending().await?)
    }
}

impl IngestService {
    /// Checks one event and turns it into a log entry for the caller's tenant.
    async fn validate(&self, who: &Principal, req: IngestRequest) -> Result<Event> {
        let settings = &self.settings.ingest;
        let id = req.id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let id = doc_id(id, &self.settings.limits)?;
        bounded(
            "text length in bytes",
            req.text.len(),
            1,
            settings.max_text_bytes.get(),
        )?;
        if req.text.trim().is_empty() {
            return Err(ServiceError::Invalid("text must not be blank".into()));
        }
        bounded_json("metadata", &req.metadata, settings.max_metadata_bytes)?;
        if let Some(names) = req.metadata.get(ENTITIES_KEY) {
            let names = names.as_array().ok_or_else(|| {
                ServiceError::Invalid("metadata.entities must be a list of names".into())
            })?;
            bounded(
                "number of metadata.entities",
                names.len(),
                0,
                settings.max_entities_per_chunk,
            )?;
            if names
                .iter()
                .any(|n| n.as_str().and_then(entities::normalize).is_none())
            {
                return Err(ServiceError::Invalid(format!(
                    "each of metadata.entities must be a name of 1 to {} characters",
                    entities::MAX_NAME_CHARS
                )));
            }
        }
        let collection = self.collections.collection_name(req.collection)?;
        self.check_collection_dim(who, &collection).await?;
        Ok(Event {
            tenant: who.tenant.clone(),
            id,
            collection,
            operation: Operation::Upsert {
                text: req.text,
                metadata: req.metadata,
            },
            correlation_id: crate::context::current(),
            received_at: unix_now(),
        })
    }

    /// An existing collection must take the embedder's vectors; a missing one is created
    /// by the worker, if the tenant may have one more.
    async fn check_collection_dim(
        &self,
        who: &Principal,
        collection: &CollectionName,
    ) -> Result<()> {
        match self.vectors.collection_spec(&who.tenant, collection).await {
            Ok(spec) if spec.dim != self.embedder.dim() => Err(ServiceError::Invalid(format!(
                "collection {collection:?} has {} dimensions; the embedder makes {}",
                spec.dim,
                self.embedder.dim()
            ))),
            Err(e) if e.kind != ErrorKind::NotFound => Err(e.into()),
            Err(_) => {
                let max = self.settings.limits.max_collections.get();
                let store = self.vectors.as_ref();
                Ok(room_for_one_more(store, &who.tenant, max).await?)
            }
            Ok(_) => Ok(()),
        }
    }

    pub async fn ingest(&self, who: &Principal, req: IngestRequest) -> Result<Accepted> {
        let event = self.validate(who, req).await?;
        let out = accepted(&event);
        self.take_quotas(who, 1).await?;
        self.append(vec![event]).await?;
        Ok(out)
    }

    /// Refuses documents the tenant's quotas have no room for: each makes at least one
    /// point and one chunk node.
    async fn take_quotas(&self, who: &Principal, documents: u64) -> Result<()> {
        let quotas = &self.collections.quotas;
        quotas.take(&who.tenant, Kept::Points, documents).await?;
        quotas.take(&who.tenant, Kept::GraphItems, documents).await
    }

    /// Appends durably, if the backlog has room, and counts the events as accepted.
    async fn append(&self, events: Vec<Event>) -> Result<()> {
        let n = events.len() as u64;
        let max = self.settings.ingest.max_pending;
        self.backlog.admit(self.events.as_ref(), n, max).await?;
        self.events.append(events).await?;
        self.metrics
            .ingest_events_total
            .with_label_values(&["accepted"])
            .inc_by(n);
        Ok(())
    }

    /// All or nothing: every event is validated before any is appended, and all are
    /// appended in one durable step.
    pub async fn ingest_batch(&self, who: &Principal, req: BatchRequest) -> Result<BatchAccepted> {
        bounded(
            "number of events",
            req.events.len(),
            1,
            self.settings.ingest.max_batch_events.get(),
        )?;
        let mut events = Vec::with_capacity(req.events.len());
        for (i, event) in req.events.into_iter().enumerate() {
            let event = self.validate(who, event).await.map_err(|e| match e {
                ServiceError::Invalid(m) => ServiceError::Invalid(format!("events[{i}]: {m}")),
                other => other,
            })?;
            events.push(event);
        }
        let accepted = events.iter().map(accepted).collect();
        self.take_quotas(who, events.len() as u64).await?;
        self.append(events).await?;
        Ok(BatchAccepted { accepted })
    }

    pub async fn status(&self, who: &Principal, id: String) -> Result<IngestStatus> {
        let id = doc_id(id, &self.settings.limits)?;
        self.events
            .status(&who.tenant, &id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("no document {id:?}")))
    }

    /// Queues the document's removal behind any pending event for it, so an ingest
    /// accepted earlier cannot bring it back.
    pub async fn delete(&self, who: &Principal, id: String) -> Result<Accepted> {
        let current = self.status(who, id).await?;
        // The worker removes the points wherever the graph says they are; a status
        // from a record that could not be read may name no valid collection.
        let collection = match CollectionName::parse(&current.collection) {
            Some(c) => c,
            None => self.collections.collection_name(None)?,
        };
        let event = Event {
            tenant: who.tenant.clone(),
            id: current.id,
            collection,
            operation: Operation::Delete,
            correlation_id: crate::context::current(),
            received_at: unix_now(),
        };
        let out = accepted(&event);
        self.append(vec![event]).await?;
        Ok(out)
    }
}

fn accepted(event: &Event) -> Accepted {
    Accepted {
        id: event.id.clone(),
        status: IngestState::Pending,
        operation: event.operation.kind(),
        collection: event.collection.to_string(),
    }
}
