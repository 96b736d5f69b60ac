//! Per-request context: the correlation id (accepted from `X-Correlation-ID` when
//! well-formed, else a new UUIDv7), the request deadline, and the single access-log line
//! that also records the error cause, so every error is logged exactly once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use crate::context::{self, RequestContext};
use crate::http::error::{ApiError, ErrorCause};

pub const HEADER: &str = "x-correlation-id";

fn well_formed(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Answers 504 when the rest of the stack takes longer than the request deadline.
pub async fn deadline(State(timeout): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(timeout, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::Timeout(format!("request exceeded {} ms", timeout.as_millis()))
            .into_response(),
    }
}

/// The fields of the one access-log line a request produces.
struct AccessLine<'a> {
    method: &'a str,
    route: &'a str,
    status: u16,
    latency_ms: f64,
    principal: &'a str,
    tenant: &'a str,
    correlation_id: &'a str,
    /// The error the response stands for, with its causes; logged here and nowhere else.
    cause: Option<&'a str>,
}

/// Server errors at `error`, refused requests at `info` with their cause, the rest at
/// `info`. A 501 is a refusal: the deployment does not offer what was asked (an LLM, a
/// capability its backend lacks), and nothing failed, so clients calling it cannot fill
/// the error log. Every field is top-level in the JSON line, so log pipelines need no
/// nesting.
fn access_log(l: &AccessLine<'_>) {
    let AccessLine {
        method,
        route,
        status,
        latency_ms,
        principal,
        tenant,
        correlation_id,
        cause,
    } = *l;
    macro_rules! line {
        ($level:ident, $message:literal $(, $error:expr)?) => {
            tracing::$level!(method, route, status, latency_ms, principal, tenant,
                correlation_id, $(error = $error,)? $message)
        };
    }
    if status >= 500 && status != 501 {
        line!(error, "request failed", cause);
    } else if cause.is_some() {
        line!(info, "request rejected", cause);
    } else {
        line!(info, "request served");
    }
}

pub async fn middleware(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let correlation_id = req
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| well_formed(v))
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned);
    let method = req.method().clone();
    let route = crate::http::matched_route(req.extensions()).to_owned();
    let context = Arc::new(RequestContext {
        correlation_id: correlation_id.clone(),
        ..Default::default()
    });
    let span = tracing::info_span!(
        "request",
        %method,
        %route,
        correlation_id = %correlation_id,
        trace_id = tracing::field::Empty,
        status = tracing::field::Empty,
        tenant = tracing::field::Empty,
    );
    if let Some(trace_id) = crate::telemetry::continue_trace(&span, req.headers()) {
        span.record("trace_id", trace_id);
    }

    let mut response =
        context::scope(context.clone(), next.run(req).instrument(span.clone())).await;

    let status = response.status();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let (principal, tenant) = context.principal.get().cloned().unwrap_or_default();
    let cause = response
        .extensions_mut()
        .remove::<ErrorCause>()
        .map(|c| c.0);
    span.record("status", status.as_u16());
    if !tenant.is_empty() {
        span.record("tenant", tenant.as_str());
    }
    span.in_scope(|| {
        access_log(&AccessLine {
            method: method.as_str(),
            route: &route,
            status: status.as_u16(),
            latency_ms,
            principal: &principal,
            tenant: &tenant,
            correlation_id: &correlation_id,
            cause: cause.as_deref(),
        })
    });
    if let Some(decision) = context.rate_limit.get()
        && !response.headers().contains_key("ratelimit-limit")
    {
        crate::http::error::write_rate_limit_headers(response.headers_mut(), decision);
    }
    if let Ok(value) = HeaderValue::from_str(&correlation_id) {
        response.headers_mut().insert(HEADER, value);
    }
    response
}
