//! Health probes: `/health/live` never touches a backend; `/health/ready` and `/health`
//! check each one and answer 503 when any is down.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::services::health::readiness;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/health", get(health))
}

async fn live() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let r = readiness(&state).await;
    let code = if r.ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(json!(r)))
}

async fn health(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let r = readiness(&state).await;
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
