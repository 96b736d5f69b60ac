//! The AuthStore contract: embedded (redb) and Redis.

use std::sync::Arc;

use ragbrain::domain::principal::Scope;
use ragbrain::domain::unix_now;
use ragbrain::store::embedded::auth::EmbeddedAuthStore;
use ragbrain::store::embedded::space::Space;
use ragbrain::store::redis::RedisAuthStore;
use ragbrain::store::{ApiKeyRecord, AuthStore, RefreshRecord, TokenState};

use crate::backends;

fn key(id: &str, tenant: &str, created_at: u64) -> ApiKeyRecord {
    ApiKeyRecord {
        id: id.into(),
        name: format!("key {id}"),
        tenant: tenant.into(),
        scopes: vec![Scope::Read],
        hash: format!("hash-{id}"),
        created_at,
    }
}

async fn contract(store: Arc<dyn AuthStore>) {
    assert_eq!(store.count_keys().await.unwrap(), 0);
    store.insert_key(key("k1", "acme", 1)).await.unwrap();
    store.insert_key(key("k2", "acme", 2)).await.unwrap();
    store.insert_key(key("k3", "other", 3)).await.unwrap();
    assert_eq!(store.count_keys().await.unwrap(), 3);
    assert_eq!(
        store.get_key("k2").await.unwrap(),
        Some(key("k2", "acme", 2))
    );
    assert_eq!(store.get_key("nope").await.unwrap(), None);
    let acme: Vec<_> = store
        .list_keys(Some("acme"))
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(acme, ["k1", "k2"]);
    assert_eq!(store.list_keys(None).await.unwrap().len(), 3);
    assert!(store.delete_key("k1").await.unwrap());
    assert!(!store.delete_key("k1").await.unwrap());
    assert_eq!(store.count_keys().await.unwrap(), 2);

    let refresh = RefreshRecord {
        id: "r1".into(),
        family: "f1".into(),
        key_id: "k2".into(),
        hash: "h".into(),
        expires_at: unix_now() + 3600,
        used: false,
    };
    store.insert_refresh(refresh.clone()).await.unwrap();
    assert_eq!(
        store.get_refresh("r1").await.unwrap(),
        Some(refresh.clone())
    );
    assert!(store.use_refresh("r1").await.unwrap(), "first use");
    assert!(!store.use_refresh("r1").await.unwrap(), "a replay");
    assert!(store.get_refresh("r1").await.unwrap().unwrap().used);
    assert!(!store.use_refresh("never-issued").await.unwrap());
    assert_eq!(store.get_refresh("never-issued").await.unwrap(), None);

    assert!(!store.is_revoked("jti-1").await.unwrap());
    store.revoke("jti-1", unix_now() + 3600).await.unwrap();
    assert!(store.is_revoked("jti-1").await.unwrap());
    store.purge_expired(unix_now()).await.unwrap();
    assert!(store.is_revoked("jti-1").await.unwrap(), "not expired yet");
    token_state(&*store).await;
    store.ping().await.unwrap();
}

/// The one read of every bearer request: revocations first, then the key.
async fn token_state(store: &dyn AuthStore) {
    let live = || TokenState {
        revoked: false,
        key: Some(key("k2", "acme", 2)),
    };
    let revoked = || TokenState {
        revoked: true,
        key: None,
    };
    let none = || TokenState {
        revoked: false,
        key: None,
    };
    for (ids, key_id, want) in [
        (vec!["jti-2", "fam-2"], Some("k2"), live()),
        (vec!["jti-2", "jti-1"], Some("k2"), revoked()),
        (vec!["jti-1"], None, revoked()),
        (vec![], Some("k2"), live()),
        (vec!["jti-2"], Some("k1"), none()),
        (vec!["jti-2"], None, none()),
        (vec![], None, none()),
    ] {
        let owned: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
        let got = store.token_state(&owned, key_id).await.unwrap();
        assert_eq!(got, want, "ids {ids:?}, key {key_id:?}");
    }
}

#[tokio::test]
async fn embedded_auth_store_meets_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    contract(Arc::new(
        EmbeddedAuthStore::open(dir.path(), Space::new(dir.path(), 0))
            .await
            .unwrap(),
    ))
    .await;
}

#[tokio::test]
async fn redis_auth_store_meets_the_contract() {
    let Some(redis) = backends::redis() else {
        return;
    };
    contract(Arc::new(RedisAuthStore::new(redis))).await;
}
