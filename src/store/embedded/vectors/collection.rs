//! One embedded collection: its qdrant-edge shard on disk (create, load, spec) and the
//! write path with group commit. See the parent module for why writes are ordered so.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use qdrant_edge::{
    CountRequest, DEFAULT_VECTOR_NAME, EdgeConfigBuilder, EdgeShard, EdgeVectorParams,
    FieldIndexOperations, PayloadFieldSchema, PayloadSchemaType, UpdateOperation,
    WithPayloadInterface, WithVector,
};

use super::super::fs_err;
use crate::domain::principal::Tenant;
use crate::domain::vector::{CollectionSpec, Filter, PointId, Record};
use crate::store::qdrant_mapping as map;
use crate::store::{StoreError, StoreResult};

pub(super) type Key = (Tenant, String);

pub(super) struct Collection {
    pub(super) shard: EdgeShard,
    pub(super) spec: CollectionSpec,
    /// Held by update, by flush and by optimize; see the module docs. Guards the count
    /// of updates applied so far.
    pub(super) writer: Mutex<u64>,
    /// Serialises flushers and holds the count of updates known to be on disk.
    pub(super) flushed: Mutex<u64>,
    pub(super) last_write: Mutex<Instant>,
    /// Points were written since the last optimisation.
    pub(super) dirty: AtomicBool,
}

pub(super) fn engine(e: impl std::fmt::Display) -> StoreError {
    StoreError::internal(format!("vector engine: {e}"))
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub(super) fn collection_dir(root: &Path, tenant: &Tenant, name: &str) -> PathBuf {
    root.join(tenant.as_str()).join(name)
}

pub(super) fn load_all(root: &Path) -> StoreResult<HashMap<Key, Arc<Collection>>> {
    let mut out = HashMap::new();
    if !root.exists() {
        std::fs::create_dir_all(root).map_err(fs_err)?;
        return Ok(out);
    }
    for tenant_entry in std::fs::read_dir(root).map_err(fs_err)? {
        let tenant_dir = tenant_entry.map_err(fs_err)?.path();
        let Some(tenant) = file_name(&tenant_dir).and_then(Tenant::parse) else {
            continue;
        };
        for entry in std::fs::read_dir(&tenant_dir).map_err(fs_err)? {
            let dir = entry.map_err(fs_err)?.path();
            let Some(name) = file_name(&dir) else {
                continue;
            };
            if name.starts_with('.') {
                // An interrupted create or drop; nothing acknowledged lives there.
                std::fs::remove_dir_all(&dir).map_err(fs_err)?;
                continue;
            }
            let shard = EdgeShard::load(&dir, None).map_err(engine)?;
            let spec = spec_of(&shard)?;
            out.insert(
                (tenant.clone(), name.to_owned()),
                Arc::new(new_collection(shard, spec)),
            );
        }
    }
    Ok(out)
}

pub(super) fn file_name(path: &Path) -> Option<&str> {
    path.file_name().and_then(|n| n.to_str())
}

pub(super) fn spec_of(shard: &EdgeShard) -> StoreResult<CollectionSpec> {
    let config = shard.config();
    let params = config
        .vectors
        .get(DEFAULT_VECTOR_NAME)
        .ok_or_else(|| StoreError::internal("collection has no default vector"))?;
    let distance = map::distance_back(params.distance)
        .ok_or_else(|| StoreError::internal("collection uses an unsupported distance"))?;
    Ok(CollectionSpec {
        dim: params.size,
        distance,
    })
}

pub(super) fn new_collection(shard: EdgeShard, spec: CollectionSpec) -> Collection {
    Collection {
        shard,
        spec,
        writer: Mutex::new(0),
        flushed: Mutex::new(0),
        last_write: Mutex::new(Instant::now()),
        dirty: AtomicBool::new(true),
    }
}

/// Builds the shard in a hidden directory and renames it into place, so a crash never
/// leaves a half-made collection under its real name.
pub(super) fn create_on_disk(
    root: &Path,
    tenant: &Tenant,
    name: &str,
    spec: CollectionSpec,
) -> StoreResult<EdgeShard> {
    let final_dir = collection_dir(root, tenant, name);
    let tmp_dir = root
        .join(tenant.as_str())
        .join(format!(".{name}.{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&tmp_dir).map_err(fs_err)?;
    let config = EdgeConfigBuilder::new()
        .vector(
            DEFAULT_VECTOR_NAME,
            EdgeVectorParams::builder(spec.dim, map::distance(spec.distance)).build(),
        )
        .build();
    {
        let shard = EdgeShard::new(&tmp_dir, config).map_err(engine)?;
        shard
            .update(UpdateOperation::FieldIndexOperation(
                FieldIndexOperations::CreateIndex(qdrant_edge::CreateIndex {
                    field_name: map::tenant_path().map_err(StoreError::internal)?,
                    field_schema: Some(PayloadFieldSchema::FieldType(PayloadSchemaType::Keyword)),
                }),
            ))
            .map_err(engine)?;
        shard.flush();
    }
    std::fs::rename(&tmp_dir, &final_dir).map_err(fs_err)?;
    EdgeShard::load(&final_dir, None).map_err(engine)
}

impl Collection {
    /// Applies `op`, then returns once a flush has covered it (group commit): writers
    /// apply under the writer lock one at a time, and one flush makes every update
    /// applied before it durable, so concurrent writers share fsyncs.
    pub(super) fn write(&self, op: UpdateOperation) -> StoreResult<()> {
        let seq = {
            let mut applied = lock(&self.writer);
            self.shard.update(op).map_err(engine)?;
            *applied += 1;
            *applied
        };
        *lock(&self.last_write) = Instant::now();
        self.dirty.store(true, Ordering::Release);
        let mut flushed = lock(&self.flushed);
        if *flushed < seq {
            let applied = lock(&self.writer);
            self.shard.flush();
            *flushed = *applied;
        }
        Ok(())
    }

    pub(super) fn count(&self, tenant: &Tenant, filter: Option<&Filter>) -> StoreResult<usize> {
        let filter = map::tenant_filter(tenant, filter).map_err(StoreError::invalid)?;
        self.shard
            .count(CountRequest {
                filter: Some(filter),
                exact: true,
            })
            .map_err(engine)
    }
}

pub(super) fn retrieve_owned(
    c: &Collection,
    tenant: &Tenant,
    ids: &[PointId],
    with_vector: bool,
) -> StoreResult<Vec<Record>> {
    let ids: Vec<_> = ids.iter().map(|id| map::point_id(*id)).collect();
    let records = c
        .shard
        .retrieve(
            &ids,
            Some(WithPayloadInterface::Bool(true)),
            Some(WithVector::Bool(with_vector)),
        )
        .map_err(engine)?;
    Ok(records
        .into_iter()
        .filter_map(|r| {
            let payload = map::owned_payload(r.payload, tenant)?;
            Some(Record {
                id: map::point_id_back(r.id),
                payload,
                vector: map::dense_vector(r.vector),
            })
        })
        .collect())
}
