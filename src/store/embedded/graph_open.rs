//! Opening the embedded graph store: the engine (after whatever an interrupted WAL
//! rewrite left, [`super::graph_wal`]), the property indexes of every tenant graph,
//! and the store's shared state.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, RwLock};

use super::cypher_sandbox::{Forker, SandboxLimits};
use super::graph::{EmbeddedGraphOptions, EmbeddedGraphStore, Inner, index_graph};
use super::graph_wal::WalBound;
use crate::store::client_cypher::QuerySlots;
use crate::store::{StoreResult, blocking};

impl EmbeddedGraphStore {
    pub async fn open(data_dir: &Path, options: EmbeddedGraphOptions) -> StoreResult<Self> {
        let query_timeout = options.query_timeout;
        let wal = WalBound::new(
            data_dir,
            query_timeout,
            options.wal_limit_bytes,
            options.space.clone(),
        );
        let (db, wal) = blocking(move || Ok((wal.open()?, wal))).await?;
        let graphs: HashSet<String> = db.list_graphs().into_iter().collect();
        let mut indexed: Vec<String> = INDEXED.map(String::from).into();
        for p in options.indexed_properties {
            if !indexed.contains(&p) {
                indexed.push(p);
            }
        }
        for name in &graphs {
            index_graph(&db, name, &indexed)?;
        }
        let forker = Forker::start()?;
        Ok(Self {
            inner: Arc::new_cyclic(|me| Inner {
                engine: RwLock::new(Arc::new(db)),
                wal,
                graphs: Mutex::new(graphs),
                writers: Mutex::new(HashMap::new()),
                commits: AtomicU64::new(0),
                synced: Mutex::new(0),
                writes: RwLock::new(()),
                forks: Mutex::new(()),
                gate: RwLock::new(()),
                query_slots: QuerySlots::new(
                    options.max_concurrent_queries,
                    options.max_concurrent_queries_per_tenant,
                ),
                sandbox: SandboxLimits {
                    timeout: query_timeout,
                    memory_bytes: options.query_memory_bytes,
                },
                forker,
                indexed,
                known: Mutex::default(),
                closed: AtomicBool::new(false),
                me: me.clone(),
                space: options.space,
            }),
        })
    }
}

/// Node properties looked up by value on every hot path. grafeo keeps property
/// indexes per graph, in memory, so each tenant graph gets them when it is created, on
/// every open and after a WAL rewrite; without them each lookup scans the whole graph
/// (or the label's nodes, materialising each with all its properties: ~3 ms a find
/// over 1,000 nodes).
const INDEXED: [&str; 2] = ["id", "doc_id"];
