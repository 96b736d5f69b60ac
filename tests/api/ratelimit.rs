//! Rate limits through HTTP: per class and per caller, a problem body with
//! `Retry-After` and `RateLimit-*` headers on 429, credential checks limited per IP,
//! health and metrics never limited.

use std::num::NonZero;
use std::sync::OnceLock;

use ragbrain::config::Millis;
use ragbrain::config::{RateLimitBackend, Settings};
use ragbrain::domain::quota::Class;
use reqwest::Method;
use serde_json::json;

use crate::backends;
use crate::faults::OwnRedis;
use crate::helpers::{TestApp, assert_problem, spawn_app_with};

fn tight(s: &mut ragbrain::config::Settings) {
    let q = |n| {
        let n = std::num::NonZeroU32::new(n).unwrap();
        ragbrain::config::QuotaSettings {
            per_minute: n,
            burst: n,
        }
    };
    s.rate_limit.quotas.set(Class::Search, q(3));
    s.rate_limit.quotas.set(Class::Auth, q(2));
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

/// Behind a trusted proxy, the address is the last `X-Forwarded-For` entry, the one the
/// proxy wrote: addresses a client puts before it do not buy it a new quota.
#[tokio::test]
async fn made_up_forwarded_addresses_do_not_escape_the_auth_quota() {
    let app = spawn_app_with(|s| {
        tight(s);
        s.rate_limit.trust_forwarded_for = true;
    })
    .await;
    let mut statuses = Vec::new();
    for i in 0..3 {
        let forwarded = format!("198.51.100.{i}, 203.0.113.7");
        statuses.push(guess(&app, Some(&forwarded)).await);
    }
    assert_eq!(statuses, [401, 401, 429]);
    // Another client behind the same proxy has a quota of its own.
    assert_eq!(guess(&app, Some("203.0.113.8")).await, 401);
}

static SHARED_PREFIX: OnceLock<String> = OnceLock::new();
static OWN_REDIS: OnceLock<String> = OnceLock::new();

/// Tight limits kept in the suite's Redis under a prefix of this test's own.
fn shared(s: &mut Settings) {
    tight(s);
    s.redis.url = backends::redis_url().unwrap_or_default().into();
    s.redis.key_prefix = SHARED_PREFIX.get().cloned().unwrap_or_default();
    s.rate_limit.backend = RateLimitBackend::Redis;
}

/// One wrong key at `/auth/token`, through a proxy that sent `forwarded_for` when given;
/// the status.
async fn guess(app: &TestApp, forwarded_for: Option<&str>) -> u16 {
    let wrong = json!({"grant_type": "api_key", "api_key": "rbk_00_wrong"});
    let mut request = app.request(Method::POST, "/auth/token");
    if let Some(forwarded_for) = forwarded_for {
        request = request.header("X-Forwarded-For", forwarded_for);
    }
    request.json(&wrong).send().await.unwrap().status().as_u16()
}

/// Two replicas with `rate_limit.backend = "redis"` share one bucket per caller and
/// class: credential guessing spread over both is refused after the one quota (2), where
/// memory buckets would allow 2 per replica.
#[tokio::test]
async fn replicas_sharing_redis_enforce_one_quota() {
    if backends::redis_url().is_none() {
        return;
    }
    SHARED_PREFIX
        .set(format!("{}:", uuid::Uuid::new_v4().simple()))
        .unwrap();
    let a = spawn_app_with(shared).await;
    let b = spawn_app_with(shared).await;
    assert_eq!(guess(&a, None).await, 401);
    assert_eq!(guess(&b, None).await, 401);
    assert_eq!(guess(&a, None).await, 429);
    assert_eq!(guess(&b, None).await, 429);
    // A key's searches: 3, then 429 with the headers, from the shared bucket.
    let key = a.key("acme", &["write"]).await;
    a.create_collection(&key, "docs", 2).await;
    let search = json!({"collection": "docs", "vector": [1.0, 0.0]});
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let r = a
            .call(Method::POST, "/vectors/search", &key, Some(search.clone()))
            .await;
        assert_eq!(r.status(), 200);
        remaining.push(header(&r, "ratelimit-remaining"));
    }
    assert_eq!(remaining, [2, 1, 0]);
    let r = a
        .call(Method::POST, "/vectors/search", &key, Some(search))
        .await;
    assert!((1..=20).contains(&header(&r, "retry-after")));
    assert_eq!(header(&r, "ratelimit-reset"), 60);
    assert_problem(r, 429).await;
    let metrics = a.get("/metrics").await.text().await.unwrap();
    assert!(
        !metrics.contains("rate_limit_fallback_total{"),
        "no fallback while Redis is up"
    );
}

fn on_own_redis(s: &mut Settings) {
    tight(s);
    s.redis.url = OWN_REDIS.get().cloned().unwrap_or_default().into();
    s.rate_limit.backend = RateLimitBackend::Redis;
    s.resilience.timeout_ms = Millis::new(500);
    s.resilience.max_attempts = NonZero::new(1).unwrap();
}

/// When the shared store is down, each server limits alone (the quota still holds per
/// server: never fail open, never a 503 for every request) and counts each fallback.
#[tokio::test]
async fn a_redis_outage_falls_back_to_local_limits_and_counts_it() {
    if backends::redis_url().is_none() {
        return;
    }
    let mut redis = OwnRedis::start().await;
    OWN_REDIS.set(redis.url()).unwrap();
    let app = spawn_app_with(on_own_redis).await;
    let key = app.key("acme", &["write"]).await;
    app.create_collection(&key, "docs", 2).await;
    let search = json!({"collection": "docs", "vector": [1.0, 0.0]});
    redis.kill();
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let r = app
            .call(Method::POST, "/vectors/search", &key, Some(search.clone()))
            .await;
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429]);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    let fallbacks: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("rate_limit_fallback_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(fallbacks >= 4.0, "fallbacks counted: {fallbacks}");
}
