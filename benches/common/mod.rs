//! What more than one bench needs: the corpus goes through the real ingest pipeline.

use std::time::Duration;

use ragbrain::domain::principal::Principal;
use ragbrain::http::state::AppState;
use ragbrain::services::ingest::{BatchRequest, IngestRequest};

/// Ingests documents `doc0..doc<docs>` (text from `text`) through the batch API, 100 at
/// a time, and returns once the worker has processed every one.
pub async fn ingest_all(
    state: &AppState,
    who: &Principal,
    docs: usize,
    text: impl Fn(usize) -> String,
) {
    for first in (0..docs).step_by(100) {
        let events = (first..(first + 100).min(docs))
            .map(|d| IngestRequest {
                id: Some(format!("doc{d}")),
                text: text(d),
                metadata: Default::default(),
                collection: None,
            })
            .collect();
        state
            .ingest
            .ingest_batch(who, BatchRequest { events })
            .await
            .unwrap();
    }
    while state.ingest.pending().await.unwrap() > 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
