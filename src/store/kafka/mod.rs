//! [`EventLog`] on Kafka (`rdkafka`, bundled librdkafka): ingest events go to one topic
//! through an idempotent producer with `acks=all`, keyed `tenant/document` so each
//! document's events stay in order on one partition, with the request's correlation id
//! in a `correlation-id` header. Statuses, sequence numbers and the backlog count live
//! in Redis ([`RedisIngestState`]), since Kafka cannot answer "what happened to
//! document X".
//!
//! The worker consumes in a consumer group with auto-commit off: offsets are committed
//! only in [`EventLog::complete`], after the outcomes are recorded, so a crash replays
//! the batch (processing is idempotent). A batch that failed is handed out again by the
//! next `read`, with whatever arrived since. Events that cannot be decoded reach the
//! worker as unreadable (it marks them failed); failed events are copied to the
//! dead-letter topic with the reason in an `error` header before their offsets commit.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio::sync::{Mutex, OnceCell};

use crate::config::KafkaSettings;
use crate::domain::ingest::{DocId, Event, IngestState, IngestStatus, LogEntry, Outcome};
use crate::domain::principal::Tenant;
use crate::store::embedded::events::pending_status;
use crate::store::redis::RedisIngestState;
use crate::store::resilient::{Resilience, Retry};
use crate::store::{EventLog, StoreError, StoreResult, TenantStatus, blocking};

mod admin;
mod message;
use admin::{connection_event, create_topics, kafka_err};
use message::Delivered;
pub use message::largest_message;

pub struct KafkaEventLog {
    /// Replaced when it reports a fatal error (see [`KafkaEventLog::send`]).
    producer: StdMutex<FutureProducer>,
    producer_config: ClientConfig,
    consumer_config: ClientConfig,
    consumer: OnceCell<Arc<StreamConsumer>>,
    /// Received by `wait`, not yet handed out.
    buffer: Mutex<VecDeque<OwnedMessage>>,
    inflight: StdMutex<Vec<Delivered>>,
    state: RedisIngestState,
    guard: Arc<Resilience>,
    topic: String,
    dead_letter_topic: String,
    timeout: Duration,
}

impl KafkaEventLog {
    /// Creates the topics when missing and connects the producer; the consumer joins
    /// its group on the first `read` or `wait`, so a server that runs no worker never
    /// takes partitions.
    /// `max_message_bytes` is the largest message an event may need
    /// ([`largest_message`]).
    pub async fn connect(
        settings: &KafkaSettings,
        state: RedisIngestState,
        guard: Arc<Resilience>,
        timeout: Duration,
        max_message_bytes: usize,
    ) -> StoreResult<Self> {
        let mut base = ClientConfig::new();
        base.set("bootstrap.servers", settings.brokers.as_str())
            .set("client.id", "ragbrain")
            .set("socket.timeout.ms", timeout.as_millis().max(10).to_string())
            // librdkafka waits up to 10 s between reconnects by default: after a broker
            // restart, ingest stayed down for seconds after the broker was back
            // (tests/api/chaos.rs). Reconnect attempts to one broker stay cheap.
            .set("reconnect.backoff.ms", "100")
            .set("reconnect.backoff.max.ms", "1000");
        create_topics(&base, settings, timeout, max_message_bytes).await?;
        let mut producer_config = base.clone();
        producer_config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            // librdkafka refuses a message over 1,000,000 bytes by default: a 1 MiB
            // document (or a smaller one that JSON escapes) got 502. Compression keeps
            // what the broker stores and checks against its own limit small.
            .set("message.max.bytes", max_message_bytes.to_string())
            .set("compression.type", "lz4")
            // Each POST /ingest waits for its acknowledgement, and librdkafka's default
            // 5 ms linger would be added to every one (benches/backends.rs: POST /ingest
            // p50 6.7 ms with it, 0.5 ms without). Concurrent sends still batch while
            // requests are in flight.
            .set("linger.ms", "0")
            .set(
                "message.timeout.ms",
                timeout.as_millis().max(1000).to_string(),
            );
        let producer: FutureProducer = producer_config.create().map_err(kafka_err)?;
        let mut consumer_config = base;
        consumer_config
            .set("group.id", settings.group_id.as_str())
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "10000");
        Ok(Self {
            producer: StdMutex::new(producer),
            producer_config,
            consumer_config,
            consumer: OnceCell::new(),
            buffer: Mutex::new(VecDeque::new()),
            inflight: StdMutex::new(Vec::new()),
            state,
            guard,
            topic: settings.topic.to_string(),
            dead_letter_topic: settings.dead_letter_topic.to_string(),
            timeout,
        })
    }

    async fn consumer(&self) -> StoreResult<&Arc<StreamConsumer>> {
        self.consumer
            .get_or_try_init(|| async {
                let consumer: StreamConsumer = self.consumer_config.create().map_err(kafka_err)?;
                consumer.subscribe(&[&self.topic]).map_err(kafka_err)?;
                Ok(Arc::new(consumer))
            })
            .await
    }

    fn producer(&self) -> FutureProducer {
        self.producer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// An idempotent producer whose state the broker no longer accepts refuses every
    /// later send: librdkafka raises a fatal error, or (seen with a broker restarted
    /// under it) keeps getting `ProducerFenced` for ever. The remedy is a new producer
    /// (a new producer id). Replaces `failed` unless another call already did, and says
    /// the backend is unavailable, so the caller retries.
    fn renew_producer(&self, failed: &FutureProducer, e: &KafkaError) -> Option<StoreError> {
        let reason = match failed.client().fatal_error() {
            Some((code, reason)) => format!("{code}: {reason}"),
            None => match e.rdkafka_error_code()? {
                code @ (RDKafkaErrorCode::ProducerFenced
                | RDKafkaErrorCode::InvalidProducerEpoch
                | RDKafkaErrorCode::UnknownProducerId
                | RDKafkaErrorCode::OutOfOrderSequenceNumber
                | RDKafkaErrorCode::InvalidProducerIdMapping) => code.to_string(),
                _ => return None,
            },
        };
        let mut current = self.producer.lock().unwrap_or_else(|p| p.into_inner());
        if std::ptr::eq(current.client().native_ptr(), failed.client().native_ptr()) {
            match self.producer_config.create::<FutureProducer>() {
                Ok(fresh) => {
                    tracing::warn!(%reason, "kafka producer refused for good; replaced it");
                    *current = fresh;
                }
                Err(e) => tracing::warn!(error = %e, "kafka producer could not be replaced"),
            }
        }
        Some(StoreError::unavailable(format!("kafka producer: {reason}")))
    }

    fn inflight(&self) -> std::sync::MutexGuard<'_, Vec<Delivered>> {
        self.inflight.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn send(
        &self,
        op: &'static str,
        topic: &str,
        key: &str,
        payload: &[u8],
        headers: OwnedHeaders,
    ) -> StoreResult<()> {
        self.guard
            .run(op, Retry::Once, || async {
                let record = FutureRecord::to(topic)
                    .key(key)
                    .payload(payload)
                    .headers(headers.clone());
                let producer = self.producer();
                match producer.send(record, self.timeout).await {
                    Ok(_) => Ok(()),
                    Err((e, _)) => Err(self.renew_producer(&producer, &e).unwrap_or(kafka_err(e))),
                }
            })
            .await
    }

    /// Copies a message to the dead-letter topic with the reason.
    async fn dead_letter(&self, key: &str, payload: &[u8], reason: &str) -> StoreResult<()> {
        let headers = OwnedHeaders::new().insert(Header {
            key: "error",
            value: Some(reason),
        });
        self.send(
            "dead_letter",
            &self.dead_letter_topic,
            key,
            payload,
            headers,
        )
        .await
    }

    /// Takes the next message: buffered by `wait`, else whatever is ready now.
    async fn next_message(&self, consumer: &StreamConsumer) -> StoreResult<Option<OwnedMessage>> {
        if let Some(m) = self.buffer.lock().await.pop_front() {
            return Ok(Some(m));
        }
        loop {
            match tokio::time::timeout(Duration::ZERO, consumer.recv()).await {
                Ok(Ok(m)) => return Ok(Some(m.detach())),
                Ok(Err(e)) if connection_event(&e) => continue,
                Ok(Err(e)) => return Err(kafka_err(e)),
                Err(_) => return Ok(None),
            }
        }
    }

    /// Commits, per partition, the offset after the last of `done`.
    async fn commit(&self, done: &[Delivered]) -> StoreResult<()> {
        let mut next: BTreeMap<i32, i64> = BTreeMap::new();
        for d in done {
            let offset = next.entry(d.partition).or_insert(d.offset + 1);
            *offset = (*offset).max(d.offset + 1);
        }
        if next.is_empty() {
            return Ok(());
        }
        let mut list = TopicPartitionList::new();
        for (partition, offset) in next {
            list.add_partition_offset(&self.topic, partition, Offset::Offset(offset))
                .map_err(kafka_err)?;
        }
        let consumer = self.consumer().await?.clone();
        self.guard
            .run("commit", Retry::Idempotent, || {
                let (consumer, list) = (consumer.clone(), list.clone());
                blocking(move || consumer.commit(&list, CommitMode::Sync).map_err(kafka_err))
            })
            .await
    }
}

#[async_trait]
impl EventLog for KafkaEventLog {
    async fn append(&self, events: Vec<Event>) -> StoreResult<Vec<u64>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let first = self.state.reserve(events.len()).await?;
        let statuses: Vec<(&Event, IngestStatus)> = events
            .iter()
            .enumerate()
            .map(|(i, e)| (e, pending_status(e, first + i as u64)))
            .collect();
        self.state.mark_pending(&statuses).await?;
        // Enqueued in order (so one document's events keep their order) and awaited
        // together: one round of broker acknowledgements for the whole batch.
        // The request's trace context (`traceparent`), for consumers that trace.
        let trace = crate::telemetry::inject();
        let trace = &trace;
        let sends = statuses.iter().map(|(event, status)| async move {
            let (key, payload, headers) = message::encode(event, status.seq, trace)?;
            self.send("append", &self.topic, &key, &payload, headers)
                .await
        });
        let sent = futures_util::future::join_all(sends).await;
        if let Some(Err(e)) = sent.into_iter().find(Result::is_err) {
            if let Err(unmark) = self.state.unmark(&statuses).await {
                tracing::warn!(error = %unmark, "statuses of unsent events left pending");
            }
            return Err(e);
        }
        Ok(statuses.iter().map(|(_, s)| s.seq).collect())
    }

    async fn read(&self, max: usize, max_bytes: usize) -> StoreResult<Vec<LogEntry>> {
        // A batch handed out and not completed is handed out again (a retry), with
        // whatever arrived since: events of one batch may reach the consumer from
        // different partitions at different times, and a retry must not be stuck with
        // the part that came first.
        let consumer = self.consumer().await?.clone();
        let mut held: usize = self.inflight().iter().map(|d| d.payload.len()).sum();
        while self.inflight().len() < max && held < max_bytes {
            match self.next_message(&consumer).await? {
                // Held at once, so an error later in this call loses nothing.
                Some(message) => {
                    let delivered = message::decode(&message);
                    held += delivered.payload.len();
                    self.inflight().push(delivered);
                }
                None => break,
            }
        }
        let mut inflight = self.inflight();
        // In sequence order, so the worker's `upto` (the last seq) covers the batch.
        inflight.sort_by_key(|d| d.entry.seq);
        Ok(inflight.iter().map(|d| d.entry.clone()).collect())
    }

    async fn wait(&self, timeout: Duration) {
        let busy = !self.inflight().is_empty();
        if busy || !self.buffer.lock().await.is_empty() {
            return;
        }
        let Ok(consumer) = self.consumer().await.cloned() else {
            tokio::time::sleep(timeout).await;
            return;
        };
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, consumer.recv()).await {
                Ok(Ok(message)) => {
                    self.buffer.lock().await.push_back(message.detach());
                    return;
                }
                Ok(Err(e)) if connection_event(&e) => continue,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "kafka consumer error");
                    tokio::time::sleep_until(deadline).await;
                    return;
                }
                Err(_) => return,
            }
        }
    }

    async fn complete(&self, outcomes: Vec<Outcome>, upto: u64) -> StoreResult<()> {
        // Kept in flight until committed, so a failure (or this future being dropped)
        // hands the batch out again; a retry may dead-letter a message twice.
        let done: Vec<Delivered> = self
            .inflight()
            .iter()
            .filter(|d| d.entry.seq <= upto)
            .cloned()
            .collect();
        let failed: BTreeMap<u64, &str> = outcomes
            .iter()
            .filter_map(|o| match o {
                Outcome::Done { status, .. } if status.status == IngestState::Failed => Some((
                    status.seq,
                    status.error.as_deref().unwrap_or("processing failed"),
                )),
                _ => None,
            })
            .collect();
        for d in &done {
            let (key, reason) = match &d.entry.event {
                Ok(event) => (
                    format!("{}/{}", event.tenant, event.id),
                    failed.get(&d.entry.seq).copied(),
                ),
                Err(u) => {
                    let tenant = u.tenant.as_ref().map_or("", Tenant::as_str);
                    let id = u.id.as_ref().map_or("", |id| id.as_str());
                    (format!("{tenant}/{id}"), Some(u.reason.as_str()))
                }
            };
            if let Some(reason) = reason {
                self.dead_letter(&key, &d.payload, reason).await?;
            }
        }
        // Events a server appended (and counted as pending) carry a sequence number.
        let events = done.iter().filter(|d| d.entry.seq != 0).count();
        self.state.complete(outcomes, events).await?;
        self.commit(&done).await?;
        let committed: std::collections::HashSet<(i32, i64)> =
            done.iter().map(|d| (d.partition, d.offset)).collect();
        self.inflight()
            .retain(|d| !committed.contains(&(d.partition, d.offset)));
        Ok(())
    }

    async fn status(&self, tenant: &Tenant, id: &DocId) -> StoreResult<Option<IngestStatus>> {
        self.state.status(tenant, id).await
    }

    async fn pending(&self) -> StoreResult<u64> {
        self.state.pending().await
    }

    async fn export_statuses(
        &self,
        cursor: Option<String>,
        limit: usize,
    ) -> StoreResult<(Vec<TenantStatus>, Option<String>)> {
        self.state.export(cursor, limit).await
    }

    async fn import_statuses(&self, statuses: Vec<TenantStatus>) -> StoreResult<()> {
        self.state.import(statuses).await
    }

    async fn ping(&self) -> StoreResult<()> {
        let client = self.producer();
        let (topic, timeout) = (self.topic.clone(), self.timeout);
        self.guard
            .run("ping", Retry::Idempotent, || {
                let (client, topic) = (client.clone(), topic.clone());
                blocking(move || {
                    client
                        .client()
                        .fetch_metadata(Some(&topic), timeout)
                        .map(drop)
                        .map_err(kafka_err)
                })
            })
            .await?;
        self.state.redis().ping().await
    }
}

impl Drop for KafkaEventLog {
    /// Leaving a consumer group blocks; do it off the async runtime.
    fn drop(&mut self) {
        if let Some(consumer) = self.consumer.take() {
            std::thread::spawn(move || {
                consumer.unsubscribe();
                drop(consumer);
            });
        }
    }
}
