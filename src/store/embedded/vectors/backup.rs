//! The vector store's part of a snapshot: every collection's directory, copied while
//! its writes wait (see [`Collection::backup_to`]).

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;

use super::collection::{Collection, Key, collection_dir, lock};
use super::{EmbeddedVectorStore, blocking};
use crate::store::StoreResult;
use crate::store::backup::Backup;

#[async_trait]
impl Backup for EmbeddedVectorStore {
    fn name(&self) -> &'static str {
        "vectors"
    }

    /// Copies each collection in turn under `into/vectors`; no collection is created or
    /// dropped meanwhile.
    async fn backup(&self, into: &Path) -> StoreResult<()> {
        let (inner, root) = (self.inner.clone(), into.join("vectors"));
        blocking(move || {
            let _lifecycle = lock(&inner.lifecycle);
            let collections: Vec<(Key, Arc<Collection>)> = inner
                .collections
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .map(|(key, c)| (key.clone(), c.clone()))
                .collect();
            for ((tenant, name), collection) in collections {
                collection.backup_to(&collection_dir(&root, &tenant, &name))?;
            }
            Ok(())
        })
        .await
    }
}
