//! `/ingest*` handlers: accept events (202 once durable), report and delete documents.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};

use crate::domain::ingest::IngestStatus;
use crate::error::Result;
use crate::http::extract::{AppJson, Reader, Writer};
use crate::services::ingest::{self as svc, Accepted, BatchAccepted, BatchRequest, IngestRequest};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ingest", post(ingest))
        .route("/ingest/batch", post(ingest_batch))
        .route("/ingest/{id}", get(status).delete(delete))
}

async fn ingest(
    State(state): State<AppState>,
    Writer(who): Writer,
    AppJson(req): AppJson<IngestRequest>,
) -> Result<(StatusCode, AppJson<Accepted>)> {
    let accepted = svc::ingest(&state, &who, req).await?;
    Ok((StatusCode::ACCEPTED, AppJson(accepted)))
}

async fn ingest_batch(
    State(state): State<AppState>,
    Writer(who): Writer,
    AppJson(req): AppJson<BatchRequest>,
) -> Result<(StatusCode, AppJson<BatchAccepted>)> {
    let accepted = svc::ingest_batch(&state, &who, req).await?;
    Ok((StatusCode::ACCEPTED, AppJson(accepted)))
}

async fn status(
    State(state): State<AppState>,
    Reader(who): Reader,
    Path(id): Path<String>,
) -> Result<AppJson<IngestStatus>> {
    Ok(AppJson(svc::status(&state, &who, &id).await?))
}

async fn delete(
    State(state): State<AppState>,
    Writer(who): Writer,
    Path(id): Path<String>,
) -> Result<(StatusCode, AppJson<Accepted>)> {
    let accepted = svc::delete(&state, &who, &id).await?;
    Ok((StatusCode::ACCEPTED, AppJson(accepted)))
}
