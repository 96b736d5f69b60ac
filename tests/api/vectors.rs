//! `/vectors/*` through HTTP: collections, upsert, search with filters, retrieve, delete,
//! payload indexes and concurrency. What must be refused is in `vector_limits`.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{assert_problem, spawn_app};

fn points() -> Value {
    json!([
        {"id": 1, "vector": [1.0, 0.0, 0.0, 0.0], "payload": {"city": "London", "stars": 5, "open": true}},
        {"id": 2, "vector": [0.9, 0.1, 0.0, 0.0], "payload": {"city": "Paris", "stars": 3, "open": false}},
        {"id": "5c56c793-69f3-4fbf-87e6-c4bf54c28c26", "vector": [0.0, 1.0, 0.0, 0.0], "payload": {"city": "Berlin", "stars": 4}},
    ])
}

pub(crate) async fn seeded() -> (crate::helpers::TestApp, String) {
    let app = spawn_app().await;
    let key = app.key("acme", &["write"]).await;
    app.create_collection(&key, "docs", 4).await;
    let r = app
        .call(
            Method::POST,
            "/vectors/upsert",
            &key,
            Some(json!({"collection": "docs", "points": points()})),
        )
        .await;
    assert_eq!(r.status(), 200);
    (app, key)
}

pub(crate) async fn search(app: &crate::helpers::TestApp, key: &str, body: Value) -> Vec<Value> {
    let r = app
        .call(Method::POST, "/vectors/search", key, Some(body))
        .await;
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["hits"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn collection_lifecycle_create_info_idempotent_put_conflict_and_drop() {
    let app = spawn_app().await;
    let admin = app.admin_key.clone();
    app.create_collection(&admin, "docs", 4).await;

    let again = app
        .call(
            Method::PUT,
            "/vectors/collections/docs",
            &admin,
            Some(json!({"dim": 4})),
        )
        .await;
    assert_eq!(again.status(), 200);
    let conflict = app
        .call(
            Method::PUT,
            "/vectors/collections/docs",
            &admin,
            Some(json!({"dim": 8})),
        )
        .await;
    assert_problem(conflict, 409).await;

    let info: Value = app
        .json(Method::GET, "/vectors/collections/docs", &admin, None)
        .await;
    assert_eq!(info["dim"], 4);
    assert_eq!(info["distance"], "cosine");
    assert_eq!(info["points_count"], 0);

    let dropped = app
        .call(Method::DELETE, "/vectors/collections/docs", &admin, None)
        .await;
    assert_eq!(dropped.status(), 204);
    let gone = app
        .call(Method::GET, "/vectors/collections/docs", &admin, None)
        .await;
    assert_problem(gone, 404).await;
    let drop_again = app
        .call(Method::DELETE, "/vectors/collections/docs", &admin, None)
        .await;
    assert_problem(drop_again, 404).await;
}

#[tokio::test]
async fn search_ranks_by_similarity_and_returns_payloads() {
    let (app, key) = seeded().await;
    let hits = search(
        &app,
        &key,
        json!({"collection": "docs", "vector": [1.0, 0.0, 0.0, 0.0], "limit": 2}),
    )
    .await;
    assert_eq!(hits.len(), 2);
    assert_eq!(hits[0]["id"], 1);
    assert_eq!(hits[1]["id"], 2);
    assert_eq!(
        hits[0]["payload"],
        json!({"city": "London", "stars": 5, "open": true})
    );
    assert!(hits[0]["score"].as_f64().unwrap() > 0.99);

    let info: Value = app
        .json(Method::GET, "/vectors/collections/docs", &key, None)
        .await;
    assert_eq!(info["points_count"], 3);
}

#[tokio::test]
async fn search_applies_match_range_any_and_negation_filters() {
    let (app, key) = seeded().await;
    let q = |filter: Value| json!({"collection": "docs", "vector": [1.0, 0.0, 0.0, 0.0], "filter": filter});
    let ids = |hits: Vec<Value>| hits.iter().map(|h| h["id"].clone()).collect::<Vec<_>>();

    let by_city = search(
        &app,
        &key,
        q(json!({"must": [{"key": "city", "match": {"value": "Paris"}}]})),
    )
    .await;
    assert_eq!(ids(by_city), vec![json!(2)]);
    let by_range = search(
        &app,
        &key,
        q(json!({"must": [{"key": "stars", "range": {"gte": 4}}]})),
    )
    .await;
    assert_eq!(ids(by_range).len(), 2);
    let by_bool = search(
        &app,
        &key,
        q(json!({"must": [{"key": "open", "match": {"value": true}}]})),
    )
    .await;
    assert_eq!(ids(by_bool), vec![json!(1)]);
    let any = search(
        &app,
        &key,
        q(json!({"must": [{"key": "city", "match": {"any": ["Berlin", "Paris"]}}]})),
    )
    .await;
    assert_eq!(ids(any).len(), 2);
    let not = search(
        &app,
        &key,
        q(json!({"must_not": [{"key": "city", "match": {"value": "London"}}]})),
    )
    .await;
    assert!(!ids(not).contains(&json!(1)));
    let should = search(&app, &key, q(json!({"should": [{"key": "stars", "match": {"value": 3}}, {"key": "stars", "match": {"value": 4}}]}))).await;
    assert_eq!(ids(should).len(), 2);
    let nested = search(
        &app,
        &key,
        q(json!({"must": [{"should": [{"key": "city", "match": {"value": "Berlin"}}]}]})),
    )
    .await;
    assert_eq!(
        ids(nested),
        vec![json!("5c56c793-69f3-4fbf-87e6-c4bf54c28c26")]
    );
    let threshold = search(
        &app,
        &key,
        json!({"collection": "docs", "vector": [1.0, 0.0, 0.0, 0.0], "score_threshold": 0.95}),
    )
    .await;
    assert_eq!(threshold.len(), 2);
}

#[tokio::test]
async fn retrieve_and_delete_by_ids_and_by_filter() {
    let (app, key) = seeded().await;
    let got: Value = app
        .json(
            Method::POST,
            "/vectors/retrieve",
            &key,
            Some(json!({"collection": "docs", "ids": [2, 99]})),
        )
        .await;
    assert_eq!(got["points"].as_array().unwrap().len(), 1);
    assert_eq!(got["points"][0]["payload"]["city"], "Paris");

    let by_ids: Value = app
        .json(
            Method::POST,
            "/vectors/delete",
            &key,
            Some(json!({"collection": "docs", "ids": [1, 99]})),
        )
        .await;
    assert_eq!(by_ids["deleted"], 1);
    let filter = json!({"must": [{"key": "city", "match": {"value": "Berlin"}}]});
    let by_filter: Value = app
        .json(
            Method::POST,
            "/vectors/delete",
            &key,
            Some(json!({"collection": "docs", "filter": filter})),
        )
        .await;
    assert_eq!(by_filter["deleted"], 1);
    let left = search(
        &app,
        &key,
        json!({"collection": "docs", "vector": [1.0, 0.0, 0.0, 0.0]}),
    )
    .await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["id"], 2);
}

#[tokio::test]
async fn the_default_collection_is_created_on_first_upsert() {
    let app = spawn_app().await;
    let vector: Vec<f32> = (0..256).map(|i| i as f32).collect();
    let r = app
        .call(
            Method::POST,
            "/vectors/upsert",
            &app.admin_key,
            Some(json!({"points": [{"id": 7, "vector": vector}]})),
        )
        .await;
    assert_eq!(r.status(), 200);
    let info: Value = app
        .json(
            Method::GET,
            "/vectors/collections/documents",
            &app.admin_key,
            None,
        )
        .await;
    assert_eq!(info["dim"], 256);
    assert_eq!(info["points_count"], 1);
}

#[tokio::test]
async fn thirty_two_concurrent_writers_and_readers_lose_nothing() {
    let app = std::sync::Arc::new(spawn_app().await);
    let key = app.key("acme", &["write"]).await;
    app.create_collection(&key, "load", 4).await;
    let mut tasks = Vec::new();
    for t in 0..32u64 {
        let (app, key) = (app.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            for round in 0..4u64 {
                let points: Vec<Value> = (0..10u64)
                    .map(|i| {
                        let id = t * 1000 + round * 10 + i;
                        json!({"id": id, "vector": [1.0, t as f32, round as f32, i as f32], "payload": {"task": t}})
                    })
                    .collect();
                let r = app.call(Method::POST, "/vectors/upsert", &key, Some(json!({"collection": "load", "points": points}))).await;
                assert_eq!(r.status(), 200);
                let s = app.call(Method::POST, "/vectors/search", &key, Some(json!({"collection": "load", "vector": [1, 0, 0, 0]}))).await;
                assert_eq!(s.status(), 200);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let info: Value = app
        .json(Method::GET, "/vectors/collections/load", &key, None)
        .await;
    assert_eq!(info["points_count"], 32 * 4 * 10);
}

/// Payload indexes: created (idempotently) on a field of each type, listed in the
/// collection's info, used by filters with the same results, kept across a restart,
/// dropped; bad fields and types are 4xx problems.
#[tokio::test]
async fn payload_indexes_are_created_listed_kept_and_dropped() {
    let (mut app, key) = seeded().await;
    let filter = json!({"collection": "docs", "vector": [1.0, 0.0, 0.0, 0.0],
        "filter": {"must": [{"key": "city", "match": {"value": "Paris"}}]}});
    let before = search(&app, &key, filter.clone()).await;
    for (field, kind) in [("city", "keyword"), ("stars", "integer"), ("open", "bool")] {
        for _ in 0..2 {
            let r = app
                .call(
                    Method::PUT,
                    "/vectors/collections/docs/index",
                    &key,
                    Some(json!({"field": field, "type": kind})),
                )
                .await;
            assert_eq!(r.status(), 200, "{field}");
        }
    }
    let info = app
        .json(Method::GET, "/vectors/collections/docs", &key, None)
        .await;
    assert_eq!(
        info["payload_indexes"],
        json!([{"field": "city", "type": "keyword"}, {"field": "open", "type": "bool"},
            {"field": "stars", "type": "integer"}]),
        "{info}"
    );
    assert_eq!(search(&app, &key, filter.clone()).await, before);
    // Another type for the same field replaces the index.
    let r = app
        .call(
            Method::PUT,
            "/vectors/collections/docs/index",
            &key,
            Some(json!({"field": "stars", "type": "float"})),
        )
        .await;
    assert_eq!(r.status(), 200);

    app.restart().await;
    let info = app
        .json(Method::GET, "/vectors/collections/docs", &key, None)
        .await;
    assert_eq!(
        info["payload_indexes"],
        json!([{"field": "city", "type": "keyword"}, {"field": "open", "type": "bool"},
            {"field": "stars", "type": "float"}]),
        "kept across a restart: {info}"
    );
    assert_eq!(search(&app, &key, filter).await, before);

    let r = app
        .call(
            Method::DELETE,
            "/vectors/collections/docs/index/city",
            &key,
            None,
        )
        .await;
    assert_eq!(r.status(), 204);
    let r = app
        .call(
            Method::DELETE,
            "/vectors/collections/docs/index/city",
            &key,
            None,
        )
        .await;
    assert_problem(r, 404).await;
    let info = app
        .json(Method::GET, "/vectors/collections/docs", &key, None)
        .await;
    assert_eq!(info["payload_indexes"].as_array().unwrap().len(), 2);
    for bad in [
        json!({"field": "tenant", "type": "keyword"}),
        json!({"field": "a b", "type": "keyword"}),
        json!({"field": "", "type": "keyword"}),
        json!({"field": "city", "type": "geo"}),
        json!({"field": "city"}),
    ] {
        let r = app
            .call(
                Method::PUT,
                "/vectors/collections/docs/index",
                &key,
                Some(bad.clone()),
            )
            .await;
        let status = r.status().as_u16();
        assert!((400..500).contains(&status), "{bad}: {status}");
    }
    let r = app
        .call(
            Method::PUT,
            "/vectors/collections/nowhere/index",
            &key,
            Some(json!({"field": "city", "type": "keyword"})),
        )
        .await;
    assert_problem(r, 404).await;
}

/// Pages of a search (`offset`), alone and fused with the lexical ranking (`mode
/// both`, with one `rank_window` sent with every page), put together give the one long
/// page, each hit with its own payload and, when asked, its own vector (the store reads
/// candidates without them and then the page whole). Without a window, a fused page is
/// the cut of the list fused to its own end.
#[tokio::test]
async fn search_pages_by_offset_carry_each_hits_own_payload_and_vector() {
    let app = spawn_app().await;
    let key = app.key("acme", &["read", "write"]).await;
    let spec = json!({"dim": 3, "distance": "euclid"});
    app.json(Method::PUT, "/vectors/collections/paged", &key, Some(spec))
        .await;
    // No two points tie in either ranking, so every page cuts the same list.
    let vector = |i: u64| vec![i as f32, 0.0, 1.0];
    let points: Vec<Value> = (1..=30u64)
        .map(|i| {
            let words = if i % 3 == 0 {
                "river ".repeat(1 + i as usize / 3)
            } else {
                "hill top ".into()
            };
            json!({"id": i, "vector": vector(i),
                   "payload": {"n": i, "text": format!("{words}number {i}")}})
        })
        .collect();
    let body = json!({"collection": "paged", "points": points});
    app.json(Method::POST, "/vectors/upsert", &key, Some(body))
        .await;

    for mode in ["dense", "both"] {
        let query = |limit: usize, offset: usize| {
            let mut q = json!({"collection": "paged", "vector": [0.0, 0.0, 1.0], "mode": mode,
                               "limit": limit, "offset": offset, "with_vector": true});
            if mode == "both" {
                q["text"] = json!("river");
                q["rank_window"] = json!(30);
            }
            q
        };
        let whole = app
            .json(Method::POST, "/vectors/search", &key, Some(query(30, 0)))
            .await;
        let whole = whole["hits"].as_array().unwrap().clone();
        assert_eq!(whole.len(), 30, "{mode}");
        let ids = |hits: &[Value]| hits.iter().map(|h| h["id"].clone()).collect::<Vec<_>>();
        let search = |q: Value| app.json(Method::POST, "/vectors/search", &key, Some(q));
        let mut paged = Vec::new();
        for offset in (0..30).step_by(7) {
            let page = search(query(7, offset)).await["hits"].clone();
            paged.extend(page.as_array().unwrap().clone());
        }
        assert_eq!(
            ids(&paged),
            ids(&whole),
            "{mode}: pages differ from the whole"
        );
        if mode == "both" {
            let windowed = |limit: usize, offset: usize, window: usize| {
                let mut q = query(limit, offset);
                q["rank_window"] = json!(window);
                q
            };
            // A window of 12 sent with every page: pages cut one list of 12, past
            // which they are empty.
            let list = search(windowed(12, 0, 12)).await["hits"].clone();
            let mut pages = Vec::new();
            for offset in (0..20).step_by(5) {
                let page = search(windowed(5, offset, 12)).await["hits"].clone();
                pages.extend(page.as_array().unwrap().clone());
            }
            assert_eq!(ids(&pages), ids(list.as_array().unwrap()));
            assert_eq!(pages.len(), 12);
            // Without one, each page is fused to its own end: the page a window at
            // that end gives, not the cut of the whole list (which differs here).
            let mut differs = false;
            for offset in [7, 14] {
                let mut unwindowed = query(7, offset);
                unwindowed.as_object_mut().unwrap().remove("rank_window");
                let page = ids(search(unwindowed).await["hits"].as_array().unwrap());
                let at_end = search(windowed(7, offset, offset + 7)).await["hits"].clone();
                assert_eq!(page, ids(at_end.as_array().unwrap()), "at {offset}");
                differs |= page != ids(&whole[offset..offset + 7]);
            }
            assert!(
                differs,
                "the data no longer tells a page's window from the whole's"
            );
        }
        for hit in &paged {
            let id = hit["id"].as_u64().unwrap();
            assert_eq!(hit["payload"]["n"], id, "{mode}: {hit}");
            assert_eq!(hit["vector"], json!(vector(id)), "{mode}: {hit}");
        }
    }
    let bare = json!({"collection": "paged", "vector": [1.0, 1.0, 1.0], "limit": 3,
                      "offset": 2, "with_payload": false});
    let found = app
        .json(Method::POST, "/vectors/search", &key, Some(bare))
        .await;
    for hit in found["hits"].as_array().unwrap() {
        assert!(
            hit.get("payload").is_none() && hit.get("vector").is_none(),
            "{hit}"
        );
    }
}
