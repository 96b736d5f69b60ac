//! Keeps the embedded graph's write-ahead log bounded, so disk use and restart time
//! follow the live graph, not its history.
//!
//! grafeo 0.5.44 keeps a WAL-directory database as its log alone: `wal_checkpoint()`
//! only syncs it (truncating would delete the only copy), and every start replays it
//! whole. So the log is compacted by rewriting it: once it passes
//! `graph.wal_limit_bytes` and twice its size after the last compaction, the live graph
//! is copied into an engine of its own in a fresh directory, whose log holds one record
//! per live node, edge and property: the next generation (`graph` is the first, then
//! `graph.1`, `graph.2`, and so on). The copy is built from the live log and brought up
//! to date with the writes made meanwhile ([`super::graph_tail`]); then, with engine
//! calls held off for that moment only, the file `graph.current` is made to name the
//! new generation, the engines are swapped, and the old generation is closed and
//! removed. Writes wait only for cuts of the log and the last catch-up
//! ([`super::graph_commit`]). At open, before anything is served, the copy is made with
//! `GrafeoDB::save` and reopened instead.
//!
//! Crash safety rests on the names, kept in [`super::graph_generations`].

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use grafeo::{Config, DurabilityMode, GrafeoDB};

use super::graph_generations::{COPYING, FIRST, TAIL, name_live, next_generation, parent, recover};
use super::graph_values::engine;
use super::space::Space;
use super::{fs_err, lock, sync_dir};
use crate::store::{StoreError, StoreResult};

/// Commits between two looks at the log's size.
const CHECK_EVERY: u64 = 256;

/// Where the graph lives under the data directory, and when its log is rewritten.
pub(super) struct WalBound {
    root: PathBuf,
    /// The live generation's directory.
    live: Mutex<PathBuf>,
    query_timeout: Duration,
    limit: u64,
    /// The log's size right after the last compaction (or the open).
    floor: AtomicU64,
    /// The commit count at the last size check.
    checked_at: AtomicU64,
    /// Whether a rewrite is under way ([`WalBound::claim`]).
    running: AtomicBool,
    /// A rewrite writes a copy of the live graph: it waits for room beyond the reserve.
    space: Space,
}

/// A complete, synced copy of the live graph, open as an engine, that is not yet the
/// live generation: [`WalBound::make_live`] makes it so, [`WalBound::abandon`] drops it.
pub(super) struct Copy {
    pub(super) db: GrafeoDB,
    dir: PathBuf,
    took: Took,
}

/// What a compaction took, for its log line.
struct Took {
    started: Instant,
    before: u64,
    copy_ms: u64,
    open_ms: u64,
    /// How long writes waited for it, all its steps together.
    held_ms: u64,
    /// Records the live engine logged during the copy, carried into it.
    caught_up: usize,
}

impl Copy {
    /// Marks the copy as built, for the log line.
    pub(super) fn built(&mut self) {
        self.took.copy_ms = self.took.started.elapsed().as_millis() as u64;
    }

    /// Syncs every file of the copy, and its directory's name.
    pub(super) fn seal(&self) -> StoreResult<()> {
        sync_tree(&self.dir)?;
        sync_dir(parent(&self.dir))
    }

    /// Counts `held` as time writes waited for this copy.
    pub(super) fn held(&mut self, held: Duration) {
        self.took.held_ms += held.as_millis() as u64;
    }

    /// Counts `records` carried into this copy from the live engine.
    pub(super) fn caught_up(&mut self, records: usize) {
        self.took.caught_up += records;
    }
}

/// A generation a [`Copy`] replaced, to be closed and removed by [`WalBound::retire`].
pub(super) struct Replaced {
    dir: PathBuf,
    took: Took,
    swap_ms: u64,
}

impl WalBound {
    pub(super) fn new(data_dir: &Path, query_timeout: Duration, limit: u64, space: Space) -> Self {
        Self {
            root: data_dir.to_owned(),
            live: Mutex::new(data_dir.join(FIRST)),
            query_timeout,
            limit,
            floor: AtomicU64::new(0),
            checked_at: AtomicU64::new(0),
            running: AtomicBool::new(false),
            space,
        }
    }

    /// Marks a rewrite as under way; `false` if one already is. [`WalBound::release`]
    /// ends it.
    pub(super) fn claim(&self) -> bool {
        self.running
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }

    pub(super) fn release(&self) {
        self.running.store(false, Ordering::Release);
    }

    /// A directory a rewrite may use for scratch files; recovery removes it.
    pub(super) fn scratch(&self) -> PathBuf {
        self.root.join(TAIL)
    }

    /// Opens the engine after clearing what an interrupted compaction left, and
    /// compacts at once if the log is already over its bound.
    pub(super) fn open(&self) -> StoreResult<GrafeoDB> {
        let live = recover(&self.root)?;
        *lock(&self.live) = live.clone();
        let db = self.open_engine(&live)?;
        let size = dir_bytes(&live);
        self.floor.store(size, Ordering::Relaxed);
        if size <= self.limit {
            return Ok(db);
        }
        let Some(copy) = self.copy(&db) else {
            return Ok(db);
        };
        match self.make_live(copy, Instant::now()) {
            Some((fresh, replaced)) => {
                self.retire(std::sync::Arc::new(db), replaced);
                Ok(fresh)
            }
            None => Ok(db),
        }
    }

    fn open_engine(&self, dir: &Path) -> StoreResult<GrafeoDB> {
        let config = Config::persistent(dir)
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
        let size = dir_bytes(&lock(&self.live));
        if size <= self.limit || size <= 2 * self.floor.load(Ordering::Relaxed) {
            return false;
        }
        // The copy is at most the log's size; without that room it would eat the reserve
        // the other stores' background work counts on. Tried again at the next check.
        match self.space.check_for(size) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e.message, "graph WAL rewrite put off");
                false
            }
        }
    }

    /// An empty engine in the next generation's directory, for a copy built in place
    /// ([`super::graph_tail`]): the caller fills it, then calls [`Copy::built`]. A
    /// crash meanwhile leaves a generation `graph.current` does not name, which the
    /// next start removes.
    pub(super) fn fresh(&self) -> StoreResult<Copy> {
        let (dir, took) = self.begin();
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(fs_err)?;
        }
        let db = self.open_engine(&dir)?;
        Ok(Copy { db, dir, took })
    }

    /// Saves `db`'s live graph as the next generation and opens it, at open, before
    /// anything else uses `db`. `None` if the copy could not be made (logged): `db`
    /// stays the live engine, its log intact.
    pub(super) fn copy(&self, db: &GrafeoDB) -> Option<Copy> {
        let (dir, mut took) = self.begin();
        let copying = self.root.join(COPYING);
        if let Err(e) = write_copy(db, &copying, &dir) {
            failed(&e);
            let _ = std::fs::remove_dir_all(&copying);
            let _ = std::fs::remove_dir_all(&dir);
            return None;
        }
        took.copy_ms = took.started.elapsed().as_millis() as u64;
        let opening = Instant::now();
        match self.open_engine(&dir) {
            Ok(db) => {
                took.open_ms = opening.elapsed().as_millis() as u64;
                Some(Copy { db, dir, took })
            }
            Err(e) => {
                failed(&e);
                let _ = std::fs::remove_dir_all(&dir);
                None
            }
        }
    }

    /// The next generation's directory, and the record of a copy into it begun now.
    fn begin(&self) -> (PathBuf, Took) {
        let live = lock(&self.live).clone();
        let took = Took {
            started: Instant::now(),
            before: dir_bytes(&live),
            copy_ms: 0,
            open_ms: 0,
            held_ms: 0,
            caught_up: 0,
        };
        (next_generation(&live), took)
    }

    /// Drops a copy that is not to be made live, for `error`.
    pub(super) fn abandon(&self, copy: Copy, error: &StoreError) {
        failed(error);
        let _ = copy.db.close();
        let _ = std::fs::remove_dir_all(&copy.dir);
    }

    /// Names `copy` the live generation in `graph.current`; returns the copy's engine
    /// and what it replaced, whose engine the caller swaps out and hands to
    /// [`WalBound::retire`]. Call with every engine call held off. `None` if the name
    /// could not be written: the copy is dropped and the old generation stays live.
    pub(super) fn make_live(&self, copy: Copy, swapping: Instant) -> Option<(GrafeoDB, Replaced)> {
        if let Err(e) = name_live(&self.root, &copy.dir) {
            self.abandon(copy, &e);
            return None;
        }
        let Copy { db, dir, took } = copy;
        let replaced = Replaced {
            dir: std::mem::replace(&mut *lock(&self.live), dir),
            took,
            swap_ms: swapping.elapsed().as_millis() as u64,
        };
        Some((db, replaced))
    }

    /// Closes a replaced generation's engine `old` (its last handle) and removes its
    /// directory; logs the compaction. Engine calls may run meanwhile, on the new
    /// engine. A failure here is only logged: the new generation is live, and the
    /// next start removes what is left of the old one.
    pub(super) fn retire(&self, old: std::sync::Arc<GrafeoDB>, replaced: Replaced) {
        let Replaced { dir, took, swap_ms } = replaced;
        let closed = old.close().map_err(engine);
        drop(old);
        if let Err(e) = closed.and_then(|()| std::fs::remove_dir_all(&dir).map_err(fs_err)) {
            tracing::warn!(error = %e.message, dir = %dir.display(),
                "could not remove the graph generation a compaction replaced; the next start will");
        }
        let after = dir_bytes(&lock(&self.live));
        self.floor.store(after, Ordering::Relaxed);
        // Where the time went, for an operator sizing `graph.wal_limit_bytes`: writes
        // waited `held_ms`, reads `swap_ms`.
        tracing::info!(
            before_bytes = took.before,
            after_bytes = after,
            elapsed_ms = took.started.elapsed().as_millis() as u64,
            copy_ms = took.copy_ms,
            open_ms = took.open_ms,
            held_ms = took.held_ms,
            caught_up = took.caught_up,
            swap_ms,
            "compacted the graph WAL"
        );
    }
}

/// Logs a rewrite that failed: the live generation stays as it is.
pub(super) fn failed(error: &StoreError) {
    tracing::warn!(error = %error.message, "graph WAL compaction failed; keeping the log");
}

/// Saves the live graph into `tmp`, syncs it and names it `dir`.
fn write_copy(db: &GrafeoDB, tmp: &Path, dir: &Path) -> StoreResult<()> {
    if tmp.exists() {
        std::fs::remove_dir_all(tmp).map_err(fs_err)?;
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(fs_err)?;
    }
    db.save(tmp).map_err(engine)?;
    sync_tree(tmp)?;
    std::fs::rename(tmp, dir).map_err(fs_err)?;
    sync_dir(parent(dir))
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

    #[test]
    fn a_rewrite_waits_for_room_for_its_copy() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join(FIRST);
        std::fs::create_dir_all(&live).unwrap();
        std::fs::write(live.join("wal.log"), vec![0u8; 4096]).unwrap();
        let bound = |reserve| {
            let space = Space::new(dir.path(), reserve);
            WalBound::new(dir.path(), Duration::from_secs(1), 1024, space)
        };
        assert!(bound(0).due(CHECK_EVERY));
        assert!(!bound(1 << 60).due(CHECK_EVERY));
    }
}
