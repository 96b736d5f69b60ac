//! The embedded graph's write path: one writer per tenant graph, and acknowledgement
//! after a group-committed WAL sync that began after the write's commit returned (the
//! first waiter syncs for every commit so far), with the WAL rewritten when it has
//! grown ([`super::graph_wal`]).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use grafeo::GrafeoDB;

use super::graph::{Inner, engine, index_graph, lock, read_gate};
use super::graph_base::write_base;
use super::graph_tail::{boundary, catch_up, rebuild};
use super::graph_wal::{Copy, Replaced, failed};
use crate::domain::principal::Tenant;
use crate::store::{ErrorKind, StoreError, StoreResult};

/// At most this many catch-ups run while writes go on. Each carries what arrived while
/// the one before ran, so the tail shrinks from round to round.
const CATCH_UP_ROUNDS: usize = 3;
/// A catch-up this short ends the rounds: the last one, with writes held off, is then
/// about as short.
const SHORT_TAIL: usize = 4096;

impl Inner {
    /// Runs `write` as `tenant`'s one writer, holding the read gate; returns its result
    /// and the commit's ticket for [`Inner::sync_to`]. `write` must commit (autocommit
    /// statements, or its own transaction) before it returns.
    pub(super) fn locked<T>(
        &self,
        tenant: &Tenant,
        write: impl FnOnce(&Inner) -> StoreResult<T>,
    ) -> StoreResult<(T, u64)> {
        let writer = lock(&self.writers)
            .entry(tenant.clone())
            .or_default()
            .clone();
        let _w = lock(&writer);
        let _writes = self.writes.read().unwrap_or_else(|p| p.into_inner());
        let _gate = read_gate(&self.gate);
        let out = write(self)?;
        Ok((out, self.commits.fetch_add(1, Ordering::AcqRel) + 1))
    }

    /// Returns once a WAL sync that began after commit `ticket` returned has finished.
    /// The first waiter syncs for every commit made so far; the others wait on the lock
    /// and find theirs covered. A failed sync is the caller's error: nothing is
    /// acknowledged that may not be on disk.
    pub(super) fn sync_to(&self, ticket: u64) -> StoreResult<()> {
        let mut synced = lock(&self.synced);
        if *synced >= ticket {
            return Ok(());
        }
        let target = self.commits.load(Ordering::Acquire);
        let gate = read_gate(&self.gate);
        // In a WAL-directory database this is the WAL's flush + fsync.
        self.db()
            .wal_checkpoint()
            .map_err(|e| StoreError::new(ErrorKind::Unavailable, format!("graph WAL sync: {e}")))?;
        *synced = target;
        drop(gate);
        if self.wal.due(target) {
            self.start_compaction();
        }
        Ok(())
    }

    /// Starts a rewrite of the WAL ([`super::graph_wal`]) on a thread of its own,
    /// unless one is under way.
    fn start_compaction(&self) {
        let Some(me) = self.me.upgrade() else {
            return;
        };
        if !self.wal.claim() {
            return;
        }
        let spawned = std::thread::Builder::new()
            .name("graph-wal-rewrite".into())
            .spawn(move || {
                me.compact_wal();
                me.wal.release();
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "could not start the graph WAL rewrite");
            self.wal.release();
        }
    }

    /// Rewrites the WAL as a copy of the live graph ([`super::graph_tail`]). Writes
    /// (and forks of the Cypher sandbox) wait only while the live log is cut between
    /// transactions and for the last catch-up: the copy is rebuilt from the log before
    /// the first cut, its base written, and the writes after it carried in, while
    /// they go on. Reads go on throughout but for the swap, under the exclusive gate.
    /// A rewrite that fails is logged and the old generation stays live; every commit
    /// was synced to it.
    fn compact_wal(&self) {
        let Some((live, mut copy, mut from, known)) = self.build_copy() else {
            return;
        };
        // Catch up while writes go on, until what is left is short.
        for _ in 0..CATCH_UP_ROUNDS {
            match self.catch_up_once(&mut copy, &live, from) {
                Ok((to, records)) => {
                    from = to;
                    if records < SHORT_TAIL {
                        break;
                    }
                }
                Err(e) => return self.wal.abandon(copy, &e),
            }
        }
        // The last catch-up and the swap, with writes held off.
        let Some((old, replaced)) = self.finish(copy, &live, from, &known) else {
            return;
        };
        drop(live);
        self.wal.retire(old, replaced);
    }

    /// Cuts the live log, then builds the copy from the files before the cut, with
    /// its base written and its graphs indexed; returns the live engine, the copy, the
    /// cut's sequence and the graphs there were at the cut. `None` if the store is
    /// closing or the copy could not be built (logged).
    fn build_copy(&self) -> Option<(Arc<GrafeoDB>, Copy, u64, HashSet<String>)> {
        let cutting = Instant::now();
        let cut = self.while_held(|live| Ok((boundary(live)?, lock(&self.graphs).clone())));
        let held = cutting.elapsed();
        let (live, (from, known)) = match cut {
            Ok(Some(cut)) => cut,
            Ok(None) => return None,
            Err(e) => {
                failed(&e);
                return None;
            }
        };
        let mut copy = match self.wal.fresh() {
            Ok(copy) => copy,
            Err(e) => {
                failed(&e);
                return None;
            }
        };
        copy.held(held);
        let built = rebuild(&copy.db, &live, from, &self.wal.scratch())
            .and_then(|()| write_base(&copy.db))
            .and_then(|()| {
                known
                    .iter()
                    .try_for_each(|name| index_graph(&copy.db, name, &self.indexed))
            });
        if let Err(e) = built {
            self.wal.abandon(copy, &e);
            return None;
        }
        copy.built();
        Some((live, copy, from, known))
    }

    /// Cuts the live log again and carries into `copy` what was logged between the
    /// cut at `from` and this one; returns this cut and how many records it carried.
    fn catch_up_once(
        &self,
        copy: &mut Copy,
        live: &GrafeoDB,
        from: u64,
    ) -> StoreResult<(u64, usize)> {
        let cutting = Instant::now();
        let cut = self.while_held(boundary);
        copy.held(cutting.elapsed());
        let Some((_, to)) = cut? else {
            return Err(closing());
        };
        let records = catch_up(&copy.db, live, (from, to), &self.wal.scratch())?;
        copy.caught_up(records);
        Ok((to, records))
    }

    /// Carries the last writes into `copy` with writes held off, then makes it live
    /// under the exclusive gate; returns the engine it replaced, for
    /// [`super::graph_wal::WalBound::retire`] once writes go on again.
    fn finish(
        &self,
        mut copy: Copy,
        live: &GrafeoDB,
        from: u64,
        known: &HashSet<String>,
    ) -> Option<(Arc<GrafeoDB>, Replaced)> {
        let _writes = self.writes.write().unwrap_or_else(|p| p.into_inner());
        let _forks = lock(&self.forks);
        let held = Instant::now();
        if self.closed.load(Ordering::Acquire) {
            self.wal.abandon(copy, &closing());
            return None;
        }
        let caught = boundary(live)
            .and_then(|to| catch_up(&copy.db, live, (from, to), &self.wal.scratch()))
            .and_then(|records| {
                copy.caught_up(records);
                copy.seal()
            });
        if let Err(e) = caught {
            self.wal.abandon(copy, &e);
            return None;
        }
        let _gate = self.gate.write().unwrap_or_else(|p| p.into_inner());
        let swapping = Instant::now();
        // Graphs created since the snapshot, which the catch-up created unindexed, and
        // any a read created after the last cut (empty: nothing wrote to them).
        let graphs = lock(&self.graphs);
        let copied = copy.db.list_graphs();
        let created = graphs.difference(known).try_for_each(|name| {
            if !copied.contains(name) {
                copy.db.create_graph(name).map_err(engine)?;
            }
            index_graph(&copy.db, name, &self.indexed)
        });
        if let Err(e) = created {
            self.wal.abandon(copy, &e);
            return None;
        }
        copy.held(held.elapsed());
        let (fresh, replaced) = self.wal.make_live(copy, swapping)?;
        let old = std::mem::replace(
            &mut *self.engine.write().unwrap_or_else(|p| p.into_inner()),
            Arc::new(fresh),
        );
        // The copy keeps every node and edge id, so what document writes learned
        // (`Inner::known`) still holds.
        Some((old, replaced))
    }

    /// Runs `step` on the live engine with writes and forks held off; `None` once the
    /// store is closing. Returns the engine with the step's result, for the steps after.
    fn while_held<T>(
        &self,
        step: impl FnOnce(&GrafeoDB) -> StoreResult<T>,
    ) -> StoreResult<Option<(Arc<GrafeoDB>, T)>> {
        let _writes = self.writes.write().unwrap_or_else(|p| p.into_inner());
        let _forks = lock(&self.forks);
        if self.closed.load(Ordering::Acquire) {
            return Ok(None);
        }
        // Only a compaction replaces the engine, and only close closes it: both hold
        // `writes`, so it is safe to read without the gate.
        let live = self.db();
        let out = step(&live)?;
        Ok(Some((live, out)))
    }

    /// [`Inner::locked`], then [`Inner::sync_to`]: one durable write.
    pub(super) fn write<T>(
        &self,
        tenant: &Tenant,
        write: impl FnOnce(&Inner) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let (out, ticket) = self.locked(tenant, write)?;
        self.sync_to(ticket)?;
        Ok(out)
    }
}

fn closing() -> StoreError {
    StoreError::new(ErrorKind::Unavailable, "the graph store is closing")
}
