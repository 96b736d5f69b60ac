//! The document half of the GraphStore contract: replacing and removing documents,
//! their extents, entity weights and mention counts, on both executors.

use ragbrain::domain::graph::{NodeUpsert, RelationshipUpsert, Written};
use ragbrain::domain::ingest::{ChunkNode, DocumentExtent, DocumentGraph, EntityId, EntityRef};
use ragbrain::domain::vector::CollectionName;
use ragbrain::store::GraphStore;
use serde_json::json;

use super::super::{doc_id, tenant};
use super::props;

fn id(key: &str) -> EntityId {
    EntityId::from_key(key)
}

fn entity(key: &str) -> EntityRef {
    EntityRef {
        id: id(key),
        name: key.into(),
        mentions: 0,
    }
}

fn doc(id: &str, chunks: &[&[&str]]) -> DocumentGraph {
    DocumentGraph {
        doc_id: doc_id(id),
        collection: CollectionName::parse("documents").unwrap(),
        properties: props(json!({"title": id})),
        chunks: chunks
            .iter()
            .enumerate()
            .map(|(i, names)| ChunkNode {
                id: format!("chunk:{id}:{i}"),
                index: i,
                entities: names.iter().map(|n| entity(n)).collect(),
            })
            .collect(),
    }
}

pub(super) async fn documents(store: &dyn GraphStore) {
    let t = tenant("gd");
    store
        .replace_documents(
            &t,
            vec![
                doc("d1", &[&["Paris", "France"], &["Paris"]]),
                doc("d2", &[&["Paris", "Seine"]]),
            ],
        )
        .await
        .unwrap();
    let known = store
        .entities(&t, vec![id("Paris"), id("Rome")])
        .await
        .unwrap();
    // Three chunks mention Paris; the count is kept at ingest and read back.
    let paris = EntityRef {
        mentions: 3,
        ..entity("Paris")
    };
    assert_eq!(known, [paris]);
    let mut related = store
        .related_entities(&t, vec![id("Paris")], 10)
        .await
        .unwrap();
    related.sort_by(|a, b| a.entity.id.cmp(&b.entity.id));
    let weights: Vec<_> = related
        .iter()
        .map(|r| (r.entity.name.as_str(), r.weight))
        .collect();
    assert_eq!(weights, [("France", 1.0), ("Seine", 1.0)]);
    let mut mentions = store
        .entity_mentions(&t, vec![id("Paris")], 10)
        .await
        .unwrap();
    mentions.sort_by(|a, b| a.chunk.cmp(&b.chunk));
    let chunks: Vec<_> = mentions.iter().map(|m| m.chunk.as_str()).collect();
    assert_eq!(chunks, ["chunk:d1:0", "chunk:d1:1", "chunk:d2:0"]);
    let of_chunk = store
        .chunk_mentions(&t, vec!["chunk:d2:0".into()])
        .await
        .unwrap();
    assert_eq!(of_chunk.len(), 2);

    // Re-ingesting d2 without the Seine drops the orphaned entity and its edge.
    store
        .replace_documents(&t, vec![doc("d2", &[&["Paris"]])])
        .await
        .unwrap();
    assert!(
        store
            .entities(&t, vec![id("Seine")])
            .await
            .unwrap()
            .is_empty()
    );
    let related = store
        .related_entities(&t, vec![id("Paris")], 10)
        .await
        .unwrap();
    assert_eq!(related.len(), 1);
    // Idempotent.
    store
        .replace_documents(&t, vec![doc("d2", &[&["Paris"]])])
        .await
        .unwrap();
    // What each stored version covers, for the worker's stale-point deletes.
    let mut extents = store
        .document_extents(&t, vec![doc_id("d1"), doc_id("d2"), doc_id("d9")])
        .await
        .unwrap();
    extents.sort_by(|a, b| a.doc_id.cmp(&b.doc_id));
    let extent = |id: &str, chunks| DocumentExtent {
        doc_id: doc_id(id),
        collection: CollectionName::parse("documents").unwrap(),
        chunks,
    };
    assert_eq!(extents, [extent("d1", 2), extent("d2", 1)]);

    assert!(store.remove_document(&t, &doc_id("d1")).await.unwrap());
    assert!(!store.remove_document(&t, &doc_id("d1")).await.unwrap());
    let left = store
        .document_extents(&t, vec![doc_id("d1")])
        .await
        .unwrap();
    assert!(left.is_empty(), "a removed document has no extent");
    assert!(
        store
            .entities(&t, vec![id("France")])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.entities(&t, vec![id("Paris")]).await.unwrap().len(),
        1
    );

    // Weights add up across documents and follow each document's changes; an edge
    // that falls to 0 goes while both its entities stay.
    let weights = async |store: &dyn GraphStore| -> Vec<(String, f64)> {
        let related = store
            .related_entities(&t, vec![id("Paris")], 10)
            .await
            .unwrap();
        related
            .into_iter()
            .map(|r| (r.entity.name, r.weight))
            .collect()
    };
    store
        .replace_documents(
            &t,
            vec![
                doc("d3", &[&["Paris", "France"], &["France"]]),
                doc("d4", &[&["France", "Paris"]]),
            ],
        )
        .await
        .unwrap();
    assert_eq!(weights(store).await, [("France".to_owned(), 2.0)]);
    store
        .replace_documents(&t, vec![doc("d3", &[&["Paris"], &["France"]])])
        .await
        .unwrap();
    assert_eq!(weights(store).await, [("France".to_owned(), 1.0)]);
    store
        .replace_documents(&t, vec![doc("d4", &[&["France"]])])
        .await
        .unwrap();
    assert_eq!(weights(store).await, []);
    let both = store
        .entities(&t, vec![id("France"), id("Paris")])
        .await
        .unwrap();
    assert_eq!(both.len(), 2, "{both:?}");

    // The same with a hub on one end: "Alpha" relates to eight entities before it meets
    // "Zed", so an executor may look for the pair's edge from either side.
    let hub = ["Alpha", "B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8"];
    store
        .replace_documents(&t, vec![doc("h1", &[&hub])])
        .await
        .unwrap();
    let partners = async |store: &dyn GraphStore, of: &str| -> Vec<(String, f64)> {
        let related = store.related_entities(&t, vec![id(of)], 20).await.unwrap();
        let mut out: Vec<_> = related
            .into_iter()
            .map(|r| (r.entity.name, r.weight))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    };
    for (n, d) in ["h2", "h3"].into_iter().enumerate() {
        store
            .replace_documents(&t, vec![doc(d, &[&["Alpha", "Zed"]])])
            .await
            .unwrap();
        assert_eq!(
            partners(store, "Zed").await,
            [("Alpha".to_owned(), n as f64 + 1.0)]
        );
    }
    assert_eq!(partners(store, "Alpha").await.len(), 9);
    let mentions = async |store: &dyn GraphStore, of: &str| -> u64 {
        let found = store.entities(&t, vec![id(of)]).await.unwrap();
        found[0].mentions
    };
    assert_eq!(mentions(store, "Alpha").await, 3);
    for (n, d) in ["h2", "h3"].into_iter().enumerate() {
        store
            .replace_documents(&t, vec![doc(d, &[&["Zed"]])])
            .await
            .unwrap();
        let left: Vec<_> = (n == 0)
            .then(|| ("Alpha".to_owned(), 1.0))
            .into_iter()
            .collect();
        assert_eq!(partners(store, "Zed").await, left);
    }
    assert_eq!(partners(store, "Alpha").await.len(), 8);
    assert_eq!(mentions(store, "Alpha").await, 1);
    assert_eq!(mentions(store, "Zed").await, 2);
    written_elsewhere(store).await;
    store.ping().await.unwrap();
}

/// `RELATED_TO` weight between two entities and an entity's mention count.
async fn weight(
    store: &dyn GraphStore,
    t: &ragbrain::domain::principal::Tenant,
    a: &str,
    b: &str,
) -> f64 {
    let related = store.related_entities(t, vec![id(a)], 20).await.unwrap();
    related
        .iter()
        .find(|r| r.entity.name == b)
        .map_or(0.0, |r| r.weight)
}

async fn mentions_of(
    store: &dyn GraphStore,
    t: &ragbrain::domain::principal::Tenant,
    of: &str,
) -> u64 {
    store.entities(t, vec![id(of)]).await.unwrap()[0].mentions
}

/// A node or relationship written through the API over an entity or its edge: the
/// next document adds to what that write left, not to what the documents before it did.
async fn written_elsewhere(store: &dyn GraphStore) {
    let t = tenant("gw");
    store
        .replace_documents(&t, vec![doc("w1", &[&["Oslo", "Bergen"]])])
        .await
        .unwrap();
    assert_eq!(weight(store, &t, "Oslo", "Bergen").await, 1.0);
    // Weights run from the smaller entity id to the larger.
    let (mut a, mut b) = (id("Oslo").to_string(), id("Bergen").to_string());
    if a > b {
        std::mem::swap(&mut a, &mut b);
    }
    let heavier = RelationshipUpsert {
        from: a,
        to: b,
        rel_type: "RELATED_TO".into(),
        properties: props(json!({"weight": 10})),
    };
    assert_eq!(
        store.upsert_relationship(&t, heavier).await.unwrap(),
        Written::Updated
    );
    store
        .replace_documents(&t, vec![doc("w2", &[&["Oslo", "Bergen"]])])
        .await
        .unwrap();
    assert_eq!(weight(store, &t, "Oslo", "Bergen").await, 11.0);

    let counted = NodeUpsert {
        id: id("Oslo").to_string(),
        labels: vec!["Entity".into()],
        properties: props(json!({"mentions": 50})),
    };
    let (_, written) = store.upsert_node(&t, counted).await.unwrap();
    assert_eq!(written, Written::Updated);
    store
        .replace_documents(&t, vec![doc("w3", &[&["Oslo"]])])
        .await
        .unwrap();
    assert_eq!(mentions_of(store, &t, "Oslo").await, 51);
}

/// A document whose write fails (here an entity's mention count that is not a number,
/// which the embedded executor refuses) leaves the graph as it was, and the next
/// document adds to that. (A Bolt server's Cypher adds a number to a string.)
pub(super) async fn a_failed_document_changes_nothing(store: &dyn GraphStore) {
    let t = tenant("gf");
    store
        .replace_documents(&t, vec![doc("f1", &[&["Oslo", "Bergen"]])])
        .await
        .unwrap();
    let odd = NodeUpsert {
        id: id("Troll").to_string(),
        labels: vec!["Entity".into()],
        properties: props(json!({"name": "Troll", "mentions": "many"})),
    };
    let (_, written) = store.upsert_node(&t, odd).await.unwrap();
    assert_eq!(written, Written::Created);
    let failed = store
        .replace_documents(&t, vec![doc("f2", &[&["Oslo", "Bergen", "Troll"]])])
        .await;
    assert!(failed.is_err(), "{failed:?}");
    assert_eq!(weight(store, &t, "Oslo", "Bergen").await, 1.0);
    store
        .replace_documents(&t, vec![doc("f3", &[&["Oslo", "Bergen"]])])
        .await
        .unwrap();
    assert_eq!(weight(store, &t, "Oslo", "Bergen").await, 2.0);
    assert_eq!(mentions_of(store, &t, "Oslo").await, 2);
    assert_eq!(mentions_of(store, &t, "Bergen").await, 2);
}
