//! The Kafka adapter's messages: an ingest event as the topic carries it (key, value
//! and headers), and a consumed message decoded back into a log entry, unreadable ones
//! included.

use std::collections::HashMap;

use rdkafka::Message;
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
use serde::{Deserialize, Serialize};

use crate::domain::ingest::{DocId, Event, LogEntry, Unreadable};
use crate::domain::principal::Tenant;
use crate::store::{StoreError, StoreResult};

/// The message value: the event and the sequence number its status is keyed by.
#[derive(Serialize, Deserialize)]
struct Envelope {
    seq: u64,
    event: Event,
}

/// The largest message an event the API accepts encodes to, headers included: JSON
/// writes a control character in six bytes, so the text (`ingest.max_text_bytes`)
/// counts six-fold; the metadata is bounded as JSON already
/// (`ingest.max_metadata_bytes`); ids, names, headers and the envelope fit in the
/// margin. The producer and the topics the server creates allow this much.
pub fn largest_message(max_text_bytes: usize, max_metadata_bytes: usize) -> usize {
    const MARGIN: usize = 64 * 1024;
    max_text_bytes
        .saturating_mul(6)
        .saturating_add(max_metadata_bytes)
        .saturating_add(MARGIN)
        .min(LIBRDKAFKA_MAX)
}

/// The most librdkafka's `message.max.bytes` takes.
const LIBRDKAFKA_MAX: usize = 1_000_000_000;

/// A message handed to the worker and not yet committed.
#[derive(Clone)]
pub(super) struct Delivered {
    pub(super) partition: i32,
    pub(super) offset: i64,
    pub(super) entry: LogEntry,
    pub(super) payload: Vec<u8>,
}

/// An event's message: its key (`tenant/document`, so one document's events stay in
/// order on one partition), its value (the [`Envelope`]) and its headers: `tenant`,
/// `correlation-id` when the request had one, and the trace context in `trace`.
pub(super) fn encode(
    event: &Event,
    seq: u64,
    trace: &HashMap<String, String>,
) -> StoreResult<(String, Vec<u8>, OwnedHeaders)> {
    let envelope = Envelope {
        seq,
        event: event.clone(),
    };
    let payload = serde_json::to_vec(&envelope)
        .map_err(|e| StoreError::internal(format!("encoding event: {e}")))?;
    let mut headers = OwnedHeaders::new().insert(Header {
        key: "tenant",
        value: Some(event.tenant.as_str()),
    });
    if let Some(id) = &event.correlation_id {
        headers = headers.insert(Header {
            key: "correlation-id",
            value: Some(id.as_str()),
        });
    }
    for (key, value) in trace {
        headers = headers.insert(Header {
            key: key.as_str(),
            value: Some(value.as_str()),
        });
    }
    Ok((format!("{}/{}", event.tenant, event.id), payload, headers))
}

/// Decodes a message. One that does not decode still becomes an entry, an
/// [`Unreadable`], so the worker records it failed (and `complete` dead-letters it)
/// instead of dropping it in silence; its document is named by the message key
/// (`tenant/document`) when the value cannot say.
pub(super) fn decode(message: &OwnedMessage) -> Delivered {
    let payload = message.payload().unwrap_or_default().to_vec();
    let (partition, offset) = (message.partition(), message.offset());
    let entry = match serde_json::from_slice::<Envelope>(&payload) {
        Ok(Envelope { seq, event }) => LogEntry {
            seq,
            event: Ok(event),
        },
        Err(e) => {
            tracing::warn!(partition, offset, error = %e, "unreadable ingest event");
            let value = serde_json::from_slice::<serde_json::Value>(&payload).ok();
            let mut unreadable = Unreadable::from_json(
                value.as_ref().and_then(|v| v.get("event")),
                format!("unreadable event: {e}"),
            );
            let key = String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned();
            if let Some((tenant, id)) = key.split_once('/') {
                if unreadable.tenant.is_none() {
                    unreadable.tenant = Tenant::parse(tenant);
                }
                if unreadable.id.is_none() {
                    unreadable.id = DocId::parse(id);
                }
            }
            // Its status is keyed by the sequence number, when that can be read.
            let seq = value
                .as_ref()
                .and_then(|v| v.get("seq"))
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0);
            LogEntry {
                seq,
                event: Err(unreadable),
            }
        }
    };
    Delivered {
        partition,
        offset,
        entry,
        payload,
    }
}
