//! Browser-facing hardening: security headers on every response (a handler may set its
//! own, as `/docs` does for its content security policy), CORS for the configured
//! origins only, and HSTS when the deployment terminates TLS in front of the server.

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::config::ServerSettings;

/// Headers set when the response does not carry them already.
pub fn headers(settings: &ServerSettings) -> Vec<SetResponseHeaderLayer<HeaderValue>> {
    let mut pairs = vec![
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
        (header::X_FRAME_OPTIONS, "DENY".to_owned()),
        (header::REFERRER_POLICY, "no-referrer".to_owned()),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; frame-ancestors 'none'".to_owned(),
        ),
        // Responses hold tenant data; no shared cache may keep them.
        (header::CACHE_CONTROL, "no-store".to_owned()),
    ];
    if settings.hsts_max_age_secs > 0 {
        pairs.push((
            header::STRICT_TRANSPORT_SECURITY,
            format!("max-age={}; includeSubDomains", settings.hsts_max_age_secs),
        ));
    }
    pairs
        .into_iter()
        .filter_map(|(name, value)| {
            let value = HeaderValue::from_str(&value).ok()?;
            Some(SetResponseHeaderLayer::if_not_present(name, value))
        })
        .collect()
}

/// CORS for `server.cors_allowed_origins`: none (no CORS headers at all), `["*"]` (any
/// origin, without credentials), or an exact list of origins.
pub fn cors(settings: &ServerSettings) -> Option<CorsLayer> {
    let origins = &settings.cors_allowed_origins;
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok())
                .collect::<Vec<_>>(),
        )
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("x-api-key"),
                HeaderName::from_static("x-correlation-id"),
            ])
            .expose_headers([
                HeaderName::from_static("x-correlation-id"),
                HeaderName::from_static("ratelimit-limit"),
                HeaderName::from_static("ratelimit-remaining"),
                HeaderName::from_static("ratelimit-reset"),
                header::RETRY_AFTER,
            ])
            .max_age(Duration::from_secs(600)),
    )
}
