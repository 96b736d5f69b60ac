//! Snapshots of the embedded stores for operators: `POST /admin/snapshots` takes one
//! into `<data_dir>/snapshots`, `GET /admin/snapshots` lists them.

use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::error::Result;
use crate::http::extract::{Admin, AppJson};
use crate::http::problems::SnapshotErrors;
use crate::http::state::AppState;
use crate::services::snapshots::{Snapshot, SnapshotFile};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create, list))
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
