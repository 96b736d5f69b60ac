//! The bound on the ingest backlog: events accepted and not yet processed. Past
//! `ingest.max_pending` new events are refused with 503 and `Retry-After`, so a worker
//! that falls behind cannot fill the disk (or the topic's retention) with work.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::store::{EventLog, StoreError, StoreResult};

/// How long a count read from the log is used before it is read again. Between reads,
/// this process adds what it appends; the worker's progress shows at the next read.
const REFRESH: Duration = Duration::from_secs(1);

/// When a refused client should try again: a few batches' worth of the worker's time.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// The backlog as this process last saw it: the log's count when read, plus what was
/// appended here since.
#[derive(Clone, Default)]
pub(super) struct Backlog {
    seen: Arc<Mutex<Seen>>,
}

#[derive(Default)]
struct Seen {
    read_at: Option<Instant>,
    pending: u64,
}

impl Backlog {
    /// Makes room for `n` more events under `max` (0: no bound), or says why not. The
    /// count is read from `log` at most once per [`REFRESH`], so replicas sharing a log
    /// may overshoot `max` by about a second of their appends.
    pub(super) async fn admit(&self, log: &dyn EventLog, n: u64, max: u64) -> StoreResult<()> {
        if max == 0 {
            return Ok(());
        }
        let stale = self.seen().read_at.is_none_or(|at| at.elapsed() >= REFRESH);
        if stale {
            let pending = log.pending().await?;
            *self.seen() = Seen {
                read_at: Some(Instant::now()),
                pending,
            };
        }
        let mut seen = self.seen();
        if seen.pending.saturating_add(n) > max {
            let mut refused = StoreError::unavailable(format!(
                "the ingest backlog holds {} events, and {n} more would pass \
                 ingest.max_pending ({max})",
                seen.pending
            ));
            refused.retry_after = Some(RETRY_AFTER);
            return Err(refused);
        }
        seen.pending += n;
        Ok(())
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
