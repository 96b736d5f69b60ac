//! The `ragbrain` binary itself as a child process, for tests of what only a real
//! process shows (signals, exit codes, memory, the command line), and plain JSON calls
//! to it by port.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

/// A port that was free a moment ago, for starting the binary itself.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the `ragbrain` binary on `port` over `data_dir`, quiet unless it fails.
pub fn spawn_binary(port: u16, data_dir: &Path, stderr: Stdio) -> Child {
    binary_command(port, data_dir)
        .stderr(stderr)
        .spawn()
        .expect("ragbrain starts")
}

/// The command [`spawn_binary`] runs, for tests that add settings or limits.
pub fn binary_command(port: u16, data_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ragbrain"));
    command
        .args([
            "--port",
            &port.to_string(),
            "--data-dir",
            data_dir.to_str().unwrap(),
        ])
        .env("RAGBRAIN__LOG__LEVEL", "warn")
        .env("RAGBRAIN__RATE_LIMIT__ENABLED", "false");
    command
}

/// Resident memory of process `pid` in bytes, from `/proc/<pid>/status`.
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    kib * 1024
}

/// Waits until the server on `port` answers `GET path`, for up to a minute: a debug
/// build starting beside the rest of the suite on two cores has taken over ten seconds.
pub async fn wait_for(port: u16, path: &str, key: &str) -> Option<reqwest::StatusCode> {
    let client = reqwest::Client::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        let sent = client
            .get(format!("http://127.0.0.1:{port}{path}"))
            .header("X-API-Key", key)
            .send()
            .await;
        if let Ok(r) = sent {
            return Some(r.status());
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    None
}

/// `GET path` on the server at `port` with API key `key`, its body as JSON.
pub async fn get_json(client: &reqwest::Client, port: u16, path: &str, key: &str) -> Value {
    json_answer(client.get(format!("http://127.0.0.1:{port}{path}")), key).await
}

/// `POST path` with `body` on the server at `port` with API key `key`, its answer as
/// JSON.
pub async fn post_json(
    client: &reqwest::Client,
    port: u16,
    path: &str,
    key: &str,
    body: Value,
) -> Value {
    let request = client.post(format!("http://127.0.0.1:{port}{path}"));
    json_answer(request.json(&body), key).await
}

/// Sends `request` with API key `key`; the answer's body as JSON.
async fn json_answer(request: reqwest::RequestBuilder, key: &str) -> Value {
    let answer = request.header("X-API-Key", key).send().await.unwrap();
    answer.json().await.unwrap()
}

/// Polls `GET /ingest/{id}` on a server started with [`spawn_binary`] until the document
/// leaves `pending` or `polls` tries 100 ms apart pass; the last status body.
pub async fn ingest_status_after(
    client: &reqwest::Client,
    port: u16,
    key: &str,
    id: &str,
    polls: usize,
) -> Value {
    let mut status = Value::Null;
    for _ in 0..polls {
        status = get_json(client, port, &format!("/ingest/{id}"), key).await;
        if status["status"] != "pending" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    status
}
