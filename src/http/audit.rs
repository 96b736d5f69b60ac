//! The audit trail at the HTTP edge: a middleware that turns each audited request (by
//! its route, method and status) into a record for the audit service, and
//! `GET /audit` for admins.

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::domain::audit::{AuditAction, AuditPage, AuditQuery, AuditRecord, unix_now_ms};
use crate::http::error::Result;
use crate::http::extract::{Admin, AppJson, AppQuery};
use crate::http::problems::AuditErrors;
use crate::http::state::AppState;
use crate::services::audit::AuditRequest;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(read))
}

/// The audit action of a request, if it is one the trail keeps.
pub fn action(method: &Method, route: &str, status: StatusCode) -> Option<AuditAction> {
    use AuditAction as A;
    let by_route = match (method.as_str(), route) {
        ("POST", "/auth/api-keys") => Some(A::KeyCreated),
        ("DELETE", "/auth/api-keys/{id}") => Some(A::KeyDeleted),
        ("POST", "/auth/token") => Some(A::TokenIssued),
        ("POST", "/auth/refresh") => Some(A::TokenRefreshed),
        ("POST", "/auth/logout") => Some(A::TokenRevoked),
        ("PUT", "/vectors/collections/{name}") => Some(A::CollectionCreated),
        ("DELETE", "/vectors/collections/{name}") => Some(A::CollectionDropped),
        ("DELETE", "/ingest/{id}") => Some(A::DocumentDeleted),
        ("DELETE", "/graphs/node/{id}") => Some(A::NodeDeleted),
        ("POST", "/graphs/query") => Some(A::CypherRun),
        ("GET", "/audit") => Some(A::AuditRead),
        ("POST", "/admin/snapshots") => Some(A::SnapshotCreated),
        _ => None,
    };
    // Refused credentials and scopes are recorded on every route.
    match status {
        StatusCode::UNAUTHORIZED => Some(A::AuthenticationFailed),
        StatusCode::FORBIDDEN => Some(A::AuthorizationDenied),
        _ => by_route,
    }
}

/// Records audited requests once they are answered. Runs inside the correlation layer,
/// so the request's context (correlation id, principal) is known. Before the answer it
/// only keeps cheap handles (header values, the URI, the peer); the record's strings
/// are built for audited requests alone.
pub async fn middleware(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let route = crate::http::matched_route(req.extensions()).to_owned();
    let uri = req.uri().clone();
    let forwarded_for = req.headers().get("x-forwarded-for").cloned();
    let user_agent = req.headers().get(axum::http::header::USER_AGENT).cloned();
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0);
    let response = next.run(req).await;
    let status = response.status();
    let context = crate::context::snapshot();
    let action = context
        .as_ref()
        .and_then(|c| c.audit_action.get().copied())
        .or_else(|| action(&method, &route, status));
    let Some(action) = action else {
        return response;
    };
    let (principal, tenant) = context
        .as_ref()
        .and_then(|c| c.principal.get().cloned())
        .map_or((None, None), |(p, t)| (Some(p), Some(t)));
    let resource = route
        .ends_with('}')
        .then(|| uri.path().rsplit('/').next())
        .flatten()
        .map(|s| s.chars().take(256).collect::<String>());
    state.audit.record(AuditRecord {
        id: String::new(),
        time_ms: unix_now_ms(),
        correlation_id: context
            .map(|c| c.correlation_id.clone())
            .unwrap_or_default(),
        principal,
        tenant,
        client_ip: crate::http::ratelimit::address_of(
            forwarded_for.as_ref(),
            peer,
            state.settings.rate_limit.trust_forwarded_for,
        ),
        user_agent: user_agent
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(256).collect()),
        action,
        resource,
        status: status.as_u16(),
        success: status.is_success(),
    });
    response
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ReadQuery {
    /// Only this tenant's records (operators only; others always read their own).
    tenant: Option<String>,
    /// Only this action, e.g. `key.created`.
    action: Option<AuditAction>,
    /// Only this principal (key id or token subject).
    principal: Option<String>,
    /// From this time on, milliseconds since the Unix epoch.
    #[param(format = "uint64")]
    since_ms: Option<u64>,
    /// Up to this time, milliseconds since the Unix epoch.
    #[param(format = "uint64")]
    until_ms: Option<u64>,
    /// The `next` cursor of the previous page.
    before: Option<String>,
    /// Records per page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

#[utoipa::path(get, path = "/audit", extensions(("x-rate-limit-class" = json!("read"))), tag = "auth", params(ReadQuery),
    responses((status = 200, description = "Audit records, newest first", body = AuditPage), AuditErrors),
    security(("bearer" = ["admin"]), ("api_key" = ["admin"])))]
async fn read(
    State(state): State<AppState>,
    Admin(who): Admin,
    AppQuery(q): AppQuery<ReadQuery>,
) -> Result<AppJson<AuditPage>> {
    let request = AuditRequest {
        tenant: q.tenant,
        query: AuditQuery {
            tenant: None,
            action: q.action,
            principal: q.principal,
            since_ms: q.since_ms,
            until_ms: q.until_ms,
            before: q.before,
            limit: q.limit.unwrap_or(100),
        },
    };
    Ok(AppJson(state.audit.read(&who, request).await?))
}
