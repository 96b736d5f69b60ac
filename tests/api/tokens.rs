//! The token lifecycle through HTTP: refresh-token rotation with replay detection,
//! logout, key revocation, and RS256/EdDSA verification from public key files.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, now, spawn_app, spawn_app_with};

async fn refresh(app: &TestApp, refresh_token: &Value) -> reqwest::Response {
    app.request(Method::POST, "/auth/refresh")
        .json(&json!({"refresh_token": refresh_token}))
        .send()
        .await
        .unwrap()
}

async fn logout(app: &TestApp, access_token: &Value) -> reqwest::Response {
    app.request(Method::POST, "/auth/logout")
        .bearer_auth(access_token.as_str().unwrap())
        .send()
        .await
        .unwrap()
}

/// The status of a read with `token` as bearer.
async fn read_with(app: &TestApp, token: &Value) -> u16 {
    app.request(Method::GET, "/auth/api-keys")
        .bearer_auth(token.as_str().unwrap())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_refresh_token_rotates_and_its_replay_revokes_the_whole_login() {
    rotation_and_replay(&spawn_app().await).await;
}

/// The same lifecycle with keys, refresh tokens and revocations in Redis.
#[tokio::test]
async fn the_token_lifecycle_holds_on_the_redis_auth_store() {
    if crate::backends::redis_url().is_none() {
        return;
    }
    let mut app = spawn_app_with(crate::backends::redis_auth).await;
    rotation_and_replay(&app).await;
    // Revocations are in Redis, not in the process: they survive a restart.
    let session = app.login(&app.admin_key).await;
    let r = logout(&app, &session["access_token"]).await;
    assert_eq!(r.status(), 204);
    app.restart().await;
    assert_eq!(read_with(&app, &session["access_token"]).await, 401);
    app.shutdown().await;
}

async fn rotation_and_replay(app: &TestApp) {
    let first = app.login(&app.admin_key).await;
    assert_eq!(first["refresh_expires_in"], 1_209_600);

    let r = refresh(app, &first["refresh_token"]).await;
    assert_eq!(r.status(), 200);
    let second: Value = r.json().await.unwrap();
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    assert_eq!(read_with(app, &second["access_token"]).await, 200);

    // The first refresh token is presented again: someone holds a copy.
    let replay = refresh(app, &first["refresh_token"]).await;
    let body = assert_problem(replay, 401).await;
    assert!(body["detail"].as_str().unwrap().contains("already used"));

    // Every token of that login is now dead; a new login works.
    assert_problem(refresh(app, &second["refresh_token"]).await, 401).await;
    assert_eq!(read_with(app, &second["access_token"]).await, 401);
    assert_eq!(read_with(app, &first["access_token"]).await, 401);
    let fresh = app.login(&app.admin_key).await;
    assert_eq!(read_with(app, &fresh["access_token"]).await, 200);
    let metrics = app.get("/metrics").await;
    let text = metrics.text().await.unwrap();
    assert!(text.contains(r#"auth_failures_total{reason="refresh_token_reuse"} 1"#));
}

#[tokio::test]
async fn logout_revokes_the_access_token_and_its_refresh_token() {
    let app = spawn_app().await;
    let session = app.login(&app.admin_key).await;
    let other = app.login(&app.admin_key).await;

    let r = logout(&app, &session["access_token"]).await;

    assert_eq!(r.status(), 204);
    assert_eq!(read_with(&app, &session["access_token"]).await, 401);
    assert_problem(refresh(&app, &session["refresh_token"]).await, 401).await;
    // Another login of the same key is untouched.
    assert_eq!(read_with(&app, &other["access_token"]).await, 200);
    // Logout needs a bearer token, and survives a restart.
    let r = app
        .request(Method::POST, "/auth/logout")
        .send()
        .await
        .unwrap();
    assert_problem(r, 401).await;
    let mut app = app;
    app.restart().await;
    assert_eq!(read_with(&app, &session["access_token"]).await, 401);
}

#[tokio::test]
async fn deleting_a_key_stops_its_refresh_tokens_on_the_next_request() {
    let app = spawn_app().await;
    let key = app.key("acme", &["read"]).await;
    let session = app.login(&key).await;

    let r = app.delete_key(&key).await;

    assert_eq!(r.status(), 204);
    assert_problem(refresh(&app, &session["refresh_token"]).await, 401).await;
    let r = app
        .request(Method::GET, "/vectors/collections/docs")
        .bearer_auth(session["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_problem(r, 401).await;
    for bad in ["", "rbr_x", "rbr_00_00", "rbk_00_00"] {
        assert_problem(refresh(&app, &json!(bad)).await, 401).await;
    }
}

fn key_file(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/jwt")
        .join(name)
}

fn external_token(private_pem: &str, alg: Algorithm, claims: Value) -> String {
    let pem = std::fs::read(key_file(private_pem)).unwrap();
    let key = match alg {
        Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem).unwrap(),
        _ => EncodingKey::from_rsa_pem(&pem).unwrap(),
    };
    jsonwebtoken::encode(&Header::new(alg), &claims, &key).unwrap()
}

fn idp_claims(scope: &str) -> Value {
    json!({"sub": "user-42", "tenant": "acme", "scope": scope, "iss": "ragbrain",
           "aud": "ragbrain", "iat": now(), "exp": now() + 300, "jti": "idp-1"})
}

#[tokio::test]
async fn eddsa_tokens_are_signed_here_and_identity_provider_tokens_are_verified() {
    let app = spawn_app_with(|s| {
        s.auth.jwt_algorithm = ragbrain::config::JwtAlgorithm::EdDSA;
        s.auth.jwt_public_key_file = key_file("ed25519-public.pem");
        s.auth.jwt_private_key_file = key_file("ed25519-private.pem");
    })
    .await;

    let session = app.login(&app.admin_key).await;
    let header = jsonwebtoken::decode_header(session["access_token"].as_str().unwrap()).unwrap();
    assert_eq!(header.alg, Algorithm::EdDSA);
    assert_eq!(read_with(&app, &session["access_token"]).await, 200);

    // A token from the identity provider: no API key behind it, tenant and scope claims.
    let idp = json!(external_token(
        "ed25519-private.pem",
        Algorithm::EdDSA,
        idp_claims("read")
    ));
    let r = app
        .request(Method::POST, "/vectors/search")
        .json(&json!({"text": "radium"}))
        .bearer_auth(idp.as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    // Its scope is honoured, and other keys or algorithms are refused.
    assert_eq!(read_with(&app, &idp).await, 403);
    let rsa = json!(external_token(
        "rsa-private.pem",
        Algorithm::RS256,
        idp_claims("admin")
    ));
    assert_eq!(read_with(&app, &rsa).await, 401);
    let mut hs = Header::new(Algorithm::HS256);
    hs.typ = Some("JWT".into());
    let forged = jsonwebtoken::encode(
        &hs,
        &idp_claims("admin"),
        &EncodingKey::from_secret(&std::fs::read(key_file("ed25519-public.pem")).unwrap()),
    )
    .unwrap();
    assert_eq!(read_with(&app, &json!(forged)).await, 401);
}

#[tokio::test]
async fn rs256_without_a_private_key_verifies_only_and_does_not_issue() {
    let app = spawn_app_with(|s| {
        s.auth.jwt_algorithm = ragbrain::config::JwtAlgorithm::Rs256;
        s.auth.jwt_public_key_file = key_file("rsa-public.pem");
    })
    .await;

    let r = app
        .request(Method::POST, "/auth/token")
        .json(&json!({"grant_type": "api_key", "api_key": app.admin_key}))
        .send()
        .await
        .unwrap();

    assert_problem(r, 501).await;
    let token = json!(external_token(
        "rsa-private.pem",
        Algorithm::RS256,
        idp_claims("admin")
    ));
    assert_eq!(read_with(&app, &token).await, 200);
}
