//! `/auth/*` handlers: token issue for an API key, refresh-token rotation, logout, and API
//! key management for admins.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, post};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::http::extract::{Admin, AppJson, BearerToken};
use crate::http::ratelimit::CredentialCheck;
use crate::services::auth::{
    CreateKeyRequest, CreatedKey, KeyView, RefreshRequest, TokenRequest, TokenResponse,
};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/token", post(token))
        .route("/auth/refresh", post(refresh))
        .route("/auth/logout", post(logout))
        .route("/auth/api-keys", post(create_key).get(list_keys))
        .route("/auth/api-keys/{id}", delete(delete_key))
}

async fn token(
    State(state): State<AppState>,
    _: CredentialCheck,
    AppJson(req): AppJson<TokenRequest>,
) -> Result<AppJson<TokenResponse>> {
    Ok(AppJson(state.auth.issue_token(req).await?))
}

async fn refresh(
    State(state): State<AppState>,
    _: CredentialCheck,
    AppJson(req): AppJson<RefreshRequest>,
) -> Result<AppJson<TokenResponse>> {
    Ok(AppJson(state.auth.refresh(req).await?))
}

async fn logout(
    State(state): State<AppState>,
    BearerToken(token): BearerToken,
) -> Result<StatusCode> {
    state.auth.logout(&token).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn create_key(
    State(state): State<AppState>,
    Admin(who): Admin,
    AppJson(req): AppJson<CreateKeyRequest>,
) -> Result<(StatusCode, AppJson<CreatedKey>)> {
    Ok((
        StatusCode::CREATED,
        AppJson(state.auth.create_key(&who, req).await?),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    tenant: Option<String>,
}

#[derive(Serialize)]
struct KeyList {
    keys: Vec<KeyView>,
}

async fn list_keys(
    State(state): State<AppState>,
    Admin(who): Admin,
    Query(q): Query<ListQuery>,
) -> Result<AppJson<KeyList>> {
    Ok(AppJson(KeyList {
        keys: state.auth.list_keys(&who, q.tenant).await?,
    }))
}

async fn delete_key(
    State(state): State<AppState>,
    Admin(who): Admin,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    state.auth.delete_key(&who, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
