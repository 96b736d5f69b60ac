//! Client Cypher (`POST /graphs/query`) as an attacker with a read key would use it:
//! file reads and writes hidden by quoting, escapes, comments and case; procedures;
//! other tenants' graphs; queries built to exhaust memory or a core; and the slots and
//! shutdown that runaway queries used to hold.

use ragbrain::config::Millis;
use std::num::NonZero;
use std::process::Stdio;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{
    TestApp, assert_problem, binary_command, free_port, rss_bytes, spawn_app, spawn_app_with,
    wait_for,
};

async fn query(app: &TestApp, key: &str, body: Value) -> reqwest::Response {
    app.call(Method::POST, "/graphs/query", key, Some(body))
        .await
}

/// Ways to read a file, each hiding `LOAD CSV` from a naive keyword check.
fn file_reads(data_dir: &str) -> Vec<String> {
    let key = format!("{data_dir}/bootstrap-admin.key");
    let mut reads = Vec::new();
    for path in [
        key.as_str(),
        "bootstrap-admin.key",
        "jwt-secret",
        "/proc/self/environ",
        "/etc/hostname",
        "file:///etc/hostname",
    ] {
        reads.extend([
            format!("WITH 1 AS `x\\` LOAD CSV FROM '{path}' AS row RETURN row //`"),
            format!("LOAD CSV FROM '{path}' AS row RETURN row"),
            format!("load csv from \"{path}\" as row return row"),
            format!("LoAd CsV WITH HEADERS FROM '{path}' AS row RETURN row"),
            format!("MATCH (n) WITH count(n) AS c\nLOAD/**/CSV FROM '{path}' AS row RETURN row"),
            format!("RETURN 1 AS x UNION LOAD CSV FROM '{path}' AS row RETURN row AS x"),
            format!("CALL {{ LOAD CSV FROM '{path}' AS row RETURN row }} RETURN row"),
            format!("RETURN 'a\\'' AS q, 1 AS `b``` LOAD CSV FROM '{path}' AS row RETURN row"),
        ]);
    }
    reads
}

#[tokio::test]
async fn a_read_key_cannot_read_the_servers_files_through_cypher() {
    let app = spawn_app().await;
    let key = app.key("acme", &["read"]).await;
    let data_dir = app.data_dir.path().to_str().unwrap().to_owned();
    for attempt in file_reads(&data_dir) {
        let r = query(&app, &key, json!({"query": attempt})).await;
        let status = r.status();
        let body = r.text().await.unwrap();
        assert_eq!(status, 422, "{attempt} → {body}");
        assert!(
            !body.contains(&app.admin_key),
            "{attempt} leaked the admin key"
        );
    }
}

#[tokio::test]
async fn writes_procedures_and_unbounded_queries_are_refused_with_422() {
    let app = spawn_app().await;
    let key = app.key("acme", &["write"]).await;
    let deep = format!("RETURN 1{}", "+1".repeat(5000));
    let brackets = format!("RETURN {}1{}", "[".repeat(200), "]".repeat(200));
    let corpus = [
        "WITH 1 AS `x\\` CREATE (n:Pwned) RETURN n //`",
        "CREATE (n:Pwned)",
        "MATCH (n) DETACH DELETE n",
        "MATCH (n) SET n.x = 1 RETURN n",
        "MATCH (n) REMOVE n.name RETURN n",
        "MERGE (n:Pwned {id: 'x'}) RETURN n",
        "UNWIND [1] AS x FOREACH (y IN [x] | CREATE (:Pwned))",
        "CALL db.labels()",
        "CALL grafeo.pagerank() YIELD node RETURN node",
        "CALL { CREATE (n:Pwned) RETURN n } RETURN n",
        "EXPLAIN MATCH (n) RETURN n",
        "PROFILE MATCH (n) RETURN n",
        "CREATE INDEX FOR (n:Person) ON (n.name)",
        "SHOW INDEXES",
        "RETURN info()",
        "RETURN schema()",
        "RETURN current_graph()",
        "RETURN reduce(s = 'x', i IN range(1, 64) | s + s)",
        "RETURN size(range(1, 2000000000))",
        "UNWIND range(1, 100000000) AS x RETURN count(x)",
        "UNWIND range(-9223372036854775807, 9223372036854775807) AS x RETURN x",
        "MATCH (a)-[*]->(b) RETURN count(b)",
        "MATCH p = shortestPath((a)-[*]-(b)) RETURN p",
        "MATCH (a)-[*1..1000]-(b) RETURN count(b)",
        "ＣＲＥＡＴＥ (n)",
        deep.as_str(),
        brackets.as_str(),
    ];
    for attempt in corpus {
        let r = query(&app, &key, json!({"query": attempt})).await;
        let status = r.status();
        let body = r.text().await.unwrap();
        assert_eq!(status, 422, "{attempt:.80} → {body}");
    }
    let nothing_written = app
        .json(
            Method::POST,
            "/graphs/query",
            &key,
            Some(json!({"query": "MATCH (n) RETURN count(n)"})),
        )
        .await;
    assert_eq!(nothing_written["rows"], json!([[0]]));
}

#[tokio::test]
async fn a_tenant_cannot_reach_another_tenants_graph() {
    let app = spawn_app().await;
    let owner = app.key("acme", &["write"]).await;
    let other = app.key("globex", &["read"]).await;
    let secret = json!({"id": "secret", "labels": ["Doc"], "properties": {"text": "acme only"}});
    let r = app
        .call(Method::POST, "/graphs/node", &owner, Some(secret))
        .await;
    assert_eq!(r.status(), 201);

    for attempt in [
        json!({"query": "MATCH (n) RETURN n.text"}),
        json!({"query": "MATCH (n {tenant: 'acme'}) RETURN n.text"}),
        json!({"query": "MATCH (n) WHERE n.id = 'secret' RETURN n"}),
        json!({"query": "MATCH (n) WHERE n.tenant <> $tenant RETURN n.text"}),
    ] {
        let rows = app
            .json(Method::POST, "/graphs/query", &other, Some(attempt.clone()))
            .await;
        assert_eq!(rows["rows"], json!([]), "{attempt}");
    }
    let overridden = query(
        &app,
        &other,
        json!({"query": "MATCH (n {tenant: $tenant}) RETURN n", "params": {"tenant": "acme"}}),
    )
    .await;
    assert_problem(overridden, 422).await;
    for attempt in [
        "USE tenant_acme MATCH (n) RETURN n",
        "RETURN current_graph()",
    ] {
        assert_problem(query(&app, &other, json!({"query": attempt})).await, 422).await;
    }
}

#[tokio::test]
async fn a_result_over_the_size_limit_is_refused_not_sent() {
    let app =
        spawn_app_with(|s| s.limits.max_query_result_bytes = NonZero::new(1 << 20).unwrap()).await;
    let key = app.key("acme", &["read"]).await;
    let pad = "x".repeat(1000);
    let big = format!("UNWIND range(1, 5000) AS i RETURN i, '{pad}' AS pad");
    let small = format!("UNWIND range(1, 500) AS i RETURN i, '{pad}' AS pad");

    let refused = assert_problem(query(&app, &key, json!({"query": big})).await, 422).await;
    let served = query(&app, &key, json!({"query": small})).await;

    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("fewer rows or columns"),
        "{refused}"
    );
    assert_eq!(served.status(), 200);
}

/// One expression the engine evaluates without checking its deadline: ~10^8 steps.
const SPIN: &str =
    "RETURN size([x IN range(1, 10000) | size([y IN range(1, 10000) WHERE y % 7 = x % 7])])";

#[tokio::test]
async fn a_runaway_query_is_stopped_at_its_deadline_and_frees_its_slot() {
    let app = spawn_app_with(|s| s.limits.query_timeout_ms = Millis::new(500)).await;
    let key = app.key("acme", &["read"]).await;

    let started = Instant::now();
    let r = query(&app, &key, json!({"query": SPIN})).await;
    assert_problem(r, 504).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // The tenant's one slot is free again at once.
    let next = query(&app, &key, json!({"query": "RETURN 1 AS one"})).await;
    assert_eq!(next.status(), 200);
}

#[tokio::test]
async fn one_tenants_runaway_queries_leave_other_tenants_served() {
    let app = spawn_app_with(|s| s.limits.query_timeout_ms = Millis::new(3000)).await;
    let greedy = app.key("greedy", &["read"]).await;
    let patient = app.key("patient", &["read"]).await;

    let runaway = query(&app, &greedy, json!({"query": SPIN}));
    let rest = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut statuses = Vec::new();
        for _ in 0..3 {
            let r = query(&app, &greedy, json!({"query": SPIN})).await;
            statuses.push(r.status().as_u16());
            if r.status() == 429 {
                assert_eq!(r.headers()["retry-after"], "1");
                let problem = assert_problem(r, 429).await;
                let detail = problem["detail"].as_str().unwrap();
                assert!(detail.contains("1 Cypher query at once"), "{detail}");
            }
        }
        let other = query(&app, &patient, json!({"query": "RETURN 1 AS one"})).await;
        (statuses, other.status().as_u16())
    };
    let (first, (greedy_again, other)) = tokio::join!(runaway, rest);

    assert_eq!(first.status(), 504);
    assert_eq!(greedy_again, vec![429, 429, 429], "one slot per tenant");
    assert_eq!(other, 200, "another tenant is served meanwhile");
}

fn kill_on_drop(child: std::process::Child) -> impl Drop {
    struct Guard(std::process::Child);
    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    Guard(child)
}

#[tokio::test]
async fn memory_bombs_stop_at_the_budget_without_growing_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = binary_command(port, dir.path())
        .env(
            "RAGBRAIN__LIMITS__QUERY_MEMORY_BYTES",
            (64u64 << 20).to_string(),
        )
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = server.id();
    let _guard = kill_on_drop(server);
    assert!(wait_for(port, "/health/live", "").await.is_some());
    let key = std::fs::read_to_string(dir.path().join("bootstrap-admin.key")).unwrap();
    let client = reqwest::Client::new();
    let ask = |q: String| {
        client
            .post(format!("http://127.0.0.1:{port}/graphs/query"))
            .header("X-API-Key", key.trim())
            .json(&json!({"query": q}))
            .send()
    };
    assert_eq!(ask("RETURN 1 AS warm".into()).await.unwrap().status(), 200);
    let before = rss_bytes(pid);

    let doubling = format!(
        "WITH 'xxxxxxxxxxxxxxxx' AS s {} RETURN size(s)",
        "WITH s + s AS s ".repeat(30)
    );
    let nested = "RETURN size([x IN range(1, 10000) | [y IN range(1, 10000) | y]])".to_owned();
    for bomb in [doubling, nested] {
        let started = Instant::now();
        let r = ask(bomb.clone()).await.unwrap();
        let body = assert_problem(r, 422).await;
        assert!(
            body["detail"].as_str().unwrap().contains("memory budget"),
            "{body}"
        );
        assert!(started.elapsed() < Duration::from_secs(5), "{bomb}");
    }

    let grown = rss_bytes(pid).saturating_sub(before);
    assert!(grown < 32 << 20, "the server grew by {grown} bytes");
    assert_eq!(ask("RETURN 2 AS alive".into()).await.unwrap().status(), 200);
}

#[tokio::test]
async fn shutdown_does_not_wait_for_a_runaway_query() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = binary_command(port, dir.path())
        .env("RAGBRAIN__LIMITS__QUERY_TIMEOUT_MS", "60000")
        .env("RAGBRAIN__SERVER__SHUTDOWN_GRACE_MS", "30000")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = server.id();
    assert!(wait_for(port, "/health/live", "").await.is_some());
    let key = std::fs::read_to_string(dir.path().join("bootstrap-admin.key")).unwrap();
    let runaway = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/graphs/query"))
        .header("X-API-Key", key.trim())
        .json(&json!({"query": SPIN}))
        .send();
    let runaway = tokio::spawn(runaway);
    let mut sandbox = None;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        sandbox = children_of(pid).into_iter().next();
        if sandbox.is_some() {
            break;
        }
    }
    let sandbox = sandbox.expect("the query runs in a child process");

    let stopping = Instant::now();
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let status = tokio::task::spawn_blocking(move || server.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert!(
        stopping.elapsed() < Duration::from_secs(10),
        "{:?}",
        stopping.elapsed()
    );
    let answer = runaway.await.unwrap().unwrap();
    assert_eq!(answer.status(), 503, "the interrupted query is told why");
    for _ in 0..100 {
        if !std::path::Path::new(&format!("/proc/{sandbox}")).exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !std::path::Path::new(&format!("/proc/{sandbox}")).exists(),
        "the query's process outlived the server"
    );
}

/// Pids of the live child processes of `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|c| {
            c.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}
