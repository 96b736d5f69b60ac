//! Per-tenant storage quotas through HTTP: a tenant's points (over all its collections)
//! and graph nodes plus relationships stop at `limits.max_points_per_tenant` and
//! `limits.max_graph_items_per_tenant` with a 409 problem, for the vector API, the graph
//! API and ingest alike; replacing what the tenant has still works at the quota, other
//! tenants are not held, and deletes make room again. Each refusal is counted in
//! `quota_refused_total`.

use std::ops::Range;

use reqwest::{Method, Response};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, spawn_app_with};
use crate::metrics::{sample, scrape};

async fn upsert(app: &TestApp, key: &str, collection: &str, ids: Range<u32>) -> Response {
    let points: Vec<Value> = ids
        .map(|i| json!({"id": i, "vector": [1, 0, 0, i]}))
        .collect();
    let body = json!({"collection": collection, "points": points});
    app.call(Method::POST, "/vectors/upsert", key, Some(body))
        .await
}

/// A 409 whose detail names `setting`.
async fn refused(r: Response, setting: &str) {
    let body = assert_problem(r, 409).await;
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains(setting), "{body}");
}

async fn ingest(app: &TestApp, key: &str) -> Response {
    let event = json!({"text": "Ada Lovelace met Charles Babbage."});
    app.call(Method::POST, "/ingest", key, Some(event)).await
}

#[tokio::test]
async fn points_stop_at_the_tenants_quota() {
    let app = spawn_app_with(|s| {
        s.limits.max_points_per_tenant = 10.try_into().unwrap();
    })
    .await;
    let key = app.key("acme", &["admin"]).await;
    let other = app.key("globex", &["write"]).await;
    for (key, name) in [(&key, "docs"), (&key, "more"), (&other, "docs")] {
        app.create_collection(key, name, 4).await;
    }
    const SETTING: &str = "limits.max_points_per_tenant";

    assert_eq!(upsert(&app, &key, "docs", 0..8).await.status(), 200);
    refused(upsert(&app, &key, "docs", 8..11).await, SETTING).await;
    assert_eq!(upsert(&app, &key, "docs", 8..10).await.status(), 200);
    assert_eq!(
        upsert(&app, &key, "docs", 0..5).await.status(),
        200,
        "points it has can be replaced at the quota"
    );
    refused(upsert(&app, &key, "docs", 5..12).await, SETTING).await;
    refused(upsert(&app, &key, "more", 0..1).await, SETTING).await;
    refused(ingest(&app, &key).await, SETTING).await;
    assert_eq!(
        upsert(&app, &other, "docs", 0..10).await.status(),
        200,
        "another tenant has its own quota"
    );

    let delete = json!({"collection": "docs", "ids": [0, 1, 2]});
    let r = app
        .call(Method::POST, "/vectors/delete", &key, Some(delete))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(upsert(&app, &key, "more", 0..3).await.status(), 200);
    refused(upsert(&app, &key, "more", 3..4).await, SETTING).await;

    let r = app
        .call(Method::DELETE, "/vectors/collections/more", &key, None)
        .await;
    assert_eq!(r.status(), 204);
    assert_eq!(ingest(&app, &key).await.status(), 202);

    let text = scrape(&app).await;
    let refused =
        |tenant: &str| format!(r#"quota_refused_total{{quota="points",tenant="{tenant}"}}"#);
    assert_eq!(sample(&text, &refused("acme")), 5.0, "{text}");
    assert_eq!(sample(&text, &refused("globex")), 0.0);
}

#[tokio::test]
async fn graph_items_stop_at_the_tenants_quota() {
    let app = spawn_app_with(|s| {
        s.limits.max_graph_items_per_tenant = 4.try_into().unwrap();
    })
    .await;
    let key = app.key("acme", &["write"]).await;
    let other = app.key("globex", &["write"]).await;
    const SETTING: &str = "limits.max_graph_items_per_tenant";
    let node = async |key: &str, id: &str| {
        let body = json!({"id": id, "labels": ["P"], "properties": {"n": 1}});
        app.call(Method::POST, "/graphs/node", key, Some(body))
            .await
    };
    let link = async |from: &str, to: &str| {
        let body = json!({"from": from, "to": to, "type": "KNOWS"});
        app.call(Method::POST, "/graphs/relationship", &key, Some(body))
            .await
    };

    for id in ["a", "b"] {
        assert_eq!(node(&key, id).await.status(), 201);
    }
    assert_eq!(link("a", "b").await.status(), 201);
    assert_eq!(node(&key, "c").await.status(), 201);
    refused(node(&key, "d").await, SETTING).await;
    refused(link("a", "c").await, SETTING).await;
    refused(ingest(&app, &key).await, SETTING).await;
    assert_eq!(
        node(&key, "a").await.status(),
        200,
        "a node it has can be replaced at the quota"
    );
    assert_eq!(
        link("a", "b").await.status(),
        200,
        "so can a relationship it has"
    );
    assert_eq!(node(&other, "d").await.status(), 201, "another tenant");

    let r = app.call(Method::DELETE, "/graphs/node/c", &key, None).await;
    assert_eq!(r.status(), 204);
    assert_eq!(link("b", "a").await.status(), 201);
    refused(node(&key, "c").await, SETTING).await;

    let text = scrape(&app).await;
    let series = r#"quota_refused_total{quota="graph_items",tenant="acme"}"#;
    assert_eq!(sample(&text, series), 4.0, "{text}");
}
