//! `/vectors/*` handlers: collections, upsert, search, retrieve and delete.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{post, put};
use serde::Deserialize;

use crate::domain::vector::{CollectionInfo, PointId};
use crate::error::Result;
use crate::http::extract::{Admin, AppJson, Reader, Writer};
use crate::services::vectors::{
    self as svc, CreateCollection, DeleteRequest, DeleteResponse, SearchRequest, SearchResponse,
    UpsertRequest, UpsertResponse,
};
use crate::state::AppState;
use crate::store::Created;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/vectors/collections/{name}",
            put(create_collection)
                .get(collection_info)
                .delete(drop_collection),
        )
        .route("/vectors/upsert", post(upsert))
        .route("/vectors/search", post(search))
        .route("/vectors/retrieve", post(retrieve))
        .route("/vectors/delete", post(delete))
}

async fn create_collection(
    State(state): State<AppState>,
    Writer(who): Writer,
    Path(name): Path<String>,
    AppJson(req): AppJson<CreateCollection>,
) -> Result<(StatusCode, AppJson<CollectionInfo>)> {
    let created = svc::create_collection(&state, &who, &name, req).await?;
    let info = svc::collection_info(&state, &who, &name).await?;
    let status = match created {
        Created::New => StatusCode::CREATED,
        Created::Existing => StatusCode::OK,
    };
    Ok((status, AppJson(info)))
}

async fn collection_info(
    State(state): State<AppState>,
    Reader(who): Reader,
    Path(name): Path<String>,
) -> Result<AppJson<CollectionInfo>> {
    Ok(AppJson(svc::collection_info(&state, &who, &name).await?))
}

async fn drop_collection(
    State(state): State<AppState>,
    Admin(who): Admin,
    Path(name): Path<String>,
) -> Result<StatusCode> {
    svc::drop_collection(&state, &who, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn upsert(
    State(state): State<AppState>,
    Writer(who): Writer,
    AppJson(req): AppJson<UpsertRequest>,
) -> Result<AppJson<UpsertResponse>> {
    Ok(AppJson(svc::upsert(&state, &who, req).await?))
}

async fn search(
    State(state): State<AppState>,
    Reader(who): Reader,
    AppJson(req): AppJson<SearchRequest>,
) -> Result<AppJson<SearchResponse>> {
    Ok(AppJson(svc::search(&state, &who, req).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrieveRequest {
    pub collection: Option<String>,
    pub ids: Vec<PointId>,
}

async fn retrieve(
    State(state): State<AppState>,
    Reader(who): Reader,
    AppJson(req): AppJson<RetrieveRequest>,
) -> Result<AppJson<svc::RetrieveResponse>> {
    Ok(AppJson(
        svc::retrieve(&state, &who, req.collection, req.ids).await?,
    ))
}

async fn delete(
    State(state): State<AppState>,
    Writer(who): Writer,
    AppJson(req): AppJson<DeleteRequest>,
) -> Result<AppJson<DeleteResponse>> {
    Ok(AppJson(svc::delete(&state, &who, req).await?))
}
