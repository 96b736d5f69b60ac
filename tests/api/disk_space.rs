//! A disk too full for writes (`server.disk_reserve_bytes` above what the filesystem has
//! free): every write that takes space gets 507 with a problem body, reads and deletes
//! go on, accepted events wait in the log instead of failing, and once space is back
//! (here: the reserve lowered) writes resume with nothing lost.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, spawn_app};

/// More than any filesystem has free.
fn short_of_space(s: &mut ragbrain::config::Settings) {
    s.server.disk_reserve_bytes = 1 << 60;
}

/// The test settings' reserve (1 MiB), which any test machine has.
fn space_again(_: &mut ragbrain::config::Settings) {}

async fn refused(app: &TestApp, key: &str, method: Method, path: &str, body: Value) {
    let r = app.call(method.clone(), path, key, Some(body)).await;
    let problem = assert_problem(r, 507).await;
    assert_eq!(
        problem["type"], "/problems/insufficient-storage",
        "{method} {path}"
    );
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("disk space"), "{detail}");
    // A fixed sentence: no path or byte count of the server's disk.
    assert!(
        !detail.contains('/') && !detail.contains("bytes"),
        "{detail}"
    );
}

fn point(id: u64) -> Value {
    json!({"id": id, "vector": [1.0, id as f32, 0.5, 0.25], "payload": {"kind": "a"}})
}

#[tokio::test]
async fn writes_get_507_on_a_full_disk_while_reads_and_deletes_go_on() {
    let mut app = spawn_app().await;
    let key = app.key("acme", &["read", "write"]).await;
    let admin = app.admin_key.clone();
    app.create_collection(&key, "docs", 4).await;
    let upsert = |ids: &[u64]| json!({"collection": "docs", "points": ids.iter().map(|&i| point(i)).collect::<Vec<_>>()});
    app.json(Method::POST, "/vectors/upsert", &key, Some(upsert(&[1, 2])))
        .await;
    for id in ["ann", "bob"] {
        let node = json!({"id": id, "labels": ["Person"]});
        app.json(Method::POST, "/graphs/node", &key, Some(node))
            .await;
    }
    let doc = json!({"id": "kept", "text": "Ada Lovelace wrote about the Analytical Engine."});
    app.json(Method::POST, "/ingest", &key, Some(doc)).await;
    app.wait_ingested(&key, &["kept"]).await;
    // Accepted now, processed only once there is space again.
    let waiting = json!({"id": "waiting", "text": "Grace Hopper wrote the first compiler."});
    app.json(Method::POST, "/ingest", &key, Some(waiting)).await;

    app.restart_with(short_of_space).await;
    refused(&app, &key, Method::POST, "/vectors/upsert", upsert(&[3])).await;
    let spec = json!({"dim": 4, "distance": "cosine"});
    refused(&app, &key, Method::PUT, "/vectors/collections/more", spec).await;
    let index = json!({"field": "kind", "type": "keyword"});
    refused(
        &app,
        &key,
        Method::PUT,
        "/vectors/collections/docs/index",
        index,
    )
    .await;
    let node = json!({"id": "cat", "labels": ["Person"]});
    refused(&app, &key, Method::POST, "/graphs/node", node).await;
    let rel = json!({"from": "ann", "to": "bob", "type": "KNOWS"});
    refused(&app, &key, Method::POST, "/graphs/relationship", rel).await;
    let doc = json!({"id": "new", "text": "Alan Turing asked whether machines can think."});
    refused(&app, &key, Method::POST, "/ingest", doc).await;
    refused(&app, &admin, Method::POST, "/admin/snapshots", json!({})).await;

    // Operators see the free space (more than 0 and less than the reserve here).
    let text = app.get("/metrics").await.text().await.unwrap();
    let free: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("data_dir_free_bytes "))
        .expect("data_dir_free_bytes in the scrape")
        .parse()
        .unwrap();
    assert!(free > 0.0 && free < (1u64 << 60) as f64, "{free}");

    // The worker cannot write the waiting document: it stays pending, not failed.
    let stuck = app.try_drain().await.expect_err("the worker cannot write");
    assert_eq!(stuck.kind, ragbrain::store::ErrorKind::Full, "{stuck}");
    assert_eq!(app.ingest_status(&key, "waiting").await, "pending");

    // Reads.
    let query = json!({"collection": "docs", "vector": [1.0, 1.0, 0.5, 0.25], "limit": 10});
    let hits = app
        .json(Method::POST, "/vectors/search", &key, Some(query.clone()))
        .await;
    assert_eq!(hits["hits"].as_array().unwrap().len(), 2, "{hits}");
    app.json(Method::GET, "/graphs/node/ann", &key, None).await;
    assert_eq!(app.ingest_status(&key, "kept").await, "processed");
    // Deletes free space, so they are never refused.
    let delete = json!({"collection": "docs", "ids": [2]});
    let deleted = app
        .json(Method::POST, "/vectors/delete", &key, Some(delete))
        .await;
    assert_eq!(deleted["deleted"], 1);
    let r = app
        .call(Method::DELETE, "/graphs/node/bob", &key, None)
        .await;
    assert_eq!(r.status(), 204);
    let r = app.call(Method::DELETE, "/ingest/kept", &key, None).await;
    assert_eq!(r.status(), 202);

    // Space again: the waiting document and the delete go through, writes resume.
    app.restart_with(space_again).await;
    let done = app.wait_ingested(&key, &["waiting"]).await;
    assert_eq!(done[0]["status"], "processed", "{}", done[0]);
    app.wait_deleted(&key, "kept").await;
    app.json(Method::POST, "/vectors/upsert", &key, Some(upsert(&[3])))
        .await;
    let hits = app
        .json(Method::POST, "/vectors/search", &key, Some(query))
        .await;
    let mut ids: Vec<u64> = hits["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_u64().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, [1, 3], "{hits}");
    let node = json!({"id": "cat", "labels": ["Person"]});
    app.json(Method::POST, "/graphs/node", &key, Some(node))
        .await;
    let r = app.call(Method::GET, "/graphs/node/bob", &key, None).await;
    assert_eq!(r.status(), 404);
}

/// A small filesystem of its own, unmounted when dropped (a failed test included).
struct Mounted(tempfile::TempDir);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.0.path())
            .status();
    }
}

/// A tmpfs of `mib` MiB, when this process may mount one (root); `None` elsewhere,
/// and the caller says it skipped.
fn small_filesystem(mib: u32) -> Option<Mounted> {
    let dir = tempfile::tempdir().unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
        .arg(dir.path())
        .status()
        .is_ok_and(|s| s.success());
    mounted.then_some(Mounted(dir))
}

/// Writes zeros to `path` until the filesystem is full.
fn fill(path: &std::path::Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let block = vec![0u8; 1 << 16];
    while f.write_all(&block).is_ok() {}
    let _ = f.sync_all();
}

async fn token_status(app: &TestApp) -> u16 {
    app.request(Method::POST, "/auth/token")
        .json(&json!({"grant_type": "api_key", "api_key": app.admin_key}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Another process fills the disk, past any reserve: the key and token stores' writes
/// fail (redb then refuses every transaction until the file is opened again); once the
/// space is back they work again without a restart.
#[tokio::test]
async fn stores_work_again_once_a_disk_another_process_filled_has_room() {
    let Some(mount) = small_filesystem(48) else {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    };
    let data = tempfile::tempdir_in(mount.0.path()).unwrap();
    let mut app = crate::helpers::spawn_app_on(data, |_| {}).await;
    assert_eq!(token_status(&app).await, 200);

    let filler = mount.0.path().join("filler");
    fill(&filler);
    // A token's refresh record cannot be written: a 5xx, not a hang or a crash.
    let full = token_status(&app).await;
    assert!(full == 507 || full == 503, "token on a full disk: {full}");
    let r = app
        .call(
            Method::POST,
            "/auth/api-keys",
            &app.admin_key,
            Some(json!({"name": "k", "tenant": "t1", "scopes": ["read"]})),
        )
        .await;
    assert!(r.status().is_server_error(), "{}", r.status());
    assert_ne!(r.status(), 500, "a full disk is not an internal error");

    std::fs::remove_file(&filler).unwrap();
    let mut again = 0;
    for _ in 0..50 {
        again = token_status(&app).await;
        if again == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(again, 200, "tokens are issued again once there is space");
    let key = app.key("t1", &["read"]).await;
    assert!(key.starts_with("rbk_"));
    let audit = app
        .json(Method::GET, "/audit?limit=5", &app.admin_key, None)
        .await;
    assert!(!audit["records"].as_array().unwrap().is_empty(), "{audit}");
    app.shutdown().await;
}
