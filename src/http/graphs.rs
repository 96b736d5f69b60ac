//! `/graphs/*` handlers: nodes, relationships, neighbours and read-only Cypher.

use crate::domain::DisplayedId;
use crate::http::problems::{BodyErrors, ConflictErrors, PathErrors, QueryErrors};
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::domain::graph::{CypherResult, Node, Written};
use crate::http::error::Result;
use crate::http::extract::{AppJson, AppPath, HeldJson, Reader, Writer};
use crate::http::state::AppState;
use crate::services::graphs::{
    FindRequest, FindResponse, NeighborsRequest, NeighborsResponse, NodeRequest, QueryRequest,
    RelationshipRequest,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(upsert_node))
        .routes(routes!(find_nodes))
        .routes(routes!(get_node, delete_node))
        .routes(routes!(upsert_relationship))
        .routes(routes!(neighbors))
        .routes(routes!(query))
}

fn status(written: Written) -> StatusCode {
    match written {
        Written::Created => StatusCode::CREATED,
        Written::Updated => StatusCode::OK,
    }
}

#[utoipa::path(post, path = "/graphs/node", extensions(("x-rate-limit-class" = json!("graph_write"))), tag = "graphs", request_body = NodeRequest,
    responses((status = 201, description = "Created", body = Node),
        (status = 200, description = "Merged into the existing node", body = Node), ConflictErrors),
    security(("bearer" = ["write"]), ("api_key" = ["write"])))]
async fn upsert_node(
    State(state): State<AppState>,
    Writer(who): Writer,
    AppJson(req): AppJson<NodeRequest>,
) -> Result<(StatusCode, AppJson<Node>)> {
    let (node, written) = state.graphs.upsert_node(&who, req).await?;
    Ok((status(written), AppJson(node)))
}

#[utoipa::path(get, path = "/graphs/node/{id}", extensions(("x-rate-limit-class" = json!("read"))), tag = "graphs", params(("id" = DisplayedId, Path, description = "Node id")),
    responses((status = 200, description = "The node", body = Node), PathErrors),
    security(("bearer" = ["read"]), ("api_key" = ["read"])))]
async fn get_node(
    State(state): State<AppState>,
    Reader(who): Reader,
    AppPath(id): AppPath<String>,
) -> Result<AppJson<Node>> {
    Ok(AppJson(state.graphs.get_node(&who, &id).await?))
}

#[utoipa::path(post, path = "/graphs/node/find", extensions(("x-rate-limit-class" = json!("graph_read"))), tag = "graphs", request_body = FindRequest,
    responses((status = 200, description = "Matching nodes, one page", body = FindResponse), BodyErrors),
    security(("bearer" = ["read"]), ("api_key" = ["read"])))]
async fn find_nodes(
    State(state): State<AppState>,
    Reader(who): Reader,
    AppJson(req): AppJson<FindRequest>,
) -> Result<HeldJson<FindResponse>> {
    Ok(HeldJson(state.graphs.find_nodes(&who, req).await?))
}

#[utoipa::path(delete, path = "/graphs/node/{id}", extensions(("x-rate-limit-class" = json!("graph_write"))), tag = "graphs", params(("id" = DisplayedId, Path, description = "Node id")),
    responses((status = 204, description = "Deleted with its relationships"), PathErrors),
    security(("bearer" = ["write"]), ("api_key" = ["write"])))]
async fn delete_node(
    State(state): State<AppState>,
    Writer(who): Writer,
    AppPath(id): AppPath<String>,
) -> Result<StatusCode> {
    state.graphs.delete_node(&who, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, utoipa::ToSchema)]
struct RelationshipWritten {
    status: &'static str,
}

#[utoipa::path(post, path = "/graphs/relationship", extensions(("x-rate-limit-class" = json!("graph_write"))), tag = "graphs",
    request_body = RelationshipRequest,
    responses((status = 201, description = "Created", body = RelationshipWritten),
        (status = 200, description = "Merged into the existing relationship", body = RelationshipWritten),
        ConflictErrors),
    security(("bearer" = ["write"]), ("api_key" = ["write"])))]
async fn upsert_relationship(
    State(state): State<AppState>,
    Writer(who): Writer,
    AppJson(req): AppJson<RelationshipRequest>,
) -> Result<(StatusCode, AppJson<RelationshipWritten>)> {
    let written = state.graphs.upsert_relationship(&who, req).await?;
    let label = match written {
        Written::Created => "created",
        Written::Updated => "updated",
    };
    Ok((
        status(written),
        AppJson(RelationshipWritten { status: label }),
    ))
}

#[utoipa::path(post, path = "/graphs/neighbors", extensions(("x-rate-limit-class" = json!("graph_read"))), tag = "graphs", request_body = NeighborsRequest,
    responses((status = 200, description = "Nodes within the hops, nearest first", body = NeighborsResponse),
        BodyErrors),
    security(("bearer" = ["read"]), ("api_key" = ["read"])))]
async fn neighbors(
    State(state): State<AppState>,
    Reader(who): Reader,
    AppJson(req): AppJson<NeighborsRequest>,
) -> Result<HeldJson<NeighborsResponse>> {
    Ok(HeldJson(state.graphs.neighbors(&who, req).await?))
}

#[utoipa::path(post, path = "/graphs/query", extensions(("x-rate-limit-class" = json!("graph_read"))), tag = "graphs", request_body = QueryRequest,
    responses((status = 200, description = "Columns and rows of a read-only Cypher query", body = CypherResult),
        QueryErrors),
    security(("bearer" = ["read"]), ("api_key" = ["read"])))]
async fn query(
    State(state): State<AppState>,
    Reader(who): Reader,
    AppJson(req): AppJson<QueryRequest>,
) -> Result<HeldJson<CypherResult>> {
    Ok(HeldJson(state.graphs.query(&who, req).await?))
}
