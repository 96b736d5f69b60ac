//! A small server speaking the OpenAI wire format (`/v1/chat/completions`, JSON and
//! SSE; `/v1/embeddings`), started once on its own thread for the whole test binary.
//! The chat answer echoes what the prompt carried, so tests can check the context; the
//! model name `broken` answers 500, `flood` (chat and embeddings) answers 200 with
//! 16 MiB that never end a line or a JSON value, the embedding model `twins` gives
//! every item index 0, and `broken` answers embeddings with 500 too.

use std::sync::OnceLock;

use axum::Router;
use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

static BASE_URL: OnceLock<String> = OnceLock::new();

/// `http://127.0.0.1:<port>/v1`, starting the server on first use.
pub fn base_url() -> &'static str {
    BASE_URL.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap().port()).unwrap();
                let app = Router::new()
                    .route("/v1/chat/completions", post(chat))
                    .route("/v1/embeddings", post(embeddings));
                axum::serve(listener, app).await.unwrap();
            });
        });
        format!("http://127.0.0.1:{}/v1", rx.recv().unwrap())
    })
}

/// "passages=N first=<start of passage [1]>", from the user message.
fn answer_for(body: &Value) -> String {
    let prompt = body["messages"][1]["content"].as_str().unwrap_or_default();
    let passages = prompt.matches("\n[").count();
    let first: String = prompt
        .split("[1] ")
        .nth(1)
        .unwrap_or_default()
        .chars()
        .take(40)
        .collect();
    format!("passages={passages} first={first} [1]")
}

/// 16 MiB of one unfinished line, as a misbehaving endpoint might send.
fn flood() -> Response {
    Body::from(vec![b'['; 16 << 20]).into_response()
}

async fn chat(axum::Json(body): axum::Json<Value>) -> Response {
    if body["model"] == "broken" {
        return (StatusCode::INTERNAL_SERVER_ERROR, "model exploded").into_response();
    }
    if body["model"] == "flood" {
        return flood();
    }
    let answer = answer_for(&body);
    if body["stream"] == true {
        let mut events = String::new();
        for piece in answer.split_inclusive(' ') {
            let chunk = json!({"choices": [{"delta": {"content": piece}}]});
            events.push_str(&format!("data: {chunk}\n\n"));
        }
        let stop = json!({"choices": [{"delta": {}, "finish_reason": "stop"}]});
        events.push_str(&format!("data: {stop}\n\ndata: [DONE]\n\n"));
        return (
            [(header::CONTENT_TYPE, "text/event-stream")],
            Body::from(events),
        )
            .into_response();
    }
    axum::Json(json!({
        "model": "fake-llm",
        "choices": [{"message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
    }))
    .into_response()
}

/// Bag-of-words vectors in 8 dimensions: texts sharing words are close. Returned in
/// reverse order, as the API allows, to check that clients sort by `index`.
async fn embeddings(axum::Json(body): axum::Json<Value>) -> Response {
    if body["model"] == "flood" {
        return flood();
    }
    if body["model"] == "broken" {
        return (StatusCode::INTERNAL_SERVER_ERROR, "model exploded").into_response();
    }
    let inputs = body["input"].as_array().cloned().unwrap_or_default();
    let mut data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, text)| {
            let mut v = [0.0f32; 8];
            for word in text.as_str().unwrap_or_default().split_whitespace() {
                let h = word
                    .to_lowercase()
                    .bytes()
                    .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
                v[(h % 8) as usize] += 1.0;
            }
            json!({"object": "embedding", "index": index, "embedding": v})
        })
        .collect();
    data.reverse();
    if body["model"] == "twins" {
        data.iter_mut().for_each(|item| item["index"] = json!(0));
    }
    axum::Json(json!({"object": "list", "data": data, "model": body["model"]})).into_response()
}
