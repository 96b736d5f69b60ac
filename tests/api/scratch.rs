//! One server process kept across `kill -9` restarts on one data directory, for the
//! tests of what survives a crash: [`Scratch`] holds the directory, log file and port,
//! [`Server`] the running binary and a client for it.

use std::process::{Child, Stdio};

use serde_json::Value;

use crate::helpers::{binary_command, free_port, wait_for};

pub(crate) struct Server {
    child: Child,
    pub(crate) port: u16,
    pub(crate) key: String,
    pub(crate) log: std::path::PathBuf,
    pub(crate) client: reqwest::Client,
}

/// A data directory, a log file and a port: one server across its restarts.
pub(crate) struct Scratch {
    pub(crate) data: tempfile::TempDir,
    logs: tempfile::TempDir,
    port: u16,
}

impl Scratch {
    pub(crate) fn new() -> Self {
        Self {
            data: tempfile::tempdir().unwrap(),
            logs: tempfile::tempdir().unwrap(),
            port: free_port(),
        }
    }

    pub(crate) fn log(&self) -> std::path::PathBuf {
        self.logs.path().join("server.log")
    }

    /// Starts the binary with maintenance running often, a tiny indexing threshold and
    /// small checkpoints, its debug log of maintenance steps appended to [`Scratch::log`];
    /// `env` adds or overrides settings.
    pub(crate) async fn start(&self, env: &[(&str, &str)]) -> Server {
        let (data, log, port) = (self.data.path(), self.log(), self.port);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = binary_command(port, data)
            .env(
                "RAGBRAIN__LOG__LEVEL",
                "warn,ragbrain::store::embedded::vectors=debug",
            )
            .env("RAGBRAIN__VECTORS__MAINTENANCE_MS", "20")
            .env("RAGBRAIN__VECTORS__CHECKPOINT_LOG_BYTES", "262144")
            .env("RAGBRAIN__VECTORS__INDEXING_THRESHOLD_KB", "200")
            .env("RAGBRAIN__VECTORS__INDEXING_THREADS", "1")
            .envs(env.iter().copied())
            .stderr(Stdio::from(file))
            .spawn()
            .unwrap();
        if wait_for(port, "/health/live", "").await.is_none() {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(20).collect();
            panic!(
                "the server did not start; its log ends with:\n{}",
                tail.join("\n")
            );
        }
        let key = std::fs::read_to_string(data.join("bootstrap-admin.key"))
            .unwrap()
            .trim()
            .to_owned();
        Server {
            child,
            port,
            key,
            log,
            client: reqwest::Client::new(),
        }
    }
}

impl Server {
    pub(crate) async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.client
            .post(format!("http://127.0.0.1:{}{path}", self.port))
            .header("X-API-Key", &self.key)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// The status `method` on `path` gets, with `body` as JSON if given.
    pub(crate) async fn status(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> u16 {
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        let request = self
            .client
            .request(method, url)
            .header("X-API-Key", &self.key);
        let request = match body {
            Some(body) => request.json(&body),
            None => request,
        };
        request.send().await.unwrap().status().as_u16()
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn kill(&mut self) {
        self.child.kill().unwrap(); // SIGKILL: no shutdown hook runs
        self.child.wait().unwrap();
    }
}

/// A failed assertion must not leave the server running (it would hold the test
/// runner's output open).
impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
