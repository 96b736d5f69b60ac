//! OpenTelemetry traces: a server with `telemetry.otlp_endpoint` set exports a span per
//! request, per service step and per backend call to an OTLP/HTTP receiver this test
//! runs, continuing the caller's `traceparent`; every JSON log line of the request
//! carries its trace id; and the trace goes on to the LLM and, with the test command's
//! Kafka, in the headers of ingest events.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::json;

use crate::backends;
use crate::helpers::{binary_command, free_port, ingest_status_after, wait_for};

const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const CALLER_SPAN: &str = "b7ad6b7169203331";
/// The trace of the ingest request, whose context goes on in the Kafka event.
const INGEST_TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// What the receiver got: every exported span, and the `traceparent` of each chat
/// completion request.
#[derive(Default)]
struct Received {
    spans: Mutex<Vec<Span>>,
    chat_traceparents: Mutex<Vec<String>>,
}

/// An OTLP/HTTP receiver on a free port, which also answers as an OpenAI-compatible
/// chat model (`/v1/chat/completions`).
async fn receiver() -> (u16, Arc<Received>) {
    let received: Arc<Received> = Arc::default();
    let store = received.clone();
    let chats = received.clone();
    let app = Router::new()
        .route(
            "/v1/chat/completions",
            post(move |headers: HeaderMap| {
                let chats = chats.clone();
                async move {
                    let parent = headers.get("traceparent").and_then(|v| v.to_str().ok());
                    let parent = parent.unwrap_or_default().to_owned();
                    chats.chat_traceparents.lock().unwrap().push(parent);
                    axum::Json(json!({"model": "fake-llm", "choices": [{"message":
                        {"role": "assistant", "content": "Marie Curie [1]"}, "finish_reason": "stop"}]}))
                }
            }),
        )
        .route(
        "/v1/traces",
        post(move |body: Bytes| {
            let store = store.clone();
            async move {
                let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                let mut all = store.spans.lock().unwrap();
                for r in request.resource_spans {
                    for s in r.scope_spans {
                        all.extend(s.spans);
                    }
                }
                Bytes::new()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, received)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    let value = span.attributes.iter().find(|a| a.key == key)?;
    Some(match value.value.as_ref()?.value.as_ref()? {
        Any::StringValue(s) => s.clone(),
        Any::IntValue(i) => i.to_string(),
        Any::BoolValue(b) => b.to_string(),
        Any::DoubleValue(d) => d.to_string(),
        _ => return None,
    })
}

/// The server, killed when the test ends, even by a failed assertion (a server left
/// running would hold the test runner's output open).
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The spans of the caller's trace once every name in `names` has arrived.
async fn spans_of_trace(spans: &Mutex<Vec<Span>>, names: &[&str]) -> Vec<Span> {
    for _ in 0..150 {
        let ours: Vec<Span> = spans
            .lock()
            .unwrap()
            .iter()
            .filter(|s| hex(&s.trace_id) == TRACE_ID)
            .cloned()
            .collect();
        if names.iter().all(|n| ours.iter().any(|s| s.name == *n)) {
            return ours;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got: Vec<String> = spans
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.name.clone())
        .collect();
    panic!("spans {names:?} of trace {TRACE_ID} did not all arrive; got {got:?}");
}

#[tokio::test]
async fn spans_reach_the_otlp_receiver_with_the_callers_parent_and_the_trace_id_is_logged() {
    let (otlp, received) = receiver().await;
    let spans = &received.spans;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let port = free_port();
    let mut command = binary_command(port, &dir.path().join("data"));
    command
        .env(
            "RAGBRAIN__TELEMETRY__OTLP_ENDPOINT",
            format!("http://127.0.0.1:{otlp}/v1/traces"),
        )
        .env("RAGBRAIN__LOG__LEVEL", "info")
        .env(
            "RAGBRAIN__LLM__BASE_URL",
            format!("http://127.0.0.1:{otlp}/v1"),
        )
        .env("RAGBRAIN__LLM__MODEL", "fake-llm")
        // Export every 100 ms instead of every 5 s.
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()));
    // With Redis for keys, the request's key lookup is a backend call with a span.
    let redis = backends::redis_url();
    if let Some(url) = &redis {
        command
            .env("RAGBRAIN__AUTH__BACKEND", "redis")
            .env("RAGBRAIN__REDIS__URL", url)
            .env(
                "RAGBRAIN__REDIS__KEY_PREFIX",
                format!("{}:", backends::unique(&dir.path().to_path_buf())),
            )
            .env(
                "RAGBRAIN__AUTH__JWT_SECRET",
                "a-trace-test-secret-of-32-bytes-or-more",
            );
    }
    // With Kafka for events, the appended event carries the request's trace context.
    let kafka = backends::kafka_brokers().filter(|_| redis.is_some());
    let id = backends::unique(&dir.path().to_path_buf());
    if let Some(brokers) = &kafka {
        command
            .env("RAGBRAIN__EVENTS__BACKEND", "kafka")
            .env("RAGBRAIN__EVENTS__KAFKA_BROKERS", brokers)
            .env("RAGBRAIN__EVENTS__TOPIC", format!("{id}.ingest"))
            .env("RAGBRAIN__EVENTS__DEAD_LETTER_TOPIC", format!("{id}.dead"))
            .env("RAGBRAIN__EVENTS__GROUP_ID", format!("{id}-workers"))
            .env("RAGBRAIN__EVENTS__REPLICATION", "1");
    }
    let server = Running(command.spawn().expect("ragbrain starts"));
    assert!(wait_for(port, "/health/live", "").await.is_some());
    let key = std::fs::read_to_string(dir.path().join("data/bootstrap-admin.key")).unwrap();
    let key = key.trim();
    let client = reqwest::Client::new();
    let doc = json!({"id": "curie", "text": "Marie Curie discovered polonium in Paris."});
    let r = client
        .post(format!("http://127.0.0.1:{port}/ingest"))
        .header("X-API-Key", key)
        .header(
            "traceparent",
            format!("00-{INGEST_TRACE_ID}-{CALLER_SPAN}-01"),
        )
        .json(&doc)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let status = ingest_status_after(&client, port, key, "curie", 300).await;
    assert_eq!(status["status"], "processed", "{status}");

    let r = client
        .post(format!("http://127.0.0.1:{port}/hybrid/search"))
        .header("X-API-Key", key)
        .header("traceparent", format!("00-{TRACE_ID}-{CALLER_SPAN}-01"))
        .json(&json!({"query": "Who discovered polonium?", "limit": 3, "hops": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let mut names = vec![
        "request",
        "embed",
        "vector_search",
        "graph_expansion",
        "fusion",
        "page_payloads",
    ];
    if redis.is_some() {
        names.push("backend");
    }
    let ours = spans_of_trace(spans, &names).await;
    let by_name: HashMap<&str, &Span> = ours.iter().map(|s| (s.name.as_str(), s)).collect();
    let request = by_name["request"];
    assert_eq!(hex(&request.parent_span_id), CALLER_SPAN);
    assert_eq!(
        attribute(request, "route").as_deref(),
        Some("/hybrid/search")
    );
    assert_eq!(attribute(request, "status").as_deref(), Some("200"));
    assert_eq!(attribute(request, "tenant").as_deref(), Some("default"));
    for step in [
        "embed",
        "vector_search",
        "graph_expansion",
        "fusion",
        "page_payloads",
    ] {
        assert!(
            ours.iter()
                .any(|s| s.name == step && s.parent_span_id == request.span_id),
            "{step} is a child of the request"
        );
    }
    if redis.is_some() {
        let backend = by_name["backend"];
        assert_eq!(backend.parent_span_id, request.span_id);
        assert_eq!(attribute(backend, "backend").as_deref(), Some("redis"));
        assert_eq!(attribute(backend, "outcome").as_deref(), Some("ok"));
        assert_eq!(attribute(backend, "retries").as_deref(), Some("0"));
    }

    // The trace goes on to the LLM: its request carries the caller's trace id.
    let r = client
        .post(format!("http://127.0.0.1:{port}/hybrid/generate"))
        .header("X-API-Key", key)
        .header("traceparent", format!("00-{TRACE_ID}-{CALLER_SPAN}-01"))
        .json(&json!({"query": "Who discovered polonium?"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let parents = received.chat_traceparents.lock().unwrap().clone();
    assert_eq!(parents.len(), 1);
    assert!(
        parents[0].starts_with(&format!("00-{TRACE_ID}-")),
        "{parents:?}"
    );
    let llm = spans_of_trace(spans, &["llm"]).await;
    let llm = llm.iter().find(|s| s.name == "llm").unwrap();
    assert_eq!(hex(&llm.span_id), parents[0].split('-').nth(2).unwrap());

    if let Some(brokers) = &kafka {
        let parent = kafka_traceparent(brokers, &format!("{id}.ingest")).await;
        assert!(
            parent.starts_with(&format!("00-{INGEST_TRACE_ID}-")),
            "{parent}"
        );
    }

    drop(server);
    let logged = std::fs::read_to_string(&log).unwrap();
    let line = logged
        .lines()
        .find(|l| l.contains("request served") && l.contains("/hybrid/search"))
        .expect("the access-log line of the search");
    let line: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(line["span"]["trace_id"], TRACE_ID, "{line}");
}

/// The `traceparent` header of the first event on `topic`.
async fn kafka_traceparent(brokers: &str, topic: &str) -> String {
    use rdkafka::ClientConfig;
    use rdkafka::Message;
    use rdkafka::consumer::{Consumer, StreamConsumer};
    use rdkafka::message::Headers;

    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("{topic}-inspect"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let m = tokio::time::timeout(Duration::from_secs(60), consumer.recv())
        .await
        .expect("an event on the topic")
        .unwrap();
    let headers = m.headers().expect("headers");
    headers
        .iter()
        .find(|h| h.key == "traceparent")
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .expect("a traceparent header")
}
