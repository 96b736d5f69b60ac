//! `/vectors/*` input that must be refused, through HTTP: wrong shapes and dimensions,
//! non-finite or overlong vectors, oversized payloads; and the longest vectors accepted
//! scoring finitely.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{assert_problem, spawn_app};
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
