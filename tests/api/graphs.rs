//! `/graphs/*` through HTTP: node merge, find with paging, relationships, neighbours,
//! read-only Cypher, validation and deletion.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, spawn_app};

async fn node(
    app: &TestApp,
    key: &str,
    id: &str,
    labels: &[&str],
    props: Value,
) -> reqwest::Response {
    app.call(
        Method::POST,
        "/graphs/node",
        key,
        Some(json!({"id": id, "labels": labels, "properties": props})),
    )
    .await
}

async fn rel(app: &TestApp, key: &str, from: &str, to: &str, kind: &str) -> reqwest::Response {
    app.call(
        Method::POST,
        "/graphs/relationship",
        key,
        Some(json!({"from": from, "to": to, "type": kind, "properties": {"weight": 1.5}})),
    )
    .await
}

/// ann -KNOWS-> bob -KNOWS-> cat -WORKS_AT-> acme; dan is alone.
async fn social(app: &TestApp, key: &str) {
    for (id, label, name) in [
        ("ann", "Person", "Ann"),
        ("bob", "Person", "Bob"),
        ("cat", "Person", "Cat"),
        ("dan", "Person", "Dan"),
        ("acme", "Company", "Acme"),
    ] {
        assert_eq!(
            node(app, key, id, &[label], json!({"name": name}))
                .await
                .status(),
            201
        );
    }
    for (a, b, t) in [
        ("ann", "bob", "KNOWS"),
        ("bob", "cat", "KNOWS"),
        ("cat", "acme", "WORKS_AT"),
    ] {
        assert_eq!(rel(app, key, a, b, t).await.status(), 201);
    }
}

#[tokio::test]
async fn nodes_merge_on_id_and_keep_labels_and_properties() {
    let app = spawn_app().await;
    let key = app.key("acme", &["write"]).await;
    let created = node(
        &app,
        &key,
        "n1",
        &["Person"],
        json!({"name": "Ann", "age": 30, "tags": ["a", "b"]}),
    )
    .await;
    assert_eq!(created.status(), 201);
    let merged = node(&app, &key, "n1", &["Employee"], json!({"age": 31})).await;
    assert_eq!(merged.status(), 200);
    let got: Value = app.json(Method::GET, "/graphs/node/n1", &key, None).await;
    assert_eq!(got["id"], "n1");
    let mut labels: Vec<_> = got["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_owned())
        .collect();
    labels.sort();
    assert_eq!(labels, vec!["Employee", "Person"]);
    assert_eq!(
        got["properties"],
        json!({"name": "Ann", "age": 31, "tags": ["a", "b"]})
    );
}

#[tokio::test]
async fn find_filters_by_label_and_properties_and_pages() {
    let app = spawn_app().await;
    let key = app.key("acme", &["write"]).await;
    social(&app, &key).await;
    let page1: Value = app
        .json(
            Method::POST,
            "/graphs/node/find",
            &key,
            Some(json!({"label": "Person", "limit": 3})),
        )
        .await;
    let ids: Vec<_> = page1["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].clone())
        .collect();
    assert_eq!(ids, vec![json!("ann"), json!("bob"), json!("cat")]);
    assert_eq!(page1["next_offset"], 3);
    let page2: Value = app
        .json(
            Method::POST,
            "/graphs/node/find",
            &key,
            Some(json!({"label": "Person", "limit": 3, "offset": 3})),
        )
        .await;
    assert_eq!(page2["nodes"].as_array().unwrap().len(), 1);
    assert_eq!(page2["next_offset"], Value::Null);
    let by_prop: Value = app
        .json(
            Method::POST,
            "/graphs/node/find",
            &key,
            Some(json!({"label": "Person", "properties": {"name": "Bob"}})),
        )
        .await;
    assert_eq!(by_prop["nodes"][0]["id"], "bob");
    assert_eq!(by_prop["nodes"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn neighbors_expand_by_hops_direction_and_type() {
    let app = spawn_app().await;
    let key = app.key("acme", &["write"]).await;
    social(&app, &key).await;
    let ask = |body: Value| app.call(Method::POST, "/graphs/neighbors", &key, Some(body));
    let ids = |v: &Value| {
        v["neighbors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["node"]["id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };

    let one: Value = ask(json!({"id": "ann"})).await.json().await.unwrap();
    assert_eq!(ids(&one), vec!["bob"]);
    let three: Value = ask(json!({"id": "ann", "hops": 3, "direction": "out"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ids(&three), vec!["bob", "cat", "acme"]);
    assert_eq!(three["neighbors"][2]["depth"], 3);
    assert_eq!(
        three["neighbors"][2]["path"],
        json!(["KNOWS", "KNOWS", "WORKS_AT"])
    );
    let typed: Value = ask(json!({"id": "ann", "hops": 3, "types": ["KNOWS"]}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ids(&typed), vec!["bob", "cat"]);
    let incoming: Value = ask(json!({"id": "cat", "direction": "in"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ids(&incoming), vec!["bob"]);
    let limited: Value = ask(json!({"id": "ann", "hops": 3, "limit": 2}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ids(&limited).len(), 2);

    assert_problem(ask(json!({"id": "ann", "hops": 4})).await, 422).await;
    assert_problem(ask(json!({"id": "nobody"})).await, 404).await;
    assert_problem(ask(json!({"id": "ann", "types": ["BAD TYPE"]})).await, 422).await;
}

#[tokio::test]
async fn cypher_queries_run_read_only_with_params_and_row_limits() {
    let app = spawn_app().await;
    let key = app.key("acme", &["write"]).await;
    social(&app, &key).await;
    let q = |body: Value| app.call(Method::POST, "/graphs/query", &key, Some(body));

    let r: Value = q(json!({"query": "MATCH (p:Person)-[:KNOWS]->(f) WHERE p.name = $name RETURN f.name AS friend", "params": {"name": "Ann"}}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["columns"], json!(["friend"]));
    assert_eq!(r["rows"], json!([["Bob"]]));
    assert_eq!(r["truncated"], false);

    let limited: Value = q(json!({"query": "MATCH (n) RETURN n.id ORDER BY n.id", "limit": 2}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(limited["rows"].as_array().unwrap().len(), 2);
    assert_eq!(limited["truncated"], true);

    let nodes: Value = q(json!({"query": "MATCH (n {id: 'ann'}) RETURN n"}))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        nodes["rows"][0][0].get("tenant").is_none(),
        "tenant property is hidden"
    );

    for forbidden in [
        "CREATE (n:X)",
        "MATCH (n) DETACH DELETE n",
        "MATCH (n) SET n.x = 1 RETURN n",
        "CALL db.labels()",
    ] {
        assert_problem(q(json!({"query": forbidden})).await, 422).await;
    }
    assert_problem(q(json!({"query": "MATCH (n RETURN"})).await, 422).await;
    assert_problem(
        q(json!({"query": "RETURN 1", "params": {"tenant": "other"}})).await,
        422,
    )
    .await;
    // A parameter integer past signed 64 bits would reach the engine as a float.
    for params in [
        json!({"n": 18446744073709551615u64}),
        json!({"m": {"deep": [1, 9223372036854775808u64]}}),
    ] {
        let body =
            assert_problem(q(json!({"query": "RETURN 1", "params": params})).await, 422).await;
        assert!(
            body["detail"].as_str().unwrap().contains("signed 64 bits"),
            "{body}"
        );
    }
    let big: Value = q(json!({"query": "RETURN $n AS n", "params": {"n": i64::MAX}}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(big["rows"], json!([[i64::MAX]]));
    let still: Value = q(json!({"query": "MATCH (n) RETURN count(n)"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(still["rows"], json!([[5]]));

    // A list parameter projected bare would come back as "" from the embedded engine
    // and match nothing; it is refused with the form that works, which does.
    let ids = json!({"ids": ["ann", "bob"]});
    let bare = "WITH $ids AS ids MATCH (p:Person) WHERE p.id IN ids RETURN p.id ORDER BY p.id";
    let body = assert_problem(q(json!({"query": bare, "params": ids})).await, 422).await;
    assert!(
        body["detail"].as_str().unwrap().contains("coalesce($ids)"),
        "{body}"
    );
    let wrapped = bare.replace("WITH $ids", "WITH coalesce($ids)");
    let found: Value = q(json!({"query": wrapped, "params": ids}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(found["rows"], json!([["ann"], ["bob"]]));
}

#[tokio::test]
async fn deleting_a_node_removes_its_relationships() {
    let app = spawn_app().await;
    let key = app.key("acme", &["write"]).await;
    social(&app, &key).await;
    assert_eq!(
        app.call(Method::DELETE, "/graphs/node/bob", &key, None)
            .await
            .status(),
        204
    );
    assert_problem(
        app.call(Method::GET, "/graphs/node/bob", &key, None).await,
        404,
    )
    .await;
    assert_problem(
        app.call(Method::DELETE, "/graphs/node/bob", &key, None)
            .await,
        404,
    )
    .await;
    let n: Value = app
        .json(
            Method::POST,
            "/graphs/neighbors",
            &key,
            Some(json!({"id": "ann"})),
        )
        .await;
    assert_eq!(n["neighbors"], json!([]));
}

#[tokio::test]
async fn invalid_graph_writes_are_rejected() {
    let app = spawn_app().await;
    let key = app.key("acme", &["write"]).await;
    assert_problem(node(&app, &key, "x", &["Bad Label"], json!({})).await, 422).await;
    assert_problem(
        node(&app, &key, "x", &["Person`) DETACH DELETE (n"], json!({})).await,
        422,
    )
    .await;
    // An integer past signed 64 bits would be stored as a float, its low digits lost.
    let huge: Value = serde_json::from_str("18446744073709551615").unwrap();
    for props in [json!({"n": huge}), json!({"n": [1, huge]})] {
        assert_problem(node(&app, &key, "x", &["P"], props).await, 422).await;
    }
    let edge: Value = serde_json::from_str("9223372036854775807").unwrap();
    assert_eq!(
        node(&app, &key, "wide", &["P"], json!({"n": edge, "f": 0.5}))
            .await
            .status(),
        201
    );
    assert_problem(
        node(&app, &key, "x", &["P"], json!({"tenant": "evil"})).await,
        422,
    )
    .await;
    assert_problem(
        node(&app, &key, "x", &["P"], json!({"nested": {"a": 1}})).await,
        422,
    )
    .await;
    assert_problem(node(&app, &key, "", &["P"], json!({})).await, 422).await;
    // Ingest's nodes and relationships change only through /ingest.
    for (id, label) in [
        ("entity:paris", "P"),
        ("doc:d1", "P"),
        ("x", "Entity"),
        ("x", "Chunk"),
    ] {
        assert_problem(node(&app, &key, id, &[label], json!({})).await, 422).await;
    }
    let r = app
        .call(Method::DELETE, "/graphs/node/entity:paris", &key, None)
        .await;
    assert_problem(r, 422).await;
    assert_problem(rel(&app, &key, "x", "y", "KNOWS").await, 404).await;
    assert_eq!(node(&app, &key, "x", &["P"], json!({})).await.status(), 201);
    assert_problem(rel(&app, &key, "x", "x", "not-valid").await, 422).await;
    assert_problem(rel(&app, &key, "x", "x", "RELATED_TO").await, 422).await;
    let again = rel(&app, &key, "x", "x", "SELF").await;
    assert_eq!(again.status(), 201);
    assert_eq!(rel(&app, &key, "x", "x", "SELF").await.status(), 200);
}

#[tokio::test]
async fn node_ids_with_control_or_bidi_characters_get_422() {
    let app = spawn_app().await;
    let key = app.key("acme", &["write"]).await;
    for id in [
        "evil\u{202E}txt",
        "line\nbreak",
        "nul\u{0}",
        "iso\u{2066}late",
    ] {
        let r = app
            .call(Method::POST, "/graphs/node", &key, Some(json!({"id": id})))
            .await;
        assert_problem(r, 422).await;
    }
    for path in ["/graphs/node/evil%E2%80%AEtxt", "/graphs/node/a%0Ab"] {
        assert_problem(app.call(Method::GET, path, &key, None).await, 422).await;
        assert_problem(app.call(Method::DELETE, path, &key, None).await, 422).await;
    }
}

/// `name` is indexed by default (`graph.indexed_properties`), so these finds are index
/// lookups: the index must follow renames, deletes and restarts, and a lookup must
/// still keep to the label asked for and to the caller's tenant.
#[tokio::test]
async fn finds_on_an_indexed_property_follow_labels_tenants_renames_and_restarts() {
    let mut app = spawn_app().await;
    let acme = app.key("acme", &["write"]).await;
    let other = app.key("other", &["write"]).await;
    for (key, id, label) in [
        (&acme, "p1", "Person"),
        (&acme, "c1", "City"),
        (&other, "p2", "Person"),
    ] {
        let created = node(&app, key, id, &[label], json!({"name": "Ann", "n": 1})).await;
        assert_eq!(created.status(), 201);
    }
    async fn find(app: &TestApp, key: &str, label: &str, props: Value) -> Vec<String> {
        let found: Value = app
            .json(
                Method::POST,
                "/graphs/node/find",
                key,
                Some(json!({"label": label, "properties": props})),
            )
            .await;
        found["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["id"].as_str().unwrap().to_owned())
            .collect()
    }
    assert_eq!(
        find(&app, &acme, "Person", json!({"name": "Ann"})).await,
        ["p1"]
    );
    assert_eq!(
        find(&app, &acme, "City", json!({"name": "Ann"})).await,
        ["c1"]
    );
    assert_eq!(
        find(&app, &other, "Person", json!({"name": "Ann"})).await,
        ["p2"]
    );
    // An indexed and an unindexed condition together.
    let both = json!({"name": "Ann", "n": 1});
    assert_eq!(find(&app, &acme, "Person", both).await, ["p1"]);
    assert!(
        find(&app, &acme, "Person", json!({"name": "Ann", "n": 2}))
            .await
            .is_empty()
    );

    let renamed = node(&app, &acme, "p1", &["Person"], json!({"name": "Bea"})).await;
    assert!(renamed.status().is_success());
    let deleted = app
        .call(Method::DELETE, "/graphs/node/c1", &acme, None)
        .await;
    assert!(deleted.status().is_success());
    for round in ["before a restart", "after a restart"] {
        let ann = find(&app, &acme, "Person", json!({"name": "Ann"})).await;
        assert!(ann.is_empty(), "{round}: {ann:?}");
        let bea = find(&app, &acme, "Person", json!({"name": "Bea"})).await;
        assert_eq!(bea, ["p1"], "{round}");
        let city = find(&app, &acme, "City", json!({"name": "Ann"})).await;
        assert!(city.is_empty(), "{round}: {city:?}");
        let p2 = find(&app, &other, "Person", json!({"name": "Ann"})).await;
        assert_eq!(p2, ["p2"], "{round}");
        app.restart().await;
    }
}
