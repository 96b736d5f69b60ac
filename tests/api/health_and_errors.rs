//! Probes, correlation ids, and the problem+json shape of every generic error.

use ragbrain::config::Millis;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{assert_problem, spawn_app};

#[tokio::test]
async fn liveness_and_readiness_answer_without_credentials() {
    let app = spawn_app().await;
    let live = app.get("/health/live").await;
    assert_eq!(live.status(), 200);
    let ready: Value = app.get("/health/ready").await.json().await.unwrap();
    assert_eq!(ready["status"], "ready");
    assert_eq!(
        ready["checks"],
        json!({"auth": "ok", "events": "ok", "graph": "ok", "search_cache": "ok", "vectors": "ok"})
    );
    let health: Value = app.get("/health").await.json().await.unwrap();
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn readiness_reports_503_when_a_backend_is_gone() {
    let app = spawn_app().await;
    std::fs::remove_dir_all(app.data_dir.path().join("vectors")).unwrap();
    let r = app.get("/health/ready").await;
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["checks"]["vectors"], "error: unavailable", "{body}");
    let text = body.to_string();
    let data_dir = app.data_dir.path().to_str().unwrap();
    assert!(!text.contains(data_dir), "no backend error text: {text}");
    assert_eq!(body["checks"]["graph"], "ok");
    let live = app.get("/health/live").await;
    assert_eq!(live.status(), 200);
}

#[tokio::test]
async fn correlation_ids_are_echoed_when_well_formed_and_generated_otherwise() {
    let app = spawn_app().await;
    let echoed = app
        .request(Method::GET, "/health/live")
        .header("X-Correlation-ID", "abc-123.x_y")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-correlation-id"], "abc-123.x_y");
    let replaced = app
        .request(Method::GET, "/health/live")
        .header("X-Correlation-ID", "bad id!")
        .send()
        .await
        .unwrap();
    let generated = replaced.headers()["x-correlation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_ne!(generated, "bad id!");
    assert!(uuid::Uuid::parse_str(&generated).is_ok());
    let problem = app
        .request(Method::GET, "/nowhere")
        .header("X-Correlation-ID", "trace-1")
        .send()
        .await
        .unwrap();
    let body = assert_problem(problem, 404).await;
    assert_eq!(body["correlation_id"], "trace-1");
}

#[tokio::test]
async fn generic_errors_are_problem_documents() {
    let app = spawn_app().await;
    let key = app.admin_key.clone();
    assert_problem(app.get("/no/such/route").await, 404).await;
    assert_problem(
        app.request(Method::PATCH, "/vectors/search")
            .header("X-API-Key", &key)
            .send()
            .await
            .unwrap(),
        405,
    )
    .await;
    let malformed = app
        .request(Method::POST, "/vectors/search")
        .header("X-API-Key", &key)
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_problem(malformed, 400).await;
    let no_type = app
        .request(Method::POST, "/vectors/search")
        .header("X-API-Key", &key)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_problem(no_type, 415).await;
    let gzipped = app
        .request(Method::POST, "/vectors/search")
        .header("X-API-Key", &key)
        .header("Content-Type", "application/json")
        .header("Content-Encoding", "gzip")
        .body(vec![0x1f, 0x8b, 0x08, 0x00])
        .send()
        .await
        .unwrap();
    let body = assert_problem(gzipped, 415).await;
    assert!(body["detail"].as_str().unwrap().contains("gzip"), "{body}");
    let wrong_shape = app
        .call(
            Method::POST,
            "/vectors/search",
            &key,
            Some(json!({"vector": "x"})),
        )
        .await;
    let body = assert_problem(wrong_shape, 422).await;
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("vector:"),
        "the path to the bad value: {detail}"
    );
    let huge = vec![0.5f32; 3_000_000];
    let too_big = app
        .call(
            Method::POST,
            "/vectors/search",
            &key,
            Some(json!({"vector": huge})),
        )
        .await;
    assert_problem(too_big, 413).await;
    let both = app
        .request(Method::GET, "/graphs/node/x")
        .header("X-API-Key", &key)
        .header("Authorization", "Bearer x")
        .send()
        .await
        .unwrap();
    assert_problem(both, 400).await;
    // Path segments and query strings that do not parse are problems too.
    for bad in [
        "/graphs/node/%FF",
        "/vectors/collections/%C3%28",
        "/audit?limit=-1",
        "/audit?since=yesterday",
        "/auth/api-keys?tenant=a&tenant=b",
    ] {
        let r = app
            .request(Method::GET, bad)
            .header("X-API-Key", &key)
            .send()
            .await
            .unwrap();
        assert_problem(r, 400).await;
    }
}

#[tokio::test]
async fn a_cypher_query_over_its_time_limit_gets_504() {
    let app =
        crate::helpers::spawn_app_with(|s| s.limits.query_timeout_ms = Millis::new(100)).await;
    let slow =
        json!({"query": "UNWIND range(1, 10000) AS x UNWIND range(1, 10000) AS y RETURN count(y)"});
    let r = app
        .call(Method::POST, "/graphs/query", &app.admin_key, Some(slow))
        .await;
    let body = assert_problem(r, 504).await;
    assert_eq!(body["detail"], "the request took too long");
}

#[tokio::test]
async fn a_request_over_the_server_deadline_gets_504() {
    let app = crate::helpers::spawn_app_with(|s| {
        s.server.request_timeout_ms = Millis::new(50);
        s.limits.query_timeout_ms = Millis::new(60_000);
    })
    .await;
    let slow =
        json!({"query": "UNWIND range(1, 10000) AS x UNWIND range(1, 10000) AS y RETURN count(y)"});
    let r = app
        .call(Method::POST, "/graphs/query", &app.admin_key, Some(slow))
        .await;
    assert_problem(r, 504).await;
}
