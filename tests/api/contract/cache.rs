//! The SearchCache contract: in memory and Redis.

use std::sync::Arc;
use std::time::Duration;

use ragbrain::store::cache::{MemorySearchCache, SearchCache};
use ragbrain::store::redis::RedisSearchCache;

use super::tenant;
use crate::backends;

async fn contract(cache: Arc<dyn SearchCache>) {
    let (a, b) = (tenant("ca"), tenant("cb"));
    let g0 = cache.generation(&a, "docs").await.unwrap();
    cache.bump(&a, "docs").await.unwrap();
    let g1 = cache.generation(&a, "docs").await.unwrap();
    assert_ne!(g0, g1);
    assert_eq!(cache.generation(&b, "docs").await.unwrap(), 0, "per tenant");
    assert_eq!(
        cache.generation(&a, "other").await.unwrap(),
        0,
        "per collection"
    );
    let key = format!("search:{a}:docs:{g1}:abc");
    assert_eq!(cache.get(&key).await.unwrap(), None);
    cache.put(&key, b"[1,2]".to_vec()).await.unwrap();
    assert_eq!(
        cache.get(&key).await.unwrap().as_deref(),
        Some(&b"[1,2]"[..])
    );
    cache.ping().await.unwrap();
}

#[tokio::test]
async fn memory_search_cache_meets_the_contract() {
    contract(Arc::new(MemorySearchCache::new(
        1 << 20,
        Duration::from_secs(60),
    )))
    .await;
}

/// The in-memory cache holds at most its bytes: older entries go to make room.
#[tokio::test]
async fn memory_search_cache_holds_at_most_its_bytes() {
    let cache = MemorySearchCache::new(100_000, Duration::from_secs(60));
    for i in 0..50 {
        cache
            .put(&format!("k{i}"), vec![b'x'; 10_000])
            .await
            .unwrap();
    }
    let held = cache.held_bytes();
    assert!((10_000..=100_000).contains(&held), "{held} bytes held");
}

#[tokio::test]
async fn redis_search_cache_meets_the_contract() {
    let Some(redis) = backends::redis() else {
        return;
    };
    contract(Arc::new(RedisSearchCache::new(
        redis,
        Duration::from_secs(60),
    )))
    .await;
}
