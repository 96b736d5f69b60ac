//! A bound on the memory that large answers hold while they are read and sent
//! (`limits.read_budget_bytes`).
//!
//! A search page of a thousand points with 64 KB payloads is a 64 MB answer, held a few
//! times over (the engine's records, the JSON values, the body) from the read until the
//! last byte leaves; a read key's burst of such requests, or clients that read their
//! answers slowly, would otherwise take as much memory as they ask for. So a read whose
//! answer may be large reserves its worst case (what its limits let it return) from one
//! budget before it reads, and gives it back when its body has been sent, or dropped
//! with its connection. Reads past the budget wait in turn, until the request's deadline.
//! Reads whose worst case is under [`SMALL_READ`] bytes, nearly all of them, never wait:
//! they cannot queue behind a large one. One tenant holds at most
//! `limits.read_budget_per_tenant_bytes` of it, so a tenant whose clients read slowly
//! (steadily enough not to be dropped) cannot make every other tenant's large reads
//! wait.
//!
//! A read dropped before its answer (at its deadline) keeps its room until the engine
//! calls it started have ended: they run on to their end on blocking threads, with the
//! memory they read ([`Reservation::during`]).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use prometheus::{IntCounter, IntGauge};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

use crate::domain::principal::Tenant;
use crate::metrics::Metrics;
use crate::services::error::{Result, ServiceError};

/// Worst cases below this many bytes take nothing from the budget.
pub const SMALL_READ: u64 = 1 << 20;

/// The budget reserves in units of this many bytes, so that it fits the semaphore's
/// `u32` permits.
const UNIT: u64 = 1 << 10;

fn units(bytes: u64) -> u32 {
    u32::try_from(bytes.div_ceil(UNIT))
        .unwrap_or(u32::MAX)
        .max(1)
}

/// The budget every large read on this server reserves from; cheap to clone.
#[derive(Clone)]
pub struct ReadBudget {
    room: Arc<Semaphore>,
    /// The most one read, or one tenant's reads together, may hold.
    tenant_units: u32,
    /// The shares of the tenants with large reads under way.
    tenants: Arc<Mutex<Shares>>,
    reserved: IntGauge,
    waited: IntCounter,
}

impl ReadBudget {
    /// A budget of `bytes`, of which one tenant holds at most `per_tenant`.
    pub fn new(bytes: u64, per_tenant: u64, metrics: &Metrics) -> Self {
        let all = units(bytes);
        Self {
            room: Arc::new(Semaphore::new(all as usize)),
            tenant_units: units(per_tenant).min(all),
            tenants: Arc::default(),
            reserved: metrics.read_budget_reserved_bytes.clone(),
            waited: metrics.read_budget_waits_total.clone(),
        }
    }

    /// Reserves `worst` bytes for a read of `tenant`'s (the tenant's whole share if it
    /// is larger, so such a read runs alone), waiting for room in the tenant's share,
    /// then in the budget; nothing when `worst` is under [`SMALL_READ`].
    pub async fn reserve(&self, tenant: &Tenant, worst: u64) -> Result<Reservation> {
        if worst < SMALL_READ {
            return Ok(Reservation(None));
        }
        let units = units(worst).min(self.tenant_units);
        let share = self
            .tenants
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .of(tenant, self.tenant_units);
        let mut waited = false;
        let share = self.take(share, units, &mut waited).await?;
        let room = self.take(self.room.clone(), units, &mut waited).await?;
        let bytes = i64::from(units) * UNIT as i64;
        self.reserved.add(bytes);
        Ok(Reservation(Some(Arc::new(Held {
            _permits: (share, room),
            bytes,
            reserved: self.reserved.clone(),
        }))))
    }

    /// `units` of `room`, at once or after waiting (counted once a read: `waited`).
    async fn take(
        &self,
        room: Arc<Semaphore>,
        units: u32,
        waited: &mut bool,
    ) -> Result<OwnedSemaphorePermit> {
        let closed = || ServiceError::Internal("the read budget is closed".into());
        match room.clone().try_acquire_many_owned(units) {
            Ok(permit) => Ok(permit),
            Err(TryAcquireError::NoPermits) => {
                if !std::mem::replace(waited, true) {
                    self.waited.inc();
                }
                room.acquire_many_owned(units).await.map_err(|_| closed())
            }
            Err(TryAcquireError::Closed) => Err(closed()),
        }
    }
}

/// Each tenant's share of the budget, made at its first large read; the shares no read
/// holds or waits for are dropped as the table grows, so it stays as large as the
/// tenants with large reads under way (twice that at most).
#[derive(Default)]
struct Shares {
    of: HashMap<Tenant, Arc<Semaphore>>,
    /// The table's size at which idle shares are dropped next.
    prune_at: usize,
}

impl Shares {
    /// Tables up to this many shares are never pruned.
    const SMALL: usize = 64;

    fn of(&mut self, tenant: &Tenant, units: u32) -> Arc<Semaphore> {
        if let Some(share) = self.of.get(tenant) {
            return share.clone();
        }
        if self.of.len() >= self.prune_at.max(Self::SMALL) {
            // A share held by a permit, or by a read waiting for one, has other owners.
            self.of.retain(|_, share| Arc::strong_count(share) > 1);
            self.prune_at = 2 * self.of.len();
        }
        let share = Arc::new(Semaphore::new(units as usize));
        self.of.insert(tenant.clone(), share.clone());
        share
    }
}

/// Room taken from a [`ReadBudget`], given back when dropped.
#[must_use = "the room is given back as soon as the reservation is dropped"]
pub struct Reservation(Option<Arc<Held>>);

impl Reservation {
    /// Whether it holds room (a small read's holds none).
    pub fn is_held(&self) -> bool {
        self.0.is_some()
    }

    /// Runs `read` so that each blocking engine call it makes holds this room too, until
    /// that call ends: the room comes back only once both this reservation is dropped
    /// and every such call has ended.
    pub async fn during<F: Future>(&self, read: F) -> F::Output {
        match &self.0 {
            Some(held) => crate::store::holding(held.clone(), read).await,
            None => read.await,
        }
    }
}

struct Held {
    _permits: (OwnedSemaphorePermit, OwnedSemaphorePermit),
    bytes: i64,
    reserved: IntGauge,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.reserved.sub(self.bytes);
    }
}

/// An answer with the room it reserved: the HTTP layer keeps the reservation until the
/// answer's body has been sent.
pub struct Reserved<T> {
    pub value: T,
    pub reservation: Reservation,
}

/// Bytes of JSON one vector component may take (`-1.2345678e-12,`).
pub const JSON_FLOAT: usize = 16;
/// Bytes of JSON an answer item's id, score and field names may take.
pub const ITEM: usize = 128;

/// The worst case of `items` answer items of at most `each` bytes.
pub fn worst(items: usize, each: usize) -> u64 {
    (items as u64).saturating_mul(each as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn large_reads_wait_for_room_and_small_ones_never_do() {
        let metrics = Metrics::new();
        let budget = ReadBudget::new(4 << 20, 4 << 20, &metrics);
        let t = Tenant::parse("acme").unwrap();
        let first = budget.reserve(&t, 3 << 20).await.unwrap();
        assert_eq!(metrics.read_budget_reserved_bytes.get(), 3 << 20);
        let small = budget.reserve(&t, SMALL_READ - 1).await.unwrap();
        assert!(!small.is_held(), "a small read takes nothing");

        let waiting = tokio::spawn({
            let (budget, t) = (budget.clone(), t.clone());
            async move { budget.reserve(&t, 2 << 20).await.map(drop) }
        });
        while metrics.read_budget_waits_total.get() == 0 {
            tokio::task::yield_now().await;
        }
        assert!(!waiting.is_finished());
        drop(first);
        waiting.await.unwrap().unwrap();
        assert_eq!(metrics.read_budget_reserved_bytes.get(), 0);

        let whole = budget.reserve(&t, u64::MAX).await.unwrap();
        assert_eq!(
            metrics.read_budget_reserved_bytes.get(),
            4 << 20,
            "a read larger than the budget takes all of it"
        );
        drop(whole);
    }

    #[tokio::test]
    async fn one_tenant_holds_no_more_than_its_share() {
        let metrics = Metrics::new();
        let budget = ReadBudget::new(4 << 20, 2 << 20, &metrics);
        let (acme, globex) = (
            Tenant::parse("acme").unwrap(),
            Tenant::parse("globex").unwrap(),
        );
        let held = budget.reserve(&acme, 64 << 20).await.unwrap();
        assert_eq!(
            metrics.read_budget_reserved_bytes.get(),
            2 << 20,
            "a read larger than the share takes all of the share"
        );
        let waiting = tokio::spawn({
            let (budget, acme) = (budget.clone(), acme.clone());
            async move { budget.reserve(&acme, 1 << 20).await.map(drop) }
        });
        while metrics.read_budget_waits_total.get() == 0 {
            tokio::task::yield_now().await;
        }
        let other = budget.reserve(&globex, 2 << 20).await.unwrap();
        assert_eq!(metrics.read_budget_reserved_bytes.get(), 4 << 20);
        assert!(!waiting.is_finished(), "acme went past its share");
        drop(other);
        assert!(!waiting.is_finished(), "acme went past its share");
        drop(held);
        waiting.await.unwrap().unwrap();
        assert_eq!(metrics.read_budget_reserved_bytes.get(), 0);
    }

    #[tokio::test]
    async fn a_dropped_read_keeps_its_room_until_its_engine_call_ends() {
        let metrics = Metrics::new();
        let budget = ReadBudget::new(4 << 20, 4 << 20, &metrics);
        let t = Tenant::parse("acme").unwrap();
        let reservation = budget.reserve(&t, 2 << 20).await.unwrap();
        let (started, running) = std::sync::mpsc::channel::<()>();
        let (finish, finishing) = std::sync::mpsc::channel::<()>();
        let call = crate::store::blocking(move || {
            started.send(()).ok();
            finishing.recv().ok();
            Ok(())
        });
        let read = reservation.during(call);
        // The request's deadline passes while the engine call runs.
        let dropped = tokio::time::timeout(std::time::Duration::from_millis(50), read);
        assert!(dropped.await.is_err());
        running.recv().unwrap();
        drop(reservation);
        assert_eq!(
            metrics.read_budget_reserved_bytes.get(),
            2 << 20,
            "the room came back while the engine call still ran"
        );
        finish.send(()).unwrap();
        while metrics.read_budget_reserved_bytes.get() != 0 {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        budget.reserve(&t, 4 << 20).await.map(drop).unwrap();
    }

    #[tokio::test]
    async fn idle_tenant_shares_are_dropped_as_the_table_grows() {
        let metrics = Metrics::new();
        let budget = ReadBudget::new(4 << 20, 2 << 20, &metrics);
        let held_by = Tenant::parse("holder").unwrap();
        let held = budget.reserve(&held_by, 2 << 20).await.unwrap();
        for i in 0..1_000 {
            let t = Tenant::parse(&format!("t{i}")).unwrap();
            drop(budget.reserve(&t, 1 << 20).await.unwrap());
        }
        let shares = budget.tenants.lock().unwrap().of.len();
        assert!(shares <= 2 * Shares::SMALL, "{shares} shares kept");
        // The held share survived every pruning: its tenant is still at its share.
        let more = budget.reserve(&held_by, 1 << 20);
        tokio::pin!(more);
        let waited = tokio::time::timeout(std::time::Duration::from_millis(20), &mut more);
        assert!(waited.await.is_err(), "the holder's share was made anew");
        drop(held);
        more.await.map(drop).unwrap();
    }
}
