//! An embedding cache in front of any [`Embedder`]: identical texts (repeated queries,
//! re-ingested chunks) are embedded once. Keys are SHA-256 digests of the text, so memory
//! holds vectors, not texts; a bounded `moka` cache evicts the least useful entries.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use super::Embedder;
use crate::metrics::Metrics;
use crate::store::StoreResult;

pub struct CachedEmbedder {
    inner: Arc<dyn Embedder>,
    cache: moka::sync::Cache<[u8; 32], Arc<Vec<f32>>>,
    metrics: Arc<Metrics>,
}

impl CachedEmbedder {
    pub fn new(inner: Arc<dyn Embedder>, entries: u64, metrics: Arc<Metrics>) -> Self {
        Self {
            inner,
            cache: moka::sync::Cache::new(entries),
            metrics,
        }
    }

    fn count(&self, result: &str, n: usize) {
        self.metrics
            .cache_requests_total
            .with_label_values(&["embedding", result])
            .inc_by(n as u64);
    }
}

fn key(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

#[async_trait]
impl Embedder for CachedEmbedder {
    fn dim(&self) -> usize {
        self.inner.dim()
    }

    fn model(&self) -> &str {
        self.inner.model()
    }

    /// Looks every text up, embeds the distinct misses in one call, and caches them. A
    /// text repeated within the call is embedded once (its repeats count as hits).
    async fn embed(&self, texts: Vec<String>) -> StoreResult<Vec<Vec<f32>>> {
        let keys: Vec<[u8; 32]> = texts.iter().map(|t| key(t)).collect();
        let mut out: Vec<Option<Arc<Vec<f32>>>> = keys.iter().map(|k| self.cache.get(k)).collect();
        let mut first_of: HashMap<[u8; 32], usize> = HashMap::new();
        let mut misses = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            if out[i].is_none() && !first_of.contains_key(k) {
                first_of.insert(*k, misses.len());
                misses.push(i);
            }
        }
        self.count("hit", texts.len() - misses.len());
        self.count("miss", misses.len());
        if !misses.is_empty() {
            let mut texts = texts;
            let wanted = misses
                .iter()
                .map(|&i| std::mem::take(&mut texts[i]))
                .collect();
            let vectors: Vec<Arc<Vec<f32>>> = self
                .inner
                .embed(wanted)
                .await?
                .into_iter()
                .map(Arc::new)
                .collect();
            for (&i, vector) in misses.iter().zip(&vectors) {
                self.cache.insert(keys[i], vector.clone());
            }
            for (i, slot) in out.iter_mut().enumerate() {
                if slot.is_none() {
                    *slot = vectors.get(first_of[&keys[i]]).cloned();
                }
            }
        }
        Ok(out
            .into_iter()
            .map(|v| v.map(|v| v.as_ref().clone()).unwrap_or_default())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Counts the texts it is asked to embed; each vector is `[len]`.
    struct Counting(AtomicUsize);

    #[async_trait]
    impl Embedder for Counting {
        fn dim(&self) -> usize {
            1
        }
        fn model(&self) -> &str {
            "counting"
        }
        async fn embed(&self, texts: Vec<String>) -> StoreResult<Vec<Vec<f32>>> {
            self.0.fetch_add(texts.len(), Ordering::SeqCst);
            Ok(texts.iter().map(|t| vec![t.len() as f32]).collect())
        }
    }

    #[tokio::test]
    async fn repeated_texts_are_embedded_once_and_order_is_kept() {
        let inner = Arc::new(Counting(AtomicUsize::new(0)));
        let metrics = Arc::new(Metrics::new());
        let cached = CachedEmbedder::new(inner.clone(), 100, metrics.clone());

        let first = cached
            .embed(vec!["a".into(), "bb".into(), "a".into()])
            .await
            .unwrap();
        let second = cached
            .embed(vec!["bb".into(), "ccc".into(), "a".into()])
            .await
            .unwrap();

        assert_eq!(first, vec![vec![1.0], vec![2.0], vec![1.0]]);
        assert_eq!(second, vec![vec![2.0], vec![3.0], vec![1.0]]);
        assert_eq!(inner.0.load(Ordering::SeqCst), 3);
        let text = metrics.render();
        assert!(text.contains(r#"cache_requests_total{cache="embedding",result="hit"} 3"#));
        assert!(text.contains(r#"cache_requests_total{cache="embedding",result="miss"} 3"#));
    }
}
