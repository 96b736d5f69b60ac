//! `GET /metrics`: the Prometheus families move with known traffic, routes are labelled
//! by their pattern, store gauges mirror the stores, and cache counters show what the
//! search cache keeps.

use reqwest::Method;
use serde_json::json;

use crate::helpers::spawn_app;

/// The value of the sample whose name and labels are exactly `series`, or 0.
pub(crate) fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

pub(crate) async fn scrape(app: &crate::helpers::TestApp) -> String {
    let r = app.get("/metrics").await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    r.text().await.unwrap()
}

#[tokio::test]
async fn request_metrics_count_known_traffic_by_route_pattern() {
    let app = spawn_app().await;
    let key = app.key("acme", &["write"]).await;
    app.create_collection(&key, "docs", 3).await;
    for name in ["a", "b", "c"] {
        let r = app
            .call(
                Method::GET,
                &format!("/vectors/collections/{name}"),
                &key,
                None,
            )
            .await;
        assert_eq!(r.status(), 404);
    }
    let r = app.get("/vectors/collections/docs").await;
    assert_eq!(r.status(), 401);
    app.get("/no/such/route").await;
    // Methods outside HTTP's own share one label, however many a client invents.
    for invented in ["BREW", "WHEN", "PROPFIND"] {
        let method = Method::from_bytes(invented.as_bytes()).unwrap();
        app.request(method, "/vectors/collections/docs")
            .send()
            .await
            .unwrap();
    }

    let text = scrape(&app).await;

    let route = r#"route="/vectors/collections/{name}""#;
    assert_eq!(
        sample(
            &text,
            &format!(r#"http_requests_total{{method="GET",{route},status="404"}}"#)
        ),
        3.0
    );
    assert_eq!(
        sample(
            &text,
            &format!(r#"http_requests_total{{method="PUT",{route},status="201"}}"#)
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            r#"http_requests_total{method="GET",route="unmatched",status="404"}"#
        ),
        1.0
    );
    assert!(!text.contains("/vectors/collections/a\""), "raw paths leak");
    assert!(
        !text.contains("BREW"),
        "invented methods get no label of their own"
    );
    let others: f64 = text
        .lines()
        .filter(|l| l.starts_with(r#"http_requests_total{method="OTHER""#))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(others, 3.0);
    assert_eq!(
        sample(
            &text,
            &format!(r#"http_request_duration_seconds_count{{method="GET",{route}}}"#)
        ),
        4.0
    );
    assert_eq!(
        sample(
            &text,
            r#"auth_failures_total{reason="missing_credentials"}"#
        ),
        1.0
    );
    // The scrape itself is in flight while it renders.
    assert_eq!(sample(&text, "http_requests_in_flight"), 1.0);
    assert!(text.contains(&format!(
        r#"build_info{{version="{}"}} 1"#,
        env!("CARGO_PKG_VERSION")
    )));
}

#[tokio::test]
async fn ingest_and_vector_gauges_follow_the_stores() {
    let app = spawn_app().await;
    let key = app.key("acme", &["write"]).await;
    for id in ["one", "two"] {
        let body = json!({"id": id, "text": "Marie Curie worked in Paris on radium."});
        app.json(Method::POST, "/ingest", &key, Some(body)).await;
    }
    app.wait_ingested(&key, &["one", "two"]).await;
    for _ in 0..2 {
        let body = json!({"text": "Who discovered radium?"});
        app.json(Method::POST, "/vectors/search", &key, Some(body))
            .await;
    }

    let text = scrape(&app).await;

    assert_eq!(
        sample(&text, r#"ingest_events_total{outcome="accepted"}"#),
        2.0
    );
    assert_eq!(
        sample(&text, r#"ingest_events_total{outcome="processed"}"#)
            + sample(&text, r#"ingest_events_total{outcome="superseded"}"#),
        2.0
    );
    assert_eq!(sample(&text, "ingest_pending"), 0.0);
    // Two identical documents and two identical queries: each embedded once.
    let embedding = |result: &str| {
        sample(
            &text,
            &format!(r#"cache_requests_total{{cache="embedding",result="{result}"}}"#),
        )
    };
    assert_eq!(embedding("hit"), 2.0);
    assert_eq!(embedding("miss"), 2.0);
    assert_eq!(
        sample(
            &text,
            r#"vectors_points{collection="documents",tenant="acme"}"#
        ),
        2.0
    );
}

/// A search result of over 1 MiB is not cached (a few of them would fill the cache for
/// the TTL); a small one is.
#[tokio::test]
async fn search_results_over_a_mebibyte_are_not_cached() {
    let app = spawn_app().await;
    let key = app.key("acme", &["write"]).await;
    app.create_collection(&key, "wide", 2).await;
    let blob = "x".repeat(60_000);
    let points: Vec<_> = (0..20)
        .map(|i| json!({"id": i, "vector": [1.0, i as f32], "payload": {"blob": blob}}))
        .collect();
    let body = json!({"collection": "wide", "points": points});
    app.json(Method::POST, "/vectors/upsert", &key, Some(body))
        .await;
    for limit in [20, 20, 1, 1] {
        let body = json!({"collection": "wide", "vector": [1.0, 0.0], "limit": limit});
        let found = app
            .json(Method::POST, "/vectors/search", &key, Some(body))
            .await;
        assert_eq!(found["hits"].as_array().unwrap().len(), limit);
    }
    let text = scrape(&app).await;
    let search = |result: &str| {
        sample(
            &text,
            &format!(r#"cache_requests_total{{cache="search",result="{result}"}}"#),
        )
    };
    assert_eq!((search("hit"), search("miss")), (1.0, 3.0));
}
