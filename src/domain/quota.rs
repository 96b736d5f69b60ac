//! Rate-limit route classes and the outcome of a quota check: named by the
//! configuration (one `[rate_limit]` quota per class), decided by the limiter, reported
//! by the HTTP edge in `RateLimit-*` headers.

/// Route classes, each with its own quota (DESIGN §11 tiers). The configuration names
/// a class by [`Class::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// Posting and deleting ingest events.
    Ingest,
    /// Vector upserts, deletes and collection changes.
    VectorWrite,
    /// Graph node and relationship writes.
    GraphWrite,
    /// Answer generation with the LLM.
    Generate,
    /// Vector and hybrid search.
    Search,
    /// Graph find, neighbours and read-only queries.
    GraphRead,
    /// Other reads: collection info, ingest status.
    Read,
    /// API key management.
    Admin,
    /// Credential checks: token grants, refreshes and failed authentications, per IP.
    Auth,
}

impl Class {
    pub const ALL: [Class; 9] = [
        Class::Ingest,
        Class::VectorWrite,
        Class::GraphWrite,
        Class::Generate,
        Class::Search,
        Class::GraphRead,
        Class::Read,
        Class::Admin,
        Class::Auth,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Class::Ingest => "ingest",
            Class::VectorWrite => "vector_write",
            Class::GraphWrite => "graph_write",
            Class::Generate => "generate",
            Class::Search => "search",
            Class::GraphRead => "graph_read",
            Class::Read => "read",
            Class::Admin => "admin",
            Class::Auth => "auth",
        }
    }
}

/// The state of one caller's quota after a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub class: Class,
    /// Requests allowed at once (the burst).
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the full burst is available again.
    pub reset_secs: u64,
    /// Set when refused: seconds until the next request would be allowed.
    pub retry_after_secs: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_each_class_at_its_discriminant() {
        // `config::Quotas` indexes its array by `class as usize`.
        for (i, class) in Class::ALL.iter().enumerate() {
            assert_eq!(*class as usize, i, "{class:?}");
        }
    }
}
