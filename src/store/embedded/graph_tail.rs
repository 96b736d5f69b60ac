//! Builds the copy a WAL rewrite ([`super::graph_wal`]) makes of the embedded graph
//! from the live engine's log, while writes go on, and brings it up to date with the
//! writes made meanwhile; writes wait only for a cut of the log and the last catch-up.
//!
//! grafeo writes each transaction's records (with its named-graph switches and its
//! commit marker) as one group within one file, and every record so that replaying it
//! twice is harmless: its own recovery relies on both. So the log is cut between
//! transactions by rotating it to a fresh file while writes are held off
//! ([`boundary`]); the files before a cut are a consistent snapshot that no write
//! changes again. [`rebuild`] replays them into a fresh engine's store, as recovery
//! would, and [`super::graph_base::write_base`] logs that store in its shortest form.
//! Ids are kept, so the records logged after the cut can then be applied as they are:
//! [`catch_up`] applies those between two cuts and logs them to the copy's own WAL,
//! where the next open replays them after the base.

use std::path::Path;
use std::sync::Arc;

use grafeo::GrafeoDB;
use grafeo_core::graph::lpg::LpgStore;
use grafeo_storage::wal::{WalRecord, WalRecovery};

use super::graph_values::engine;
use super::{fs_err, numbered_files};
use crate::store::{ErrorKind, StoreError, StoreResult};

/// Rotates `db`'s WAL to a fresh file and returns that file's sequence: every record
/// logged so far is in the files before it, synced. Call with writes held off, so the
/// cut falls between transactions.
pub(super) fn boundary(db: &GrafeoDB) -> StoreResult<u64> {
    let wal = db.wal().ok_or_else(no_wal)?;
    wal.rotate().map_err(engine)?;
    Ok(wal.current_sequence())
}

/// Replays into `copy`'s store (not its log) the committed records of `live`'s WAL
/// files before sequence `to`. `scratch` is a directory it may create and removes.
pub(super) fn rebuild(
    copy: &GrafeoDB,
    live: &GrafeoDB,
    to: u64,
    scratch: &Path,
) -> StoreResult<()> {
    let live_dir = live.wal().ok_or_else(no_wal)?.dir().to_owned();
    let mut replay = Replay::new(copy);
    for_each_committed(&live_dir, (0, to), scratch, |records| {
        replay.apply(&records)
    })
}

/// Applies to `copy` the committed records of `live`'s WAL files from sequence `from`
/// up to (not including) `to`, and logs them to `copy`'s WAL; returns how many records
/// it applied. `scratch` is a directory it may create and removes. The copy's WAL is
/// not synced here.
pub(super) fn catch_up(
    copy: &GrafeoDB,
    live: &GrafeoDB,
    (from, to): (u64, u64),
    scratch: &Path,
) -> StoreResult<usize> {
    if from >= to {
        return Ok(0);
    }
    let live_dir = live.wal().ok_or_else(no_wal)?.dir().to_owned();
    let wal = copy.wal().ok_or_else(no_wal)?;
    let mut replay = Replay::new(copy);
    let mut applied = 0;
    for_each_committed(&live_dir, (from, to), scratch, |records| {
        replay.apply(&records)?;
        let kept: Vec<WalRecord> = records
            .into_iter()
            .filter(|r| !matches!(r, WalRecord::Checkpoint { .. }))
            .collect();
        wal.log_batch(&kept).map_err(engine)?;
        applied += kept.len();
        Ok(())
    })?;
    Ok(applied)
}

/// Calls `each` with the committed records of the WAL files in `dir` with sequences
/// in `from..to`, in order, a file at a time: a file that ends inside a transaction is
/// read again together with the next ones until they end between transactions, so
/// each call gets whole transactions, and only about one file's records are in memory
/// at once. The files are read through links in `scratch` (the live engine keeps
/// writing to its newest file), which is removed after.
fn for_each_committed(
    dir: &Path,
    (from, to): (u64, u64),
    scratch: &Path,
    mut each: impl FnMut(Vec<WalRecord>) -> StoreResult<()>,
) -> StoreResult<()> {
    let files: Vec<_> = numbered_files(dir, "wal_", ".log")?
        .into_iter()
        .filter(|(sequence, _)| (from..to).contains(sequence))
        .collect();
    let mut read = || {
        empty_dir(scratch)?;
        for (n, (_, path)) in files.iter().enumerate() {
            let name = path.file_name().unwrap_or_default();
            std::fs::hard_link(path, scratch.join(name)).map_err(fs_err)?;
            let recovered = WalRecovery::new(scratch)
                .recover_all_with_tail()
                .map_err(engine)?;
            if recovered.torn_tail {
                if n + 1 < files.len() {
                    continue;
                }
                // A cut fell inside a transaction: applying its half would corrupt
                // the copy.
                return Err(StoreError::new(
                    ErrorKind::Internal,
                    format!("graph WAL files {from}..{to} end inside a transaction"),
                ));
            }
            each(recovered.records)?;
            empty_dir(scratch)?;
        }
        Ok(())
    };
    let result = read();
    let _ = std::fs::remove_dir_all(scratch);
    result
}

fn empty_dir(dir: &Path) -> StoreResult<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(fs_err)?;
    }
    std::fs::create_dir_all(dir).map_err(fs_err)
}

/// Applies records to an engine's store as grafeo's recovery does: mutations go to the
/// named graph the last `SwitchGraph` chose (which carries over from one call of
/// [`Replay::apply`] to the next), creations of what exists are skipped, and every
/// other record sets a value, so applying one twice changes nothing. A record this
/// server never writes (schema, RDF) is refused rather than guessed at.
struct Replay {
    root: Arc<LpgStore>,
    target: Arc<LpgStore>,
}

impl Replay {
    fn new(db: &GrafeoDB) -> Self {
        let root = Arc::clone(db.store());
        Self {
            target: Arc::clone(&root),
            root,
        }
    }

    fn apply(&mut self, records: &[WalRecord]) -> StoreResult<()> {
        let (root, target) = (&self.root, &mut self.target);
        for record in records {
            match record {
                WalRecord::CreateNamedGraph { name } => {
                    root.create_graph(name).map_err(alloc)?;
                }
                WalRecord::DropNamedGraph { name } => {
                    root.drop_graph(name);
                }
                WalRecord::SwitchGraph { name } => {
                    *target = match name {
                        None => Arc::clone(root),
                        Some(name) => root.graph_or_create(name).map_err(alloc)?,
                    };
                }
                WalRecord::CreateNode { id, labels } => {
                    if target.get_node(*id).is_none() {
                        let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
                        target.create_node_with_id(*id, &labels).map_err(alloc)?;
                    }
                }
                WalRecord::DeleteNode { id } => {
                    target.delete_node(*id);
                }
                WalRecord::CreateEdge {
                    id,
                    src,
                    dst,
                    edge_type,
                } => {
                    if target.get_edge(*id).is_none() {
                        target
                            .create_edge_with_id(*id, *src, *dst, edge_type)
                            .map_err(alloc)?;
                    }
                }
                WalRecord::DeleteEdge { id } => {
                    target.delete_edge(*id);
                }
                WalRecord::SetNodeProperty { id, key, value } => {
                    target.set_node_property(*id, key, value.clone());
                }
                WalRecord::SetEdgeProperty { id, key, value } => {
                    target.set_edge_property(*id, key, value.clone());
                }
                WalRecord::RemoveNodeProperty { id, key } => {
                    target.remove_node_property(*id, key);
                }
                WalRecord::RemoveEdgeProperty { id, key } => {
                    target.remove_edge_property(*id, key);
                }
                WalRecord::AddNodeLabel { id, label } => {
                    target.add_label(*id, label);
                }
                WalRecord::RemoveNodeLabel { id, label } => {
                    target.remove_label(*id, label);
                }
                // Markers: recovery has already dropped what was not committed.
                WalRecord::TransactionCommit { .. }
                | WalRecord::TransactionAbort { .. }
                | WalRecord::Checkpoint { .. }
                | WalRecord::EpochAdvance { .. } => {}
                // Indexes are rebuilt from the data, not from the log.
                WalRecord::CreateIndex { .. } | WalRecord::DropIndex { .. } => {}
                other => {
                    return Err(StoreError::new(
                        ErrorKind::Internal,
                        format!("graph WAL record not carried into a rewrite: {other:?}"),
                    ));
                }
            }
        }
        Ok(())
    }
}

fn alloc(e: impl std::fmt::Display) -> StoreError {
    StoreError::new(ErrorKind::Internal, format!("graph store: {e}"))
}

fn no_wal() -> StoreError {
    StoreError::new(ErrorKind::Internal, "the graph engine has no WAL")
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use grafeo::{Config, DurabilityMode, GrafeoDB, NodeId};
    use grafeo_common::types::TransactionId;
    use grafeo_storage::wal::{DurabilityMode as WalDurability, LpgWal, WalConfig, WalRecord};

    use super::super::graph_base::write_base;
    use super::{Replay, boundary, catch_up, for_each_committed, rebuild};

    fn open(dir: &Path) -> GrafeoDB {
        let config = Config::persistent(dir).with_wal_durability(DurabilityMode::NoSync);
        GrafeoDB::with_config(config).unwrap()
    }

    fn run(db: &GrafeoDB, graph: &str, query: &str) {
        let session = db.session();
        session.use_graph(graph);
        session.execute_cypher(query).unwrap();
    }

    /// Every node of `graph` with its id, properties and out-edges (with theirs), as
    /// sorted text: a copy keeps every node and edge id, which the store's
    /// [`super::super::graph_known::Known`] relies on across a rewrite.
    fn contents(db: &GrafeoDB, graph: &str) -> Vec<String> {
        let session = db.session();
        session.use_graph(graph);
        let result = session
            .execute_cypher(
                "MATCH (n) OPTIONAL MATCH (n)-[r]->(m) \
                 RETURN id(n), labels(n), n.id, n.v, n.extra, id(r), type(r), r.w, m.id",
            )
            .unwrap();
        let mut rows: Vec<String> = result.rows().iter().map(|r| format!("{r:?}")).collect();
        rows.sort();
        rows
    }

    /// Writes of every kind this server makes, in named graphs, one of them created
    /// after the first cut, and a transaction that rolled back: the copy rebuilt from
    /// the live log and caught up from it holds what the live engine holds, and so does
    /// the copy reopened from its own log.
    #[test]
    fn a_copy_caught_up_from_the_live_log_matches_the_live_graph() {
        let root = tempfile::tempdir().unwrap();
        let live = open(&root.path().join("live"));
        live.create_graph("a").unwrap();
        run(
            &live,
            "a",
            "CREATE (:E {id: 'x', v: 1})-[:R {w: 1}]->(:E {id: 'y', v: 2}), (:E {id: 'z'})",
        );

        // The copy, as a rewrite builds it.
        let from = boundary(&live).unwrap();
        let copy_dir = root.path().join("copy");
        let copy = open(&copy_dir);
        let scratch = root.path().join("scratch");
        rebuild(&copy, &live, from, &scratch).unwrap();
        write_base(&copy).unwrap();
        assert_eq!(contents(&copy, "a"), contents(&live, "a"));

        // Writes the live engine takes meanwhile, cut in two like the rounds.
        run(
            &live,
            "a",
            "MATCH (n {id: 'x'}) SET n.v = 10, n.extra = 'e'",
        );
        run(&live, "a", "MATCH ({id: 'x'})-[r:R]->() SET r.w = 5");
        let middle = boundary(&live).unwrap();
        run(&live, "a", "MATCH (n {id: 'z'}) DETACH DELETE n");
        run(&live, "a", "MATCH (n {id: 'x'}) REMOVE n.extra SET n:Hub");
        run(
            &live,
            "a",
            "MATCH (y {id: 'y'}) CREATE (y)-[:R {w: 2}]->(:E {id: 'w'})",
        );
        live.create_graph("b").unwrap();
        run(&live, "b", "CREATE (:E {id: 'other', v: 3})");
        let mut session = live.session();
        session.use_graph("a");
        session.begin_transaction().unwrap();
        session
            .execute_cypher("CREATE (:E {id: 'rolled back'})")
            .unwrap();
        session.rollback().unwrap();
        let to = boundary(&live).unwrap();

        assert!(catch_up(&copy, &live, (from, middle), &scratch).unwrap() > 0);
        assert!(catch_up(&copy, &live, (middle, to), &scratch).unwrap() > 0);
        assert!(!scratch.exists());
        for graph in ["a", "b"] {
            assert_eq!(
                contents(&copy, graph),
                contents(&live, graph),
                "graph {graph}"
            );
        }
        let a = contents(&live, "a");
        assert_eq!(a.len(), 3, "x, y and w, with their edges: {a:?}");
        assert!(
            !a.iter()
                .any(|r| r.contains("rolled back") || r.contains("\"z\""))
        );

        copy.close().unwrap();
        drop(copy);
        let reopened = open(&copy_dir);
        for graph in ["a", "b"] {
            assert_eq!(
                contents(&reopened, graph),
                contents(&live, graph),
                "graph {graph}"
            );
        }
    }

    fn node(id: u64) -> WalRecord {
        WalRecord::CreateNode {
            id: NodeId(id),
            labels: vec!["E".into()],
        }
    }

    fn switch(name: Option<&str>) -> WalRecord {
        WalRecord::SwitchGraph {
            name: name.map(String::from),
        }
    }

    fn commit() -> WalRecord {
        WalRecord::TransactionCommit {
            transaction_id: TransactionId::SYSTEM,
        }
    }

    /// A transaction whose records span several log files reaches the callback whole,
    /// in one call, while later files come a call at a time; the named graph its
    /// records go to carries over from one call to the next; and a log that ends
    /// inside a transaction is refused.
    #[test]
    fn the_log_is_read_a_file_at_a_time_in_whole_transactions() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("wal");
        let config = WalConfig {
            durability: WalDurability::NoSync,
            max_log_size: 100,
            compression: false,
        };
        let wal = LpgWal::with_config(&dir, config).unwrap();
        // Logged a record at a time, so the files rotate inside the transaction.
        let spanning = [
            vec![switch(Some("g"))],
            (1..=8).map(node).collect(),
            vec![commit()],
        ];
        for record in spanning.concat() {
            wal.log(&record).unwrap();
        }
        wal.rotate().unwrap();
        wal.log_batch(&[switch(Some("g")), node(9), switch(None), commit()])
            .unwrap();
        wal.rotate().unwrap();
        let to = wal.current_sequence();
        wal.log(&node(10)).unwrap();
        wal.sync().unwrap();

        let files = crate::store::embedded::numbered_files(&dir, "wal_", ".log").unwrap();
        assert!(files.len() >= 4, "the transaction spans files: {files:?}");
        let scratch = root.path().join("scratch");
        let mut calls = Vec::new();
        for_each_committed(&dir, (0, to), &scratch, |records| {
            calls.push(records.len());
            Ok(())
        })
        .unwrap();
        assert_eq!(
            calls,
            vec![10, 4],
            "the spanning transaction, then the next file"
        );
        assert!(!scratch.exists());
        let unfinished = for_each_committed(&dir, (0, to + 1), &scratch, |_| Ok(()));
        assert!(
            unfinished.is_err(),
            "the last file ends inside a transaction"
        );

        let db = GrafeoDB::new_in_memory();
        let mut replay = Replay::new(&db);
        replay.apply(&[switch(Some("g")), node(1)]).unwrap();
        replay.apply(&[node(2), switch(None), commit()]).unwrap();
        let graph = db.store().graph("g").unwrap();
        assert!(graph.get_node(NodeId(1)).is_some() && graph.get_node(NodeId(2)).is_some());
        assert!(db.store().get_node(NodeId(2)).is_none());
    }
}
