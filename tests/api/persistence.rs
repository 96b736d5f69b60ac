//! Restarting on the same data directory keeps collections, points, nodes,
//! relationships and keys, and does not create a second bootstrap key.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::spawn_app;

#[tokio::test]
async fn a_restart_keeps_collections_points_nodes_relationships_and_keys() {
    let mut app = spawn_app().await;
    let key = app.key("acme", &["admin"]).await;
    app.create_collection(&key, "docs", 4).await;
    let points: Vec<Value> = (0..50u64)
        .map(|i| json!({"id": i, "vector": [1.0, i as f32, 0.5, 0.25], "payload": {"n": i}}))
        .collect();
    assert_eq!(
        app.call(
            Method::POST,
            "/vectors/upsert",
            &key,
            Some(json!({"collection": "docs", "points": points}))
        )
        .await
        .status(),
        200
    );
    assert_eq!(
        app.call(
            Method::POST,
            "/vectors/delete",
            &key,
            Some(json!({"collection": "docs", "ids": [0]}))
        )
        .await
        .status(),
        200
    );
    for id in ["a", "b"] {
        assert_eq!(
            app.call(
                Method::POST,
                "/graphs/node",
                &key,
                Some(json!({"id": id, "labels": ["P"], "properties": {"name": id}}))
            )
            .await
            .status(),
            201
        );
    }
    let rel = json!({"from": "a", "to": "b", "type": "KNOWS", "properties": {"since": 2020}});
    assert_eq!(
        app.call(Method::POST, "/graphs/relationship", &key, Some(rel))
            .await
            .status(),
        201
    );

    app.restart().await;

    let info: Value = app
        .json(Method::GET, "/vectors/collections/docs", &key, None)
        .await;
    assert_eq!(info["points_count"], 49);
    let hits: Value = app
        .json(
            Method::POST,
            "/vectors/search",
            &key,
            Some(json!({"collection": "docs", "vector": [1.0, 3.0, 0.5, 0.25], "limit": 1})),
        )
        .await;
    assert_eq!(hits["hits"][0]["payload"]["n"], 3);
    let n: Value = app
        .json(
            Method::POST,
            "/graphs/neighbors",
            &key,
            Some(json!({"id": "a"})),
        )
        .await;
    assert_eq!(n["neighbors"][0]["node"]["id"], "b");
    assert_eq!(n["neighbors"][0]["node"]["properties"]["name"], "b");
    let keys: Value = app
        .json(
            Method::GET,
            "/auth/api-keys?tenant=default",
            &app.admin_key,
            None,
        )
        .await;
    assert_eq!(
        keys["keys"].as_array().unwrap().len(),
        1,
        "no second bootstrap key"
    );
}

#[tokio::test]
async fn a_restart_after_background_indexing_keeps_search_working() {
    let mut app = spawn_app().await;
    let key = app.key("acme", &["write"]).await;
    app.create_collection(&key, "big", 8).await;
    for batch in 0..4u64 {
        let points: Vec<Value> = (0..500u64)
            .map(|i| {
                let id = batch * 500 + i;
                let v: Vec<f32> = (0..8)
                    .map(|d| ((id * 31 + d * 17) % 97) as f32 / 97.0)
                    .collect();
                json!({"id": id, "vector": v})
            })
            .collect();
        assert_eq!(
            app.call(
                Method::POST,
                "/vectors/upsert",
                &key,
                Some(json!({"collection": "big", "points": points}))
            )
            .await
            .status(),
            200
        );
    }
    // Let the background indexer run once the collection is idle.
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    app.restart().await;
    let info: Value = app
        .json(Method::GET, "/vectors/collections/big", &key, None)
        .await;
    assert_eq!(info["points_count"], 2000);
    let v: Vec<f32> = (0..8u64)
        .map(|d| ((1234 * 31 + d * 17) % 97) as f32 / 97.0)
        .collect();
    let hits: Value = app
        .json(
            Method::POST,
            "/vectors/search",
            &key,
            Some(json!({"collection": "big", "vector": v, "limit": 1})),
        )
        .await;
    assert!(hits["hits"][0]["score"].as_f64().unwrap() > 0.999);
}
