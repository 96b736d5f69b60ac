//! The graph work written once for every executor (embedded grafeo or a Bolt server),
//! which only runs statements inside its transaction: node and relationship writes,
//! ingest's document subgraph
//! (replacing a document's chunks, mentions and `RELATED_TO` weights, and removing
//! entities no chunk mentions any more) and the breadth-first neighbour expansion. The
//! Cypher is in [`crate::store::cypher`].

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use async_trait::async_trait;
use serde_json::Value;

use crate::domain::graph::{
    Neighbor, NeighborQuery, Node, NodeUpsert, RelationshipUpsert, Written,
};
use crate::domain::ingest::{
    ChunkLink, DocumentGraph, EntityRef, Mention, Related, co_occurrence, document_node_id,
};
use crate::store::cypher::{self, NODE_COLUMNS, documents as q};
use crate::store::graph_rows::count_of;
pub use crate::store::graph_rows::{INTERNAL_LABEL_PREFIX, Row, Rows, node_from, text};
use crate::store::{StoreError, StoreResult};

/// Runs statements inside one open transaction on one tenant's graph; the executor
/// binds `$tenant` itself.
#[async_trait]
pub trait CypherTx: Send {
    /// `columns` names the `RETURN` expressions in order, for executors whose rows are
    /// keyed by name.
    async fn run(
        &mut self,
        statement: &str,
        columns: &[&str],
        params: Vec<(&'static str, Value)>,
    ) -> StoreResult<Rows>;

    /// Adds each pair's `delta` to the weight of its `RELATED_TO` edge from `a` to `b`
    /// (creating it), and removes an edge whose weight falls to 0 or below; a pair whose
    /// entities do not both exist is skipped. [`q::ADD_WEIGHTS`] is the definition; an
    /// executor may do the same natively.
    async fn add_weights(&mut self, pairs: Vec<WeightDelta>) -> StoreResult<()> {
        let pairs = pairs
            .into_iter()
            .map(|p| serde_json::json!({"a": p.a, "b": p.b, "delta": p.delta}));
        self.run(q::ADD_WEIGHTS, &[], vec![("pairs", list(pairs))])
            .await
            .map(drop)
    }

    /// Links each chunk to the entity it mentions (`MENTIONS`); a link whose chunk or
    /// entity does not exist is skipped. [`q::CREATE_MENTIONS`] is the definition.
    async fn create_mentions(&mut self, links: Vec<ChunkLink>) -> StoreResult<()> {
        let links = links
            .into_iter()
            .map(|l| serde_json::json!({"chunk": l.chunk, "entity": l.entity}));
        self.run(q::CREATE_MENTIONS, &[], vec![("mentions", list(links))])
            .await
            .map(drop)
    }

    /// Adds each `(entity id, delta)` to that entity's `mentions` count.
    /// [`q::ADD_MENTION_COUNTS`] is the definition.
    async fn add_mention_counts(&mut self, counts: Vec<(String, i64)>) -> StoreResult<()> {
        let counts = counts
            .into_iter()
            .map(|(id, delta)| serde_json::json!({"id": id, "delta": delta}));
        self.run(q::ADD_MENTION_COUNTS, &[], vec![("counts", list(counts))])
            .await
            .map(drop)
    }
}

/// A change to the `RELATED_TO` weight of entity pair `a < b`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightDelta {
    pub a: String,
    pub b: String,
    pub delta: i64,
}

pub fn list<T: Into<Value>>(items: impl IntoIterator<Item = T>) -> Value {
    Value::Array(items.into_iter().map(Into::into).collect())
}

/// Whether node `id` exists in the tenant's graph.
pub async fn exists(tx: &mut dyn CypherTx, id: &str) -> StoreResult<bool> {
    let rows = tx
        .run(cypher::COUNT_NODE, &["count(n)"], vec![("id", id.into())])
        .await?;
    Ok(count(&rows, "count(n)")? > 0)
}

pub fn missing(id: &str) -> StoreError {
    StoreError::not_found(format!("node {id:?} does not exist"))
}

/// Creates the node or merges labels and properties into it (labels are only ever
/// added, in the CREATE pattern for a new node; see [`cypher::create_node`]).
pub async fn upsert_node(tx: &mut dyn CypherTx, node: &NodeUpsert) -> StoreResult<(Node, Written)> {
    let written = if exists(tx, &node.id).await? {
        Written::Updated
    } else {
        Written::Created
    };
    let statement = match written {
        Written::Created => cypher::create_node(&node.labels),
        Written::Updated => cypher::update_node(&node.labels),
    };
    let props = Value::Object(node.properties.clone());
    let rows = tx
        .run(
            &statement,
            &NODE_COLUMNS,
            vec![("id", node.id.as_str().into()), ("props", props)],
        )
        .await?;
    let stored = match rows.first() {
        Some(row) => node_from(&row)?,
        None => None,
    }
    .ok_or_else(|| StoreError::internal("node write returned no node"))?;
    Ok((stored, written))
}

/// Detach-deletes the node; `NotFound` when there is none.
pub async fn delete_node(tx: &mut dyn CypherTx, id: &str) -> StoreResult<()> {
    if !exists(tx, id).await? {
        return Err(missing(id));
    }
    tx.run(cypher::DELETE_NODE, &[], vec![("id", id.into())])
        .await
        .map(drop)
}

/// Creates or updates the relationship; both end nodes must exist (`NotFound`).
pub async fn upsert_relationship(
    tx: &mut dyn CypherTx,
    rel: &RelationshipUpsert,
) -> StoreResult<Written> {
    for id in [&rel.from, &rel.to] {
        if !exists(tx, id).await? {
            return Err(missing(id));
        }
    }
    let ends = || {
        vec![
            ("from", Value::from(rel.from.as_str())),
            ("to", Value::from(rel.to.as_str())),
        ]
    };
    let existing = tx
        .run(
            &cypher::count_relationship(&rel.rel_type),
            &["count(r)"],
            ends(),
        )
        .await?;
    let mut p = ends();
    p.push(("props", Value::Object(rel.properties.clone())));
    tx.run(&cypher::merge_relationship(&rel.rel_type), &[], p)
        .await?;
    Ok(if count(&existing, "count(r)")? > 0 {
        Written::Updated
    } else {
        Written::Created
    })
}

/// Breadth-first expansion, one query per hop, so each node gets its shortest depth and
/// the work stays bounded by `limit` times the fan-out instead of by the number of
/// paths. The start node must exist (the caller checks).
pub async fn expand(tx: &mut dyn CypherTx, query: &NeighborQuery) -> StoreResult<Vec<Neighbor>> {
    let statement = cypher::expand(query.direction, &query.types);
    let columns = [
        "s.id",
        "type(r)",
        NODE_COLUMNS[0],
        NODE_COLUMNS[1],
        NODE_COLUMNS[2],
    ];
    let mut seen: HashSet<String> = HashSet::from([query.id.clone()]);
    let mut paths: HashMap<String, Vec<String>> = HashMap::from([(query.id.clone(), Vec::new())]);
    let mut frontier = vec![query.id.clone()];
    let mut out = Vec::new();
    for depth in 1..=query.hops {
        if frontier.is_empty() || out.len() >= query.limit {
            break;
        }
        let rows = tx
            .run(&statement, &columns, vec![("frontier", list(frontier))])
            .await?;
        let mut next = Vec::new();
        for row in rows.iter() {
            let (Some(from), Some(rel_type)) =
                (row.get("s.id")?.as_str(), row.get("type(r)")?.as_str())
            else {
                continue;
            };
            let Some(node) = node_from(&row)? else {
                continue;
            };
            if out.len() >= query.limit || !seen.insert(node.id.clone()) {
                continue;
            }
            let mut path = paths.get(from).cloned().unwrap_or_default();
            path.push(rel_type.to_owned());
            paths.insert(node.id.clone(), path.clone());
            next.push(node.id.clone());
            out.push(Neighbor { node, depth, path });
        }
        frontier = next;
    }
    Ok(out)
}

/// Rows of [`q::MENTION_COLUMNS`].
pub fn mentions(rows: &Rows) -> StoreResult<Vec<Mention>> {
    rows.iter()
        .map(|r| {
            Ok(Mention {
                chunk: r.text("chunk")?,
                entity: EntityRef {
                    id: r.text("entity")?,
                    name: r.text("name")?,
                    mentions: count_of(r.get("mentions")?),
                },
            })
        })
        .collect()
}

/// Rows of [`q::LINK_COLUMNS`].
pub fn links(rows: &Rows) -> StoreResult<Vec<ChunkLink>> {
    rows.iter()
        .map(|r| {
            Ok(ChunkLink {
                chunk: r.text("chunk")?,
                entity: r.text("entity")?,
            })
        })
        .collect()
}

/// Rows of [`q::ENTITY_COLUMNS`].
pub fn entities(rows: &Rows) -> StoreResult<Vec<EntityRef>> {
    rows.iter()
        .map(|r| {
            Ok(EntityRef {
                id: r.text("e.id")?,
                name: r.text("e.name")?,
                mentions: count_of(r.get("e.mentions")?),
            })
        })
        .collect()
}

/// Rows of [`q::RELATED_COLUMNS`].
pub fn related(rows: &Rows) -> StoreResult<Vec<Related>> {
    rows.iter()
        .map(|r| {
            Ok(Related {
                from: r.text("a.id")?,
                entity: EntityRef {
                    id: r.text("b.id")?,
                    name: r.text("b.name")?,
                    mentions: count_of(r.get("b.mentions")?),
                },
                weight: weight(r.get("r.weight")?),
            })
        })
        .collect()
}

fn weight(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

/// Makes document `doc_id`'s subgraph exactly `doc` (`None`: removes it); returns
/// whether the document node existed before.
pub async fn apply(
    tx: &mut dyn CypherTx,
    doc_id: &str,
    doc: Option<&DocumentGraph>,
) -> StoreResult<bool> {
    let doc_node = Value::from(document_node_id(doc_id));
    let node = || vec![("doc_node", doc_node.clone())];
    let existed = count(
        &tx.run(
            cypher::COUNT_NODE,
            &["count(n)"],
            vec![("id", doc_node.clone())],
        )
        .await?,
        "count(n)",
    )? > 0;
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
    let mut touched: BTreeSet<String> = old.iter().map(|m| m.entity.id.clone()).collect();
    let mut kept = BTreeSet::new();
    match doc {
        Some(doc) => {
            write_document_node(tx, doc, existed).await?;
            write_chunks(tx, doc).await?;
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
    let candidates: Vec<String> = touched.difference(&kept).cloned().collect();
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

/// The `column` (a `count(…)`) of a counting statement.
fn count(rows: &Rows, column: &str) -> StoreResult<i64> {
    Ok(match rows.first() {
        Some(row) => row.get(column)?.as_i64().unwrap_or(0),
        None => 0,
    })
}

fn by_chunk<'a>(links: impl Iterator<Item = (&'a str, &'a str)>) -> Vec<Vec<&'a str>> {
    let mut chunks: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (chunk, entity) in links {
        chunks.entry(chunk).or_default().push(entity);
    }
    chunks.into_values().collect()
}

async fn write_document_node(
    tx: &mut dyn CypherTx,
    doc: &DocumentGraph,
    existed: bool,
) -> StoreResult<()> {
    let labels = ["Document".to_owned()];
    let statement = if existed {
        cypher::update_node(&labels)
    } else {
        cypher::create_node(&labels)
    };
    let mut props = doc.properties.clone();
    props.insert("doc_id".into(), doc.doc_id.clone().into());
    props.insert("collection".into(), doc.collection.clone().into());
    props.insert("chunks".into(), doc.chunks.len().into());
    tx.run(
        &statement,
        &[],
        vec![
            ("id", Value::from(document_node_id(&doc.doc_id))),
            ("props", Value::Object(props)),
        ],
    )
    .await?;
    Ok(())
}

async fn write_chunks(tx: &mut dyn CypherTx, doc: &DocumentGraph) -> StoreResult<()> {
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
    let existing: BTreeSet<String> = tx
        .run(q::ENTITIES, &q::ENTITY_COLUMNS, vec![("ids", list(ids))])
        .await?
        .iter()
        .map(|r| r.text("e.id"))
        .collect::<StoreResult<_>>()?;
    let missing = wanted
        .iter()
        .filter(|(id, _)| !existing.contains(**id))
        .map(|(id, name)| serde_json::json!({"id": id, "name": name}));
    tx.run(q::CREATE_ENTITIES, &[], vec![("entities", list(missing))])
        .await?;
    let links = doc.chunks.iter().flat_map(|c| {
        c.entities.iter().map(|e| ChunkLink {
            chunk: c.id.clone(),
            entity: e.id.clone(),
        })
    });
    tx.create_mentions(links.collect()).await
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
    let still: BTreeSet<String> = tx
        .run(
            q::STILL_MENTIONED,
            &["e.id"],
            vec![("ids", list(candidates.clone()))],
        )
        .await?
        .iter()
        .map(|r| r.text("e.id"))
        .collect::<StoreResult<_>>()?;
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
