//! One contract suite per store trait, run against every implementation: the embedded
//! default and the production adapter on a real server. Each suite works through the
//! trait alone, so both implementations are held to the same behaviour.

mod audit;
mod auth;
mod cache;
mod events;
mod graph;
mod vectors;

use ragbrain::domain::principal::Tenant;

/// A tenant no other test uses (the real servers are shared by the whole run).
/// A document id the test knows is valid.
pub fn doc_id(id: &str) -> ragbrain::domain::ingest::DocId {
    ragbrain::domain::ingest::DocId::parse(id).expect("a valid document id")
}

pub fn tenant(label: &str) -> Tenant {
    let name = format!(
        "{label}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    Tenant::parse(&name).expect("valid tenant name")
}
