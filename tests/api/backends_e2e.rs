//! The whole API on the production backends: auth, cache and ingest status on Redis,
//! the event log on Kafka, the graph on a Bolt server (and vectors on Qdrant when
//! `QDRANT_URL` is set), through HTTP, across a restart.

use std::time::Duration;

use futures_util::StreamExt;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Headers;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message};
use reqwest::Method;
use serde_json::{Value, json};

use crate::backends;
use crate::helpers::{TestApp, doc_ids, ingest_status_after, spawn_app_with};

fn counter(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn the_api_runs_end_to_end_on_redis_kafka_and_a_bolt_server() {
    if !backends::available() {
        return;
    }
    let mut app = spawn_app_with(backends::production).await;
    let key = app.key("acme", &["write"]).await;

    let events = json!({"events": [
        {"id": "curie", "text": "Marie Curie discovered polonium and radium in Paris with Pierre Curie.",
         "metadata": {"title": "Marie Curie"}},
        {"id": "institute", "text": "The Radium Institute in Paris was founded for Marie Curie.",
         "metadata": {"title": "Radium Institute"}},
        {"id": "bach", "text": "Johann Sebastian Bach composed the Goldberg Variations in Leipzig."}
    ]});
    let r = app
        .request(Method::POST, "/ingest/batch")
        .header("X-API-Key", &key)
        .header("X-Correlation-ID", "e2e-ingest-1")
        .json(&events)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    for status in app
        .wait_ingested(&key, &["curie", "institute", "bach"])
        .await
    {
        assert_eq!(status["status"], "processed", "{status}");
    }

    let q = json!({"text": "Who discovered polonium?", "limit": 3});
    let found = app
        .json(Method::POST, "/vectors/search", &key, Some(q.clone()))
        .await;
    assert_eq!(doc_ids(&found)[0], "curie");
    // The same search again is served from the Redis search cache.
    let again = app
        .json(Method::POST, "/vectors/search", &key, Some(q))
        .await;
    assert_eq!(doc_ids(&again), doc_ids(&found));

    let q = json!({"query": "Who discovered radium?", "limit": 3, "hops": 1});
    let hybrid = app
        .json(Method::POST, "/hybrid/search", &key, Some(q))
        .await;
    assert!(doc_ids(&hybrid).contains(&"institute".to_owned()));
    assert!(
        hybrid["entities"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "Marie Curie")
    );

    // Graph writes and reads on the Bolt server.
    for (id, name) in [("ada", "Ada"), ("charles", "Charles")] {
        let body = json!({"id": id, "labels": ["Person"], "properties": {"name": name}});
        app.json(Method::POST, "/graphs/node", &key, Some(body))
            .await;
    }
    let body = json!({"from": "ada", "to": "charles", "type": "KNOWS"});
    app.json(Method::POST, "/graphs/relationship", &key, Some(body))
        .await;
    let near = app
        .json(
            Method::POST,
            "/graphs/neighbors",
            &key,
            Some(json!({"id": "ada", "hops": 1})),
        )
        .await;
    assert_eq!(near["neighbors"][0]["node"]["id"], "charles", "{near}");
    // Client Cypher is off on a shared graph server.
    let r = app
        .call(
            Method::POST,
            "/graphs/query",
            &key,
            Some(json!({"query": "MATCH (n) RETURN n"})),
        )
        .await;
    assert_eq!(r.status(), 501);

    // Deleting a document goes through the log too.
    let r = app.call(Method::DELETE, "/ingest/bach", &key, None).await;
    assert_eq!(r.status(), 202);
    app.wait_deleted(&key, "bach").await;

    let ready = app.get("/health/ready").await;
    assert_eq!(ready.status(), 200);
    let checks: Value = ready.json().await.unwrap();
    for check in [
        "breaker:redis",
        "breaker:kafka",
        "breaker:neo4j",
        "search_cache",
    ] {
        assert_eq!(checks["checks"][check], "ok", "{checks}");
    }
    let metrics = app.get("/metrics").await.text().await.unwrap();
    for series in [
        r#"backend_requests_total{backend="kafka",op="append",outcome="ok"}"#,
        r#"backend_requests_total{backend="neo4j",op="replace_documents",outcome="ok"}"#,
        r#"backend_requests_total{backend="redis",op="get_key",outcome="ok"}"#,
        r#"cache_requests_total{cache="search",result="hit"}"#,
    ] {
        assert!(counter(&metrics, series) >= 1.0, "{series} missing");
    }
    assert!(metrics.contains(r#"circuit_breaker_state{backend="redis"} 0"#));

    // Keys, statuses and data live in the backends: a new process sees them all.
    app.restart().await;
    let status = app.json(Method::GET, "/ingest/curie", &key, None).await;
    assert_eq!(status["status"], "processed");
    let q = json!({"text": "Who discovered polonium?", "limit": 3});
    let found = app
        .json(Method::POST, "/vectors/search", &key, Some(q))
        .await;
    assert_eq!(doc_ids(&found)[0], "curie");
    let near = app
        .json(
            Method::POST,
            "/graphs/neighbors",
            &key,
            Some(json!({"id": "ada", "hops": 1})),
        )
        .await;
    assert_eq!(near["neighbors"].as_array().unwrap().len(), 1);
    app.shutdown().await;
}

/// A message the worker cannot decode goes to the dead-letter topic with the reason,
/// and the events after it are processed; every event carries its correlation id in a
/// header. It runs as its own tenant: every test shares the Bolt graph, and another
/// test's ingest of the same entities under the same tenant would race this one's.
#[tokio::test]
async fn poison_events_are_dead_lettered_and_the_log_moves_on() {
    if !backends::available() {
        return;
    }
    let app = spawn_app_with(backends::production).await;
    let key = app.key("deadletter", &["write"]).await;
    let id = backends::unique(&app.data_dir.path().to_path_buf());
    let brokers = backends::kafka_brokers().unwrap();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    let topic = format!("{id}.ingest");
    let poison = FutureRecord::to(&topic)
        .key("deadletter/poison")
        .payload("this is not an event");
    producer
        .send(poison, Duration::from_secs(10))
        .await
        .unwrap();

    let r = app
        .request(Method::POST, "/ingest")
        .header("X-API-Key", &key)
        .header("X-Correlation-ID", "after-poison")
        .json(&json!({"id": "good", "text": "Ada Lovelace wrote the first program."}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let status = &app.wait_ingested(&key, &["good"]).await[0];
    assert_eq!(status["status"], "processed", "{status}");

    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", format!("{id}-inspect"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer
        .subscribe(&[&format!("{id}.ingest.dead-letter"), &format!("{id}.ingest")])
        .unwrap();
    let (mut dead, mut correlation) = (None, None);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while (dead.is_none() || correlation.is_none()) && tokio::time::Instant::now() < deadline {
        let Ok(Ok(m)) = tokio::time::timeout(Duration::from_secs(5), consumer.recv()).await else {
            continue;
        };
        let header = |name: &str| {
            m.headers().and_then(|h| {
                h.iter()
                    .find(|x| x.key == name)
                    .and_then(|x| x.value.map(|v| String::from_utf8_lossy(v).into_owned()))
            })
        };
        if m.topic().ends_with("dead-letter") {
            assert_eq!(m.payload(), Some(&b"this is not an event"[..]));
            dead = header("error");
        } else if m.key() == Some(&b"deadletter/good"[..]) {
            correlation = header("correlation-id");
        }
    }
    assert!(
        dead.unwrap_or_default().contains("unreadable event"),
        "dead letter with its reason"
    );
    assert_eq!(correlation.as_deref(), Some("after-poison"));
    let mut app = app;
    app.shutdown().await;
}

/// `config/production.toml`, with the addresses of the test servers given the way an
/// operator gives secrets (environment variables), starts a server that is ready and
/// ingests.
#[tokio::test]
async fn production_toml_starts_the_server_against_the_real_servers() {
    if !backends::available() {
        return;
    }
    let bolt = backends::bolt().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let id = backends::unique(&dir.path().to_path_buf());
    let port = crate::helpers::free_port();
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/config/production.toml");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ragbrain"));
    cmd.args(["serve", "--config", config, "--host", "127.0.0.1"])
        .args(["--port", &port.to_string(), "--data-dir"])
        .arg(dir.path())
        .env("RAGBRAIN__LOG__LEVEL", "warn")
        .env("RAGBRAIN__RATE_LIMIT__ENABLED", "false")
        .env(
            "RAGBRAIN__AUTH__JWT_SECRET",
            "a-production-like-secret-of-32-bytes-or-more",
        )
        .env("RAGBRAIN__REDIS__URL", backends::redis_url().unwrap())
        .env("RAGBRAIN__REDIS__KEY_PREFIX", format!("{id}:"))
        .env(
            "RAGBRAIN__EVENTS__KAFKA_BROKERS",
            backends::kafka_brokers().unwrap(),
        )
        .env("RAGBRAIN__EVENTS__TOPIC", format!("{id}.ingest"))
        .env("RAGBRAIN__EVENTS__DEAD_LETTER_TOPIC", format!("{id}.dead"))
        .env("RAGBRAIN__EVENTS__GROUP_ID", format!("{id}-workers"))
        // One broker here: topics cannot have three replicas.
        .env("RAGBRAIN__EVENTS__REPLICATION", "1")
        .env("RAGBRAIN__GRAPH__NEO4J_URI", &bolt.uri)
        .env("RAGBRAIN__GRAPH__NEO4J_USER", &bolt.user)
        .env("RAGBRAIN__GRAPH__NEO4J_PASSWORD", &bolt.password)
        .stderr(std::process::Stdio::inherit());
    match backends::qdrant_url() {
        Some(url) => cmd.env("RAGBRAIN__VECTORS__QDRANT_URL", url),
        None => cmd.env("RAGBRAIN__VECTORS__BACKEND", "embedded"),
    };
    let mut server = cmd.spawn().expect("ragbrain starts");
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let mut ready = None;
    for _ in 0..300 {
        if let Ok(r) = client.get(format!("{base}/health/ready")).send().await {
            ready = Some(r.status());
            if r.status() == 200 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ready, Some(reqwest::StatusCode::OK));
    let admin = std::fs::read_to_string(dir.path().join("bootstrap-admin.key")).unwrap();
    let r = client
        .post(format!("{base}/ingest"))
        .header("X-API-Key", admin.trim())
        .json(&json!({"id": "hello", "text": "Grace Hopper wrote the first compiler."}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let status = ingest_status_after(&client, port, admin.trim(), "hello", 300).await;
    assert_eq!(status["status"], "processed", "{status}");
    server.kill().unwrap();
    let _ = server.wait();
}

/// An app on the production backends and a write key for a tenant of its own; `None`
/// when the backends are not running.
async fn production_writer() -> Option<(TestApp, String)> {
    if !backends::available() {
        return None;
    }
    let app = spawn_app_with(backends::production).await;
    let tenant = backends::unique(&app.data_dir.path().to_path_buf());
    let key = app.key(&tenant, &["write"]).await;
    Some((app, key))
}

/// Sixteen clients linking 64 nodes to one hub at once on the Bolt server: the deadlocks
/// the server reports between them are retried, every write succeeds, and the circuit
/// breaker stays closed for everyone else.
#[tokio::test]
async fn concurrent_writes_to_one_hub_on_the_bolt_server_all_succeed() {
    let Some((mut app, key)) = production_writer().await else {
        return;
    };
    let node = |id: String| json!({"id": id, "labels": ["Person"]});
    app.json(Method::POST, "/graphs/node", &key, Some(node("hub".into())))
        .await;
    for i in 0..64 {
        app.json(
            Method::POST,
            "/graphs/node",
            &key,
            Some(node(format!("n{i}"))),
        )
        .await;
    }
    let statuses: Vec<u16> = futures_util::stream::iter(0..64)
        .map(|i| {
            let body = json!({"from": format!("n{i}"), "to": "hub", "type": "KNOWS"});
            let (app, key) = (&app, &key);
            async move {
                let r = app
                    .call(Method::POST, "/graphs/relationship", key, Some(body))
                    .await;
                r.status().as_u16()
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(
        statuses.iter().all(|s| (200..300).contains(s)),
        "{statuses:?}"
    );
    let near = json!({"id": "hub", "hops": 1, "limit": 100});
    let near = app
        .json(Method::POST, "/graphs/neighbors", &key, Some(near))
        .await;
    assert_eq!(near["neighbors"].as_array().unwrap().len(), 64);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains(r#"circuit_breaker_state{backend="neo4j"} 0"#));
    app.shutdown().await;
}

/// Writers creating, linking and deleting the same few nodes at once on the Bolt server.
/// The server reads committed data, so a node can go between a write's existence check
/// and its next statement; such a lost race is retried like a deadlock, and a delete is
/// retried after one too. Before, the first came back 500 ("node write returned no
/// node") or as a relationship written to nobody, and the second 503.
#[tokio::test]
async fn writes_and_deletes_of_the_same_nodes_on_the_bolt_server_never_fail() {
    let Some((mut app, key)) = production_writer().await else {
        return;
    };
    let statuses: Vec<(&str, u16)> = futures_util::stream::iter(0..480u32)
        .map(|i| {
            let (a, b) = (format!("n{}", i % 3), format!("n{}", (i / 3) % 3));
            let (method, path, body, what) = match i % 4 {
                0 | 1 => (
                    Method::POST,
                    "/graphs/node".to_owned(),
                    Some(json!({"id": a, "labels": ["Person"], "properties": {"i": i}})),
                    "upsert node",
                ),
                2 => (
                    Method::POST,
                    "/graphs/relationship".to_owned(),
                    Some(json!({"from": a, "to": b, "type": "KNOWS"})),
                    "upsert relationship",
                ),
                _ => (Method::DELETE, format!("/graphs/node/{a}"), None, "delete"),
            };
            let (app, key) = (&app, &key);
            async move {
                let r = app.call(method, &path, key, body).await;
                (what, r.status().as_u16())
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let failed: Vec<_> = statuses
        .iter()
        .filter(|(_, s)| ![200, 201, 204, 404].contains(s))
        .collect();
    assert!(failed.is_empty(), "{failed:?}");
    app.shutdown().await;
}

/// Sixteen writers at once giving the Bolt server a label, then a relationship type, it
/// has never seen. ArcadeDB creates a type on a label's first write, and the writers
/// that lose that race get `SemanticError` on a statement of ours: they came back 422,
/// blaming the caller, until such errors were retried as lost races.
#[tokio::test]
async fn first_writes_of_a_new_label_or_type_at_once_all_succeed_on_the_bolt_server() {
    let Some((mut app, key)) = production_writer().await else {
        return;
    };
    let fresh = || uuid::Uuid::now_v7().simple().to_string();
    for _ in 0..4 {
        let (label, rel_type) = (format!("L{}", fresh()), format!("T{}", fresh()));
        let id = |i: u32| format!("{label}-{i}");
        let nodes = (0..16).map(|i| ("/graphs/node", json!({"id": id(i), "labels": [label]})));
        let failed = refused_at_once(&app, &key, nodes).await;
        assert!(failed.is_empty(), "new label: {failed:?}");
        let links = (0..16).map(|i| {
            let link = json!({"from": id(i), "to": id((i + 1) % 16), "type": rel_type});
            ("/graphs/relationship", link)
        });
        let failed = refused_at_once(&app, &key, links).await;
        assert!(failed.is_empty(), "new relationship type: {failed:?}");
    }
    app.shutdown().await;
}

/// POSTs every (path, body) at once; the answers other than 200 and 201, with their bodies.
async fn refused_at_once(
    app: &TestApp,
    key: &str,
    writes: impl Iterator<Item = (&'static str, Value)>,
) -> Vec<(u16, String)> {
    let calls = writes.map(|(path, body)| app.call(Method::POST, path, key, Some(body)));
    let mut refused = Vec::new();
    for r in futures_util::future::join_all(calls).await {
        let status = r.status().as_u16();
        if ![200, 201].contains(&status) {
            refused.push((status, r.text().await.unwrap()));
        }
    }
    refused
}

/// The largest event the API takes fits a Kafka message: text of `ingest.max_text_bytes`
/// that JSON escapes six-fold (control characters), and metadata of
/// `ingest.max_metadata_bytes`. Before, librdkafka refused any message over 1,000,000
/// bytes and the client got 502 for a valid request.
#[tokio::test]
async fn the_largest_events_fit_a_kafka_message() {
    if !backends::available() {
        return;
    }
    let app = spawn_app_with(|s| {
        backends::production(s);
        s.ingest.worker = false;
    })
    .await;
    let key = app.key("bigevents", &["write"]).await;
    let defaults = ragbrain::config::Settings::load(None).unwrap().ingest;
    let text = format!("a{}", "\u{1}".repeat(defaults.max_text_bytes.get() - 1));
    let metadata = json!({"note": "x".repeat(defaults.max_metadata_bytes - 64)});
    let event = json!({"id": "big", "text": text, "metadata": metadata});
    let r = app.call(Method::POST, "/ingest", &key, Some(event)).await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let small = json!({"id": "small", "text": "Ada Lovelace wrote the first program."});
    let r = app.call(Method::POST, "/ingest", &key, Some(small)).await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let mut app = app;
    app.shutdown().await;
}
