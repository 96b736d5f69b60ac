//! Ingest: accept events (validate, append durably, answer 202), report each
//! document's status, and queue deletions. The [`worker`] turns events into chunks,
//! vectors and graph; [`chunk`] and [`entities`] are its text rules.

pub mod chunk;
mod document;
pub mod entities;
pub mod worker;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::domain::ingest::{Event, IngestStatus, Operation};
use crate::domain::principal::Principal;
use crate::domain::unix_now;
use crate::error::{ApiError, Result};
use crate::services::vectors::collection_name;
use crate::services::{bounded, bounded_json};
use crate::state::AppState;
use crate::store::ErrorKind;

/// Metadata key whose string list names entities the text may not spell out.
pub const ENTITIES_KEY: &str = "entities";

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IngestRequest {
    /// The document id; generated (UUIDv4) when absent. Re-using an id replaces the
    /// document.
    pub id: Option<String>,
    pub text: String,
    #[serde(default)]
    pub metadata: Map<String, Value>,
    pub collection: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    pub events: Vec<IngestRequest>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Accepted {
    pub id: String,
    pub status: &'static str,
    pub operation: &'static str,
    pub collection: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BatchAccepted {
    pub accepted: Vec<Accepted>,
}

fn check_doc_id(id: &str, state: &AppState) -> Result<()> {
    bounded(
        "document id length in bytes",
        id.len(),
        1,
        state.settings.limits.max_id_len,
    )?;
    if !crate::domain::is_displayable_id(id) {
        return Err(ApiError::Unprocessable(
            "document id must not contain control or bidirectional-text characters".into(),
        ));
    }
    Ok(())
}

/// Checks one event and turns it into a log entry for the caller's tenant.
async fn validate(state: &AppState, who: &Principal, req: IngestRequest) -> Result<Event> {
    let settings = &state.settings.ingest;
    let id = req.id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    check_doc_id(&id, state)?;
    bounded(
        "text length in bytes",
        req.text.len(),
        1,
        settings.max_text_bytes,
    )?;
    if req.text.trim().is_empty() {
        return Err(ApiError::Unprocessable("text must not be blank".into()));
    }
    bounded_json("metadata", &req.metadata, settings.max_metadata_bytes)?;
    if let Some(names) = req.metadata.get(ENTITIES_KEY) {
        let names = names.as_array().ok_or_else(|| {
            ApiError::Unprocessable("metadata.entities must be a list of names".into())
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
            return Err(ApiError::Unprocessable(format!(
                "each of metadata.entities must be a name of 1 to {} characters",
                entities::MAX_NAME_CHARS
            )));
        }
    }
    let collection = collection_name(state, req.collection)?;
    check_collection_dim(state, who, &collection).await?;
    Ok(Event {
        tenant: who.tenant.to_string(),
        id,
        collection,
        operation: Operation::Upsert {
            text: req.text,
            metadata: req.metadata,
        },
        correlation_id: crate::http::correlation::current(),
        received_at: unix_now(),
    })
}

/// An existing collection must take the embedder's vectors; a missing one is created
/// by the worker.
async fn check_collection_dim(state: &AppState, who: &Principal, collection: &str) -> Result<()> {
    match state.vectors.collection_info(&who.tenant, collection).await {
        Ok(info) if info.dim != state.embedder.dim() => Err(ApiError::Unprocessable(format!(
            "collection {collection:?} has {} dimensions; the embedder makes {}",
            info.dim,
            state.embedder.dim()
        ))),
        Err(e) if e.kind != ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

fn accepted(event: &Event) -> Accepted {
    Accepted {
        id: event.id.clone(),
        status: "pending",
        operation: event.operation.name(),
        collection: event.collection.clone(),
    }
}

pub async fn ingest(state: &AppState, who: &Principal, req: IngestRequest) -> Result<Accepted> {
    let event = validate(state, who, req).await?;
    let out = accepted(&event);
    append(state, vec![event]).await?;
    Ok(out)
}

/// Appends durably and counts the events as accepted.
async fn append(state: &AppState, events: Vec<Event>) -> Result<()> {
    let n = events.len() as u64;
    state.events.append(events).await?;
    state
        .metrics
        .ingest_events_total
        .with_label_values(&["accepted"])
        .inc_by(n);
    Ok(())
}

/// All or nothing: every event is validated before any is appended, and all are
/// appended in one durable step.
pub async fn ingest_batch(
    state: &AppState,
    who: &Principal,
    req: BatchRequest,
) -> Result<BatchAccepted> {
    bounded(
        "number of events",
        req.events.len(),
        1,
        state.settings.ingest.max_batch_events,
    )?;
    let mut events = Vec::with_capacity(req.events.len());
    for (i, event) in req.events.into_iter().enumerate() {
        let event = validate(state, who, event).await.map_err(|e| match e {
            ApiError::Unprocessable(m) => ApiError::Unprocessable(format!("events[{i}]: {m}")),
            other => other,
        })?;
        events.push(event);
    }
    let accepted = events.iter().map(accepted).collect();
    append(state, events).await?;
    Ok(BatchAccepted { accepted })
}

pub async fn status(state: &AppState, who: &Principal, id: &str) -> Result<IngestStatus> {
    check_doc_id(id, state)?;
    state
        .events
        .status(&who.tenant, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no document {id:?}")))
}

/// Queues the document's removal behind any pending event for it, so an ingest
/// accepted earlier cannot bring it back.
pub async fn delete(state: &AppState, who: &Principal, id: &str) -> Result<Accepted> {
    let current = status(state, who, id).await?;
    let event = Event {
        tenant: who.tenant.to_string(),
        id: id.to_owned(),
        collection: current.collection,
        operation: Operation::Delete,
        correlation_id: crate::http::correlation::current(),
        received_at: unix_now(),
    };
    let out = accepted(&event);
    append(state, vec![event]).await?;
    Ok(out)
}
