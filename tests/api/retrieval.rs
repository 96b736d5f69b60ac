//! Retrieval quality through the API on small, made-up corpora: graph candidates are
//! ranked by relevance before any limit (not by entity name), entities weigh by how
//! specific they are, and a document's title is an entity of its own.

use reqwest::Method;
use serde_json::{Value, json};
use std::num::NonZero;

use crate::helpers::{TestApp, doc_ids, spawn_app_with};

/// Ingests `events` as one batch and waits until all are processed.
async fn ingest(app: &TestApp, key: &str, events: Vec<Value>) {
    let ids: Vec<String> = events
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    let r = app
        .call(
            Method::POST,
            "/ingest/batch",
            key,
            Some(json!({"events": events})),
        )
        .await;
    assert_eq!(r.status(), 202);
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    for status in app.wait_ingested(key, &ids).await {
        assert_eq!(status["status"], "processed", "{status}");
    }
}

async fn hybrid(app: &TestApp, key: &str, query: &str, limit: usize) -> Value {
    let q = json!({"query": query, "limit": limit, "hops": 1});
    app.json(Method::POST, "/hybrid/search", key, Some(q)).await
}

/// The hit for document `doc`, if any.
fn hit<'a>(found: &'a Value, doc: &str) -> Option<&'a Value> {
    found["hits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["payload"]["doc_id"] == doc)
}

/// Few graph chunks allowed, so an order-dependent limit would show.
fn few_graph_chunks(s: &mut ragbrain::config::Settings) {
    s.hybrid.max_graph_chunks = NonZero::new(3).unwrap();
}

#[tokio::test]
async fn graph_candidates_are_ranked_before_the_limit_not_taken_in_entity_name_order() {
    let app = spawn_app_with(few_graph_chunks).await;
    let key = app.key("acme", &["write"]).await;
    // "Aaron Abbott" (sorts first) is named by five documents; "Zoe Zimmerman" (sorts
    // last) by one, whose words share nothing with the question.
    let mut events: Vec<Value> = (0..5)
        .map(|i| {
            json!({"id": format!("abbott{i}"),
                "text": format!("Aaron Abbott opened shop number {i} downtown. Sales were steady.")})
        })
        .collect();
    events.push(json!({"id": "gold",
        "text": "Zoe Zimmerman keeps bees on a rooftop. Honey is sold at the market."}));
    ingest(&app, &key, events).await;

    let found = hybrid(&app, &key, "Did Aaron Abbott ever meet Zoe Zimmerman?", 10).await;
    let gold = hit(&found, "gold").unwrap_or_else(|| panic!("gold missing: {found}"));
    assert!(
        !gold["provenance"]["graph"].is_null(),
        "the specific entity's chunk was cut by the limit: {found}"
    );
}

#[tokio::test]
async fn a_hub_entity_every_document_mentions_does_not_outrank_the_specific_one() {
    let app = spawn_app_with(|_| {}).await;
    let key = app.key("acme", &["write"]).await;
    let mut events: Vec<Value> = (0..8)
        .map(|i| {
            json!({"id": format!("hub{i}"),
                "text": format!("Globex Corporation reported quarter {i} results. Analysts were pleased.")})
        })
        .collect();
    events.push(json!({"id": "gold",
        "text": "Hank Scorpio bought a hammock."}));
    ingest(&app, &key, events).await;

    // Naming the hub next to the specific entity changes nothing at the top.
    let alone = hybrid(&app, &key, "Hank Scorpio", 5).await;
    let found = hybrid(&app, &key, "Globex Corporation Hank Scorpio", 10).await;
    assert_eq!(doc_ids(&alone)[0], "gold", "{alone}");
    assert_eq!(doc_ids(&found)[0], "gold", "{found}");
    // The hub's documents are reached through the graph, but weigh less.
    let graph_score =
        |doc: &str| hit(&found, doc).and_then(|h| h["provenance"]["graph"]["score"].as_f64());
    let gold_score = graph_score("gold").expect("gold reached through the graph");
    let hubs: Vec<f64> = (0..8)
        .filter_map(|i| graph_score(&format!("hub{i}")))
        .collect();
    assert!(!hubs.is_empty(), "no hub document reached: {found}");
    assert!(
        hubs.iter().all(|&s| s < gold_score),
        "hub scores {hubs:?} vs gold {gold_score}: {found}"
    );
}

#[tokio::test]
async fn a_title_becomes_an_entity_of_every_chunk_of_its_document() {
    let app = spawn_app_with(|_| {}).await;
    let key = app.key("acme", &["write"]).await;
    ingest(
        &app,
        &key,
        vec![
            json!({"id": "obs", "metadata": {"title": "Quuxbridge Observatory"},
                "text": "Its telescope was built in 1911.\nThe dome was rebuilt after a storm."}),
            json!({"id": "other", "text": "A bakery sells bread every morning."}),
        ],
    )
    .await;
    let q = json!({"query": "MATCH (e:Entity {id: 'entity:quuxbridge observatory'})<-[:MENTIONS]-(c:Chunk) RETURN count(c), e.mentions"});
    let rows = app.json(Method::POST, "/graphs/query", &key, Some(q)).await;
    let row = &rows["rows"][0];
    assert!(row[0].as_u64().unwrap() >= 1, "{rows}");
    assert_eq!(row[0], row[1], "the stored mention count is kept: {rows}");

    // The title names the document for hybrid search, though its text never does.
    let found = hybrid(&app, &key, "Quuxbridge Observatory", 2).await;
    let top = &found["hits"][0];
    assert_eq!(top["payload"]["doc_id"], "obs", "{found}");
    assert!(!top["provenance"]["graph"].is_null(), "{found}");
}

#[tokio::test]
async fn page_rank_ranks_a_bridge_paragraph_two_hops_away_above_an_unrelated_one() {
    // Only the entities the question names seed the graph, so what it reaches beyond
    // them comes from the ranker alone.
    let app = spawn_app_with(|s| s.hybrid.seed_chunks = 0).await;
    let key = app.key("acme", &["write"]).await;
    // The question names Marie Durand; the answer is in "bridge", which never names
    // her but shares Quillbury with the paragraph that does. "unrelated" shares the
    // question's other words ("born", "river", "town") and no entity with it.
    let mut events = vec![
        json!({"id": "seed", "metadata": {"title": "Marie Durand"},
            "text": "Marie Durand was a painter. She was born in Quillbury in 1901."}),
        json!({"id": "bridge", "metadata": {"title": "Quillbury"},
            "text": "Quillbury is a market settlement on the banks of the Ostrava."}),
        json!({"id": "unrelated", "metadata": {"title": "Henrik Solberg"},
            "text": "Henrik Solberg was born in a river town and never left the town."}),
    ];
    events.extend((0..6).map(|i| {
        json!({"id": format!("filler{i}"),
            "text": format!("Greta Lindqvist sold {i} boats at the harbour in Tromvik.")})
    }));
    ingest(&app, &key, events).await;
    let question = "Which river flows through the town where Marie Durand was born?";

    let q = json!({"query": question, "limit": 10, "hops": 2});
    let found = app
        .json(Method::POST, "/hybrid/search", &key, Some(q))
        .await;
    let graph = |doc: &str| hit(&found, doc).map(|h| h["provenance"]["graph"].clone());
    let bridge = graph("bridge").unwrap_or_else(|| panic!("bridge missing: {found}"));
    assert_eq!(
        bridge["path"],
        json!(["Marie Durand", "Quillbury"]),
        "{found}"
    );
    assert_eq!(graph("seed").unwrap()["rank"], 1, "{found}");
    assert_eq!(bridge["rank"], 2, "{found}");
    assert!(
        graph("unrelated").is_none_or(|g| g.is_null()),
        "the unrelated paragraph shares no entity: {found}"
    );

    // One hop reaches only the paragraphs that name a seed.
    let q = json!({"query": question, "limit": 10, "hops": 1});
    let found = app
        .json(Method::POST, "/hybrid/search", &key, Some(q))
        .await;
    assert!(
        hit(&found, "bridge").is_none_or(|h| h["provenance"]["graph"].is_null()),
        "{found}"
    );
}

#[tokio::test]
async fn mention_counts_follow_re_ingest_and_delete() {
    let app = spawn_app_with(|_| {}).await;
    let key = app.key("acme", &["write"]).await;
    let doc = |id: &str, text: &str| json!({"id": id, "text": text});
    ingest(
        &app,
        &key,
        vec![
            doc("a", "Nadia Petrova plays chess. Nadia Petrova won a cup."),
            doc("b", "Nadia Petrova teaches on Sundays."),
        ],
    )
    .await;
    // Two chunks of "a" or one? Chunking decides; the count must match the edges.
    assert_eq!(mentions(&app, &key).await, edges(&app, &key).await);
    let before = edges(&app, &key).await;
    ingest(&app, &key, vec![doc("b", "Sunday lessons were cancelled.")]).await;
    let after = mentions(&app, &key).await;
    assert_eq!(after, edges(&app, &key).await);
    assert_eq!(
        after[0][0].as_u64().unwrap() + 1,
        before[0][0].as_u64().unwrap()
    );
    let r = app.call(Method::DELETE, "/ingest/a", &key, None).await;
    assert_eq!(r.status(), 202);
    app.wait_deleted(&key, "a").await;
    assert_eq!(
        mentions(&app, &key).await,
        json!([]),
        "the orphaned entity is gone"
    );
}

/// Co-occurrence weights are found from either end of a pair (from the end with fewer
/// mentions), and stay exact through re-ingest and delete either way: "Paris" is
/// mentioned by every document, so its pairs with the one-off names are found from
/// the names, and the pair of the two names from the first.
#[tokio::test]
async fn co_occurrence_weights_stay_exact_whichever_end_is_the_hub() {
    let app = spawn_app_with(|_| {}).await;
    let key = app.key("acme", &["write"]).await;
    let doc = |id: &str, text: &str| json!({"id": id, "text": text});
    ingest(
        &app,
        &key,
        vec![
            doc(
                "a",
                "A festival in Paris welcomed Zoltan Varga and Yuki Sato.",
            ),
            doc("b", "A fair in Paris welcomed Zoltan Varga again."),
            doc("c", "A show in Paris hosted Xavier Ortiz."),
        ],
    )
    .await;
    let q = json!({"query": "MATCH (a:Entity)-[r:RELATED_TO]->(b:Entity) \
        RETURN a.name, b.name, r.weight ORDER BY a.name, b.name"});
    let rows = app
        .json(Method::POST, "/graphs/query", &key, Some(q.clone()))
        .await["rows"]
        .clone();
    assert_eq!(
        rows,
        json!([
            ["Paris", "Xavier Ortiz", 1],
            ["Paris", "Yuki Sato", 1],
            ["Paris", "Zoltan Varga", 2],
            ["Yuki Sato", "Zoltan Varga", 1]
        ])
    );
    ingest(
        &app,
        &key,
        vec![doc("a", "A talk in Paris welcomed Xavier Ortiz.")],
    )
    .await;
    let r = app.call(Method::DELETE, "/ingest/b", &key, None).await;
    assert_eq!(r.status(), 202);
    app.wait_deleted(&key, "b").await;
    let rows = app.json(Method::POST, "/graphs/query", &key, Some(q)).await["rows"].clone();
    assert_eq!(rows, json!([["Paris", "Xavier Ortiz", 2]]));
}

/// The stored mention count of Nadia Petrova.
async fn mentions(app: &TestApp, key: &str) -> Value {
    let q = json!({"query": "MATCH (e:Entity {id: 'entity:nadia petrova'}) RETURN e.mentions"});
    app.json(Method::POST, "/graphs/query", key, Some(q)).await["rows"].clone()
}

/// The MENTIONS edges into Nadia Petrova, counted.
async fn edges(app: &TestApp, key: &str) -> Value {
    let q = json!({"query": "MATCH (e:Entity {id: 'entity:nadia petrova'})<-[:MENTIONS]-(c:Chunk) RETURN count(c)"});
    app.json(Method::POST, "/graphs/query", key, Some(q)).await["rows"].clone()
}

#[tokio::test]
async fn mention_counts_and_graph_candidates_stay_within_a_tenant() {
    let app = spawn_app_with(|_| {}).await;
    let (acme, globex) = (
        app.key("acme", &["write"]).await,
        app.key("globex", &["write"]).await,
    );
    // Globex mentions Ingrid Halvorsen five times; Acme once.
    let events: Vec<Value> = (0..5)
        .map(|i| json!({"id": format!("g{i}"), "text": format!("Ingrid Halvorsen signed contract {i}.")}))
        .collect();
    ingest(&app, &globex, events).await;
    ingest(
        &app,
        &acme,
        vec![json!({"id": "a0", "text": "Ingrid Halvorsen visited the Acme plant."})],
    )
    .await;

    let q = json!({"query": "MATCH (e:Entity {id: 'entity:ingrid halvorsen'}) RETURN e.mentions"});
    let rows = app
        .json(Method::POST, "/graphs/query", &acme, Some(q))
        .await;
    assert_eq!(rows["rows"], json!([[1]]), "Acme's count is Acme's alone");

    let found = hybrid(&app, &acme, "Ingrid Halvorsen", 10).await;
    let docs = doc_ids(&found);
    assert_eq!(
        docs,
        ["a0"],
        "only Acme's documents, by vector or graph: {found}"
    );
}
