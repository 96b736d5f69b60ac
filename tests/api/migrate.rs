//! `ragbrain migrate`: embedded stores copied to the test command's Redis, Kafka and
//! Bolt servers (and Qdrant when `QDRANT_URL` is set), and from there back into
//! embedded stores, answer every search and graph query as the original server did.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use reqwest::Method;
use serde_json::{Value, json};

use crate::backends;
use crate::helpers::{TestApp, doc_ids, spawn_app, spawn_app_in};

/// Puts documents, a collection of 300 points with a payload index, and a small graph
/// into tenant `tenant`; returns its write key.
async fn fill(app: &TestApp, tenant: &str) -> String {
    let key = app.key(tenant, &["write"]).await;
    let events = json!({"events": [
        {"id": "curie", "text": "Marie Curie discovered polonium and radium in Paris with Pierre Curie."},
        {"id": "institute", "text": "The Radium Institute in Paris was founded for Marie Curie."},
        {"id": "bach", "text": "Johann Sebastian Bach composed the Goldberg Variations in Leipzig."}
    ]});
    let r = app
        .call(Method::POST, "/ingest/batch", &key, Some(events))
        .await;
    assert_eq!(r.status(), 202);
    for status in app
        .wait_ingested(&key, &["curie", "institute", "bach"])
        .await
    {
        assert_eq!(status["status"], "processed", "{status}");
    }
    app.create_collection(&key, "notes", 4).await;
    let index = json!({"field": "kind", "type": "keyword"});
    let r = app
        .call(
            Method::PUT,
            "/vectors/collections/notes/index",
            &key,
            Some(index),
        )
        .await;
    assert_eq!(r.status(), 200);
    // More than one page of the copy (256 points).
    let points: Vec<Value> = (1..=300)
        .map(|i| {
            let a = i as f32 / 50.0;
            json!({"id": i, "vector": [a.cos(), a.sin(), 0.5, (a * 3.0).sin()],
                "payload": {"kind": if i % 2 == 0 { "even" } else { "odd" }, "n": i}})
        })
        .collect();
    let body = json!({"collection": "notes", "points": points});
    let r = app
        .call(Method::POST, "/vectors/upsert", &key, Some(body))
        .await;
    assert_eq!(r.status(), 200);
    for id in ["ada", "charles", "babbage"] {
        let body =
            json!({"id": id, "labels": ["Person"], "properties": {"name": id, "born": 1815}});
        app.json(Method::POST, "/graphs/node", &key, Some(body))
            .await;
    }
    for (from, to) in [("ada", "charles"), ("charles", "babbage")] {
        let body = json!({"from": from, "to": to, "type": "KNOWS", "properties": {"since": 1833}});
        app.json(Method::POST, "/graphs/relationship", &key, Some(body))
            .await;
    }
    key
}

/// What the tenant's searches and graph reads answer.
async fn observe(app: &TestApp, key: &str) -> Value {
    let filtered = json!({"collection": "notes", "vector": [1.0, 0.5, 0.0, 0.0], "limit": 5,
        "filter": {"must": [{"key": "kind", "match": {"value": "even"}}]}});
    let filtered = app
        .json(Method::POST, "/vectors/search", key, Some(filtered))
        .await;
    let text = json!({"text": "Who discovered polonium?", "limit": 3});
    let text = app
        .json(Method::POST, "/vectors/search", key, Some(text))
        .await;
    let hybrid = json!({"query": "Who discovered radium?", "limit": 3, "hops": 1});
    let hybrid = app
        .json(Method::POST, "/hybrid/search", key, Some(hybrid))
        .await;
    let mut entities: Vec<Value> = hybrid["entities"].as_array().unwrap().to_vec();
    entities.sort_by_key(|e| e["name"].to_string());
    let near = json!({"id": "ada", "hops": 2});
    let near = app
        .json(Method::POST, "/graphs/neighbors", key, Some(near))
        .await;
    let info = app
        .json(Method::GET, "/vectors/collections/notes", key, None)
        .await;
    json!({
        "filtered": filtered["hits"],
        "text": text["hits"],
        "hybrid": doc_ids(&hybrid),
        "entities": entities.iter().map(|e| e["name"].clone()).collect::<Vec<_>>(),
        "neighbors": near["neighbors"],
        "points": info["points_count"],
        "indexes": info["payload_indexes"],
        "status": app.json(Method::GET, "/ingest/curie", key, None).await,
    })
}

/// A configuration file keeping every store under `data_dir` (the embedded defaults).
fn embedded_toml(dir: &Path, data_dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("[server]\ndata_dir = {:?}\n", data_dir)).unwrap();
    path
}

/// A configuration file with the settings [`backends::production`] gives a server on
/// `data_dir`: the same Redis prefix, topics and Bolt server.
fn production_toml(dir: &Path, data_dir: &Path) -> PathBuf {
    let id = backends::unique(&data_dir.to_path_buf());
    let bolt = backends::bolt().unwrap();
    let mut toml = format!(
        r#"[server]
data_dir = {data_dir:?}
[redis]
url = "{redis}"
key_prefix = "{id}:"
[auth]
backend = "redis"
jwt_secret = "test-secret-shared-by-every-replica-0123456789"
[cache]
backend = "redis"
[events]
backend = "kafka"
kafka_brokers = "{brokers}"
topic = "{id}.ingest"
dead_letter_topic = "{id}.ingest.dead-letter"
group_id = "{id}-workers"
partitions = 3
replication = 1
[graph]
backend = "neo4j"
neo4j_uri = "{uri}"
neo4j_user = "{user}"
neo4j_password = "{password}"
"#,
        redis = backends::redis_url().unwrap(),
        brokers = backends::kafka_brokers().unwrap(),
        uri = bolt.uri,
        user = bolt.user,
        password = bolt.password,
    );
    if let Some(url) = backends::qdrant_url() {
        toml.push_str(&format!(
            "[vectors]\nbackend = \"qdrant\"\nqdrant_url = \"{url}\"\n"
        ));
    }
    let path = dir.join("production.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

fn migrate(from: &Path, to: &Path, extra: &[&str]) -> Output {
    let state = from.with_extension("state.json");
    let out = Command::new(env!("CARGO_BIN_EXE_ragbrain"))
        .arg("migrate")
        .arg("--from-config")
        .arg(from)
        .arg("--to-config")
        .arg(to)
        .arg("--state")
        .arg(&state)
        .args(extra)
        .env("RAGBRAIN__LOG__LEVEL", "warn")
        .output()
        .expect("ragbrain migrate runs");
    if out.status.success() {
        assert!(
            !state.exists(),
            "the state file is removed after a complete run"
        );
    }
    out
}

fn assert_migrated(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "migrate failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("every count matches"), "{stdout}");
    stdout
}

#[tokio::test]
async fn migrate_copies_embedded_stores_to_the_production_ones_and_back() {
    if !backends::available() {
        return;
    }
    let configs = tempfile::tempdir().unwrap();
    let mut source = spawn_app().await;
    // Its own tenant: every test shares the Bolt server's graph.
    let tenant = backends::unique(&source.data_dir.path().to_path_buf());
    let key = fill(&source, &tenant).await;
    let before = observe(&source, &key).await;
    source.shutdown().await;
    let a = embedded_toml(configs.path(), source.data_dir.path(), "a.toml");

    let b_dir = tempfile::tempdir().unwrap();
    let b = production_toml(configs.path(), b_dir.path());
    let copied = assert_migrated(&migrate(&a, &b, &[]));
    for line in [
        format!("points {tenant}/notes"),
        format!("graph nodes {tenant}"),
    ] {
        assert!(copied.contains(&line), "{line} not checked:\n{copied}");
    }
    // Again: every write is an upsert, and the counts still match.
    assert_migrated(&migrate(&a, &b, &[]));
    let mut production = spawn_app_in(b_dir, backends::production, source.admin_key.clone()).await;
    assert_eq!(observe(&production, &key).await, before);
    production.shutdown().await;

    // Back to embedded stores: only this test's tenant, as the Bolt server and Redis
    // hold every test's.
    let c_dir = tempfile::tempdir().unwrap();
    let c = embedded_toml(configs.path(), c_dir.path(), "c.toml");
    assert_migrated(&migrate(&b, &c, &["--tenant", &tenant]));
    let mut back = spawn_app_in(c_dir, |_| {}, key.clone()).await;
    assert_eq!(observe(&back, &key).await, before);
    back.shutdown().await;
}

#[tokio::test]
async fn migrate_refuses_a_source_with_events_waiting() {
    let configs = tempfile::tempdir().unwrap();
    let mut source = spawn_app().await;
    let key = source.key("acme", &["write"]).await;
    // The tests drive the worker: this event stays in the log.
    let r = source
        .call(
            Method::POST,
            "/ingest",
            &key,
            Some(json!({"id": "waiting", "text": "Not processed yet."})),
        )
        .await;
    assert_eq!(r.status(), 202);
    source.shutdown().await;
    let a = embedded_toml(configs.path(), source.data_dir.path(), "a.toml");
    let target = tempfile::tempdir().unwrap();
    let b = embedded_toml(configs.path(), target.path(), "b.toml");
    let out = migrate(&a, &b, &[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ingest events not yet processed (1)"),
        "{stderr}"
    );
    // The same directory twice is refused before anything is opened.
    let out = migrate(&a, &a, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("both configurations keep embedded stores"),
        "{stderr}"
    );
}

/// Killed in the middle of a collection, the same command carries on from the page it
/// saved and ends with every count matching.
#[tokio::test]
async fn an_interrupted_migration_resumes_at_its_last_saved_page() {
    let configs = tempfile::tempdir().unwrap();
    let mut source = spawn_app().await;
    let key = source.key("acme", &["write"]).await;
    source.create_collection(&key, "bulk", 4).await;
    for batch in 0..20u64 {
        let points: Vec<Value> = (0..1000u64)
            .map(|i| {
                let id = batch * 1000 + i + 1;
                json!({"id": id, "vector": [1.0, id as f32, 0.0, 1.0], "payload": {"n": id}})
            })
            .collect();
        let body = json!({"collection": "bulk", "points": points});
        let r = source
            .call(Method::POST, "/vectors/upsert", &key, Some(body))
            .await;
        assert_eq!(r.status(), 200);
    }
    source.shutdown().await;
    let a = embedded_toml(configs.path(), source.data_dir.path(), "a.toml");
    let target = tempfile::tempdir().unwrap();
    let b = embedded_toml(configs.path(), target.path(), "b.toml");

    let state = a.with_extension("state.json");
    let mut first = Command::new(env!("CARGO_BIN_EXE_ragbrain"))
        .arg("migrate")
        .arg("--from-config")
        .arg(&a)
        .arg("--to-config")
        .arg(&b)
        .arg("--state")
        .arg(&state)
        .env("RAGBRAIN__LOG__LEVEL", "warn")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed once it has saved a page of the collection.
    loop {
        let saved = std::fs::read_to_string(&state).unwrap_or_default();
        if saved.contains("\"points acme/bulk\"") {
            first.kill().unwrap();
            break;
        }
        assert!(
            first.try_wait().unwrap().is_none(),
            "the migration ended before it could be interrupted"
        );
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let _ = first.wait();

    let stdout = assert_migrated(&migrate(&a, &b, &[]));
    assert!(
        stdout.contains("resumed an interrupted migration"),
        "{stdout}"
    );
    let bulk = stdout
        .lines()
        .find(|l| l.starts_with("points acme/bulk"))
        .unwrap();
    assert_eq!(
        bulk.split_whitespace().skip(2).collect::<Vec<_>>(),
        ["20000", "20000"],
        "{stdout}"
    );
}
