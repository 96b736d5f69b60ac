//! A backend stopped in the middle of a test and started again: a real Redis server
//! (holding the API keys and the search cache) is killed, the server answers 503 with
//! `Retry-After`, the breaker opens and readiness says so; once Redis is back (with its
//! data, from its append-only file) the breaker closes and requests succeed again.

use std::num::NonZero;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use ragbrain::config::Millis;
use ragbrain::config::{AuthBackend, CacheBackend, Settings};
use reqwest::Method;
use serde_json::{Value, json};

use crate::backends;
use crate::helpers::{free_port, spawn_app_with};

static REDIS_URL: OnceLock<String> = OnceLock::new();

fn on_own_redis(s: &mut Settings) {
    s.redis.url = REDIS_URL.get().cloned().unwrap_or_default().into();
    s.redis.key_prefix = "fault:".into();
    s.auth.backend = AuthBackend::Redis;
    s.auth.jwt_secret = "test-secret-shared-by-every-replica-0123456789"
        .to_owned()
        .into();
    s.cache.backend = CacheBackend::Redis;
    let r = &mut s.resilience;
    r.timeout_ms = Millis::new(1000);
    r.max_attempts = NonZero::new(2).unwrap();
    r.backoff_base_ms = Millis::new(10);
    r.backoff_max_ms = 50;
    r.failure_threshold = NonZero::new(3).unwrap();
    r.open_ms = Millis::new(1000);
}

fn start_redis(binary: &str, port: u16, dir: &std::path::Path) -> Child {
    Command::new(binary)
        .args([
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--appendonly",
            "yes",
        ])
        .args(["--appendfsync", "always", "--save", ""])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server starts")
}

pub(crate) async fn wait_port(port: u16) {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nothing listened on {port}");
}

/// A Redis server of a test's own, so its outage touches no other test; its data is on
/// an append-only file, so a restart keeps it. Killed when dropped.
pub(crate) struct OwnRedis {
    binary: String,
    dir: tempfile::TempDir,
    pub(crate) port: u16,
    child: Option<Child>,
}

impl OwnRedis {
    pub(crate) async fn start() -> Self {
        let binary =
            std::env::var("RAGBRAIN_TEST_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = start_redis(&binary, port, dir.path());
        wait_port(port).await;
        Self {
            binary,
            dir,
            port,
            child: Some(child),
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL: no shutdown, as a crash.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and data.
    pub(crate) async fn restart(&mut self) {
        self.kill();
        self.child = Some(start_redis(&self.binary, self.port, self.dir.path()));
        wait_port(self.port).await;
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

#[tokio::test]
async fn a_stopped_redis_opens_the_breaker_and_its_return_closes_it() {
    let Some(_) = backends::redis_url() else {
        return;
    };
    let mut redis = OwnRedis::start().await;
    REDIS_URL.set(redis.url()).unwrap();

    let mut app = spawn_app_with(on_own_redis).await;
    let key = app.key("acme", &["write"]).await;
    let search = json!({"text": "anything", "limit": 3});
    let r = app
        .call(Method::POST, "/vectors/search", &key, Some(search.clone()))
        .await;
    assert_eq!(r.status(), 200);

    // Redis goes away mid-test.
    redis.kill();
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let r = app
            .call(Method::POST, "/vectors/search", &key, Some(search.clone()))
            .await;
        statuses.push(r.status().as_u16());
        if r.status() == 503 {
            let retry: u64 = r.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=5).contains(&retry), "Retry-After {retry}");
            let body: Value = r.json().await.unwrap();
            assert_eq!(
                body["type"].as_str().unwrap().rsplit('/').next(),
                Some("unavailable")
            );
            assert!(
                !body["detail"].as_str().unwrap().contains("redis"),
                "no internals leak"
            );
        }
    }
    assert!(statuses.iter().all(|s| *s == 503), "{statuses:?}");
    let ready = app.get("/health/ready").await;
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    assert!(
        body["checks"]["breaker:redis"]
            .as_str()
            .unwrap()
            .contains("open"),
        "{body}"
    );
    assert!(
        body["checks"]["auth"]
            .as_str()
            .unwrap()
            .starts_with("error"),
        "{body}"
    );
    assert_eq!(
        app.get("/health/live").await.status(),
        200,
        "liveness never touches a backend"
    );
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(r#"circuit_breaker_state{backend="redis"} 1"#),
        "breaker open"
    );
    assert!(
        metrics
            .contains(r#"backend_requests_total{backend="redis",op="get_key",outcome="rejected"}"#)
    );

    // Redis comes back with its data; after the cool-down a probe closes the breaker.
    redis.restart().await;
    let mut back = false;
    for _ in 0..100 {
        let r = app
            .call(Method::POST, "/vectors/search", &key, Some(search.clone()))
            .await;
        if r.status() == 200 {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(back, "requests succeed once Redis is back");
    assert_eq!(app.get("/health/ready").await.status(), 200);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains(r#"circuit_breaker_state{backend="redis"} 0"#));

    app.shutdown().await;
}
