//! Work-arounds for qdrant-edge 0.7.2 that the collection needs: its flush made safe
//! to call beside the optimizer, its load made to wait out a WAL lock a forked child
//! holds for a moment, its never-replayed WAL trimmed, and duplicate point copies that
//! a crash leaves behind removed (DESIGN.md §12).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use qdrant_edge::{
    CountRequest, EdgeShard, Filter, PointId, PointInsertOperations, PointOperations,
    PointStructPersisted, Record, ScrollRequest, UpdateOperation, VectorStructPersisted,
    WithPayloadInterface, WithVector,
};

use super::super::fs_err;
use crate::store::qdrant_mapping as map;
use crate::store::{StoreError, StoreResult};

/// An engine failure: ours, never the caller's.
pub(super) fn engine(e: impl std::fmt::Display) -> StoreError {
    StoreError::internal(format!("vector engine: {e}"))
}

thread_local! {
    static IN_FLUSH: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// `EdgeShard::flush` with its one benign race made an error: it panics (`try_read()
/// .expect`) when the optimizer holds the segment holder's write lock for a moment, as
/// it does when it swaps segments, before it has flushed anything. That case is retried;
/// a real failure inside the flush is returned. Callers hold the writer lock, so no
/// update races it.
pub(super) fn flush(shard: &EdgeShard) -> StoreResult<()> {
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !IN_FLUSH.with(|f| f.get()) {
                previous(info);
            }
        }));
    });
    for _ in 0..1000 {
        IN_FLUSH.with(|f| f.set(true));
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| shard.flush()));
        IN_FLUSH.with(|f| f.set(false));
        let Err(panic) = result else { return Ok(()) };
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        if !message.contains("lock acquired") {
            return Err(StoreError::new(
                crate::store::ErrorKind::Unavailable,
                format!("vector engine flush failed: {message}"),
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    Err(StoreError::new(
        crate::store::ErrorKind::Unavailable,
        "vector engine flush: the segment lock stayed busy",
    ))
}

/// `EdgeShard::load`, waiting out an engine WAL lock that a Cypher sandbox child holds
/// for a moment. The engine takes an exclusive `flock` on the collection's `wal/`
/// directory, and `fork()` shares every open file description with the child, which
/// closes them first thing, but only once it is scheduled. So a shard closed and opened
/// again at once (a create moves its new directory into place; a reopen releases the
/// engine WAL) can find its own old lock still held, and the engine answers
/// `WouldBlock`. That case is retried for a few seconds; anything else is returned.
pub(super) fn load(dir: &Path) -> StoreResult<EdgeShard> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let message = match EdgeShard::load(dir, None) {
            Ok(shard) => return Ok(shard),
            Err(e) => e.to_string(),
        };
        if !message.contains("WouldBlock") || Instant::now() >= deadline {
            return Err(engine(message));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Deletes the engine's closed WAL files but the newest while no shard has them open.
/// They are never replayed; the newest stays because the engine numbers new operations
/// after it, and points keep the number of the operation that wrote them.
pub(super) fn trim_engine_wal(dir: &Path) -> StoreResult<()> {
    let wal = dir.join("wal");
    let mut closed = engine_wal_files(&wal)?;
    closed.sort();
    closed.pop();
    for (_, _, path) in closed {
        std::fs::remove_file(path).map_err(fs_err)?;
    }
    Ok(())
}

/// The engine's closed WAL files: (start index, bytes, path).
pub(super) fn engine_wal_files(wal: &Path) -> StoreResult<Vec<(u64, u64, PathBuf)>> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(wal) else {
        return Ok(out);
    };
    for entry in entries {
        let entry = entry.map_err(fs_err)?;
        let start = entry
            .file_name()
            .to_str()
            .and_then(|n| n.strip_prefix("closed-"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(start) = start {
            let bytes = entry.metadata().map(|m| m.len()).unwrap_or(0);
            out.push((start, bytes, entry.path()));
        }
    }
    Ok(out)
}

/// One page of a scroll in id order, and the id the next page starts at; `with_data`
/// brings payloads and vectors (smaller pages then).
fn scroll(
    shard: &EdgeShard,
    offset: Option<PointId>,
    filter: Option<Filter>,
    with_data: bool,
) -> StoreResult<(Vec<Record>, Option<PointId>)> {
    page(
        shard,
        offset,
        filter,
        with_data,
        if with_data { 1_000 } else { 50_000 },
    )
}

/// [`scroll`] with a page size of the caller's.
pub(super) fn page(
    shard: &EdgeShard,
    offset: Option<PointId>,
    filter: Option<Filter>,
    with_data: bool,
    limit: usize,
) -> StoreResult<(Vec<Record>, Option<PointId>)> {
    shard
        .scroll(ScrollRequest {
            offset,
            limit: Some(limit.max(1)),
            filter,
            with_payload: Some(WithPayloadInterface::Bool(with_data)),
            with_vector: WithVector::Bool(with_data),
            order_by: None,
        })
        .map_err(engine)
}

/// The number of distinct points matching `filter`. qdrant-edge's exact count adds up
/// each segment's matches, so a point with copies in two segments (an optimization in
/// progress, or a crash) counts twice; a scroll merges copies by id.
pub(super) fn distinct_points(shard: &EdgeShard, filter: Option<Filter>) -> StoreResult<usize> {
    let (mut distinct, mut offset) = (0, None);
    loop {
        let (records, next) = scroll(shard, offset, filter.clone(), false)?;
        distinct += records.len();
        match next {
            Some(n) => offset = Some(n),
            None => return Ok(distinct),
        }
    }
}

/// Removes copies of a point left in more than one segment. A crash can leave them
/// (copy-on-write moves a point between segments, and segments are flushed one by one);
/// Qdrant's server removes them at load, qdrant-edge 0.7.2 does not, and `count` would
/// then report them twice. Upserting a point keeps its newest copy and deletes the rest,
/// so when the exact count exceeds the number of distinct ids, every point is written
/// back once. Returns the number of extra copies found.
pub(super) fn deduplicate(shard: &EdgeShard) -> StoreResult<usize> {
    let total = shard
        .count(CountRequest {
            filter: None,
            exact: true,
        })
        .map_err(engine)?;
    let distinct = distinct_points(shard, None)?;
    if total <= distinct {
        return Ok(0);
    }
    let mut offset = None;
    loop {
        let (records, next) = scroll(shard, offset, None, true)?;
        let points = records
            .into_iter()
            .filter_map(|r| {
                Some(PointStructPersisted {
                    id: r.id,
                    vector: VectorStructPersisted::Single(map::dense_vector(r.vector)?),
                    payload: r.payload,
                })
            })
            .collect();
        shard
            .update(UpdateOperation::PointOperation(
                PointOperations::UpsertPoints(PointInsertOperations::PointsList(points)),
            ))
            .map_err(engine)?;
        match next {
            Some(n) => offset = Some(n),
            None => break,
        }
    }
    Ok(total - distinct)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::VectorQuantization;
    use crate::domain::principal::Tenant;
    use crate::domain::vector::{CollectionSpec, Distance};
    use crate::store::embedded::vectors::collection::{Tuning, create_on_disk};

    #[test]
    fn a_load_waits_out_a_wal_lock_held_for_a_moment() {
        let root = tempfile::tempdir().unwrap();
        let tenant = Tenant::parse("t").unwrap();
        let spec = CollectionSpec {
            dim: 3,
            distance: Distance::Cosine,
        };
        let tuning = Tuning {
            indexing_threads: 1,
            engine_wal_limit_bytes: 1 << 30,
            indexing_threshold_kb: None,
            quantization: VectorQuantization::Turbo,
        };
        drop(create_on_disk(root.path(), &tenant, "c", spec, tuning).unwrap());
        let dir = root.path().join("t").join("c");
        // What a forked child holds until it closes its inherited descriptors.
        let held = std::fs::File::open(dir.join("wal")).unwrap();
        use std::os::fd::AsRawFd;
        // SAFETY: a valid descriptor this test owns.
        let locked = unsafe { libc::flock(held.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        assert_eq!(locked, 0);
        let e = EdgeShard::load(&dir, None).err().unwrap().to_string();
        assert!(e.contains("WouldBlock"), "{e}");

        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            drop(held);
        });
        let started = Instant::now();
        let shard = load(&dir).unwrap();
        assert!(started.elapsed() >= Duration::from_millis(250));
        release.join().unwrap();
        drop(shard);
    }
}
