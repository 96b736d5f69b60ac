//! Engine calls on blocking threads: what they keep alive while they run, and an
//! optional bound on the CPU-bound ones in flight (embedded searches,
//! `vectors.search_slots`).
//!
//! A request dropped at its deadline stops waiting for its engine call, but the call runs
//! on to its end on its blocking thread, with the memory it reads. So what a request
//! holds for that memory (its room in the read budget, given through [`holding`]) and
//! a search's slot go into the call itself, and are given back when the call ends, not
//! when the request is dropped.
//!
//! The slots: when set, searches wait their turn here instead of all running at once
//! on blocking threads.
//! Why: with 64 clients, dozens of searches ran side by side on two cores, each at a
//! fraction of a core, and a write that took a collection's writer lock was descheduled
//! among them while it held it, so every write behind it waited too (in-process upsert
//! p50 0.4 s under the load mix). Queued in turn, writes and graph reads find the cores
//! free enough to finish their short steps, and a search whose caller gave up while it
//! waited (its future dropped) never runs. The price is search throughput (a search
//! that blocks on a lock leaves its slot idle), which is why it is off by default:
//! docs/PERFORMANCE.md, "Search slots and the capacity bench".

use std::future::Future;
use std::sync::Arc;

use tokio::sync::Semaphore;

use super::{StoreError, StoreResult};

tokio::task_local! {
    /// What the calling request keeps for the engine calls it makes (see [`holding`]).
    static HELD: Arc<dyn Send + Sync>;
}

/// Runs `calls` so that every blocking engine call it makes keeps `held` (a clone of
/// it) until that call ends, even if `calls` is dropped first.
pub async fn holding<F: Future>(held: Arc<dyn Send + Sync>, calls: F) -> F::Output {
    HELD.scope(held, calls).await
}

/// Runs blocking engine work off the async runtime, turning a panic into an error; it
/// keeps what its caller is [`holding`] until it ends.
pub(crate) async fn blocking<T, F>(f: F) -> StoreResult<T>
where
    F: FnOnce() -> StoreResult<T> + Send + 'static,
    T: Send + 'static,
{
    let held = HELD.try_with(Arc::clone).ok();
    tokio::task::spawn_blocking(move || {
        let done = f();
        drop(held);
        done
    })
    .await
    .map_err(|e| StoreError::internal(format!("storage task failed: {e}")))?
}

#[derive(Clone)]
pub(crate) struct CpuSlots(Option<Arc<Semaphore>>);

impl CpuSlots {
    /// `slots` slots; 0: no bound.
    pub(crate) fn new(slots: usize) -> Self {
        Self((slots != 0).then(|| Arc::new(Semaphore::new(slots))))
    }

    /// Runs `f` on a blocking thread once a slot is free; the slot is taken until `f`
    /// ends.
    pub(crate) async fn run<T, F>(&self, f: F) -> StoreResult<T>
    where
        F: FnOnce() -> StoreResult<T> + Send + 'static,
        T: Send + 'static,
    {
        let slot = match &self.0 {
            Some(slots) => Some(
                slots
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|_| StoreError::internal("the store's CPU slots are closed"))?,
            ),
            None => None,
        };
        blocking(move || {
            let done = f();
            drop(slot);
            done
        })
        .await
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

    #[tokio::test]
    async fn a_call_dropped_while_it_runs_keeps_its_slot_until_it_ends() {
        let slots = CpuSlots::new(1);
        let (finish, finishing) = std::sync::mpsc::channel::<()>();
        let running = slots.run(move || {
            finishing.recv().ok();
            Ok(())
        });
        assert!(
            tokio::time::timeout(Duration::from_millis(50), running)
                .await
                .is_err()
        );
        // The dropped call still runs on its thread: the next waits for its slot.
        let next = slots.run(|| Ok(()));
        tokio::pin!(next);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), &mut next)
                .await
                .is_err()
        );
        finish.send(()).unwrap();
        next.await.unwrap();
    }
}
