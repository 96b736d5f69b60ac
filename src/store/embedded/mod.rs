//! In-process default stores: nothing to install, everything persisted under the data
//! directory. Vectors on `qdrant-edge`, the graph on `grafeo`, API keys on `redb`.

pub mod auth;
mod cypher_sandbox;
pub mod events;
pub mod graph;
mod graph_documents;
mod graph_values;
pub mod vectors;

use crate::store::StoreError;

/// A filesystem failure under the data directory: the store cannot serve.
fn fs_err(e: std::io::Error) -> StoreError {
    StoreError::new(
        crate::store::ErrorKind::Unavailable,
        format!("data directory: {e}"),
    )
}
