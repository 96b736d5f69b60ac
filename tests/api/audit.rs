//! The audit trail through HTTP: the auth flow, collection changes and refusals leave
//! records (who, what, on which resource, how it ended), never a secret; admins read
//! their own tenant's records, operators every tenant's, page by page.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

/// Every page of `GET /audit` for `key` with `query`, newest first.
async fn read_all(app: &TestApp, key: &str, query: &str) -> Vec<Value> {
    let mut records = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let cursor = before.map(|b| format!("&before={b}")).unwrap_or_default();
        let page = app
            .json(
                Method::GET,
                &format!("/audit?limit=50{query}{cursor}"),
                key,
                None,
            )
            .await;
        records.extend(page["records"].as_array().cloned().unwrap_or_default());
        match page["next"].as_str() {
            Some(next) => before = Some(next.to_owned()),
            None => return records,
        }
    }
}

fn actions(records: &[Value]) -> Vec<&str> {
    records
        .iter()
        .filter_map(|r| r["action"].as_str())
        .collect()
}

#[tokio::test]
async fn the_auth_flow_is_audited_without_secrets_and_reads_are_tenant_scoped() {
    let app = spawn_app().await;
    let body = json!({"name": "acme ops", "tenant": "acme", "scopes": ["read", "write", "admin"]});
    let created: Value = app
        .call(Method::POST, "/auth/api-keys", &app.admin_key, Some(body))
        .await
        .json()
        .await
        .unwrap();
    let (acme_admin, acme_id) = (
        created["key"].as_str().unwrap().to_owned(),
        created["id"].as_str().unwrap().to_owned(),
    );
    let reader = app.key("acme", &["read"]).await;
    let globex = app.key("globex", &["admin"]).await;
    let mut secrets = vec![acme_admin.clone(), reader.clone(), globex.clone()];

    // Tokens: issued, refreshed, a refresh replayed, then a logout.
    let first = app.login(&acme_admin).await;
    let refresh = first["refresh_token"].as_str().unwrap().to_owned();
    let r = app
        .request(Method::POST, "/auth/refresh")
        .json(&json!({"refresh_token": refresh}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let second: Value = r.json().await.unwrap();
    let r = app
        .request(Method::POST, "/auth/refresh")
        .json(&json!({"refresh_token": refresh}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "a replayed refresh token");
    let third = app.login(&acme_admin).await;
    let access = third["access_token"].as_str().unwrap().to_owned();
    let r = app
        .request(Method::POST, "/auth/logout")
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    for t in [&first, &second, &third] {
        for field in ["access_token", "refresh_token"] {
            secrets.push(t[field].as_str().unwrap().to_owned());
        }
    }
    // Refusals, and collection changes.
    let r = app
        .call(
            Method::GET,
            "/vectors/collections/docs",
            "rbk_00_wrong",
            None,
        )
        .await;
    assert_eq!(r.status(), 401);
    let put = json!({"dim": 3});
    let r = app
        .call(
            Method::PUT,
            "/vectors/collections/audited",
            &reader,
            Some(put.clone()),
        )
        .await;
    assert_eq!(r.status(), 403);
    let r = app
        .call(
            Method::PUT,
            "/vectors/collections/audited",
            &acme_admin,
            Some(put),
        )
        .await;
    assert_eq!(r.status(), 201);
    let r = app
        .call(
            Method::DELETE,
            "/vectors/collections/audited",
            &acme_admin,
            None,
        )
        .await;
    assert_eq!(r.status(), 204);
    assert_eq!(app.delete_key(&reader).await.status(), 204);

    // The writer is asynchronous: wait for the last action to land.
    let mut all = Vec::new();
    for _ in 0..100 {
        all = read_all(&app, &app.admin_key, "").await;
        if actions(&all).contains(&"key.deleted") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seen = actions(&all);
    for expected in [
        "key.created",
        "token.issued",
        "token.refreshed",
        "refresh.replayed",
        "token.revoked",
        "authentication.failed",
        "authorization.denied",
        "collection.created",
        "collection.dropped",
        "key.deleted",
    ] {
        assert!(seen.contains(&expected), "no {expected} in {seen:?}");
    }
    let issued = all.iter().find(|r| r["action"] == "token.issued").unwrap();
    assert_eq!(issued["principal"], acme_id.as_str(), "{issued}");
    assert_eq!(issued["tenant"], "acme");
    assert_eq!(issued["success"], true);
    assert_eq!(issued["client_ip"], "127.0.0.1");
    assert!(
        issued["correlation_id"]
            .as_str()
            .is_some_and(|c| !c.is_empty())
    );
    let created = all
        .iter()
        .find(|r| r["action"] == "collection.created")
        .unwrap();
    assert_eq!(created["resource"], "audited");
    let replay = all
        .iter()
        .find(|r| r["action"] == "refresh.replayed")
        .unwrap();
    assert_eq!(
        (replay["status"].as_u64(), replay["success"].as_bool()),
        (Some(401), Some(false))
    );
    // No key or token appears anywhere in the trail.
    let text = serde_json::to_string(&all).unwrap();
    for secret in &secrets {
        assert!(
            !text.contains(secret.as_str()),
            "a secret in the audit trail"
        );
        let tail = &secret[secret.len() - 16..];
        assert!(!text.contains(tail), "part of a secret in the audit trail");
    }

    // An admin of acme reads acme's records only; not another tenant's.
    let acme = read_all(&app, &acme_admin, "").await;
    assert!(!acme.is_empty());
    assert!(acme.iter().all(|r| r["tenant"] == "acme"), "{acme:?}");
    assert!(actions(&acme).contains(&"collection.created"));
    let r = app
        .call(Method::GET, "/audit?tenant=globex", &acme_admin, None)
        .await;
    assert_eq!(r.status(), 403);
    let globex_view = read_all(&app, &globex, "").await;
    assert!(globex_view.iter().all(|r| r["tenant"] == "globex"));
    // Filters and paging.
    let only = read_all(&app, &app.admin_key, "&action=collection.created").await;
    assert!(!only.is_empty() && only.iter().all(|r| r["action"] == "collection.created"));
    let page = app
        .json(Method::GET, "/audit?limit=2", &app.admin_key, None)
        .await;
    let next = page["next"].as_str().unwrap().to_owned();
    let older = app
        .json(
            Method::GET,
            &format!("/audit?limit=2&before={next}"),
            &app.admin_key,
            None,
        )
        .await;
    let ids = |p: &Value| -> Vec<String> {
        p["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (a, b) = (ids(&page), ids(&older));
    assert_eq!((a.len(), b.len()), (2, 2));
    assert!(
        a.iter().all(|id| !b.contains(id)),
        "pages overlap: {a:?} {b:?}"
    );
    let r = app
        .call(Method::GET, "/audit?limit=0", &app.admin_key, None)
        .await;
    assert_eq!(r.status(), 422);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("audit_dropped_total 0"), "nothing dropped");
}
