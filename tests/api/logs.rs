//! The server's JSON logs, read from the real binary's stderr: one access line per
//! request with every field, the correlation id on every line a request causes (and on
//! the ingest worker's line for its event), errors logged once.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::helpers::{free_port, wait_for};

fn lines_with<'a>(lines: &'a [Value], id: &str) -> Vec<&'a Value> {
    lines
        .iter()
        .filter(|l| l.to_string().contains(id))
        .collect()
}

#[tokio::test]
async fn every_log_line_is_json_and_carries_the_request_correlation_id() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = std::process::Command::new(env!("CARGO_BIN_EXE_ragbrain"))
        .args(["--port", &port.to_string(), "--data-dir"])
        .arg(dir.path())
        .env("RAGBRAIN__LOG__LEVEL", "info")
        .env("RAGBRAIN__LOG__FORMAT", "json")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let raw = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = raw.clone();
    let stderr = server.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    assert!(wait_for(port, "/health/live", "").await.is_some());
    let key = std::fs::read_to_string(dir.path().join("bootstrap-admin.key")).unwrap();
    let client = reqwest::Client::new();
    let url = |p: &str| format!("http://127.0.0.1:{port}{p}");

    let served = client
        .post(url("/ingest"))
        .header("X-API-Key", key.trim())
        .header("X-Correlation-ID", "trace-ingest-1")
        .json(&serde_json::json!({"id": "doc", "text": "Marie Curie studied radium."}))
        .send()
        .await
        .unwrap();
    let rejected = client
        .get(url("/vectors/collections/nope"))
        .header("X-API-Key", key.trim())
        .header("X-Correlation-ID", "trace-missing-2")
        .send()
        .await
        .unwrap();
    let not_offered = client
        .post(url("/hybrid/generate"))
        .header("X-API-Key", key.trim())
        .header("X-Correlation-ID", "trace-no-llm-3")
        .json(&serde_json::json!({"query": "Who studied radium?"}))
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), 202);
    assert_eq!(rejected.status(), 404);
    assert_eq!(not_offered.status(), 501);
    for _ in 0..100 {
        let done = raw
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("ingest batch committed") && l.contains("trace-ingest-1"));
        if done {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    let _ = server.wait();

    let raw = raw.lock().unwrap().clone();
    let lines: Vec<Value> = raw
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    let ingest = lines_with(&lines, "trace-ingest-1");
    let access: Vec<_> = ingest
        .iter()
        .filter(|l| l["message"] == "request served")
        .collect();
    assert_eq!(access.len(), 1, "one access line per request");
    let a = access[0];
    assert_eq!(a["method"], "POST");
    assert_eq!(a["route"], "/ingest");
    assert_eq!(a["status"], 202);
    assert_eq!(a["tenant"], "default");
    assert_eq!(a["correlation_id"], "trace-ingest-1");
    assert!(a["principal"].as_str().is_some_and(|p| !p.is_empty()));
    assert!(a["latency_ms"].as_f64().is_some());
    assert!(
        ingest
            .iter()
            .any(|l| l["message"] == "ingest batch committed"),
        "the worker's line names the request"
    );
    let missing = lines_with(&lines, "trace-missing-2");
    assert_eq!(missing.len(), 1, "an error is logged once: {missing:?}");
    assert_eq!(missing[0]["message"], "request rejected");
    assert_eq!(missing[0]["route"], "/vectors/collections/{name}");
    assert!(
        missing[0]["error"]
            .as_str()
            .unwrap()
            .contains("does not exist")
    );
    let off = lines_with(&lines, "trace-no-llm-3");
    assert_eq!(off.len(), 1, "an error is logged once: {off:?}");
    assert_eq!(
        off[0]["message"], "request rejected",
        "501 is not a failure"
    );
    assert_eq!(off[0]["level"], "INFO");
    assert_eq!(off[0]["status"], 501);
}
