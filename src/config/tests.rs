//! Loading the settings: quotas by class, and the backend sections.

use super::*;
use crate::domain::quota::Class;

#[test]
fn each_class_gets_the_quota_its_key_names() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ragbrain.toml");
    std::fs::write(
        &file,
        "[rate_limit]\nsearch = { per_minute = 7, burst = 3 }\n",
    )
    .unwrap();
    let settings = Settings::load(Some(&file)).unwrap();
    let search = settings.rate_limit.quotas.get(Class::Search);
    assert_eq!((search.per_minute.get(), search.burst.get()), (7, 3));
    // The others keep the defaults' values.
    let auth = settings.rate_limit.quotas.get(Class::Auth);
    assert_eq!((auth.per_minute.get(), auth.burst.get()), (10, 10));
    let ingest = settings.rate_limit.quotas.get(Class::Ingest);
    assert_eq!((ingest.per_minute.get(), ingest.burst.get()), (10, 10));
}

fn load_text(text: &str) -> Result<Settings, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ragbrain.toml");
    std::fs::write(&file, text).unwrap();
    Settings::load(Some(&file))
}

#[test]
fn the_defaults_choose_the_embedded_stores() {
    let s = Settings::load(None).unwrap();
    assert!(matches!(s.vectors.backend, VectorBackend::Embedded));
    assert!(matches!(s.graph.backend, GraphBackend::Embedded));
    assert!(matches!(s.events.backend, EventBackend::Embedded));
    assert!(matches!(s.embedder.backend, EmbedderBackend::Builtin));
}

#[test]
fn a_production_backend_carries_its_keys_with_the_defaults_for_the_rest() {
    let s = load_text(
        "[vectors]\nbackend = \"qdrant\"\nqdrant_url = \"http://q:6334\"\n\
         [graph]\nbackend = \"neo4j\"\nneo4j_uri = \"bolt://n:7687\"\n\
         [cache]\nsearch_ttl_secs = 0\n",
    )
    .unwrap();
    let VectorBackend::Qdrant(qdrant) = &s.vectors.backend else {
        panic!("{:?}", s.vectors.backend)
    };
    assert_eq!(qdrant.url.as_str(), "http://q:6334");
    let GraphBackend::Neo4j(neo4j) = &s.graph.backend else {
        panic!("{:?}", s.graph.backend)
    };
    assert_eq!(neo4j.uri.as_str(), "bolt://n:7687");
    assert_eq!(neo4j.user, "neo4j");
    assert_eq!(neo4j.max_connections.get(), 16);
    assert!(!neo4j.client_cypher);
    // The section's other keys stay where they were.
    assert_eq!(s.vectors.default_collection, "documents");
}

#[test]
fn a_production_backend_without_its_address_is_refused() {
    for (text, key) in [
        (
            "[vectors]\nbackend = \"qdrant\"\n",
            "vectors: qdrant_url: must be set",
        ),
        (
            "[graph]\nbackend = \"neo4j\"\n",
            "graph: neo4j_uri: must be set",
        ),
        (
            "[events]\nbackend = \"kafka\"\n",
            "events: kafka_brokers: must be set",
        ),
        (
            "[embedder]\nbackend = \"openai\"\n",
            "embedder: base_url: must be set",
        ),
    ] {
        let error = load_text(text).unwrap_err().to_string();
        assert!(error.contains(key), "{text}: {error}");
    }
    let error =
        load_text("[embedder]\nbackend = \"openai\"\nbase_url = \"http://e\"\nmodel = \"m\"\n")
            .unwrap_err()
            .to_string();
    assert!(
        error.contains("embedder: dim: must be greater than 0"),
        "{error}"
    );
}

#[test]
fn an_unknown_key_in_a_backend_section_is_refused_whichever_backend() {
    for text in [
        "[vectors]\nqdrant_ulr = \"http://q:6334\"\n",
        "[vectors]\nbackend = \"qdrant\"\nqdrant_url = \"http://q\"\nqdrant_ulr = \"x\"\n",
        "[graph]\nneo4j_pasword = \"x\"\n",
        "[events]\ntopics = \"x\"\n",
        "[embedder]\nmodel_directory = \"x\"\n",
        "[vectors]\nbackend = \"milvus\"\n",
    ] {
        let error = load_text(text).unwrap_err().to_string();
        let section = &text[1..text.find(']').unwrap()];
        assert!(
            error.contains(&format!("{section}.")) && error.contains("unknown"),
            "{text}: {error}"
        );
    }
}

#[test]
fn production_toml_loads_and_one_key_switches_a_section_back() {
    let production = include_str!("../../config/production.toml").replace(
        "jwt_secret = \"\"",
        "jwt_secret = \"0123456789abcdef0123456789abcdef\"",
    );
    let s = load_text(&production).unwrap();
    assert!(matches!(s.vectors.backend, VectorBackend::Qdrant(_)));
    assert!(matches!(s.graph.backend, GraphBackend::Neo4j(_)));
    let EventBackend::Kafka(kafka) = &s.events.backend else {
        panic!("{:?}", s.events.backend)
    };
    assert_eq!((kafka.partitions.get(), kafka.replication.get()), (12, 3));
    // The Qdrant keys stay in the file, unused, once the section is embedded again.
    let back = production.replace("backend = \"qdrant\"", "backend = \"embedded\"");
    let s = load_text(&back).unwrap();
    assert!(matches!(s.vectors.backend, VectorBackend::Embedded));
}

#[test]
fn search_slots_past_any_machine_are_refused_with_the_key_named() {
    assert_eq!(
        load_text("[vectors]\nsearch_slots = 8\n")
            .unwrap()
            .vectors
            .search_slots,
        8
    );
    let e = load_text("[vectors]\nsearch_slots = 1000000\n").unwrap_err();
    assert!(e.to_string().contains("vectors.search_slots"), "{e}");
}

#[test]
fn an_rrf_k_past_what_f32_scores_tell_apart_is_refused() {
    let s = load_text("[hybrid]\ndefault_rrf_k = 1000000\n").unwrap();
    assert_eq!(s.hybrid.default_rrf_k.get(), HybridSettings::MAX_RRF_K);
    let e = load_text("[hybrid]\ndefault_rrf_k = 1000001\n").unwrap_err();
    assert!(e.to_string().contains("hybrid.default_rrf_k"), "{e}");
}
