//! `/auth/*` handlers: token issue for an API key, refresh-token rotation, logout, and API
//! key management for admins.

use crate::domain::Name;
use crate::http::problems::{PathErrors, TokenErrors, WriteErrors};
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::error::Result;
use crate::http::extract::{Admin, AppJson, AppPath, AppQuery, BearerToken};
use crate::http::ratelimit::CredentialCheck;
use crate::http::state::AppState;
use crate::services::auth::{
    CreateKeyRequest, CreatedKey, KeyView, RefreshRequest, TokenRequest, TokenResponse,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(token))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(create_key, list_keys))
        .routes(routes!(delete_key))
}

#[utoipa::path(post, path = "/auth/token", extensions(("x-rate-limit-class" = json!("auth"))), tag = "auth", request_body = TokenRequest,
    responses((status = 200, description = "Access token and single-use refresh token",
        body = TokenResponse), TokenErrors))]
async fn token(
    State(state): State<AppState>,
    _: CredentialCheck,
    AppJson(req): AppJson<TokenRequest>,
) -> Result<AppJson<TokenResponse>> {
    Ok(AppJson(state.auth.issue_token(req).await?))
}

#[utoipa::path(post, path = "/auth/refresh", extensions(("x-rate-limit-class" = json!("auth"))), tag = "auth", request_body = RefreshRequest,
    responses((status = 200, description = "A new token pair; the presented refresh token is spent",
        body = TokenResponse), TokenErrors))]
async fn refresh(
    State(state): State<AppState>,
    _: CredentialCheck,
    AppJson(req): AppJson<RefreshRequest>,
) -> Result<AppJson<TokenResponse>> {
    Ok(AppJson(state.auth.refresh(req).await?))
}

#[utoipa::path(post, path = "/auth/logout", extensions(("x-rate-limit-class" = json!("read"))), tag = "auth",
    responses((status = 204, description = "The token and its login's refresh tokens are revoked"),
        TokenErrors),
    security(("bearer" = [])))]
async fn logout(
    State(state): State<AppState>,
    BearerToken(token): BearerToken,
) -> Result<StatusCode> {
    state.auth.logout(&token).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/auth/api-keys", extensions(("x-rate-limit-class" = json!("admin"))), tag = "auth", request_body = CreateKeyRequest,
    responses((status = 201, description = "The key, shown this once", body = CreatedKey), WriteErrors),
    security(("bearer" = ["admin"]), ("api_key" = ["admin"])))]
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

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    tenant: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct KeyList {
    keys: Vec<KeyView>,
}

#[utoipa::path(get, path = "/auth/api-keys", extensions(("x-rate-limit-class" = json!("admin"))), tag = "auth",
    params(("tenant" = Option<Name>, Query, description = "Another tenant (operators only)")),
    responses((status = 200, description = "Keys without secrets", body = KeyList), PathErrors),
    security(("bearer" = ["admin"]), ("api_key" = ["admin"])))]
async fn list_keys(
    State(state): State<AppState>,
    Admin(who): Admin,
    AppQuery(q): AppQuery<ListQuery>,
) -> Result<AppJson<KeyList>> {
    Ok(AppJson(KeyList {
        keys: state.auth.list_keys(&who, q.tenant).await?,
    }))
}

#[utoipa::path(delete, path = "/auth/api-keys/{id}", extensions(("x-rate-limit-class" = json!("admin"))), tag = "auth",
    params(("id" = String, Path, description = "Key id")),
    responses((status = 204, description = "Revoked; its tokens stop working"), PathErrors),
    security(("bearer" = ["admin"]), ("api_key" = ["admin"])))]
async fn delete_key(
    State(state): State<AppState>,
    Admin(who): Admin,
    AppPath(id): AppPath<String>,
) -> Result<StatusCode> {
    state.auth.delete_key(&who, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
