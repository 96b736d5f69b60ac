//! `/ingest*` handlers: accept events (202 once durable), report and delete documents.

use crate::domain::DisplayedId;
use crate::http::problems::{ConflictErrors, PathErrors};
use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::domain::ingest::IngestStatus;
use crate::http::error::Result;
use crate::http::extract::{AppJson, AppPath, Reader, Writer};
use crate::http::state::AppState;
use crate::services::ingest::{Accepted, BatchAccepted, BatchRequest, IngestRequest};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(ingest))
        .routes(routes!(ingest_batch))
        .routes(routes!(status, delete))
}

#[utoipa::path(post, path = "/ingest", extensions(("x-rate-limit-class" = json!("ingest"))), tag = "ingest", request_body = IngestRequest,
    responses((status = 202, description = "Durably queued", body = Accepted), ConflictErrors),
    security(("bearer" = ["write"]), ("api_key" = ["write"])))]
async fn ingest(
    State(state): State<AppState>,
    Writer(who): Writer,
    AppJson(req): AppJson<IngestRequest>,
) -> Result<(StatusCode, AppJson<Accepted>)> {
    let accepted = state.ingest.ingest(&who, req).await?;
    Ok((StatusCode::ACCEPTED, AppJson(accepted)))
}

#[utoipa::path(post, path = "/ingest/batch", extensions(("x-rate-limit-class" = json!("ingest"))), tag = "ingest", request_body = BatchRequest,
    responses((status = 202, description = "All queued (or none, on any error)", body = BatchAccepted),
        ConflictErrors),
    security(("bearer" = ["write"]), ("api_key" = ["write"])))]
async fn ingest_batch(
    State(state): State<AppState>,
    Writer(who): Writer,
    AppJson(req): AppJson<BatchRequest>,
) -> Result<(StatusCode, AppJson<BatchAccepted>)> {
    let accepted = state.ingest.ingest_batch(&who, req).await?;
    Ok((StatusCode::ACCEPTED, AppJson(accepted)))
}

#[utoipa::path(get, path = "/ingest/{id}", extensions(("x-rate-limit-class" = json!("read"))), tag = "ingest", params(("id" = DisplayedId, Path, description = "Document id")),
    responses((status = 200, description = "pending, processed (with counts) or failed (with the reason)",
        body = IngestStatus), PathErrors),
    security(("bearer" = ["read"]), ("api_key" = ["read"])))]
async fn status(
    State(state): State<AppState>,
    Reader(who): Reader,
    AppPath(id): AppPath<String>,
) -> Result<AppJson<IngestStatus>> {
    Ok(AppJson(state.ingest.status(&who, id).await?))
}

#[utoipa::path(delete, path = "/ingest/{id}", extensions(("x-rate-limit-class" = json!("ingest"))), tag = "ingest", params(("id" = DisplayedId, Path, description = "Document id")),
    responses((status = 202, description = "Removal queued behind earlier events", body = Accepted),
        PathErrors),
    security(("bearer" = ["write"]), ("api_key" = ["write"])))]
async fn delete(
    State(state): State<AppState>,
    Writer(who): Writer,
    AppPath(id): AppPath<String>,
) -> Result<(StatusCode, AppJson<Accepted>)> {
    let accepted = state.ingest.delete(&who, id).await?;
    Ok((StatusCode::ACCEPTED, AppJson(accepted)))
}
