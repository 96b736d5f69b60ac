//! How many documents the ingest worker writes to the graph in one transaction: as many
//! as the recent transactions say fit a quarter of the backend timeout.
//!
//! A batch's documents of one tenant used to go in one transaction. A graph server
//! slower than the embedded graph (the test suite's Bolt server takes about 150 ms a
//! document) then ran past `resilience.timeout_ms` with a full batch; the timeout was
//! retried whole, counted against the circuit breaker, and with the breaker open the
//! batch never landed. Paced, a transaction stays well inside the timeout whatever the
//! server's speed, and a fast store still writes a whole batch at once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The pace of recent graph transactions, shared by the batches of one worker.
#[derive(Debug)]
pub(super) struct GraphPace {
    /// What one transaction may take: a quarter of the backend timeout.
    budget_us: u64,
    /// Microseconds a document took in recent transactions (a moving average); 0 until
    /// the first one, which writes a single document to measure.
    per_doc_us: AtomicU64,
}

impl GraphPace {
    pub(super) fn new(timeout: Duration) -> Self {
        Self {
            budget_us: (timeout.as_micros() / 4).max(1) as u64,
            per_doc_us: AtomicU64::new(0),
        }
    }

    /// Documents for the next transaction, of `waiting` (at least one).
    pub(super) fn size(&self, waiting: usize) -> usize {
        let per_doc = self.per_doc_us.load(Ordering::Relaxed);
        if per_doc == 0 {
            return 1.min(waiting);
        }
        let fits = usize::try_from(self.budget_us / per_doc).unwrap_or(usize::MAX);
        fits.max(1).min(waiting)
    }

    /// A transaction of `docs` documents took `took`.
    pub(super) fn record(&self, docs: usize, took: Duration) {
        let sample = (took.as_micros() as u64 / docs.max(1) as u64).max(1);
        let old = self.per_doc_us.load(Ordering::Relaxed);
        let new = if old == 0 { sample } else { (old + sample) / 2 };
        self.per_doc_us.store(new.max(1), Ordering::Relaxed);
    }

    /// A transaction of `docs` documents ran past the timeout (four budgets): from now
    /// on a document is taken to cost at least a quarter of that, so the next size is
    /// a quarter of `docs` or less.
    pub(super) fn timed_out(&self, docs: usize) {
        let floor = (self.budget_us * 4 / docs.max(1) as u64).max(1);
        self.per_doc_us.fetch_max(floor, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_first_transaction_measures_one_document_then_the_budget_sets_the_size() {
        let pace = GraphPace::new(MS * 4000);
        assert_eq!(pace.size(256), 1);
        pace.record(1, MS * 100);
        assert_eq!(pace.size(256), 10);
        // Faster transactions grow the size, to the whole batch at most.
        pace.record(10, MS * 100);
        assert_eq!(pace.size(256), 18);
        pace.record(100, Duration::from_micros(500));
        assert_eq!(pace.size(256), 36);
        assert_eq!(pace.size(7), 7);
        assert_eq!(pace.size(0), 0);
    }

    #[test]
    fn a_timeout_cuts_the_size_to_a_quarter_or_less_and_never_below_one() {
        let pace = GraphPace::new(MS * 4000);
        pace.record(1, Duration::from_micros(100));
        assert_eq!(pace.size(256), 256);
        pace.timed_out(256);
        assert_eq!(pace.size(256), 64);
        pace.timed_out(64);
        assert_eq!(pace.size(256), 16);
        for _ in 0..4 {
            pace.timed_out(pace.size(256));
        }
        assert_eq!(pace.size(256), 1);
        // A timeout of a small transaction does not undo a slower measurement.
        pace.record(1, MS * 5000);
        pace.timed_out(64);
        assert_eq!(pace.size(256), 1);
    }
}
