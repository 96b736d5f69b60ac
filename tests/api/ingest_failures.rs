//! Ingest events that cannot be processed: bad requests get problem bodies and queue
//! nothing; poison and unreadable events in the log end `failed` with their reason,
//! and the log moves on. A full backlog refuses new events until the worker catches up.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{assert_problem, spawn_app, spawn_app_with};

#[tokio::test]
async fn bad_events_get_problem_bodies_and_nothing_is_queued() {
    let app = spawn_app().await;
    let writer = app.key("acme", &["write"]).await;
    let reader = app.key("acme", &["read"]).await;
    let cases = [
        (json!({"text": "   "}), 422),
        (json!({"text": ""}), 422),
        (
            json!({"text": "ok", "metadata": {"entities": "Marie"}}),
            422,
        ),
        (
            json!({"text": "ok", "metadata": {"entities": ["..."]}}),
            422,
        ),
        (
            json!({"text": "ok", "metadata": {"entities": ["\u{0}\u{202E}"]}}),
            422,
        ),
        (json!({"text": "ok", "collection": "../etc"}), 422),
        (json!({"text": "ok", "id": ""}), 422),
        (json!({"text": "ok", "id": "a\nb"}), 422),
        (json!({"text": "ok", "colour": "red"}), 422),
        (json!({"id": "x"}), 422),
    ];
    for (body, status) in cases {
        let r = app
            .call(Method::POST, "/ingest", &writer, Some(body.clone()))
            .await;
        assert_problem(r, status).await;
    }
    let too_long = json!({"text": "a".repeat(1_048_577)});
    assert_problem(
        app.call(Method::POST, "/ingest", &writer, Some(too_long))
            .await,
        422,
    )
    .await;
    let r = app
        .call(
            Method::POST,
            "/ingest",
            &reader,
            Some(json!({"text": "hi"})),
        )
        .await;
    assert_problem(r, 403).await;

    // A collection of another dimension cannot take the embedder's vectors.
    app.create_collection(&writer, "tiny", 3).await;
    let r = app
        .call(
            Method::POST,
            "/ingest",
            &writer,
            Some(json!({"text": "hi", "collection": "tiny"})),
        )
        .await;
    let problem = assert_problem(r, 422).await;
    assert!(problem["detail"].as_str().unwrap().contains("256"));

    // A batch is all or nothing, and bounded.
    let batch = json!({"events": [{"id": "good", "text": "fine"}, {"text": " "}]});
    let problem = assert_problem(
        app.call(Method::POST, "/ingest/batch", &writer, Some(batch))
            .await,
        422,
    )
    .await;
    assert!(problem["detail"].as_str().unwrap().starts_with("events[1]"));
    assert_problem(
        app.call(Method::GET, "/ingest/good", &writer, None).await,
        404,
    )
    .await;
    let many: Vec<Value> = (0..101)
        .map(|i| json!({"text": format!("event {i}")}))
        .collect();
    let r = app
        .call(
            Method::POST,
            "/ingest/batch",
            &writer,
            Some(json!({"events": many})),
        )
        .await;
    assert_problem(r, 422).await;
    let r = app
        .call(
            Method::POST,
            "/ingest/batch",
            &writer,
            Some(json!({"events": []})),
        )
        .await;
    assert_problem(r, 422).await;

    // Search input is checked too.
    let both = json!({"text": "x", "vector": [1.0]});
    assert_problem(
        app.call(Method::POST, "/vectors/search", &reader, Some(both))
            .await,
        422,
    )
    .await;
    assert_problem(
        app.call(Method::POST, "/vectors/search", &reader, Some(json!({})))
            .await,
        422,
    )
    .await;
    for bad in [
        json!({"query": "x", "hops": 4}),
        json!({"query": "x", "fusion": {"weighted": {"alpha": 2.0}}}),
        json!({"query": "x", "fusion": {"rrf": {"k": 0}}}),
        json!({"query": "x", "fusion": {"rrf": {"k": 1_000_001}}}),
        json!({"query": "x", "mmr": {"lambda": -1}}),
        json!({"query": "x", "limit": 0}),
    ] {
        let r = app
            .call(Method::POST, "/hybrid/search", &reader, Some(bad))
            .await;
        assert_problem(r, 422).await;
    }
}

#[tokio::test]
async fn a_poison_event_is_marked_failed_and_the_log_moves_on() {
    // Accept events with the worker off, then make one of them impossible to process.
    let mut app = spawn_app_with(|s| s.ingest.worker = false).await;
    let key = app.key("acme", &["write"]).await;
    let poison = json!({"id": "poison", "text": "Destined for a collection of the wrong size.", "collection": "later"});
    assert_eq!(
        app.call(Method::POST, "/ingest", &key, Some(poison))
            .await
            .status(),
        202
    );
    let good = json!({"id": "good", "text": "Ordinary text about Lisbon."});
    assert_eq!(
        app.call(Method::POST, "/ingest", &key, Some(good))
            .await
            .status(),
        202
    );
    app.create_collection(&key, "later", 3).await;
    assert_eq!(app.ingest_status(&key, "poison").await, "pending");

    app.restart_with(|s| s.ingest.worker = true).await;
    let statuses = app.wait_ingested(&key, &["poison", "good"]).await;
    assert_eq!(statuses[0]["status"], "failed");
    assert!(
        statuses[0]["error"]
            .as_str()
            .unwrap()
            .contains("3 dimensions"),
        "{}",
        statuses[0]
    );
    assert_eq!(statuses[1]["status"], "processed");
    // Its graph was written beside the points that failed; a failed document is not
    // left half indexed.
    let q = json!({"query": "MATCH (d {id: 'doc:poison'}) RETURN count(d)"});
    let rows = app.json(Method::POST, "/graphs/query", &key, Some(q)).await;
    assert_eq!(rows["rows"], json!([[0]]));
}

/// Writes events into a stopped server's embedded log as another version (or a damaged
/// disk) might have: each with the pending status and sequence number a real append
/// gives.
fn write_raw_events(data_dir: &std::path::Path, records: &[(&str, &str, Vec<u8>)]) {
    use ragbrain::domain::ingest::{IngestState, IngestStatus, OperationKind};
    use redb::{ReadableTable, TableDefinition};
    const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
    const STATUS: TableDefinition<&str, &[u8]> = TableDefinition::new("status");
    const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
    let db = redb::Database::create(data_dir.join("events.redb")).unwrap();
    let tx = db.begin_write().unwrap();
    {
        let mut meta = tx.open_table(META).unwrap();
        let mut seq = meta.get("next").unwrap().map_or(1, |v| v.value()).max(1);
        let mut events = tx.open_table(EVENTS).unwrap();
        let mut status = tx.open_table(STATUS).unwrap();
        for (tenant, id, bytes) in records {
            events.insert(seq, bytes.as_slice()).unwrap();
            let pending = IngestStatus {
                id: ragbrain::domain::ingest::DocId::parse(id).unwrap(),
                status: IngestState::Pending,
                operation: OperationKind::Upsert,
                collection: "documents".into(),
                chunks: None,
                entities: None,
                error: None,
                updated_at: 0,
                seq,
            };
            let pending = serde_json::to_vec(&pending).unwrap();
            let key = format!("{tenant}\u{0}{id}");
            status.insert(key.as_str(), pending.as_slice()).unwrap();
            seq += 1;
        }
        meta.insert("next", seq).unwrap();
    }
    tx.commit().unwrap();
}

/// An event this version cannot read, or one naming no valid tenant, ends `failed`
/// with its reason (and counted), never dropped in silence with its status left
/// `pending`; the events after it are processed.
#[tokio::test]
async fn an_unreadable_event_ends_failed_with_its_reason() {
    let mut app = spawn_app().await;
    let key = app.key("acme", &["read", "write"]).await;
    app.shutdown().await;
    let newer = json!({"tenant": "acme", "id": "from-the-future", "collection": "documents",
        "op": "transmogrify", "received_at": 0});
    let bad_tenant = json!({"tenant": "no/such tenant", "id": "stray", "collection": "documents",
        "op": "upsert", "text": "Lost?", "received_at": 0});
    write_raw_events(
        app.data_dir.path(),
        &[
            (
                "acme",
                "from-the-future",
                serde_json::to_vec(&newer).unwrap(),
            ),
            ("acme", "garbled", b"\x00\x01 not json".to_vec()),
            (
                "no/such tenant",
                "stray",
                serde_json::to_vec(&bad_tenant).unwrap(),
            ),
        ],
    );
    app.restart().await;
    let after = json!({"id": "after", "text": "Ordinary text about Lisbon."});
    assert_eq!(
        app.call(Method::POST, "/ingest", &key, Some(after))
            .await
            .status(),
        202
    );
    let statuses = app
        .wait_ingested(&key, &["from-the-future", "garbled", "after"])
        .await;
    for (status, says) in [
        (&statuses[0], "transmogrify"),
        (&statuses[1], "expected value"),
    ] {
        assert_eq!(status["status"], "failed", "{status}");
        assert_eq!(status["operation"], "unreadable", "{status}");
        let reason = status["error"].as_str().unwrap();
        assert!(reason.contains("unreadable event"), "{reason}");
        assert!(reason.contains(says), "{reason}");
    }
    assert_eq!(statuses[2]["status"], "processed");
    // The event with a bad tenant has no status anyone can read; it is counted.
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(r#"ingest_events_total{outcome="failed"} 3"#),
        "{}",
        metrics
            .lines()
            .filter(|l| l.starts_with("ingest_events_total"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(metrics.contains(r#"ingest_events_total{outcome="processed"} 1"#));
}

/// Past `ingest.max_pending` unprocessed events, new ones are refused with 503 and
/// `Retry-After`, all of a batch or none; once the worker catches up they are taken.
#[tokio::test]
async fn a_full_backlog_refuses_new_events_until_the_worker_catches_up() {
    let app = spawn_app_with(|s| s.ingest.max_pending = 3).await;
    let key = app.key("acme", &["write"]).await;
    let ingest = |id: &str| json!({"id": id, "text": format!("Ada Lovelace wrote note {id}.")});
    for id in ["a", "b"] {
        let r = app
            .call(Method::POST, "/ingest", &key, Some(ingest(id)))
            .await;
        assert_eq!(r.status(), 202);
    }
    let batch = json!({"events": [ingest("c"), ingest("d")]});
    let r = app
        .call(Method::POST, "/ingest/batch", &key, Some(batch.clone()))
        .await;
    let body = assert_problem(r, 503).await;
    assert!(body["detail"].is_string());
    let r = app
        .call(Method::POST, "/ingest", &key, Some(ingest("c")))
        .await;
    assert_eq!(r.status(), 202);
    let r = app
        .call(Method::POST, "/ingest", &key, Some(ingest("d")))
        .await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "5");
    let r = app.call(Method::GET, "/ingest/d", &key, None).await;
    assert_problem(r, 404).await;

    let done = app.wait_ingested(&key, &["a", "b", "c"]).await;
    assert!(done.iter().all(|s| s["status"] == "processed"), "{done:?}");
    // The count is read from the log again a second after the last read.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r = app
        .call(Method::POST, "/ingest/batch", &key, Some(batch))
        .await;
    assert_eq!(r.status(), 202);
}
