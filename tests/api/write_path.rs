//! The embedded write path under crashes and index builds: acknowledged vector writes
//! survive `kill -9` at any moment (mid-optimize, mid-checkpoint), writes are never held
//! up by an HNSW build, and the logs stay bounded.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::get_json;
use crate::scratch::{Scratch, Server};

const DIM: usize = 64;
const WRITERS: u64 = 16;

impl Server {
    async fn create(&self, dim: usize) {
        let put = self
            .client
            .put(format!(
                "http://127.0.0.1:{}/vectors/collections/crash",
                self.port
            ))
            .header("X-API-Key", &self.key)
            .json(&json!({"dim": dim}))
            .send()
            .await
            .unwrap();
        assert_eq!(put.status(), 201);
    }

    /// Upserts points `ids` of `dim` dimensions; how long the acknowledgement took.
    async fn upsert(&self, ids: std::ops::Range<u64>, dim: usize) -> Duration {
        let points: Vec<Value> = ids
            .map(|id| json!({"id": id, "vector": vector(id, dim)}))
            .collect();
        let started = Instant::now();
        let r = self
            .post(
                "/vectors/upsert",
                json!({"collection": "crash", "points": points}),
            )
            .await;
        assert_eq!(r.status(), 200);
        started.elapsed()
    }

    async fn info(&self) -> serde_json::Value {
        get_json(
            &self.client,
            self.port,
            "/vectors/collections/crash",
            &self.key,
        )
        .await
    }

    async fn points_count(&self) -> u64 {
        self.info().await["points_count"].as_u64().unwrap()
    }

    /// Whether the log shows `step` ("optimize" or "checkpoint") started and not finished.
    fn in_progress(&self, step: &str) -> bool {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let started = format!("vector {step} started");
        let finished = format!("vector {step} finished");
        text.lines()
            .rev()
            .find(|l| l.contains(&started) || l.contains(&finished))
            .is_some_and(|l| l.contains(&started))
    }
}

/// The vector of point `id`: deterministic, so any point can be written again.
fn vector(id: u64, dim: usize) -> Vec<f32> {
    (0..dim)
        .map(|i| ((id as usize * 31 + i) % 97) as f32)
        .collect()
}

fn point(id: u64) -> Value {
    json!({"id": id, "vector": vector(id, DIM), "payload": {"n": id}})
}

/// Runs 16 writers until `step` is seen in progress, then kills the server; returns the
/// ids whose upserts were acknowledged, the number attempted, and whether the kill
/// landed inside `step`.
async fn write_until_killed(server: &mut Server, step: &str, round: u64) -> (Vec<u64>, u64, bool) {
    let acked = Arc::new(Mutex::new(Vec::new()));
    let attempted = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let (acked, attempted, stop) = (acked.clone(), attempted.clone(), stop.clone());
        let (port, key) = (server.port, server.key.clone());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut batch = 0u64;
            while !stop.load(Ordering::Acquire) {
                let ids: Vec<u64> = (0..10).map(|i| (round << 40) | (w << 24) | (batch * 10 + i)).collect();
                batch += 1;
                attempted.fetch_add(10, Ordering::Relaxed);
                let sent = client
                    .post(format!("http://127.0.0.1:{port}/vectors/upsert"))
                    .header("X-API-Key", &key)
                    .json(&json!({"collection": "crash", "points": ids.iter().map(|&i| point(i)).collect::<Vec<_>>()}))
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status() == 200 => acked.lock().unwrap().extend(ids),
                    _ => return,
                }
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut caught = false;
    while Instant::now() < deadline {
        if attempted.load(Ordering::Relaxed) > 2_000 && server.in_progress(step) {
            caught = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    server.kill();
    let caught = caught && server.in_progress(step);
    stop.store(true, Ordering::Release);
    for t in tasks {
        let _ = t.await;
    }
    let acked = acked.lock().unwrap().clone();
    (acked, attempted.load(Ordering::Relaxed), caught)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_nine_mid_optimize_and_mid_checkpoint_loses_no_acknowledged_point() {
    let scratch = Scratch::new();
    let mut server = scratch.start(&[]).await;
    server.create(DIM).await;

    let mut all_acked = Vec::new();
    let mut attempted_total = 0;
    let mut caught_steps = Vec::new();
    for (round, step) in ["optimize", "checkpoint", "optimize", "checkpoint"]
        .iter()
        .enumerate()
    {
        let (acked, attempted, caught) = write_until_killed(&mut server, step, round as u64).await;
        assert!(
            !acked.is_empty(),
            "round {round}: no write was acknowledged"
        );
        all_acked.extend(acked);
        attempted_total += attempted;
        if caught {
            caught_steps.push(*step);
        }
        server = scratch.start(&[]).await;
        let count = server.points_count().await;
        assert!(
            count >= all_acked.len() as u64 && count <= attempted_total,
            "round {round} ({step}): {count} points after restart; {} acknowledged, {attempted_total} attempted",
            all_acked.len()
        );
        for ids in all_acked.chunks(1000) {
            let got: Value = server
                .post(
                    "/vectors/retrieve",
                    json!({"collection": "crash", "ids": ids}),
                )
                .await
                .json()
                .await
                .unwrap();
            let found = got["points"].as_array().map_or(0, Vec::len);
            assert_eq!(
                found,
                ids.len(),
                "round {round} ({step}): acknowledged points are missing"
            );
        }
    }
    assert!(
        caught_steps.contains(&"optimize") && caught_steps.contains(&"checkpoint"),
        "no kill landed inside both steps (caught: {caught_steps:?}); the test proved less than it claims"
    );
    server.kill();
}

/// Sum of the lengths of the files in `dir`.
pub(crate) fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// Dimensions of the points [`building_an_index`] writes.
const BUILD_DIM: usize = 256;

/// No maintenance after the first tick: written points wait, unindexed.
const IDLE: [(&str, &str); 2] = [
    ("RAGBRAIN__VECTORS__MAINTENANCE_MS", "3600000"),
    ("RAGBRAIN__VECTORS__INDEXING_THRESHOLD_KB", "1000"),
];

/// A server on `scratch` whose maintenance has just begun an HNSW build over 30,000
/// points of collection `crash` (written with maintenance off, then a restart with
/// `env` and maintenance on).
async fn building_an_index(scratch: &Scratch, env: &[(&str, &str)]) -> Server {
    let mut server = scratch.start(&IDLE).await;
    server.create(BUILD_DIM).await;
    for batch in 0..30u64 {
        server
            .upsert(batch * 1000..(batch + 1) * 1000, BUILD_DIM)
            .await;
    }
    server.kill();
    let server = scratch.start(env).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !server.in_progress("optimize") {
        assert!(Instant::now() < deadline, "no index build started");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    server
}

#[tokio::test]
async fn upserts_complete_while_an_index_builds() {
    let scratch = Scratch::new();
    let busy = [
        ("RAGBRAIN__VECTORS__INDEXING_THRESHOLD_KB", "1000"),
        ("RAGBRAIN__VECTORS__CHECKPOINT_LOG_BYTES", "67108864"),
    ];
    let mut server = building_an_index(&scratch, &busy).await;
    // No write since the restart and the build has taken the pending flag: only the
    // running build can make the collection report `optimizing` here.
    let before_writes = server.info().await["optimizing"].clone();
    if server.in_progress("optimize") {
        assert_eq!(before_writes, true, "collection info while the build runs");
    }
    let mut during = Vec::new();
    let mut id = 1_000_000;
    let mut reported = Vec::new();
    while server.in_progress("optimize") && during.len() < 200 {
        let took = server.upsert(id..id + 10, BUILD_DIM).await;
        let optimizing = server.info().await["optimizing"].clone();
        if server.in_progress("optimize") {
            during.push(took);
            reported.push(optimizing);
        }
        id += 10;
    }
    assert!(
        reported.iter().all(|o| o == true),
        "collection info during the build: optimizing {reported:?}"
    );
    let slowest = during.iter().max().copied().unwrap_or_default();
    assert!(
        during.len() >= 5,
        "the index build ended after {} upserts; it must outlast several to prove anything",
        during.len()
    );
    assert!(
        slowest < Duration::from_millis(500),
        "an upsert waited {slowest:?} while the index built ({} upserts)",
        during.len()
    );
    assert_eq!(server.points_count().await, 30_000 + (id - 1_000_000));
    // Once the writes stop, the optimiser indexes the rest and reports done.
    let deadline = Instant::now() + Duration::from_secs(120);
    while server.info().await["optimizing"] != false {
        assert!(
            Instant::now() < deadline,
            "still optimizing after two minutes"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server.kill();
}

/// A drop while the collection's index builds (which qdrant-edge cannot stop) answers at
/// once, keeps the name taken until the build ends, and survives a kill -9 before then.
#[tokio::test]
async fn a_drop_during_an_index_build_answers_at_once_and_stays_dropped() {
    let scratch = Scratch::new();
    let mut server = building_an_index(&scratch, &[IDLE[1]]).await;
    let path = "/vectors/collections/crash";
    let dropped = server.status(reqwest::Method::DELETE, path, None).await;
    let gone = server.status(reqwest::Method::GET, path, None).await;
    let create = Some(json!({"dim": BUILD_DIM}));
    let again = server.status(reqwest::Method::PUT, path, create).await;
    assert!(
        server.in_progress("optimize"),
        "the index build ended first; it must outlast the drop to prove anything"
    );
    server.kill();

    assert_eq!((dropped, gone, again), (204, 404, 409));
    let mut server = scratch.start(&IDLE).await;
    let files = scratch.data.path().join("vectors/default/crash");
    assert_eq!(server.status(reqwest::Method::GET, path, None).await, 404);
    assert!(
        !files.exists(),
        "the dropped collection's files are still there"
    );
    let create = Some(json!({"dim": 4}));
    assert_eq!(server.status(reqwest::Method::PUT, path, create).await, 201);
    server.kill();
}

/// A create killed after renaming the new collection into place and before opening it
/// (which makes its operation log) left a directory without `oplog/`, and the next start
/// failed on it ("opening vector store: ... No such file or directory"). Found by
/// `scripts/chaos.py --crash-every 7`.
#[tokio::test]
async fn a_create_killed_before_its_first_open_does_not_stop_the_next_start() {
    let scratch = Scratch::new();
    let mut server = scratch.start(&IDLE).await;
    server.create(4).await;
    server.kill();
    let files = scratch.data.path().join("vectors/default/crash");
    std::fs::remove_dir_all(files.join("oplog")).unwrap();

    let mut server = scratch.start(&IDLE).await;
    server.upsert(0..3, 4).await;
    assert_eq!(server.points_count().await, 3);
    server.kill();
    let server = scratch.start(&IDLE).await;
    assert_eq!(
        server.points_count().await,
        3,
        "the writes after it are durable"
    );
}

#[tokio::test]
async fn the_operation_log_and_the_engine_wal_stay_bounded() {
    const BIG: usize = 512;
    let scratch = Scratch::new();
    let bounded = [
        ("RAGBRAIN__VECTORS__CHECKPOINT_LOG_BYTES", "4194304"),
        ("RAGBRAIN__VECTORS__ENGINE_WAL_LIMIT_BYTES", "33554432"),
    ];
    let mut server = scratch.start(&bounded).await;
    server.create(BIG).await;
    let collection = scratch.data.path().join("vectors/default/crash");
    let (mut oplog_max, mut wal_max) = (0, 0);
    // About 100 MiB of writes: three times the engine's 32 MiB WAL file, 25 times the
    // checkpoint size. Ids repeat, so the collection itself stays small.
    for round in 0..50u64 {
        server
            .upsert((round % 5) * 1000..(round % 5 + 1) * 1000, BIG)
            .await;
        oplog_max = oplog_max.max(dir_bytes(&collection.join("oplog")));
        wal_max = wal_max.max(dir_bytes(&collection.join("wal")));
    }
    assert!(
        oplog_max <= 40 << 20,
        "operation log reached {oplog_max} bytes (checkpoints every 4 MiB; the current \
         file and the next one are preallocated to 16 MiB each)"
    );
    assert!(
        wal_max <= 5 * (32 << 20),
        "engine WAL reached {wal_max} bytes (limit 32 MiB + the files it keeps)"
    );
    // The release waits for a running optimize to end; give it that time.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !std::fs::read_to_string(scratch.log())
        .unwrap()
        .contains("reopened a vector collection to release its engine WAL")
    {
        assert!(
            Instant::now() < deadline,
            "the engine WAL was never released"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.kill();
    let server = scratch.start(&bounded).await;
    assert_eq!(server.points_count().await, 5000);
    let mut server = server;
    server.kill();
}
