//! The embedded graph's write path: one writer per tenant graph, and acknowledgement
//! after a group-committed WAL sync that began after the write's commit returned (the
//! first waiter syncs for every commit so far), with the WAL rewritten when it has
//! grown ([`super::graph_wal`]).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::graph::{Inner, engine, index_graph, lock, read_gate};
use crate::domain::principal::Tenant;
use crate::store::{ErrorKind, StoreError, StoreResult};

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
            self.compact_wal(&mut synced);
        }
        Ok(())
    }

    /// Rewrites the WAL as a copy of the live graph ([`super::graph_wal`]). Writes and
    /// forks of the Cypher sandbox wait from the start of the copy to the swap; reads
    /// go on against the engine being copied and wait only for the swap, under the
    /// exclusive gate. The copy is synced, so every commit made so far is then durable.
    /// A rewrite that fails is logged and the old generation stays live: the caller's
    /// commits are already synced.
    fn compact_wal(&self, synced: &mut u64) {
        let _writes = self.writes.write().unwrap_or_else(|p| p.into_inner());
        let _forks = lock(&self.forks);
        // Only a compaction replaces the engine, and only close closes it: both hold
        // `writes`, so this one is safe to read without the gate.
        let db = self.db();
        let known: HashSet<String> = lock(&self.graphs).clone();
        let Some(copy) = self.wal.copy(&db) else {
            return;
        };
        drop(db);
        let indexed = known
            .iter()
            .try_for_each(|name| index_graph(&copy.db, name, &self.indexed));
        if let Err(e) = indexed {
            self.wal.abandon(copy, &e);
            return;
        }
        let (old, replaced) = {
            let _gate = self.gate.write().unwrap_or_else(|p| p.into_inner());
            let swapping = Instant::now();
            // Graphs a read created meanwhile, in the old engine, that the copy missed
            // (they are empty, as no write ran).
            let graphs = lock(&self.graphs);
            let copied = copy.db.list_graphs();
            let created = graphs.difference(&known).try_for_each(|name| {
                if !copied.contains(name) {
                    copy.db.create_graph(name).map_err(engine)?;
                }
                index_graph(&copy.db, name, &self.indexed)
            });
            if let Err(e) = created {
                self.wal.abandon(copy, &e);
                return;
            }
            let Some((fresh, replaced)) = self.wal.make_live(copy, swapping) else {
                return;
            };
            let old = std::mem::replace(
                &mut *self.engine.write().unwrap_or_else(|p| p.into_inner()),
                Arc::new(fresh),
            );
            lock(&self.pair_hints).clear();
            *synced = self.commits.load(Ordering::Acquire);
            (old, replaced)
        };
        self.wal.retire(old, replaced);
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
