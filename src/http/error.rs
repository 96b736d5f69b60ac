//! The HTTP edge's one error type and its RFC 9457 `application/problem+json` rendering. Each
//! variant maps to exactly one status, and every service and store error maps to one
//! variant; 5xx details are logged (once, by the access-log
//! middleware) and never sent to the client.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::domain::quota::Decision;
use crate::services::error::ServiceError;
use crate::store::{ErrorKind, StoreError};

/// `Retry-After` for a 503 when nothing more precise is known (seconds).
const DEFAULT_RETRY_AFTER_SECS: u64 = 5;

pub type Result<T, E = ApiError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Unprocessable(String),
    /// A capability this deployment has not configured (e.g. no LLM for generation).
    #[error("{0}")]
    NotImplemented(String),
    #[error("rate limit of the {} class exceeded", .0.class.as_str())]
    RateLimited(Decision),
    /// The caller runs as many of these at once as it may (429, `Retry-After: 1`).
    #[error("{0}")]
    Throttled(String),
    #[error("upstream error: {0}")]
    BadGateway(String),
    /// The message, and the seconds after which a retry may work (`Retry-After`).
    #[error("unavailable: {0}")]
    Unavailable(String, u64),
    #[error("timed out: {0}")]
    Timeout(String),
    /// The disk under the data directory is too full for a write (507).
    #[error("insufficient storage: {0}")]
    InsufficientStorage(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// The problem body (RFC 9457) with the request's correlation id.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
}

/// Attached to error responses so the access log can record the cause once.
#[derive(Debug, Clone)]
pub struct ErrorCause(pub String);

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            ApiError::RateLimited(_) | ApiError::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ApiError::Unavailable(..) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::InsufficientStorage(_) => StatusCode::INSUFFICIENT_STORAGE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `type` slug: stable, documented in docs/API.md.
    fn slug(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad-request",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not-found",
            ApiError::MethodNotAllowed => "method-not-allowed",
            ApiError::Conflict(_) => "conflict",
            ApiError::PayloadTooLarge(_) => "payload-too-large",
            ApiError::UnsupportedMediaType(_) => "unsupported-media-type",
            ApiError::Unprocessable(_) => "validation",
            ApiError::NotImplemented(_) => "not-configured",
            ApiError::RateLimited(_) | ApiError::Throttled(_) => "rate-limited",
            ApiError::BadGateway(_) => "upstream",
            ApiError::Unavailable(..) => "unavailable",
            ApiError::Timeout(_) => "timeout",
            ApiError::InsufficientStorage(_) => "insufficient-storage",
            ApiError::Internal(_) => "internal",
        }
    }

    /// What the client is told: the message for 4xx, a fixed sentence for 5xx.
    fn public_detail(&self) -> String {
        match self {
            ApiError::BadGateway(_) => "a backend returned an error".into(),
            ApiError::Unavailable(..) => "the service is temporarily unavailable".into(),
            ApiError::Timeout(_) => "the request took too long".into(),
            ApiError::InsufficientStorage(_) => "the server is short of disk space and takes \
                 no writes until some is freed; reads and deletes still work"
                .into(),
            ApiError::Internal(_) => "an internal error occurred".into(),
            ApiError::RateLimited(d) => format!(
                "too many {} requests: at most {} at once; retry after {} s",
                d.class.as_str(),
                d.limit,
                d.retry_after_secs.unwrap_or(1)
            ),
            other => other.to_string(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e.kind {
            ErrorKind::NotFound => ApiError::NotFound(e.message),
            ErrorKind::Conflict => ApiError::Conflict(e.message),
            ErrorKind::Invalid => ApiError::Unprocessable(e.message),
            ErrorKind::Unavailable => ApiError::Unavailable(
                e.message,
                e.retry_after
                    .map_or(DEFAULT_RETRY_AFTER_SECS, |d| d.as_secs().max(1)),
            ),
            ErrorKind::Busy => ApiError::Unavailable(e.message, DEFAULT_RETRY_AFTER_SECS),
            ErrorKind::Throttled => ApiError::Throttled(e.message),
            ErrorKind::Timeout => ApiError::Timeout(e.message),
            ErrorKind::Upstream => ApiError::BadGateway(e.message),
            ErrorKind::Full => ApiError::InsufficientStorage(e.message),
            ErrorKind::Internal => ApiError::Internal(e.message),
            ErrorKind::Unsupported => ApiError::NotImplemented(e.message),
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Invalid(m) => ApiError::Unprocessable(m),
            ServiceError::BadRequest(m) => ApiError::BadRequest(m),
            ServiceError::Unauthorized(m) => ApiError::Unauthorized(m),
            ServiceError::Forbidden(m) => ApiError::Forbidden(m),
            ServiceError::NotFound(m) => ApiError::NotFound(m),
            ServiceError::Conflict(m) => ApiError::Conflict(m),
            ServiceError::NotConfigured(m) => ApiError::NotImplemented(m),
            ServiceError::Internal(m) => ApiError::Internal(m),
            ServiceError::Store(e) => e.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let problem = Problem {
            kind: format!("/problems/{}", self.slug()),
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: self.public_detail(),
            correlation_id: crate::context::current(),
        };
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let ApiError::RateLimited(decision) = &self {
            write_rate_limit_headers(headers, decision);
        }
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Bearer realm="ragbrain", ApiKey header="X-API-Key""#),
            );
        }
        let retry_after = match &self {
            ApiError::Unavailable(_, secs) => Some(*secs),
            ApiError::Throttled(_) => Some(1),
            _ => None,
        };
        if let Some(secs) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
            .extensions_mut()
            .insert(ErrorCause(self.to_string()));
        response
    }
}

/// Writes `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` and, when the
/// request was refused, `Retry-After`.
pub fn write_rate_limit_headers(headers: &mut HeaderMap, d: &Decision) {
    let pairs = [
        ("ratelimit-limit", u64::from(d.limit)),
        ("ratelimit-remaining", u64::from(d.remaining)),
        ("ratelimit-reset", d.reset_secs),
    ];
    for (name, value) in pairs {
        headers.insert(name, HeaderValue::from(value));
    }
    if let Some(wait) = d.retry_after_secs {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(wait));
    }
}
