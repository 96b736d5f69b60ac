//! The graph work written once for every executor (embedded grafeo or a Bolt server),
//! which only runs statements inside its transaction: node and relationship writes,
//! ingest's document subgraph (`documents.rs`) and the breadth-first neighbour
//! expansion. The Cypher is in [`crate::store::cypher`].

use std::collections::{BTreeSet, HashMap, HashSet};

use async_trait::async_trait;
use serde_json::Value;

use crate::domain::graph::{
    Neighbor, NeighborQuery, Node, NodeUpsert, RelationshipUpsert, Written,
};
use crate::domain::ingest::{
    ChunkLink, DocId, DocumentExtent, DocumentGraph, EntityId, EntityRef, Mention, Related,
};
use crate::domain::vector::CollectionName;
use crate::store::cypher::{self, NODE_COLUMNS, documents as q};
use crate::store::graph_rows::count_of;
pub use crate::store::graph_rows::{
    INTERNAL_LABEL_PREFIX, Row, Rows, node_from, node_from_values, text,
};
use crate::store::{StoreError, StoreResult};

mod documents;
pub mod export;
pub use documents::{apply, document_properties};

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

    /// Whether node `id` exists in the tenant's graph, whatever its labels.
    /// [`cypher::COUNT_NODE`] is the definition.
    async fn node_exists(&mut self, id: &str) -> StoreResult<bool> {
        let rows = self
            .run(cypher::COUNT_NODE, &["count(n)"], vec![("id", id.into())])
            .await?;
        Ok(count(&rows, "count(n)")? > 0)
    }

    /// Creates `node`, which does not exist (the caller checked, holding the write
    /// lock), and returns it as stored. [`cypher::create_node`] is the definition; an
    /// executor may do the same natively.
    async fn create_node(&mut self, node: &NodeUpsert) -> StoreResult<Node> {
        let statement = cypher::create_node(&node.labels);
        let rows = self
            .run(&statement, &NODE_COLUMNS, node_params(node))
            .await?;
        written_node(&rows)
    }

    /// Writes document `doc`'s node (created, or merged into the existing one when
    /// `existed`), its chunks (`PART_OF` the document node), the entities they mention
    /// that do not exist yet, and one `MENTIONS` link per chunk and entity. The old
    /// chunks are gone already. [`documents::write_document`]'s statements are the
    /// definition; an executor may do the same natively.
    async fn write_document(&mut self, doc: &DocumentGraph, existed: bool) -> StoreResult<()> {
        documents::write_document(self, doc, existed).await
    }

    /// Of the entities `ids`, those that some chunk still `MENTIONS`.
    /// [`q::STILL_MENTIONED`] is the definition; an executor may do the same natively.
    async fn still_mentioned(&mut self, ids: Vec<String>) -> StoreResult<BTreeSet<String>> {
        documents::still_mentioned(self, ids).await
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

pub fn missing(id: &str) -> StoreError {
    StoreError::not_found(format!("node {id:?} does not exist"))
}

/// Creates the node or merges labels and properties into it (labels are only ever
/// added, in the CREATE pattern for a new node; see [`cypher::create_node`]).
pub async fn upsert_node(tx: &mut dyn CypherTx, node: &NodeUpsert) -> StoreResult<(Node, Written)> {
    if !tx.node_exists(&node.id).await? {
        return Ok((tx.create_node(node).await?, Written::Created));
    }
    let rows = tx
        .run(
            &cypher::update_node(&node.labels),
            &NODE_COLUMNS,
            node_params(node),
        )
        .await?;
    if rows.first().is_none() {
        return Err(lost_race(format!("node {:?}", node.id)));
    }
    Ok((written_node(&rows)?, Written::Updated))
}

/// A node found by this transaction's existence check and gone by its next statement:
/// a Bolt server reads committed data, so a concurrent delete can land in between. The
/// write is retried from the start like a deadlock ([`crate::store::ErrorKind::Busy`]),
/// rather than failing as a broken invariant or (for a relationship) answering for an
/// edge that was never written.
fn lost_race(what: String) -> StoreError {
    StoreError::busy(format!(
        "{what} was deleted by a concurrent write during this one"
    ))
}

/// `$id` and `$props` of [`cypher::create_node`] and [`cypher::update_node`].
fn node_params(node: &NodeUpsert) -> Vec<(&'static str, Value)> {
    vec![
        ("id", node.id.as_str().into()),
        ("props", Value::Object(node.properties.clone())),
    ]
}

/// The node a create or update statement returned.
fn written_node(rows: &Rows) -> StoreResult<Node> {
    match rows.first() {
        Some(row) => node_from(&row)?,
        None => None,
    }
    .ok_or_else(|| StoreError::internal("node write returned no node"))
}

/// Detach-deletes the node; `NotFound` when there is none.
pub async fn delete_node(tx: &mut dyn CypherTx, id: &str) -> StoreResult<()> {
    if !tx.node_exists(id).await? {
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
        if !tx.node_exists(id).await? {
            return Err(missing(id));
        }
    }
    let existed = relationship_exists(tx, &rel.from, &rel.to, &rel.rel_type).await?;
    let p = vec![
        ("from", Value::from(rel.from.as_str())),
        ("to", Value::from(rel.to.as_str())),
        ("props", Value::Object(rel.properties.clone())),
    ];
    let merged = tx
        .run(&cypher::merge_relationship(&rel.rel_type), &["count(r)"], p)
        .await?;
    if count(&merged, "count(r)")? == 0 {
        let ends = format!("node {:?} or {:?}", rel.from, rel.to);
        return Err(lost_race(ends));
    }
    Ok(if existed {
        Written::Updated
    } else {
        Written::Created
    })
}

/// Whether a `rel_type` relationship runs from `from` to `to` (false when either end
/// is missing).
pub async fn relationship_exists(
    tx: &mut dyn CypherTx,
    from: &str,
    to: &str,
    rel_type: &str,
) -> StoreResult<bool> {
    let ends = vec![("from", Value::from(from)), ("to", Value::from(to))];
    let rows = tx
        .run(&cypher::count_relationship(rel_type), &["count(r)"], ends)
        .await?;
    Ok(count(&rows, "count(r)")? > 0)
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

/// Entity ids as the node ids a statement's `$ids` takes.
pub fn node_ids(ids: Vec<EntityId>) -> Vec<String> {
    ids.into_iter().map(String::from).collect()
}

/// Rows of [`q::MENTION_COLUMNS`]. Here and below, a row whose entity id ingest did
/// not write (see [`EntityId::parse`]) is left out.
pub fn mentions(rows: &Rows) -> StoreResult<Vec<Mention>> {
    let mut out = Vec::new();
    for r in rows.iter() {
        if let Some(entity) = entity_ref(&r, ["entity", "name", "mentions"])? {
            let chunk = r.text("chunk")?;
            out.push(Mention { chunk, entity });
        }
    }
    Ok(out)
}

/// Rows of [`q::LINK_COLUMNS`].
pub fn links(rows: &Rows) -> StoreResult<Vec<ChunkLink>> {
    let mut out = Vec::new();
    for r in rows.iter() {
        if let Some(entity) = EntityId::parse(&r.text("entity")?) {
            let chunk = r.text("chunk")?;
            out.push(ChunkLink { chunk, entity });
        }
    }
    Ok(out)
}

/// Rows of [`q::ENTITY_COLUMNS`].
pub fn entities(rows: &Rows) -> StoreResult<Vec<EntityRef>> {
    let mut out = Vec::new();
    for r in rows.iter() {
        out.extend(entity_ref(&r, q::ENTITY_COLUMNS)?);
    }
    Ok(out)
}

/// Rows of [`q::EXTENT_COLUMNS`]; a node without a valid document id, collection or
/// chunk count (not written by ingest) has no extent.
pub fn extents(rows: &Rows) -> StoreResult<Vec<DocumentExtent>> {
    let mut out = Vec::new();
    for r in rows.iter() {
        let (doc_id, collection, chunks) = (
            r.get("d.doc_id")?.as_str(),
            r.get("d.collection")?.as_str(),
            r.get("d.chunks")?.as_u64(),
        );
        let doc_id = doc_id.and_then(DocId::parse);
        let collection = collection.and_then(CollectionName::parse);
        if let (Some(doc_id), Some(collection), Some(chunks)) = (doc_id, collection, chunks) {
            out.push(DocumentExtent {
                doc_id,
                collection,
                chunks: chunks as usize,
            });
        }
    }
    Ok(out)
}

/// An entity from its id, name and mention-count columns; `None` when the id is not
/// an entity id.
fn entity_ref(r: &Row<'_>, [id, name, mentions]: [&str; 3]) -> StoreResult<Option<EntityRef>> {
    let Some(id) = EntityId::parse(&r.text(id)?) else {
        return Ok(None);
    };
    Ok(Some(EntityRef {
        id,
        name: r.text(name)?,
        mentions: count_of(r.get(mentions)?),
    }))
}

/// Rows of [`q::RELATED_COLUMNS`].
pub fn related(rows: &Rows) -> StoreResult<Vec<Related>> {
    let mut out = Vec::new();
    for r in rows.iter() {
        let from = EntityId::parse(&r.text("a.id")?);
        let entity = entity_ref(&r, ["b.id", "b.name", "b.mentions"])?;
        if let (Some(from), Some(entity)) = (from, entity) {
            let weight = weight(r.get("r.weight")?);
            out.push(Related {
                from,
                entity,
                weight,
            });
        }
    }
    Ok(out)
}

fn weight(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

/// The `column` (a `count(…)`) of a counting statement.
pub(super) fn count(rows: &Rows, column: &str) -> StoreResult<i64> {
    Ok(match rows.first() {
        Some(row) => row.get(column)?.as_i64().unwrap_or(0),
        None => 0,
    })
}
