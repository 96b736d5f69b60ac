//! Slots for running client Cypher, overall and per tenant.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::domain::principal::Tenant;
use crate::store::{ErrorKind, StoreError, StoreResult};

/// Slots for running client Cypher: a bound on queries at once, and a smaller one per
/// tenant, so one tenant's slow queries cannot take every slot. Taken without waiting:
/// a tenant that runs its share already gets 429 at once, and anyone gets 503 while
/// every slot is taken.
pub struct QuerySlots {
    global: Arc<Semaphore>,
    per_tenant: usize,
    held: Arc<Mutex<HashMap<Tenant, usize>>>,
}

/// One held slot; dropping it (the query ended, or its request was cancelled) frees it.
pub struct QuerySlot {
    _global: OwnedSemaphorePermit,
    tenant: Tenant,
    held: Arc<Mutex<HashMap<Tenant, usize>>>,
}

fn lock_held(
    held: &Mutex<HashMap<Tenant, usize>>,
) -> std::sync::MutexGuard<'_, HashMap<Tenant, usize>> {
    held.lock().unwrap_or_else(|p| p.into_inner())
}

impl QuerySlots {
    pub fn new(global: usize, per_tenant: usize) -> Self {
        Self {
            global: Arc::new(Semaphore::new(global)),
            per_tenant,
            held: Arc::default(),
        }
    }

    pub fn try_acquire(&self, tenant: &Tenant) -> StoreResult<QuerySlot> {
        let mut held = lock_held(&self.held);
        if held.get(tenant).copied().unwrap_or(0) >= self.per_tenant {
            return Err(StoreError::new(
                ErrorKind::Throttled,
                format!(
                    "this tenant already runs {} Cypher quer{} at once, its limit \
                     (limits.max_concurrent_queries_per_tenant); retry once one ends",
                    self.per_tenant,
                    if self.per_tenant == 1 { "y" } else { "ies" }
                ),
            ));
        }
        let permit = self
            .global
            .clone()
            .try_acquire_owned()
            .map_err(|_| StoreError::unavailable("every Cypher query slot is busy"))?;
        *held.entry(tenant.clone()).or_default() += 1;
        Ok(QuerySlot {
            _global: permit,
            tenant: tenant.clone(),
            held: self.held.clone(),
        })
    }
}

impl Drop for QuerySlot {
    fn drop(&mut self) {
        let mut held = lock_held(&self.held);
        if let Some(n) = held.get_mut(&self.tenant) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.tenant);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_takes_at_most_its_share_of_query_slots() {
        let slots = QuerySlots::new(2, 1);
        let (a, b, c) = (
            Tenant::parse("a").unwrap(),
            Tenant::parse("b").unwrap(),
            Tenant::parse("c").unwrap(),
        );
        let first = slots.try_acquire(&a).unwrap();
        assert!(slots.try_acquire(&a).is_err(), "a's share is taken");
        let second = slots.try_acquire(&b).unwrap();
        assert!(slots.try_acquire(&c).is_err(), "every slot is taken");
        drop(first);
        let _third = slots.try_acquire(&c).unwrap();
        drop(second);
        let _again = slots.try_acquire(&a).unwrap();
    }
}
