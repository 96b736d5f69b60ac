//! Keeps the embedded graph's write-ahead log bounded, so disk use and restart time
//! follow the live graph, not its history.
//!
//! grafeo 0.5.44 keeps a WAL-directory database as its log alone: `wal_checkpoint()`
//! only syncs it (truncating would delete the only copy), and every start replays it
//! whole. So the log is compacted by rewriting it: once it passes
//! `graph.wal_limit_bytes` and twice its size after the last compaction, the engine is
//! saved into a fresh directory (one record per live node, edge and property, synced),
//! the old engine is closed and the directories are swapped by rename. The caller holds
//! the engine's gate exclusively meanwhile, so nothing is written that the copy misses.
//!
//! Crash safety rests on the names: `graph.compact.tmp` is never trusted; a complete
//! copy is renamed to `graph.compact` only once synced; the swap renames `graph` to
//! `graph.old` and `graph.compact` to `graph`. [`recover`] finishes or undoes whatever
//! step a crash interrupted, before the engine opens.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use grafeo::{Config, DurabilityMode, GrafeoDB};

use super::graph_values::engine;
use super::{fs_err, sync_dir};
use crate::store::StoreResult;
use crate::store::backup::with_suffix;

/// Commits between two looks at the log's size.
const CHECK_EVERY: u64 = 256;

/// Where the graph lives under the data directory, and when its log is rewritten.
pub(super) struct WalBound {
    dir: PathBuf,
    query_timeout: Duration,
    limit: u64,
    /// The log's size right after the last compaction (or the open).
    floor: AtomicU64,
    /// The commit count at the last size check.
    checked_at: AtomicU64,
}

impl WalBound {
    pub(super) fn new(data_dir: &Path, query_timeout: Duration, limit: u64) -> Self {
        Self {
            dir: data_dir.join("graph"),
            query_timeout,
            limit,
            floor: AtomicU64::new(0),
            checked_at: AtomicU64::new(0),
        }
    }

    /// Opens the engine after finishing an interrupted compaction, and compacts at once
    /// if the log is already over its bound.
    pub(super) fn open(&self) -> StoreResult<GrafeoDB> {
        recover(&self.dir)?;
        let db = self.open_engine()?;
        let size = dir_bytes(&self.dir);
        self.floor.store(size, Ordering::Relaxed);
        if size <= self.limit {
            return Ok(db);
        }
        Ok(self.compact(&db)?.unwrap_or(db))
    }

    fn open_engine(&self) -> StoreResult<GrafeoDB> {
        let config = Config::persistent(&self.dir)
            .with_wal_durability(DurabilityMode::NoSync)
            .with_query_timeout(self.query_timeout);
        GrafeoDB::with_config(config).map_err(engine)
    }

    /// Whether the log should be rewritten now, looking at the disk at most once every
    /// [`CHECK_EVERY`] commits.
    pub(super) fn due(&self, commits: u64) -> bool {
        let last = self.checked_at.load(Ordering::Relaxed);
        if commits < last + CHECK_EVERY
            || self
                .checked_at
                .compare_exchange(last, commits, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return false;
        }
        let size = dir_bytes(&self.dir);
        size > self.limit && size > 2 * self.floor.load(Ordering::Relaxed)
    }

    /// Rewrites `db`'s log as a copy of the live graph, closes `db` and returns the
    /// engine reopened on the copy. The caller holds the gate exclusively. If the copy
    /// cannot be made, `db` stays open and in use (`None`; its log is intact); once it
    /// is closed, a failure leaves the store unusable until a restart, which
    /// [`recover`] completes.
    pub(super) fn compact(&self, db: &GrafeoDB) -> StoreResult<Option<GrafeoDB>> {
        let started = Instant::now();
        let before = dir_bytes(&self.dir);
        let (tmp, copy, old) = names(&self.dir);
        if let Err(e) = write_copy(db, &tmp, &copy) {
            tracing::warn!(error = %e.message, "graph WAL compaction failed; keeping the log");
            let _ = std::fs::remove_dir_all(&tmp);
            return Ok(None);
        }
        let copied = started.elapsed();
        db.close().map_err(engine)?;
        swap(&self.dir, &copy, &old)?;
        let reopening = Instant::now();
        let db = self.open_engine()?;
        let after = dir_bytes(&self.dir);
        self.floor.store(after, Ordering::Relaxed);
        // Where the time went, for an operator sizing `graph.wal_limit_bytes`: the
        // copy, and the reopen (a replay of the copy, as a restart would do).
        tracing::info!(
            before_bytes = before,
            after_bytes = after,
            elapsed_ms = started.elapsed().as_millis() as u64,
            copy_ms = copied.as_millis() as u64,
            reopen_ms = reopening.elapsed().as_millis() as u64,
            "compacted the graph WAL"
        );
        Ok(Some(db))
    }
}

/// The copy being written, the finished copy, and the replaced directory.
fn names(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let with = |suffix| with_suffix(dir, suffix);
    (with(".compact.tmp"), with(".compact"), with(".old"))
}

/// Saves the live graph into `tmp`, syncs it and names it `copy`.
fn write_copy(db: &GrafeoDB, tmp: &Path, copy: &Path) -> StoreResult<()> {
    if tmp.exists() {
        std::fs::remove_dir_all(tmp).map_err(fs_err)?;
    }
    db.save(tmp).map_err(engine)?;
    sync_tree(tmp)?;
    std::fs::rename(tmp, copy).map_err(fs_err)?;
    sync_dir(parent(copy))
}

/// Puts the finished copy in place of `dir`, then removes the old log.
fn swap(dir: &Path, copy: &Path, old: &Path) -> StoreResult<()> {
    std::fs::rename(dir, old).map_err(fs_err)?;
    std::fs::rename(copy, dir).map_err(fs_err)?;
    sync_dir(parent(dir))?;
    std::fs::remove_dir_all(old).map_err(fs_err)
}

/// Finishes or undoes a compaction a crash interrupted: an unfinished copy is dropped;
/// a finished one replaces a missing `graph` (the crash fell inside the swap) and is
/// dropped next to a present one (it fell before: both hold the same graph).
fn recover(dir: &Path) -> StoreResult<()> {
    let (tmp, copy, old) = names(dir);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(fs_err)?;
    }
    if copy.exists() {
        if dir.exists() {
            std::fs::remove_dir_all(&copy).map_err(fs_err)?;
        } else {
            std::fs::rename(&copy, dir).map_err(fs_err)?;
            sync_dir(parent(dir))?;
        }
    }
    if old.exists() && dir.exists() {
        std::fs::remove_dir_all(&old).map_err(fs_err)?;
    }
    Ok(())
}

fn parent(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new("."))
}

/// Syncs every file and directory under `root`.
fn sync_tree(root: &Path) -> StoreResult<()> {
    for entry in std::fs::read_dir(root).map_err(fs_err)? {
        let path = entry.map_err(fs_err)?.path();
        if path.is_dir() {
            sync_tree(&path)?;
        } else {
            std::fs::File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(fs_err)?;
        }
    }
    sync_dir(root)
}

/// Bytes of every file under `root` (0 where it cannot be read).
pub(super) fn dir_bytes(root: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(root) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&entry.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn make(dir: &Path, marker: &str) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("marker"), marker).unwrap();
    }

    fn marker(dir: &Path) -> String {
        std::fs::read_to_string(dir.join("marker")).unwrap()
    }

    #[test]
    fn recovery_finishes_or_undoes_every_interrupted_step() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("graph");
        let (tmp, copy, old) = names(&dir);

        // Crash while writing the copy: the copy is dropped, the log kept.
        make(&dir, "log");
        make(&tmp, "partial");
        recover(&dir).unwrap();
        assert_eq!(marker(&dir), "log");
        assert!(!tmp.exists());

        // Crash after the copy was finished, before the swap: either holds the graph.
        make(&copy, "copy");
        recover(&dir).unwrap();
        assert_eq!(marker(&dir), "log");
        assert!(!copy.exists());

        // Crash between the two renames of the swap: the copy takes the place.
        std::fs::rename(&dir, &old).unwrap();
        make(&copy, "copy");
        recover(&dir).unwrap();
        assert_eq!(marker(&dir), "copy");
        assert!(!copy.exists() && !old.exists());

        // Crash before the old log was removed.
        make(&old, "log");
        recover(&dir).unwrap();
        assert_eq!(marker(&dir), "copy");
        assert!(!old.exists());
    }
}
