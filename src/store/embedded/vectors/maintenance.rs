//! The store's one maintenance task: optimises collections that took writes and
//! checkpoints those whose operation log is due, off the request path.

use std::sync::Weak;
use std::time::Duration;

use super::Inner;
use super::collection::lock;
use crate::store::blocking;

/// Optimises every collection that took writes (HNSW builds run beside updates) and
/// checkpoints those whose log is due, one collection at a time, off the request path.
pub(super) async fn maintenance_loop(
    inner: Weak<Inner>,
    every: Duration,
    checkpoint_every: Duration,
    checkpoint_bytes: u64,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        let all = inner.open_collections();
        drop(inner);
        for c in all {
            // Optimizes run on their own threads (one per collection at a time) and may
            // take minutes; checkpoints go on beside them.
            let optimized = c.clone();
            tokio::task::spawn_blocking(move || {
                if let Err(e) = optimized.optimize() {
                    tracing::warn!(error = %e, "vector optimisation failed");
                }
            });
            let result = blocking(move || {
                let mut m = lock(&c.maintenance);
                if c.checkpoint_due(&m, checkpoint_every, checkpoint_bytes) {
                    c.checkpoint(&mut m)?;
                }
                Ok(())
            })
            .await;
            if let Err(e) = result {
                tracing::warn!(error = %e, "vector checkpoint failed");
            }
        }
    }
}
