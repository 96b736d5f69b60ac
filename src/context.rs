//! The context of the request being served: its correlation id, who it acts for and the
//! rate-limit decision that let it in. The HTTP edge sets it for each request; services
//! and stores may read it (the ingest service stamps events with the correlation id)
//! without knowing anything of HTTP.

use std::sync::{Arc, OnceLock};

use crate::domain::audit::AuditAction;
use crate::domain::quota::Decision;

/// What the request learns as it runs, read by the access log at the end.
#[derive(Debug, Default)]
pub struct RequestContext {
    pub correlation_id: String,
    /// (subject, tenant) once authentication succeeded.
    pub principal: OnceLock<(String, String)>,
    /// The rate-limit decision that let the request through, for the response headers.
    pub rate_limit: OnceLock<Decision>,
    /// What the audit trail should call this request, when a service knows better than
    /// its route (a refresh that turned out to be a replay).
    pub audit_action: OnceLock<AuditAction>,
}

tokio::task_local! {
    static CONTEXT: Arc<RequestContext>;
}

/// Runs `work` as the request `context` describes.
pub async fn scope<F: std::future::Future>(context: Arc<RequestContext>, work: F) -> F::Output {
    CONTEXT.scope(context, work).await
}

/// The correlation id of the request being served, if any.
pub fn current() -> Option<String> {
    CONTEXT.try_with(|c| c.correlation_id.clone()).ok()
}

/// Records the quota state of an allowed request, for the `RateLimit-*` headers.
pub fn record_rate_limit(decision: Decision) {
    let _ = CONTEXT.try_with(|c| c.rate_limit.set(decision));
}

/// Records who the request acts for, for the access log.
pub fn record_principal(subject: &str, tenant: &str) {
    let _ = CONTEXT.try_with(|c| c.principal.set((subject.to_owned(), tenant.to_owned())));
}

/// Names the request's audit action, overriding what its route implies.
pub fn record_audit_action(action: AuditAction) {
    let _ = CONTEXT.try_with(|c| c.audit_action.set(action));
}

/// The context of the request being served, if any.
pub fn snapshot() -> Option<Arc<RequestContext>> {
    CONTEXT.try_with(Arc::clone).ok()
}
