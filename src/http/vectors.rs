//! `/vectors/*` handlers: collections, upsert, search, retrieve and delete.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use crate::domain::Name;
use crate::domain::vector::{CollectionInfo, PayloadIndex, PointId};
use crate::http::error::Result;
use crate::http::extract::{Admin, AppJson, AppPath, HeldJson, Reader, Writer};
use crate::http::problems::{BodyErrors, ConflictErrors, PathErrors};
use crate::http::state::AppState;
use crate::services::vectors::{
    self as svc, CreateCollection, DeleteRequest, DeleteResponse, SearchRequest, SearchResponse,
    UpsertRequest, UpsertResponse,
};
use crate::store::Created;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_collection, collection_info, drop_collection))
        .routes(routes!(create_index))
        .routes(routes!(delete_index))
        .routes(routes!(upsert))
        .routes(routes!(search))
        .routes(routes!(retrieve))
        .routes(routes!(delete))
}

#[utoipa::path(put, path = "/vectors/collections/{name}", extensions(("x-rate-limit-class" = json!("vector_write"))), tag = "vectors", params(("name" = Name, Path, description = "Collection name")),
    request_body = CreateCollection,
    responses((status = 201, description = "Created", body = CollectionInfo),
        (status = 200, description = "Already exists with the same spec", body = CollectionInfo),
        ConflictErrors),
    security(("bearer" = ["write"]), ("api_key" = ["write"])))]
async fn create_collection(
    State(state): State<AppState>,
    Writer(who): Writer,
    AppPath(name): AppPath<String>,
    AppJson(req): AppJson<CreateCollection>,
) -> Result<(StatusCode, AppJson<CollectionInfo>)> {
    let created = state.vectors.create_collection(&who, &name, req).await?;
    let info = state.vectors.collection_info(&who, &name).await?;
    let status = match created {
        Created::New => StatusCode::CREATED,
        Created::Existing => StatusCode::OK,
    };
    Ok((status, AppJson(info)))
}

#[utoipa::path(get, path = "/vectors/collections/{name}", extensions(("x-rate-limit-class" = json!("read"))), tag = "vectors", params(("name" = Name, Path, description = "Collection name")),
    responses((status = 200, description = "Point count, dimension, distance", body = CollectionInfo),
        PathErrors),
    security(("bearer" = ["read"]), ("api_key" = ["read"])))]
async fn collection_info(
    State(state): State<AppState>,
    Reader(who): Reader,
    AppPath(name): AppPath<String>,
) -> Result<AppJson<CollectionInfo>> {
    Ok(AppJson(state.vectors.collection_info(&who, &name).await?))
}

#[utoipa::path(delete, path = "/vectors/collections/{name}", extensions(("x-rate-limit-class" = json!("vector_write"))), tag = "vectors", params(("name" = Name, Path, description = "Collection name")),
    responses((status = 204, description = "Dropped with all its points"), PathErrors),
    security(("bearer" = ["admin"]), ("api_key" = ["admin"])))]
async fn drop_collection(
    State(state): State<AppState>,
    Admin(who): Admin,
    AppPath(name): AppPath<String>,
) -> Result<StatusCode> {
    state.vectors.drop_collection(&who, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(put, path = "/vectors/collections/{name}/index", extensions(("x-rate-limit-class" = json!("vector_write"))), tag = "vectors",
    params(("name" = Name, Path, description = "Collection name")),
    request_body = PayloadIndex,
    responses((status = 200, description = "Indexed (durable when answered); the collection with its indexes",
        body = CollectionInfo), ConflictErrors),
    security(("bearer" = ["write"]), ("api_key" = ["write"])))]
async fn create_index(
    State(state): State<AppState>,
    Writer(who): Writer,
    AppPath(name): AppPath<String>,
    AppJson(index): AppJson<PayloadIndex>,
) -> Result<AppJson<CollectionInfo>> {
    Ok(AppJson(
        state.vectors.create_index(&who, &name, index).await?,
    ))
}

#[utoipa::path(delete, path = "/vectors/collections/{name}/index/{field}", extensions(("x-rate-limit-class" = json!("vector_write"))), tag = "vectors",
    params(("name" = Name, Path, description = "Collection name"),
        ("field" = String, Path, description = "Indexed payload field", max_length = 128, pattern = r"^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)*$")),
    responses((status = 204, description = "The index is dropped"), PathErrors),
    security(("bearer" = ["write"]), ("api_key" = ["write"])))]
async fn delete_index(
    State(state): State<AppState>,
    Writer(who): Writer,
    AppPath((name, field)): AppPath<(String, String)>,
) -> Result<StatusCode> {
    state.vectors.delete_index(&who, &name, &field).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/vectors/upsert", extensions(("x-rate-limit-class" = json!("vector_write"))), tag = "vectors", request_body = UpsertRequest,
    responses((status = 200, description = "Durable when answered", body = UpsertResponse), ConflictErrors),
    security(("bearer" = ["write"]), ("api_key" = ["write"])))]
async fn upsert(
    State(state): State<AppState>,
    Writer(who): Writer,
    AppJson(req): AppJson<UpsertRequest>,
) -> Result<AppJson<UpsertResponse>> {
    Ok(AppJson(state.vectors.upsert(&who, req).await?))
}

#[utoipa::path(post, path = "/vectors/search", extensions(("x-rate-limit-class" = json!("search"))), tag = "vectors", request_body = SearchRequest,
    responses((status = 200, description = "Nearest points, best first", body = SearchResponse), BodyErrors),
    security(("bearer" = ["read"]), ("api_key" = ["read"])))]
async fn search(
    State(state): State<AppState>,
    Reader(who): Reader,
    AppJson(req): AppJson<SearchRequest>,
) -> Result<HeldJson<SearchResponse>> {
    Ok(HeldJson(state.vectors.search(&who, req).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetrieveRequest {
    #[schema(value_type = Option<Name>)]
    pub collection: Option<String>,
    #[schema(min_items = 1)]
    pub ids: Vec<PointId>,
}

#[utoipa::path(post, path = "/vectors/retrieve", extensions(("x-rate-limit-class" = json!("vector_write"))), tag = "vectors", request_body = RetrieveRequest,
    responses((status = 200, description = "The points that exist", body = svc::RetrieveResponse), BodyErrors),
    security(("bearer" = ["read"]), ("api_key" = ["read"])))]
async fn retrieve(
    State(state): State<AppState>,
    Reader(who): Reader,
    AppJson(req): AppJson<RetrieveRequest>,
) -> Result<HeldJson<svc::RetrieveResponse>> {
    Ok(HeldJson(
        state
            .vectors
            .retrieve(&who, req.collection, req.ids)
            .await?,
    ))
}

#[utoipa::path(post, path = "/vectors/delete", extensions(("x-rate-limit-class" = json!("vector_write"))), tag = "vectors", request_body = DeleteRequest,
    responses((status = 200, description = "How many points were deleted", body = DeleteResponse), BodyErrors),
    security(("bearer" = ["write"]), ("api_key" = ["write"])))]
async fn delete(
    State(state): State<AppState>,
    Writer(who): Writer,
    AppJson(req): AppJson<DeleteRequest>,
) -> Result<AppJson<DeleteResponse>> {
    Ok(AppJson(state.vectors.delete(&who, req).await?))
}
