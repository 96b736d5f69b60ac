//! Reading a tenant's graph out to copy it to another store (`ragbrain migrate`): the
//! rows of [`crate::store::cypher::export`]'s statements as nodes, relationships and
//! counts, for every executor.

use serde_json::Value;

use super::{Rows, count, node_from};
use crate::domain::graph::{Node, Relationship};
use crate::store::cypher::export as q;
use crate::store::{GraphSize, StoreResult};

/// The `$after` parameter of [`q::nodes`]: every id sorts after the empty string.
pub fn after(after: Option<String>) -> Value {
    Value::from(after.unwrap_or_default())
}

/// Rows of [`crate::store::cypher::NODE_COLUMNS`].
pub fn nodes(rows: &Rows) -> StoreResult<Vec<Node>> {
    let mut out = Vec::new();
    for r in rows.iter() {
        out.extend(node_from(&r)?);
    }
    Ok(out)
}

/// Rows of [`q::RELATIONSHIP_COLUMNS`].
pub fn relationships(rows: &Rows) -> StoreResult<Vec<Relationship>> {
    rows.iter()
        .map(|r| {
            Ok(Relationship {
                from: r.text("a.id")?,
                rel_type: r.text("type(r)")?,
                to: r.text("b.id")?,
                properties: match r.get("properties(r)")? {
                    Value::Object(props) => props.clone(),
                    _ => Default::default(),
                },
            })
        })
        .collect()
}

/// The counts from the rows of [`q::NODES_COUNT`] and [`q::RELATIONSHIPS_COUNT`].
pub fn size(nodes: &Rows, relationships: &Rows) -> StoreResult<GraphSize> {
    let of = |rows: &Rows, column| count(rows, column).map(|n| n.max(0) as u64);
    Ok(GraphSize {
        nodes: of(nodes, q::NODE_COUNT_COLUMNS[0])?,
        relationships: of(relationships, q::RELATIONSHIP_COUNT_COLUMNS[0])?,
    })
}
