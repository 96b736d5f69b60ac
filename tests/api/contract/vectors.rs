//! The VectorStore contract: embedded (qdrant-edge) and a Qdrant server.

use std::sync::Arc;

use ragbrain::config::{QdrantSettings, Settings};
use ragbrain::domain::principal::Tenant;
use ragbrain::domain::vector::{
    CollectionName, CollectionSpec, Condition, Distance, Filter, MatchSpec, MatchValue, Point,
    PointId, Query, RangeSpec, SearchQuery,
};
use ragbrain::store::embedded::space::Space;
use ragbrain::store::embedded::vectors::{EmbeddedVectorOptions, EmbeddedVectorStore, Tuning};
use ragbrain::store::qdrant::QdrantVectorStore;
use ragbrain::store::{Created, ErrorKind, VectorStore};
use serde_json::json;

use super::tenant;
use crate::backends;

fn point(id: u64, vector: [f32; 3], payload: serde_json::Value) -> Point {
    Point {
        id: PointId::Num(id),
        vector: vector.to_vec(),
        payload: payload.as_object().cloned().unwrap_or_default(),
    }
}

fn query(vector: [f32; 3], limit: usize, filter: Option<Filter>) -> SearchQuery {
    SearchQuery {
        query: Query::Dense(vector.to_vec()),
        limit,
        offset: 0,
        score_threshold: None,
        filter,
        ids: None,
        with_payload: true,
        with_vector: false,
    }
}

fn keyword(key: &str, value: &str) -> Condition {
    Condition {
        key: Some(key.into()),
        matches: Some(MatchSpec {
            value: Some(MatchValue::Keyword(value.into())),
            any: None,
        }),
        ..Condition::default()
    }
}

async fn contract(store: Arc<dyn VectorStore>) {
    let (a, b) = (tenant("va"), tenant("vb"));
    let docs = &CollectionName::parse("docs").unwrap();
    let spec = CollectionSpec {
        dim: 3,
        distance: Distance::Cosine,
    };
    assert_eq!(
        store.create_collection(&a, docs, spec).await.unwrap(),
        Created::New
    );
    assert_eq!(
        store.create_collection(&a, docs, spec).await.unwrap(),
        Created::Existing
    );
    let other = CollectionSpec { dim: 4, ..spec };
    let e = store.create_collection(&a, docs, other).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Conflict);
    // Another tenant may use the same name with another shape.
    assert_eq!(
        store.create_collection(&b, docs, other).await.unwrap(),
        Created::New
    );
    let unused = tenant("vc");
    for (t, n) in [(&a, 1), (&b, 1), (&unused, 0)] {
        assert_eq!(store.collection_count(t).await.unwrap(), n, "{t}");
    }

    store
        .upsert(
            &a,
            docs,
            vec![
                point(1, [1.0, 0.0, 0.0], json!({"kind": "x", "n": 1})),
                point(2, [0.9, 0.1, 0.0], json!({"kind": "y", "n": 2})),
                point(3, [0.0, 1.0, 0.0], json!({"kind": "x", "n": 3})),
            ],
        )
        .await
        .unwrap();
    let info = store.collection_info(&a, docs).await.unwrap();
    assert_eq!(
        (info.dim, info.distance, info.points_count),
        (3, Distance::Cosine, 3)
    );
    let spec = store.collection_spec(&a, docs).await.unwrap();
    assert_eq!((spec.dim, spec.distance), (3, Distance::Cosine));

    let hits = store
        .search(&a, docs, query([1.0, 0.0, 0.0], 2, None))
        .await
        .unwrap();
    let ids: Vec<_> = hits.iter().map(|h| h.id).collect();
    assert_eq!(ids, [PointId::Num(1), PointId::Num(2)]);
    assert_eq!(hits[0].payload.as_ref().unwrap()["kind"], "x");
    assert!(
        hits[0].payload.as_ref().unwrap().get("tenant").is_none(),
        "tenant field hidden"
    );

    let only_x = Filter {
        must: vec![keyword("kind", "x")],
        ..Filter::default()
    };
    let hits = store
        .search(&a, docs, query([1.0, 0.0, 0.0], 10, Some(only_x.clone())))
        .await
        .unwrap();
    assert_eq!(
        hits.iter().map(|h| h.id).collect::<Vec<_>>(),
        [PointId::Num(1), PointId::Num(3)]
    );
    let ranged = Filter {
        must: vec![Condition {
            key: Some("n".into()),
            range: Some(RangeSpec {
                gte: Some(2.0),
                ..RangeSpec::default()
            }),
            ..Condition::default()
        }],
        ..Filter::default()
    };
    let hits = store
        .search(&a, docs, query([1.0, 0.0, 0.0], 10, Some(ranged)))
        .await
        .unwrap();
    assert_eq!(hits.len(), 2);

    // Tenant b sees nothing of tenant a's.
    let hits = store
        .search(
            &b,
            docs,
            SearchQuery {
                query: Query::Dense(vec![1.0, 0.0, 0.0, 0.0]),
                ..query([0.0; 3], 10, None)
            },
        )
        .await
        .unwrap();
    assert!(hits.is_empty());
    assert!(
        store
            .retrieve(&b, docs, vec![PointId::Num(1)])
            .await
            .unwrap()
            .is_empty()
    );

    let got = store
        .retrieve(&a, docs, vec![PointId::Num(3), PointId::Num(99)])
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].vector.as_deref(), Some(&[0.0, 1.0, 0.0][..]));

    assert_eq!(
        store
            .delete_ids(&a, docs, vec![PointId::Num(2), PointId::Num(42)])
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.delete_by_filter(&a, docs, only_x).await.unwrap(), 2);
    assert_eq!(
        store.collection_info(&a, docs).await.unwrap().points_count,
        0
    );

    lexical(&*store, &a, &b, docs).await;

    let counts = store.point_counts().await.unwrap();
    assert!(
        counts
            .iter()
            .any(|c| c.tenant == a.as_str() && c.collection == "docs")
    );

    scrolls(&*store, &a, &b).await;
    tenant_points(&*store).await;

    store.drop_collection(&a, docs).await.unwrap();
    let e = store.collection_info(&a, docs).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound);
    let e = store.collection_spec(&a, docs).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound);
    let e = store
        .search(&a, docs, query([1.0, 0.0, 0.0], 1, None))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound);
    store.ping().await.unwrap();
}

#[tokio::test]
async fn embedded_vector_store_meets_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let options = EmbeddedVectorOptions {
        default_name: "documents".into(),
        default_spec: CollectionSpec {
            dim: 3,
            distance: Distance::Cosine,
        },
        tuning: Tuning {
            indexing_threads: 1,
            engine_wal_limit_bytes: 1 << 30,
            indexing_threshold_kb: None,
            quantization: ragbrain::config::VectorQuantization::Turbo,
        },
        maintenance_every: std::time::Duration::from_secs(60),
        checkpoint_every: std::time::Duration::from_secs(60),
        checkpoint_bytes: 1 << 30,
        search_slots: 0,
        space: Space::new(dir.path(), 0),
    };
    let store = Arc::new(
        EmbeddedVectorStore::open(dir.path(), options)
            .await
            .unwrap(),
    );
    contract(store.clone()).await;
    store.close().await.unwrap();
}

#[tokio::test]
async fn qdrant_vector_store_meets_the_contract() {
    let Some(url) = backends::qdrant_url() else {
        return;
    };
    let settings = Settings::load(None).unwrap();
    let store = QdrantVectorStore::connect(
        &settings.vectors,
        &QdrantSettings::new(url),
        backends::guard("qdrant"),
        std::time::Duration::from_secs(10),
    )
    .unwrap();
    contract(Arc::new(store)).await;
}

/// BM25 over payload `text` (after a title): the exact rare term ranks its point first
/// with IDF from the collection, points with text keep their dense vector, and another
/// tenant finds nothing.
async fn lexical(store: &dyn VectorStore, a: &Tenant, b: &Tenant, docs: &CollectionName) {
    let texts = [
        (10, "The quartz mill stood by the river", None),
        (11, "The river ran past the mill and the town", None),
        (12, "A town by the river", Some("Zephyrine")),
    ];
    let points = texts
        .iter()
        .map(|(id, text, title)| {
            let mut payload = json!({"text": text});
            if let Some(t) = title {
                payload["metadata"] = json!({"title": t});
            }
            point(*id, [0.6, 0.8, 0.0], payload)
        })
        .collect();
    store.upsert(a, docs, points).await.unwrap();
    let lexical = |text: &str| SearchQuery {
        query: Query::Lexical(text.to_owned()),
        ..query([0.0; 3], 3, None)
    };
    let hits = store
        .search(a, docs, lexical("quartz river"))
        .await
        .unwrap();
    assert_eq!(hits[0].id, PointId::Num(10), "{hits:?}");
    let hits = store.search(a, docs, lexical("zephyrine")).await.unwrap();
    let ids: Vec<PointId> = hits.iter().map(|h| h.id).collect();
    assert_eq!(ids, [PointId::Num(12)], "the title is searched too");
    let got = store
        .retrieve(a, docs, vec![PointId::Num(10)])
        .await
        .unwrap();
    assert_eq!(got[0].vector.as_deref(), Some(&[0.6, 0.8, 0.0][..]));
    // Tenant b has no such collection, or nothing in it.
    if let Ok(hits) = store.search(b, docs, lexical("quartz")).await {
        assert!(hits.is_empty(), "{hits:?}");
    }
    let ids = texts.iter().map(|t| PointId::Num(t.0)).collect();
    store.delete_ids(a, docs, ids).await.unwrap();
}

/// A scroll pages through every point of the tenant's collection in id order, with
/// payloads and vectors, and says where the next page starts.
async fn scrolls(store: &dyn VectorStore, a: &Tenant, b: &Tenant) {
    let name = &CollectionName::parse("copied").unwrap();
    let spec = CollectionSpec {
        dim: 3,
        distance: Distance::Dot,
    };
    store.create_collection(a, name, spec).await.unwrap();
    let points = (1..=5)
        .rev()
        .map(|i| point(i, [i as f32, 0.0, 1.0], json!({"n": i})))
        .collect();
    store.upsert(a, name, points).await.unwrap();
    let (mut seen, mut from) = (Vec::new(), None);
    loop {
        let (page, next) = store.scroll(a, name, from, 2).await.unwrap();
        assert!(page.len() <= 2);
        for r in page {
            let PointId::Num(n) = r.id else {
                panic!("{:?}", r.id)
            };
            assert_eq!(r.payload["n"], json!(n));
            assert_eq!(r.vector.as_deref(), Some(&[n as f32, 0.0, 1.0][..]));
            seen.push(n);
        }
        match next {
            Some(n) => from = Some(n),
            None => break,
        }
    }
    assert_eq!(seen, [1, 2, 3, 4, 5]);
    let e = store.scroll(b, name, None, 2).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound);
    store.drop_collection(a, name).await.unwrap();
}

/// A tenant's points are counted over all its collections and no other tenant's.
async fn tenant_points(store: &dyn VectorStore) {
    let (c, d) = (tenant("vc"), tenant("vd"));
    let spec = CollectionSpec {
        dim: 3,
        distance: Distance::Cosine,
    };
    let points = |n: u64| {
        (1..=n)
            .map(|i| point(i, [1.0, i as f32, 0.0], json!({})))
            .collect()
    };
    for (t, name, n) in [(&c, "one", 2), (&c, "two", 3), (&d, "one", 4)] {
        let name = &CollectionName::parse(name).unwrap();
        store.create_collection(t, name, spec).await.unwrap();
        store.upsert(t, name, points(n)).await.unwrap();
    }
    assert_eq!(store.tenant_points(&c).await.unwrap(), 5);
    assert_eq!(store.tenant_points(&d).await.unwrap(), 4);
    assert_eq!(store.tenant_points(&tenant("ve")).await.unwrap(), 0);
    for (t, name) in [(&c, "one"), (&c, "two"), (&d, "one")] {
        let name = &CollectionName::parse(name).unwrap();
        store.drop_collection(t, name).await.unwrap();
    }
}
