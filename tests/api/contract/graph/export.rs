//! The graph reads a migration copies with: nodes page by id with every label and
//! property, relationships leave the nodes of a page, and the counts and tenant list
//! agree.

use ragbrain::domain::graph::{Node, NodeUpsert, Relationship, RelationshipUpsert};
use ragbrain::store::GraphStore;
use serde_json::json;

use super::{node, rel};
use crate::contract::tenant;

pub async fn exports(store: &dyn GraphStore) {
    let t = tenant("gx");
    for (i, id) in ["e", "a", "d", "b", "c"].iter().enumerate() {
        let labels: &[&str] = if i % 2 == 0 {
            &["Person", "Author"]
        } else {
            &["Person"]
        };
        store
            .upsert_node(&t, node(id, labels, json!({"rank": i, "tags": ["x"]})))
            .await
            .unwrap();
    }
    for (from, to, kind) in [
        ("a", "b", "KNOWS"),
        ("a", "c", "CITES"),
        ("d", "a", "KNOWS"),
    ] {
        store
            .upsert_relationship(&t, rel(from, to, kind))
            .await
            .unwrap();
    }
    let size = store.size(&t).await.unwrap();
    assert_eq!((size.nodes, size.relationships), (5, 3));
    assert!(store.tenants().await.unwrap().contains(&t));

    // Pages of two, in id order, until one comes back empty.
    let (mut ids, mut after) = (Vec::new(), None);
    loop {
        let page = store.export_nodes(&t, after.clone(), 2).await.unwrap();
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        ids.extend(page.iter().map(|n| n.id.clone()));
        if let Some(e) = page.iter().find(|n| n.id == "e") {
            let mut labels = e.labels.clone();
            labels.sort();
            assert_eq!(labels, ["Author", "Person"]);
            assert_eq!(e.properties["rank"], json!(0));
            assert_eq!(e.properties["tags"], json!(["x"]));
        }
    }
    assert_eq!(ids, ["a", "b", "c", "d", "e"]);

    let mut rels = store
        .export_relationships(&t, vec!["a".into(), "b".into()])
        .await
        .unwrap();
    rels.sort_by(|x, y| x.to.cmp(&y.to));
    let ends = |r: &Relationship| (r.from.clone(), r.rel_type.clone(), r.to.clone());
    assert_eq!(
        rels.iter().map(ends).collect::<Vec<_>>(),
        [
            ("a".into(), "KNOWS".into(), "b".into()),
            ("a".into(), "CITES".into(), "c".into())
        ]
    );
    assert_eq!(rels[0].properties["since"], json!(2020));
    // Another tenant sees none of it.
    let other = tenant("gy");
    assert!(
        store
            .export_nodes(&other, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.size(&other).await.unwrap().nodes, 0);

    // What was read imports into another tenant as it was, and again changes nothing.
    let nodes: Vec<NodeUpsert> = store
        .export_nodes(&t, None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(NodeUpsert::from)
        .collect();
    let exported = store.export_relationships(&t, ids.clone()).await.unwrap();
    let rels: Vec<RelationshipUpsert> = exported
        .iter()
        .cloned()
        .map(RelationshipUpsert::from)
        .collect();
    for _ in 0..2 {
        store
            .import(&other, nodes.clone(), Vec::new())
            .await
            .unwrap();
        store
            .import(&other, Vec::new(), rels.clone())
            .await
            .unwrap();
        let size = store.size(&other).await.unwrap();
        assert_eq!((size.nodes, size.relationships), (5, 3));
    }
    let sorted = |mut n: Vec<Node>| {
        for node in &mut n {
            node.labels.sort();
        }
        n
    };
    assert_eq!(
        sorted(store.export_nodes(&other, None, 10).await.unwrap()),
        sorted(store.export_nodes(&t, None, 10).await.unwrap())
    );
    let by_ends = |mut r: Vec<Relationship>| {
        r.sort_by(|x, y| (&x.from, &x.to).cmp(&(&y.from, &y.to)));
        r
    };
    assert_eq!(
        by_ends(store.export_relationships(&other, ids).await.unwrap()),
        by_ends(exported)
    );
}
