//! `/vectors/*` input that must be refused, through HTTP: wrong shapes and dimensions,
//! non-finite or overlong vectors, oversized payloads, collections past the tenant's
//! bound and payload indexes past a collection's; and the longest vectors accepted
//! scoring finitely.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{assert_problem, spawn_app, spawn_app_with};
use crate::vectors::{search, seeded};

#[tokio::test]
async fn invalid_vector_requests_are_rejected_with_problem_bodies() {
    let (app, key) = seeded().await;
    let cases = [
        (
            json!({"collection": "docs", "points": [{"id": 1, "vector": [1.0, 2.0]}]}),
            422,
        ),
        (json!({"collection": "docs", "points": []}), 422),
        (
            json!({"collection": "docs", "points": [{"id": "not-a-uuid", "vector": [1, 2, 3, 4]}]}),
            422,
        ),
        (
            json!({"collection": "docs", "points": [{"id": 1, "vector": [1, 2, 3, 4], "payload": {"tenant": "evil"}}]}),
            422,
        ),
        (
            json!({"collection": "nope", "points": [{"id": 1, "vector": [1, 2, 3, 4]}]}),
            404,
        ),
        (
            json!({"collection": "../x", "points": [{"id": 1, "vector": [1, 2, 3, 4]}]}),
            422,
        ),
        (
            json!({"collection": "docs", "points": [{"id": 1, "vector": [1, 2, 3, 4]}], "extra": 1}),
            422,
        ),
        (
            json!({"collection": "docs", "points": [{"id": 1, "vector": [1e39, 0, 0, 0]}]}),
            422,
        ),
        (
            json!({"collection": "docs", "points": [{"id": 1, "vector": [3e38, 3e38, 3e38, 3e38]}]}),
            422,
        ),
    ];
    for (body, status) in cases {
        let r = app
            .call(Method::POST, "/vectors/upsert", &key, Some(body.clone()))
            .await;
        assert_problem(r, status).await;
    }
    // Ids and names appear in details as the client sent them.
    let r = app
        .call(
            Method::POST,
            "/vectors/upsert",
            &key,
            Some(json!({"collection": "docs", "points": [{"id": 7, "vector": [1.0]}]})),
        )
        .await;
    let body = assert_problem(r, 422).await;
    assert_eq!(
        body["detail"], "point 7 has 1 dimensions; the collection has 4",
        "{body}"
    );
    let search_cases = [
        (json!({"collection": "docs", "vector": [1, 0, 0]}), 422),
        (
            json!({"collection": "docs", "vector": [1, 0, 0, 0], "limit": 0}),
            422,
        ),
        (
            json!({"collection": "docs", "vector": [1, 0, 0, 0], "limit": 100000}),
            422,
        ),
        (
            json!({"collection": "docs", "vector": [1, 0, 0, 0], "filter": {"must": [{"key": "tenant", "match": {"value": "x"}}]}}),
            422,
        ),
        (
            json!({"collection": "docs", "vector": [1, 0, 0, 0], "filter": {"must": [{"key": "a"}]}}),
            422,
        ),
        (
            json!({"collection": "docs", "vector": [1e19, 0, 0, 0]}),
            422,
        ),
    ];
    for (body, status) in search_cases {
        let r = app
            .call(Method::POST, "/vectors/search", &key, Some(body.clone()))
            .await;
        assert_problem(r, status).await;
    }
    let both = app
        .call(
            Method::POST,
            "/vectors/delete",
            &key,
            Some(json!({"collection": "docs"})),
        )
        .await;
    assert_problem(both, 422).await;
    let huge_dim = app
        .call(
            Method::PUT,
            "/vectors/collections/big",
            &key,
            Some(json!({"dim": 100000})),
        )
        .await;
    assert_problem(huge_dim, 422).await;
}

/// The longest vectors accepted score finitely under every distance: the length bound
/// keeps the engines' `f32` arithmetic from overflowing to `inf`, which JSON sends as
/// `null`.
#[tokio::test]
async fn the_longest_vectors_accepted_get_finite_scores_under_every_distance() {
    let app = spawn_app().await;
    let key = app.key("acme", &["write"]).await;
    let long = 4.6e18; // a length of 9.2e18 over 4 dimensions, just under the bound
    for distance in ["cosine", "dot", "euclid"] {
        let r = app
            .call(
                Method::PUT,
                &format!("/vectors/collections/{distance}"),
                &key,
                Some(json!({"dim": 4, "distance": distance})),
            )
            .await;
        assert_eq!(r.status(), 201);
        let points = json!([
            {"id": 1, "vector": [long, long, long, long]},
            {"id": 2, "vector": [-long, -long, -long, -long]},
        ]);
        let r = app
            .call(
                Method::POST,
                "/vectors/upsert",
                &key,
                Some(json!({"collection": distance, "points": points})),
            )
            .await;
        assert_eq!(r.status(), 200, "{distance}");
        for query in [long, -long] {
            let vector = json!([query, query, query, query]);
            let hits = search(
                &app,
                &key,
                json!({"collection": distance, "vector": vector, "limit": 2}),
            )
            .await;
            assert_eq!(hits.len(), 2, "{distance}");
            for hit in &hits {
                let score = hit["score"].as_f64();
                assert!(score.is_some_and(f64::is_finite), "{distance}: {hit}");
            }
        }
    }
}

#[tokio::test]
async fn oversized_payloads_and_properties_are_rejected() {
    let app = spawn_app().await;
    let key = app.key("acme", &["write"]).await;
    app.create_collection(&key, "docs", 4).await;
    let big = "x".repeat(70_000);
    let points = json!({"collection": "docs", "points": [{"id": 1, "vector": [1, 0, 0, 0], "payload": {"text": big}}]});
    assert_problem(
        app.call(Method::POST, "/vectors/upsert", &key, Some(points))
            .await,
        422,
    )
    .await;
    let node = json!({"id": "n", "properties": {"text": big}});
    assert_problem(
        app.call(Method::POST, "/graphs/node", &key, Some(node))
            .await,
        422,
    )
    .await;
    let query = json!({"query": "RETURN $text", "params": {"text": big}});
    assert_problem(
        app.call(Method::POST, "/graphs/query", &key, Some(query))
            .await,
        422,
    )
    .await;
}

/// A tenant has at most `limits.max_collections` collections, whether created directly
/// or by ingest naming a new one; other tenants and existing collections are not held.
/// A collection has at most `limits.max_payload_indexes` payload indexes.
#[tokio::test]
async fn collections_and_payload_indexes_stop_at_their_bounds() {
    let app = spawn_app_with(|s| {
        s.limits.max_collections = 2.try_into().unwrap();
        s.limits.max_payload_indexes = 2.try_into().unwrap();
    })
    .await;
    let key = app.key("acme", &["admin"]).await;
    let other = app.key("globex", &["write"]).await;
    let put = async |key: &str, name: &str| {
        let path = format!("/vectors/collections/{name}");
        let body = Some(json!({"dim": 4}));
        app.call(Method::PUT, &path, key, body).await
    };
    assert_eq!(put(&key, "one").await.status(), 201);
    assert_eq!(put(&key, "two").await.status(), 201);
    let body = assert_problem(put(&key, "three").await, 409).await;
    assert!(
        body["detail"].as_str().unwrap().contains("max_collections"),
        "{body}"
    );
    assert_eq!(
        put(&key, "two").await.status(),
        200,
        "an existing one answers as before"
    );
    assert_eq!(
        put(&other, "three").await.status(),
        201,
        "another tenant has its own"
    );

    let event = json!({"text": "Ada Lovelace met Charles Babbage.", "collection": "fresh"});
    let r = app
        .call(Method::POST, "/ingest", &key, Some(event.clone()))
        .await;
    assert_problem(r, 409).await;

    let r = app
        .call(Method::DELETE, "/vectors/collections/one", &key, None)
        .await;
    assert_eq!(r.status(), 204);
    let r = app.call(Method::POST, "/ingest", &key, Some(event)).await;
    assert_eq!(r.status(), 202);

    let index = async |field: &str, kind: &str| {
        let body = Some(json!({"field": field, "type": kind}));
        app.call(Method::PUT, "/vectors/collections/two/index", &key, body)
            .await
    };
    assert_eq!(index("a", "keyword").await.status(), 200);
    assert_eq!(index("b", "keyword").await.status(), 200);
    let body = assert_problem(index("c", "keyword").await, 409).await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("max_payload_indexes"),
        "{body}"
    );
    assert_eq!(
        index("b", "integer").await.status(),
        200,
        "a retype is no new index"
    );
}
