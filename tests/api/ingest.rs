//! Ingest end to end: events in, chunks + vectors + graph out, hybrid search over both,
//! re-ingest and delete propagation, validation, and poison events.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, doc_ids, spawn_app, spawn_app_with};

/// Real paragraphs: `institute` shares the entity Marie Curie with `curie`, but its
/// words are far from a question about radium, so vector search alone ranks it below
/// the radioactivity paragraphs.
fn paragraphs() -> Value {
    json!({"events": [
        {"id": "curie", "metadata": {"title": "Marie Curie", "source": "encyclopedia"},
         "text": "Marie Curie was a physicist and chemist who conducted pioneering research on radioactivity. Together with Pierre Curie she discovered the elements polonium and radium in 1898."},
        {"id": "institute", "metadata": {"source": "encyclopedia"},
         "text": "The Curie Institute in Paris was founded by Marie Curie in 1909. Today it runs a hospital that treats cancer patients and trains young doctors."},
        {"id": "decay", "text": "Radioactive decay releases energy as alpha, beta or gamma radiation. The rate of decay is measured by the half-life of the isotope."},
        {"id": "accelerators", "text": "Chemists still discover new elements today, using particle accelerators to fuse lighter nuclei into heavy ones."},
        {"id": "radon", "text": "Radon is a radioactive gas that seeps from the ground into basements, where it can be measured with a simple detector."},
        {"id": "rust", "metadata": {"source": "manual"},
         "text": "The Rust programming language guarantees memory safety without a garbage collector. Cargo builds Rust projects and fetches their dependencies."}
    ]})
}

const IDS: [&str; 6] = [
    "curie",
    "institute",
    "decay",
    "accelerators",
    "radon",
    "rust",
];

async fn ingest_paragraphs(app: &TestApp, key: &str) {
    let r = app
        .call(Method::POST, "/ingest/batch", key, Some(paragraphs()))
        .await;
    assert_eq!(r.status(), 202);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["accepted"].as_array().unwrap().len(), 6);
    assert_eq!(body["accepted"][0]["status"], "pending");
    for status in app.wait_ingested(key, &IDS).await {
        assert_eq!(status["status"], "processed", "{status}");
        assert!(status["chunks"].as_u64().unwrap() >= 1);
    }
}

fn rank(ids: &[String], doc: &str) -> usize {
    ids.iter().position(|d| d == doc).expect("doc in results")
}

#[tokio::test]
async fn ingested_paragraphs_are_found_by_vector_graph_and_hybrid_search() {
    let app = spawn_app().await;
    let key = app.key("acme", &["write"]).await;
    ingest_paragraphs(&app, &key).await;

    // Vector search with text finds the paragraph that answers the question.
    let q = json!({"text": "Who discovered polonium and radium?", "limit": 3});
    let found = app
        .json(Method::POST, "/vectors/search", &key, Some(q))
        .await;
    assert_eq!(doc_ids(&found)[0], "curie");
    let top = &found["hits"][0]["payload"];
    assert!(top["text"].as_str().unwrap().contains("polonium"));
    assert_eq!(top["metadata"]["title"], "Marie Curie");
    assert!(
        top["entities"]
            .as_array()
            .unwrap()
            .contains(&json!("Marie Curie"))
    );

    // The graph holds the document, its chunk and the entities the chunk mentions.
    let q = json!({"query": "MATCH (d:Document {id: 'doc:curie'})<-[:PART_OF]-(c:Chunk)-[:MENTIONS]->(e:Entity) RETURN e.name ORDER BY e.name"});
    let rows = app.json(Method::POST, "/graphs/query", &key, Some(q)).await;
    let names: Vec<&str> = rows["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[0].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"Marie Curie") && names.contains(&"Pierre Curie"),
        "{names:?}"
    );
    // Documents processed in one transaction share one node per entity.
    let q = json!({"query": "MATCH (e:Entity {id: 'entity:marie curie'}) RETURN count(e)"});
    let rows = app.json(Method::POST, "/graphs/query", &key, Some(q)).await;
    assert_eq!(rows["rows"], json!([[1]]));
    let q = json!({"query": "MATCH (e:Entity {id: 'entity:marie curie'})<-[:MENTIONS]-(c:Chunk) RETURN count(c)"});
    let rows = app.json(Method::POST, "/graphs/query", &key, Some(q)).await;
    assert_eq!(rows["rows"], json!([[2]]));
    let q = json!({"query": "MATCH (a:Entity {id: 'entity:marie curie'})-[r:RELATED_TO]-(b:Entity {id: 'entity:pierre curie'}) RETURN r.weight"});
    let rows = app.json(Method::POST, "/graphs/query", &key, Some(q)).await;
    assert_eq!(rows["rows"], json!([[1]]));

    // Vector search alone ranks `institute` low; hybrid lifts it through Marie Curie.
    let question = "Who discovered radium?";
    let q = json!({"text": question, "limit": 6});
    let vector_only = doc_ids(
        &app.json(Method::POST, "/vectors/search", &key, Some(q))
            .await,
    );
    let q = json!({"query": question, "limit": 6, "hops": 1});
    let hybrid = app
        .json(Method::POST, "/hybrid/search", &key, Some(q))
        .await;
    let fused = doc_ids(&hybrid);
    assert!(
        rank(&fused, "institute") < rank(&vector_only, "institute"),
        "hybrid {fused:?} vs vector {vector_only:?}"
    );
    let hit = &hybrid["hits"][rank(&fused, "institute")];
    assert_eq!(hit["provenance"]["graph"]["path"], json!(["Marie Curie"]));
    assert_eq!(
        hit["provenance"]["vector"]["rank"].as_u64().unwrap() as usize,
        rank(&vector_only, "institute") + 1
    );
    assert_eq!(hybrid["fusion"], "rrf");
    let seeds = hybrid["entities"].as_array().unwrap();
    assert!(seeds.iter().any(|e| e["name"] == "Marie Curie"));

    // hops = 0 is vector search with provenance; a filter applies to graph hits too.
    let q = json!({"query": question, "limit": 6, "hops": 0});
    let plain = app
        .json(Method::POST, "/hybrid/search", &key, Some(q))
        .await;
    assert_eq!(doc_ids(&plain), vector_only);
    assert!(plain["hits"][0]["provenance"]["graph"].is_null());
    let filter = json!({"must": [{"key": "metadata.source", "match": {"value": "encyclopedia"}}]});
    let q = json!({"query": question, "limit": 6, "filter": filter,
                   "fusion": {"weighted": {"alpha": 0.5}}, "mmr": {"lambda": 0.7}});
    let filtered = app
        .json(Method::POST, "/hybrid/search", &key, Some(q))
        .await;
    let mut docs = doc_ids(&filtered);
    docs.sort();
    assert_eq!(docs, ["curie", "institute"]);
    assert_eq!(filtered["fusion"], "weighted");

    // Another tenant sees none of it.
    let other = app.key("globex", &["read"]).await;
    let q = json!({"query": question, "limit": 6});
    let theirs = app
        .json(Method::POST, "/hybrid/search", &other, Some(q))
        .await;
    assert!(theirs["hits"].as_array().unwrap().is_empty());
    let r = app.call(Method::GET, "/ingest/curie", &other, None).await;
    assert_problem(r, 404).await;
}

async fn count(app: &TestApp, key: &str, cypher: &str) -> i64 {
    let rows = app
        .json(
            Method::POST,
            "/graphs/query",
            key,
            Some(json!({"query": cypher})),
        )
        .await;
    rows["rows"][0][0].as_i64().unwrap()
}

async fn points_of(app: &TestApp, key: &str, doc: &str) -> usize {
    points_in(app, key, "documents", doc).await
}

async fn points_in(app: &TestApp, key: &str, collection: &str, doc: &str) -> usize {
    let q = json!({"collection": collection, "text": "anything", "limit": 100,
                   "filter": {"must": [{"key": "doc_id", "match": {"value": doc}}]}});
    let found = app
        .json(Method::POST, "/vectors/search", key, Some(q))
        .await;
    found["hits"].as_array().unwrap().len()
}

fn long_text(sentences: usize, topic: &str) -> String {
    (0..sentences)
        .map(|i| format!("Sentence {i} tells how Ada Lovelace studied {topic} with Charles Babbage in London."))
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::test]
async fn re_ingesting_a_document_replaces_its_chunks_and_entities() {
    let app = spawn_app().await;
    let key = app.key("acme", &["write"]).await;
    let event = json!({"id": "ada", "text": long_text(40, "engines")});
    for _ in 0..2 {
        let r = app
            .call(Method::POST, "/ingest", &key, Some(event.clone()))
            .await;
        assert_eq!(r.status(), 202);
        app.wait_ingested(&key, &["ada"]).await;
    }
    let first = app.wait_ingested(&key, &["ada"]).await.remove(0);
    let chunks = first["chunks"].as_u64().unwrap() as usize;
    assert!(chunks > 2, "{first}");
    assert_eq!(
        points_of(&app, &key, "ada").await,
        chunks,
        "same ids, no duplicates"
    );
    let chunk_nodes = "MATCH (c:Chunk {doc_id: 'ada'}) RETURN count(c)";
    assert_eq!(count(&app, &key, chunk_nodes).await, chunks as i64);
    let weight = "MATCH (a:Entity {id: 'entity:ada lovelace'})-[r:RELATED_TO]-(b:Entity {id: 'entity:charles babbage'}) RETURN r.weight";
    assert_eq!(count(&app, &key, weight).await, chunks as i64);

    // A shorter version with other names: old chunks, points and entities go.
    let event =
        json!({"id": "ada", "text": "Grace Hopper wrote the first compiler at Remington Rand."});
    app.call(Method::POST, "/ingest", &key, Some(event)).await;
    let status = app.wait_ingested(&key, &["ada"]).await.remove(0);
    assert_eq!(status["chunks"], 1);
    assert_eq!(points_of(&app, &key, "ada").await, 1);
    assert_eq!(count(&app, &key, chunk_nodes).await, 1);
    let lovelace = "MATCH (e:Entity {id: 'entity:ada lovelace'}) RETURN count(e)";
    assert_eq!(count(&app, &key, lovelace).await, 0);
    let hopper = "MATCH (e:Entity {id: 'entity:grace hopper'}) RETURN count(e)";
    assert_eq!(count(&app, &key, hopper).await, 1);
    assert_eq!(
        count(&app, &key, "MATCH ()-[r:RELATED_TO]->() RETURN count(r)").await,
        1
    );

    // Moved to another collection: its points leave the old one.
    let event = json!({"id": "ada", "collection": "archive",
                       "text": "Grace Hopper wrote the first compiler at Remington Rand."});
    app.call(Method::POST, "/ingest", &key, Some(event)).await;
    app.wait_ingested(&key, &["ada"]).await;
    assert_eq!(points_of(&app, &key, "ada").await, 0);
    assert_eq!(points_in(&app, &key, "archive", "ada").await, 1);
}

#[tokio::test]
async fn deleting_a_document_removes_its_chunks_and_only_its_own_entities() {
    let app = spawn_app().await;
    let key = app.key("acme", &["write"]).await;
    ingest_paragraphs(&app, &key).await;

    let r = app.call(Method::DELETE, "/ingest/curie", &key, None).await;
    assert_eq!(r.status(), 202);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["operation"], "delete");
    app.wait_deleted(&key, "curie").await;
    assert_problem(
        app.call(Method::GET, "/ingest/curie", &key, None).await,
        404,
    )
    .await;
    assert_eq!(points_of(&app, &key, "curie").await, 0);
    assert_eq!(
        count(
            &app,
            &key,
            "MATCH (d:Document {id: 'doc:curie'}) RETURN count(d)"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &app,
            &key,
            "MATCH (c:Chunk {doc_id: 'curie'}) RETURN count(c)"
        )
        .await,
        0
    );
    // Pierre Curie was only in `curie`; Marie Curie is still mentioned by `institute`.
    let pierre = "MATCH (e:Entity {id: 'entity:pierre curie'}) RETURN count(e)";
    assert_eq!(count(&app, &key, pierre).await, 0);
    let marie = "MATCH (e:Entity {id: 'entity:marie curie'}) RETURN count(e)";
    assert_eq!(count(&app, &key, marie).await, 1);
    let gone = "MATCH (a:Entity {id: 'entity:marie curie'})-[r:RELATED_TO]-(b:Entity {id: 'entity:pierre curie'}) RETURN count(r)";
    assert_eq!(count(&app, &key, gone).await, 0);
    assert_eq!(points_of(&app, &key, "institute").await, 1);
    assert_problem(
        app.call(Method::DELETE, "/ingest/curie", &key, None).await,
        404,
    )
    .await;
}

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
}

/// Writes events into a stopped server's embedded log as another version (or a damaged
/// disk) might have: each with the pending status and sequence number a real append
/// gives.
fn write_raw_events(data_dir: &std::path::Path, records: &[(&str, &str, Vec<u8>)]) {
    use ragbrain::domain::ingest::{IngestState, IngestStatus};
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
                id: (*id).into(),
                status: IngestState::Pending,
                operation: "upsert".into(),
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
