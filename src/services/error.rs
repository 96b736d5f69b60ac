//! The error every service returns: what went wrong in the caller's terms, free of any
//! transport. The HTTP edge (`http::error`) maps each variant to one status and a
//! problem+json body; store failures keep their [`StoreError`] kind for that mapping.

use crate::store::StoreError;

pub type Result<T, E = ServiceError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request is well-formed but its content is not acceptable (a bound, a name).
    #[error("{0}")]
    Invalid(String),
    /// The request contradicts itself or the protocol (not a content check).
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// A capability this deployment has not configured (e.g. no LLM for generation).
    #[error("{0}")]
    NotConfigured(String),
    /// A fault of ours; the message is for the log only.
    #[error("internal error: {0}")]
    Internal(String),
    /// A store, embedder or backend failed; its kind says how.
    #[error(transparent)]
    Store(#[from] StoreError),
}
