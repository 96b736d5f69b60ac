//! Authentication and tenancy: the auth matrix over every protected route, tokens, key
//! management, and cross-tenant isolation.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, b64url, now, spawn_app};

/// Every protected route with a valid body and the scope it needs.
fn routes() -> Vec<(Method, &'static str, Option<Value>, &'static str)> {
    vec![
        (
            Method::PUT,
            "/vectors/collections/docs",
            Some(json!({"dim": 4})),
            "write",
        ),
        (Method::GET, "/vectors/collections/docs", None, "read"),
        (Method::DELETE, "/vectors/collections/docs", None, "admin"),
        (
            Method::POST,
            "/vectors/upsert",
            Some(json!({"collection": "docs", "points": [{"id": 1, "vector": [1, 0, 0, 0]}]})),
            "write",
        ),
        (
            Method::POST,
            "/vectors/search",
            Some(json!({"collection": "docs", "vector": [1, 0, 0, 0]})),
            "read",
        ),
        (
            Method::POST,
            "/vectors/retrieve",
            Some(json!({"collection": "docs", "ids": [1]})),
            "read",
        ),
        (
            Method::POST,
            "/vectors/delete",
            Some(json!({"collection": "docs", "ids": [1]})),
            "write",
        ),
        (
            Method::POST,
            "/graphs/node",
            Some(json!({"id": "a", "labels": ["P"]})),
            "write",
        ),
        (Method::GET, "/graphs/node/a", None, "read"),
        (Method::DELETE, "/graphs/node/a", None, "write"),
        (
            Method::POST,
            "/graphs/node/find",
            Some(json!({"label": "P"})),
            "read",
        ),
        (
            Method::POST,
            "/graphs/relationship",
            Some(json!({"from": "a", "to": "a", "type": "R"})),
            "write",
        ),
        (
            Method::POST,
            "/graphs/neighbors",
            Some(json!({"id": "a"})),
            "read",
        ),
        (
            Method::POST,
            "/graphs/query",
            Some(json!({"query": "RETURN 1"})),
            "read",
        ),
        (
            Method::POST,
            "/auth/api-keys",
            Some(json!({"name": "k", "scopes": ["read"]})),
            "admin",
        ),
        (Method::GET, "/auth/api-keys", None, "admin"),
        (
            Method::DELETE,
            "/auth/api-keys/0000000000000000",
            None,
            "admin",
        ),
    ]
}

fn token(app: &TestApp, claims: Value) -> String {
    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(&app.jwt_secret()),
    )
    .unwrap()
}

fn claims(sub: &str, exp: u64) -> Value {
    json!({"sub": sub, "tenant": "default", "scope": "admin", "iss": "ragbrain", "aud": "ragbrain", "iat": now(), "exp": exp, "jti": "x"})
}

async fn send(
    app: &TestApp,
    method: &Method,
    path: &str,
    body: &Option<Value>,
    header: (&str, &str),
) -> reqwest::Response {
    let mut req = app.request(method.clone(), path).header(header.0, header.1);
    if let Some(b) = body {
        req = req.json(b);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn every_protected_route_rejects_missing_bad_expired_and_unsigned_credentials() {
    let app = spawn_app().await;
    let admin_id = app.admin_key.split('_').nth(1).unwrap().to_owned();
    let expired = token(&app, claims(&admin_id, now() - 3600));
    let wrong_audience = token(&app, {
        let mut c = claims(&admin_id, now() + 600);
        c["aud"] = json!("someone-else");
        c
    });
    let unsigned = format!(
        "{}.{}.",
        b64url(br#"{"alg":"none","typ":"JWT"}"#),
        b64url(claims(&admin_id, now() + 600).to_string().as_bytes())
    );
    for (method, path, body, _) in routes() {
        let mut req = app.request(method.clone(), path);
        if let Some(b) = &body {
            req = req.json(b);
        }
        let none = req.send().await.unwrap();
        assert!(
            none.headers().contains_key("www-authenticate"),
            "{method} {path}"
        );
        assert_problem(none, 401).await;
        let bad_key = send(
            &app,
            &method,
            path,
            &body,
            ("X-API-Key", "rbk_0000000000000000_deadbeef"),
        )
        .await;
        assert_problem(bad_key, 401).await;
        for bad in [&expired, &wrong_audience, &unsigned] {
            let r = send(
                &app,
                &method,
                path,
                &body,
                ("Authorization", &format!("Bearer {bad}")),
            )
            .await;
            assert_eq!(r.status(), 401, "{method} {path} with a bad token");
        }
    }
}

#[tokio::test]
async fn every_protected_route_enforces_its_scope() {
    let app = spawn_app().await;
    let read = app.key("default", &["read"]).await;
    let write = app.key("default", &["write"]).await;
    for (method, path, body, needed) in routes() {
        let weaker = match needed {
            "write" => &read,
            "admin" => &write,
            _ => continue,
        };
        let r = send(&app, &method, path, &body, ("X-API-Key", weaker)).await;
        assert_problem(r, 403).await;
    }
}

#[tokio::test]
async fn tokens_issued_for_a_key_work_until_the_key_is_deleted() {
    let app = spawn_app().await;
    let key = app.key("acme", &["read", "write"]).await;
    let body = app.login(&key).await;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "read write");
    let bearer = format!("Bearer {}", body["access_token"].as_str().unwrap());

    let upsert = json!({"id": "n", "labels": ["P"]});
    let ok = app
        .request(Method::POST, "/graphs/node")
        .header("Authorization", &bearer)
        .json(&upsert)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 201);

    let deleted = app.delete_key(&key).await;
    assert_eq!(deleted.status(), 204);
    let revoked = app
        .request(Method::GET, "/graphs/node/n")
        .header("Authorization", &bearer)
        .send()
        .await
        .unwrap();
    assert_problem(revoked, 401).await;
    let key_too = app.call(Method::GET, "/graphs/node/n", &key, None).await;
    assert_problem(key_too, 401).await;
}

#[tokio::test]
async fn token_requests_with_bad_grants_are_rejected() {
    let app = spawn_app().await;
    let post = |body: Value| app.request(Method::POST, "/auth/token").json(&body).send();
    assert_problem(
        post(json!({"grant_type": "api_key", "api_key": "rbk_nope_nope"}))
            .await
            .unwrap(),
        401,
    )
    .await;
    assert_problem(post(json!({"grant_type": "password"})).await.unwrap(), 400).await;
    assert_problem(post(json!({"grant_type": "api_key"})).await.unwrap(), 422).await;
}

#[tokio::test]
async fn api_keys_are_listed_without_secrets_and_tenant_admins_stay_in_their_tenant() {
    let app = spawn_app().await;
    let tenant_admin = app.key("acme", &["admin"]).await;
    let r = app
        .call(
            Method::POST,
            "/auth/api-keys",
            &tenant_admin,
            Some(json!({"name": "r", "scopes": ["read"]})),
        )
        .await;
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    assert_eq!(created["tenant"], "acme");
    let other = app
        .call(
            Method::POST,
            "/auth/api-keys",
            &tenant_admin,
            Some(json!({"name": "x", "scopes": ["read"], "tenant": "globex"})),
        )
        .await;
    assert_problem(other, 403).await;

    let listed: Value = app
        .json(Method::GET, "/auth/api-keys", &tenant_admin, None)
        .await;
    let keys = listed["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert!(
        keys.iter()
            .all(|k| k.get("key").is_none() && k.get("hash").is_none() && k["tenant"] == "acme")
    );

    let operator_view: Value = app
        .json(
            Method::GET,
            "/auth/api-keys?tenant=acme",
            &app.admin_key,
            None,
        )
        .await;
    assert_eq!(operator_view["keys"].as_array().unwrap().len(), 2);
    let admin_id = app.admin_key.split('_').nth(1).unwrap();
    let cross_delete = app
        .call(
            Method::DELETE,
            &format!("/auth/api-keys/{admin_id}"),
            &tenant_admin,
            None,
        )
        .await;
    assert_problem(cross_delete, 404).await;
    for bad in [
        json!({"name": "x", "scopes": ["root"]}),
        json!({"name": "admin\u{202E}yek", "scopes": ["read"]}),
    ] {
        let r = app
            .call(Method::POST, "/auth/api-keys", &tenant_admin, Some(bad))
            .await;
        assert_problem(r, 422).await;
    }
}

#[tokio::test]
async fn another_tenants_collections_points_and_nodes_are_invisible() {
    let app = spawn_app().await;
    let acme = app.key("acme", &["admin"]).await;
    let globex = app.key("globex", &["admin"]).await;
    app.create_collection(&acme, "docs", 4).await;
    let points = json!({"collection": "docs", "points": [{"id": 1, "vector": [1, 0, 0, 0], "payload": {"secret": "acme"}}]});
    assert_eq!(
        app.call(Method::POST, "/vectors/upsert", &acme, Some(points))
            .await
            .status(),
        200
    );
    assert_eq!(
        app.call(
            Method::POST,
            "/graphs/node",
            &acme,
            Some(json!({"id": "n", "labels": ["P"]}))
        )
        .await
        .status(),
        201
    );

    for (method, path, body) in [
        (Method::GET, "/vectors/collections/docs", None),
        (Method::DELETE, "/vectors/collections/docs", None),
        (
            Method::POST,
            "/vectors/search",
            Some(json!({"collection": "docs", "vector": [1, 0, 0, 0]})),
        ),
        (
            Method::POST,
            "/vectors/retrieve",
            Some(json!({"collection": "docs", "ids": [1]})),
        ),
        (
            Method::POST,
            "/vectors/delete",
            Some(json!({"collection": "docs", "ids": [1]})),
        ),
        (Method::GET, "/graphs/node/n", None),
        (Method::DELETE, "/graphs/node/n", None),
        (Method::POST, "/graphs/neighbors", Some(json!({"id": "n"}))),
        (
            Method::POST,
            "/graphs/relationship",
            Some(json!({"from": "n", "to": "n", "type": "R"})),
        ),
    ] {
        let r = app.call(method.clone(), path, &globex, body).await;
        assert_problem(r, 404).await;
    }
    let q: Value = app
        .json(
            Method::POST,
            "/graphs/query",
            &globex,
            Some(json!({"query": "MATCH (n) RETURN n.id"})),
        )
        .await;
    assert_eq!(q["rows"], json!([]));
    let found: Value = app
        .json(
            Method::POST,
            "/graphs/node/find",
            &globex,
            Some(json!({"label": "P"})),
        )
        .await;
    assert_eq!(found["nodes"], json!([]));

    // Globex may use the same names without touching Acme's data.
    app.create_collection(&globex, "docs", 4).await;
    let hits: Value = app
        .json(
            Method::POST,
            "/vectors/search",
            &globex,
            Some(json!({"collection": "docs", "vector": [1, 0, 0, 0]})),
        )
        .await;
    assert_eq!(hits["hits"], json!([]));
    let acme_hits: Value = app
        .json(
            Method::POST,
            "/vectors/search",
            &acme,
            Some(json!({"collection": "docs", "vector": [1, 0, 0, 0]})),
        )
        .await;
    assert_eq!(acme_hits["hits"][0]["payload"]["secret"], "acme");
    assert_eq!(
        StatusCode::OK,
        app.call(Method::GET, "/graphs/node/n", &acme, None)
            .await
            .status()
    );
}

#[tokio::test]
async fn anonymous_reads_when_enabled_see_only_the_anonymous_tenant_and_cannot_write() {
    let app = crate::helpers::spawn_app_with(|s| {
        s.auth.anonymous_read = true;
        s.auth.anonymous_tenant = "public".into();
    })
    .await;
    let public = app.key("public", &["write"]).await;
    assert_eq!(
        app.call(
            Method::POST,
            "/graphs/node",
            &public,
            Some(json!({"id": "open", "labels": ["Doc"]}))
        )
        .await
        .status(),
        201
    );

    let read = app
        .request(Method::GET, "/graphs/node/open")
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    let write = app
        .request(Method::POST, "/graphs/node")
        .json(&json!({"id": "x"}))
        .send()
        .await
        .unwrap();
    assert_problem(write, 401).await;
    let admin = app
        .request(Method::GET, "/auth/api-keys")
        .send()
        .await
        .unwrap();
    assert_problem(admin, 401).await;
}
