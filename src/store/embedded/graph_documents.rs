//! The embedded graph's ingest side: replacing a document's subgraph in one
//! transaction, and the entity/chunk lookups hybrid retrieval walks. The Cypher is in
//! [`crate::store::cypher::documents`]; this file only sequences it.

use std::collections::{BTreeMap, BTreeSet};

use grafeo::{QueryResult, Session, Value};

use super::graph::{Inner, engine, lock, params};
use super::graph_values::{map_to_grafeo, to_grafeo};
use crate::domain::ingest::{
    DocumentGraph, EntityRef, Mention, Related, co_occurrence, document_node_id,
};
use crate::domain::principal::Tenant;
use crate::store::StoreResult;
use crate::store::cypher::{self, documents as q};

fn list<T: Into<serde_json::Value>>(items: impl IntoIterator<Item = T>) -> Value {
    to_grafeo(&serde_json::Value::Array(
        items.into_iter().map(Into::into).collect(),
    ))
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

/// Runs statements in one transaction on the tenant's graph.
struct Tx<'a> {
    session: Session,
    tenant: &'a Tenant,
}

impl Tx<'_> {
    fn run(&self, statement: &str, pairs: Vec<(&'static str, Value)>) -> StoreResult<QueryResult> {
        self.session
            .execute_cypher_with_params(statement, params(self.tenant, pairs))
            .map_err(engine)
    }

    fn mentions(
        &self,
        statement: &str,
        ids: Vec<(&'static str, Value)>,
    ) -> StoreResult<Vec<Mention>> {
        Ok(self
            .run(statement, ids)?
            .rows()
            .iter()
            .map(|r| Mention {
                chunk: text(&r[0]),
                entity: EntityRef {
                    id: text(&r[1]),
                    name: text(&r[2]),
                },
            })
            .collect())
    }
}

impl Inner {
    fn tx<'a>(&self, tenant: &'a Tenant) -> StoreResult<Tx<'a>> {
        Ok(Tx {
            session: self.session(tenant)?,
            tenant,
        })
    }

    /// Reads without a transaction.
    pub(super) fn read_mentions(
        &self,
        tenant: &Tenant,
        statement: &str,
        ids: Vec<String>,
    ) -> StoreResult<Vec<Mention>> {
        self.tx(tenant)?
            .mentions(statement, vec![("ids", list(ids))])
    }

    pub(super) fn read_entities(
        &self,
        tenant: &Tenant,
        ids: Vec<String>,
    ) -> StoreResult<Vec<EntityRef>> {
        let result = self
            .tx(tenant)?
            .run(q::ENTITIES, vec![("ids", list(ids))])?;
        Ok(result
            .rows()
            .iter()
            .map(|r| EntityRef {
                id: text(&r[0]),
                name: text(&r[1]),
            })
            .collect())
    }

    pub(super) fn read_related(
        &self,
        tenant: &Tenant,
        ids: Vec<String>,
        limit: usize,
    ) -> StoreResult<Vec<Related>> {
        let result = self
            .tx(tenant)?
            .run(&q::related(limit), vec![("ids", list(ids))])?;
        Ok(result
            .rows()
            .iter()
            .map(|r| Related {
                from: text(&r[0]),
                entity: EntityRef {
                    id: text(&r[1]),
                    name: text(&r[2]),
                },
                weight: weight(&r[3]),
            })
            .collect())
    }

    /// Replaces every document in `docs` in one transaction (one WAL fsync).
    pub(super) fn write_documents(
        &self,
        tenant: &Tenant,
        docs: &[DocumentGraph],
    ) -> StoreResult<()> {
        self.in_transaction(tenant, |tx| {
            for doc in docs {
                apply(tx, &doc.doc_id, Some(doc))?;
            }
            Ok(())
        })
    }

    /// Removes document `doc_id`; returns whether its node existed.
    pub(super) fn remove_document(&self, tenant: &Tenant, doc_id: &str) -> StoreResult<bool> {
        self.in_transaction(tenant, |tx| apply(tx, doc_id, None))
    }

    /// One writer, one transaction, committed with the WAL fsync; rolled back on error.
    fn in_transaction<T>(
        &self,
        tenant: &Tenant,
        work: impl FnOnce(&Tx<'_>) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let _w = lock(&self.writer);
        let mut tx = self.tx(tenant)?;
        tx.session.begin_transaction().map_err(engine)?;
        match work(&tx) {
            Ok(out) => {
                tx.session.commit().map_err(engine)?;
                Ok(out)
            }
            Err(e) => {
                let _ = tx.session.rollback();
                Err(e)
            }
        }
    }
}

fn weight(v: &Value) -> f64 {
    match v {
        Value::Int64(n) => *n as f64,
        Value::Float64(f) => *f,
        _ => 0.0,
    }
}

fn apply(tx: &Tx<'_>, doc_id: &str, doc: Option<&DocumentGraph>) -> StoreResult<bool> {
    let doc_node = Value::from(document_node_id(doc_id).as_str());
    let node = || vec![("doc_node", doc_node.clone())];
    let old = tx.mentions(q::MENTIONS, node())?;
    let existed = count(&tx.run(cypher::COUNT_NODE, vec![("id", doc_node.clone())])?) > 0;
    tx.run(q::DELETE_CHUNKS, node())?;

    let old_pairs = co_occurrence(by_chunk(
        old.iter().map(|m| (m.chunk.as_str(), m.entity.id.as_str())),
    ));
    let mut new_pairs = BTreeMap::new();
    let mut touched: BTreeSet<String> = old.iter().map(|m| m.entity.id.clone()).collect();
    let mut kept = BTreeSet::new();
    match doc {
        Some(doc) => {
            write_document_node(tx, doc, existed)?;
            write_chunks(tx, doc)?;
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
            tx.run(cypher::DELETE_NODE, vec![("id", doc_node.clone())])?;
        }
        None => {}
    }
    update_weights(tx, &touched, &old_pairs, &new_pairs)?;
    let candidates: Vec<String> = touched.difference(&kept).cloned().collect();
    remove_orphans(tx, candidates)?;
    Ok(existed)
}

fn count(result: &QueryResult) -> i64 {
    match result.rows().first().and_then(|r| r.first()) {
        Some(Value::Int64(n)) => *n,
        _ => 0,
    }
}

fn by_chunk<'a>(links: impl Iterator<Item = (&'a str, &'a str)>) -> Vec<Vec<&'a str>> {
    let mut chunks: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (chunk, entity) in links {
        chunks.entry(chunk).or_default().push(entity);
    }
    chunks.into_values().collect()
}

fn write_document_node(tx: &Tx<'_>, doc: &DocumentGraph, existed: bool) -> StoreResult<()> {
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
        vec![
            ("id", Value::from(document_node_id(&doc.doc_id).as_str())),
            ("props", map_to_grafeo(&props)),
        ],
    )?;
    Ok(())
}

fn write_chunks(tx: &Tx<'_>, doc: &DocumentGraph) -> StoreResult<()> {
    let chunks = doc
        .chunks
        .iter()
        .map(|c| serde_json::json!({"id": c.id, "index": c.index}));
    tx.run(
        q::CREATE_CHUNKS,
        vec![
            (
                "doc_node",
                Value::from(document_node_id(&doc.doc_id).as_str()),
            ),
            ("doc", Value::from(doc.doc_id.as_str())),
            ("collection", Value::from(doc.collection.as_str())),
            ("chunks", list(chunks)),
        ],
    )?;
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
        .run(q::ENTITIES, vec![("ids", list(ids))])?
        .rows()
        .iter()
        .map(|r| text(&r[0]))
        .collect();
    let missing = wanted
        .iter()
        .filter(|(id, _)| !existing.contains(**id))
        .map(|(id, name)| serde_json::json!({"id": id, "name": name}));
    tx.run(q::CREATE_ENTITIES, vec![("entities", list(missing))])?;
    let mentions = doc.chunks.iter().flat_map(|c| {
        c.entities
            .iter()
            .map(|e| serde_json::json!({"chunk": c.id, "entity": e.id}))
    });
    tx.run(q::CREATE_MENTIONS, vec![("mentions", list(mentions))])?;
    Ok(())
}

/// Stored weight + what the new chunks add − what the old ones contributed; an edge
/// whose weight reaches 0 goes.
fn update_weights(
    tx: &Tx<'_>,
    touched: &BTreeSet<String>,
    old: &BTreeMap<(String, String), i64>,
    new: &BTreeMap<(String, String), i64>,
) -> StoreResult<()> {
    if old.is_empty() && new.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = touched.iter().map(String::as_str).collect();
    let mut weights: BTreeMap<(String, String), i64> = BTreeMap::new();
    for row in tx.run(q::WEIGHTS, vec![("ids", list(ids))])?.rows() {
        weights.insert((text(&row[0]), text(&row[1])), weight(&row[2]) as i64);
    }
    let (mut set, mut delete) = (Vec::new(), Vec::new());
    let pairs: BTreeSet<&(String, String)> = old.keys().chain(new.keys()).collect();
    for pair in pairs {
        let stored = weights.get(pair).copied().unwrap_or(0);
        let w = stored + new.get(pair).copied().unwrap_or(0) - old.get(pair).copied().unwrap_or(0);
        let (a, b) = pair;
        if w > 0 {
            set.push(serde_json::json!({"a": a, "b": b, "weight": w}));
        } else if stored > 0 {
            delete.push(serde_json::json!({"a": a, "b": b}));
        }
    }
    if !delete.is_empty() {
        tx.run(q::DELETE_WEIGHTS, vec![("pairs", list(delete))])?;
    }
    if !set.is_empty() {
        tx.run(q::SET_WEIGHTS, vec![("pairs", list(set))])?;
    }
    Ok(())
}

fn remove_orphans(tx: &Tx<'_>, candidates: Vec<String>) -> StoreResult<()> {
    if candidates.is_empty() {
        return Ok(());
    }
    let still: BTreeSet<String> = tx
        .run(q::STILL_MENTIONED, vec![("ids", list(candidates.clone()))])?
        .rows()
        .iter()
        .map(|r| text(&r[0]))
        .collect();
    let orphans: Vec<String> = candidates
        .into_iter()
        .filter(|id| !still.contains(id))
        .collect();
    if !orphans.is_empty() {
        tx.run(q::DELETE_ENTITIES, vec![("ids", list(orphans))])?;
    }
    Ok(())
}
