//! SIGKILL in the middle of ingesting 1,000 events: every event the server
//! acknowledged (202) is processed after the restart.

use std::collections::HashSet;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{free_port, get_json, ingest_status_after, spawn_binary, wait_for};

const EVENTS: usize = 1000;
const SENDERS: usize = 8;

fn event(i: usize) -> Value {
    json!({
        "id": format!("e{i}"),
        "text": format!("Event {i} reports that Agent{} Smith met Agent{} Jones in Lisbon.", i % 10, i % 7),
    })
}

#[tokio::test]
async fn killing_the_server_mid_ingest_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = spawn_binary(port, dir.path(), Stdio::null());
    assert!(wait_for(port, "/health/live", "").await.is_some());
    let key = std::fs::read_to_string(dir.path().join("bootstrap-admin.key"))
        .unwrap()
        .trim()
        .to_owned();
    let client = reqwest::Client::new();
    let acked: Arc<Mutex<HashSet<usize>>> = Arc::default();
    let senders: Vec<_> = (0..SENDERS)
        .map(|s| {
            let (client, key, acked) = (client.clone(), key.clone(), acked.clone());
            tokio::spawn(async move {
                for i in (s..EVENTS).step_by(SENDERS) {
                    let sent = client
                        .post(format!("http://127.0.0.1:{port}/ingest"))
                        .header("X-API-Key", &key)
                        .json(&event(i))
                        .send()
                        .await;
                    match sent {
                        Ok(r) if r.status() == 202 => {
                            acked.lock().unwrap().insert(i);
                        }
                        _ => return,
                    }
                }
            })
        })
        .collect();
    while acked.lock().unwrap().len() < EVENTS * 2 / 5 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill().unwrap(); // SIGKILL: no shutdown hook runs
    server.wait().unwrap();
    for s in senders {
        s.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() < EVENTS,
        "the kill came too late to test anything"
    );

    // Restart; the client re-sends what was not acknowledged, as a real one would.
    let mut server = spawn_binary(port, dir.path(), Stdio::null());
    assert!(wait_for(port, "/health/live", "").await.is_some());
    let missing: Vec<Value> = (0..EVENTS)
        .filter(|i| !acked.contains(i))
        .map(event)
        .collect();
    for batch in missing.chunks(100) {
        let r = client
            .post(format!("http://127.0.0.1:{port}/ingest/batch"))
            .header("X-API-Key", &key)
            .json(&json!({"events": batch}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    }
    for i in 0..EVENTS {
        let status = ingest_status_after(&client, port, &key, &format!("e{i}"), 600).await;
        assert_eq!(
            status["status"],
            "processed",
            "e{i} (acked before the kill: {})",
            acked.contains(&i)
        );
    }
    let info = get_json(&client, port, "/vectors/collections/documents", &key).await;
    assert_eq!(
        info["points_count"], EVENTS,
        "one chunk per event, none twice"
    );
    server.kill().unwrap();
    server.wait().unwrap();
}
