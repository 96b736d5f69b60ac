//! Clients that disconnect mid-request, against the binary: nothing wedged, no
//! descriptors left behind, and no write half-applied after a kill -9.

use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

use crate::helpers::get_json;
use crate::scratch::Scratch;

/// Clients that give up mid-request (a tiny client timeout drops the connection while
/// the server works) on upserts, graph writes and ingests, against the binary: nothing
/// wedges (a normal request answers at once, readiness stays green), the server's open
/// files come back to where they were, and after a kill -9 and restart every
/// acknowledged write is there while every unacknowledged 10-point upsert is there
/// whole or not at all.
#[tokio::test]
async fn clients_that_disconnect_mid_request_leave_nothing_wedged() {
    let scratch = Scratch::new();
    let mut server = scratch.start(&[]).await;
    let base = format!("http://127.0.0.1:{}", server.port);
    let put = server
        .client
        .put(format!("{base}/vectors/collections/gone"))
        .header("X-API-Key", &server.key)
        .json(&json!({"dim": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);
    let open_files =
        |pid: u32| std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    let upsert = |base: u64| {
        let points: Vec<_> = (0..10)
            .map(|i| json!({"id": base + i, "vector": [0.1, 0.2, 0.3 + i as f64]}))
            .collect();
        json!({"collection": "gone", "points": points})
    };
    // Warm: the first writes open the stores' files.
    assert_eq!(
        server
            .post("/vectors/upsert", upsert(5_000_000))
            .await
            .status(),
        200
    );
    let warm = json!({"id": "warm", "labels": ["Gone"], "properties": {}});
    assert_eq!(server.post("/graphs/node", warm).await.status(), 201);
    let doc = json!({"id": "warm", "text": "Warm-up text about Porto."});
    assert_eq!(server.post("/ingest", doc).await.status(), 202);
    for _ in 0..600 {
        let status = get_json(&server.client, server.port, "/ingest/warm", &server.key).await;
        if status["status"] == "processed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The load's own client: its pooled connections close when it is dropped.
    let client = reqwest::Client::new();
    let before = open_files(server.pid());
    let (mut upserts, mut nodes, mut ingests) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..6u64 {
        let calls = (0..30u64).map(|i| {
            let n = round * 100 + i;
            let (path, body) = match i % 3 {
                0 => ("/vectors/upsert", upsert(n * 10)),
                1 => (
                    "/graphs/node",
                    json!({"id": format!("n{n}"), "labels": ["Gone"], "properties": {"n": n}}),
                ),
                _ => (
                    "/ingest",
                    json!({"id": format!("d{n}"), "text": format!("Document {n} about Porto.")}),
                ),
            };
            // From 1 ms (gone before the server answers) to 40 ms (mostly answered).
            let patience = Duration::from_millis(1 + (n * 7) % 40);
            let request = client
                .post(format!("{base}{path}"))
                .header("X-API-Key", &server.key)
                .json(&body)
                .timeout(patience)
                .send();
            async move {
                let acked = matches!(request.await, Ok(r) if r.status().is_success());
                (i % 3, n, acked)
            }
        });
        for (kind, n, acked) in futures_util::future::join_all(calls).await {
            match kind {
                0 => upserts.push((n, acked)),
                1 => nodes.push((n, acked)),
                _ => ingests.push((n, acked)),
            }
        }
    }
    let gave_up = [&upserts, &nodes, &ingests]
        .iter()
        .flat_map(|v| v.iter())
        .filter(|(_, acked)| !acked)
        .count();
    drop(client);
    assert!(
        gave_up > 20,
        "the clients gave up too rarely to test anything: {gave_up}"
    );

    // Nothing wedged: a plain write and readiness answer promptly.
    let started = Instant::now();
    assert_eq!(
        server
            .post("/vectors/upsert", upsert(1_000_000))
            .await
            .status(),
        200
    );
    let ready = server
        .client
        .get(format!("{base}/health/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(5));
    // Open files: back to where they were once the dropped connections are closed.
    let mut grown = 0;
    for _ in 0..50 {
        grown = open_files(server.pid()).saturating_sub(before);
        if grown <= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        grown <= 4,
        "{grown} more open files than before the disconnects"
    );

    server.kill();
    let server = scratch.start(&[]).await;
    for (n, acked) in &upserts {
        let ids: Vec<u64> = (n * 10..n * 10 + 10).collect();
        let found: serde_json::Value = server
            .post(
                "/vectors/retrieve",
                json!({"collection": "gone", "ids": ids}),
            )
            .await
            .json()
            .await
            .unwrap();
        let count = found["points"].as_array().map_or(0, Vec::len);
        if *acked {
            assert_eq!(count, 10, "acknowledged upsert {n} lost points: {found}");
        } else {
            assert!(
                count == 0 || count == 10,
                "upsert {n} half applied: {count} of 10"
            );
        }
    }
    for (n, _) in nodes.iter().filter(|(_, acked)| *acked) {
        let r = server
            .client
            .get(format!("http://127.0.0.1:{}/graphs/node/n{n}", server.port))
            .header("X-API-Key", &server.key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "acknowledged node n{n} lost");
    }
    for (n, _) in ingests.iter().filter(|(_, acked)| *acked) {
        let path = format!("/ingest/d{n}");
        let mut status = serde_json::Value::Null;
        for _ in 0..600 {
            status = get_json(&server.client, server.port, &path, &server.key).await;
            if status["status"] != "pending" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(status["status"], "processed", "d{n}: {status}");
    }
}
