//! The real backend servers `scripts/test.sh` starts (their addresses come from the
//! environment), and settings that point the server at them. Under `CI=true` a missing
//! Redis, Kafka or Bolt server fails the test; elsewhere the test is skipped with the
//! reason. Qdrant alone may be skipped anywhere: no Qdrant server can be installed from
//! the registries this project's machines reach, so its suite runs when `QDRANT_URL` is
//! set.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::num::NonZero;
use std::sync::Arc;
use std::time::Duration;

use ragbrain::config::Millis;
use ragbrain::config::{
    AuthBackend, CacheBackend, EventBackend, GraphBackend, KafkaSettings, Neo4jSettings,
    QdrantSettings, Required, Settings, VectorBackend,
};
use ragbrain::metrics::Metrics;
use ragbrain::store::resilient::{Policy, Resilience};

fn required(var: &str, what: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{what} test server missing: {var} is not set (./scripts/test.sh starts it)"
            );
            eprintln!(
                "SKIPPED: needs a {what} server; {var} is not set (./scripts/test.sh starts one)"
            );
            None
        }
    }
}

pub fn redis_url() -> Option<String> {
    required("RAGBRAIN_TEST_REDIS_URL", "Redis")
}

pub fn kafka_brokers() -> Option<String> {
    required("RAGBRAIN_TEST_KAFKA_BROKERS", "Kafka-protocol")
}

pub struct Bolt {
    pub uri: String,
    pub user: String,
    pub password: String,
}

pub fn bolt() -> Option<Bolt> {
    let uri = required("RAGBRAIN_TEST_BOLT_URI", "Bolt graph")?;
    Some(Bolt {
        uri,
        user: std::env::var("RAGBRAIN_TEST_BOLT_USER").unwrap_or_else(|_| "neo4j".into()),
        password: std::env::var("RAGBRAIN_TEST_BOLT_PASSWORD").unwrap_or_default(),
    })
}

pub fn qdrant_url() -> Option<String> {
    match std::env::var("QDRANT_URL") {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            eprintln!(
                "SKIPPED: Qdrant contract suite: QDRANT_URL is unset (no Qdrant server can be \
                 installed from this machine's registries; set QDRANT_URL to a server's gRPC \
                 endpoint to run it)"
            );
            None
        }
    }
}

/// A short policy for tests: quick timeouts and a breaker that re-probes soon.
pub fn policy() -> Policy {
    Policy {
        timeout: Duration::from_secs(5),
        max_attempts: 3,
        backoff_base: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        failure_threshold: 3,
        open_for: Duration::from_secs(1),
    }
}

pub fn guard(backend: &'static str) -> Arc<Resilience> {
    Resilience::new(backend, policy(), &Metrics::new())
}

/// A Redis client on the test server with its own key prefix (`None`: no server).
pub fn redis() -> Option<ragbrain::store::redis::Redis> {
    let url = redis_url()?;
    let prefix = format!("{}:", uuid::Uuid::new_v4().simple());
    let redis = ragbrain::store::redis::Redis::connect(
        &url.into(),
        &prefix,
        guard("redis"),
        Duration::from_secs(5),
    )
    .expect("redis client");
    Some(redis)
}

/// A name unique to one test run and stable across its restarts.
pub fn unique(seed: &impl Hash) -> String {
    let mut h = DefaultHasher::new();
    seed.hash(&mut h);
    format!("t{:x}", h.finish())
}

/// API keys, refresh tokens and revocations in Redis, under a prefix unique to the test;
/// the other stores stay embedded.
pub fn redis_auth(s: &mut Settings) {
    s.redis.url = redis_url().unwrap_or_default().into();
    s.redis.key_prefix = format!("{}:", unique(&s.server.data_dir));
    s.auth.backend = AuthBackend::Redis;
    s.auth.jwt_secret = "test-secret-shared-by-every-replica-0123456789"
        .to_owned()
        .into();
}

/// Every store on its production backend (Qdrant only when `QDRANT_URL` is set), with
/// keys, topics and groups unique to this test's data directory. Tests call it after
/// checking the servers are there.
pub fn production(s: &mut Settings) {
    let id = unique(&s.server.data_dir);
    s.redis.url = redis_url().unwrap_or_default().into();
    s.redis.key_prefix = format!("{id}:");
    s.auth.backend = AuthBackend::Redis;
    s.auth.jwt_secret = "test-secret-shared-by-every-replica-0123456789"
        .to_owned()
        .into();
    s.cache.backend = CacheBackend::Redis;
    let brokers = kafka_brokers().unwrap_or_else(|| "unset:9092".into());
    s.events.backend = EventBackend::Kafka(kafka(brokers, &id));
    // A Kafka consumer joins its group in the background, so the log can read empty
    // while events wait: the background worker runs here, not the tests' drain.
    s.ingest.worker = true;
    if let Some(bolt) = bolt() {
        s.graph.backend = GraphBackend::Neo4j(neo4j(bolt));
    }
    if let Some(url) = qdrant_url() {
        s.vectors.backend = VectorBackend::Qdrant(QdrantSettings::new(url));
    }
    let r = &mut s.resilience;
    r.timeout_ms = Millis::new(5000);
    r.failure_threshold = NonZero::new(3).unwrap();
    r.open_ms = Millis::new(1000);
    r.backoff_base_ms = Millis::new(20);
    r.backoff_max_ms = 200;
}

/// The test Bolt server, with client Cypher off as in the defaults.
pub fn neo4j(bolt: Bolt) -> Neo4jSettings {
    Neo4jSettings {
        uri: Required::new(bolt.uri),
        user: bolt.user,
        password: bolt.password.into(),
        database: String::new(),
        max_connections: NonZero::new(16).unwrap(),
        client_cypher: false,
    }
}

/// Kafka topics (3 partitions) and a consumer group of their own, named after `id`.
pub fn kafka(brokers: String, id: &str) -> KafkaSettings {
    KafkaSettings {
        brokers: Required::new(brokers),
        topic: Required::new(format!("{id}.ingest")),
        dead_letter_topic: Required::new(format!("{id}.ingest.dead-letter")),
        group_id: Required::new(format!("{id}-workers")),
        partitions: NonZero::new(3).unwrap(),
        replication: NonZero::new(1).unwrap(),
    }
}

/// Whether the servers `production` needs (Redis, Kafka, Bolt) are all there.
pub fn available() -> bool {
    redis_url().is_some() && kafka_brokers().is_some() && bolt().is_some()
}
