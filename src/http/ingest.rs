//! `/ingest*` handlers: accept events (202 once durable), report and delete documents.

use crate::http::openapi::{BodyErrors, PathErrors};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::domain::ingest::IngestStatus;
use crate::error::Result;
use crate::http::extract::{AppJson, Reader, Writer};
use crate::services::ingest::{self as svc, Accepted, BatchAccepted, BatchRequest, IngestRequest};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(ingest))
        .routes(routes!(ingest_batch))
        .routes(routes!(status, delete))
}

#[utoipa::path(post, path = "/ingest", tag = "ingest", request_body = IngestRequest,
    responses((status = 202, description = "Durably queued", body = Accepted), BodyErrors),
    security(("bearer" = ["write"]), ("api_key" = ["write"])))]
async fn ingest(
    State(state): State<AppState>,
    Writer(who): Writer,
    AppJson(req): AppJson<IngestRequest>,
) -> Result<(StatusCode, AppJson<Accepted>)> {
    let accepted = svc::ingest(&state, &who, req).await?;
    Ok((StatusCode::ACCEPTED, AppJson(accepted)))
}

#[utoipa::path(post, path = "/ingest/batch", tag = "ingest", request_body = BatchRequest,
    responses((status = 202, description = "All queued (or none, on any error)", body = BatchAccepted),
        BodyErrors),
    security(("bearer" = ["write"]), ("api_key" = ["write"])))]
async fn ingest_batch(
    State(state): State<AppState>,
    Writer(who): Writer,
    AppJson(req): AppJson<BatchRequest>,
) -> Result<(StatusCode, AppJson<BatchAccepted>)> {
    let accepted = svc::ingest_batch(&state, &who, req).await?;
    Ok((StatusCode::ACCEPTED, AppJson(accepted)))
}

#[utoipa::path(get, path = "/ingest/{id}", tag = "ingest", params(("id" = String, Path, description = "Document id")),
    responses((status = 200, description = "pending, processed (with counts) or failed (with the reason)",
        body = IngestStatus), PathErrors),
    security(("bearer" = ["read"]), ("api_key" = ["read"])))]
async fn status(
    State(state): State<AppState>,
    Reader(who): Reader,
    Path(id): Path<String>,
) -> Result<AppJson<IngestStatus>> {
    Ok(AppJson(svc::status(&state, &who, &id).await?))
}

#[utoipa::path(delete, path = "/ingest/{id}", tag = "ingest", params(("id" = String, Path, description = "Document id")),
    responses((status = 202, description = "Removal queued behind earlier events", body = Accepted),
        PathErrors),
    security(("bearer" = ["write"]), ("api_key" = ["write"])))]
async fn delete(
    State(state): State<AppState>,
    Writer(who): Writer,
    Path(id): Path<String>,
) -> Result<(StatusCode, AppJson<Accepted>)> {
    let accepted = svc::delete(&state, &who, &id).await?;
    Ok((StatusCode::ACCEPTED, AppJson(accepted)))
}
