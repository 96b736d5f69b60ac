//! Quantized vector search through HTTP: a collection walks its HNSW graph, or scans a
//! segment not yet indexed, on compressed copies of the vectors (`vectors.quantization`:
//! TurboQuant by default, int8 for indexed segments only) and rescores the best
//! candidates on the full vectors, so answers keep exact scores.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, scattered_vector, spawn_app_with};
use ragbrain::config::Millis;
use ragbrain::config::{Settings, VectorQuantization};

const DIM: usize = 32;
const POINTS: usize = 3_000;

fn vector(i: usize) -> Vec<f32> {
    scattered_vector(i, DIM)
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

/// Segments over 64 KiB (about 500 points of 32 dimensions) are indexed, soon.
fn small_segments(s: &mut Settings) {
    s.vectors.indexing_threshold_kb = 64;
    s.vectors.maintenance_ms = Millis::new(50);
}

fn unquantized(s: &mut Settings) {
    small_segments(s);
    s.vectors.quantization = VectorQuantization::None;
}

fn int8(s: &mut Settings) {
    small_segments(s);
    s.vectors.quantization = VectorQuantization::Int8;
}

/// No segment reaches the indexing threshold: every search scans.
fn never_indexed(s: &mut Settings) {
    s.vectors.indexing_threshold_kb = 1 << 30;
}

async fn load(app: &TestApp, key: &str) {
    app.create_collection(key, "q", DIM).await;
    for first in (0..POINTS).step_by(1_000) {
        let points: Vec<Value> = (first..first + 1_000)
            .map(|i| json!({"id": i, "vector": vector(i)}))
            .collect();
        let body = json!({"collection": "q", "points": points});
        let r = app
            .call(Method::POST, "/vectors/upsert", key, Some(body))
            .await;
        assert_eq!(r.status(), 200);
    }
}

/// Loads the points and waits until every one is in an HNSW index.
async fn indexed(app: &TestApp, key: &str) {
    load(app, key).await;
    let started = Instant::now();
    loop {
        let info: Value = app
            .json(Method::GET, "/vectors/collections/q", key, None)
            .await;
        if info["indexed_vectors_count"] == POINTS {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "never indexed: {info}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How many of the collection's segments there are, and how many keep a quantized copy.
fn quantized_segments(app: &TestApp) -> (usize, usize) {
    let segments = app.data_dir.path().join("vectors/acme/q/segments");
    let dirs: Vec<_> = std::fs::read_dir(segments)
        .unwrap()
        .map(|s| s.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    let quantized = dirs
        .iter()
        .filter(|p| p.join("vector_storage/quantized.config.json").exists())
        .count();
    (dirs.len(), quantized)
}

fn has_quantized_copy(app: &TestApp) -> bool {
    quantized_segments(app).1 > 0
}

async fn assert_exact_answers(app: &TestApp, key: &str) {
    for i in (0..POINTS).step_by(97) {
        let query = vector(i);
        let body = json!({"collection": "q", "vector": query, "limit": 5});
        let found: Value = app
            .json(Method::POST, "/vectors/search", key, Some(body))
            .await;
        let hits = found["hits"].as_array().unwrap();
        assert_eq!(hits.len(), 5);
        assert_eq!(hits[0]["id"], i, "a point is its own nearest neighbour");
        let mut last = f32::INFINITY;
        for hit in hits {
            let id = hit["id"].as_u64().unwrap() as usize;
            let score = hit["score"].as_f64().unwrap() as f32;
            let exact = cosine(&query, &vector(id));
            // Quantized scores are off by ~1e-2; rescored ones by float rounding only.
            assert!(
                (score - exact).abs() < 1e-4,
                "point {id}: {score} vs {exact}"
            );
            assert!(score <= last, "hits are best first");
            last = score;
        }
    }
}

#[tokio::test]
async fn quantized_collections_answer_with_exact_scores() {
    let app = spawn_app_with(small_segments).await;
    let key = app.key("acme", &["write"]).await;
    indexed(&app, &key).await;
    assert!(has_quantized_copy(&app), "TurboQuant is the default");
    assert_exact_answers(&app, &key).await;
}

#[tokio::test]
async fn segments_not_yet_indexed_are_scanned_on_their_turboquant_copy() {
    let app = spawn_app_with(never_indexed).await;
    let key = app.key("acme", &["write"]).await;
    load(&app, &key).await;
    let info: Value = app
        .json(Method::GET, "/vectors/collections/q", &key, None)
        .await;
    assert_eq!(info["indexed_vectors_count"], 0, "{info}");
    let (segments, quantized) = quantized_segments(&app);
    assert_eq!(quantized, segments, "every appendable segment keeps a copy");
    assert_exact_answers(&app, &key).await;
}

#[tokio::test]
async fn int8_collections_quantize_indexed_segments_only() {
    let app = spawn_app_with(|s| {
        int8(s);
        never_indexed(s);
    })
    .await;
    let key = app.key("acme", &["write"]).await;
    load(&app, &key).await;
    assert!(!has_quantized_copy(&app), "nothing is indexed yet");
    assert_exact_answers(&app, &key).await;

    let app = spawn_app_with(int8).await;
    let key = app.key("acme", &["write"]).await;
    indexed(&app, &key).await;
    assert!(has_quantized_copy(&app));
    assert_exact_answers(&app, &key).await;
}

#[tokio::test]
async fn quantization_can_be_turned_off() {
    let app = spawn_app_with(unquantized).await;
    let key = app.key("acme", &["write"]).await;
    indexed(&app, &key).await;
    assert!(!has_quantized_copy(&app));
    assert_exact_answers(&app, &key).await;
}
