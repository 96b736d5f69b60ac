//! Connection hygiene through real sockets: idle keep-alive connections and slow headers
//! are closed on time, a crowd of idle connections larger than the open-file limit does
//! not lock probes out, and a refusal before the body is read says `Connection: close`.

use ragbrain::config::Millis;
use std::process::Stdio;
use std::time::{Duration, Instant};

use reqwest::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{binary_command, free_port, spawn_app_with, wait_for};

const GET_LIVE: &[u8] = b"GET /health/live HTTP/1.1\r\nHost: test\r\n\r\n";

/// Reads until the peer closes the connection (Ok(true)) or `within` passes (Ok(false)).
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// Sends one request on `stream` and reads its (small) response.
async fn round_trip(stream: &mut TcpStream) -> String {
    stream.write_all(GET_LIVE).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = stream.read(&mut buf).await.unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let app = spawn_app_with(|s| s.server.idle_timeout_ms = Millis::new(300)).await;
    let addr = app.address.trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&addr).await.unwrap();

    let response = round_trip(&mut stream).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    // Still open while within the timeout: a second request is served.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(round_trip(&mut stream).await.starts_with("HTTP/1.1 200"));

    let started = Instant::now();
    assert!(closed_within(&mut stream, Duration::from_secs(3)).await);
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn a_header_sent_too_slowly_is_cut_off() {
    let app = spawn_app_with(|s| s.server.header_read_timeout_ms = Millis::new(300)).await;
    let addr = app.address.trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&addr).await.unwrap();

    stream
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: test\r\n")
        .await
        .unwrap();

    assert!(closed_within(&mut stream, Duration::from_secs(3)).await);
}

#[tokio::test]
async fn a_refusal_before_the_body_is_read_closes_the_connection() {
    let app = spawn_app_with(|_| {}).await;
    let body = serde_json::json!({"points": [{"id": 1, "vector": [0.1, 0.2]}]});
    let r = app
        .request(Method::POST, "/vectors/upsert")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["connection"], "close");

    let without_body = app.get("/vectors/collections/x").await;
    assert_eq!(without_body.status(), 401);
    assert!(!without_body.headers().contains_key("connection"));
}

#[tokio::test]
async fn probes_get_in_while_more_idle_connections_are_open_than_files_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let command = binary_command(port, dir.path());
    // The server runs with an open-file limit of 200, soft and hard.
    let mut shell = std::process::Command::new("sh");
    shell
        .arg("-c")
        .arg(format!(
            "ulimit -n 200 && exec \"$0\" {}",
            command
                .get_args()
                .map(|a| format!("'{}'", a.to_str().unwrap()))
                .collect::<Vec<_>>()
                .join(" ")
        ))
        .arg(command.get_program())
        .envs(command.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .stderr(Stdio::null());
    let mut server = shell.spawn().unwrap();
    assert!(wait_for(port, "/health/live", "").await.is_some());

    let mut idle = Vec::new();
    for _ in 0..300 {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)).await else {
            continue;
        };
        if stream.write_all(GET_LIVE).await.is_ok() {
            let mut buf = [0u8; 1024];
            let _ = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await;
        }
        idle.push(stream);
    }
    assert_eq!(idle.len(), 300);

    let probe = tokio::time::timeout(
        Duration::from_secs(5),
        reqwest::get(format!("http://127.0.0.1:{port}/health/live")),
    )
    .await;
    let _ = server.kill();
    let _ = server.wait();
    let probe = probe.expect("the probe is answered in time").unwrap();
    assert_eq!(probe.status(), 200);
}
