//! Hybrid search over 100,000 ingested chunks (1,000 under `cargo test`, which runs
//! benches once as a smoke test). The corpus goes through the real ingest pipeline
//! (event log → worker → vectors + graph) on the embedded stores, and the setup prints
//! the ingest rate and a latency sample (p50/p99) before criterion measures.

use std::time::{Duration, Instant};

mod common;

use criterion::{Criterion, criterion_group, criterion_main};
use ragbrain::app::Application;
use ragbrain::config::Settings;
use ragbrain::domain::principal::{Principal, Scope, Tenant};
use ragbrain::http::state::AppState;
use ragbrain::services::hybrid::HybridRequest;
use ragbrain::services::ingest::chunk::{ChunkSpec, chunk};

const PARAGRAPHS_PER_DOC: usize = 10;
const PEOPLE: usize = 2_000;
const PLACES: usize = 300;
const TOPICS: [&str; 8] = [
    "supply chain delays",
    "solar panel efficiency",
    "river flood defences",
    "vaccine trials",
    "railway timetables",
    "coffee harvests",
    "chip fabrication",
    "ocean shipping rates",
];

/// About 800 characters per chunk, each naming two people and a place.
fn document(d: usize) -> String {
    (0..PARAGRAPHS_PER_DOC)
        .map(|c| {
            let n = d * PARAGRAPHS_PER_DOC + c;
            let (a, b) = (n % PEOPLE, (n * 7 + 3) % PEOPLE);
            let place = (n * 13) % PLACES;
            let topic = TOPICS[n % TOPICS.len()];
            format!(
                "In report {n}, Analyst{a} Moreau met Engineer{b} Tanaka in City{place} to discuss {topic}. \
                 They compared figures from the last three quarters and agreed that {topic} would need \
                 a new plan before the winter. The minutes list every figure they reviewed, the open \
                 questions for the next meeting, and the people who must approve the budget. Analyst{a} \
                 Moreau promised a written summary within a week, while Engineer{b} Tanaka would visit \
                 City{place} again to check the numbers on site. "
            )
        })
        .collect()
}

fn principal() -> Principal {
    Principal {
        subject: "bench".into(),
        tenant: Tenant::parse("bench").unwrap(),
        scopes: vec![Scope::Write],
    }
}

async fn ingest_corpus(state: &AppState, docs: usize) -> f64 {
    let started = Instant::now();
    common::ingest_all(state, &principal(), docs, document).await;
    docs as f64 / started.elapsed().as_secs_f64()
}

fn request(i: usize) -> HybridRequest {
    let topic = TOPICS[i % TOPICS.len()];
    HybridRequest {
        query: Some(format!(
            "What did Analyst{} Moreau say about {topic}?",
            (i * 37) % PEOPLE
        )),
        vector: None,
        collection: None,
        limit: 10,
        filter: None,
        hops: 2,
        fusion: None,
        mmr: None,
        with_payload: true,
    }
}

/// Documents needed for `target` chunks, from the pipeline's own chunker.
fn docs_for(target: usize, settings: &Settings) -> usize {
    let spec = ChunkSpec {
        size: settings.ingest.chunk_size_chars.get(),
        overlap: settings.ingest.chunk_overlap_chars,
    };
    target.div_ceil(chunk(&document(0), spec).len())
}

fn bench(c: &mut Criterion) {
    let full = std::env::args().any(|a| a == "--bench");
    let target = if full { 100_000 } else { 1_000 };
    // Declared first so it is dropped last, after the runtime has stopped the server.
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let state = runtime.block_on(async {
        let mut settings = Settings::load(None).unwrap();
        let docs = docs_for(target, &settings);
        settings.server.port = 0;
        settings.server.data_dir = dir.path().to_path_buf();
        settings.log.level = "warn".into();
        let app = Application::build(settings).await.unwrap();
        let state = app.state().clone();
        runtime_spawn(app);
        let rate = ingest_corpus(&state, docs).await;
        let chunks = state
            .vectors
            .collection_info(&principal(), "documents")
            .await
            .unwrap()
            .points_count;
        println!(
            "ingested {docs} documents ({chunks} chunks) at {rate:.0} documents/s ({:.0} chunks/s)",
            rate * chunks as f64 / docs as f64
        );
        // Let the background HNSW build finish before measuring.
        tokio::time::sleep(Duration::from_secs(if full { 20 } else { 1 })).await;
        let who = principal();
        let mut latencies = Vec::new();
        for i in 0..if full { 500 } else { 20 } {
            let started = Instant::now();
            state.hybrid.search(&who, request(i)).await.unwrap();
            latencies.push(started.elapsed());
        }
        latencies.sort();
        let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
        println!(
            "hybrid search (hops 2, limit 10): p50 {:?}, p99 {:?}",
            at(0.5),
            at(0.99)
        );
        state
    });
    let who = principal();
    let mut i = 0;
    c.bench_function("hybrid_search_hops2", |b| {
        b.iter(|| {
            i += 1;
            runtime
                .block_on(state.hybrid.search(&who, request(i)))
                .unwrap()
        })
    });
}

/// Serves (and runs the ingest worker) until the process ends.
fn runtime_spawn(app: Application) {
    tokio::spawn(app.run_until(std::future::pending()));
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50);
    targets = bench
}
criterion_main!(benches);
