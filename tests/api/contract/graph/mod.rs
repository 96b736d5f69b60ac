//! The GraphStore contract: embedded (grafeo) and a Bolt server (ArcadeDB here; Neo4j
//! in production).

use std::sync::Arc;
use std::time::Duration;

use ragbrain::config::Neo4jSettings;
use ragbrain::domain::graph::{
    CypherQuery, Direction, FindNodes, NeighborQuery, NodeUpsert, RelationshipUpsert, Written,
};
use ragbrain::store::client_cypher::QuerySlots;
use ragbrain::store::embedded::graph::{EmbeddedGraphOptions, EmbeddedGraphStore};
use ragbrain::store::embedded::space::Space;
use ragbrain::store::neo4j::Neo4jGraphStore;
use ragbrain::store::{ErrorKind, GraphStore};
use serde_json::json;

use super::tenant;
use crate::backends;

mod documents;
mod export;

use documents::{a_failed_document_changes_nothing, documents};
use export::exports;

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
    let has = async |from: &str, to: &str, rel_type: &str| {
        let there = store.has_relationship(&t, from, to, rel_type);
        there.await.unwrap()
    };
    assert!(has("alice", "bob", "KNOWS").await);
    assert!(
        !has("bob", "alice", "KNOWS").await,
        "relationships have a direction"
    );
    assert!(!has("alice", "bob", "LIKES").await);
    assert!(!has("alice", "nobody", "KNOWS").await);
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
        space: Space::new(dir.path(), 0),
    };
    let store = Arc::new(EmbeddedGraphStore::open(dir.path(), options).await.unwrap());
    nodes_and_relationships(store.as_ref()).await;
    documents(store.as_ref()).await;
    a_failed_document_changes_nothing(store.as_ref()).await;
    exports(store.as_ref()).await;
    store.close().await.unwrap();
}

#[tokio::test]
async fn bolt_graph_store_meets_the_contract() {
    let Some(bolt) = backends::bolt() else {
        return;
    };
    let settings = Neo4jSettings {
        client_cypher: true,
        ..backends::neo4j(bolt)
    };
    let store = Neo4jGraphStore::connect(
        &settings,
        backends::guard("neo4j"),
        Duration::from_secs(10),
        Duration::from_secs(5),
        QuerySlots::new(2, 1),
    )
    .await
    .unwrap();
    nodes_and_relationships(&store).await;
    documents(&store).await;
    exports(&store).await;
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
