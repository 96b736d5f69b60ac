//! Round trips to each production backend, through the server versus the backend alone,
//! measured in one run on the same machine: p50 and p99 of N sequential calls (500
//! under `cargo bench`, 5 under `cargo test`, which runs benches once as a smoke test).
//!
//! The backends come from the environment the test command sets
//! (`scripts/bench-backends.sh` starts them and runs this):
//! `RAGBRAIN_TEST_REDIS_URL`, `RAGBRAIN_TEST_KAFKA_BROKERS`, `RAGBRAIN_TEST_BOLT_URI`
//! (+ `_USER`, `_PASSWORD`), and `QDRANT_URL` when a Qdrant server is available.
//!
//! Pairs, each "alone" call made with the same client crate the server uses:
//! - redis: `GET /ingest/{id}` (one HGET: API keys stay embedded here) vs HGET;
//! - bolt: `POST /graphs/node/find` (one READ query) vs the same Cypher via neo4rs;
//! - kafka: `POST /ingest` (Redis INCRBY + pipeline, then one produce with acks=all)
//!   vs one produce with acks=all;
//! - qdrant: `POST /vectors/search` vs the same search via qdrant-client.

use std::num::{NonZeroU32, NonZeroUsize};
use std::time::{Duration, Instant};

use ragbrain::app::Application;
use ragbrain::config::{
    EventBackend, GraphBackend, KafkaSettings, Neo4jSettings, QdrantSettings, Required, Settings,
    VectorBackend,
};
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;

fn env(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|v| !v.is_empty())
}

fn quantiles(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| {
        let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples[i].as_secs_f64() * 1000.0
    };
    (at(0.5), at(0.99))
}

async fn time<F, Fut>(n: usize, mut call: F) -> (f64, f64)
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for i in 0..n.min(20) {
        call(i).await; // warm-up: connections, plans, caches
    }
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let started = Instant::now();
        call(i).await;
        samples.push(started.elapsed());
    }
    quantiles(samples)
}

fn report(backend: &str, server: (f64, f64), alone: (f64, f64)) {
    println!(
        "{backend:<7} through server p50 {:>7.3} ms p99 {:>7.3} ms | alone p50 {:>7.3} ms p99 {:>7.3} ms | server adds {:>6.3} ms at p50 ({:.1}x)",
        server.0,
        server.1,
        alone.0,
        alone.1,
        server.0 - alone.0,
        server.0 / alone.0
    );
}

#[tokio::main]
async fn main() {
    let n = if std::env::args().any(|a| a == "--bench") {
        500
    } else {
        5
    };
    let (Some(redis_url), Some(brokers), Some(bolt_uri)) = (
        env("RAGBRAIN_TEST_REDIS_URL"),
        env("RAGBRAIN_TEST_KAFKA_BROKERS"),
        env("RAGBRAIN_TEST_BOLT_URI"),
    ) else {
        println!("backends bench skipped: start the servers with scripts/bench-backends.sh");
        return;
    };
    let bolt_user = env("RAGBRAIN_TEST_BOLT_USER").unwrap_or_else(|| "neo4j".into());
    let bolt_password = env("RAGBRAIN_TEST_BOLT_PASSWORD").unwrap_or_default();
    let qdrant = env("QDRANT_URL");
    let run = uuid::Uuid::new_v4().simple().to_string();

    let dir = tempfile::tempdir().unwrap();
    let mut s = Settings::load(None).unwrap();
    s.server.port = 0;
    s.server.data_dir = dir.path().to_path_buf();
    s.rate_limit.enabled = false;
    s.log.level = "warn".into();
    s.cache.search_ttl_secs = 0; // measure the backend, not the cache
    s.redis.url = redis_url.clone().into();
    s.redis.key_prefix = format!("bench{run}:");
    s.events.backend = EventBackend::Kafka(KafkaSettings {
        brokers: Required::new(brokers.as_str()),
        topic: Required::new(format!("bench{run}.ingest")),
        dead_letter_topic: Required::new(format!("bench{run}.dead")),
        group_id: Required::new(format!("bench{run}")),
        partitions: NonZeroU32::MIN,
        replication: NonZeroU32::MIN,
    });
    s.graph.backend = GraphBackend::Neo4j(Neo4jSettings {
        uri: Required::new(bolt_uri.as_str()),
        user: bolt_user.clone(),
        password: bolt_password.clone().into(),
        database: String::new(),
        max_connections: NonZeroUsize::new(16).unwrap(),
        client_cypher: false,
    });
    if let Some(url) = &qdrant {
        s.vectors.backend = VectorBackend::Qdrant(QdrantSettings::new(url.as_str()));
    }
    let app = Application::build(s).await.expect("server starts");
    let base = format!("http://127.0.0.1:{}", app.port());
    let key = std::fs::read_to_string(dir.path().join("bootstrap-admin.key"))
        .unwrap()
        .trim()
        .to_owned();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();
    let post = |path: &str, body: serde_json::Value| {
        http.post(format!("{base}{path}"))
            .header("X-API-Key", &key)
            .json(&body)
    };
    println!("{n} sequential calls each, after a warm-up; times in ms");

    // Redis: one status read.
    let r = post("/ingest", json!({"id": "probe", "text": "Ada Lovelace."}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let server_redis = time(n, |_| async {
        let r = http
            .get(format!("{base}/ingest/probe"))
            .header("X-API-Key", &key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
    })
    .await;
    let client = redis::Client::open(redis_url.as_str()).unwrap();
    let conn = redis::aio::ConnectionManager::new(client).await.unwrap();
    let status_key = format!("bench{run}:status:default:probe");
    let alone_redis = time(n, |_| {
        let mut conn = conn.clone();
        let status_key = status_key.clone();
        async move {
            let body: Option<String> = redis::cmd("HGET")
                .arg(&status_key)
                .arg("body")
                .query_async(&mut conn)
                .await
                .unwrap();
            assert!(body.is_some());
        }
    })
    .await;
    report("redis", server_redis, alone_redis);

    // Bolt: one read query.
    for i in 0..50 {
        let body = json!({"id": format!("p{i}"), "labels": ["Person"], "properties": {"name": format!("P{i}")}});
        let r = post("/graphs/node", body).send().await.unwrap();
        assert!(r.status().is_success());
    }
    let server_bolt = time(n, |i| {
        let req = post(
            "/graphs/node/find",
            json!({"label": "Person", "properties": {"name": format!("P{}", i % 50)}, "limit": 10}),
        );
        async move {
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.bytes().await.unwrap();
        }
    })
    .await;
    let graph = neo4rs::Graph::connect(
        neo4rs::ConfigBuilder::default()
            .uri(bolt_uri.as_str())
            .user(bolt_user.as_str())
            .password(bolt_password.as_str())
            .build()
            .unwrap(),
    )
    .unwrap();
    let cypher = "MATCH (n:`_rb_node`:`Person`) WHERE n.tenant = $tenant AND n[$k0] = $v0 \
                  RETURN n.id, labels(n), properties(n) ORDER BY n.id SKIP 0 LIMIT 10";
    let alone_bolt = time(n, |i| {
        let q = neo4rs::query(cypher)
            .param("tenant", "default")
            .param("k0", "name")
            .param("v0", format!("P{}", i % 50));
        let graph = &graph;
        async move {
            let mut rows = graph.execute_read(q).await.unwrap();
            let mut got = 0;
            while rows.next().await.unwrap().is_some() {
                got += 1;
            }
            assert_eq!(got, 1);
        }
    })
    .await;
    report("bolt", server_bolt, alone_bolt);

    // Kafka: one acknowledged event.
    let server_kafka = time(n, |i| {
        let req = post(
            "/ingest",
            json!({"id": format!("k{i}"), "text": "Grace Hopper."}),
        );
        async move {
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 202);
            r.bytes().await.unwrap();
        }
    })
    .await;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "0") // as the server's producer
        .create()
        .unwrap();
    let topic = format!("bench{run}.ingest");
    let alone_kafka = time(n, |i| {
        let (producer, topic) = (&producer, &topic);
        async move {
            let key = format!("default/a{i}");
            let record = FutureRecord::to(topic).key(&key).payload("{}");
            producer
                .send(record, Duration::from_secs(10))
                .await
                .unwrap();
        }
    })
    .await;
    report("kafka", server_kafka, alone_kafka);

    match &qdrant {
        Some(url) => {
            let points: Vec<_> = (0..100)
                .map(|i| json!({"id": i, "vector": [i as f32, 1.0, 0.5], "payload": {}}))
                .collect();
            let body = json!({"collection": "bench", "points": points});
            let r = http
                .put(format!("{base}/vectors/collections/bench"))
                .header("X-API-Key", &key)
                .json(&json!({"dim": 3}))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success());
            assert!(
                post("/vectors/upsert", body)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .is_success()
            );
            let search = json!({"collection": "bench", "vector": [3.0, 1.0, 0.5], "limit": 10});
            let server_q = time(n, |_| {
                let req = post("/vectors/search", search.clone());
                async move {
                    let r = req.send().await.unwrap();
                    assert_eq!(r.status(), 200);
                    r.bytes().await.unwrap();
                }
            })
            .await;
            let q = qdrant_client::Qdrant::from_url(url).build().unwrap();
            let alone_q = time(n, |_| async {
                let request =
                    qdrant_client::qdrant::QueryPointsBuilder::new("ragbrain.default.bench")
                        .query(vec![3.0, 1.0, 0.5])
                        .limit(10)
                        .filter(qdrant_client::qdrant::Filter::must([
                            qdrant_client::qdrant::Condition::matches(
                                "tenant",
                                "default".to_owned(),
                            ),
                        ]))
                        .with_payload(true);
                q.query(request).await.unwrap();
            })
            .await;
            report("qdrant", server_q, alone_q);
        }
        None => println!("qdrant  not measured: QDRANT_URL is unset (no Qdrant server here)"),
    }

    let _ = stop.send(());
    let _ = server.await;
}
