//! The HTTP edge: one router merging each handler module's routes, with the shared layers
//! applied once, outermost first: security headers → compression → bodies that end
//! once → connection close after early refusals → correlation id and access log →
//! metrics → deadline → panic guard → body limit → CORS. [`serve`] accepts and times
//! out the connections.
//! Authentication and rate limits are per route, via the `Reader`/`Writer`/`Admin`
//! extractors, so unknown paths stay 404.

pub mod audit;
pub mod auth;
pub mod correlation;
pub mod error;
pub mod extract;
pub mod graphs;
pub mod health;
pub mod hybrid;
pub mod ingest;
pub mod metrics;
pub mod openapi;
pub mod problems;
pub mod ratelimit;
pub mod security;
pub mod serve;
pub mod snapshots;
pub mod state;
pub mod tls;
pub mod vectors;

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::DefaultBodyLimit;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use hyper::body::{Frame, SizeHint};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{DefaultPredicate, NotForContentType, Predicate};

use crate::http::error::ApiError;
use crate::http::state::AppState;

pub fn router(state: AppState) -> Router {
    let server = &state.settings.server;
    let timeout = server.request_timeout_ms.get();
    let body_limit = server.body_limit_bytes.get();
    let cors = security::cors(server);
    // Snapshot downloads are zstd already: gzip would spend CPU for nothing.
    let compressible =
        DefaultPredicate::new().and(NotForContentType::const_new("application/zstd"));
    let compression = if server.compression {
        CompressionLayer::new().compress_when(compressible)
    } else {
        CompressionLayer::new()
            .no_gzip()
            .compress_when(compressible)
    };
    let security_headers = security::headers(server);
    let (routes, spec) = openapi::api().split_for_parts();
    ratelimit::declare(openapi::route_classes(&spec));
    let spec = openapi::SpecJson(spec.to_json().unwrap_or_default().into());
    let router = routes
        .layer(Extension(spec))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(
            ServiceBuilder::new()
                .layer(axum::middleware::from_fn(serve::close_after_refusal))
                .layer(axum::middleware::from_fn(correlation::middleware))
                .layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    metrics::middleware,
                ))
                .layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    audit::middleware,
                ))
                .layer(axum::middleware::from_fn_with_state(
                    timeout,
                    correlation::deadline,
                ))
                .layer(CatchPanicLayer::custom(panicked))
                .layer(DefaultBodyLimit::max(body_limit))
                .option_layer(cors),
        )
        .layer(axum::middleware::map_response(ended_once))
        .layer(compression);
    security_headers
        .into_iter()
        .fold(router, Router::layer)
        .with_state(state)
}

/// The router of the plain admin listener (`server.admin_port`): `/health/*` and
/// `/metrics` only, for probes and scrapers that hold no client certificate.
pub fn admin_router(state: AppState) -> Router {
    let (routes, _) = utoipa_axum::router::OpenApiRouter::new()
        .merge(health::router())
        .merge(metrics::router())
        .split_for_parts();
    routes
        .fallback(not_found)
        .layer(axum::middleware::from_fn(correlation::middleware))
        .with_state(state)
}

/// The route pattern a request matched (`/ingest/{id}`), or `unmatched`: the label for
/// logs, metrics and rate-limit classes, never the raw path.
pub fn matched_route(extensions: &axum::http::Extensions) -> &str {
    extensions
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched", axum::extract::MatchedPath::as_str)
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

fn panicked(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::Internal("handler panicked".into()).into_response()
}

/// Each response's body, made to answer "ended" again once it has ended. tower-http's
/// compression polls a body again after its end (tower-rs/tower-http#732, in 0.6 and
/// 0.7), and a streamed body (`stream::unfold`: large answers, snapshot downloads)
/// panics when polled again, which dropped the connection of every gzipped large answer.
async fn ended_once(response: Response) -> Response {
    response.map(|body| Body::new(EndedOnce(Some(body))))
}

/// A body that is `None` once it has ended.
struct EndedOnce(Option<Body>);

impl hyper::body::Body for EndedOnce {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let Some(body) = self.0.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(body).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            self.0 = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.0.as_ref().is_none_or(|body| body.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.0
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), |body| body.size_hint())
    }
}
