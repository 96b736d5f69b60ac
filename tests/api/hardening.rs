//! Browser-facing hardening through HTTP: security headers on every response, CORS only
//! for configured origins, gzip for clients that ask.

use reqwest::Method;

use crate::helpers::{spawn_app, spawn_app_with};

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = spawn_app().await;
    for path in ["/health/live", "/no/such/route", "/vectors/collections/x"] {
        let r = app.get(path).await;
        let h = r.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(h["cache-control"], "no-store", "{path}");
        assert!(
            h["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("default-src 'none'")
        );
        assert!(!h.contains_key("strict-transport-security"));
        assert!(!h.contains_key("access-control-allow-origin"));
    }
}

#[tokio::test]
async fn cors_answers_configured_origins_only() {
    let app = spawn_app_with(|s| {
        s.server.cors_allowed_origins = vec!["https://app.example".into()];
        s.server.hsts_max_age_secs = 31_536_000;
    })
    .await;
    let preflight = |origin: &'static str| {
        app.request(Method::OPTIONS, "/vectors/search")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "x-api-key,content-type")
            .send()
    };

    let allowed = preflight("https://app.example").await.unwrap();
    let other = preflight("https://evil.example").await.unwrap();

    assert!(allowed.status().is_success());
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let methods = allowed.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(methods.contains("POST"), "{methods}");
    assert!(!other.headers().contains_key("access-control-allow-origin"));
    let r = app
        .request(Method::GET, "/health/live")
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    let exposed = r.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(exposed.contains("x-correlation-id"), "{exposed}");
    assert_eq!(
        r.headers()["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );
}

#[tokio::test]
async fn large_responses_are_gzipped_for_clients_that_accept_it() {
    let app = spawn_app().await;
    let get = |encoding: &'static str| {
        app.request(Method::GET, "/metrics")
            .header("accept-encoding", encoding)
            .send()
    };

    let gzipped = get("gzip").await.unwrap();
    let plain = get("identity").await.unwrap();

    assert_eq!(gzipped.headers()["content-encoding"], "gzip");
    let bytes = gzipped.bytes().await.unwrap();
    assert_eq!(&bytes[..2], &[0x1f, 0x8b], "gzip magic");
    assert!(!plain.headers().contains_key("content-encoding"));
    assert!(plain.text().await.unwrap().contains("http_requests_total"));
}
