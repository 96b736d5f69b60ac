//! Domain types shared by the HTTP layer, the services and the stores: principals and
//! tenants, vector collections and points, graph nodes and relationships.

pub mod graph;
pub mod ingest;
pub mod principal;
pub mod vector;

/// Seconds since the Unix epoch (0 if the clock is before it): the timestamps the API
/// reports and tokens carry.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Names that become directory names, graph names or key prefixes (tenants, collections):
/// `^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`.
pub fn is_valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 64
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-')
}

/// Graph labels and relationship types, which are spliced into Cypher:
/// `^[A-Za-z][A-Za-z0-9_]{0,63}$`.
pub fn is_valid_identifier(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 64
        && bytes[0].is_ascii_alphabetic()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_identifiers_reject_injection() {
        assert!(is_valid_name("acme-corp_1"));
        assert!(!is_valid_name("../etc"));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name(&"a".repeat(65)));
        assert!(is_valid_identifier("Person_2"));
        assert!(!is_valid_identifier("Person`) DETACH DELETE (n"));
        assert!(!is_valid_identifier("1abc"));
        assert!(!is_valid_identifier("a-b"));
    }
}
