//! One embedded collection: its qdrant-edge shard on disk (create, load, spec), its
//! operation log, and the write, checkpoint and maintenance steps. See the parent
//! module for why they are ordered so.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::time::Instant;

use qdrant_edge::{
    DEFAULT_VECTOR_NAME, EdgeConfigBuilder, EdgeShard, EdgeSparseVectorParamsBuilder,
    EdgeVectorParams, FieldIndexOperations, Modifier, PayloadFieldSchema, PayloadSchemaType,
    PointInsertOperations, PointOperations, PointStructPersisted, UpdateOperation, VectorPersisted,
    VectorStructPersisted,
};

use super::super::fs_err;
pub(super) use super::super::lock;
use super::super::space::Space;
use super::engine::{
    deduplicate, distinct_points, engine, engine_wal_files, flush, trim_engine_wal,
};
use super::oplog::{LogOp, OpLog};
use crate::config::VectorQuantization;
use crate::domain::principal::Tenant;
use crate::domain::vector::{CollectionSpec, Filter};
use crate::store::qdrant_mapping as map;
use crate::store::{StoreError, StoreResult};

pub(super) type Key = (Tenant, String);

/// The marker file of a dropped collection whose files are not deleted yet.
pub(super) const DROPPED: &str = "DROPPED";

/// How the store keeps its collections: set once from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct Tuning {
    /// Threads one HNSW build may use; the rest of the cores stay with searches.
    pub indexing_threads: usize,
    /// The engine's own WAL files (never replayed, see DESIGN.md §12) above this many
    /// bytes are dropped at the next checkpoint by reopening the shard.
    pub engine_wal_limit_bytes: u64,
    /// Segments larger than this (KiB of vectors) get an HNSW index; `None`: the
    /// engine's default (10,000 KiB).
    pub indexing_threshold_kb: Option<usize>,
    /// The compressed copy new collections keep for the HNSW walk.
    pub quantization: VectorQuantization,
}

pub(super) struct Collection {
    /// `None` only while maintenance reopens the shard.
    shard: RwLock<Option<EdgeShard>>,
    pub(super) spec: CollectionSpec,
    /// Points with text also get BM25 term weights (collections created before the
    /// lexical index existed have none, and answer lexical searches with an error).
    pub(super) lexical: bool,
    tenant: Tenant,
    dir: PathBuf,
    /// Held by every update with its log append, and by the shard flush: `flush()`
    /// panics if it races an update.
    writer: Mutex<()>,
    log: OpLog,
    /// Held by checkpoint and reopen.
    pub(super) maintenance: Mutex<Maintenance>,
    /// Held by optimize, which may run for minutes beside updates and checkpoints;
    /// reopen waits for it.
    optimizing: Mutex<()>,
    /// Points were written since the last optimisation.
    dirty: AtomicBool,
    /// The engine WAL is over its limit: no new optimize starts until a checkpoint has
    /// reopened the shard.
    reopen_due: AtomicBool,
    tuning: Tuning,
}

pub(super) struct Maintenance {
    pub(super) checkpointed: u64,
    pub(super) last_checkpoint: Instant,
}

/// A read handle on a collection's shard.
pub(super) struct ShardRef<'a>(RwLockReadGuard<'a, Option<EdgeShard>>);

impl std::ops::Deref for ShardRef<'_> {
    type Target = EdgeShard;
    fn deref(&self) -> &EdgeShard {
        // `Collection::shard` hands out a ShardRef only when the shard is there.
        self.0
            .as_ref()
            .unwrap_or_else(|| unreachable!("checked in Collection::shard"))
    }
}

pub(super) fn collection_dir(root: &Path, tenant: &Tenant, name: &str) -> PathBuf {
    root.join(tenant.as_str()).join(name)
}

/// Room a collection's replay at open takes: the log's records go again into the
/// engine's WAL and into its segments (memory maps, which kill the process if the disk
/// is full when they are written), about the log's size each; a third of it and 4 MiB
/// spare for the flush that follows.
fn replay_room(dir: &Path) -> StoreResult<u64> {
    Ok(3 * OpLog::bytes(&dir.join("oplog"))? + (4 << 20))
}

pub(super) fn load_all(
    root: &Path,
    tuning: Tuning,
    space: &Space,
) -> StoreResult<HashMap<Key, Arc<Collection>>> {
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
            if name.starts_with('.') || dir.join(DROPPED).exists() {
                // An interrupted create or drop; nothing acknowledged lives there.
                std::fs::remove_dir_all(&dir).map_err(fs_err)?;
                continue;
            }
            let what = format!("opening the vector collection {}", dir.display());
            space.room_for(&what, replay_room(&dir)?)?;
            let collection = Collection::open(&dir, tenant.clone(), tuning)?;
            out.insert((tenant.clone(), name.to_owned()), Arc::new(collection));
        }
    }
    Ok(out)
}

pub(super) fn file_name(path: &Path) -> Option<&str> {
    path.file_name().and_then(|n| n.to_str())
}

fn spec_of(shard: &EdgeShard) -> StoreResult<CollectionSpec> {
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

/// Builds the shard in a hidden directory and renames it into place, so a crash never
/// leaves a half-made collection under its real name.
pub(super) fn create_on_disk(
    root: &Path,
    tenant: &Tenant,
    name: &str,
    spec: CollectionSpec,
    tuning: Tuning,
) -> StoreResult<Collection> {
    let final_dir = collection_dir(root, tenant, name);
    let tmp_dir = root
        .join(tenant.as_str())
        .join(format!(".{name}.{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&tmp_dir).map_err(fs_err)?;
    let config = EdgeConfigBuilder::new()
        .vector(
            DEFAULT_VECTOR_NAME,
            quantized(
                EdgeVectorParams::builder(spec.dim, map::distance(spec.distance)),
                tuning.quantization,
            ),
        )
        .sparse_vector(
            map::LEXICAL,
            EdgeSparseVectorParamsBuilder::new()
                .modifier(Modifier::Idf)
                .build(),
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
    Collection::open(&final_dir, tenant.clone(), tuning).inspect_err(|_| {
        // Nothing acknowledged lives there yet: free the name rather than leave it taken
        // by a directory no collection owns (every later create would fail).
        let trash = crate::store::backup::with_suffix(&tmp_dir, ".failed");
        if std::fs::rename(&final_dir, &trash).is_ok() {
            let _ = std::fs::remove_dir_all(&trash);
        }
    })
}

fn quantized(
    params: qdrant_edge::EdgeVectorParamsBuilder,
    quantization: VectorQuantization,
) -> EdgeVectorParams {
    match map::quantization(quantization) {
        Some(q) => params.quantization_config(q).build(),
        None => params.build(),
    }
}

fn load_shard(dir: &Path, tuning: Tuning) -> StoreResult<EdgeShard> {
    trim_engine_wal(dir)?;
    let shard = super::engine::load(dir)?;
    let mut hnsw = shard.config().hnsw_config;
    if hnsw.max_indexing_threads != tuning.indexing_threads {
        hnsw.max_indexing_threads = tuning.indexing_threads;
        shard.set_hnsw_config(hnsw).map_err(engine)?;
    }
    let mut optimizers = shard.config().optimizers.clone();
    if optimizers.indexing_threshold != tuning.indexing_threshold_kb {
        optimizers.indexing_threshold = tuning.indexing_threshold_kb;
        shard.set_optimizers_config(optimizers).map_err(engine)?;
    }
    Ok(shard)
}

/// The engine's operation for `op`. The BM25 weights are derived from the payload
/// here, so the log keeps only what the client sent and a replay derives them again.
fn to_update(op: LogOp, tenant: &Tenant, lexical: bool) -> StoreResult<UpdateOperation> {
    Ok(UpdateOperation::PointOperation(match op {
        LogOp::Upsert(points) => {
            let points = points
                .into_iter()
                .map(|p| {
                    let terms = lexical.then(|| map::lexical_document(&p.payload)).flatten();
                    let vector = match terms {
                        Some(terms) => VectorStructPersisted::Named(HashMap::from([
                            (
                                DEFAULT_VECTOR_NAME.to_owned(),
                                VectorPersisted::Dense(p.vector),
                            ),
                            (map::LEXICAL.to_owned(), VectorPersisted::Sparse(terms)),
                        ])),
                        None => VectorStructPersisted::Single(p.vector),
                    };
                    PointStructPersisted {
                        id: map::point_id(p.id),
                        vector,
                        payload: Some(map::payload_with_tenant(p.payload, tenant)),
                    }
                })
                .collect();
            PointOperations::UpsertPoints(PointInsertOperations::PointsList(points))
        }
        LogOp::DeleteIds(ids) => PointOperations::DeletePoints {
            ids: ids.into_iter().map(map::point_id).collect(),
        },
        LogOp::DeleteFilter(filter) => PointOperations::DeletePointsByFilter(
            map::tenant_filter(tenant, Some(&filter)).map_err(StoreError::invalid)?,
        ),
    }))
}

impl Collection {
    /// Loads the shard, replays the operation log after its checkpoint, and checkpoints,
    /// so the collection starts with an empty log.
    fn open(dir: &Path, tenant: Tenant, tuning: Tuning) -> StoreResult<Self> {
        let shard = load_shard(dir, tuning)?;
        let spec = spec_of(&shard)?;
        let lexical = shard.config().sparse_vectors.contains_key(map::LEXICAL);
        let recovered = OpLog::recover(&dir.join("oplog"), |op| {
            shard
                .update(to_update(op, &tenant, lexical)?)
                .map_err(engine)
        })?;
        if recovered.replayed > 0 {
            tracing::info!(
                collection = %dir.display(),
                records = recovered.replayed,
                "replayed the vector operation log"
            );
        }
        let copies = deduplicate(&shard)?;
        if copies > 0 {
            tracing::warn!(
                collection = %dir.display(),
                copies,
                "removed duplicate point copies left by a crash"
            );
        }
        shard.flush();
        let log = recovered.log;
        let flushed = log.appended();
        log.checkpoint(flushed)?;
        Ok(Collection {
            shard: RwLock::new(Some(shard)),
            spec,
            lexical,
            tenant,
            dir: dir.to_owned(),
            writer: Mutex::new(()),
            log,
            maintenance: Mutex::new(Maintenance {
                checkpointed: flushed,
                last_checkpoint: Instant::now(),
            }),
            optimizing: Mutex::new(()),
            dirty: AtomicBool::new(true),
            reopen_due: AtomicBool::new(false),
            tuning,
        })
    }

    /// Checkpoints for a stop. When that fails (a full disk), lets go of the engine
    /// without its flush: qdrant-edge flushes again when a shard is dropped and panics
    /// when that fails. Every acknowledged write is in the operation log, which the
    /// next start replays.
    pub(super) fn close(&self) -> StoreResult<()> {
        let mut m = lock(&self.maintenance);
        let checkpointed = self.checkpoint(&mut m);
        if checkpointed.is_err() {
            let _w = lock(&self.writer);
            let shard = self.shard.write().unwrap_or_else(|p| p.into_inner()).take();
            std::mem::forget(shard);
        }
        checkpointed
    }

    pub(super) fn shard(&self) -> StoreResult<ShardRef<'_>> {
        let guard = self.shard.read().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            return Err(StoreError::new(
                crate::store::ErrorKind::Unavailable,
                "the collection could not be reopened; see the server log",
            ));
        }
        Ok(ShardRef(guard))
    }

    /// Applies `op` in memory (searches see it at once), appends it to the operation log
    /// and returns once the log record is on disk (group commit, see [`OpLog::sync_to`]).
    pub(super) fn write(&self, op: LogOp) -> StoreResult<()> {
        let body = op.encode();
        let update = to_update(op, &self.tenant, self.lexical)?;
        let seq = {
            let _w = lock(&self.writer);
            self.log.check_usable()?;
            self.shard()?.update(update).map_err(engine)?;
            self.log.append(&body)?
        };
        self.dirty.store(true, Ordering::Release);
        self.log.sync_to(seq)
    }

    /// Creates or drops a payload index, then checkpoints so the change is on disk when
    /// this returns (index changes are not in the operation log; they are rare).
    pub(super) fn change_index(&self, op: FieldIndexOperations) -> StoreResult<()> {
        {
            let _w = lock(&self.writer);
            self.shard()?
                .update(UpdateOperation::FieldIndexOperation(op))
                .map_err(engine)?;
        }
        self.dirty.store(true, Ordering::Release);
        let mut m = lock(&self.maintenance);
        self.checkpoint(&mut m)
    }

    /// Whether a checkpoint is due: the log holds records and is over `bytes`, or the
    /// last checkpoint is older than `every`.
    pub(super) fn checkpoint_due(
        &self,
        m: &Maintenance,
        every: std::time::Duration,
        bytes: u64,
    ) -> bool {
        self.reopen_due.load(Ordering::Acquire)
            || self.log.appended() > m.checkpointed
                && (self.log.pending_bytes() >= bytes || m.last_checkpoint.elapsed() >= every)
    }

    /// Flushes the shard, records the flushed sequence and drops the log before it; the
    /// engine's WAL is dropped too once it is over its limit. Holds the writer lock only
    /// for the flush. Call with the maintenance lock held.
    pub(super) fn checkpoint(&self, m: &mut Maintenance) -> StoreResult<()> {
        tracing::debug!(collection = %self.dir.display(), "vector checkpoint started");
        let next = self.log.prepare()?;
        let flushed = {
            let _w = lock(&self.writer);
            let flushed = self.log.appended();
            flush(&*self.shard()?)?;
            self.log.rotate(flushed, next)?;
            flushed
        };
        self.log.checkpoint(flushed)?;
        m.checkpointed = flushed;
        m.last_checkpoint = Instant::now();
        tracing::debug!(collection = %self.dir.display(), flushed, "vector checkpoint finished");
        let engine_wal: u64 = engine_wal_files(&self.dir.join("wal"))?
            .iter()
            .map(|(_, bytes, _)| bytes)
            .sum();
        if engine_wal > self.tuning.engine_wal_limit_bytes {
            // Not while an optimize runs: none starts from now on, and the next
            // checkpoint after it ends reopens.
            self.reopen_due.store(true, Ordering::Release);
            if let Ok(_optimizing) = self.optimizing.try_lock() {
                self.reopen()?;
                self.reopen_due.store(false, Ordering::Release);
            }
        }
        Ok(())
    }

    /// Closes and loads the shard again, which is the only way to release the engine's
    /// WAL files (it keeps them mapped). Writes and searches wait meanwhile. Call with
    /// the optimize lock held.
    fn reopen(&self) -> StoreResult<()> {
        let _w = lock(&self.writer);
        let mut slot = self.shard.write().unwrap_or_else(|p| p.into_inner());
        // Dropping flushes; nothing else can touch the shard now.
        drop(slot.take());
        let started = Instant::now();
        *slot = Some(load_shard(&self.dir, self.tuning)?);
        tracing::info!(
            collection = %self.dir.display(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "reopened a vector collection to release its engine WAL"
        );
        Ok(())
    }

    /// Copies the collection's directory to `dest` as of now. It waits for a running
    /// optimize (which swaps segments on disk), checkpoints (the shard flushed, the log
    /// emptied), then copies holding the writer lock, so no update lands in the copy
    /// half-made: it opens as the directory would after a crash at that moment. Writes
    /// to this collection wait for the copy.
    pub(super) fn backup_to(&self, dest: &Path) -> StoreResult<()> {
        let _optimizing = lock(&self.optimizing);
        let mut m = lock(&self.maintenance);
        self.checkpoint(&mut m)?;
        let _w = lock(&self.writer);
        crate::store::backup::copy_tree(&self.dir, dest)
            .map_err(crate::store::backup::io_err("copying a vector collection"))
    }

    /// Builds HNSW and merges segments if points were written since the last run.
    /// Updates and checkpoints proceed meanwhile; returns at once if an optimize of this
    /// collection is already running.
    pub(super) fn optimize(&self) -> StoreResult<()> {
        if self.reopen_due.load(Ordering::Acquire) {
            return Ok(());
        }
        let Ok(_optimizing) = self.optimizing.try_lock() else {
            return Ok(());
        };
        if self.dirty.swap(false, Ordering::AcqRel) {
            tracing::debug!(collection = %self.dir.display(), "vector optimize started");
            let changed = self.shard()?.optimize().map_err(engine)?;
            tracing::debug!(collection = %self.dir.display(), changed, "vector optimize finished");
        }
        Ok(())
    }

    /// Whether an optimize runs now, or points were written since the last one (it runs
    /// at the next maintenance pass, and may find nothing to do).
    pub(super) fn optimizing(&self) -> bool {
        self.dirty.load(Ordering::Acquire) || self.optimizing.try_lock().is_err()
    }

    /// Points matching `filter`, each counted once: segment statistics and
    /// qdrant-edge's exact count both count a point again for each copy that an
    /// optimization in progress or a crash leaves in another segment
    /// ([`distinct_points`]). Without a filter no condition is checked per point: a
    /// shard holds one tenant's points only (its directory is the tenant's).
    pub(super) fn count(&self, tenant: &Tenant, filter: Option<&Filter>) -> StoreResult<usize> {
        let filter = match filter {
            None => None,
            Some(f) => Some(map::tenant_filter(tenant, Some(f)).map_err(StoreError::invalid)?),
        };
        distinct_points(&*self.shard()?, filter)
    }
}
