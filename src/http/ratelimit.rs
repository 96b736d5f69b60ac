//! Rate limiting at the HTTP edge: which class a route belongs to, who the caller is
//! (principal, else client IP), enforcement for the principal extractors and for
//! credential checks, and the `RateLimit-*` / `Retry-After` headers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::OnceLock;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::Method;
use axum::http::request::Parts;

use crate::domain::quota::Class;
use crate::http::error::ApiError;
use crate::http::state::AppState;

/// The extension that declares an operation's rate-limit class in its
/// `#[utoipa::path]` annotation, beside its path and scopes; clients read it in the
/// OpenAPI document too.
pub const CLASS_EXTENSION: &str = "x-rate-limit-class";

/// Every operation's declared class, by route template and method. Keyed by route
/// first so a request's lookup borrows its matched route instead of building a key.
#[derive(Debug, Default)]
pub struct RouteClasses(HashMap<String, Vec<(Method, Class)>>);

impl RouteClasses {
    pub fn insert(&mut self, method: Method, route: String, class: Class) {
        self.0.entry(route).or_default().push((method, class));
    }

    pub fn get(&self, method: &Method, route: &str) -> Option<Class> {
        let methods = self.0.get(route)?;
        methods.iter().find(|(m, _)| m == method).map(|(_, c)| *c)
    }
}

/// Set by [`crate::http::router`] from the OpenAPI document it builds the routes from.
static CLASSES: OnceLock<RouteClasses> = OnceLock::new();

/// Records the declared classes (the first router built sets them; every router is
/// built from the same annotations).
pub fn declare(classes: RouteClasses) {
    let _ = CLASSES.set(classes);
}

/// The class of a matched route, as its annotation declares; unmatched routes (404s)
/// count as reads.
pub fn classify(method: &Method, route: &str) -> Class {
    CLASSES
        .get()
        .and_then(|c| c.get(method, route))
        .unwrap_or(Class::Read)
}

/// The caller's address: the socket peer, or the last `X-Forwarded-For` entry when the
/// deployment says a trusted proxy sets it.
pub fn client_ip(parts: &Parts, trust_forwarded_for: bool) -> String {
    address_of(
        parts.headers.get("x-forwarded-for"),
        parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0),
        trust_forwarded_for,
    )
}

/// The caller's address from its `X-Forwarded-For` header (when trusted) and its peer.
/// The last entry is the one the proxy in front of us wrote: a proxy that appends (as
/// nginx and most load balancers do) keeps what the client sent to the left of it, so
/// the first entry is the client's to choose.
pub fn address_of(
    forwarded_for: Option<&axum::http::HeaderValue>,
    peer: Option<SocketAddr>,
    trust_forwarded_for: bool,
) -> String {
    let forwarded = trust_forwarded_for
        .then(|| forwarded_for?.to_str().ok())
        .flatten()
        .and_then(|v| v.rsplit(',').next())
        .map(str::trim)
        .filter(|v| !v.is_empty());
    match (forwarded, peer) {
        (Some(ip), _) => ip.to_owned(),
        (None, Some(peer)) => peer.ip().to_string(),
        (None, None) => "unknown".to_owned(),
    }
}

fn route_class(parts: &Parts) -> Class {
    classify(&parts.method, crate::http::matched_route(&parts.extensions))
}

/// Takes one request from `key`'s quota in `class`; 429 when it is spent. The decision
/// of an allowed request is remembered for the response headers.
pub async fn enforce(state: &AppState, class: Class, key: &str) -> Result<(), ApiError> {
    let Some(limits) = &state.rate_limits else {
        return Ok(());
    };
    let decision = limits.check(class, key).await;
    if decision.retry_after_secs.is_some() {
        state
            .metrics
            .rate_limited_total
            .with_label_values(&[class.as_str()])
            .inc();
        return Err(ApiError::RateLimited(decision));
    }
    crate::context::record_rate_limit(decision);
    Ok(())
}

/// Limits an authenticated request by its route class and principal (anonymous callers
/// by client IP).
pub async fn enforce_for(
    parts: &Parts,
    state: &AppState,
    subject: &str,
    anonymous: bool,
) -> Result<(), ApiError> {
    let key = if anonymous {
        format!(
            "ip:{}",
            client_ip(parts, state.settings.rate_limit.trust_forwarded_for)
        )
    } else {
        format!("key:{subject}")
    };
    enforce(state, route_class(parts), &key).await
}

/// Counts a credential check against the client IP's `auth` quota.
pub async fn enforce_credential_check(parts: &Parts, state: &AppState) -> Result<(), ApiError> {
    let ip = client_ip(parts, state.settings.rate_limit.trust_forwarded_for);
    enforce(state, Class::Auth, &format!("ip:{ip}")).await
}

/// Extractor for endpoints that check credentials themselves (`/auth/token`,
/// `/auth/refresh`): limited per client IP, against brute force.
pub struct CredentialCheck;

impl FromRequestParts<AppState> for CredentialCheck {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        enforce_credential_check(parts, state)
            .await
            .map(|()| CredentialCheck)
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::address_of;

    #[test]
    fn the_proxy_written_forwarded_entry_is_the_address_and_only_when_trusted() {
        let peer = Some("10.0.0.9:4000".parse().unwrap());
        let spoofed = HeaderValue::from_static("6.6.6.6, 203.0.113.7");
        assert_eq!(address_of(Some(&spoofed), peer, true), "203.0.113.7");
        assert_eq!(address_of(Some(&spoofed), peer, false), "10.0.0.9");
        let one = HeaderValue::from_static(" 203.0.113.7 ");
        assert_eq!(address_of(Some(&one), peer, true), "203.0.113.7");
        let trailing = HeaderValue::from_static("203.0.113.7, ");
        assert_eq!(address_of(Some(&trailing), peer, true), "10.0.0.9");
        assert_eq!(address_of(None, None, true), "unknown");
    }
}
