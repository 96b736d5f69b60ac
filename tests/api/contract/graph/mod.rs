//! The GraphStore contract: embedded (grafeo) and a Bolt server (ArcadeDB here; Neo4j
//! in production).

use std::sync::Arc;
use std::time::Duration;

use ragbrain::config::Settings;
use ragbrain::domain::graph::{
    CypherQuery, Direction, FindNodes, NeighborQuery, NodeUpsert, RelationshipUpsert, Written,
};
use ragbrain::domain::ingest::{ChunkNode, DocumentExtent, DocumentGraph, EntityRef};
use ragbrain::store::client_cypher::QuerySlots;
use ragbrain::store::embedded::graph::{EmbeddedGraphOptions, EmbeddedGraphStore};
use ragbrain::store::neo4j::Neo4jGraphStore;
use ragbrain::store::{ErrorKind, GraphStore};
use serde_json::json;

use super::tenant;
use crate::backends;

fn props(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    v.as_object().cloned().unwrap_or_default()
}

fn node(id: &str, labels: &[&str], p: serde_json::Value) -> NodeUpsert {
    NodeUpsert {
        id: id.into(),
        labels: labels.iter().map(|l| l.to_string()).collect(),
        properties: props(p),
    }
}

fn rel(from: &str, to: &str, t: &str) -> RelationshipUpsert {
    RelationshipUpsert {
        from: from.into(),
        to: to.into(),
        rel_type: t.into(),
        properties: props(json!({"since": 2020})),
    }
}

fn entity(id: &str) -> EntityRef {
    EntityRef {
        id: format!("entity:{id}"),
        name: id.into(),
        mentions: 0,
    }
}

fn doc(id: &str, chunks: &[&[&str]]) -> DocumentGraph {
    DocumentGraph {
        doc_id: id.into(),
        collection: "documents".into(),
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

async fn nodes_and_relationships(store: &dyn GraphStore) {
    let (t, other) = (tenant("ga"), tenant("gb"));
    let (n, w) = store
        .upsert_node(
            &t,
            node(
                "alice",
                &["Person"],
                json!({"name": "Alice", "age": 30, "score": 2.5, "tags": ["a", "b"], "gone": null}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(w, Written::Created);
    assert_eq!(
        (n.id.as_str(), n.labels.as_slice()),
        ("alice", &["Person".to_owned()][..])
    );
    // As stored: a null is no property; id and tenant are not properties.
    let stored = props(json!({"name": "Alice", "age": 30, "score": 2.5, "tags": ["a", "b"]}));
    assert_eq!(n.properties, stored);
    assert_eq!(
        store.get_node(&t, "alice").await.unwrap().properties,
        stored
    );
    let (n, w) = store
        .upsert_node(&t, node("alice", &["Employee"], json!({"age": 31})))
        .await
        .unwrap();
    assert_eq!(w, Written::Updated);
    let mut labels = n.labels.clone();
    labels.sort();
    assert_eq!(labels, ["Employee", "Person"]);
    assert_eq!(n.properties["name"], "Alice");
    assert_eq!(n.properties["age"], 31);
    assert!(
        !n.properties.contains_key("tenant"),
        "tenant is never shown"
    );
    store
        .upsert_node(&t, node("bob", &["Person"], json!({"name": "Bob"})))
        .await
        .unwrap();
    store
        .upsert_node(&t, node("carol", &["Person"], json!({"name": "Carol"})))
        .await
        .unwrap();

    // The same id in another tenant is another node.
    let e = store.get_node(&other, "alice").await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound);

    let found = store
        .find_nodes(
            &t,
            FindNodes {
                label: "Person".into(),
                equals: props(json!({"name": "Bob"})),
                limit: 10,
                offset: 0,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        found.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(),
        ["bob"]
    );
    let page = |offset| FindNodes {
        label: "Person".into(),
        equals: Default::default(),
        limit: 2,
        offset,
    };
    let first: Vec<_> = store
        .find_nodes(&t, page(0))
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.id)
        .collect();
    let second: Vec<_> = store
        .find_nodes(&t, page(2))
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.id)
        .collect();
    assert_eq!(
        (first.as_slice(), second.as_slice()),
        (
            &["alice".to_owned(), "bob".into()][..],
            &["carol".to_owned()][..]
        )
    );

    assert_eq!(
        store
            .upsert_relationship(&t, rel("alice", "bob", "KNOWS"))
            .await
            .unwrap(),
        Written::Created
    );
    assert_eq!(
        store
            .upsert_relationship(&t, rel("alice", "bob", "KNOWS"))
            .await
            .unwrap(),
        Written::Updated
    );
    store
        .upsert_relationship(&t, rel("bob", "carol", "KNOWS"))
        .await
        .unwrap();
    let e = store
        .upsert_relationship(&t, rel("alice", "nobody", "KNOWS"))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound);

    let near = store
        .neighbors(
            &t,
            NeighborQuery {
                id: "alice".into(),
                hops: 2,
                direction: Direction::Out,
                types: vec!["KNOWS".into()],
                limit: 10,
            },
        )
        .await
        .unwrap();
    let seen: Vec<_> = near
        .iter()
        .map(|n| (n.node.id.as_str(), n.depth, n.path.len()))
        .collect();
    assert_eq!(seen, [("bob", 1, 1), ("carol", 2, 2)]);

    let result = store
        .query(
            &t,
            cypher("MATCH (n:Person) WHERE n.tenant = $tenant AND n.name = $name RETURN n.name AS name", props(json!({"name": "Carol"})), 10),
        )
        .await
        .unwrap();
    assert_eq!(result.columns, ["name"]);
    assert_eq!(result.rows, [[json!("Carol")]]);
    let limited = store
        .query(
            &t,
            cypher(
                "MATCH (n:Person) WHERE n.tenant = $tenant RETURN n.name AS name",
                Default::default(),
                2,
            ),
        )
        .await
        .unwrap();
    assert_eq!((limited.rows.len(), limited.truncated), (2, true));
    let e = store
        .query(
            &t,
            cypher("MATCH (n) DETACH DELETE n", Default::default(), 10),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Invalid);
    for refused in [
        "WITH 1 AS `x\\` LOAD CSV FROM '/etc/hostname' AS row RETURN row //`",
        "CALL db.labels()",
        "UNWIND range(1, 100000000) AS x RETURN count(x)",
    ] {
        let e = store
            .query(&t, cypher(refused, Default::default(), 10))
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Invalid, "{refused}");
    }

    store.delete_node(&t, "bob").await.unwrap();
    assert_eq!(
        store.delete_node(&t, "bob").await.unwrap_err().kind,
        ErrorKind::NotFound
    );
    let near = store
        .neighbors(
            &t,
            NeighborQuery {
                id: "alice".into(),
                hops: 3,
                direction: Direction::Both,
                types: vec![],
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert!(near.is_empty(), "detach delete removed bob's relationships");
}

async fn documents(store: &dyn GraphStore) {
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
        .entities(&t, vec!["entity:Paris".into(), "entity:Rome".into()])
        .await
        .unwrap();
    // Three chunks mention Paris; the count is kept at ingest and read back.
    let paris = EntityRef {
        mentions: 3,
        ..entity("Paris")
    };
    assert_eq!(known, [paris]);
    let mut related = store
        .related_entities(&t, vec!["entity:Paris".into()], 10)
        .await
        .unwrap();
    related.sort_by(|a, b| a.entity.id.cmp(&b.entity.id));
    let weights: Vec<_> = related
        .iter()
        .map(|r| (r.entity.name.as_str(), r.weight))
        .collect();
    assert_eq!(weights, [("France", 1.0), ("Seine", 1.0)]);
    let mut mentions = store
        .entity_mentions(&t, vec!["entity:Paris".into()], 10)
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
            .entities(&t, vec!["entity:Seine".into()])
            .await
            .unwrap()
            .is_empty()
    );
    let related = store
        .related_entities(&t, vec!["entity:Paris".into()], 10)
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
        .document_extents(&t, vec!["d1".into(), "d2".into(), "d9".into()])
        .await
        .unwrap();
    extents.sort_by(|a, b| a.doc_id.cmp(&b.doc_id));
    let extent = |doc_id: &str, chunks| DocumentExtent {
        doc_id: doc_id.into(),
        collection: "documents".into(),
        chunks,
    };
    assert_eq!(extents, [extent("d1", 2), extent("d2", 1)]);

    assert!(store.remove_document(&t, "d1").await.unwrap());
    assert!(!store.remove_document(&t, "d1").await.unwrap());
    let left = store.document_extents(&t, vec!["d1".into()]).await.unwrap();
    assert!(left.is_empty(), "a removed document has no extent");
    assert!(
        store
            .entities(&t, vec!["entity:France".into()])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .entities(&t, vec!["entity:Paris".into()])
            .await
            .unwrap()
            .len(),
        1
    );

    // Weights add up across documents and follow each document's changes; an edge
    // that falls to 0 goes while both its entities stay.
    let weights = async |store: &dyn GraphStore| -> Vec<(String, f64)> {
        let related = store
            .related_entities(&t, vec!["entity:Paris".into()], 10)
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
        .entities(&t, vec!["entity:France".into(), "entity:Paris".into()])
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
        let related = store
            .related_entities(&t, vec![format!("entity:{of}")], 20)
            .await
            .unwrap();
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
        let found = store
            .entities(&t, vec![format!("entity:{of}")])
            .await
            .unwrap();
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
    store.ping().await.unwrap();
}

#[tokio::test]
async fn embedded_graph_store_meets_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let options = EmbeddedGraphOptions {
        query_timeout: Duration::from_secs(5),
        max_concurrent_queries: 2,
        max_concurrent_queries_per_tenant: 1,
        query_memory_bytes: 256 << 20,
        wal_limit_bytes: 1 << 30,
        indexed_properties: vec!["name".into()],
    };
    let store = Arc::new(EmbeddedGraphStore::open(dir.path(), options).await.unwrap());
    nodes_and_relationships(store.as_ref()).await;
    documents(store.as_ref()).await;
    store.close().await.unwrap();
}

#[tokio::test]
async fn bolt_graph_store_meets_the_contract() {
    let Some(bolt) = backends::bolt() else {
        return;
    };
    let mut settings = Settings::load(None).unwrap();
    settings.graph.neo4j_uri = bolt.uri;
    settings.graph.neo4j_user = bolt.user;
    settings.graph.neo4j_password = bolt.password.into();
    settings.graph.neo4j_client_cypher = true;
    let store = Neo4jGraphStore::connect(
        &settings.graph,
        backends::guard("neo4j"),
        Duration::from_secs(10),
        Duration::from_secs(5),
        QuerySlots::new(2, 1),
    )
    .await
    .unwrap();
    nodes_and_relationships(&store).await;
    documents(&store).await;
}

fn cypher(
    query: &str,
    params: ragbrain::domain::graph::Properties,
    max_rows: usize,
) -> CypherQuery {
    CypherQuery {
        query: query.into(),
        params,
        max_rows,
        max_list: 10_000,
        max_hops: 3,
        max_result_bytes: 1 << 20,
    }
}
