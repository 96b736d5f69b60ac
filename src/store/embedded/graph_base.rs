//! The shortest log of a graph: one record per node, edge, property and named graph,
//! as `GrafeoDB::save` writes it, but into the WAL of an engine that stays open, so a
//! WAL rewrite ([`super::graph_wal`]) need not reopen its copy.

use grafeo::GrafeoDB;
use grafeo_common::types::TransactionId;
use grafeo_core::graph::lpg::LpgStore;
use grafeo_storage::wal::{LpgWal, WalRecord};

use super::graph_values::engine;
use crate::store::{ErrorKind, StoreError, StoreResult};

/// Logs `db`'s store to its WAL as one record per node, edge, property and named
/// graph: what `GrafeoDB::save` writes, for an engine that stays open. Each batch of
/// records is committed on its own, so that a later replay of this log reads it a
/// file at a time ([`super::graph_tail`]); the copy is not live before all of it is
/// synced, so no one sees part of it. The WAL is not synced here.
pub(super) fn write_base(db: &GrafeoDB) -> StoreResult<()> {
    let mut out = Batch {
        wal: db.wal().ok_or_else(no_wal)?,
        records: Vec::with_capacity(BATCH),
    };
    let store = db.store();
    write_graph(&mut out, store)?;
    let names = store.graph_names();
    for name in &names {
        if let Some(graph) = store.graph(name) {
            out.push(WalRecord::CreateNamedGraph { name: name.clone() })?;
            out.push(WalRecord::SwitchGraph {
                name: Some(name.clone()),
            })?;
            write_graph(&mut out, &graph)?;
        }
    }
    if !names.is_empty() {
        out.push(WalRecord::SwitchGraph { name: None })?;
    }
    out.flush()
}

/// Records in one `log_batch` call of [`write_base`].
const BATCH: usize = 4096;

struct Batch<'a> {
    wal: &'a LpgWal,
    records: Vec<WalRecord>,
}

impl Batch<'_> {
    fn push(&mut self, record: WalRecord) -> StoreResult<()> {
        self.records.push(record);
        if self.records.len() >= BATCH {
            self.flush()?;
        }
        Ok(())
    }

    /// Logs the records gathered so far as a committed group.
    fn flush(&mut self) -> StoreResult<()> {
        self.records.push(WalRecord::TransactionCommit {
            transaction_id: TransactionId::SYSTEM,
        });
        self.wal.log_batch(&self.records).map_err(engine)?;
        self.records.clear();
        Ok(())
    }
}

/// One graph's nodes and edges, with their properties, into `out`.
fn write_graph(out: &mut Batch<'_>, store: &LpgStore) -> StoreResult<()> {
    for node in store.all_nodes() {
        out.push(WalRecord::CreateNode {
            id: node.id,
            labels: node.labels.iter().map(|l| l.to_string()).collect(),
        })?;
        for (key, value) in node.properties {
            out.push(WalRecord::SetNodeProperty {
                id: node.id,
                key: key.to_string(),
                value,
            })?;
        }
    }
    for edge in store.all_edges() {
        out.push(WalRecord::CreateEdge {
            id: edge.id,
            src: edge.src,
            dst: edge.dst,
            edge_type: edge.edge_type.to_string(),
        })?;
        for (key, value) in edge.properties {
            out.push(WalRecord::SetEdgeProperty {
                id: edge.id,
                key: key.to_string(),
                value,
            })?;
        }
    }
    Ok(())
}

fn no_wal() -> StoreError {
    StoreError::new(ErrorKind::Internal, "the graph engine has no WAL")
}
