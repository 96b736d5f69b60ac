//! Dropping a collection. Its files can go only once nothing holds its shard, and a
//! running optimize holds it for as long as its index build takes (minutes for a
//! large collection; qdrant-edge 0.7.2 cannot stop one). So a drop takes the collection
//! out of the map (requests see 404 at once), marks its directory dropped (a restart
//! deletes it rather than load it), and deletes the files once the last holder lets go:
//! inline when that is soon, as it nearly always is, else on a thread of its own while
//! the drop answers. Until then the name is taken: a create of it is refused (409).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::super::sync_dir;
use super::collection::{Collection, DROPPED, Key, collection_dir, lock};
use super::{Inner, fs_err};
use crate::domain::principal::Tenant;
use crate::store::{StoreError, StoreResult};

/// How long a drop waits for in-flight requests before it answers and leaves the
/// deletion to a thread: requests take milliseconds, index builds minutes.
const INLINE_WAIT: Duration = Duration::from_secs(2);

/// Drops collection `name` of `tenant` (see the module docs). Call off the runtime.
pub(super) fn drop_collection(inner: &Arc<Inner>, tenant: &Tenant, name: &str) -> StoreResult<()> {
    let key: Key = (tenant.clone(), name.to_owned());
    let collection = {
        // A collection being dropped is out of the map already: a second drop gets 404.
        let _lifecycle = lock(&inner.lifecycle);
        let removed = inner
            .collections
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
        let collection = removed
            .ok_or_else(|| StoreError::not_found(format!("collection {name:?} does not exist")))?;
        let dir = collection_dir(&inner.root, tenant, name);
        if let Err(e) = mark_dropped(&dir) {
            inner
                .collections
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key, collection);
            return Err(e);
        }
        lock(&inner.dropping).insert(key.clone());
        collection
    };
    let deadline = Instant::now() + INLINE_WAIT;
    let collection = match release(collection, Some(deadline)) {
        Ok(owned) => return finish(inner, key, owned),
        Err(shared) => shared,
    };
    tracing::info!(collection = %name, "dropping a collection still in use (an index build); its files go when it ends");
    let inner = inner.clone();
    std::thread::Builder::new()
        .name("vector-drop".into())
        .spawn(move || {
            if let Ok(owned) = release(collection, None)
                && let Err(e) = finish(&inner, key, owned)
            {
                tracing::warn!(error = %e, "a dropped collection's files could not be deleted; the next start deletes them");
            }
        })
        .map(drop)
        .map_err(|e| StoreError::internal(format!("starting a vector drop: {e}")))
}

/// The collection once no one else holds it, or itself back at `deadline`.
fn release(
    mut collection: Arc<Collection>,
    deadline: Option<Instant>,
) -> Result<Collection, Arc<Collection>> {
    loop {
        match Arc::try_unwrap(collection) {
            Ok(owned) => return Ok(owned),
            Err(shared) if deadline.is_some_and(|d| Instant::now() >= d) => return Err(shared),
            Err(shared) => {
                collection = shared;
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

/// Closes the shard, deletes the files and frees the name.
fn finish(inner: &Inner, key: Key, owned: Collection) -> StoreResult<()> {
    drop(owned);
    let _lifecycle = lock(&inner.lifecycle);
    let dir = collection_dir(&inner.root, &key.0, &key.1);
    let trash = inner
        .root
        .join(key.0.as_str())
        .join(format!(".drop.{}", uuid::Uuid::new_v4()));
    // The name stays taken if the files stay: the next start deletes them (the marker).
    std::fs::rename(&dir, &trash).map_err(fs_err)?;
    lock(&inner.dropping).remove(&key);
    std::fs::remove_dir_all(&trash).map_err(fs_err)
}

/// Writes the marker durably: a crash after the drop answered must not bring the
/// collection back.
fn mark_dropped(dir: &Path) -> StoreResult<()> {
    let marker = std::fs::File::create(dir.join(DROPPED)).map_err(fs_err)?;
    marker.sync_all().map_err(fs_err)?;
    sync_dir(dir)
}
