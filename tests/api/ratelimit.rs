//! Rate limits through HTTP: per class and per caller, a problem body with
//! `Retry-After` and `RateLimit-*` headers on 429, credential checks limited per IP,
//! health and metrics never limited.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{assert_problem, spawn_app_with};

fn tight(s: &mut ragbrain::config::Settings) {
    let q = |n| ragbrain::config::QuotaSettings {
        per_minute: n,
        burst: n,
    };
    s.rate_limit.search = q(3);
    s.rate_limit.auth = q(2);
}

fn header(r: &reqwest::Response, name: &str) -> u64 {
    r.headers()[name].to_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn the_fourth_search_in_a_minute_gets_429_with_rate_limit_headers() {
    let app = spawn_app_with(tight).await;
    let key = app.key("acme", &["write"]).await;
    let other = app.key("acme", &["read"]).await;
    app.create_collection(&key, "docs", 2).await;
    let search = json!({"collection": "docs", "vector": [1.0, 0.0]});

    for remaining in [2, 1, 0] {
        let r = app
            .call(Method::POST, "/vectors/search", &key, Some(search.clone()))
            .await;
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "ratelimit-limit"), 3);
        assert_eq!(header(&r, "ratelimit-remaining"), remaining);
    }
    let r = app
        .call(Method::POST, "/vectors/search", &key, Some(search.clone()))
        .await;

    let retry_after = header(&r, "retry-after");
    assert!((1..=20).contains(&retry_after), "{retry_after}");
    assert_eq!(header(&r, "ratelimit-limit"), 3);
    assert_eq!(header(&r, "ratelimit-remaining"), 0);
    assert_eq!(header(&r, "ratelimit-reset"), 60);
    let body = assert_problem(r, 429).await;
    assert_eq!(body["type"], "/problems/rate-limited");
    // Another principal, and another class for the same principal, are unaffected.
    let r = app
        .call(Method::POST, "/vectors/search", &other, Some(search))
        .await;
    assert_eq!(r.status(), 200);
    let r = app
        .call(Method::GET, "/vectors/collections/docs", &key, None)
        .await;
    assert_eq!(r.status(), 200);
    // Health and metrics are never limited, and the refusal was counted.
    for _ in 0..5 {
        let r = app.get("/health/live").await;
        assert_eq!(r.status(), 200);
    }
    let metrics = app.get("/metrics").await;
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains(r#"rate_limited_total{class="search"} 1"#),
        "{text}"
    );
}

#[tokio::test]
async fn credential_guessing_is_limited_per_client_ip() {
    let app = spawn_app_with(tight).await;
    let wrong = json!({"grant_type": "api_key", "api_key": "rbk_00_wrong"});

    for _ in 0..2 {
        let r = app
            .request(Method::POST, "/auth/token")
            .json(&wrong)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    let r = app
        .request(Method::POST, "/auth/token")
        .json(&wrong)
        .send()
        .await
        .unwrap();
    assert_problem(r, 429).await;
    // Bad keys on other routes spend the same per-IP quota.
    let r = app
        .call(
            Method::GET,
            "/vectors/collections/docs",
            "rbk_00_guess",
            None,
        )
        .await;
    assert_problem(r, 429).await;
    // A valid key is still served: limits key on the principal once it is known.
    let r = app
        .call(Method::GET, "/auth/api-keys", &app.admin_key, None)
        .await;
    assert_eq!(r.status(), 200);
}
