//! Ingest's document subgraph, written once for every executor: replacing a document's
//! chunks, mentions and `RELATED_TO` weights, and removing entities no chunk mentions
//! any more.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::{CypherTx, Rows, WeightDelta, list, mentions};
use crate::domain::ingest::{DocumentGraph, EntityId, Mention, co_occurrence, document_node_id};
use crate::store::StoreResult;
use crate::store::cypher::{self, documents as q};

/// Makes document `doc_id`'s subgraph exactly `doc` (`None`: removes it); returns
/// whether the document node existed before.
pub async fn apply(
    tx: &mut dyn CypherTx,
    doc_id: &str,
    doc: Option<&DocumentGraph>,
) -> StoreResult<bool> {
    let doc_node_id = document_node_id(doc_id);
    let existed = tx.node_exists(&doc_node_id).await?;
    let doc_node = Value::from(doc_node_id);
    let node = || vec![("doc_node", doc_node.clone())];
    // Chunks hang off the document node: a new document has none to read or delete,
    // which spares most ingested documents two statements (two round trips on Bolt).
    let old = if existed {
        let old = mentions(&tx.run(q::MENTIONS, &q::MENTION_COLUMNS, node()).await?)?;
        tx.run(q::DELETE_CHUNKS, &[], node()).await?;
        old
    } else {
        Vec::new()
    };

    let old_pairs = co_occurrence(by_chunk(
        old.iter().map(|m| (m.chunk.as_str(), m.entity.id.as_str())),
    ));
    let mut new_pairs = BTreeMap::new();
    let mut touched: BTreeSet<EntityId> = old.iter().map(|m| m.entity.id.clone()).collect();
    let mut kept = BTreeSet::new();
    match doc {
        Some(doc) => {
            tx.write_document(doc, existed).await?;
            new_pairs = co_occurrence(
                doc.chunks
                    .iter()
                    .map(|c| c.entities.iter().map(|e| e.id.as_str()).collect()),
            );
            for e in doc.chunks.iter().flat_map(|c| &c.entities) {
                touched.insert(e.id.clone());
                kept.insert(e.id.clone());
            }
        }
        None if existed => {
            tx.run(cypher::DELETE_NODE, &[], vec![("id", doc_node.clone())])
                .await?;
        }
        None => {}
    }
    update_weights(tx, &old_pairs, &new_pairs).await?;
    update_mention_counts(tx, &old, doc).await?;
    let candidates: Vec<String> = touched.difference(&kept).map(|e| e.to_string()).collect();
    remove_orphans(tx, candidates).await?;
    Ok(existed)
}

/// Adds to each entity's mention count what this document changed: its chunks that
/// mention the entity now, less those that did before.
async fn update_mention_counts(
    tx: &mut dyn CypherTx,
    old: &[Mention],
    doc: Option<&DocumentGraph>,
) -> StoreResult<()> {
    let mut delta: BTreeMap<&str, i64> = BTreeMap::new();
    for m in old {
        *delta.entry(m.entity.id.as_str()).or_default() -= 1;
    }
    for e in doc
        .into_iter()
        .flat_map(|d| &d.chunks)
        .flat_map(|c| &c.entities)
    {
        *delta.entry(e.id.as_str()).or_default() += 1;
    }
    let counts: Vec<(String, i64)> = delta
        .into_iter()
        .filter(|(_, d)| *d != 0)
        .map(|(id, d)| (id.to_owned(), d))
        .collect();
    if counts.is_empty() {
        return Ok(());
    }
    tx.add_mention_counts(counts).await
}

fn by_chunk<'a>(links: impl Iterator<Item = (&'a str, &'a str)>) -> Vec<Vec<&'a str>> {
    let mut chunks: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (chunk, entity) in links {
        chunks.entry(chunk).or_default().push(entity);
    }
    chunks.into_values().collect()
}

/// [`CypherTx::write_document`] in statements: the document node, its chunks, the
/// missing entities, the `MENTIONS` links.
pub(super) async fn write_document<T: CypherTx + ?Sized>(
    tx: &mut T,
    doc: &DocumentGraph,
    existed: bool,
) -> StoreResult<()> {
    write_document_node(tx, doc, existed).await?;
    write_chunks(tx, doc).await
}

async fn write_document_node<T: CypherTx + ?Sized>(
    tx: &mut T,
    doc: &DocumentGraph,
    existed: bool,
) -> StoreResult<()> {
    let labels = ["Document".to_owned()];
    let statement = if existed {
        cypher::update_node(&labels)
    } else {
        cypher::create_node(&labels)
    };
    tx.run(
        &statement,
        &[],
        vec![
            ("id", Value::from(document_node_id(&doc.doc_id))),
            ("props", Value::Object(document_properties(doc))),
        ],
    )
    .await?;
    Ok(())
}

/// The document node's properties: the document's own, then where its chunks are
/// (`doc_id`, `collection`, `chunks`: what [`crate::store::cypher::documents::EXTENTS`]
/// reads back).
pub fn document_properties(doc: &DocumentGraph) -> Map<String, Value> {
    let mut props = doc.properties.clone();
    props.insert("doc_id".into(), doc.doc_id.as_str().into());
    props.insert("collection".into(), doc.collection.as_str().into());
    props.insert("chunks".into(), doc.chunks.len().into());
    props
}

async fn write_chunks<T: CypherTx + ?Sized>(tx: &mut T, doc: &DocumentGraph) -> StoreResult<()> {
    let chunks = doc
        .chunks
        .iter()
        .map(|c| serde_json::json!({"id": c.id, "index": c.index}));
    tx.run(
        q::CREATE_CHUNKS,
        &[],
        vec![
            ("doc_node", Value::from(document_node_id(&doc.doc_id))),
            ("doc", Value::from(doc.doc_id.as_str())),
            ("collection", Value::from(doc.collection.as_str())),
            ("chunks", list(chunks)),
        ],
    )
    .await?;
    let wanted: BTreeMap<&str, &str> = doc
        .chunks
        .iter()
        .flat_map(|c| &c.entities)
        .map(|e| (e.id.as_str(), e.name.as_str()))
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = wanted.keys().copied().collect();
    let rows = tx
        .run(q::ENTITIES, &q::ENTITY_COLUMNS, vec![("ids", list(ids))])
        .await?;
    let existing = entity_ids(&rows)?;
    let missing: Vec<Value> = wanted
        .iter()
        .filter(|(id, _)| !existing.contains(**id))
        .map(|(id, name)| serde_json::json!({"id": id, "name": name}))
        .collect();
    if !missing.is_empty() {
        tx.run(q::CREATE_ENTITIES, &[], vec![("entities", list(missing))])
            .await?;
    }
    let links = doc.chunks.iter().flat_map(|c| {
        c.entities
            .iter()
            .map(|e| serde_json::json!({"chunk": c.id, "entity": e.id}))
    });
    tx.run(q::CREATE_MENTIONS, &[], vec![("mentions", list(links))])
        .await
        .map(drop)
}

/// Adds to each pair's stored weight what the new chunks add less what the old ones
/// contributed; an edge whose weight reaches 0 goes.
async fn update_weights(
    tx: &mut dyn CypherTx,
    old: &BTreeMap<(String, String), i64>,
    new: &BTreeMap<(String, String), i64>,
) -> StoreResult<()> {
    let pairs: BTreeSet<&(String, String)> = old.keys().chain(new.keys()).collect();
    let deltas: Vec<WeightDelta> = pairs
        .into_iter()
        .filter_map(|pair| {
            let delta = new.get(pair).copied().unwrap_or(0) - old.get(pair).copied().unwrap_or(0);
            if delta == 0 {
                return None;
            }
            let (a, b) = pair.clone();
            Some(WeightDelta { a, b, delta })
        })
        .collect();
    if deltas.is_empty() {
        return Ok(());
    }
    tx.add_weights(deltas).await
}

async fn remove_orphans(tx: &mut dyn CypherTx, candidates: Vec<String>) -> StoreResult<()> {
    if candidates.is_empty() {
        return Ok(());
    }
    let still = tx.still_mentioned(candidates.clone()).await?;
    let orphans: Vec<String> = candidates
        .into_iter()
        .filter(|id| !still.contains(id))
        .collect();
    if !orphans.is_empty() {
        tx.run(q::DELETE_ENTITIES, &[], vec![("ids", list(orphans))])
            .await?;
    }
    Ok(())
}

/// [`CypherTx::still_mentioned`] as its statement.
pub(super) async fn still_mentioned<T: CypherTx + ?Sized>(
    tx: &mut T,
    ids: Vec<String>,
) -> StoreResult<BTreeSet<String>> {
    let rows = tx
        .run(q::STILL_MENTIONED, &["e.id"], vec![("ids", list(ids))])
        .await?;
    entity_ids(&rows)
}

/// The `e.id` column of `rows`.
fn entity_ids(rows: &Rows) -> StoreResult<BTreeSet<String>> {
    rows.iter().map(|r| r.text("e.id")).collect()
}
