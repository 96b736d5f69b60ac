//! The built-in model in Rust agrees with model2vec's Python reference on fixed
//! sentences (`tests/data/embedding_reference.json`, written by
//! `scripts/make-embedding-model.sh`).

use ragbrain::config::Settings;
use ragbrain::embed::Embedder;
use ragbrain::embed::builtin::BuiltinEmbedder;
use serde_json::Value;

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

#[tokio::test]
async fn the_builtin_model_agrees_with_the_python_reference() {
    let reference: Value =
        serde_json::from_str(include_str!("../data/embedding_reference.json")).unwrap();
    let embedder = BuiltinEmbedder::load(&Settings::load(None).unwrap().embedder).unwrap();
    assert_eq!(embedder.dim(), 256);
    let cases = reference["cases"].as_array().unwrap();
    let texts: Vec<String> = cases
        .iter()
        .map(|c| c["text"].as_str().unwrap().to_owned())
        .collect();
    let vectors = embedder.embed(texts.clone()).await.unwrap();
    for ((case, text), got) in cases.iter().zip(&texts).zip(&vectors) {
        let expected: Vec<f32> = case["vector"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        let similarity = cosine(got, &expected);
        assert!(similarity >= 0.999, "{text:?}: cosine {similarity}");
        let norm = got.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "{text:?}: norm {norm}");
    }
    // Different sentences are not the same vector.
    assert!(cosine(&vectors[0], &vectors[1]) < 0.9);
}
