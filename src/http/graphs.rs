//! `/graphs/*` handlers: nodes, relationships, neighbours and read-only Cypher.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::Serialize;

use crate::domain::graph::{CypherResult, Node, Written};
use crate::error::Result;
use crate::http::extract::{AppJson, Reader, Writer};
use crate::services::graphs::{
    self as svc, FindRequest, FindResponse, NeighborsRequest, NeighborsResponse, NodeRequest,
    QueryRequest, RelationshipRequest,
};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/graphs/node", post(upsert_node))
        .route("/graphs/node/find", post(find_nodes))
        .route("/graphs/node/{id}", get(get_node).delete(delete_node))
        .route("/graphs/relationship", post(upsert_relationship))
        .route("/graphs/neighbors", post(neighbors))
        .route("/graphs/query", post(query))
}

fn status(written: Written) -> StatusCode {
    match written {
        Written::Created => StatusCode::CREATED,
        Written::Updated => StatusCode::OK,
    }
}

async fn upsert_node(
    State(state): State<AppState>,
    Writer(who): Writer,
    AppJson(req): AppJson<NodeRequest>,
) -> Result<(StatusCode, AppJson<Node>)> {
    let (node, written) = svc::upsert_node(&state, &who, req).await?;
    Ok((status(written), AppJson(node)))
}

async fn get_node(
    State(state): State<AppState>,
    Reader(who): Reader,
    Path(id): Path<String>,
) -> Result<AppJson<Node>> {
    Ok(AppJson(svc::get_node(&state, &who, &id).await?))
}

async fn find_nodes(
    State(state): State<AppState>,
    Reader(who): Reader,
    AppJson(req): AppJson<FindRequest>,
) -> Result<AppJson<FindResponse>> {
    Ok(AppJson(svc::find_nodes(&state, &who, req).await?))
}

async fn delete_node(
    State(state): State<AppState>,
    Writer(who): Writer,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    svc::delete_node(&state, &who, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize)]
struct RelationshipWritten {
    status: &'static str,
}

async fn upsert_relationship(
    State(state): State<AppState>,
    Writer(who): Writer,
    AppJson(req): AppJson<RelationshipRequest>,
) -> Result<(StatusCode, AppJson<RelationshipWritten>)> {
    let written = svc::upsert_relationship(&state, &who, req).await?;
    let label = match written {
        Written::Created => "created",
        Written::Updated => "updated",
    };
    Ok((
        status(written),
        AppJson(RelationshipWritten { status: label }),
    ))
}

async fn neighbors(
    State(state): State<AppState>,
    Reader(who): Reader,
    AppJson(req): AppJson<NeighborsRequest>,
) -> Result<AppJson<NeighborsResponse>> {
    Ok(AppJson(svc::neighbors(&state, &who, req).await?))
}

async fn query(
    State(state): State<AppState>,
    Reader(who): Reader,
    AppJson(req): AppJson<QueryRequest>,
) -> Result<AppJson<CypherResult>> {
    Ok(AppJson(svc::query(&state, &who, req).await?))
}
