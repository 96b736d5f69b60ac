//! One batch of the ingest worker, step by step: prepare (chunk, extract, embed),
//! clear the stale points of older versions, write points and graphs, settle each
//! document's outcome.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use super::pace::GraphPace;

use crate::domain::ingest::{
    DocId, DocumentExtent, DocumentGraph, Event, IngestState, LogEntry, Operation, Outcome,
};
use crate::domain::payload;
use crate::domain::principal::Tenant;
use crate::domain::vector::{CollectionName, CollectionSpec, Distance, Point};
use crate::services::ingest::IngestService;
use crate::services::ingest::chunk::{ChunkSpec, chunk};
use crate::services::ingest::document::{
    Doc, document_graph, embedding_text, metadata_entities, points, processed, status,
};
use crate::services::ingest::entities::extract;
use crate::services::vectors::create_within;
use crate::store::{ErrorKind, StoreError};

pub(super) struct Batch<'a> {
    pub(super) service: &'a IngestService,
    pub(super) pace: &'a GraphPace,
    pub(super) attempt: u32,
    pub(super) outcomes: Vec<Outcome>,
    /// Records that failed naming no valid tenant or document id: no status to record,
    /// still counted.
    pub(super) unowned: u64,
    /// Upserts that failed for good after their points or graph may have been written
    /// (indexes into the batch's documents), for [`Batch::unindex_failed`].
    pub(super) half_written: Vec<usize>,
}

impl Batch<'_> {
    /// Whether `e` retries the whole batch: a backend that is down or slow always, an
    /// upstream or internal error while attempts remain.
    fn retries(&self, e: &StoreError) -> bool {
        let attempts_left = self.attempt + 1 < self.service.settings.ingest.max_attempts.get();
        transient(e) || (retryable(e) && attempts_left)
    }

    /// Turns an error into "retry the batch" or a recorded failure of `doc`.
    fn judge(&mut self, doc: &Doc, e: StoreError) -> Result<(), StoreError> {
        if self.retries(&e) {
            return Err(e);
        }
        let reason = if retryable(&e) {
            let correlation_id = doc
                .event
                .correlation_id
                .as_deref()
                .unwrap_or("no correlation id");
            tracing::error!(error = %e, doc = %doc.event.id, correlation_id, "ingest event failed");
            format!("processing failed ({correlation_id}); see the server log")
        } else {
            e.message
        };
        self.fail(doc, reason);
        Ok(())
    }

    fn fail(&mut self, doc: &Doc, reason: String) {
        tracing::warn!(doc = %doc.event.id, seq = doc.seq, reason = %reason, "ingest event failed");
        self.outcomes.push(Outcome::Done {
            tenant: doc.event.tenant.clone(),
            status: status(doc.seq, &doc.event, IngestState::Failed, None, Some(reason)),
        });
    }

    /// The events a document can come from; each record that did not decode ends
    /// failed here with its reason, where its tenant and id say whose status it is (one
    /// naming no valid tenant has no status a client could read, and is logged).
    fn readable(&mut self, entries: Vec<LogEntry>) -> Vec<(u64, Event)> {
        let mut readable = Vec::with_capacity(entries.len());
        for e in entries {
            match e.event {
                Ok(event) => readable.push((e.seq, event)),
                Err(u) => {
                    tracing::warn!(doc = ?u.id, seq = e.seq, reason = %u.reason,
                        "unreadable ingest event failed");
                    match u.failed_status(e.seq) {
                        Some((tenant, status)) => {
                            self.outcomes.push(Outcome::Done { tenant, status })
                        }
                        None => self.unowned += 1,
                    }
                }
            }
        }
        readable
    }

    /// Chunks, extracts entities and embeds every upsert in the batch.
    pub(super) async fn prepare(&mut self, entries: Vec<LogEntry>) -> Result<Vec<Doc>, StoreError> {
        let settings = self.service.settings.ingest.clone();
        let spec = ChunkSpec {
            size: settings.chunk_size_chars.get(),
            overlap: settings.chunk_overlap_chars,
        };
        let max_entities = settings.max_entities_per_chunk;
        let readable = self.readable(entries);
        let docs: Vec<Doc> = crate::store::blocking(move || {
            Ok(readable
                .into_iter()
                .map(|(seq, event)| {
                    let chunks = match &event.operation {
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
                        Operation::Delete => Vec::new(),
                    };
                    Doc {
                        seq,
                        event,
                        chunks,
                        vectors: Vec::new(),
                    }
                })
                .collect())
        })
        .await?;
        let texts: Vec<String> = docs.iter().flat_map(texts_to_embed).collect();
        let e = match self.service.embedder.embed(texts).await {
            Ok(vectors) => {
                let mut vectors = vectors.into_iter();
                return Ok(docs
                    .into_iter()
                    .map(|mut d| {
                        d.vectors = vectors.by_ref().take(d.chunks.len()).collect();
                        d
                    })
                    .collect());
            }
            Err(e) => e,
        };
        // Retried whole as `judge` would; then each document alone, so the ones the
        // embedder refuses fail and the rest go on (otherwise one text the endpoint
        // will not take would hold the log for good).
        if self.retries(&e) {
            return Err(e);
        }
        let mut kept = Vec::with_capacity(docs.len());
        for mut doc in docs {
            match self
                .service
                .embedder
                .embed(texts_to_embed(&doc).collect())
                .await
            {
                Ok(vectors) => {
                    doc.vectors = vectors;
                    kept.push(doc);
                }
                Err(e) => self.judge(&doc, e)?,
            }
        }
        Ok(kept)
    }

    /// Writes the points of every upsert, one durable call per (tenant, collection);
    /// answers each document's error, if any.
    pub(super) async fn write_points(&self, docs: &[Doc]) -> Vec<Option<StoreError>> {
        let mut groups: BTreeMap<(Tenant, CollectionName), Vec<usize>> = BTreeMap::new();
        for (i, d) in docs.iter().enumerate() {
            if !d.chunks.is_empty() {
                groups
                    .entry((d.event.tenant.clone(), d.event.collection.clone()))
                    .or_default()
                    .push(i);
            }
        }
        let mut errors = vec![None; docs.len()];
        for ((tenant, collection), members) in groups {
            let points: Vec<Point> = members.iter().flat_map(|&i| points(&docs[i])).collect();
            let written = match self.ensure_collection(&tenant, &collection).await {
                Ok(()) => {
                    self.service
                        .vectors
                        .upsert(&tenant, &collection, points)
                        .await
                }
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
                let max = self.service.settings.limits.max_collections.get();
                let store = self.service.vectors.as_ref();
                create_within(store, tenant, collection, spec, max)
                    .await
                    .map(drop)
            }
            Err(e) => Err(e),
        }
    }

    /// Deletes the points older versions of the upserts left behind (before their
    /// graph changes: the document node says how many chunks there were; one read per
    /// tenant). Documents that fail for good here are recorded failed and dropped.
    pub(super) async fn clear_stale(&mut self, docs: Vec<Doc>) -> Result<Vec<Doc>, StoreError> {
        let mut ids: BTreeMap<Tenant, Vec<DocId>> = BTreeMap::new();
        for doc in docs.iter().filter(|d| !is_delete(d)) {
            ids.entry(doc.event.tenant.clone())
                .or_default()
                .push(doc.event.id.clone());
        }
        let mut extents: HashMap<(Tenant, DocId), DocumentExtent> = HashMap::new();
        let mut unread: BTreeMap<Tenant, StoreError> = BTreeMap::new();
        for (tenant, ids) in ids {
            match self.service.graph.document_extents(&tenant, ids).await {
                Ok(found) => extents.extend(
                    found
                        .into_iter()
                        .map(|x| ((tenant.clone(), x.doc_id.clone()), x)),
                ),
                Err(e) => {
                    unread.insert(tenant, e);
                }
            }
        }
        let mut kept = Vec::with_capacity(docs.len());
        for doc in docs {
            let cleared = if is_delete(&doc) {
                Ok(())
            } else if let Some(e) = unread.get(&doc.event.tenant) {
                Err(e.clone())
            } else {
                let old = extents.get(&(doc.event.tenant.clone(), doc.event.id.clone()));
                self.clear_stale_of(&doc, old).await
            };
            match cleared {
                Ok(()) => kept.push(doc),
                Err(e) => self.judge(&doc, e)?,
            }
        }
        Ok(kept)
    }

    /// Removes each deleted document and writes the graph of every upsert, a tenant's in
    /// transactions of the size [`GraphPace`] gives; answers each document's outcome. A
    /// transaction that times out is written again in smaller ones; if one fails for
    /// good, each of its documents is retried alone so only the ones at fault fail.
    pub(super) async fn write_graphs(&self, docs: &[Doc]) -> Vec<Result<Outcome, StoreError>> {
        let mut results: Vec<Option<Result<Outcome, StoreError>>> = vec![None; docs.len()];
        let mut upserts: BTreeMap<&Tenant, Vec<usize>> = BTreeMap::new();
        for (i, doc) in docs.iter().enumerate() {
            if is_delete(doc) {
                results[i] = Some(self.remove(doc).await);
            } else {
                upserts.entry(&doc.event.tenant).or_default().push(i);
            }
        }
        for (tenant, members) in upserts {
            let mut waiting = &members[..];
            while !waiting.is_empty() {
                let (part, rest) = waiting.split_at(self.pace.size(waiting.len()));
                let graphs: Vec<DocumentGraph> =
                    part.iter().map(|&i| document_graph(&docs[i])).collect();
                let started = Instant::now();
                let written = self.service.graph.replace_documents(tenant, graphs).await;
                match written.map_err(refused_statement) {
                    Ok(()) => {
                        self.pace.record(part.len(), started.elapsed());
                        for &i in part {
                            results[i] = Some(Ok(processed(&docs[i])));
                        }
                        waiting = rest;
                    }
                    // Too much for the backend's timeout (retried as it was, it would
                    // time out for ever): again, in smaller transactions.
                    Err(e) if e.kind == ErrorKind::Timeout && part.len() > 1 => {
                        self.pace.timed_out(part.len());
                    }
                    Err(e) if part.len() > 1 && !transient(&e) => {
                        for &i in part {
                            let alone = vec![document_graph(&docs[i])];
                            let written = self
                                .service
                                .graph
                                .replace_documents(tenant, alone)
                                .await
                                .map_err(refused_statement);
                            results[i] = Some(written.map(|()| processed(&docs[i])));
                        }
                        waiting = rest;
                    }
                    // A backend down or busy, or too slow for a single document: the
                    // batch is retried (what was written is written again, to the same
                    // effect).
                    Err(e) => {
                        for &i in waiting {
                            results[i] = Some(Err(e.clone()));
                        }
                        break;
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
    pub(super) fn settle(
        &mut self,
        docs: &[Doc],
        points: Vec<Option<StoreError>>,
        graphs: Vec<Result<Outcome, StoreError>>,
    ) -> Result<(), StoreError> {
        for (i, ((doc, points), graph)) in docs.iter().zip(points).zip(graphs).enumerate() {
            let failed = match (points, graph) {
                (None, Ok(outcome)) => {
                    self.outcomes.push(outcome);
                    None
                }
                (Some(e), _) | (None, Err(e)) => Some(e),
            };
            if let Some(e) = failed {
                self.judge(doc, e)?;
                if !is_delete(doc) {
                    self.half_written.push(i);
                }
            }
        }
        Ok(())
    }

    /// Removes what the upserts that failed for good left in either store (their points
    /// may be in and their graph not, or the reverse), so a search never returns a
    /// document whose status is `failed`. A store that is down retries the batch; any
    /// other error is logged, and the document stays failed.
    pub(super) async fn unindex_failed(&self, docs: &[Doc]) -> Result<(), StoreError> {
        for &i in &self.half_written {
            let (service, doc) = (self.service, &docs[i]);
            let (tenant, id) = (&doc.event.tenant, &doc.event.id);
            let removed = async {
                service
                    .delete_points(tenant, &doc.event.collection, id, 0..0)
                    .await?;
                service.graph.remove_document(tenant, id).await.map(drop)
            };
            match removed.await {
                Err(e) if transient(&e) => return Err(e),
                Err(e) => tracing::error!(error = %e, doc = %id,
                    "a failed document's chunks could not be removed"),
                Ok(()) => {}
            }
        }
        Ok(())
    }

    /// Deletes the points the stored version `old` of the document left behind.
    async fn clear_stale_of(
        &self,
        doc: &Doc,
        old: Option<&DocumentExtent>,
    ) -> Result<(), StoreError> {
        let Some(old) = old else {
            return Ok(());
        };
        let moved = old.collection != doc.event.collection;
        let stale = if moved {
            0..old.chunks
        } else {
            doc.chunks.len()..old.chunks
        };
        if !stale.is_empty() || moved {
            self.service
                .delete_points(&doc.event.tenant, &old.collection, &doc.event.id, stale)
                .await?;
        }
        Ok(())
    }

    async fn remove(&self, doc: &Doc) -> Result<Outcome, StoreError> {
        let (service, tenant, id) = (self.service, &doc.event.tenant, &doc.event.id);
        let (collection, chunks) = match service.previous(tenant, id).await? {
            Some(old) => (old.collection, old.chunks),
            None => (doc.event.collection.clone(), 0),
        };
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
/// `ingest.max_attempts`), then fails with the reason. (A Bolt server's
/// `SemanticError` on them, a lost race on its schema, comes back as a lost race and is
/// retried as one: see `store::neo4j::bolt`.)
fn refused_statement(mut e: StoreError) -> StoreError {
    if e.kind == ErrorKind::Invalid {
        e.kind = ErrorKind::Upstream;
    }
    e
}

/// What a document's chunks are embedded as (with its title, when it has one).
fn texts_to_embed(doc: &Doc) -> impl Iterator<Item = String> + '_ {
    let title = match &doc.event.operation {
        Operation::Upsert { metadata, .. } => payload::metadata_title(metadata),
        Operation::Delete => None,
    };
    doc.chunks
        .iter()
        .map(move |(t, _)| embedding_text(title, t))
}

fn is_delete(doc: &Doc) -> bool {
    matches!(doc.event.operation, Operation::Delete)
}

/// An error worth another try of the batch while attempts remain.
fn retryable(e: &StoreError) -> bool {
    matches!(e.kind, ErrorKind::Internal | ErrorKind::Upstream)
}

/// A backend that is down or slow, a disk too full for now, or writes that kept losing
/// races to concurrent writers (other replicas' workers creating the same entities):
/// retry the batch, never fail the event.
fn transient(e: &StoreError) -> bool {
    matches!(
        e.kind,
        ErrorKind::Unavailable | ErrorKind::Timeout | ErrorKind::Full | ErrorKind::Busy
    )
}
