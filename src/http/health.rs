//! Health probes: `/health/live` never touches a backend; `/health/ready` and `/health`
//! check each one and answer 503 when any is down.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::services::health::Readiness;
use serde_json::{Value, json};

use crate::http::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(live))
        .routes(routes!(ready))
        .routes(routes!(health))
}

#[utoipa::path(get, path = "/health/live", tag = "operations",
    responses((status = 200, description = "The process is up; never touches a backend")))]
async fn live() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

#[utoipa::path(get, path = "/health/ready", tag = "operations",
    responses((status = 200, description = "Every backend answers", body = Readiness),
        (status = 503, description = "A backend is down; per-check body", body = Readiness)))]
async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let r = state.health.readiness().await;
    let code = if r.ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(json!(r)))
}

#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "Status, checks and version"),
        (status = 503, description = "A backend is down")))]
async fn health(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let r = state.health.readiness().await;
    let code = if r.ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        Json(json!({"status": r.status, "checks": r.checks, "version": env!("CARGO_PKG_VERSION")})),
    )
}
