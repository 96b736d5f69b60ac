//! The audit trail's records: who did what to which resource, when, from where, and
//! how it ended; and the filters an auditor reads them with.

use serde::{Deserialize, Serialize};

/// What an audited request did. Serialized as dotted names (`key.created`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum AuditAction {
    #[serde(rename = "key.created")]
    KeyCreated,
    #[serde(rename = "key.deleted")]
    KeyDeleted,
    #[serde(rename = "token.issued")]
    TokenIssued,
    #[serde(rename = "token.refreshed")]
    TokenRefreshed,
    #[serde(rename = "token.revoked")]
    TokenRevoked,
    /// A spent refresh token was presented again; its whole login was revoked.
    #[serde(rename = "refresh.replayed")]
    RefreshReplayed,
    #[serde(rename = "authentication.failed")]
    AuthenticationFailed,
    #[serde(rename = "authorization.denied")]
    AuthorizationDenied,
    #[serde(rename = "collection.created")]
    CollectionCreated,
    #[serde(rename = "collection.dropped")]
    CollectionDropped,
    #[serde(rename = "document.deleted")]
    DocumentDeleted,
    #[serde(rename = "node.deleted")]
    NodeDeleted,
    /// Client Cypher (`POST /graphs/query`), run or refused.
    #[serde(rename = "cypher.run")]
    CypherRun,
    /// The audit trail itself was read.
    #[serde(rename = "audit.read")]
    AuditRead,
    #[serde(rename = "snapshot.created")]
    SnapshotCreated,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::KeyCreated => "key.created",
            AuditAction::KeyDeleted => "key.deleted",
            AuditAction::TokenIssued => "token.issued",
            AuditAction::TokenRefreshed => "token.refreshed",
            AuditAction::TokenRevoked => "token.revoked",
            AuditAction::RefreshReplayed => "refresh.replayed",
            AuditAction::AuthenticationFailed => "authentication.failed",
            AuditAction::AuthorizationDenied => "authorization.denied",
            AuditAction::CollectionCreated => "collection.created",
            AuditAction::CollectionDropped => "collection.dropped",
            AuditAction::DocumentDeleted => "document.deleted",
            AuditAction::NodeDeleted => "node.deleted",
            AuditAction::CypherRun => "cypher.run",
            AuditAction::AuditRead => "audit.read",
            AuditAction::SnapshotCreated => "snapshot.created",
        }
    }
}

/// One audited request. Never holds a secret: no bodies, no credentials, only ids.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditRecord {
    /// Where the record sits in the trail; the paging cursor. Set by the store.
    #[serde(default)]
    pub id: String,
    /// Milliseconds since the Unix epoch.
    pub time_ms: u64,
    pub correlation_id: String,
    /// The acting key or token subject, once authenticated.
    pub principal: Option<String>,
    pub tenant: Option<String>,
    pub client_ip: String,
    pub user_agent: Option<String>,
    pub action: AuditAction,
    /// What it acted on: a key id, a collection, a document or node id.
    pub resource: Option<String>,
    /// The HTTP status it ended with.
    pub status: u16,
    pub success: bool,
}

/// Which records to read, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditQuery {
    /// `None`: every tenant's records (operators only).
    pub tenant: Option<String>,
    pub action: Option<AuditAction>,
    pub principal: Option<String>,
    /// Inclusive bounds in milliseconds since the Unix epoch.
    pub since_ms: Option<u64>,
    pub until_ms: Option<u64>,
    /// Only records older than this cursor (a previous page's `next`).
    pub before: Option<String>,
    pub limit: usize,
}

impl AuditQuery {
    pub fn matches(&self, r: &AuditRecord) -> bool {
        self.tenant
            .as_ref()
            .is_none_or(|t| r.tenant.as_ref() == Some(t))
            && self.action.is_none_or(|a| r.action == a)
            && self
                .principal
                .as_ref()
                .is_none_or(|p| r.principal.as_ref() == Some(p))
            && self.since_ms.is_none_or(|s| r.time_ms >= s)
            && self.until_ms.is_none_or(|u| r.time_ms <= u)
    }
}

/// Records one query reads at most. Past it the page ends early, with the cursor where
/// reading stopped, so a sparse filter over a long trail cannot tie up the store; the
/// caller continues from `next`.
pub const MAX_SCAN: usize = 100_000;

/// A page of records, newest first, and the cursor of the next (older) page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditPage {
    pub records: Vec<AuditRecord>,
    pub next: Option<String>,
}

/// Milliseconds since the Unix epoch.
pub fn unix_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
