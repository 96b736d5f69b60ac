//! A transaction's side of what document writes learned ([`Known`]): what it trusts,
//! what it teaches, and the new stamp every other write gives its graph.

use std::sync::{Mutex, MutexGuard};

use grafeo::{EdgeId, NodeId};

use super::graph::Inner;
use super::graph_documents::Tx;
use super::graph_known::{Known, Pair};
use super::lock;
use crate::domain::principal::Tenant;
use crate::store::StoreResult;

impl Tx<'_> {
    pub(super) fn known(&self) -> MutexGuard<'_, Known> {
        lock(self.known)
    }

    /// Records entity `id`'s node and count, in this transaction and, in a document's,
    /// in what document writes learned.
    pub(super) fn learn_entity(&self, id: &str, node: NodeId, count: Option<i64>) {
        self.entities
            .borrow_mut()
            .insert(id.to_owned(), Some((node, count)));
        if let Some(stamp) = self.stamp.get() {
            self.known().learn_entity(self.key, stamp, id, node, count);
        }
    }

    /// What document writes learned of the pair's edge.
    pub(super) fn known_pair(&self, a: NodeId, b: NodeId) -> Option<Pair> {
        // Outside a document's transaction nothing is trusted: stamp 0 is no graph's.
        let stamp = self.stamp.get().unwrap_or(0);
        self.known().pair(self.key, stamp, a, b)
    }

    /// Records the pair's one edge and its weight, trusted in a document's transaction.
    pub(super) fn learn_pair(&self, a: NodeId, b: NodeId, edge: EdgeId, weight: &grafeo::Value) {
        let weight = weight.as_int64();
        let stamp = self.stamp.get().unwrap_or(0);
        self.known()
            .learn_pair(self.key, stamp, (a, b), edge, weight);
    }
}

impl Inner {
    /// Runs `write` on `tenant`'s graph, then gives the graph a new stamp in
    /// [`Inner::known`] (nothing learned of it is trusted any more) unless it succeeded
    /// and `kept` says what was learned still holds: also when `write` fails or panics.
    pub(super) fn unlearning<T>(
        &self,
        tenant: &Tenant,
        kept: impl FnOnce(&T) -> bool,
        write: impl FnOnce() -> StoreResult<T>,
    ) -> StoreResult<T> {
        /// Restamps the graph when dropped while armed.
        struct Restamp<'a>(&'a Mutex<Known>, &'a str, bool);
        impl Drop for Restamp<'_> {
            fn drop(&mut self) {
                if self.2 {
                    lock(self.0).restamp(self.1);
                }
            }
        }
        let mut guard = Restamp(&self.known, tenant.as_str(), true);
        let out = write();
        guard.2 = !matches!(&out, Ok(out) if kept(out));
        out
    }
}
