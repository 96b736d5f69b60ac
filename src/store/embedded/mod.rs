//! In-process default stores: nothing to install, everything persisted under the data
//! directory. Vectors on `qdrant-edge`, the graph on `grafeo`, API keys on `redb`.

pub mod audit;
pub mod auth;
mod cypher_sandbox;
pub mod events;
pub mod graph;
mod graph_base;
mod graph_commit;
mod graph_documents;
mod graph_entities;
mod graph_export;
mod graph_generations;
mod graph_known;
mod graph_open;
mod graph_tail;
mod graph_trust;
mod graph_values;
mod graph_wal;
mod graph_weights;
mod redb_file;
pub mod space;
pub mod vectors;

use crate::store::StoreError;

/// Locks `m`, carrying on past a panic in another holder: every state these mutexes
/// guard is valid between statements.
fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A filesystem failure under the data directory: the store cannot serve.
fn fs_err(e: std::io::Error) -> StoreError {
    StoreError::new(
        crate::store::ErrorKind::Unavailable,
        format!("data directory: {e}"),
    )
}

/// The files in `dir` named `<prefix><number><suffix>`, with their numbers, in order.
fn numbered_files(
    dir: &std::path::Path,
    prefix: &str,
    suffix: &str,
) -> Result<Vec<(u64, std::path::PathBuf)>, StoreError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(fs_err)? {
        let path = entry.map_err(fs_err)?.path();
        let number = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix(prefix))
            .and_then(|n| n.strip_suffix(suffix))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(number) = number {
            out.push((number, path));
        }
    }
    out.sort();
    Ok(out)
}

/// Makes renames and new names in `dir` durable.
fn sync_dir(dir: &std::path::Path) -> Result<(), StoreError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(fs_err)
}
