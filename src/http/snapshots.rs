//! Snapshots of the embedded stores for operators: `POST /admin/snapshots` takes one
//! into `<data_dir>/snapshots`, `GET /admin/snapshots` lists them, and each can be
//! downloaded (the way off a container image without a shell) and deleted.

use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::error::Result;
use crate::http::extract::{Admin, AppJson, AppPath};
use crate::http::problems::{PathErrors, SnapshotErrors};
use crate::http::state::AppState;
use crate::services::snapshots::{Snapshot, SnapshotFile};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(download, delete))
}

/// Takes a consistent, compressed snapshot of the embedded stores while the server
/// runs; it holds every write acknowledged before the request. Writes wait while each
/// store is copied. Restore with `ragbrain snapshot restore FILE --data-dir DIR`.
#[utoipa::path(post, path = "/admin/snapshots", extensions(("x-rate-limit-class" = json!("admin"))), tag = "operations",
    responses((status = 201, description = "Snapshot taken", body = Snapshot), SnapshotErrors),
    security(("bearer" = ["admin"]), ("api_key" = ["admin"])))]
async fn create(
    State(state): State<AppState>,
    Admin(who): Admin,
) -> Result<(StatusCode, AppJson<Snapshot>)> {
    let snapshot = state.snapshots.take(&who).await?;
    Ok((StatusCode::CREATED, AppJson(snapshot)))
}

/// The snapshots kept under `<data_dir>/snapshots`, oldest first.
#[utoipa::path(get, path = "/admin/snapshots", extensions(("x-rate-limit-class" = json!("admin"))), tag = "operations",
    responses((status = 200, description = "Snapshot files", body = Vec<SnapshotFile>), SnapshotErrors),
    security(("bearer" = ["admin"]), ("api_key" = ["admin"])))]
async fn list(
    State(state): State<AppState>,
    Admin(who): Admin,
) -> Result<AppJson<Vec<SnapshotFile>>> {
    Ok(AppJson(state.snapshots.list_for(&who)?))
}

/// The snapshot file, as `application/zstd` (a zstd-compressed tar).
#[utoipa::path(get, path = "/admin/snapshots/{name}", extensions(("x-rate-limit-class" = json!("admin"))), tag = "operations",
    params(("name" = String, Path, description = "A name from GET /admin/snapshots")),
    responses((status = 200, description = "The snapshot file", content_type = "application/zstd"), PathErrors),
    security(("bearer" = ["admin"]), ("api_key" = ["admin"])))]
async fn download(
    State(state): State<AppState>,
    Admin(who): Admin,
    AppPath(name): AppPath<String>,
) -> Result<Response> {
    let (bytes, stream) = state.snapshots.read_for(&who, &name)?;
    // `name` is one of the server's own file names (checked against the listing).
    let headers = [
        (header::CONTENT_TYPE, "application/zstd".to_owned()),
        (header::CONTENT_LENGTH, bytes.to_string()),
        (
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        ),
    ];
    Ok((headers, Body::from_stream(stream)).into_response())
}

/// Deletes a snapshot file.
#[utoipa::path(delete, path = "/admin/snapshots/{name}", extensions(("x-rate-limit-class" = json!("admin"))), tag = "operations",
    params(("name" = String, Path, description = "A name from GET /admin/snapshots")),
    responses((status = 204, description = "Deleted"), PathErrors),
    security(("bearer" = ["admin"]), ("api_key" = ["admin"])))]
async fn delete(
    State(state): State<AppState>,
    Admin(who): Admin,
    AppPath(name): AppPath<String>,
) -> Result<StatusCode> {
    state.snapshots.delete_for(&who, &name)?;
    Ok(StatusCode::NO_CONTENT)
}
