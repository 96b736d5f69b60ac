//! The embedded graph's write path under crashes and long histories: acknowledged node
//! and relationship writes survive `kill -9` (even during a WAL rewrite), and the WAL
//! stays bounded by the live graph.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::get_json;
use crate::write_path::{Scratch, dir_bytes};

const WRITERS: u64 = 16;

/// Settings that make the graph rewrite its WAL every few hundred commits, with the
/// rewrite logged.
const SMALL_GRAPH_WAL: [(&str, &str); 2] = [
    ("RAGBRAIN__GRAPH__WAL_LIMIT_BYTES", "16384"),
    (
        "RAGBRAIN__LOG__LEVEL",
        "warn,ragbrain::store::embedded::graph_wal=info",
    ),
];

#[tokio::test]
async fn the_graph_wal_stays_bounded_and_restart_keeps_the_latest_values() {
    let scratch = Scratch::new();
    let mut server = scratch.start(&SMALL_GRAPH_WAL).await;
    let graph = scratch.data.path().join("graph");
    let filler = "x".repeat(2048);
    let mut graph_max = 0;
    // 2,000 writes of 2 KiB to the same 20 nodes: about 4 MiB of history, 40 KiB live.
    for round in 0..100 {
        for n in 0..20 {
            let node = json!({"id": format!("n{n}"), "labels": ["Wal"],
                "properties": {"round": round, "filler": filler}});
            assert!(
                server
                    .post("/graphs/node", node)
                    .await
                    .status()
                    .is_success()
            );
        }
        graph_max = graph_max.max(dir_bytes(&graph));
    }
    assert!(
        graph_max <= 1 << 20,
        "the graph WAL reached {graph_max} bytes for 40 KiB of live data"
    );
    let log = std::fs::read_to_string(scratch.log()).unwrap();
    assert!(
        log.contains("compacted the graph WAL"),
        "no compaction: {log}"
    );
    server.kill();
    let mut server = scratch.start(&SMALL_GRAPH_WAL).await;
    for n in 0..20 {
        let path = format!("/graphs/node/n{n}");
        let node = get_json(&server.client, server.port, &path, &server.key).await;
        assert_eq!(node["properties"]["round"], 99, "{node}");
    }
    server.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_nine_under_sixteen_graph_writers_loses_no_acknowledged_node_or_relationship() {
    let scratch = Scratch::new();
    // The WAL is rewritten several times under the writers: the kill may land in one.
    let mut server = scratch.start(&SMALL_GRAPH_WAL).await;
    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let (acked, stop) = (acked.clone(), stop.clone());
        let (port, key) = (server.port, server.key.clone());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let post = |path: &'static str, body: Value| {
                client
                    .post(format!("http://127.0.0.1:{port}{path}"))
                    .header("X-API-Key", &key)
                    .json(&body)
                    .send()
            };
            let mut n = 0;
            while !stop.load(Ordering::Acquire) {
                let id = format!("w{w}-n{n}");
                let created = post("/graphs/node", json!({"id": id, "labels": ["Crash"]})).await;
                if !matches!(created, Ok(r) if r.status() == 201) {
                    return;
                }
                // Each node after the first links back to the writer's previous one.
                let linked = if n == 0 {
                    true
                } else {
                    let rel = json!({"from": id, "to": format!("w{w}-n{}", n - 1), "type": "NEXT"});
                    matches!(post("/graphs/relationship", rel).await, Ok(r) if r.status() == 201)
                };
                acked.lock().unwrap().push((id, linked && n > 0));
                if !linked {
                    return;
                }
                n += 1;
            }
        }));
    }
    while acked.lock().unwrap().len() < 600 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill();
    stop.store(true, Ordering::Release);
    for t in tasks {
        let _ = t.await;
    }
    let acked = acked.lock().unwrap().clone();
    let log = std::fs::read_to_string(scratch.log()).unwrap();
    assert!(
        log.contains("compacted the graph WAL"),
        "no compaction: {log}"
    );
    let server = scratch.start(&SMALL_GRAPH_WAL).await;
    for (id, linked) in &acked {
        let node = server
            .client
            .get(format!("http://127.0.0.1:{}/graphs/node/{id}", server.port))
            .header("X-API-Key", &server.key)
            .send()
            .await
            .unwrap();
        assert_eq!(node.status(), 200, "acknowledged node {id} is missing");
        if *linked {
            let next: Value = server
                .post(
                    "/graphs/neighbors",
                    json!({"id": id, "direction": "out", "types": ["NEXT"]}),
                )
                .await
                .json()
                .await
                .unwrap();
            assert_eq!(
                next["neighbors"].as_array().map_or(0, Vec::len),
                1,
                "acknowledged relationship from {id} is missing: {next}"
            );
        }
    }
    let mut server = server;
    server.kill();
}
