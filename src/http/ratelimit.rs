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

/// Every operation's declared class, by method and route template, read once from the
/// OpenAPI document the router is built from.
fn declared() -> &'static HashMap<(Method, String), Class> {
    static CLASSES: OnceLock<HashMap<(Method, String), Class>> = OnceLock::new();
    CLASSES.get_or_init(|| {
        let (_, spec) = crate::http::openapi::api().split_for_parts();
        operations(&spec)
            .filter_map(|(method, path, op)| Some(((method, path), declared_class(op)?)))
            .collect()
    })
}

/// Every operation of `spec` with its method and route template.
pub fn operations(
    spec: &utoipa::openapi::OpenApi,
) -> impl Iterator<Item = (Method, String, &utoipa::openapi::path::Operation)> {
    spec.paths.paths.iter().flat_map(|(path, item)| {
        [
            (Method::GET, &item.get),
            (Method::POST, &item.post),
            (Method::PUT, &item.put),
            (Method::DELETE, &item.delete),
            (Method::PATCH, &item.patch),
        ]
        .into_iter()
        .filter_map(move |(method, op)| Some((method, path.clone(), op.as_ref()?)))
    })
}

/// The class an operation declares, if it declares a known one.
pub fn declared_class(op: &utoipa::openapi::path::Operation) -> Option<Class> {
    let value = op.extensions.as_ref()?.get(CLASS_EXTENSION)?.as_str()?;
    Class::ALL.into_iter().find(|c| c.as_str() == value)
}

/// The class of a matched route, as its annotation declares; unmatched routes (404s)
/// count as reads.
pub fn classify(method: &Method, route: &str) -> Class {
    declared()
        .get(&(method.clone(), route.to_owned()))
        .copied()
        .unwrap_or(Class::Read)
}

/// The caller's address: the socket peer, or the first `X-Forwarded-For` entry when the
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
pub fn address_of(
    forwarded_for: Option<&axum::http::HeaderValue>,
    peer: Option<SocketAddr>,
    trust_forwarded_for: bool,
) -> String {
    let forwarded = trust_forwarded_for
        .then(|| forwarded_for?.to_str().ok())
        .flatten()
        .and_then(|v| v.split(',').next())
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
    use super::*;

    #[test]
    fn routes_fall_into_the_documented_classes() {
        let cases = [
            (Method::POST, "/ingest", Class::Ingest),
            (Method::DELETE, "/ingest/{id}", Class::Ingest),
            (Method::GET, "/ingest/{id}", Class::Read),
            (Method::POST, "/vectors/upsert", Class::VectorWrite),
            (
                Method::PUT,
                "/vectors/collections/{name}",
                Class::VectorWrite,
            ),
            (Method::GET, "/vectors/collections/{name}", Class::Read),
            (Method::POST, "/vectors/search", Class::Search),
            (Method::POST, "/hybrid/search", Class::Search),
            (Method::POST, "/hybrid/generate", Class::Generate),
            (Method::POST, "/graphs/node", Class::GraphWrite),
            (Method::POST, "/graphs/node/find", Class::GraphRead),
            (Method::POST, "/auth/token", Class::Auth),
            (Method::GET, "/auth/api-keys", Class::Admin),
        ];
        for (method, route, class) in cases {
            assert_eq!(classify(&method, route), class, "{method} {route}");
        }
    }

    /// A new route cannot miss its class: every operation that takes credentials
    /// declares a known one next to its path.
    #[test]
    fn every_authenticated_operation_declares_its_class() {
        let (_, spec) = crate::http::openapi::api().split_for_parts();
        let mut checked = 0;
        for (method, path, op) in operations(&spec) {
            let authenticated = op.security.as_ref().is_some_and(|s| !s.is_empty());
            if authenticated || path.starts_with("/auth/") {
                assert!(
                    declared_class(op).is_some(),
                    "{method} {path} declares no known {CLASS_EXTENSION}"
                );
                checked += 1;
            }
        }
        assert!(checked >= 29, "only {checked} operations checked");
    }
}
