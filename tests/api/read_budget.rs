//! The read budget through HTTP (`limits.read_budget_bytes`): a large answer keeps its
//! room until its body has been sent, so a client that does not read it holds the next
//! large reads of its tenant back (a search, a client Cypher query), while small reads
//! and other tenants' large reads go on; the
//! room comes back once the body is read, or once the server drops a client that has
//! stopped reading. Such answers are streamed, and go out gzipped whole.

use std::time::Duration;

use ragbrain::config::Millis;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app_with};
use crate::metrics::{sample, scrape};

const POINTS: u64 = 400;
/// 400 payloads of 60 KB: a 24 MB answer, far more than loopback's socket buffers.
const PAYLOAD: usize = 60_000;

async fn metric(app: &TestApp, series: &str) -> f64 {
    sample(&scrape(app).await, series)
}

/// A collection `big` of [`POINTS`] points with [`PAYLOAD`]-byte payloads, and a key.
async fn stored(app: &TestApp) -> String {
    let key = app.key("acme", &["read", "write"]).await;
    app.create_collection(&key, "big", 4).await;
    let text = "x".repeat(PAYLOAD);
    for batch in (0..POINTS).collect::<Vec<_>>().chunks(25) {
        let points: Vec<Value> = batch
            .iter()
            .map(|&id| json!({"id": id, "vector": [1.0, id as f32, 0.5, 0.25], "payload": {"text": text}}))
            .collect();
        let body = json!({"collection": "big", "points": points});
        app.json(Method::POST, "/vectors/upsert", &key, Some(body))
            .await;
    }
    key
}

fn large_search() -> Value {
    json!({"collection": "big", "vector": [1, 0, 0, 0], "limit": POINTS, "with_payload": true})
}

#[tokio::test]
async fn a_large_answer_holds_its_room_until_it_has_been_sent() {
    let app = spawn_app_with(|s| {
        s.limits.read_budget_bytes = (4 << 20).try_into().unwrap();
        s.limits.read_budget_per_tenant_bytes = (2 << 20).try_into().unwrap();
    })
    .await;
    let key = stored(&app).await;
    let large = large_search();
    let send_large = || {
        app.request(Method::POST, "/vectors/search")
            .header("X-API-Key", &key)
            .json(&large)
            .send()
    };

    // Headers come back; the 24 MB body waits for a reader.
    let unread = send_large().await.unwrap();
    assert_eq!(unread.status(), 200);
    let reserved = "read_budget_reserved_bytes";
    assert_eq!(
        metric(&app, reserved).await,
        f64::from(2 << 20),
        "the tenant's whole share"
    );

    // A small read does not queue behind it.
    let small =
        json!({"collection": "big", "vector": [1, 0, 0, 0], "limit": 5, "with_payload": false});
    let hits = app
        .json(Method::POST, "/vectors/search", &key, Some(small))
        .await;
    assert_eq!(hits["hits"].as_array().unwrap().len(), 5);

    // A second large read waits for the room the unread answer holds, and so does a
    // client Cypher query (whose result may reach 16 MiB) after it.
    let second = tokio::spawn(send_large());
    let waits = async |n: f64| {
        for _ in 0..200 {
            if metric(&app, "read_budget_waits_total").await >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert_eq!(metric(&app, "read_budget_waits_total").await, n);
    };
    waits(1.0).await;
    let cypher = tokio::spawn(
        app.request(Method::POST, "/graphs/query")
            .header("X-API-Key", &key)
            .json(&json!({"query": "MATCH (n) RETURN count(n) AS n"}))
            .send(),
    );
    waits(2.0).await;
    assert!(!second.is_finished(), "the second large read went ahead");
    assert!(!cypher.is_finished(), "the Cypher query went ahead");

    // Another tenant's large read has the rest of the budget.
    let other = app.key("globex", &["read", "write"]).await;
    app.create_collection(&other, "big", 4).await;
    let point = json!({"collection": "big", "points": [{"id": 1, "vector": [1, 0, 0, 0]}]});
    app.json(Method::POST, "/vectors/upsert", &other, Some(point))
        .await;
    let hits = app
        .json(
            Method::POST,
            "/vectors/search",
            &other,
            Some(large_search()),
        )
        .await;
    assert_eq!(hits["hits"].as_array().unwrap().len(), 1);
    assert_eq!(metric(&app, "read_budget_waits_total").await, 2.0);
    assert!(!second.is_finished(), "the second large read went ahead");

    let first: Value = unread.json().await.unwrap();
    assert_eq!(first["hits"].as_array().unwrap().len(), POINTS as usize);
    let second = tokio::time::timeout(Duration::from_secs(30), second)
        .await
        .expect("the second read goes ahead once the first answer is read")
        .unwrap()
        .unwrap();
    assert_eq!(second.status(), 200);
    let second: Value = second.json().await.unwrap();
    assert_eq!(second["hits"].as_array().unwrap().len(), POINTS as usize);
    assert_eq!(
        second["hits"][0]["payload"]["text"].as_str().map(str::len),
        Some(PAYLOAD)
    );
    let cypher = tokio::time::timeout(Duration::from_secs(30), cypher)
        .await
        .expect("the Cypher query goes ahead once the second answer is read")
        .unwrap()
        .unwrap();
    assert_eq!(cypher.status(), 200);
    let rows: Value = cypher.json().await.unwrap();
    assert_eq!(rows["rows"][0][0], json!(0), "{rows}");
    assert_eq!(metric(&app, reserved).await, 0.0);
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_and_its_room_given_back() {
    let app = spawn_app_with(|s| {
        s.limits.read_budget_bytes = (4 << 20).try_into().unwrap();
        s.server.idle_timeout_ms = Millis::new(500);
    })
    .await;
    let key = stored(&app).await;
    let unread = app
        .request(Method::POST, "/vectors/search")
        .header("X-API-Key", &key)
        .json(&large_search())
        .send()
        .await
        .unwrap();
    assert_eq!(unread.status(), 200);
    let reserved = "read_budget_reserved_bytes";
    assert_eq!(metric(&app, reserved).await, f64::from(4 << 20));

    // Within two idle periods of the last slice the client took, the server drops the
    // connection, and the room with it.
    let mut left = f64::NAN;
    for _ in 0..200 {
        left = metric(&app, reserved).await;
        if left == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(left, 0.0, "the unread answer still holds its room");
    assert!(
        unread.bytes().await.is_err(),
        "the dropped answer ends short"
    );
    let hits = app
        .json(Method::POST, "/vectors/search", &key, Some(large_search()))
        .await;
    assert_eq!(hits["hits"].as_array().unwrap().len(), POINTS as usize);
}

#[tokio::test]
async fn a_large_answer_goes_out_gzipped_whole() {
    let mut app = spawn_app_with(|_| {}).await;
    let key = stored(&app).await;
    for _ in 0..2 {
        let response = app
            .request(Method::POST, "/vectors/search")
            .header("X-API-Key", &key)
            .header("Accept-Encoding", "gzip")
            .json(&large_search())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-encoding"], "gzip");
        // The compression layer asks the answer's stream for more after its end; the
        // server must end the body, not drop the connection.
        let gzipped = response.bytes().await.expect("the whole body");
        let mut json = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gzipped[..]), &mut json)
            .unwrap();
        let answer: Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(answer["hits"].as_array().unwrap().len(), POINTS as usize);
    }
    app.shutdown().await;
}
