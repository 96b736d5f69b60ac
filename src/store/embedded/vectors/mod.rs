//! Embedded [`VectorStore`] on `qdrant-edge`: one shard per (tenant, collection) under
//! `<data_dir>/vectors/<tenant>/<collection>/`.
//!
//! qdrant-edge 0.7.2 does not replay its WAL on load (DESIGN.md §12), so each
//! collection keeps its own operation log ([`oplog`]): a write is applied in memory,
//! appended to the log and acknowledged once a group-committed `fdatasync` covers it.
//! One maintenance task per store optimises collections (HNSW builds run beside
//! updates) and checkpoints them (flush the shard, drop the log before it). `flush()`
//! panics if it races an update, so it runs under the collection's writer lock; its
//! other race, with the optimizer's brief segment swap, is retried (see
//! `collection::flush`). On load the log after the checkpoint is replayed.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use qdrant_edge::{FieldIndexOperations, PayloadFieldSchema, VectorInternal};

use super::fs_err;
use super::space::Space;
use crate::domain::principal::Tenant;
use crate::domain::vector::{
    CollectionInfo, CollectionName, CollectionSpec, Filter, PayloadIndex, Point, PointId, Query,
    Record, ScoredPoint, SearchQuery,
};
use crate::store::cpu::CpuSlots;
use crate::store::qdrant_mapping as map;
use crate::store::{CollectionPoints, Created, StoreError, StoreResult, VectorStore, blocking};

mod backup;
mod collection;
mod dropping;
mod engine;
mod logop;
mod maintenance;
mod oplog;
mod reads;

pub use collection::Tuning;
use collection::{Collection, Key, create_on_disk, load_all, lock};
use maintenance::maintenance_loop;
use oplog::LogOp;
use reads::{no_lexical_index, retrieve_owned, scroll_owned, search_owned};

struct Inner {
    root: PathBuf,
    collections: RwLock<HashMap<Key, Arc<Collection>>>,
    /// Serialises create and drop so two of them never race on one directory.
    lifecycle: Mutex<()>,
    /// Dropped collections whose files wait for an index build to end ([`dropping`]).
    dropping: Mutex<HashSet<Key>>,
    default_name: String,
    default_spec: CollectionSpec,
    tuning: Tuning,
    /// Searches wait here for a slot, when there is a bound (see [`CpuSlots`]).
    searches: CpuSlots,
    /// Checked before upserts and new collections and indexes (deletes never are).
    space: Space,
}

impl Inner {
    /// Every open collection, taken out of the map's lock.
    fn open_collections(&self) -> Vec<Arc<Collection>> {
        self.collections
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }
}

/// Settings the embedded vector store needs from the configuration.
pub struct EmbeddedVectorOptions {
    pub default_name: String,
    pub default_spec: CollectionSpec,
    pub tuning: Tuning,
    /// How often the maintenance task looks for work.
    pub maintenance_every: Duration,
    /// A collection is checkpointed when its log is older than this…
    pub checkpoint_every: Duration,
    /// …or larger than this many bytes.
    pub checkpoint_bytes: u64,
    /// Searches in flight at most; 0: no bound.
    pub search_slots: usize,
    /// Writes that take space are refused while the data directory's disk is short.
    pub space: Space,
}

#[derive(Clone)]
pub struct EmbeddedVectorStore {
    inner: Arc<Inner>,
    maintenance: Arc<tokio::task::JoinHandle<()>>,
}

impl EmbeddedVectorStore {
    /// Opens every collection under `<data_dir>/vectors` and starts the background indexer.
    pub async fn open(data_dir: &Path, options: EmbeddedVectorOptions) -> StoreResult<Self> {
        let root = data_dir.join("vectors");
        let tuning = options.tuning;
        let loaded = {
            let (root, space) = (root.clone(), options.space.clone());
            blocking(move || load_all(&root, tuning, &space)).await?
        };
        let inner = Arc::new(Inner {
            root,
            collections: RwLock::new(loaded),
            lifecycle: Mutex::new(()),
            dropping: Mutex::default(),
            default_name: options.default_name,
            default_spec: options.default_spec,
            tuning,
            searches: CpuSlots::new(options.search_slots),
            space: options.space,
        });
        let maintenance = tokio::spawn(maintenance_loop(
            Arc::downgrade(&inner),
            options.maintenance_every,
            options.checkpoint_every,
            options.checkpoint_bytes,
        ));
        Ok(Self {
            inner,
            maintenance: Arc::new(maintenance),
        })
    }

    fn get(&self, tenant: &Tenant, name: &str) -> Option<Arc<Collection>> {
        let key = (tenant.clone(), name.to_owned());
        self.inner
            .collections
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .cloned()
    }

    fn require(&self, tenant: &Tenant, name: &str) -> StoreResult<Arc<Collection>> {
        self.get(tenant, name)
            .ok_or_else(|| StoreError::not_found(format!("collection {name:?} does not exist")))
    }

    /// The collection for a write; the default collection is created on first use.
    async fn for_write(
        &self,
        tenant: &Tenant,
        name: &CollectionName,
    ) -> StoreResult<Arc<Collection>> {
        if let Some(c) = self.get(tenant, name) {
            return Ok(c);
        }
        if name.as_str() == self.inner.default_name {
            self.create_collection(tenant, name, self.inner.default_spec)
                .await?;
        }
        self.require(tenant, name)
    }
}

#[async_trait]
impl VectorStore for EmbeddedVectorStore {
    async fn create_collection(
        &self,
        tenant: &Tenant,
        name: &CollectionName,
        spec: CollectionSpec,
    ) -> StoreResult<Created> {
        let inner = self.inner.clone();
        let (tenant, name) = (tenant.clone(), name.to_string());
        blocking(move || {
            let _guard = lock(&inner.lifecycle);
            let key = (tenant.clone(), name.clone());
            if let Some(existing) = inner
                .collections
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .get(&key)
            {
                return if existing.spec == spec {
                    Ok(Created::Existing)
                } else {
                    Err(StoreError::conflict(format!(
                        "collection {name:?} exists with dim {} and distance {:?}",
                        existing.spec.dim, existing.spec.distance
                    )))
                };
            }
            if lock(&inner.dropping).contains(&key) {
                return Err(StoreError::conflict(format!(
                    "collection {name:?} is being dropped and its index build is ending; \
                     create it again once that is done"
                )));
            }
            inner.space.check()?;
            let collection = Arc::new(create_on_disk(
                &inner.root,
                &tenant,
                &name,
                spec,
                inner.tuning,
            )?);
            inner
                .collections
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key, collection);
            Ok(Created::New)
        })
        .await
    }

    async fn collection_info(
        &self,
        tenant: &Tenant,
        name: &CollectionName,
    ) -> StoreResult<CollectionInfo> {
        let c = self.require(tenant, name)?;
        let (tenant, name) = (tenant.clone(), name.to_string());
        blocking(move || {
            let info = c.shard()?.info();
            Ok(CollectionInfo {
                points_count: c.count(&tenant, None)?,
                indexed_vectors_count: info.indexed_vectors_count,
                optimizing: c.optimizing(),
                payload_indexes: map::shard_payload_indexes(&info),
                name,
                dim: c.spec.dim,
                distance: c.spec.distance,
            })
        })
        .await
    }

    async fn collection_spec(
        &self,
        tenant: &Tenant,
        name: &CollectionName,
    ) -> StoreResult<CollectionSpec> {
        Ok(self.require(tenant, name)?.spec)
    }

    async fn payload_indexes(
        &self,
        tenant: &Tenant,
        name: &CollectionName,
    ) -> StoreResult<Vec<PayloadIndex>> {
        let c = self.require(tenant, name)?;
        blocking(move || Ok(map::shard_payload_indexes(&c.shard()?.info()))).await
    }

    async fn drop_collection(&self, tenant: &Tenant, name: &CollectionName) -> StoreResult<()> {
        let inner = self.inner.clone();
        let (tenant, name) = (tenant.clone(), name.to_string());
        blocking(move || dropping::drop_collection(&inner, &tenant, &name)).await
    }

    async fn upsert(
        &self,
        tenant: &Tenant,
        collection: &CollectionName,
        points: Vec<Point>,
    ) -> StoreResult<()> {
        self.inner.space.check()?;
        let c = self.for_write(tenant, collection).await?;
        if let Some(p) = points.iter().find(|p| p.vector.len() != c.spec.dim) {
            return Err(StoreError::invalid(format!(
                "point {:?} has {} dimensions; the collection has {}",
                p.id,
                p.vector.len(),
                c.spec.dim
            )));
        }
        blocking(move || c.write(LogOp::Upsert(points))).await
    }

    async fn search(
        &self,
        tenant: &Tenant,
        collection: &CollectionName,
        query: SearchQuery,
    ) -> StoreResult<Vec<ScoredPoint>> {
        let c = self.require(tenant, collection)?;
        let (vector, using) = match &query.query {
            Query::Dense(v) if v.len() != c.spec.dim => {
                return Err(StoreError::invalid(format!(
                    "query vector has {} dimensions; the collection has {}",
                    v.len(),
                    c.spec.dim
                )));
            }
            Query::Dense(v) => (VectorInternal::Dense(v.clone()), None),
            Query::Lexical(_) if !c.lexical => return Err(no_lexical_index(collection)),
            Query::Lexical(text) => (
                VectorInternal::Sparse(map::lexical_query(text)),
                Some(map::LEXICAL.to_owned()),
            ),
        };
        let tenant = tenant.clone();
        self.inner
            .searches
            .run(move || search_owned(&c, &tenant, query, vector, using))
            .await
    }

    async fn retrieve(
        &self,
        tenant: &Tenant,
        collection: &CollectionName,
        ids: Vec<PointId>,
    ) -> StoreResult<Vec<Record>> {
        let c = self.require(tenant, collection)?;
        let tenant = tenant.clone();
        blocking(move || retrieve_owned(&c, &tenant, &ids, true)).await
    }

    async fn delete_ids(
        &self,
        tenant: &Tenant,
        collection: &CollectionName,
        ids: Vec<PointId>,
    ) -> StoreResult<usize> {
        let c = self.require(tenant, collection)?;
        let tenant = tenant.clone();
        blocking(move || {
            let owned: Vec<_> = retrieve_owned(&c, &tenant, &ids, false)?
                .into_iter()
                .map(|p| p.id)
                .collect();
            if owned.is_empty() {
                return Ok(0);
            }
            let n = owned.len();
            c.write(LogOp::DeleteIds(owned))?;
            Ok(n)
        })
        .await
    }

    async fn delete_by_filter(
        &self,
        tenant: &Tenant,
        collection: &CollectionName,
        filter: Filter,
    ) -> StoreResult<usize> {
        let c = self.require(tenant, collection)?;
        let tenant = tenant.clone();
        blocking(move || {
            let n = c.count(&tenant, Some(&filter))?;
            if n == 0 {
                return Ok(0);
            }
            c.write(LogOp::DeleteFilter(filter))?;
            Ok(n)
        })
        .await
    }

    async fn create_index(
        &self,
        tenant: &Tenant,
        collection: &CollectionName,
        index: PayloadIndex,
    ) -> StoreResult<()> {
        self.inner.space.check()?;
        let c = self.require(tenant, collection)?;
        blocking(move || {
            let field = map::index_path(&index.field).map_err(StoreError::invalid)?;
            let schema = map::index_kind(index.kind);
            let existing = c
                .shard()?
                .info()
                .payload_schema
                .get(&field)
                .map(|i| i.data_type);
            if existing == Some(schema) {
                return Ok(());
            }
            if existing.is_some() {
                c.change_index(FieldIndexOperations::DeleteIndex(field.clone()))?;
            }
            c.change_index(FieldIndexOperations::CreateIndex(
                qdrant_edge::CreateIndex {
                    field_name: field,
                    field_schema: Some(PayloadFieldSchema::FieldType(schema)),
                },
            ))
        })
        .await
    }

    async fn delete_index(
        &self,
        tenant: &Tenant,
        collection: &CollectionName,
        field: &str,
    ) -> StoreResult<bool> {
        let c = self.require(tenant, collection)?;
        let field = field.to_owned();
        blocking(move || {
            let field = map::index_path(&field).map_err(StoreError::invalid)?;
            if !c.shard()?.info().payload_schema.contains_key(&field) {
                return Ok(false);
            }
            c.change_index(FieldIndexOperations::DeleteIndex(field))?;
            Ok(true)
        })
        .await
    }

    async fn collection_count(&self, tenant: &Tenant) -> StoreResult<usize> {
        let collections = self
            .inner
            .collections
            .read()
            .unwrap_or_else(|p| p.into_inner());
        Ok(collections.keys().filter(|(t, _)| t == tenant).count())
    }

    async fn point_counts(&self) -> StoreResult<Vec<CollectionPoints>> {
        self.counts(|_| true).await
    }

    async fn tenant_points(&self, tenant: &Tenant) -> StoreResult<u64> {
        let counts = self.counts(|t| t == tenant).await?;
        Ok(counts.iter().map(|c| c.points).sum())
    }

    async fn scroll(
        &self,
        tenant: &Tenant,
        collection: &CollectionName,
        from: Option<PointId>,
        limit: usize,
    ) -> StoreResult<(Vec<Record>, Option<PointId>)> {
        let c = self.require(tenant, collection)?;
        let tenant = tenant.clone();
        blocking(move || scroll_owned(&c, &tenant, from, limit)).await
    }

    async fn ping(&self) -> StoreResult<()> {
        let root = self.inner.root.clone();
        blocking(move || std::fs::metadata(&root).map(|_| ()).map_err(fs_err)).await
    }

    async fn close(&self) -> StoreResult<()> {
        self.maintenance.abort();
        let all = self.inner.open_collections();
        // Every collection closes, whether or not one before it failed.
        let closed = blocking(move || Ok(all.iter().map(|c| c.close()).collect::<Vec<_>>()));
        closed.await?.into_iter().collect()
    }
}
