//! Faults under load: with the server on its production backends and a steady load of
//! vector searches, graph finds and ingests, each backend goes away for a few seconds
//! in turn and comes back. Redis is a server of the test's own, killed and restarted
//! (its data on an append-only file). The Kafka-protocol broker (a tansu of the test's
//! own, advertised through a proxy) and the Bolt server (the suite's shared one, used by
//! other tests at the same time) are cut at a TCP proxy: every open connection is
//! dropped and new ones are refused until the restore, which is what the server sees of
//! a broker or graph server restarting (tansu keeps its log in memory, so a real restart
//! would lose the events the test counts). With `QDRANT_URL` set, vectors are on that
//! Qdrant, behind a proxy of its own, and it gets an outage too.
//!
//! Must hold: the server answers every call within its bounds (503 with `Retry-After`
//! or 504 when the call needs the missing backend, never a hang and never another
//! error); calls that do not need it keep succeeding; traffic recovers within the
//! breaker's cool-down plus a probe; `/health/ready` reports the outage and the
//! recovery; the metrics count it; and every ingest event acknowledged with 202 ends
//! `processed`, once in effect (one point per document).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::NonZero;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use ragbrain::config::Millis;
use ragbrain::config::{EventBackend, GraphBackend, Required, Settings, VectorBackend};
use reqwest::Method;
use serde_json::json;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::backends;
use crate::faults::{OwnRedis, wait_port};
use crate::helpers::{free_port, spawn_app_with};

mod load;
mod proxy;

use load::{Call, Kind, Load, drive};
use proxy::Proxy;

/// Where the server under test finds its backends.
struct Endpoints {
    redis_url: String,
    kafka: String,
    bolt: String,
    /// The Qdrant proxy's URL, when `QDRANT_URL` names a server.
    qdrant: Option<String>,
}

static ENDPOINTS: OnceLock<Endpoints> = OnceLock::new();

fn through_the_proxies(s: &mut Settings) {
    backends::production(s);
    let e = ENDPOINTS.get().expect("endpoints set");
    s.redis.url = e.redis_url.clone().into();
    if let EventBackend::Kafka(kafka) = &mut s.events.backend {
        kafka.brokers = Required::new(e.kafka.as_str());
    }
    if let GraphBackend::Neo4j(neo4j) = &mut s.graph.backend {
        neo4j.uri = Required::new(e.bolt.as_str());
    }
    if let (Some(qdrant), VectorBackend::Qdrant(settings)) = (&e.qdrant, &mut s.vectors.backend) {
        settings.url = Required::new(qdrant.as_str());
    }
    s.server.request_timeout_ms = Millis::new(5_000);
    // Batches whose graph fits the timeout on the shared Bolt server.
    s.ingest.worker_batch = NonZero::new(16).unwrap();
    let r = &mut s.resilience;
    // A batch of ingested documents is one Bolt transaction, which the shared test
    // server (ArcadeDB) takes over a second to commit under this load.
    r.timeout_ms = Millis::new(3_000);
    r.max_attempts = NonZero::new(2).unwrap();
    r.failure_threshold = NonZero::new(3).unwrap();
    r.open_ms = Millis::new(1_000);
}

/// A child process killed when the test ends, passed or failed.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_tansu(binary: &str, port: u16, advertised: u16) -> Child {
    Command::new(binary)
        .arg("broker")
        .args(["--listener-url", &format!("tcp://127.0.0.1:{port}")])
        .args([
            "--advertised-listener-url",
            &format!("tcp://127.0.0.1:{advertised}"),
        ])
        .args(["--storage-engine", "memory://tansu/"])
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tansu starts")
}

#[derive(Debug)]
struct Outage {
    backend: &'static str,
    cut: f64,
    restored: f64,
}

/// Calls to `backend` the metrics count as anything but `ok`.
fn failures_counted(metrics: &str, backend: &str) -> f64 {
    let prefix = format!("backend_requests_total{{backend=\"{backend}\",");
    metrics
        .lines()
        .filter(|l| l.starts_with(&prefix) && !l.contains("outcome=\"ok\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn each_backend_fails_and_returns_under_load() {
    if !backends::available() {
        return;
    }
    let tansu = std::env::var("RAGBRAIN_TEST_TANSU")
        .expect("RAGBRAIN_TEST_TANSU (scripts/test.sh sets it)");
    let mut redis = OwnRedis::start().await;
    let bolt_target: SocketAddr = backends::bolt().unwrap().uri.parse().unwrap();
    let bolt = Proxy::start(bolt_target);
    let tansu_port = free_port();
    let kafka = Proxy::start(([127, 0, 0, 1], tansu_port).into());
    let _broker = KillOnDrop(start_tansu(&tansu, tansu_port, kafka.port));
    // Qdrant, when the run has one: vector search and the worker's point writes go
    // through a proxy too, and it gets its own outage.
    let qdrant = match backends::qdrant_url() {
        Some(url) => {
            let authority = url
                .split("://")
                .last()
                .unwrap_or(&url)
                .trim_end_matches('/');
            let target = tokio::net::lookup_host(authority)
                .await
                .expect("QDRANT_URL resolves")
                .next()
                .expect("an address for QDRANT_URL");
            Some(Proxy::start(target))
        }
        None => None,
    };
    wait_port(tansu_port).await;
    ENDPOINTS
        .set(Endpoints {
            redis_url: redis.url(),
            kafka: format!("127.0.0.1:{}", kafka.port),
            bolt: format!("127.0.0.1:{}", bolt.port),
            qdrant: qdrant
                .as_ref()
                .map(|p| format!("http://127.0.0.1:{}", p.port)),
        })
        .ok()
        .unwrap();

    let app = spawn_app_with(through_the_proxies).await;
    let key = app.key("chaos", &["read", "write"]).await;
    app.create_collection(&key, "chaos", 3).await;
    let points = json!({"collection": "chaos", "points": [{"id": 1, "vector": [0.1, 0.2, 0.3]}]});
    assert_eq!(
        app.call(Method::POST, "/vectors/upsert", &key, Some(points))
            .await
            .status(),
        200
    );
    let anchor =
        json!({"id": "anchor", "labels": ["ChaosEntity"], "properties": {"name": "anchor"}});
    assert_eq!(
        app.call(Method::POST, "/graphs/node", &key, Some(anchor))
            .await
            .status(),
        201
    );

    let app = Arc::new(app);
    let load = Arc::new(Load {
        started: Instant::now(),
        calls: Mutex::default(),
        accepted: Mutex::default(),
        ready: Mutex::default(),
    });
    let (stop, stopped) = watch::channel(false);
    let tasks = drive(app.clone(), key.clone(), load.clone(), stopped);

    let outage = Duration::from_secs(4);
    let settle = Duration::from_secs(6);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut outages = Vec::new();
    // Redis: killed and started again on its data.
    let cut = load.now();
    redis.kill();
    tokio::time::sleep(outage).await;
    redis.restart().await;
    outages.push(Outage {
        backend: "redis",
        cut,
        restored: load.now(),
    });
    tokio::time::sleep(settle).await;
    let mut legs = vec![("kafka", &kafka), ("neo4j", &bolt)];
    if let Some(q) = &qdrant {
        legs.push(("qdrant", q));
    }
    for (backend, proxy) in legs {
        let cut = load.now();
        proxy.cut();
        tokio::time::sleep(outage).await;
        proxy.restore();
        outages.push(Outage {
            backend,
            cut,
            restored: load.now(),
        });
        tokio::time::sleep(settle).await;
    }
    stop.send_replace(true);
    for t in tasks {
        t.await.unwrap();
    }
    let calls = load.calls.lock().unwrap().clone();
    let ready = load.ready.lock().unwrap().clone();

    // Every call got an answer within the request bound, and only the answers allowed.
    for c in &calls {
        assert_ne!(c.status, 0, "no answer within 15 s: {c:?}");
        assert!(
            c.end - c.start < 6.5,
            "slower than the request deadline: {c:?}"
        );
        match c.status {
            200..=299 | 504 => {}
            503 => assert!(c.retry_after, "503 without Retry-After: {c:?}"),
            _ => panic!("unexpected status: {c:?}"),
        }
        for internal in ["redis", "kafka", "neo4j", "graph server", "127.0.0.1"] {
            assert!(
                !c.body.contains(internal),
                "a 5xx body leaks {internal}: {c:?}"
            );
        }
    }
    // Which calls need which backend (every call authenticates on Redis).
    let needs = |backend: &str, kind: Kind| match backend {
        "redis" => true,
        "kafka" => kind == Kind::Ingest,
        "qdrant" => kind == Kind::Search,
        _ => kind == Kind::Find,
    };
    let mut report = Vec::new();
    for o in &outages {
        // Outages are apart by more than the settling time.
        let failed: Vec<&Call> = calls
            .iter()
            .filter(|c| c.status >= 500 && c.end >= o.cut && c.end < o.restored + 6.0)
            .collect();
        // The calls that do not need the missing backend kept succeeding.
        for c in calls
            .iter()
            .filter(|c| c.start > o.cut + 0.2 && c.end < o.restored + 6.0)
        {
            if !needs(o.backend, c.kind) {
                assert!(c.status < 500, "{} down, yet {c:?} failed", o.backend);
            }
        }
        let first = failed.iter().map(|c| c.end).fold(f64::MAX, f64::min);
        let last = failed.iter().map(|c| c.end).fold(0.0, f64::max);
        let recovered = (last - o.restored).max(0.0);
        assert!(!failed.is_empty(), "{} outage went unnoticed", o.backend);
        // Cool-down (1 s) plus a probe bounded by the 3 s timeout, and some slack for a
        // client's reconnect backoff (1 s at most for Kafka).
        assert!(
            recovered < 5.0,
            "{} recovered {recovered:.1} s after its return",
            o.backend
        );
        let not_ready = ready
            .iter()
            .any(|(at, s)| *s == 503 && *at > o.cut && *at < o.restored);
        assert!(
            not_ready,
            "/health/ready did not report the {} outage",
            o.backend
        );
        report.push(format!(
            "{}: down {:.1} s; errors from {:+.1} s to {:+.1} s of the cut ({} calls); recovered {:.1} s after the return",
            o.backend,
            o.restored - o.cut,
            first - o.cut,
            last - o.cut,
            failed.len(),
            recovered
        ));
    }
    let end = load.now();
    assert!(
        ready.iter().rev().take(3).all(|(_, s)| *s == 200),
        "/health/ready after the recovery: {:?}",
        &ready[ready.len().saturating_sub(5)..]
    );
    let metrics = app.get("/metrics").await.text().await.unwrap();
    for o in &outages {
        let backend = o.backend;
        assert!(
            failures_counted(&metrics, backend) > 0.0,
            "no failed {backend} calls counted"
        );
    }

    // Every acknowledged event ends processed, each document once.
    let accepted = load.accepted.lock().unwrap().clone();
    assert!(
        accepted.len() > 20,
        "too few ingests accepted: {}",
        accepted.len()
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut waiting = accepted.clone();
    while !waiting.is_empty() && Instant::now() < deadline {
        let mut still = Vec::new();
        for (id, at) in waiting {
            let status = app
                .json(Method::GET, &format!("/ingest/{id}"), &key, None)
                .await;
            match status["status"].as_str() {
                Some("processed") => {}
                Some("pending") => still.push((id, at)),
                _ => panic!("{id} (accepted at {at:.1} s) did not end processed: {status}"),
            }
        }
        waiting = still;
        if !waiting.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    assert!(
        waiting.is_empty(),
        "accepted, still pending after 120 s: {waiting:?}; outages {outages:?}"
    );
    let info = app
        .json(Method::GET, "/vectors/collections/documents", &key, None)
        .await;
    // One point per processed document: every accepted one, and perhaps an ingest whose
    // answer was an error but whose event the broker had taken (not acknowledged, so
    // it may or may not be processed), never a duplicate.
    let attempted = calls.iter().filter(|c| c.kind == Kind::Ingest).count();
    let points = info["points_count"].as_u64().unwrap() as usize;
    assert!(
        (accepted.len()..=attempted).contains(&points),
        "{points} points for {} accepted of {attempted} ingests: {info}",
        accepted.len()
    );

    let by_kind = calls.iter().fold(BTreeMap::new(), |mut m, c| {
        *m.entry((format!("{:?}", c.kind), c.status))
            .or_insert(0usize) += 1;
        m
    });
    eprintln!(
        "chaos: {} calls in {end:.0} s; by kind and status {by_kind:?}; {} events accepted, lost 0\n{}",
        calls.len(),
        accepted.len(),
        report.join("\n")
    );
    let mut app = Arc::try_unwrap(app).ok().expect("load finished");
    app.shutdown().await;
    redis.kill();
}
