//! Restarting on the same data directory keeps collections, points, nodes,
//! relationships and keys, and does not create a second bootstrap key.

use reqwest::Method;
use serde_json::{Value, json};

use std::process::Stdio;

use crate::helpers::{free_port, get_json, scattered_vector, spawn_app, spawn_binary, wait_for};

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
    // Scattered directions, one per point. (An earlier `(id * 31 + d * 17) % 97` gave
    // only 97 distinct vectors, all close to one another, and the compressed index
    // could rank 0.998 neighbours above every exact copy: the test failed about once in
    // fifteen runs on a busy machine.)
    let vector = |id: u64| scattered_vector(id as usize, 8);
    for batch in 0..4u64 {
        let points: Vec<Value> = (0..500u64)
            .map(|i| {
                let id = batch * 500 + i;
                json!({"id": id, "vector": vector(id)})
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
    let hits: Value = app
        .json(
            Method::POST,
            "/vectors/search",
            &key,
            Some(json!({"collection": "big", "vector": vector(1234), "limit": 1})),
        )
        .await;
    assert_eq!(
        hits["hits"][0]["id"], 1234,
        "no exact match after the restart: {hits}"
    );
}

#[tokio::test]
async fn acknowledged_writes_survive_a_kill_dash_nine() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = spawn_binary(port, dir.path(), Stdio::null());
    assert!(wait_for(port, "/health/live", "").await.is_some());
    let key = std::fs::read_to_string(dir.path().join("bootstrap-admin.key"))
        .unwrap()
        .trim()
        .to_owned();
    let client = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        client
            .post(format!("http://127.0.0.1:{port}{path}"))
            .header("X-API-Key", &key)
            .json(&body)
            .send()
    };
    let points: Vec<Value> = (0..20u64)
        .map(|i| json!({"id": i, "vector": [1.0, i as f32, 0.0, 1.0]}))
        .collect();
    let put = client
        .put(format!("http://127.0.0.1:{port}/vectors/collections/crash"))
        .header("X-API-Key", &key)
        .json(&json!({"dim": 4}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);
    assert_eq!(
        post(
            "/vectors/upsert",
            json!({"collection": "crash", "points": points})
        )
        .await
        .unwrap()
        .status(),
        200
    );
    assert_eq!(
        post("/graphs/node", json!({"id": "kept", "labels": ["P"]}))
            .await
            .unwrap()
            .status(),
        201
    );
    let created: Value = post("/auth/api-keys", json!({"name": "k", "scopes": ["read"]}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    server.kill().unwrap(); // SIGKILL: no shutdown hook runs
    server.wait().unwrap();

    let mut server = spawn_binary(port, dir.path(), Stdio::null());
    let reader = created["key"].as_str().unwrap();
    assert_eq!(
        wait_for(port, "/graphs/node/kept", reader).await,
        Some(reqwest::StatusCode::OK)
    );
    let info = get_json(&client, port, "/vectors/collections/crash", &key).await;
    assert_eq!(info["points_count"], 20);
    server.kill().unwrap();
    server.wait().unwrap();
}
