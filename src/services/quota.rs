//! Per-tenant storage quotas: how many points (`limits.max_points_per_tenant`, over all
//! the tenant's collections) and graph nodes plus relationships
//! (`limits.max_graph_items_per_tenant`) a tenant may keep, so that one write key cannot
//! fill the disk every tenant shares. A write that would pass a quota is a `Conflict`
//! naming it; deletes are never refused and make room again.
//!
//! Counting a tenant's points or graph is a scan, too dear for every write. So each
//! replica keeps the last count per tenant and adds what it lets through after it, and a
//! write is refused when that sum plus the write passes the quota. The sum over-counts
//! (a point or node replaced is counted as new, a chunk a document's replacement
//! removed is still counted), never under-counts, for this replica's own writes. A count
//! older than [`FRESH_FOR`] is taken again in the background while writes go on against
//! the old one; a refusal on a count older than [`RECOUNT_AFTER`] counts again first, so
//! what the over-count, or a delete, left free is found before a write is refused.
//! Writes through other replicas, and those that race a count, may pass the quota by
//! what they write meanwhile; ingest is checked when a document is accepted, for its
//! first chunk, so the worker may pass it by the chunks of the documents in the backlog.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::Limits;
use crate::domain::principal::Tenant;
use crate::metrics::Metrics;
use crate::services::error::{Result, ServiceError};
use crate::store::{GraphStore, StoreResult, VectorStore};

/// How long a count is used before it is taken again in the background.
pub const FRESH_FOR: Duration = Duration::from_secs(30);
/// How old a count must be for a refusal to count again before it refuses.
pub const RECOUNT_AFTER: Duration = Duration::from_secs(1);

/// What a quota bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kept {
    /// Vector points, over all the tenant's collections.
    Points,
    /// Graph nodes and relationships together.
    GraphItems,
}

impl Kept {
    fn setting(self) -> &'static str {
        match self {
            Kept::Points => "limits.max_points_per_tenant",
            Kept::GraphItems => "limits.max_graph_items_per_tenant",
        }
    }

    /// The `quota` label of `quota_refused_total`.
    fn label(self) -> &'static str {
        match self {
            Kept::Points => "points",
            Kept::GraphItems => "graph_items",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Kept::Points => "points",
            Kept::GraphItems => "graph nodes and relationships",
        }
    }
}

/// One tenant's usage of one quota as this replica sees it.
#[derive(Debug, Clone, Copy)]
struct Usage {
    /// The last count plus what was let through since.
    used: u64,
    /// When the count was taken; `None` once a delete may have made room.
    counted: Option<Instant>,
    /// Whether a count is under way.
    counting: bool,
}

impl Usage {
    /// Adds `adding` when the sum stays within `max`; says whether it did.
    fn add_within(&mut self, adding: u64, max: u64) -> bool {
        let fits = self.used.saturating_add(adding) <= max;
        if fits {
            self.used += adding;
        }
        fits
    }

    fn older_than(&self, age: Duration) -> bool {
        self.counted.is_none_or(|at| at.elapsed() >= age)
    }
}

/// What [`Quotas::admit`] found in the table.
enum Found {
    Admitted { recount: bool },
    Refused { used: u64 },
    CountFirst,
}

/// The quotas of every tenant on this replica; cheap to clone.
#[derive(Clone)]
pub struct Quotas {
    vectors: Arc<dyn VectorStore>,
    graph: Arc<dyn GraphStore>,
    max_points: u64,
    max_graph_items: u64,
    metrics: Arc<Metrics>,
    usage: Arc<Mutex<HashMap<(Tenant, Kept), Usage>>>,
}

impl Quotas {
    pub fn new(
        limits: &Limits,
        (vectors, graph): (Arc<dyn VectorStore>, Arc<dyn GraphStore>),
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            vectors,
            graph,
            metrics,
            max_points: limits.max_points_per_tenant.get(),
            max_graph_items: limits.max_graph_items_per_tenant.get(),
            usage: Arc::default(),
        }
    }

    fn max(&self, kept: Kept) -> u64 {
        match kept {
            Kept::Points => self.max_points,
            Kept::GraphItems => self.max_graph_items,
        }
    }

    /// Lets through a write that adds up to `adding` of `kept` to `tenant`'s store, or
    /// refuses it (`Conflict`) when that would pass the quota.
    pub async fn take(&self, tenant: &Tenant, kept: Kept, adding: u64) -> Result<()> {
        match self.try_take(tenant, kept, adding).await? {
            Ok(()) => Ok(()),
            Err(used) => Err(self.refused(tenant, kept, used, adding)),
        }
    }

    /// As [`take`](Self::take), but a write the quota has no room for is let through
    /// when what it adds that `tenant` does not have yet fits: `existing` says how many
    /// of the `adding` are there already (and is asked only then).
    pub async fn take_new(
        &self,
        tenant: &Tenant,
        kept: Kept,
        adding: u64,
        existing: impl Future<Output = Result<u64>>,
    ) -> Result<()> {
        if self.try_take(tenant, kept, adding).await?.is_ok() {
            return Ok(());
        }
        let new = adding.saturating_sub(existing.await?);
        self.take(tenant, kept, new).await
    }

    /// Takes room for `adding`, or says how much is used when there is none.
    async fn try_take(
        &self,
        tenant: &Tenant,
        kept: Kept,
        adding: u64,
    ) -> Result<std::result::Result<(), u64>> {
        let key = (tenant.clone(), kept);
        match self.admit(&key, adding) {
            Found::Admitted { recount } => {
                if recount {
                    self.recount_later(key);
                }
                return Ok(Ok(()));
            }
            Found::Refused { used } => return Ok(Err(used)),
            Found::CountFirst => {}
        }
        // On a task of its own, so that a caller that goes away mid-count does not
        // leave the count marked under way for good.
        let counting = tokio::spawn(self.clone().count_and_store(key.clone()));
        let counted = counting
            .await
            .map_err(|e| ServiceError::Internal(format!("counting for a quota: {e}")))?;
        counted?;
        let mut usage = self.table();
        let entry = usage.get_mut(&key).ok_or_else(|| {
            ServiceError::Internal("a quota's count went missing from its table".into())
        })?;
        if entry.add_within(adding, self.max(kept)) {
            Ok(Ok(()))
        } else {
            Ok(Err(entry.used))
        }
    }

    /// Marks `tenant`'s count of `kept` as possibly high after a delete: the next write
    /// counts again, in the background if it fits, before a refusal otherwise.
    pub fn freed(&self, tenant: &Tenant, kept: Kept) {
        if let Some(entry) = self.table().get_mut(&(tenant.clone(), kept)) {
            entry.counted = None;
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<(Tenant, Kept), Usage>> {
        self.usage.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds `adding` when it fits the quota. A tenant not counted yet, or a refusal on a
    /// count older than [`RECOUNT_AFTER`] with none under way, asks for a count first
    /// (marking it under way when there is an entry to mark).
    fn admit(&self, key: &(Tenant, Kept), adding: u64) -> Found {
        let mut usage = self.table();
        let Some(entry) = usage.get_mut(key) else {
            return Found::CountFirst;
        };
        if entry.add_within(adding, self.max(key.1)) {
            let recount = !entry.counting && entry.older_than(FRESH_FOR);
            entry.counting |= recount;
            return Found::Admitted { recount };
        }
        if entry.counting || !entry.older_than(RECOUNT_AFTER) {
            return Found::Refused { used: entry.used };
        }
        entry.counting = true;
        Found::CountFirst
    }

    /// Counts `key` in the background.
    fn recount_later(&self, key: (Tenant, Kept)) {
        let this = self.clone();
        tokio::spawn(async move {
            let what = key.1.what();
            let tenant = key.0.clone();
            if let Err(e) = this.count_and_store(key).await {
                tracing::warn!(%tenant, error = %e, "counting a tenant's {what} for its quota");
            }
        });
    }

    /// Counts `key` and makes the count its usage; a count that fails leaves the usage
    /// as it was.
    async fn count_and_store(self, key: (Tenant, Kept)) -> StoreResult<()> {
        let started = Instant::now();
        let counted = self.count(&key).await;
        let mut usage = self.table();
        match counted {
            Ok(used) => {
                let took_ms = started.elapsed().as_secs_f64() * 1e3;
                tracing::debug!(tenant = %key.0, used, took_ms, "counted a tenant's {}", key.1.what());
                let counted = Some(Instant::now());
                let entry = Usage {
                    used,
                    counted,
                    counting: false,
                };
                usage.insert(key, entry);
                Ok(())
            }
            Err(e) => {
                if let Some(entry) = usage.get_mut(&key) {
                    entry.counting = false;
                }
                Err(e)
            }
        }
    }

    async fn count(&self, (tenant, kept): &(Tenant, Kept)) -> StoreResult<u64> {
        match kept {
            Kept::Points => self.vectors.tenant_points(tenant).await,
            Kept::GraphItems => {
                let size = self.graph.size(tenant).await?;
                Ok(size.nodes.saturating_add(size.relationships))
            }
        }
    }

    /// The refusal of a write, counted in `quota_refused_total`.
    fn refused(&self, tenant: &Tenant, kept: Kept, used: u64, adding: u64) -> ServiceError {
        self.metrics
            .quota_refused_total
            .with_label_values(&[tenant.as_str(), kept.label()])
            .inc();
        ServiceError::Conflict(format!(
            "the tenant keeps about {used} {}, and {adding} more would pass the {} of {}; \
             delete some first",
            kept.what(),
            kept.setting(),
            self.max(kept)
        ))
    }
}
