//! The search-result cache: a [`SearchCache`] (in-process moka, or Redis shared by every
//! replica) and [`CachedVectors`], a [`VectorStore`] decorator that serves repeated
//! searches from it. Entries are keyed by (tenant, collection, generation, request
//! hash); every write to a collection bumps its generation after the write, so stale
//! entries are never read again and simply expire (invalidation is O(1), no key scans).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use crate::domain::principal::Tenant;
use crate::domain::vector::{
    CollectionInfo, CollectionName, CollectionSpec, Filter, PayloadIndex, Point, PointId, Record,
    ScoredPoint, SearchQuery,
};
use crate::metrics::Metrics;
use crate::store::{CollectionPoints, Created, StoreError, StoreResult, VectorStore};

#[async_trait]
pub trait SearchCache: Send + Sync {
    /// The collection's generation: changes on every write to it.
    async fn generation(&self, tenant: &Tenant, collection: &str) -> StoreResult<u64>;
    async fn bump(&self, tenant: &Tenant, collection: &str) -> StoreResult<()>;
    async fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>>;
    async fn put(&self, key: &str, value: Vec<u8>) -> StoreResult<()>;
    async fn ping(&self) -> StoreResult<()>;
}

/// This process's cache: right when one process owns the vector store (embedded mode).
pub struct MemorySearchCache {
    entries: moka::sync::Cache<String, Arc<Vec<u8>>>,
    generations: Mutex<HashMap<(String, String), u64>>,
}

impl MemorySearchCache {
    /// Holds at most `max_bytes` of keys and values.
    pub fn new(max_bytes: u64, ttl: Duration) -> Self {
        Self {
            entries: moka::sync::Cache::builder()
                .weigher(|key: &String, value: &Arc<Vec<u8>>| {
                    u32::try_from(key.len() + value.len()).unwrap_or(u32::MAX)
                })
                .max_capacity(max_bytes)
                .time_to_live(ttl)
                .build(),
            generations: Mutex::new(HashMap::new()),
        }
    }

    /// Bytes of keys and values held now, once pending evictions are done.
    pub fn held_bytes(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.weighted_size()
    }

    fn generations(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), u64>> {
        self.generations.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl SearchCache for MemorySearchCache {
    async fn generation(&self, tenant: &Tenant, collection: &str) -> StoreResult<u64> {
        let key = (tenant.to_string(), collection.to_owned());
        Ok(self.generations().get(&key).copied().unwrap_or(0))
    }

    async fn bump(&self, tenant: &Tenant, collection: &str) -> StoreResult<()> {
        let key = (tenant.to_string(), collection.to_owned());
        *self.generations().entry(key).or_default() += 1;
        Ok(())
    }

    async fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        Ok(self.entries.get(key).map(|v| v.as_ref().clone()))
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> StoreResult<()> {
        self.entries.insert(key.to_owned(), Arc::new(value));
        Ok(())
    }

    async fn ping(&self) -> StoreResult<()> {
        Ok(())
    }
}

/// The largest search result cached (JSON bytes). Limit-1,000 searches over large
/// payloads answer tens of MB each: held for the TTL, a few of them would fill the
/// in-memory cache (or Redis) with results unlikely to be asked again.
const MAX_CACHED_RESULT: usize = 1 << 20;

/// The hits as the cache holds them, or `None` past [`MAX_CACHED_RESULT`]: the encoding
/// stops there instead of finishing a result it would drop.
fn cacheable(hits: &[ScoredPoint]) -> StoreResult<Option<Vec<u8>>> {
    let mut out = Capped(Vec::new());
    match serde_json::to_writer(&mut out, hits) {
        Ok(()) => Ok(Some(out.0)),
        Err(e) if e.is_io() => Ok(None),
        Err(e) => Err(StoreError::internal(format!("encoding search hits: {e}"))),
    }
}

/// A buffer that refuses to grow past [`MAX_CACHED_RESULT`].
struct Capped(Vec<u8>);

impl std::io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + buf.len() > MAX_CACHED_RESULT {
            return Err(std::io::Error::other("past the cached result bound"));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A vector store whose searches are cached; every write bumps the collection's
/// generation once the write is done.
pub struct CachedVectors {
    inner: Arc<dyn VectorStore>,
    cache: Arc<dyn SearchCache>,
    metrics: Arc<Metrics>,
}

impl CachedVectors {
    pub fn new(
        inner: Arc<dyn VectorStore>,
        cache: Arc<dyn SearchCache>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            inner,
            cache,
            metrics,
        }
    }

    fn counted(&self, result: &'static str) {
        self.metrics
            .cache_requests_total
            .with_label_values(&["search", result])
            .inc();
    }

    /// The written result, then the generation bump; a failed bump fails the call (the
    /// write is idempotent and may be retried) rather than serve stale results.
    async fn bumped<T>(
        &self,
        tenant: &Tenant,
        collection: &str,
        written: StoreResult<T>,
    ) -> StoreResult<T> {
        let out = written?;
        self.cache.bump(tenant, collection).await?;
        Ok(out)
    }
}

/// `tenant/collection/generation/sha256(query)`: the tenant and collection stay
/// readable for operators; the hash covers everything the result depends on.
fn cache_key(tenant: &Tenant, collection: &str, generation: u64, query: &SearchQuery) -> String {
    let mut hash = Sha256::new();
    // Serialising plain data into a Vec cannot fail.
    hash.update(serde_json::to_vec(query).unwrap_or_default());
    format!(
        "search:{tenant}:{collection}:{generation}:{}",
        hex::encode(hash.finalize())
    )
}

#[async_trait]
impl VectorStore for CachedVectors {
    async fn create_collection(
        &self,
        tenant: &Tenant,
        name: &CollectionName,
        spec: CollectionSpec,
    ) -> StoreResult<Created> {
        let created = self.inner.create_collection(tenant, name, spec).await;
        self.bumped(tenant, name, created).await
    }

    async fn collection_info(
        &self,
        tenant: &Tenant,
        name: &CollectionName,
    ) -> StoreResult<CollectionInfo> {
        self.inner.collection_info(tenant, name).await
    }

    async fn collection_spec(
        &self,
        tenant: &Tenant,
        name: &CollectionName,
    ) -> StoreResult<CollectionSpec> {
        self.inner.collection_spec(tenant, name).await
    }

    async fn payload_indexes(
        &self,
        tenant: &Tenant,
        name: &CollectionName,
    ) -> StoreResult<Vec<PayloadIndex>> {
        self.inner.payload_indexes(tenant, name).await
    }

    async fn drop_collection(&self, tenant: &Tenant, name: &CollectionName) -> StoreResult<()> {
        let dropped = self.inner.drop_collection(tenant, name).await;
        self.bumped(tenant, name, dropped).await
    }

    async fn upsert(
        &self,
        tenant: &Tenant,
        collection: &CollectionName,
        points: Vec<Point>,
    ) -> StoreResult<()> {
        let written = self.inner.upsert(tenant, collection, points).await;
        self.bumped(tenant, collection, written).await
    }

    async fn search(
        &self,
        tenant: &Tenant,
        collection: &CollectionName,
        query: SearchQuery,
    ) -> StoreResult<Vec<ScoredPoint>> {
        // The generation is read before the search, so a write racing with it leaves
        // its result under the old generation, which no later search reads.
        let key = match self.cache.generation(tenant, collection).await {
            Ok(generation) => Some(cache_key(tenant, collection, generation, &query)),
            Err(e) => {
                tracing::warn!(error = %e, "search cache unavailable; searching uncached");
                None
            }
        };
        if let Some(key) = &key {
            match self.cache.get(key).await {
                Ok(Some(bytes)) => match serde_json::from_slice(&bytes) {
                    Ok(hits) => {
                        self.counted("hit");
                        return Ok(hits);
                    }
                    Err(e) => tracing::warn!(error = %e, "unreadable search cache entry"),
                },
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "search cache unavailable"),
            }
            self.counted("miss");
        }
        let hits = self.inner.search(tenant, collection, query).await?;
        if let Some(key) = key
            && let Some(bytes) = cacheable(&hits)?
            && let Err(e) = self.cache.put(&key, bytes).await
        {
            tracing::warn!(error = %e, "search result not cached");
        }
        Ok(hits)
    }

    async fn retrieve(
        &self,
        tenant: &Tenant,
        collection: &CollectionName,
        ids: Vec<PointId>,
    ) -> StoreResult<Vec<Record>> {
        self.inner.retrieve(tenant, collection, ids).await
    }

    async fn delete_ids(
        &self,
        tenant: &Tenant,
        collection: &CollectionName,
        ids: Vec<PointId>,
    ) -> StoreResult<usize> {
        let deleted = self.inner.delete_ids(tenant, collection, ids).await;
        self.bumped(tenant, collection, deleted).await
    }

    async fn delete_by_filter(
        &self,
        tenant: &Tenant,
        collection: &CollectionName,
        filter: Filter,
    ) -> StoreResult<usize> {
        let deleted = self
            .inner
            .delete_by_filter(tenant, collection, filter)
            .await;
        self.bumped(tenant, collection, deleted).await
    }

    async fn create_index(
        &self,
        tenant: &Tenant,
        collection: &CollectionName,
        index: PayloadIndex,
    ) -> StoreResult<()> {
        self.inner.create_index(tenant, collection, index).await
    }

    async fn delete_index(
        &self,
        tenant: &Tenant,
        collection: &CollectionName,
        field: &str,
    ) -> StoreResult<bool> {
        self.inner.delete_index(tenant, collection, field).await
    }

    async fn collection_count(&self, tenant: &Tenant) -> StoreResult<usize> {
        self.inner.collection_count(tenant).await
    }

    async fn point_counts(&self) -> StoreResult<Vec<CollectionPoints>> {
        self.inner.point_counts().await
    }

    async fn tenant_points(&self, tenant: &Tenant) -> StoreResult<u64> {
        self.inner.tenant_points(tenant).await
    }

    async fn scroll(
        &self,
        tenant: &Tenant,
        collection: &CollectionName,
        from: Option<PointId>,
        limit: usize,
    ) -> StoreResult<(Vec<Record>, Option<PointId>)> {
        self.inner.scroll(tenant, collection, from, limit).await
    }

    async fn ping(&self) -> StoreResult<()> {
        self.inner.ping().await
    }

    async fn close(&self) -> StoreResult<()> {
        self.inner.close().await
    }
}
