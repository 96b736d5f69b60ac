//! Lexical (BM25) search through HTTP: `/vectors/search` modes, the lexical list in
//! hybrid fusion, and that the term weights follow re-ingest, delete and tenants.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, doc_ids, spawn_app};

const FILLER: [&str; 6] = [
    "The harbour town exported wool and timber to the northern ports.",
    "A river valley with orchards, vineyards and a small stone bridge.",
    "The orchestra played a symphony in the old opera house downtown.",
    "Farmers in the valley grow barley, apples and late summer grapes.",
    "The museum keeps maps of the northern ports and their lighthouses.",
    "A stone bridge crosses the river below the vineyards and orchards.",
];

async fn ingest(app: &TestApp, key: &str, events: Vec<Value>) {
    let ids: Vec<String> = events
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    let body = json!({"events": events});
    let r = app
        .call(Method::POST, "/ingest/batch", key, Some(body))
        .await;
    assert_eq!(r.status(), 202);
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    for status in app.wait_ingested(key, &ids).await {
        assert_eq!(status["status"], "processed", "{status}");
    }
}

async fn search(app: &TestApp, key: &str, body: Value) -> Vec<String> {
    doc_ids(
        &app.json(Method::POST, "/vectors/search", key, Some(body))
            .await,
    )
}

async fn lexical(app: &TestApp, key: &str, text: &str) -> Vec<String> {
    search(
        app,
        key,
        json!({"text": text, "mode": "lexical", "limit": 3}),
    )
    .await
}

/// The filler, and `rare` about a valley town that names a rare word.
fn corpus(rare_word: &str) -> Vec<Value> {
    let mut events: Vec<Value> = FILLER
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"id": format!("f{i}"), "text": t}))
        .collect();
    let text = format!("The valley town kept its {rare_word} in the museum by the river.");
    events.push(json!({"id": "rare", "text": text}));
    events
}

/// (The built-in embedder hashes unknown words, so dense search finds this word too;
/// the test is about the lexical ranking: the rare term outweighs common ones by IDF.)
#[tokio::test]
async fn lexical_search_ranks_a_rare_exact_term_first() {
    let app = spawn_app().await;
    let key = app.key("acme", &["write"]).await;
    ingest(&app, &key, corpus("zarnithoscope")).await;

    assert_eq!(lexical(&app, &key, "zarnithoscope").await, ["rare"]);
    // "orchards" is in two filler paragraphs, the rare term in one: IDF ranks it first.
    let found = lexical(&app, &key, "orchards zarnithoscope").await;
    assert_eq!(found[0], "rare", "{found:?}");
    assert!(lexical(&app, &key, "xylophone").await.is_empty());
    let both = json!({"text": "zarnithoscope", "mode": "both", "limit": 1});
    assert_eq!(search(&app, &key, both).await, ["rare"]);

    // Hybrid search ranks it first through the lexical list, and says so.
    let q = json!({"query": "zarnithoscope", "limit": 3});
    let found = app
        .json(Method::POST, "/hybrid/search", &key, Some(q))
        .await;
    assert_eq!(doc_ids(&found)[0], "rare", "{found}");
    assert_eq!(
        found["hits"][0]["provenance"]["lexical"]["rank"], 1,
        "{found}"
    );
}

/// A code that only one paragraph carries, asked about in the words of twenty others:
/// the dense ranking follows the shared words and puts the paragraph near the bottom;
/// BM25 weighs the rare code above all of them.
#[tokio::test]
async fn lexical_search_finds_a_rare_code_that_dense_search_misses() {
    let app = spawn_app().await;
    let key = app.key("acme", &["write"]).await;
    let mut events = vec![json!({"id": "rare", "text":
        "A parcel marked ZQX4471 weighed four kilograms at the harbour depot on a rainy \
         morning, and the depot manager stored it beside the crates of apples."})];
    events.extend((0..20).map(|i| {
        json!({"id": format!("queue{i}"), "text": format!(
            "Which support queue ticket is open? The support queue held {i} open tickets \
             this week, and every ticket in the support queue was answered.")})
    }));
    ingest(&app, &key, events).await;
    let question = "Which support queue ticket is ZQX4471?";

    let dense = search(&app, &key, json!({"text": question, "limit": 5})).await;
    assert!(!dense.contains(&"rare".to_owned()), "{dense:?}");
    let found = search(
        &app,
        &key,
        json!({"text": question, "mode": "lexical", "limit": 5}),
    )
    .await;
    assert_eq!(found[0], "rare", "{found:?}");
}

#[tokio::test]
async fn lexical_terms_follow_re_ingest_delete_and_tenants() {
    let app = spawn_app().await;
    let acme = app.key("acme", &["write"]).await;
    let globex = app.key("globex", &["write"]).await;
    ingest(&app, &acme, corpus("zarnithoscope")).await;
    ingest(&app, &globex, corpus("zarnithoscope")).await;

    // Re-ingested with another word: the old one finds nothing, the new one the doc.
    let text = "The valley town kept its quillobrant in the museum by the river.";
    ingest(&app, &acme, vec![json!({"id": "rare", "text": text})]).await;
    assert!(lexical(&app, &acme, "zarnithoscope").await.is_empty());
    assert_eq!(lexical(&app, &acme, "quillobrant").await, ["rare"]);
    // Globex's copy keeps the old word and never shows the new one.
    assert_eq!(lexical(&app, &globex, "zarnithoscope").await, ["rare"]);
    assert!(lexical(&app, &globex, "quillobrant").await.is_empty());

    let r = app.call(Method::DELETE, "/ingest/rare", &acme, None).await;
    assert_eq!(r.status(), 202);
    app.wait_deleted(&acme, "rare").await;
    assert!(lexical(&app, &acme, "quillobrant").await.is_empty());
    assert_eq!(lexical(&app, &globex, "zarnithoscope").await, ["rare"]);
}

#[tokio::test]
async fn search_modes_reject_what_they_cannot_use() {
    let app = spawn_app().await;
    let key = app.key("acme", &["write"]).await;
    ingest(&app, &key, corpus("zarnithoscope")).await;
    let v = vec![0.5_f32; 256];
    let bad = [
        json!({"mode": "lexical", "vector": v}),
        json!({"mode": "lexical", "text": "river", "vector": v}),
        json!({"mode": "lexical", "text": "   "}),
        json!({"mode": "both", "text": "river", "score_threshold": 0.5}),
        json!({"mode": "both", "vector": v}),
        json!({"mode": "sparse", "text": "river"}),
        json!({"text": "river", "rank_window": 10}),
        json!({"mode": "both", "text": "river", "rank_window": 0}),
        json!({"mode": "both", "text": "river", "rank_window": 20_000}),
    ];
    for body in bad {
        let r = app
            .call(Method::POST, "/vectors/search", &key, Some(body.clone()))
            .await;
        let problem = assert_problem(r, 422).await;
        assert!(problem["detail"].is_string(), "{body}: {problem}");
    }
}
