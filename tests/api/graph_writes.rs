//! The embedded graph's write path under crashes and long histories: acknowledged node
//! and relationship writes survive `kill -9` (even during a WAL rewrite), the WAL stays
//! bounded by the live graph, and reads go on while it is rewritten.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{get_json, ingest_status_after};
use crate::scratch::Scratch;

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
        graph_max = graph_max.max(graph_bytes(scratch.data.path()));
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

/// Bytes under every entry of `data` named like the graph's (`graph`, its generations
/// `graph.N`, a copy being written), counted through subdirectories; but for
/// `graph.tail`, whose files are hard links to the live log's, which take no more disk.
fn graph_bytes(data: &std::path::Path) -> u64 {
    fn tree(path: &std::path::Path) -> u64 {
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => std::fs::read_dir(path)
                .map(|entries| entries.flatten().map(|e| tree(&e.path())).sum())
                .unwrap_or(0),
            Ok(m) => m.len(),
            Err(_) => 0,
        }
    }
    std::fs::read_dir(data)
        .unwrap()
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with("graph") && name != "graph.tail"
        })
        .map(|e| tree(&e.path()))
        .sum()
}

/// A WAL rewrite copies the live graph and replays the copy; reads are served by the
/// engine being copied meanwhile, and wait only for the swap. Writes go on too: they
/// wait only for an in-memory snapshot and the last catch-up, and the ones made during
/// the copy are carried into it. Before, reads and then writes waited for the whole
/// rewrite. 158 MB of live graph makes the copy last long enough to tell these apart
/// (about half a second on 2 cores); a restart then opens the generation the rewrite
/// made, with every write acknowledged during it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_and_writes_go_on_while_the_graph_wal_is_rewritten() {
    // Nodes of 63 KB (properties are capped at 64 KiB a node): the log's size is looked
    // at every 256 commits, and passes the limit only at the look after the 2,500th.
    const BIG: usize = 2_500;
    let scratch = Scratch::new();
    let env = [
        ("RAGBRAIN__GRAPH__WAL_LIMIT_BYTES", "150000000"),
        (
            "RAGBRAIN__LOG__LEVEL",
            "warn,ragbrain::store::embedded::graph_wal=info",
        ),
    ];
    let mut server = scratch.start(&env).await;
    let filler = "x".repeat(63_000);
    for n in 0..BIG {
        let node = json!({"id": format!("big{n}"), "labels": ["Big"],
            "properties": {"filler": filler}});
        let r = server.post("/graphs/node", node).await;
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }
    let probe = json!({"id": "probe", "labels": ["Probe"], "properties": {"n": 1}});
    assert_eq!(server.post("/graphs/node", probe).await.status(), 201);

    // One reader, back to back, while small writes reach the commit count at which
    // the log's size is looked at (256) and the rewrite starts, and go on through it.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (stop, client) = (stop.clone(), server.client.clone());
        let url = format!("http://127.0.0.1:{}/graphs/node/probe", server.port);
        let key = server.key.clone();
        tokio::spawn(async move {
            let (mut reads, mut slowest) = (0u32, Duration::ZERO);
            while !stop.load(Ordering::Acquire) {
                let started = std::time::Instant::now();
                let r = client.get(&url).header("X-API-Key", &key).send().await;
                assert_eq!(r.unwrap().status(), 200);
                slowest = slowest.max(started.elapsed());
                reads += 1;
            }
            (reads, slowest)
        })
    };
    let (mut n, mut slowest_write) = (0, Duration::ZERO);
    while !std::fs::read_to_string(scratch.log())
        .unwrap()
        .contains("compacted the graph WAL")
    {
        assert!(n < 20_000, "no rewrite after {n} writes");
        let node = json!({"id": format!("small{n}"), "labels": ["Small"]});
        let started = std::time::Instant::now();
        assert_eq!(server.post("/graphs/node", node).await.status(), 201);
        if n >= 256 {
            slowest_write = slowest_write.max(started.elapsed());
        }
        n += 1;
    }
    stop.store(true, Ordering::Release);
    let (reads, slowest) = reader.await.unwrap();
    let log = std::fs::read_to_string(scratch.log()).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("compacted the graph WAL"))
        .unwrap();
    let line: Value = serde_json::from_str(line).unwrap();
    let ms = |field: &str| {
        line[field]
            .as_u64()
            .unwrap_or_else(|| panic!("{field}: {line}"))
    };
    let (copy_and_open, swap) = (ms("copy_ms") + ms("open_ms"), ms("swap_ms"));
    eprintln!(
        "{reads} reads, the slowest {slowest:?}; {n} writes, the slowest {slowest_write:?}; {line}"
    );
    assert!(
        copy_and_open >= 200,
        "the rewrite took too little time to tell anything: {line}"
    );
    assert!(reads > 10, "{reads} reads");
    assert!(
        slowest.as_millis() < u128::from(copy_and_open / 2),
        "a read waited {slowest:?}, against {copy_and_open} ms of copy and {swap} ms of swap"
    );
    assert!(
        slowest_write.as_millis() < u128::from(copy_and_open / 2),
        "a write waited {slowest_write:?}, against {copy_and_open} ms of copy"
    );
    assert!(
        ms("caught_up") > 0,
        "no write was carried into the copy: {line}"
    );

    server.kill();
    let mut server = scratch.start(&env).await;
    for k in 0..n {
        let path = format!("/graphs/node/small{k}");
        let node = get_json(&server.client, server.port, &path, &server.key).await;
        assert_eq!(node["id"], format!("small{k}"), "{node}");
    }
    server.kill();
    let mut server = scratch.start(&env).await;
    for id in ["big0", "probe"] {
        let path = format!("/graphs/node/{id}");
        let node = get_json(&server.client, server.port, &path, &server.key).await;
        assert_eq!(node["id"], id, "{node}");
    }
    assert!(
        scratch.data.path().join("graph.current").exists(),
        "the rewrite named the generation it made"
    );
    server.kill();
}

/// `RELATED_TO` weight between Ada Lovelace and Charles Babbage, and their mention
/// counts, read with client Cypher.
async fn ada_and_charles(server: &crate::scratch::Server) -> Value {
    let query = "MATCH (a:Entity {id: 'entity:ada lovelace'})-[r:RELATED_TO]-\
                 (b:Entity {id: 'entity:charles babbage'}) \
                 RETURN r.weight, a.mentions, b.mentions";
    let answer: Value = server
        .post("/graphs/query", json!({"query": query}))
        .await
        .json()
        .await
        .unwrap();
    answer["rows"][0].clone()
}

/// Ingests documents `from..to` (all naming Ada Lovelace and Charles Babbage) and
/// waits for them to be processed.
async fn ingest_letters(server: &crate::scratch::Server, from: usize, to: usize) {
    for batch in (from..to).collect::<Vec<_>>().chunks(100) {
        let events: Vec<Value> = batch
            .iter()
            .map(|i| {
                json!({"id": format!("d{i}"),
                       "text": format!("Ada Lovelace wrote letter {i} to Charles Babbage.")})
            })
            .collect();
        let accepted = server
            .post("/ingest/batch", json!({"events": events}))
            .await;
        assert_eq!(accepted.status(), 202);
    }
    // One minute for all of them, polled 100 ms apart.
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in from..to {
        let polls = deadline
            .saturating_duration_since(Instant::now())
            .as_millis()
            / 100;
        let (client, port, key) = (&server.client, server.port, &server.key);
        let id = format!("d{i}");
        let status = ingest_status_after(client, port, key, &id, polls.max(1) as usize).await;
        assert_eq!(status["status"], "processed", "{id}: {status}");
    }
}

/// Documents ingested before and after a graph WAL rewrite: the weights and mention
/// counts the document writes keep (and trust from one document to the next, across
/// the rewrite, which keeps node and edge ids) add up to what the documents say,
/// before and after a restart.
#[tokio::test]
async fn ingest_across_a_graph_wal_rewrite_keeps_weights_and_mention_counts_exact() {
    let scratch = Scratch::new();
    let mut server = scratch.start(&SMALL_GRAPH_WAL).await;
    // More commits than the rewrite's first look at the log's size (every 256).
    ingest_letters(&server, 0, 300).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let rewritten = || {
        let log = std::fs::read_to_string(scratch.log()).unwrap();
        log.contains("compacted the graph WAL")
    };
    while !rewritten() {
        assert!(Instant::now() < deadline, "no graph WAL rewrite");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(ada_and_charles(&server).await, json!([300, 300, 300]));
    ingest_letters(&server, 300, 400).await;
    let expected = json!([400, 400, 400]);
    assert_eq!(ada_and_charles(&server).await, expected);
    server.kill();
    let mut server = scratch.start(&SMALL_GRAPH_WAL).await;
    assert_eq!(ada_and_charles(&server).await, expected);
    server.kill();
}
