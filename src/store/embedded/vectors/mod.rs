//! Embedded [`VectorStore`] on `qdrant-edge`: one shard per (tenant, collection) under
//! `<data_dir>/vectors/<tenant>/<collection>/`.
//!
//! qdrant-edge 0.7.2 does not replay its WAL on load, so a write is acknowledged only
//! after `flush()`. `flush()` panics if it races an update or an optimizer swap, so each
//! collection has one writer lock held by update, by flush and by optimize; searches
//! never take it. Concurrent writers share flushes (group commit). HNSW is built in the
//! background once a collection has been idle for a while.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use qdrant_edge::{
    NamedQuery, PointInsertOperations, PointOperations, PointStructPersisted, QueryEnum,
    SearchRequest, UpdateOperation, VectorStructPersisted, WithPayloadInterface, WithVector,
};

use super::fs_err;
use crate::domain::principal::Tenant;
use crate::domain::vector::{
    CollectionInfo, CollectionSpec, Filter, Point, PointId, Record, ScoredPoint, SearchQuery,
};
use crate::store::qdrant_mapping as map;
use crate::store::{CollectionPoints, Created, StoreError, StoreResult, VectorStore, blocking};

mod collection;

use collection::{
    Collection, Key, collection_dir, create_on_disk, engine, load_all, lock, new_collection,
    retrieve_owned,
};

struct Inner {
    root: PathBuf,
    collections: RwLock<HashMap<Key, Arc<Collection>>>,
    /// Serialises create and drop so two of them never race on one directory.
    lifecycle: Mutex<()>,
    default_name: String,
    default_spec: CollectionSpec,
}

/// Settings the embedded vector store needs from the configuration.
pub struct EmbeddedVectorOptions {
    pub default_name: String,
    pub default_spec: CollectionSpec,
    pub optimize_idle: Duration,
    pub optimize_check: Duration,
}

#[derive(Clone)]
pub struct EmbeddedVectorStore {
    inner: Arc<Inner>,
    optimizer: Arc<tokio::task::JoinHandle<()>>,
}

impl EmbeddedVectorStore {
    /// Opens every collection under `<data_dir>/vectors` and starts the background indexer.
    pub async fn open(data_dir: &Path, options: EmbeddedVectorOptions) -> StoreResult<Self> {
        let root = data_dir.join("vectors");
        let loaded = {
            let root = root.clone();
            blocking(move || load_all(&root)).await?
        };
        let inner = Arc::new(Inner {
            root,
            collections: RwLock::new(loaded),
            lifecycle: Mutex::new(()),
            default_name: options.default_name,
            default_spec: options.default_spec,
        });
        let optimizer = tokio::spawn(optimize_loop(
            Arc::downgrade(&inner),
            options.optimize_idle,
            options.optimize_check,
        ));
        Ok(Self {
            inner,
            optimizer: Arc::new(optimizer),
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
    async fn for_write(&self, tenant: &Tenant, name: &str) -> StoreResult<Arc<Collection>> {
        if let Some(c) = self.get(tenant, name) {
            return Ok(c);
        }
        if name == self.inner.default_name {
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
        name: &str,
        spec: CollectionSpec,
    ) -> StoreResult<Created> {
        let inner = self.inner.clone();
        let (tenant, name) = (tenant.clone(), name.to_owned());
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
            let shard = create_on_disk(&inner.root, &tenant, &name, spec)?;
            let collection = Arc::new(new_collection(shard, spec));
            inner
                .collections
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key, collection);
            Ok(Created::New)
        })
        .await
    }

    async fn collection_info(&self, tenant: &Tenant, name: &str) -> StoreResult<CollectionInfo> {
        let c = self.require(tenant, name)?;
        let (tenant, name) = (tenant.clone(), name.to_owned());
        blocking(move || {
            let info = c.shard.info();
            Ok(CollectionInfo {
                points_count: c.count(&tenant, None)?,
                indexed_vectors_count: info.indexed_vectors_count,
                name,
                dim: c.spec.dim,
                distance: c.spec.distance,
            })
        })
        .await
    }

    async fn drop_collection(&self, tenant: &Tenant, name: &str) -> StoreResult<()> {
        let inner = self.inner.clone();
        let (tenant, name) = (tenant.clone(), name.to_owned());
        blocking(move || {
            let _guard = lock(&inner.lifecycle);
            let key = (tenant.clone(), name.clone());
            let removed = inner
                .collections
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&key);
            let mut collection = removed.ok_or_else(|| {
                StoreError::not_found(format!("collection {name:?} does not exist"))
            })?;
            // In-flight requests hold clones; let them finish before the files go.
            let deadline = Instant::now() + Duration::from_secs(30);
            let owned = loop {
                match Arc::try_unwrap(collection) {
                    Ok(c) => break c,
                    Err(shared) if Instant::now() < deadline => {
                        collection = shared;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => {
                        return Err(StoreError::new(
                            crate::store::ErrorKind::Unavailable,
                            "collection is still in use; try again",
                        ));
                    }
                }
            };
            drop(owned);
            let dir = collection_dir(&inner.root, &tenant, &name);
            let trash = inner
                .root
                .join(tenant.as_str())
                .join(format!(".drop.{}", uuid::Uuid::new_v4()));
            std::fs::rename(&dir, &trash).map_err(fs_err)?;
            std::fs::remove_dir_all(&trash).map_err(fs_err)
        })
        .await
    }

    async fn upsert(
        &self,
        tenant: &Tenant,
        collection: &str,
        points: Vec<Point>,
    ) -> StoreResult<()> {
        let c = self.for_write(tenant, collection).await?;
        if let Some(p) = points.iter().find(|p| p.vector.len() != c.spec.dim) {
            return Err(StoreError::invalid(format!(
                "point {:?} has {} dimensions; the collection has {}",
                p.id,
                p.vector.len(),
                c.spec.dim
            )));
        }
        let tenant = tenant.clone();
        blocking(move || {
            let points = points
                .into_iter()
                .map(|p| PointStructPersisted {
                    id: map::point_id(p.id),
                    vector: VectorStructPersisted::Single(p.vector),
                    payload: Some(map::payload_with_tenant(p.payload, &tenant)),
                })
                .collect();
            c.write(UpdateOperation::PointOperation(
                PointOperations::UpsertPoints(PointInsertOperations::PointsList(points)),
            ))
        })
        .await
    }

    async fn search(
        &self,
        tenant: &Tenant,
        collection: &str,
        query: SearchQuery,
    ) -> StoreResult<Vec<ScoredPoint>> {
        let c = self.require(tenant, collection)?;
        if query.vector.len() != c.spec.dim {
            return Err(StoreError::invalid(format!(
                "query vector has {} dimensions; the collection has {}",
                query.vector.len(),
                c.spec.dim
            )));
        }
        let tenant = tenant.clone();
        blocking(move || {
            let filter = map::search_filter(&tenant, query.filter.as_ref(), query.ids.as_deref())
                .map_err(StoreError::invalid)?;
            let found = c
                .shard
                .search(SearchRequest {
                    query: QueryEnum::Nearest(NamedQuery {
                        query: query.vector.into(),
                        using: None,
                    }),
                    filter: Some(filter),
                    params: None,
                    limit: query.limit,
                    offset: query.offset,
                    // The tenant check needs the payload even when the caller does not.
                    with_payload: Some(WithPayloadInterface::Bool(true)),
                    with_vector: Some(WithVector::Bool(query.with_vector)),
                    score_threshold: query.score_threshold,
                })
                .map_err(engine)?;
            Ok(found
                .into_iter()
                .filter_map(|p| map::scored_point(p, &tenant, query.with_payload))
                .collect())
        })
        .await
    }

    async fn retrieve(
        &self,
        tenant: &Tenant,
        collection: &str,
        ids: Vec<PointId>,
    ) -> StoreResult<Vec<Record>> {
        let c = self.require(tenant, collection)?;
        let tenant = tenant.clone();
        blocking(move || retrieve_owned(&c, &tenant, &ids, true)).await
    }

    async fn delete_ids(
        &self,
        tenant: &Tenant,
        collection: &str,
        ids: Vec<PointId>,
    ) -> StoreResult<usize> {
        let c = self.require(tenant, collection)?;
        let tenant = tenant.clone();
        blocking(move || {
            let owned: Vec<_> = retrieve_owned(&c, &tenant, &ids, false)?
                .into_iter()
                .map(|p| map::point_id(p.id))
                .collect();
            if owned.is_empty() {
                return Ok(0);
            }
            let n = owned.len();
            c.write(UpdateOperation::PointOperation(
                PointOperations::DeletePoints { ids: owned },
            ))?;
            Ok(n)
        })
        .await
    }

    async fn delete_by_filter(
        &self,
        tenant: &Tenant,
        collection: &str,
        filter: Filter,
    ) -> StoreResult<usize> {
        let c = self.require(tenant, collection)?;
        let tenant = tenant.clone();
        blocking(move || {
            let n = c.count(&tenant, Some(&filter))?;
            if n == 0 {
                return Ok(0);
            }
            let scoped = map::tenant_filter(&tenant, Some(&filter)).map_err(StoreError::invalid)?;
            c.write(UpdateOperation::PointOperation(
                PointOperations::DeletePointsByFilter(scoped),
            ))?;
            Ok(n)
        })
        .await
    }

    async fn point_counts(&self) -> StoreResult<Vec<CollectionPoints>> {
        let all: Vec<(Key, Arc<Collection>)> = self
            .inner
            .collections
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, c)| (k.clone(), c.clone()))
            .collect();
        blocking(move || {
            all.into_iter()
                .map(|((tenant, name), c)| {
                    Ok(CollectionPoints {
                        points: c.count(&tenant, None)? as u64,
                        tenant: tenant.to_string(),
                        collection: name,
                    })
                })
                .collect()
        })
        .await
    }

    async fn ping(&self) -> StoreResult<()> {
        let root = self.inner.root.clone();
        blocking(move || std::fs::metadata(&root).map(|_| ()).map_err(fs_err)).await
    }

    async fn close(&self) -> StoreResult<()> {
        self.optimizer.abort();
        let all: Vec<_> = self
            .inner
            .collections
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        blocking(move || {
            for c in all {
                let _w = lock(&c.writer);
                c.shard.flush();
            }
            Ok(())
        })
        .await
    }
}

/// Builds HNSW for collections that took writes and then went quiet, off the request path.
async fn optimize_loop(inner: std::sync::Weak<Inner>, idle: Duration, check: Duration) {
    let mut tick = tokio::time::interval(check);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        let due: Vec<_> = inner
            .collections
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|c| c.dirty.load(Ordering::Acquire) && lock(&c.last_write).elapsed() >= idle)
            .cloned()
            .collect();
        drop(inner);
        for c in due {
            let result = blocking(move || {
                let _w = lock(&c.writer);
                c.dirty.store(false, Ordering::Release);
                c.shard.optimize().map_err(engine)?;
                c.shard.flush();
                Ok(())
            })
            .await;
            if let Err(e) = result {
                tracing::warn!(error = %e, "background vector optimisation failed");
            }
        }
    }
}
