//! `ragbrain migrate`: copies what one set of stores holds into another (embedded to
//! Qdrant, Neo4j, Redis and back): API keys, each collection with its spec, payload
//! indexes and points, each tenant's graph, and the ingest statuses; then checks the
//! counts store by store. Every write is an upsert, so running it again copies nothing
//! twice, and its progress is saved after every page ([`state`]), so an interrupted run
//! resumes where it stopped. Refresh tokens, revocations, the audit trail and cached
//! searches are not copied (see docs/OPERATIONS.md, "Moving to production engines").

mod state;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use crate::domain::graph::{Node, NodeUpsert, RelationshipUpsert};
use crate::domain::principal::Tenant;
use crate::domain::vector::{CollectionName, CollectionSpec, Point, PointId};
use crate::services::error::ServiceError;
use crate::store::open::Stores;
use crate::store::{ErrorKind, StoreError, StoreResult, TenantStatus};
use state::State;

/// Points per page read and written.
const POINT_PAGE: usize = 256;
/// Nodes per page; relationships are read for a page of nodes at a time. Large, as
/// finding where a page starts scans the tenant's nodes on the embedded engine: with
/// 500 a 42,618-node graph took 9.4 s to copy, most of it in those scans.
const NODE_PAGE: usize = 5_000;
/// Statuses per page.
const STATUS_PAGE: usize = 500;
/// Relationships per graph transaction: a page of nodes may lead to a hub's thousands.
const RELATIONSHIP_BATCH: usize = 2_000;
/// Times a graph write that lost a race with another writer (the target may be serving
/// already) is tried again after the resilience layer's own attempts, and the first
/// pause before it.
const BUSY_RETRIES: u32 = 8;
const BUSY_PAUSE: Duration = Duration::from_millis(20);

/// One migration: from which stores to which, and where its progress is kept.
pub struct Migration {
    pub from: Stores,
    pub to: Stores,
    /// Only this tenant's data; every tenant's when `None`.
    pub tenant: Option<Tenant>,
    pub state_file: PathBuf,
    /// Names the pair of configurations (and the tenant), so progress saved for one
    /// migration is never resumed by another.
    pub fingerprint: String,
}

/// What a step has copied so far in this run; `total` when the source can say.
#[derive(Debug, Clone)]
pub struct Progress<'a> {
    pub step: &'a str,
    pub copied: u64,
    pub total: Option<u64>,
    pub finished: bool,
}

/// One count compared after the copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What was counted, e.g. `points acme/docs` or `graph nodes acme`.
    pub what: String,
    pub source: u64,
    pub target: u64,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub checks: Vec<Check>,
    /// Whether this run carried on from an earlier, interrupted one.
    pub resumed: bool,
}

impl Report {
    /// The checks whose counts differ.
    pub fn mismatches(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.source != c.target)
    }
}

type Result<T> = std::result::Result<T, ServiceError>;

/// A store error, naming the step it stopped.
fn at(step: &str) -> impl Fn(StoreError) -> ServiceError + '_ {
    move |e| ServiceError::Store(StoreError::new(e.kind, format!("{step}: {}", e.message)))
}

/// Runs a graph write until it does not come back [`ErrorKind::Busy`] (at most
/// [`BUSY_RETRIES`] more times), pausing a random time up to a doubling bound between
/// tries: a Bolt server reports a deadlock when another transaction changes the same
/// node (a hub) at once. This is on top of the resilience layer's own attempts at each
/// try ([`crate::store::resilient::LOST_RACE_ATTEMPTS`]): a page is one large
/// transaction, which loses more races to live writers than a request does, and a
/// migration that stops on one must be resumed by hand.
async fn patiently<T, F, Fut>(mut write: F) -> StoreResult<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = StoreResult<T>>,
{
    let mut bound = BUSY_PAUSE;
    for _ in 0..BUSY_RETRIES {
        match write().await {
            Err(e) if e.kind == ErrorKind::Busy => {
                tokio::time::sleep(bound.mul_f64(rand::random::<f64>())).await;
                bound = (bound * 2).min(Duration::from_secs(2));
            }
            done => return done.map(drop),
        }
    }
    write().await.map(drop)
}

/// Where progress goes: the CLI's progress bar.
pub type ProgressFn<'p> = dyn FnMut(Progress<'_>) + Send + 'p;

/// One step's count, reported after every page and once when the step is done.
struct Tally<'a, 'p> {
    step: &'a str,
    total: Option<u64>,
    copied: u64,
    progress: &'a mut ProgressFn<'p>,
}

impl<'a, 'p> Tally<'a, 'p> {
    fn new(step: &'a str, total: Option<u64>, progress: &'a mut ProgressFn<'p>) -> Self {
        Self {
            step,
            total,
            copied: 0,
            progress,
        }
    }

    fn page(&mut self, copied: usize) {
        self.copied += copied as u64;
        self.report(false);
    }

    /// Records the step as done in the state file, then reports it finished.
    fn done(mut self, state: &mut State) -> Result<()> {
        state.finish(self.step)?;
        self.report(true);
        Ok(())
    }

    fn report(&mut self, finished: bool) {
        (self.progress)(Progress {
            step: self.step,
            copied: self.copied,
            total: self.total,
            finished,
        });
    }
}

impl Migration {
    /// Copies everything, then counts. The source must have no events waiting to be
    /// processed: their statuses would be copied as `pending` with no event behind them.
    pub async fn run(&self, progress: &mut ProgressFn<'_>) -> Result<Report> {
        let waiting = self.from.events.pending().await.map_err(at("events"))?;
        if waiting > 0 {
            return Err(ServiceError::Conflict(format!(
                "the source has ingest events not yet processed ({waiting}); run the server \
                 (or `ragbrain worker`) on the source configuration until none are pending, \
                 then migrate"
            )));
        }
        let mut state = State::load(&self.state_file, &self.fingerprint)?;
        let resumed = state.resumed;
        self.keys(&mut state, progress).await?;
        for collection in self.collections().await? {
            self.points(&mut state, &collection, progress).await?;
        }
        for tenant in self.graph_tenants().await? {
            self.nodes(&mut state, &tenant, progress).await?;
            self.relationships(&mut state, &tenant, progress).await?;
        }
        self.statuses(&mut state, progress).await?;
        state.remove()?;
        Ok(Report {
            checks: self.checks().await?,
            resumed,
        })
    }

    fn wanted(&self, tenant: &str) -> bool {
        self.tenant.as_ref().is_none_or(|t| t.as_str() == tenant)
    }

    async fn keys(&self, state: &mut State, progress: &mut ProgressFn<'_>) -> Result<()> {
        let step = "api keys";
        if state.is_done(step) {
            return Ok(());
        }
        let tenant = self.tenant.as_ref().map(Tenant::as_str);
        let keys = self.from.auth.list_keys(tenant).await.map_err(at(step))?;
        let mut tally = Tally::new(step, Some(keys.len() as u64), progress);
        for key in keys {
            match self.to.auth.get_key(&key.id).await.map_err(at(step))? {
                None => self.to.auth.insert_key(key).await.map_err(at(step))?,
                Some(existing) if existing == key => {}
                Some(_) => {
                    return Err(ServiceError::Conflict(format!(
                        "{step}: key {} exists in the target with other content",
                        key.id
                    )));
                }
            }
            tally.page(1);
        }
        tally.done(state)
    }

    /// The source's collections to copy, with their point counts, in name order.
    async fn collections(&self) -> Result<Vec<(Tenant, CollectionName, u64)>> {
        let mut all: Vec<_> = self
            .from
            .vectors
            .point_counts()
            .await
            .map_err(at("vectors"))?
            .into_iter()
            .filter(|c| self.wanted(&c.tenant))
            .filter_map(|c| {
                let tenant = Tenant::parse(&c.tenant)?;
                Some((tenant, CollectionName::parse(&c.collection)?, c.points))
            })
            .collect();
        all.sort_by(|a, b| (a.0.as_str(), a.1.as_str()).cmp(&(b.0.as_str(), b.1.as_str())));
        Ok(all)
    }

    async fn points(
        &self,
        state: &mut State,
        (tenant, collection, total): &(Tenant, CollectionName, u64),
        progress: &mut ProgressFn<'_>,
    ) -> Result<()> {
        let step = format!("points {tenant}/{collection}");
        if state.is_done(&step) {
            return Ok(());
        }
        let info = self
            .from
            .vectors
            .collection_info(tenant, collection)
            .await
            .map_err(at(&step))?;
        let spec = CollectionSpec {
            dim: info.dim,
            distance: info.distance,
        };
        let to = &self.to.vectors;
        to.create_collection(tenant, collection, spec)
            .await
            .map_err(at(&step))?;
        for index in info.payload_indexes {
            to.create_index(tenant, collection, index)
                .await
                .map_err(at(&step))?;
        }
        let mut from: Option<PointId> =
            match state.cursor(&step) {
                Some(c) => Some(serde_json::from_str(c).map_err(|e| {
                    ServiceError::Internal(format!("{step}: saved cursor {c:?}: {e}"))
                })?),
                None => None,
            };
        let mut tally = Tally::new(&step, Some(*total), progress);
        loop {
            let (records, next) = self
                .from
                .vectors
                .scroll(tenant, collection, from, POINT_PAGE)
                .await
                .map_err(at(&step))?;
            let points = records
                .into_iter()
                .map(|r| {
                    let vector = r.vector.ok_or_else(|| {
                        ServiceError::Internal(format!("{step}: point {:?} has no vector", r.id))
                    })?;
                    Ok(Point {
                        id: r.id,
                        vector,
                        payload: r.payload,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let n = points.len();
            if n > 0 {
                to.upsert(tenant, collection, points)
                    .await
                    .map_err(at(&step))?;
            }
            let Some(next) = next else {
                tally.page(n);
                break;
            };
            let cursor = serde_json::to_string(&next)
                .map_err(|e| ServiceError::Internal(format!("{step}: {e}")))?;
            state.advance(&step, cursor)?;
            from = Some(next);
            tally.page(n);
        }
        tally.done(state)
    }

    async fn graph_tenants(&self) -> Result<Vec<Tenant>> {
        let all = self.from.graph.tenants().await.map_err(at("graph"))?;
        Ok(all.into_iter().filter(|t| self.wanted(t)).collect())
    }

    /// The next page of the source's nodes after the saved cursor of `step`.
    async fn node_page(&self, state: &State, step: &str, tenant: &Tenant) -> Result<Vec<Node>> {
        let after = state.cursor(step).map(str::to_owned);
        self.from
            .graph
            .export_nodes(tenant, after, NODE_PAGE)
            .await
            .map_err(at(step))
    }

    async fn nodes(
        &self,
        state: &mut State,
        tenant: &Tenant,
        progress: &mut ProgressFn<'_>,
    ) -> Result<()> {
        let step = format!("graph nodes {tenant}");
        if state.is_done(&step) {
            return Ok(());
        }
        let total = self.from.graph.size(tenant).await.map_err(at(&step))?.nodes;
        let mut tally = Tally::new(&step, Some(total), progress);
        loop {
            let page = self.node_page(state, &step, tenant).await?;
            let Some(last) = page.last().map(|n| n.id.clone()) else {
                break;
            };
            let n = page.len();
            let nodes: Vec<NodeUpsert> = page.into_iter().map(NodeUpsert::from).collect();
            patiently(|| self.to.graph.import(tenant, nodes.clone(), Vec::new()))
                .await
                .map_err(at(&step))?;
            state.advance(&step, last)?;
            tally.page(n);
        }
        tally.done(state)
    }

    async fn relationships(
        &self,
        state: &mut State,
        tenant: &Tenant,
        progress: &mut ProgressFn<'_>,
    ) -> Result<()> {
        let step = format!("graph relationships {tenant}");
        if state.is_done(&step) {
            return Ok(());
        }
        let total = self.from.graph.size(tenant).await.map_err(at(&step))?;
        let mut tally = Tally::new(&step, Some(total.relationships), progress);
        loop {
            let page = self.node_page(state, &step, tenant).await?;
            let Some(last) = page.last().map(|n| n.id.clone()) else {
                break;
            };
            let ids = page.into_iter().map(|n| n.id).collect();
            let rels: Vec<RelationshipUpsert> = self
                .from
                .graph
                .export_relationships(tenant, ids)
                .await
                .map_err(at(&step))?
                .into_iter()
                .map(RelationshipUpsert::from)
                .collect();
            for batch in rels.chunks(RELATIONSHIP_BATCH) {
                patiently(|| self.to.graph.import(tenant, Vec::new(), batch.to_vec()))
                    .await
                    .map_err(at(&step))?;
            }
            state.advance(&step, last)?;
            tally.page(rels.len());
        }
        tally.done(state)
    }

    async fn statuses(&self, state: &mut State, progress: &mut ProgressFn<'_>) -> Result<()> {
        let step = "ingest statuses";
        if state.is_done(step) {
            return Ok(());
        }
        let mut tally = Tally::new(step, None, progress);
        loop {
            let cursor = state.cursor(step).map(str::to_owned);
            let (page, next) = self
                .from
                .events
                .export_statuses(cursor, STATUS_PAGE)
                .await
                .map_err(at(step))?;
            let page: Vec<TenantStatus> = page
                .into_iter()
                .filter(|s| self.wanted(&s.tenant))
                .collect();
            let n = page.len();
            self.to
                .events
                .import_statuses(page)
                .await
                .map_err(at(step))?;
            let Some(next) = next else {
                tally.page(n);
                break;
            };
            state.advance(step, next)?;
            tally.page(n);
        }
        tally.done(state)
    }

    /// Counts in both sets of stores: keys, points per collection, nodes and
    /// relationships per tenant, statuses.
    async fn checks(&self) -> Result<Vec<Check>> {
        let mut checks = Vec::new();
        let tenant = self.tenant.as_ref().map(Tenant::as_str);
        let keys = |stores: &Stores| {
            let auth = stores.auth.clone();
            async move { auth.list_keys(tenant).await.map(|k| k.len() as u64) }
        };
        checks.push(Check {
            what: "api keys".into(),
            source: keys(&self.from).await.map_err(at("check"))?,
            target: keys(&self.to).await.map_err(at("check"))?,
        });
        let targets = self.to.vectors.point_counts().await.map_err(at("check"))?;
        for (tenant, collection, source) in self.collections().await? {
            let target = targets
                .iter()
                .find(|c| c.tenant == tenant.as_str() && c.collection == collection.as_str())
                .map_or(0, |c| c.points);
            checks.push(Check {
                what: format!("points {tenant}/{collection}"),
                source,
                target,
            });
        }
        for tenant in self.graph_tenants().await? {
            let source = self.from.graph.size(&tenant).await.map_err(at("check"))?;
            let target = self.to.graph.size(&tenant).await.map_err(at("check"))?;
            checks.push(Check {
                what: format!("graph nodes {tenant}"),
                source: source.nodes,
                target: target.nodes,
            });
            checks.push(Check {
                what: format!("graph relationships {tenant}"),
                source: source.relationships,
                target: target.relationships,
            });
        }
        checks.push(Check {
            what: "ingest statuses".into(),
            source: self.count_statuses(&self.from).await?,
            target: self.count_statuses(&self.to).await?,
        });
        Ok(checks)
    }

    /// Distinct documents with a status (a Redis `SCAN` may return a key twice).
    async fn count_statuses(&self, stores: &Stores) -> Result<u64> {
        let (mut seen, mut cursor) = (BTreeSet::new(), None);
        loop {
            let (page, next) = stores
                .events
                .export_statuses(cursor, STATUS_PAGE)
                .await
                .map_err(at("check"))?;
            for s in page.into_iter().filter(|s| self.wanted(&s.tenant)) {
                seen.insert((s.tenant.to_string(), s.status.id.to_string()));
            }
            match next {
                Some(n) => cursor = Some(n),
                None => return Ok(seen.len() as u64),
            }
        }
    }
}
