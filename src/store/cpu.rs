//! An optional bound on the CPU-bound store calls in flight (embedded searches,
//! `vectors.search_slots`): when set, they wait their turn here instead of all running
//! at once on blocking threads.
//!
//! Why: with 64 clients, dozens of searches ran side by side on two cores, each at a
//! fraction of a core, and a write that took a collection's writer lock was descheduled
//! among them while it held it, so every write behind it waited too (in-process upsert
//! p50 0.4 s under the load mix). Queued in turn, writes and graph reads find the cores
//! free enough to finish their short steps, and a search whose caller gave up while it
//! waited (its future dropped) never runs. The price is search throughput (a search
//! that blocks on a lock leaves its slot idle), which is why it is off by default:
//! docs/PERFORMANCE.md, "Search slots and the capacity bench".

use std::sync::Arc;

use tokio::sync::Semaphore;

use super::{StoreError, StoreResult, blocking};

#[derive(Clone)]
pub(crate) struct CpuSlots(Option<Arc<Semaphore>>);

impl CpuSlots {
    /// `slots` slots; 0: no bound.
    pub(crate) fn new(slots: usize) -> Self {
        Self((slots != 0).then(|| Arc::new(Semaphore::new(slots))))
    }

    /// Runs `f` on a blocking thread once a slot is free.
    pub(crate) async fn run<T, F>(&self, f: F) -> StoreResult<T>
    where
        F: FnOnce() -> StoreResult<T> + Send + 'static,
        T: Send + 'static,
    {
        let _slot = match &self.0 {
            Some(slots) => Some(
                slots
                    .acquire()
                    .await
                    .map_err(|_| StoreError::internal("the store's CPU slots are closed"))?,
            ),
            None => None,
        };
        blocking(f).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn no_more_run_at_once_than_there_are_slots() {
        let slots = CpuSlots::new(2);
        let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let runs: Vec<_> = (0..12)
            .map(|_| {
                let (slots, now, most) = (slots.clone(), now.clone(), most.clone());
                tokio::spawn(async move {
                    slots
                        .run(move || {
                            let running = now.fetch_add(1, Ordering::SeqCst) + 1;
                            most.fetch_max(running, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(20));
                            now.fetch_sub(1, Ordering::SeqCst);
                            Ok(())
                        })
                        .await
                })
            })
            .collect();
        for r in runs {
            r.await.unwrap().unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn without_slots_calls_just_run() {
        let ran = CpuSlots::new(0).run(|| Ok(7)).await.unwrap();
        assert_eq!(ran, 7);
    }

    #[tokio::test]
    async fn a_call_dropped_while_it_waits_never_runs() {
        let slots = CpuSlots::new(1);
        let ran = Arc::new(AtomicUsize::new(0));
        let (busy, release) = std::sync::mpsc::channel::<()>();
        let holder = {
            let slots = slots.clone();
            tokio::spawn(async move {
                slots
                    .run(move || {
                        release.recv().ok();
                        Ok(())
                    })
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let waiting = {
            let ran = ran.clone();
            slots.run(move || {
                ran.fetch_add(1, Ordering::SeqCst);
                Ok(())
            })
        };
        // The caller gives up (a deadline) while the only slot is taken.
        assert!(
            tokio::time::timeout(Duration::from_millis(50), waiting)
                .await
                .is_err()
        );
        drop(busy);
        holder.await.unwrap().unwrap();
        slots.run(|| Ok(())).await.unwrap();
        assert_eq!(ran.load(Ordering::SeqCst), 0);
    }
}
