//! Copying a tenant's graph to another store (`ragbrain migrate`), for every executor:
//! the rows of [`crate::store::cypher::export`]'s statements as nodes, relationships
//! and counts, and the batched writes that put them into the target.

use std::collections::{BTreeMap, HashSet};

use serde_json::{Value, json};

use super::{CypherTx, Rows, count, list, node_from};
use crate::domain::graph::{Node, NodeUpsert, Relationship, RelationshipUpsert};
use crate::store::cypher::export as q;
use crate::store::{GraphSize, StoreResult};

/// The `$after` parameter of [`q::nodes`]: every id sorts after the empty string.
pub fn after(after: Option<String>) -> Value {
    Value::from(after.unwrap_or_default())
}

/// Rows of [`q::EXISTING_COLUMNS`]: node ids.
pub fn ids(rows: &Rows) -> StoreResult<Vec<String>> {
    rows.iter()
        .map(|r| r.text(q::EXISTING_COLUMNS[0]))
        .collect()
}

/// Rows of [`crate::store::cypher::NODE_COLUMNS`], in id order.
pub fn nodes(rows: &Rows) -> StoreResult<Vec<Node>> {
    let mut out = Vec::new();
    for r in rows.iter() {
        out.extend(node_from(&r)?);
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
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

/// Writes copied nodes, then relationships, in the open transaction, a few statements
/// per page instead of several per element: nodes merged on id (labels added,
/// properties set), grouped by label set; relationships merged on their ends and type,
/// properties set, grouped by type. A relationship with a missing end is skipped (the
/// migration's count check reports it).
pub async fn import(
    tx: &mut dyn CypherTx,
    nodes: &[NodeUpsert],
    relationships: &[RelationshipUpsert],
) -> StoreResult<()> {
    if !nodes.is_empty() {
        let wanted = list(nodes.iter().map(|n| n.id.as_str()));
        let rows = tx
            .run(q::EXISTING, &q::EXISTING_COLUMNS, vec![("ids", wanted)])
            .await?;
        let existing: HashSet<String> = ids(&rows)?.into_iter().collect();
        let mut groups: BTreeMap<(bool, Vec<String>), Vec<Value>> = BTreeMap::new();
        for n in nodes {
            let mut labels = n.labels.clone();
            labels.sort();
            labels.dedup();
            groups
                .entry((existing.contains(&n.id), labels))
                .or_default()
                .push(json!({"id": n.id, "props": n.properties}));
        }
        for ((exists, labels), group) in groups {
            let statement = match exists {
                true => q::update_nodes(&labels),
                false => q::create_nodes(&labels),
            };
            tx.run(&statement, &[], vec![("nodes", Value::Array(group))])
                .await?;
        }
    }
    let mut by_type: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for r in relationships {
        by_type
            .entry(r.rel_type.as_str())
            .or_default()
            .push(json!({"from": r.from, "to": r.to, "props": r.properties}));
    }
    for (rel_type, group) in by_type {
        tx.run(
            &q::merge_relationships(rel_type),
            &[],
            vec![("rels", Value::Array(group))],
        )
        .await?;
    }
    Ok(())
}
