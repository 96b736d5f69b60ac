//! In-process capacity: the plan's load mix (vector search 10, graph find 5, ingest 3,
//! upsert of 10 x 384 points 2, node create 1) run directly on the services, no HTTP,
//! by 64 concurrent tasks on the embedded stores, after the load test's preload
//! (100,000 x 384 points, 1,000 entities, 10,000 documents, then the HNSW build of the
//! points and the merges after it, as `tests/load/preload.py` waits for them).
//! `scripts/loadtest.sh` reports HTTP throughput; this says what the engines and
//! services can do on the same machine, so the two make a ratio. Under `cargo test`
//! (which runs benches once as a smoke test) the preload is 1,000 points, 50 entities
//! and 20 documents for 1 s.
//!
//!     cargo bench --bench capacity              # 60 s, full preload
//!     CAPACITY_SECONDS=10 cargo bench --bench capacity

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ragbrain::app::Application;
use ragbrain::config::Settings;
use ragbrain::domain::principal::{Principal, Scope, Tenant};
use ragbrain::domain::vector::PointId;
use ragbrain::http::state::AppState;
use ragbrain::services::graphs::{FindRequest, NodeRequest};
use ragbrain::services::ingest::IngestRequest;
use ragbrain::services::vectors::{PointInput, SearchRequest, UpsertRequest};
use serde_json::{Map, Value, json};

const DIM: usize = 384;
const TASKS: usize = 64;
const MIX: [(&str, u32); 5] = [
    ("search", 10),
    ("find", 5),
    ("ingest", 3),
    ("upsert", 2),
    ("node", 1),
];

fn principal() -> Principal {
    Principal {
        subject: "capacity".into(),
        tenant: Tenant::parse("default").unwrap(),
        scopes: vec![Scope::Read, Scope::Write],
    }
}

/// A small deterministic generator, so runs compare.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn unit(&mut self) -> f32 {
        (self.next() % 2_000_001) as f32 / 1_000_000.0 - 1.0
    }

    fn vector(&mut self) -> Vec<f32> {
        (0..DIM).map(|_| self.unit()).collect()
    }

    fn pick(&mut self) -> &'static str {
        let total: u32 = MIX.iter().map(|(_, w)| w).sum();
        let mut x = (self.next() % u64::from(total)) as u32;
        for (kind, w) in MIX {
            if x < w {
                return kind;
            }
            x -= w;
        }
        MIX[0].0
    }
}

fn document(i: u64) -> String {
    format!(
        "Ada Lovelace met Alan Turing in Paris to discuss report {i}: graph vector retrieval \
         fusion entity chunk index search latency throughput replica tenant document relation \
         cluster. {}",
        "The minutes list every figure they reviewed and the open questions. ".repeat(12)
    )
}

fn points(rng: &mut Rng, first: u64, n: u64) -> Vec<PointInput> {
    (first..first + n)
        .map(|id| PointInput {
            id: PointId::Num(id),
            vector: rng.vector(),
            payload: Map::new(),
        })
        .collect()
}

async fn preload(state: &AppState, n_points: u64, entities: u64, docs: u64) {
    let who = principal();
    let mut rng = Rng(7);
    state
        .vectors
        .create_collection(
            &who,
            "load",
            serde_json::from_value(json!({"dim": DIM})).unwrap(),
        )
        .await
        .unwrap();
    for first in (0..n_points).step_by(1000) {
        let req = UpsertRequest {
            collection: Some("load".into()),
            points: points(&mut rng, first, 1000.min(n_points - first)),
        };
        state.vectors.upsert(&who, req).await.unwrap();
    }
    for i in 0..entities {
        let props: Map<String, Value> = json!({"name": format!("entity-{i}")})
            .as_object()
            .cloned()
            .unwrap();
        let req = NodeRequest {
            id: format!("entity-{i}"),
            labels: vec!["LoadEntity".into()],
            properties: props.into_iter().collect(),
        };
        state.graphs.upsert_node(&who, req).await.unwrap();
    }
    common::ingest_all(state, &who, docs as usize, |d| document(d as u64)).await;
    // Measure on an indexed, settled collection, as `tests/load/preload.py` does: wait
    // for the background HNSW build, then for the merges after it. Segments under the
    // engine's indexing threshold (10,000 KiB) are searched exactly and may never be
    // indexed, so a remainder that small is done.
    let threshold = 10_000 * 1024;
    loop {
        let info = state.vectors.collection_info(&who, "load").await.unwrap();
        if (info.points_count - info.indexed_vectors_count) * DIM * 4 < threshold
            && !info.optimizing
        {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn one(state: &AppState, who: &Principal, rng: &mut Rng, kind: &str, entities: u64) {
    match kind {
        "search" => {
            let req: SearchRequest = serde_json::from_value(
                json!({"collection": "load", "vector": rng.vector(), "limit": 10}),
            )
            .unwrap();
            state.vectors.search(who, req).await.unwrap();
        }
        "find" => {
            let req: FindRequest = serde_json::from_value(json!({
                "label": "LoadEntity",
                "properties": {"name": format!("entity-{}", rng.next() % entities)},
                "limit": 10
            }))
            .unwrap();
            state.graphs.find_nodes(who, req).await.unwrap();
        }
        "ingest" => {
            let req = IngestRequest {
                id: None,
                text: document(rng.next()),
                metadata: Map::new(),
                collection: None,
            };
            state.ingest.ingest(who, req).await.unwrap();
        }
        "upsert" => {
            let first = rng.next() >> 1;
            let req = UpsertRequest {
                collection: Some("load".into()),
                points: points(rng, first, 10),
            };
            state.vectors.upsert(who, req).await.unwrap();
        }
        _ => {
            let req = NodeRequest {
                id: format!("n-{}", rng.next()),
                labels: vec!["LoadNode".into()],
                properties: Default::default(),
            };
            state.graphs.upsert_node(who, req).await.unwrap();
        }
    }
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (n_points, entities, docs, seconds) = if full {
        let seconds = std::env::var("CAPACITY_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(60);
        (100_000, 1_000, 10_000, seconds)
    } else {
        (1_000, 50, 20, 1)
    };
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut settings = Settings::load(None).unwrap();
        settings.server.port = 0;
        settings.server.data_dir = dir.path().to_path_buf();
        settings.log.level = "warn".into();
        settings.rate_limit.enabled = false;
        let app = Application::build(settings).await.unwrap();
        let state = app.state().clone();
        tokio::spawn(app.run_until(std::future::pending()));
        let started = Instant::now();
        preload(&state, n_points, entities, docs).await;
        println!(
            "preloaded {n_points} points, {entities} entities, {docs} documents, all indexed, in {:.1}s",
            started.elapsed().as_secs_f64()
        );
        let samples: Arc<Mutex<BTreeMap<&str, Vec<Duration>>>> = Default::default();
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let tasks: Vec<_> = (0..TASKS)
            .map(|t| {
                let (state, samples) = (state.clone(), samples.clone());
                tokio::spawn(async move {
                    let who = principal();
                    let mut rng = Rng(1_000 + t as u64);
                    let mut mine: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
                    while Instant::now() < deadline {
                        let kind = rng.pick();
                        let at = Instant::now();
                        one(&state, &who, &mut rng, kind, entities).await;
                        mine.entry(kind).or_default().push(at.elapsed());
                    }
                    let mut all = samples.lock().unwrap();
                    for (k, v) in mine {
                        all.entry(k).or_default().extend(v);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let all = samples.lock().unwrap();
        let total: usize = all.values().map(Vec::len).sum();
        println!(
            "in-process mix, {TASKS} tasks, {seconds} s: {:.0} operations/s",
            total as f64 / seconds as f64
        );
        for (kind, v) in all.iter() {
            let mut v = v.clone();
            v.sort();
            let at = |q: f64| v[((v.len() - 1) as f64 * q) as usize].as_secs_f64() * 1000.0;
            println!(
                "  {kind:<7} {:>8.0}/s  p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms",
                v.len() as f64 / seconds as f64,
                at(0.5),
                at(0.99),
                at(1.0)
            );
        }
    });
}
