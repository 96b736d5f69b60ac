//! The `ragbrain` binary itself: configuration errors, the bootstrap key on stderr, and
//! a clean exit on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

use crate::helpers::{free_port, get_json, spawn_binary, wait_for};

fn ragbrain() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ragbrain"))
}

#[test]
fn an_invalid_setting_stops_start_up_with_one_line_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = ragbrain()
        .args(["--data-dir", dir.path().to_str().unwrap()])
        .env("RAGBRAIN__SERVER__PORT", "not-a-port")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("server.port"), "{stderr}");

    let out = ragbrain()
        .env("RAGBRAIN__LIMITS__MAX_SEARCH_LIMIT", "0")
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("limits.max_search_limit: must be greater than 0"),
        "{stderr}"
    );

    // Times are typed: a 0 is refused as the settings load, from a file or the
    // environment, naming the key.
    let out = ragbrain()
        .env("RAGBRAIN__LIMITS__QUERY_TIMEOUT_MS", "0")
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("limits.query_timeout_ms: must be greater than 0"),
        "{stderr}"
    );

    for (file, wanted) in [
        (
            "[graph]\nindexed_properties = [\"name\", \"x-y\"]\n",
            "graph.indexed_properties: \"x-y\" is not a property name",
        ),
        (
            "[resilience]\nopen_ms = 0\n",
            "resilience.open_ms: must be greater than 0",
        ),
        (
            "[rate_limit]\nsearch = { per_minute = 7, burst = 0 }\n",
            "rate_limit: search: per_minute and burst must be greater than 0",
        ),
        (
            "[rate_limit]\nserach = { per_minute = 7, burst = 7 }\n",
            "rate_limit: unknown variant: found `serach`",
        ),
        (
            "[ingest]\nworker_batch = 0\n",
            "ingest.worker_batch: must be greater than 0",
        ),
        (
            "[events]\nbackend = \"kafka\"\nkafka_brokers = \"k:9092\"\ngroup_id = \"\"\n",
            "events: group_id: must be set when backend = \"kafka\"",
        ),
        (
            "[graph]\nbackend = \"neo4j\"\nneo4j_uri = \"bolt://n:7687\"\nneo4j_max_connections = 0\n",
            "graph.neo4j_max_connections: must be greater than 0",
        ),
        (
            "[limits]\nmax_id_len = 4097\n",
            "limits.max_id_len must be at most 4096",
        ),
        (
            "[hybrid]\nppr_damping = 1.0\n",
            "hybrid.ppr_damping must be between 0 and 1",
        ),
        (
            "[hybrid]\ngraph_ranker = \"pagerank\"\n",
            "hybrid.graph_ranker",
        ),
    ] {
        let config = dir.path().join("bad.toml");
        std::fs::write(&config, file).unwrap();
        let out = ragbrain()
            .args(["--config", config.to_str().unwrap()])
            .output()
            .unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(wanted), "{stderr}");
    }

    let out = ragbrain()
        .args(["--config", "/nonexistent/ragbrain.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test]
async fn serve_saves_the_bootstrap_key_logs_only_its_path_and_exits_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = ragbrain()
        .args([
            "serve",
            "--port",
            &port.to_string(),
            "--data-dir",
            dir.path().to_str().unwrap(),
        ])
        .env("RAGBRAIN__LOG__LEVEL", "warn")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // JSON logs name the file but never carry the key itself.
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let announcement: serde_json::Value =
        serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    let key_file = dir.path().join("bootstrap-admin.key");
    assert_eq!(announcement["path"], key_file.display().to_string());
    assert!(!announcement.to_string().contains("rbk_"));
    let key = std::fs::read_to_string(&key_file)
        .unwrap()
        .trim()
        .to_owned();
    assert!(key.starts_with("rbk_"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let url = format!("http://127.0.0.1:{port}/graphs/node");
    let node = serde_json::json!({"id": "x"});
    let r = reqwest::Client::new()
        .post(&url)
        .header("X-API-Key", &key)
        .json(&node)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert!(terminate(child).await.status.success());

    // A second start on the same data keeps the node and prints no new key.
    let again = spawn_binary(port, dir.path(), Stdio::piped());
    assert_eq!(
        wait_for(port, "/graphs/node/x", &key).await,
        Some(reqwest::StatusCode::OK)
    );
    let exit = terminate(again).await;
    assert!(exit.status.success());
    assert!(
        !String::from_utf8_lossy(&exit.stderr).contains("rbk_"),
        "no second bootstrap key"
    );
}

/// Sends SIGTERM and waits for the process to exit.
async fn terminate(child: Child) -> Output {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn ragbrain_worker_processes_what_an_api_only_server_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    let port = free_port();
    let api_only = ragbrain()
        .args(["serve", "--port", &port.to_string(), "--data-dir", &data])
        .env("RAGBRAIN__INGEST__WORKER", "false")
        .env("RAGBRAIN__LOG__LEVEL", "warn")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_for(port, "/health/live", "").await.is_some());
    let key = std::fs::read_to_string(dir.path().join("bootstrap-admin.key")).unwrap();
    let key = key.trim();
    let client = reqwest::Client::new();
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    let r = client
        .post(url("/ingest"))
        .header("X-API-Key", key)
        .json(&serde_json::json!({"id": "queued", "text": "Queued while no worker ran."}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert!(terminate(api_only).await.status.success());

    // The worker alone drains the log, then stops cleanly on SIGTERM.
    let mut worker = ragbrain()
        .args(["worker", "--data-dir", &data])
        .env("RAGBRAIN__LOG__LEVEL", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = worker.stderr.take().unwrap();
    // Read stderr to the end (a closed pipe would fail the worker's last log lines),
    // reporting when the first batch is committed.
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("ingest batch committed")
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(());
            }
        }
    });
    let committed = tokio::time::timeout(std::time::Duration::from_secs(60), rx).await;
    assert!(
        matches!(committed, Ok(Ok(()))),
        "the worker never committed a batch"
    );
    assert!(terminate(worker).await.status.success());

    let server = spawn_binary(port, dir.path(), Stdio::null());
    assert_eq!(
        wait_for(port, "/ingest/queued", key).await,
        Some(reqwest::StatusCode::OK)
    );
    let status = get_json(&client, port, "/ingest/queued", key).await;
    assert_eq!(status["status"], "processed", "{status}");
    terminate(server).await;
}
