//! Ingest end to end: events in, chunks + vectors + graph out, hybrid search over both,
//! re-ingest and delete propagation (bad and poison events: `ingest_failures`).

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
    let body = assert_problem(r, 404).await;
    assert_eq!(body["detail"], "no document \"curie\"");
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
async fn entity_names_never_keep_control_or_bidirectional_characters() {
    let app = spawn_app().await;
    let key = app.key("acme", &["write"]).await;
    let event = json!({"id": "twin", "text": "A story about nothing in particular.",
                       "metadata": {"title": "\u{0}Evil\u{202E}Twin", "entities": ["Odd\u{2066}One"]}});
    let r = app.call(Method::POST, "/ingest", &key, Some(event)).await;
    assert_eq!(r.status(), 202);
    let status = app.wait_ingested(&key, &["twin"]).await;
    assert_eq!(status[0]["status"], "processed", "{}", status[0]);
    let q = json!({"query": "MATCH (e:Entity) RETURN e.id, e.name ORDER BY e.id"});
    let rows = app.json(Method::POST, "/graphs/query", &key, Some(q)).await;
    assert_eq!(
        rows["rows"],
        json!([
            ["entity:evil twin", "Evil Twin"],
            ["entity:odd one", "Odd One"]
        ])
    );
}

/// The graph API cannot touch ingest's nodes, so a client's write can neither give an
/// entity a second node under its id nor a count ingest cannot add to; a client's own
/// nodes may still link to entities.
#[tokio::test]
async fn graph_writes_leave_ingest_nodes_to_ingest() {
    let app = spawn_app().await;
    let key = app.key("acme", &["write"]).await;
    let poison =
        json!({"id": "entity:zorro", "labels": ["Person"], "properties": {"mentions": "lots"}});
    let r = app
        .call(Method::POST, "/graphs/node", &key, Some(poison))
        .await;
    let body = assert_problem(r, 422).await;
    assert!(
        body["detail"].as_str().unwrap().contains("/ingest"),
        "{body}"
    );
    for (i, text) in ["They met Zorro in town.", "Later Zorro rode to Lyon."]
        .iter()
        .enumerate()
    {
        let event = json!({"id": format!("z{i}"), "text": text});
        assert_eq!(
            app.call(Method::POST, "/ingest", &key, Some(event))
                .await
                .status(),
            202
        );
    }
    for status in app.wait_ingested(&key, &["z0", "z1"]).await {
        assert_eq!(status["status"], "processed", "{status}");
    }
    let fan = json!({"id": "fan", "labels": ["Person"]});
    assert_eq!(
        app.call(Method::POST, "/graphs/node", &key, Some(fan))
            .await
            .status(),
        201
    );
    let likes = json!({"from": "fan", "to": "entity:zorro", "type": "LIKES"});
    let r = app
        .call(Method::POST, "/graphs/relationship", &key, Some(likes))
        .await;
    assert_eq!(r.status(), 201);
    let q = json!({"query": "MATCH (n {id: 'entity:zorro'})<-[:LIKES]-(f) RETURN labels(n), n.mentions, f.id"});
    let rows = app.json(Method::POST, "/graphs/query", &key, Some(q)).await;
    assert_eq!(rows["rows"], json!([[["Entity"], 2, "fan"]]));

    // A chunk node's id is its point's UUID: neither merged into nor deleted.
    let q = json!({"query": "MATCH (c:Chunk) RETURN c.id LIMIT 1"});
    let rows = app.json(Method::POST, "/graphs/query", &key, Some(q)).await;
    let chunk = rows["rows"][0][0].as_str().unwrap().to_owned();
    let merge = json!({"id": chunk, "labels": ["Person"]});
    let r = app
        .call(Method::POST, "/graphs/node", &key, Some(merge))
        .await;
    assert_problem(r, 422).await;
    let path = format!("/graphs/node/{chunk}");
    assert_problem(app.call(Method::DELETE, &path, &key, None).await, 422).await;
    let own = json!({"id": uuid::Uuid::new_v4().to_string(), "labels": ["Person"]});
    let r = app
        .call(Method::POST, "/graphs/node", &key, Some(own))
        .await;
    assert_eq!(r.status(), 201, "a client's own UUID id is fine");
}

/// One worker batch holding several tenants' documents: each tenant's statuses,
/// chunks, points and entities are its own, under the same document ids.
#[tokio::test]
async fn one_batch_of_several_tenants_writes_each_tenants_own_graph() {
    let mut app = spawn_app_with(|s| s.ingest.worker = false).await;
    let cities = [("acme", "Lisbon"), ("globex", "Oslo"), ("initech", "Quito")];
    let mut keys = Vec::new();
    for (tenant, city) in cities {
        let key = app.key(tenant, &["write"]).await;
        // Tenant i's document d has 8i + 4d + 1 sentences, so its chunk count is its own.
        let events: Vec<Value> = (0..3)
            .map(|d| {
                let n = keys.len() * 8 + d * 4 + 1;
                json!({"id": format!("d{d}"), "text": long_text(n, city)})
            })
            .collect();
        let r = app
            .call(
                Method::POST,
                "/ingest/batch",
                &key,
                Some(json!({"events": events})),
            )
            .await;
        assert_eq!(r.status(), 202);
        keys.push(key);
    }
    // The first tenant also deletes one in the same batch.
    let r = app.call(Method::DELETE, "/ingest/d2", &keys[0], None).await;
    assert_eq!(r.status(), 202);

    app.restart_with(|s| s.ingest.worker = true).await;
    app.wait_deleted(&keys[0], "d2").await;
    for ((tenant, _), key) in cities.iter().zip(&keys) {
        let ids: &[&str] = if *tenant == "acme" {
            &["d0", "d1"]
        } else {
            &["d0", "d1", "d2"]
        };
        let mut chunks = 0;
        for (d, status) in app.wait_ingested(key, ids).await.iter().enumerate() {
            assert_eq!(status["status"], "processed", "{tenant}: {status}");
            let n = status["chunks"].as_i64().unwrap();
            let doc = format!("d{d}");
            let nodes = format!("MATCH (c:Chunk {{doc_id: '{doc}'}}) RETURN count(c)");
            assert_eq!(count(&app, key, &nodes).await, n, "{tenant} {doc}");
            assert_eq!(
                points_of(&app, key, &doc).await,
                n as usize,
                "{tenant} {doc}"
            );
            chunks += n;
        }
        let all = "MATCH (c:Chunk) RETURN count(c)";
        assert_eq!(count(&app, key, all).await, chunks, "{tenant}");
        for (other, other_city) in cities {
            let q = format!("MATCH (e:Entity {{name: '{other_city}'}}) RETURN count(e)");
            let want = i64::from(other == *tenant);
            assert_eq!(
                count(&app, key, &q).await,
                want,
                "{tenant} sees {other}'s {other_city}"
            );
        }
    }
}
