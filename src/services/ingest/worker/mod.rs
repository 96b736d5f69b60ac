//! The ingest worker: reads the event log in order and makes each document's chunks,
//! vectors and graph match its newest event, then records the outcome and moves the
//! offset in one step. Runs inside `serve` or alone as `ragbrain worker`.
//!
//! Per batch: newer events for a document supersede older ones in the same batch;
//! texts are chunked and embedded together; the points older versions left beyond the
//! new chunk count are deleted; then the points (one durable upsert per collection) and
//! the graphs (per tenant, in transactions sized to fit the backend's timeout: see
//! `pace`) are written side by side, since they touch different stores. Every step is
//! idempotent, so a crash before the commit just replays the batch.
//!
//! Failures: a backend that is down or slow (`Unavailable`, `Timeout`) stops the
//! batch and is retried with backoff, never marking anything failed; other errors are
//! retried up to `ingest.max_attempts` times, then only the events they concern are
//! marked `failed` (with the reason) and the log moves on.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::IngestService;
use crate::domain::ingest::{DocId, IngestState, LogEntry, Outcome};
use crate::domain::principal::Tenant;
use crate::store::StoreError;

mod batch;
mod pace;
use batch::Batch;
use pace::GraphPace;

/// Runs until `stop` turns true; finishes the batch in hand first.
pub async fn run(service: IngestService, mut stop: watch::Receiver<bool>) {
    let settings = service.settings.ingest.clone();
    let max_backoff = Duration::from_millis(settings.retry_max_backoff_ms);
    let pace = graph_pace(&service);
    let mut attempt: u32 = 0;
    tracing::info!("ingest worker started");
    while !*stop.borrow() {
        let result = match read_batch(&service).await {
            Ok(entries) if entries.is_empty() => {
                tokio::select! {
                    () = service.events.wait(Duration::from_secs(1)) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            Ok(entries) => process(&service, &pace, entries, attempt).await,
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
    let pace = graph_pace(service);
    let mut done = 0;
    loop {
        let entries = read_batch(service).await?;
        if entries.is_empty() {
            return Ok(done);
        }
        done += entries.len();
        let mut attempt = 0;
        while let Err(e) = process(service, &pace, entries.clone(), attempt).await {
            attempt += 1;
            if attempt >= settings.max_attempts.get() {
                return Err(e);
            }
        }
    }
}

/// The next batch: up to `ingest.worker_batch` events, fewer when they are large.
async fn read_batch(service: &IngestService) -> Result<Vec<LogEntry>, StoreError> {
    let settings = &service.settings.ingest;
    service
        .events
        .read(
            settings.worker_batch.get(),
            settings.worker_batch_bytes.get(),
        )
        .await
}

/// Graph transactions sized to fit the graph backend's timeout.
fn graph_pace(service: &IngestService) -> GraphPace {
    GraphPace::new(service.settings.resilience.timeout_ms.get())
}

/// Processes one batch and commits it; an `Err` means "retry the batch later".
async fn process(
    service: &IngestService,
    pace: &GraphPace,
    entries: Vec<LogEntry>,
    attempt: u32,
) -> Result<(), StoreError> {
    let upto = entries.last().map_or(0, |e| e.seq);
    let received = entries.len();
    // The requests that produced this batch, so its log line joins theirs; a batch
    // request's events share one id, named once.
    let mut correlation_ids: Vec<String> = Vec::new();
    for id in entries.iter().filter_map(LogEntry::correlation_id) {
        if !correlation_ids.iter().any(|seen| seen == id) {
            correlation_ids.push(id.to_owned());
        }
    }
    let latest = newest_per_document(entries);
    let superseded = received - latest.len();
    let mut batch = Batch {
        service,
        pace,
        attempt,
        outcomes: Vec::new(),
        unowned: 0,
        half_written: Vec::new(),
    };
    // Each step's time goes on the batch's log line, for an operator to see where a
    // slow batch spent it.
    let (docs, prepare_ms) = timed(batch.prepare(latest)).await;
    let (docs, stale_ms) = timed(batch.clear_stale(docs?)).await;
    let docs = docs?;
    // Points and graph touch different stores and, after `clear_stale`, disjoint
    // points: written side by side, the graph's core is not idle while points go in.
    let (((points, points_ms), (graphs, graph_ms)), write_ms) = timed(async {
        tokio::join!(
            timed(batch.write_points(&docs)),
            timed(batch.write_graphs(&docs))
        )
    })
    .await;
    batch.settle(&docs, points, graphs)?;
    batch.unindex_failed(&docs).await?;
    let events = batch.outcomes.len();
    let counts = outcome_counts(&batch.outcomes, superseded, batch.unowned);
    let (committed, commit_ms) = timed(service.events.complete(batch.outcomes, upto)).await;
    committed?;
    for (outcome, n) in counts {
        service
            .metrics
            .ingest_events_total
            .with_label_values(&[outcome])
            .inc_by(n);
    }
    tracing::info!(events, upto, correlation_ids = %correlation_ids.join(","),
        prepare_ms, stale_ms, write_ms, points_ms, graph_ms, commit_ms,
        "ingest batch committed");
    Ok(())
}

/// The output of `work`, and how long it took in milliseconds (to a tenth).
async fn timed<T>(work: impl Future<Output = T>) -> (T, f64) {
    let started = Instant::now();
    let out = work.await;
    (out, tenths_ms(started.elapsed()))
}

fn tenths_ms(elapsed: Duration) -> f64 {
    // Tenths of a millisecond are enough to read, and keep the line short.
    (elapsed.as_secs_f64() * 10_000.0).round() / 10.0
}

/// How many events of a batch ended each way, for `ingest_events_total{outcome}`.
/// `superseded` events were replaced by a newer event for the same document;
/// `unowned` records failed with no tenant and document id to keep their status under.
fn outcome_counts(
    outcomes: &[Outcome],
    superseded: usize,
    unowned: u64,
) -> [(&'static str, u64); 4] {
    let mut counts = [
        ("processed", 0),
        ("failed", unowned),
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
/// A record naming no valid tenant belongs to no document and is kept.
fn newest_per_document(entries: Vec<LogEntry>) -> Vec<LogEntry> {
    let mut last: HashMap<(&Tenant, &DocId), u64> = HashMap::new();
    for e in &entries {
        if let Some(document) = e.document() {
            last.insert(document, e.seq);
        }
    }
    let newest: HashSet<u64> = last.into_values().collect();
    entries
        .into_iter()
        .filter(|e| e.document().is_none() || newest.contains(&e.seq))
        .collect()
}
