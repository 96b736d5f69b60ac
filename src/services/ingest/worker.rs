//! The ingest worker: reads the event log in order and makes each document's chunks,
//! vectors and graph match its newest event, then records the outcome and moves the
//! offset in one step. Runs inside `serve` or alone as `ragbrain worker`.
//!
//! Per batch: newer events for a document supersede older ones in the same batch;
//! texts are chunked and embedded together; the points older versions left beyond the
//! new chunk count are deleted; then the points (one durable upsert per collection) and
//! the graphs (one call per tenant) are written side by side, since they touch
//! different stores. Every step is idempotent, so a crash before the commit just
//! replays the batch.
//!
//! Failures: a backend that is down or slow (`Unavailable`, `Timeout`) stops the
//! batch and is retried with backoff, never marking anything failed; other errors are
//! retried up to `ingest.max_attempts` times, then only the events they concern are
//! marked `failed` (with the reason) and the log moves on.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use tokio::sync::watch;

use super::IngestService;
use super::chunk::{ChunkSpec, chunk};
use super::document::{
    Doc, document_graph, embedding_text, metadata_entities, points, processed, status,
    stored_collection, title,
};
use super::entities::extract;
use crate::domain::ingest::{DocumentGraph, Event, IngestState, LogEntry, Operation, Outcome};
use crate::domain::principal::Tenant;
use crate::domain::vector::{CollectionName, CollectionSpec, Distance, Point};
use crate::store::{ErrorKind, StoreError};

/// Runs until `stop` turns true; finishes the batch in hand first.
pub async fn run(service: IngestService, mut stop: watch::Receiver<bool>) {
    let settings = service.settings.ingest.clone();
    let max_backoff = Duration::from_millis(settings.retry_max_backoff_ms);
    let mut attempt: u32 = 0;
    tracing::info!("ingest worker started");
    while !*stop.borrow() {
        let result = match service.events.read(settings.worker_batch).await {
            Ok(entries) if entries.is_empty() => {
                tokio::select! {
                    () = service.events.wait(Duration::from_secs(1)) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            Ok(entries) => process(&service, entries, attempt).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => attempt = 0,
            Err(e) => {
                attempt = attempt.saturating_add(1);
                let cap = (100u64 << attempt.min(10)).min(max_backoff.as_millis() as u64);
                let delay = Duration::from_millis(rand::random_range(cap / 2..=cap.max(1)));
                tracing::warn!(error = %e, attempt, delay_ms = delay.as_millis() as u64,
                    "ingest batch will be retried");
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    _ = stop.changed() => {}
                }
            }
        }
    }
    tracing::info!("ingest worker stopped");
}

/// Processes everything in the log now, in batches as the worker would, and returns how
/// many entries it handled: for tests and tools that run no background worker. A batch
/// that fails is retried at once (no backoff), so an event that keeps failing is marked
/// failed after `ingest.max_attempts` as with the worker; a store that stays down is an
/// error after as many tries.
pub async fn drain_once(service: &IngestService) -> Result<usize, StoreError> {
    let settings = &service.settings.ingest;
    let mut done = 0;
    loop {
        let entries = service.events.read(settings.worker_batch).await?;
        if entries.is_empty() {
            return Ok(done);
        }
        done += entries.len();
        let mut attempt = 0;
        while let Err(e) = process(service, entries.clone(), attempt).await {
            attempt += 1;
            if attempt >= settings.max_attempts.max(1) {
                return Err(e);
            }
        }
    }
}

/// Processes one batch and commits it; an `Err` means "retry the batch later".
async fn process(
    service: &IngestService,
    entries: Vec<LogEntry>,
    attempt: u32,
) -> Result<(), StoreError> {
    let upto = entries.last().map_or(0, |e| e.seq);
    let received = entries.len();
    // The requests that produced this batch, so its log line joins theirs.
    let correlation_ids: Vec<String> = entries
        .iter()
        .filter_map(|e| e.event.correlation_id.clone())
        .collect();
    let latest = newest_per_document(entries);
    let superseded = received - latest.len();
    let mut batch = Batch {
        service,
        attempt,
        outcomes: Vec::new(),
    };
    let docs = batch.prepare(latest).await?;
    let docs = batch.clear_stale(docs).await?;
    // Points and graph touch different stores and, after `clear_stale`, disjoint
    // points: written side by side, the graph's core is not idle while points go in.
    let (points, graphs) = tokio::join!(batch.write_points(&docs), batch.write_graphs(&docs));
    batch.settle(docs, points, graphs)?;
    let events = batch.outcomes.len();
    let counts = outcome_counts(&batch.outcomes, superseded);
    service.events.complete(batch.outcomes, upto).await?;
    for (outcome, n) in counts {
        service
            .metrics
            .ingest_events_total
            .with_label_values(&[outcome])
            .inc_by(n);
    }
    tracing::info!(events, upto, correlation_ids = %correlation_ids.join(","),
        "ingest batch committed");
    Ok(())
}

/// How many events of a batch ended each way, for `ingest_events_total{outcome}`.
/// `superseded` events were replaced by a newer event for the same document.
fn outcome_counts(outcomes: &[Outcome], superseded: usize) -> [(&'static str, u64); 4] {
    let mut counts = [
        ("processed", 0),
        ("failed", 0),
        ("deleted", 0),
        ("superseded", superseded as u64),
    ];
    for o in outcomes {
        let i = match o {
            Outcome::Done { status, .. } if status.status == IngestState::Failed => 1,
            Outcome::Done { .. } => 0,
            Outcome::Deleted { .. } => 2,
        };
        counts[i].1 += 1;
    }
    counts
}

/// The last event of each document, in log order.
fn newest_per_document(entries: Vec<LogEntry>) -> Vec<LogEntry> {
    let mut last: HashMap<(String, String), u64> = HashMap::new();
    for e in &entries {
        last.insert((e.event.tenant.clone(), e.event.id.clone()), e.seq);
    }
    entries
        .into_iter()
        .filter(|e| last[&(e.event.tenant.clone(), e.event.id.clone())] == e.seq)
        .collect()
}

struct Batch<'a> {
    service: &'a IngestService,
    attempt: u32,
    outcomes: Vec<Outcome>,
}

impl Batch<'_> {
    /// Turns an error into "retry the batch" or a recorded failure of `doc`.
    fn judge(&mut self, doc: &Doc, e: StoreError) -> Result<(), StoreError> {
        let transient = transient(&e);
        let retryable = matches!(e.kind, ErrorKind::Internal | ErrorKind::Upstream);
        if transient || (retryable && self.attempt + 1 < self.service.settings.ingest.max_attempts)
        {
            return Err(e);
        }
        let reason = if retryable {
            tracing::error!(error = %e, doc = %doc.event.id, correlation_id = ?doc.event.correlation_id,
                "ingest event failed");
            format!(
                "processing failed ({}); see the server log",
                doc.event
                    .correlation_id
                    .as_deref()
                    .unwrap_or("no correlation id")
            )
        } else {
            e.message
        };
        self.fail(doc, reason);
        Ok(())
    }

    fn fail(&mut self, doc: &Doc, reason: String) {
        self.fail_event(doc.seq, &doc.event, reason);
    }

    fn fail_event(&mut self, seq: u64, event: &Event, reason: String) {
        tracing::warn!(doc = %event.id, seq, reason = %reason, "ingest event failed");
        self.outcomes.push(Outcome::Done {
            tenant: event.tenant.clone(),
            status: status(seq, event, IngestState::Failed, None, Some(reason)),
        });
    }

    /// The entries a document can come from, with their tenant; every other event ends
    /// failed here (with the reason), never dropped.
    fn readable(&mut self, entries: Vec<LogEntry>) -> Vec<(Tenant, LogEntry)> {
        let mut readable = Vec::with_capacity(entries.len());
        for e in entries {
            let reason = match &e.event.operation {
                Operation::Unreadable { reason } => reason.clone(),
                _ => match Tenant::parse(&e.event.tenant) {
                    Some(tenant) => {
                        readable.push((tenant, e));
                        continue;
                    }
                    None => format!("{:?} is not a valid tenant name", e.event.tenant),
                },
            };
            self.fail_event(e.seq, &e.event, reason);
        }
        readable
    }

    /// Chunks, extracts entities and embeds every upsert in the batch.
    async fn prepare(&mut self, entries: Vec<LogEntry>) -> Result<Vec<Doc>, StoreError> {
        let settings = self.service.settings.ingest.clone();
        let spec = ChunkSpec {
            size: settings.chunk_size_chars,
            overlap: settings.chunk_overlap_chars,
        };
        let max_entities = settings.max_entities_per_chunk;
        let readable = self.readable(entries);
        let docs: Vec<Doc> = crate::store::blocking(move || {
            Ok(readable
                .into_iter()
                .map(|(tenant, e)| {
                    let chunks = match &e.event.operation {
                        Operation::Upsert { text, metadata } => {
                            let extra = metadata_entities(metadata);
                            chunk(text, spec)
                                .into_iter()
                                .map(|c| {
                                    let found = extract(&c, &extra, max_entities);
                                    (c, found)
                                })
                                .collect()
                        }
                        Operation::Delete | Operation::Unreadable { .. } => Vec::new(),
                    };
                    Doc {
                        seq: e.seq,
                        tenant,
                        event: e.event,
                        chunks,
                        vectors: Vec::new(),
                    }
                })
                .collect())
        })
        .await?;
        let texts: Vec<String> = docs
            .iter()
            .flat_map(|d| {
                let title = match &d.event.operation {
                    Operation::Upsert { metadata, .. } => title(metadata),
                    Operation::Delete | Operation::Unreadable { .. } => None,
                };
                d.chunks.iter().map(move |(t, _)| embedding_text(title, t))
            })
            .collect();
        let mut vectors = self.service.embedder.embed(texts).await?.into_iter();
        Ok(docs
            .into_iter()
            .map(|mut d| {
                d.vectors = vectors.by_ref().take(d.chunks.len()).collect();
                d
            })
            .collect())
    }

    /// Writes the points of every upsert, one durable call per (tenant, collection);
    /// answers each document's error, if any.
    async fn write_points(&self, docs: &[Doc]) -> Vec<Option<StoreError>> {
        let mut groups: BTreeMap<(Tenant, String), Vec<usize>> = BTreeMap::new();
        for (i, d) in docs.iter().enumerate() {
            if !d.chunks.is_empty() {
                groups
                    .entry((d.tenant.clone(), d.event.collection.clone()))
                    .or_default()
                    .push(i);
            }
        }
        let mut errors = vec![None; docs.len()];
        for ((tenant, collection), members) in groups {
            let points: Vec<Point> = members.iter().flat_map(|&i| points(&docs[i])).collect();
            let written = match stored_collection(&collection) {
                Ok(collection) => match self.ensure_collection(&tenant, &collection).await {
                    Ok(()) => {
                        self.service
                            .vectors
                            .upsert(&tenant, &collection, points)
                            .await
                    }
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            };
            if let Err(e) = written {
                for &i in &members {
                    errors[i] = Some(e.clone());
                }
            }
        }
        errors
    }

    async fn ensure_collection(
        &self,
        tenant: &Tenant,
        collection: &CollectionName,
    ) -> Result<(), StoreError> {
        let dim = self.service.embedder.dim();
        match self
            .service
            .vectors
            .collection_spec(tenant, collection)
            .await
        {
            Ok(spec) if spec.dim == dim => Ok(()),
            Ok(spec) => Err(StoreError::invalid(format!(
                "collection {collection:?} has {} dimensions; the embedder makes {dim}",
                spec.dim
            ))),
            Err(e) if e.kind == ErrorKind::NotFound => {
                let spec = CollectionSpec {
                    dim,
                    distance: Distance::Cosine,
                };
                self.service
                    .vectors
                    .create_collection(tenant, collection, spec)
                    .await
                    .map(drop)
            }
            Err(e) => Err(e),
        }
    }

    /// Deletes the points older versions of the upserts left behind (before their
    /// graph changes: the document node says how many chunks there were). Documents
    /// that fail for good here are recorded failed and dropped.
    async fn clear_stale(&mut self, docs: Vec<Doc>) -> Result<Vec<Doc>, StoreError> {
        let mut kept = Vec::with_capacity(docs.len());
        for doc in docs {
            if matches!(doc.event.operation, Operation::Delete) {
                kept.push(doc);
                continue;
            }
            match self.clear_stale_of(&doc).await {
                Ok(()) => kept.push(doc),
                Err(e) => self.judge(&doc, e)?,
            }
        }
        Ok(kept)
    }

    /// Removes each deleted document and writes the graph of every upsert with one
    /// call per tenant; answers each document's outcome. If a tenant's call fails for
    /// good, each document is retried alone so only the ones at fault fail; if it times
    /// out, each is written alone too, so a batch too big for the timeout still lands.
    async fn write_graphs(&self, docs: &[Doc]) -> Vec<Result<Outcome, StoreError>> {
        let mut results: Vec<Option<Result<Outcome, StoreError>>> = vec![None; docs.len()];
        let mut upserts: BTreeMap<&Tenant, Vec<usize>> = BTreeMap::new();
        for (i, doc) in docs.iter().enumerate() {
            if matches!(doc.event.operation, Operation::Delete) {
                results[i] = Some(self.remove(doc).await);
            } else {
                upserts.entry(&doc.tenant).or_default().push(i);
            }
        }
        for (tenant, members) in upserts {
            let graphs: Vec<DocumentGraph> =
                members.iter().map(|&i| document_graph(&docs[i])).collect();
            let written = self.service.graph.replace_documents(tenant, graphs).await;
            match written.map_err(refused_statement) {
                Ok(()) => {
                    for &i in &members {
                        results[i] = Some(Ok(processed(&docs[i])));
                    }
                }
                // A batch that failed for good, or took longer than the backend's
                // timeout (retried whole, it would time out for ever): each document
                // alone, each within the timeout.
                Err(e) if members.len() > 1 && (e.kind == ErrorKind::Timeout || !transient(&e)) => {
                    for &i in &members {
                        let alone = vec![document_graph(&docs[i])];
                        let written = self
                            .service
                            .graph
                            .replace_documents(tenant, alone)
                            .await
                            .map_err(refused_statement);
                        results[i] = Some(written.map(|()| processed(&docs[i])));
                    }
                }
                Err(e) => {
                    for &i in &members {
                        results[i] = Some(Err(e.clone()));
                    }
                }
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(StoreError::internal("document not written"))))
            .collect()
    }

    /// Records each document's outcome: failed where its points or its graph failed
    /// for good; an `Err` (a transient failure) retries the whole batch.
    fn settle(
        &mut self,
        docs: Vec<Doc>,
        points: Vec<Option<StoreError>>,
        graphs: Vec<Result<Outcome, StoreError>>,
    ) -> Result<(), StoreError> {
        for ((doc, points), graph) in docs.iter().zip(points).zip(graphs) {
            match points {
                Some(e) => self.judge(doc, e)?,
                None => self.record(doc, graph)?,
            }
        }
        Ok(())
    }

    fn record(&mut self, doc: &Doc, result: Result<Outcome, StoreError>) -> Result<(), StoreError> {
        match result {
            Ok(outcome) => {
                self.outcomes.push(outcome);
                Ok(())
            }
            Err(e) => self.judge(doc, e),
        }
    }

    /// Deletes the points an older version of the document left behind.
    async fn clear_stale_of(&self, doc: &Doc) -> Result<(), StoreError> {
        let (service, tenant, id) = (self.service, &doc.tenant, &doc.event.id);
        if let Some((old_collection, old_chunks)) = service.previous(tenant, id).await? {
            let stale = if old_collection != doc.event.collection {
                0..old_chunks
            } else {
                doc.chunks.len()..old_chunks
            };
            if !stale.is_empty() || old_collection != doc.event.collection {
                service
                    .delete_points(tenant, &old_collection, id, stale)
                    .await?;
            }
        }
        Ok(())
    }

    async fn remove(&self, doc: &Doc) -> Result<Outcome, StoreError> {
        let (service, tenant, id) = (self.service, &doc.tenant, &doc.event.id);
        let (collection, chunks) = service
            .previous(tenant, id)
            .await?
            .unwrap_or((doc.event.collection.clone(), 0));
        service
            .delete_points(tenant, &collection, id, 0..chunks)
            .await?;
        service.graph.remove_document(tenant, id).await?;
        Ok(Outcome::Deleted {
            tenant: doc.event.tenant.clone(),
            id: id.clone(),
            seq: doc.seq,
        })
    }
}

/// The graph statements of a document are ours, so a graph server refusing one as
/// invalid is not the client's mistake: it is retried like any upstream error (up to
/// `ingest.max_attempts`), then fails with the reason. The test suite's Bolt server
/// reports a write that lost a race with a concurrent transaction this way.
fn refused_statement(mut e: StoreError) -> StoreError {
    if e.kind == ErrorKind::Invalid {
        e.kind = ErrorKind::Upstream;
    }
    e
}

/// A backend that is down or slow: retry the batch, never fail the event.
fn transient(e: &StoreError) -> bool {
    matches!(e.kind, ErrorKind::Unavailable | ErrorKind::Timeout)
}
