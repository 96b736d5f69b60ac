//! Test harness: the production router on port 0 over a fresh data directory, with the
//! bootstrap admin key read back from where the server writes it, and a restart that
//! reopens the same directory.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use ragbrain::app::Application;
use ragbrain::config::Millis;
use ragbrain::config::Settings;
use ragbrain::services::ingest::{IngestService, worker};
use reqwest::{Method, RequestBuilder, Response};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

mod binary;
pub use binary::{
    binary_command, free_port, get_json, ingest_status_after, post_json, rss_bytes, spawn_binary,
    wait_for,
};

pub struct TestApp {
    pub address: String,
    /// The plain probes-and-metrics port, when `server.admin_port` is set.
    pub admin_port: Option<u16>,
    pub client: reqwest::Client,
    pub admin_key: String,
    pub data_dir: TempDir,
    configure: fn(&mut Settings),
    stop: Option<oneshot::Sender<()>>,
    server: Option<Server>,
    /// Set when no background worker runs: the tests drain the log through it.
    ingest: Option<IngestService>,
}

fn settings(data_dir: &Path, configure: fn(&mut Settings)) -> Settings {
    let mut s = Settings::load(None).expect("default settings load");
    s.server.port = 0;
    s.server.data_dir = data_dir.to_path_buf();
    s.vectors.maintenance_ms = Millis::new(100);
    // Writes stay checked against the disk, with a reserve any test machine has.
    s.server.disk_reserve_bytes = 1 << 20;
    // The test drives the ingest worker ([`TestApp::wait_ingested`] drains the log), so
    // nothing is processed behind its back and nothing is polled; a test that needs the
    // background worker turns it on.
    s.ingest.worker = false;
    // Limits stay on (every request goes through them) but never bind, except in the
    // tests that tighten them.
    let generous = std::num::NonZeroU32::new(1_000_000).unwrap();
    s.rate_limit.quotas = ragbrain::config::Quotas::all(ragbrain::config::QuotaSettings {
        per_minute: generous,
        burst: generous,
    });
    configure(&mut s);
    s.validate().expect("test settings are valid");
    s
}

type Server = JoinHandle<std::io::Result<()>>;

/// A started in-process server.
struct Started {
    address: String,
    admin_port: Option<u16>,
    stop: oneshot::Sender<()>,
    server: Server,
    /// The ingest service, to drain the log when no background worker runs.
    ingest: Option<IngestService>,
}

async fn start(data_dir: &Path, configure: fn(&mut Settings)) -> Started {
    let app = Application::build(settings(data_dir, configure))
        .await
        .expect("app builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let admin_port = app.admin_port();
    let state = app.state();
    let ingest = (!state.settings.ingest.worker).then(|| state.ingest.clone());
    let (stop, rx) = oneshot::channel();
    let server = tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    Started {
        address,
        admin_port,
        stop,
        server,
        ingest,
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Like [`spawn_app`], with settings changed by `configure` (kept across restarts).
pub async fn spawn_app_with(configure: fn(&mut Settings)) -> TestApp {
    spawn_app_on(tempfile::tempdir().expect("temp dir"), configure).await
}

/// Like [`spawn_app_with`], on an empty `data_dir` the caller chose.
pub async fn spawn_app_on(data_dir: TempDir, configure: fn(&mut Settings)) -> TestApp {
    let mut app = spawn_app_in(data_dir, configure, String::new()).await;
    app.admin_key = std::fs::read_to_string(app.data_dir.path().join("bootstrap-admin.key"))
        .expect("bootstrap key file")
        .trim()
        .to_owned();
    app
}

/// A server on a data directory filled elsewhere (by a restore or a migration),
/// signing in with `admin_key`, an admin key its stores already hold.
pub async fn spawn_app_in(
    data_dir: TempDir,
    configure: fn(&mut Settings),
    admin_key: String,
) -> TestApp {
    let started = start(data_dir.path(), configure).await;
    TestApp {
        address: started.address,
        admin_port: started.admin_port,
        client: reqwest::Client::new(),
        admin_key,
        data_dir,
        configure,
        stop: Some(started.stop),
        server: Some(started.server),
        ingest: started.ingest,
    }
}

impl Drop for TestApp {
    /// A failed test keeps its data directory, to look at what the server wrote. Removed,
    /// it would also fail the flush the vector stores make when the runtime drops the
    /// still-running server, and that second panic's message would bury the test's.
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.data_dir.disable_cleanup(true);
            eprintln!(
                "the failed test's data directory: {}",
                self.data_dir.path().display()
            );
        }
    }
}

impl TestApp {
    /// Stops the server gracefully (stores closed) and starts a new one on the same data.
    pub async fn restart(&mut self) {
        self.shutdown().await;
        let started = start(self.data_dir.path(), self.configure).await;
        self.address = started.address;
        self.admin_port = started.admin_port;
        self.stop = Some(started.stop);
        self.server = Some(started.server);
        self.ingest = started.ingest;
    }

    /// Like [`TestApp::restart`], with new settings from now on.
    pub async fn restart_with(&mut self, configure: fn(&mut Settings)) {
        self.configure = configure;
        self.restart().await;
    }

    /// Processes what the ingest log holds, when the test drives the worker.
    pub async fn drain(&self) {
        if let Some(ingest) = &self.ingest {
            worker::drain_once(ingest)
                .await
                .expect("the ingest log drains");
        }
    }

    /// One pass of the worker over the log, with its error (a worker that cannot write).
    pub async fn try_drain(&self) -> Result<usize, ragbrain::store::StoreError> {
        worker::drain_once(self.ingest.as_ref().expect("the test drives the worker")).await
    }

    /// Every document's status once it has left `pending`, in order: after draining the
    /// log when the test drives the worker, else polling `GET /ingest/{id}` (up to 60 s).
    pub async fn wait_ingested(&self, key: &str, ids: &[&str]) -> Vec<Value> {
        self.drain().await;
        let mut out = Vec::new();
        for id in ids {
            let path = format!("/ingest/{id}");
            let mut last = Value::Null;
            for _ in 0..600 {
                last = self.json(Method::GET, &path, key, None).await;
                if last["status"] != "pending" {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            assert_ne!(last["status"], "pending", "{id} still pending after 60 s");
            out.push(last);
        }
        out
    }

    /// Waits until document `id`'s delete is processed: a processed delete leaves no
    /// status behind (404).
    pub async fn wait_deleted(&self, key: &str, id: &str) {
        self.drain().await;
        let path = format!("/ingest/{id}");
        for _ in 0..300 {
            if self.call(Method::GET, &path, key, None).await.status() == 404 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("the delete of {id} was not processed within 30 s");
    }

    /// The current status of one document, without waiting.
    pub async fn ingest_status(&self, key: &str, id: &str) -> String {
        let status = self
            .json(Method::GET, &format!("/ingest/{id}"), key, None)
            .await;
        status["status"].as_str().unwrap_or_default().to_owned()
    }

    pub async fn shutdown(&mut self) {
        // Its stores must be released before a restart opens them again.
        self.ingest = None;
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server
                .await
                .expect("server task")
                .expect("server stopped cleanly");
        }
    }

    /// A GET without credentials.
    pub async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path)
            .send()
            .await
            .expect("request sent")
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}{}", self.address, path))
    }

    /// A JSON request authenticated with `key`.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> Response {
        let mut req = self.request(method, path).header("X-API-Key", key);
        if let Some(body) = body {
            req = req.json(&body);
        }
        req.send().await.expect("request sent")
    }

    /// Like [`TestApp::call`], asserting a 2xx status and returning the JSON body.
    pub async fn json(&self, method: Method, path: &str, key: &str, body: Option<Value>) -> Value {
        let r = self.call(method.clone(), path, key, body).await;
        let status = r.status();
        let text = r.text().await.expect("response body");
        assert!(status.is_success(), "{method} {path}: {status} {text}");
        serde_json::from_str(&text).expect("JSON body")
    }

    /// Creates an API key in `tenant` with `scopes`, as the operator.
    pub async fn key(&self, tenant: &str, scopes: &[&str]) -> String {
        let body = json!({"name": "test", "tenant": tenant, "scopes": scopes});
        let r = self
            .call(Method::POST, "/auth/api-keys", &self.admin_key, Some(body))
            .await;
        assert_eq!(r.status(), 201);
        r.json::<Value>().await.unwrap()["key"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Trades `key` at `POST /auth/token`, asserting 200; the token response body.
    pub async fn login(&self, key: &str) -> Value {
        let r = self
            .request(Method::POST, "/auth/token")
            .json(&json!({"grant_type": "api_key", "api_key": key}))
            .send()
            .await
            .expect("request sent");
        assert_eq!(r.status(), 200);
        r.json().await.expect("JSON body")
    }

    /// Deletes the API key `key` (by its id), as the operator.
    pub async fn delete_key(&self, key: &str) -> Response {
        let id = key.split('_').nth(1).expect("rbk_<id>_<secret>");
        self.call(
            Method::DELETE,
            &format!("/auth/api-keys/{id}"),
            &self.admin_key,
            None,
        )
        .await
    }

    pub async fn create_collection(&self, key: &str, name: &str, dim: usize) {
        let r = self
            .call(
                Method::PUT,
                &format!("/vectors/collections/{name}"),
                key,
                Some(json!({"dim": dim})),
            )
            .await;
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }

    pub fn jwt_secret(&self) -> Vec<u8> {
        std::fs::read_to_string(self.data_dir.path().join("jwt-secret"))
            .unwrap()
            .trim()
            .as_bytes()
            .to_vec()
    }
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Unpadded base64url, for hand-made tokens.
pub fn b64url(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

pub async fn assert_problem(r: Response, status: u16) -> Value {
    assert_eq!(r.status().as_u16(), status, "unexpected status");
    let content_type = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], status);
    assert!(body["type"].as_str().unwrap().starts_with("/problems/"));
    assert!(body["correlation_id"].is_string());
    body
}

/// The `payload.doc_id` of every hit of a search response, in rank order.
pub fn doc_ids(hits: &Value) -> Vec<String> {
    hits["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["payload"]["doc_id"].as_str().unwrap().to_owned())
        .collect()
}

/// Deterministic vectors of `dim` coordinates, each in [-1, 1], scattered in direction
/// (a xorshift stream seeded by `i`): searches find each one's own point first.
pub fn scattered_vector(i: usize, dim: usize) -> Vec<f32> {
    let mut x = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (0..dim)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 2_001) as f32 / 1_000.0 - 1.0
        })
        .collect()
}

/// The Python interpreter of the test tools' virtualenv (schemathesis, the deployment
/// validator), or `None` with the reason printed when they are not installed; under
/// `CI=true` that is a failure.
pub fn test_python() -> Option<std::path::PathBuf> {
    let Ok(python) = std::env::var("RAGBRAIN_TEST_PYTHON") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "RAGBRAIN_TEST_PYTHON is unset under CI; run ./scripts/test.sh"
        );
        eprintln!("skipped: RAGBRAIN_TEST_PYTHON is unset (./scripts/test.sh sets it)");
        return None;
    };
    Some(python.into())
}
