//! Request metrics middleware (count, latency and in-flight, labelled by the matched
//! route, never the raw path) and the `GET /metrics` scrape endpoint.

use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(scrape))
}

/// Decrements the in-flight gauge however the request ends (even if it is dropped).
struct InFlight<'a>(&'a prometheus::IntGauge);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The method as a label: one of HTTP's own, or `OTHER`. A client may send any token
/// as a method, and a label per token would let it grow the registry (and every
/// scrape) without bound.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    static KNOWN: [Method; 9] = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::HEAD,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ];
    KNOWN
        .iter()
        .find(|known| *known == method)
        .map_or("OTHER", Method::as_str)
}

pub async fn middleware(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(req.method());
    let route = crate::http::matched_route(req.extensions()).to_owned();
    let metrics = &state.metrics;
    metrics.http_requests_in_flight.inc();
    let _guard = InFlight(&metrics.http_requests_in_flight);
    let response = next.run(req).await;
    metrics
        .http_request_duration_seconds
        .with_label_values(&[method, &route])
        .observe(started.elapsed().as_secs_f64());
    metrics
        .http_requests_total
        .with_label_values(&[method, &route, response.status().as_str()])
        .inc();
    response
}

#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition format",
        content_type = "text/plain; version=0.0.4")))]
async fn scrape(State(state): State<AppState>) -> Response {
    let body = state.scrape.scrape().await;
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}
