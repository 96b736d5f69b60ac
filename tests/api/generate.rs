//! Generation over retrieved context against an OpenAI-compatible server, streamed and
//! not; 501 without one; 502 when it fails. Also the OpenAI-compatible embedder.

use ragbrain::config::{EmbedderBackend, Millis, OpenAiEmbedderSettings, Required, Settings};
use reqwest::Method;
use serde_json::{Value, json};
use std::num::NonZero;

use crate::fake_openai::base_url;
use crate::helpers::{TestApp, assert_problem, spawn_app, spawn_app_with};

fn with_llm(s: &mut Settings) {
    s.llm.base_url = base_url().to_owned();
    s.llm.model = "fake-llm".into();
}

async fn ingest(app: &TestApp, key: &str) {
    let events = json!({"events": [
        {"id": "curie", "text": "Marie Curie discovered polonium and radium together with Pierre Curie."},
        {"id": "rust", "text": "The Rust compiler checks borrows at compile time."},
    ]});
    let r = app
        .call(Method::POST, "/ingest/batch", key, Some(events))
        .await;
    assert_eq!(r.status(), 202);
    app.wait_ingested(key, &["curie", "rust"]).await;
}

#[tokio::test]
async fn generation_without_a_configured_llm_is_501() {
    let app = spawn_app().await;
    let key = app.key("acme", &["read"]).await;
    let r = app
        .call(
            Method::POST,
            "/hybrid/generate",
            &key,
            Some(json!({"query": "why?"})),
        )
        .await;
    let problem = assert_problem(r, 501).await;
    assert!(problem["detail"].as_str().unwrap().contains("llm.base_url"));
}

#[tokio::test]
async fn generation_answers_from_retrieved_context_with_citations() {
    let app = spawn_app_with(with_llm).await;
    let key = app.key("acme", &["write"]).await;
    ingest(&app, &key).await;
    let q = json!({"query": "Who discovered radium?", "limit": 2});
    let answer = app
        .json(Method::POST, "/hybrid/generate", &key, Some(q))
        .await;
    assert_eq!(answer["model"], "fake-llm");
    let text = answer["answer"].as_str().unwrap();
    assert!(
        text.starts_with("passages=2 first=Marie Curie discovered polonium"),
        "{text}"
    );
    assert_eq!(answer["citations"][0]["ref"], 1);
    assert_eq!(answer["citations"][0]["doc_id"], "curie");
    assert_eq!(answer["finish_reason"], "stop");
}

#[tokio::test]
async fn generation_streams_server_sent_events() {
    let app = spawn_app_with(with_llm).await;
    let key = app.key("acme", &["write"]).await;
    ingest(&app, &key).await;
    let q = json!({"query": "Who discovered radium?", "limit": 1, "stream": true});
    let r = app
        .call(Method::POST, "/hybrid/generate", &key, Some(q))
        .await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let body = r.text().await.unwrap();
    let events: Vec<(&str, Value)> = body
        .split("\n\n")
        .filter_map(|block| {
            let name = block.lines().find_map(|l| l.strip_prefix("event: "))?;
            let data = block.lines().find_map(|l| l.strip_prefix("data: "))?;
            Some((name, serde_json::from_str(data).unwrap()))
        })
        .collect();
    assert_eq!(events[0].0, "citations");
    assert_eq!(events[0].1["citations"][0]["doc_id"], "curie");
    let text: String = events
        .iter()
        .filter(|(name, _)| *name == "delta")
        .map(|(_, d)| d["text"].as_str().unwrap())
        .collect();
    assert!(text.starts_with("passages=1 first=Marie Curie"), "{text}");
    assert_eq!(events.last().unwrap().0, "done");
    assert_eq!(events.last().unwrap().1["finish_reason"], "stop");
}

#[tokio::test]
async fn a_failing_llm_is_a_502_that_does_not_leak_its_answer() {
    let app = spawn_app_with(|s| {
        with_llm(s);
        s.llm.model = "broken".into();
    })
    .await;
    let key = app.key("acme", &["write"]).await;
    let r = app
        .call(
            Method::POST,
            "/hybrid/generate",
            &key,
            Some(json!({"query": "why?"})),
        )
        .await;
    let problem = assert_problem(r, 502).await;
    assert!(!problem["detail"].as_str().unwrap().contains("exploded"));
}

/// An endpoint that sends more than any answer could take is cut off: 502, whole or
/// streamed, and an error event for the stream.
#[tokio::test]
async fn an_endpoint_that_floods_is_cut_off() {
    let app = spawn_app_with(|s| {
        with_llm(s);
        s.llm.model = "flood".into();
    })
    .await;
    let key = app.key("acme", &["write"]).await;
    let ask = |stream: bool| json!({"query": "why?", "stream": stream});
    let r = app
        .call(Method::POST, "/hybrid/generate", &key, Some(ask(false)))
        .await;
    let problem = assert_problem(r, 502).await;
    assert!(!problem["detail"].as_str().unwrap().contains("[["));
    let r = app
        .call(Method::POST, "/hybrid/generate", &key, Some(ask(true)))
        .await;
    let events = r.text().await.unwrap();
    assert!(
        events.contains("event: error"),
        "{}",
        &events[..events.len().min(300)]
    );
    assert!(events.len() < 4096, "the flood is not passed on");
}

fn with_embedder(s: &mut Settings, model: &str, batch_size: usize) {
    s.embedder.backend = EmbedderBackend::OpenAi(OpenAiEmbedderSettings {
        base_url: Required::new(base_url()),
        model: Required::new(model),
        api_key: String::new().into(),
        dim: NonZero::new(8).unwrap(),
        batch_size: NonZero::new(batch_size).unwrap(),
        timeout_ms: Millis::new(30_000),
        max_retries: 2,
    });
    s.vectors.default_dim = NonZero::new(8).unwrap();
}

#[tokio::test]
async fn an_openai_compatible_embedder_can_replace_the_builtin_one() {
    let app = spawn_app_with(|s| with_embedder(s, "bag-of-words", 1)).await;
    let key = app.key("acme", &["write"]).await;
    ingest(&app, &key).await;
    let info = app
        .json(Method::GET, "/vectors/collections/documents", &key, None)
        .await;
    assert_eq!(info["dim"], 8);
    let q = json!({"text": "The Rust compiler checks borrows at compile time.", "limit": 1});
    let found = app
        .json(Method::POST, "/vectors/search", &key, Some(q))
        .await;
    assert_eq!(found["hits"][0]["payload"]["doc_id"], "rust");
}

/// An endpoint that answers one input's vector twice (and another's not at all) is an
/// upstream failure, not vectors stored under the wrong chunks. On the last attempt each
/// document is embedded alone: the one the endpoint keeps failing fails, and the log
/// moves on (before, the batch was retried for ever).
#[tokio::test]
async fn an_embedding_endpoint_that_repeats_an_index_fails_only_its_documents() {
    let app = spawn_app_with(|s| with_embedder(s, "twins", 4)).await;
    let key = app.key("acme", &["write"]).await;
    let long = "Marie Curie discovered polonium and radium in Paris. ".repeat(60);
    let events = json!({"events": [
        {"id": "long", "text": long},
        {"id": "short", "text": "The Rust compiler checks borrows at compile time."},
    ]});
    let r = app
        .call(Method::POST, "/ingest/batch", &key, Some(events))
        .await;
    assert_eq!(r.status(), 202);
    let statuses = app.wait_ingested(&key, &["long", "short"]).await;
    assert_eq!(statuses[0]["status"], "failed", "{}", statuses[0]);
    assert_eq!(statuses[1]["status"], "processed", "{}", statuses[1]);
}

/// An embedding endpoint that answers 5xx is down, not refusing this text: a search
/// gets 503 with `Retry-After` (ingest waits for it rather than failing documents).
#[tokio::test]
async fn an_embedding_endpoint_answering_5xx_is_unavailable() {
    let app = spawn_app_with(|s| with_embedder(s, "broken", 4)).await;
    let key = app.key("acme", &["write"]).await;
    let q = json!({"text": "anything", "limit": 1});
    let r = app
        .call(Method::POST, "/vectors/search", &key, Some(q))
        .await;
    assert!(r.headers().contains_key("retry-after"));
    assert_problem(r, 503).await;
}
