//! The steady load the chaos test runs while backends fail: client tasks calling
//! vector search, graph find and ingest at a fixed pace, and a readiness poller, each
//! call recorded with its timing and answer.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::helpers::TestApp;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Kind {
    Search,
    Find,
    Ingest,
}

/// One finished call: when it started and ended (seconds since the load began).
#[derive(Clone, Debug)]
pub(super) struct Call {
    pub(super) kind: Kind,
    pub(super) start: f64,
    pub(super) end: f64,
    /// The HTTP status; 0 when no answer came back within the client's bound.
    pub(super) status: u16,
    pub(super) retry_after: bool,
    /// The problem body of a 5xx answer.
    pub(super) body: String,
}

pub(super) struct Load {
    pub(super) started: Instant,
    pub(super) calls: Mutex<Vec<Call>>,
    /// Documents acknowledged with 202, and when their request started.
    pub(super) accepted: Mutex<Vec<(String, f64)>>,
    pub(super) ready: Mutex<Vec<(f64, u16)>>,
}

impl Load {
    pub(super) fn now(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }
}

async fn one_call(app: &TestApp, key: &str, kind: Kind, n: usize, load: &Load) {
    let (path, body) = match kind {
        Kind::Search => (
            "/vectors/search",
            json!({"collection": "chaos", "vector": [0.1, 0.2, 0.3], "limit": 3}),
        ),
        Kind::Find => (
            "/graphs/node/find",
            json!({"label": "ChaosEntity", "properties": {"name": "anchor"}, "limit": 5}),
        ),
        Kind::Ingest => (
            "/ingest",
            json!({"id": format!("doc-{n}"), "text": format!("Chaos document {n} about Lisbon.")}),
        ),
    };
    let start = load.now();
    let sent = app
        .request(Method::POST, path)
        .header("X-API-Key", key)
        .json(&body)
        .timeout(Duration::from_secs(15))
        .send()
        .await;
    let (status, retry_after, body) = match sent {
        Ok(r) => {
            let (status, retry) = (r.status().as_u16(), r.headers().contains_key("retry-after"));
            let body = if status >= 500 {
                r.text().await.unwrap_or_default()
            } else {
                String::new()
            };
            (status, retry, body)
        }
        Err(_) => (0, false, String::new()),
    };
    if kind == Kind::Ingest && status == 202 {
        load.accepted
            .lock()
            .unwrap()
            .push((format!("doc-{n}"), start));
    }
    load.calls.lock().unwrap().push(Call {
        kind,
        start,
        end: load.now(),
        status,
        retry_after,
        body,
    });
}

/// Client threads at a steady pace until `stop`; a readiness poller beside them.
pub(super) fn drive(
    app: Arc<TestApp>,
    key: String,
    load: Arc<Load>,
    stop: watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    for worker in 0..6usize {
        let (app, key, load, stop) = (app.clone(), key.clone(), load.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let kinds = [Kind::Search, Kind::Find, Kind::Ingest];
            let mut n = worker;
            while !*stop.borrow() {
                one_call(&app, &key, kinds[n % 3], n, &load).await;
                // Ingests at a pace the shared Bolt server's graph writes keep up with.
                let pause = if kinds[n % 3] == Kind::Ingest {
                    250
                } else {
                    60
                };
                n += 6;
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
        }));
    }
    tasks.push(tokio::spawn(async move {
        while !*stop.borrow() {
            let at = load.now();
            let status = app
                .request(Method::GET, "/health/ready")
                .timeout(Duration::from_secs(15))
                .send()
                .await
                .map_or(0, |r| r.status().as_u16());
            load.ready.lock().unwrap().push((at, status));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }));
    tasks
}
