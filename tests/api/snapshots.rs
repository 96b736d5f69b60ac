//! Snapshots of the embedded stores (`POST /admin/snapshots`, `ragbrain snapshot`):
//! taken under write load, restored into a new directory, a server started there finds
//! every write acknowledged before the snapshot began.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::helpers::{
    assert_problem, free_port, get_json, post_json, spawn_app, spawn_app_with, spawn_binary,
    wait_for,
};

/// What the writers had acknowledged, and when.
#[derive(Default)]
struct Acked {
    points: Vec<(u64, Instant)>,
    nodes: Vec<(String, Instant)>,
}

/// One writer: upserts a point and creates a node per round until `stop`, noting each
/// acknowledgement.
async fn write_until(
    client: reqwest::Client,
    base: String,
    key: String,
    writer: u64,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Acked>>,
) {
    let mut round = 0u64;
    while !stop.load(Ordering::Acquire) {
        let id = writer * 1_000_000 + round;
        let point = json!({"id": id, "vector": [1.0, id as f32, 0.5, 0.25]});
        let r = client
            .post(format!("{base}/vectors/upsert"))
            .header("X-API-Key", &key)
            .json(&json!({"collection": "snap", "points": [point]}))
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            acked.lock().await.points.push((id, Instant::now()));
        }
        let node = format!("n{id}");
        let r = client
            .post(format!("{base}/graphs/node"))
            .header("X-API-Key", &key)
            .json(&json!({"id": node, "labels": ["P"]}))
            .send()
            .await
            .unwrap();
        if r.status() == 201 {
            acked.lock().await.nodes.push((node, Instant::now()));
        }
        round += 1;
    }
}

fn ragbrain() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ragbrain"))
}

/// Restores `file` into `target` with the binary, then starts a server there; returns
/// it once ready, with its port.
async fn restore_and_start(file: &std::path::Path, target: &std::path::Path) -> (Child, u16) {
    let out = ragbrain()
        .args(["snapshot", "restore"])
        .arg(file)
        .arg("--data-dir")
        .arg(target)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let port = free_port();
    let server = spawn_binary(port, target, Stdio::null());
    assert!(wait_for(port, "/health/ready", "").await.is_some());
    (server, port)
}

#[tokio::test]
async fn a_snapshot_under_write_load_restores_every_write_acknowledged_before_it() {
    let app = spawn_app().await;
    let admin = app.admin_key.clone();
    app.create_collection(&admin, "snap", 4).await;
    let doc = json!({"id": "ada", "text": "Ada Lovelace wrote the first program for Babbage."});
    app.json(Method::POST, "/ingest", &admin, Some(doc)).await;
    app.wait_ingested(&admin, &["ada"]).await;

    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Acked::default()));
    let writers: Vec<_> = (1..=8)
        .map(|w| {
            tokio::spawn(write_until(
                app.client.clone(),
                app.address.clone(),
                admin.clone(),
                w,
                stop.clone(),
                acked.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let began = Instant::now();
    let r = app
        .call(Method::POST, "/admin/snapshots", &admin, None)
        .await;
    assert_eq!(r.status(), 201);
    let snapshot: Value = r.json().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Release);
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().await;
    let points: Vec<u64> = acked
        .points
        .iter()
        .filter(|(_, at)| *at < began)
        .map(|(id, _)| *id)
        .collect();
    let nodes: Vec<&str> = acked
        .nodes
        .iter()
        .filter(|(_, at)| *at < began)
        .map(|(id, _)| id.as_str())
        .collect();
    assert!(
        points.len() > 20 && nodes.len() > 20,
        "too few writes to prove anything"
    );
    assert!(
        acked.points.len() > points.len(),
        "no write was acknowledged after the snapshot began: the load did not overlap it"
    );
    let stores: Vec<&str> = snapshot["manifest"]["stores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(stores[0], "events", "{snapshot}");
    for store in ["vectors", "graph", "auth", "audit"] {
        assert!(stores.contains(&store), "{store} missing from {snapshot}");
    }
    let listed = app
        .json(Method::GET, "/admin/snapshots", &admin, None)
        .await;
    assert_eq!(listed[0]["name"], snapshot["name"]);

    let file = app
        .data_dir
        .path()
        .join("snapshots")
        .join(snapshot["name"].as_str().unwrap());
    let restored = tempfile::tempdir().unwrap();
    let target = restored.path().join("data");
    let (mut server, port) = restore_and_start(&file, &target).await;
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    for ids in points.chunks(500) {
        let body = json!({"collection": "snap", "ids": ids});
        let got = post_json(&client, port, "/vectors/retrieve", &admin, body).await;
        assert_eq!(got["points"].as_array().unwrap().len(), ids.len(), "{got}");
    }
    let mut missing = Vec::new();
    for node in &nodes {
        let r = client
            .get(format!("{base}/graphs/node/{node}"))
            .header("X-API-Key", &admin)
            .send()
            .await
            .unwrap();
        if r.status() != 200 {
            missing.push(node.to_string());
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} nodes missing after the restore: {missing:?}",
        missing.len(),
        nodes.len()
    );
    let status = get_json(&client, port, "/ingest/ada", &admin).await;
    assert_eq!(status["status"], "processed", "{status}");
    let query = json!({"query": "Who wrote the first program?", "limit": 3});
    let found = post_json(&client, port, "/hybrid/search", &admin, query).await;
    assert_eq!(found["hits"][0]["payload"]["doc_id"], "ada", "{found}");
    server.kill().unwrap();
    server.wait().unwrap();

    // A restore never writes over data.
    let out = ragbrain()
        .args(["snapshot", "restore", file.to_str().unwrap(), "--data-dir"])
        .arg(&target)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not empty"));
}

#[tokio::test]
async fn only_operators_take_snapshots_and_a_stopped_servers_directory_snapshots_offline() {
    let mut app = spawn_app().await;
    let tenant_admin = app.key("acme", &["read", "write", "admin"]).await;
    let r = app
        .call(Method::POST, "/admin/snapshots", &tenant_admin, None)
        .await;
    assert_problem(r, 403).await;
    let writer = app.key("acme", &["read", "write"]).await;
    let r = app
        .call(Method::GET, "/admin/snapshots", &writer, None)
        .await;
    assert_problem(r, 403).await;

    let admin = app.admin_key.clone();
    app.create_collection(&admin, "snap", 4).await;
    let point = json!({"id": 7, "vector": [1.0, 2.0, 3.0, 4.0]});
    app.json(
        Method::POST,
        "/vectors/upsert",
        &admin,
        Some(json!({"collection": "snap", "points": [point]})),
    )
    .await;
    app.shutdown().await;
    let out_dir = tempfile::tempdir().unwrap();
    let file = out_dir.path().join("offline.tar.zst");
    let out = ragbrain()
        .args(["snapshot", "create", "--data-dir"])
        .arg(app.data_dir.path())
        .arg("--out")
        .arg(&file)
        .env("RAGBRAIN__LOG__LEVEL", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let target = out_dir.path().join("data");
    let (mut server, port) = restore_and_start(&file, &target).await;
    let client = reqwest::Client::new();
    let info = get_json(&client, port, "/vectors/collections/snap", &admin).await;
    assert_eq!(info["points_count"], 1, "{info}");
    server.kill().unwrap();
    server.wait().unwrap();
}

#[tokio::test]
async fn snapshots_are_kept_up_to_the_limit_and_can_be_downloaded_and_deleted() {
    let app = spawn_app_with(|s| s.snapshots.keep = std::num::NonZeroUsize::new(2).unwrap()).await;
    let admin = app.admin_key.clone();
    let mut names = Vec::new();
    for _ in 0..3 {
        let taken = app
            .json(Method::POST, "/admin/snapshots", &admin, None)
            .await;
        names.push(taken["name"].as_str().unwrap().to_owned());
    }
    let listed = app
        .json(Method::GET, "/admin/snapshots", &admin, None)
        .await;
    let listed: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        listed,
        [names[1].as_str(), names[2].as_str()],
        "the oldest goes"
    );

    let newest = &names[2];
    let r = app
        .request(Method::GET, &format!("/admin/snapshots/{newest}"))
        .header("X-API-Key", &admin)
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/zstd");
    assert!(
        r.headers().get("content-encoding").is_none(),
        "zstd is not gzipped again"
    );
    let body = r.bytes().await.unwrap();
    let file = std::fs::read(app.data_dir.path().join("snapshots").join(newest)).unwrap();
    assert!(body.as_ref() == file.as_slice(), "the download is the file");

    let tenant_admin = app.key("acme", &["read", "write", "admin"]).await;
    let path = format!("/admin/snapshots/{newest}");
    assert_problem(app.call(Method::GET, &path, &tenant_admin, None).await, 403).await;
    for name in ["nope.tar.zst", "..%2Fauth.redb", "..%2F..%2Fetc%2Fpasswd"] {
        let r = app
            .call(
                Method::GET,
                &format!("/admin/snapshots/{name}"),
                &admin,
                None,
            )
            .await;
        assert_problem(r, 404).await;
    }
    let r = app.call(Method::DELETE, &path, &admin, None).await;
    assert_eq!(r.status(), 204);
    let listed = app
        .json(Method::GET, "/admin/snapshots", &admin, None)
        .await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_problem(app.call(Method::DELETE, &path, &admin, None).await, 404).await;
}
