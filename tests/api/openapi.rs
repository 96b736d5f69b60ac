//! The OpenAPI document and the offline docs UI: every route of the API is documented
//! with its auth requirement, bodies and error codes; every documented operation is
//! routed; `/docs` works without any external resource.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::Value;

use crate::helpers::spawn_app;

/// The API of DESIGN §5 as (method, path); the document must describe exactly these.
const ROUTES: &[(&str, &str)] = &[
    ("get", "/audit"),
    ("get", "/admin/snapshots"),
    ("post", "/admin/snapshots"),
    ("get", "/admin/snapshots/{name}"),
    ("delete", "/admin/snapshots/{name}"),
    ("post", "/ingest"),
    ("post", "/ingest/batch"),
    ("get", "/ingest/{id}"),
    ("delete", "/ingest/{id}"),
    ("put", "/vectors/collections/{name}"),
    ("put", "/vectors/collections/{name}/index"),
    ("delete", "/vectors/collections/{name}/index/{field}"),
    ("get", "/vectors/collections/{name}"),
    ("delete", "/vectors/collections/{name}"),
    ("post", "/vectors/upsert"),
    ("post", "/vectors/search"),
    ("post", "/vectors/retrieve"),
    ("post", "/vectors/delete"),
    ("post", "/graphs/node"),
    ("post", "/graphs/node/find"),
    ("get", "/graphs/node/{id}"),
    ("delete", "/graphs/node/{id}"),
    ("post", "/graphs/relationship"),
    ("post", "/graphs/neighbors"),
    ("post", "/graphs/query"),
    ("post", "/hybrid/search"),
    ("post", "/hybrid/generate"),
    ("post", "/auth/token"),
    ("post", "/auth/refresh"),
    ("post", "/auth/logout"),
    ("post", "/auth/api-keys"),
    ("get", "/auth/api-keys"),
    ("delete", "/auth/api-keys/{id}"),
    ("get", "/health/live"),
    ("get", "/health/ready"),
    ("get", "/health"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
    ("get", "/docs"),
    ("get", "/docs/{asset}"),
];

const PUBLIC: &[&str] = &[
    "/auth/token",
    "/auth/refresh",
    "/health/live",
    "/health/ready",
    "/health",
    "/metrics",
    "/openapi.json",
    "/docs",
    "/docs/{asset}",
];

fn operations(spec: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                out.insert((method.clone(), path.clone()));
            }
        }
    }
    out
}

#[tokio::test]
async fn the_document_describes_every_route_with_auth_bodies_and_errors() {
    let app = spawn_app().await;

    let r = app.get("/openapi.json").await;

    assert_eq!(r.status(), 200);
    let spec: Value = r.json().await.unwrap();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"));
    let documented = operations(&spec);
    let expected: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(documented, expected);
    let schemes = &spec["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["api_key"]["name"], "X-API-Key");
    for (method, path) in &documented {
        let op = &spec["paths"][path][method];
        let responses = op["responses"].as_object().unwrap();
        assert!(
            responses.keys().any(|c| c.starts_with('2')),
            "{method} {path} documents no success"
        );
        if PUBLIC.contains(&path.as_str()) {
            continue;
        }
        let security = op["security"].as_array().expect("security");
        assert!(
            !security.is_empty(),
            "{method} {path} has no auth requirement"
        );
        // 502: any authenticated call may reach a production backend (the key store).
        for code in ["401", "429", "502"] {
            let problem = &responses[code]["content"]["application/problem+json"];
            assert!(problem.is_object(), "{method} {path} lacks {code}");
        }
        // Path parameters are exactly the path's placeholders; the rest are optional
        // query parameters.
        let placeholders: BTreeSet<&str> = path
            .split('/')
            .filter_map(|part| part.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        let mut in_path = BTreeSet::new();
        for param in op["parameters"].as_array().into_iter().flatten() {
            let name = param["name"].as_str().unwrap();
            match param["in"].as_str().unwrap() {
                "path" => assert!(in_path.insert(name), "{method} {path}: {name} twice"),
                "query" => assert_ne!(
                    param["required"], true,
                    "{method} {path}: query parameter {name} required"
                ),
                other => panic!("{method} {path}: {name} in {other}"),
            }
        }
        assert_eq!(in_path, placeholders, "{method} {path}: path parameters");
        // Logging out and taking a snapshot act on the caller or the server alone.
        if method == "post" && !["/auth/logout", "/admin/snapshots"].contains(&path.as_str()) {
            assert!(
                op["requestBody"].is_object(),
                "{method} {path} has no body schema"
            );
        }
    }
    // Beyond the common codes: a quota's 409 and a full disk's 507 on writes that take
    // space, and 501 where a deployment may have the capability off.
    for (method, path, codes) in [
        ("post", "/vectors/upsert", &["409", "507"][..]),
        ("post", "/graphs/node", &["409", "507"]),
        ("post", "/graphs/relationship", &["409", "507"]),
        ("post", "/ingest", &["409", "507"]),
        ("put", "/vectors/collections/{name}", &["409", "507"]),
        ("post", "/auth/api-keys", &["507"]),
        ("post", "/graphs/query", &["501"]),
        ("get", "/audit", &["501"]),
    ] {
        for code in codes {
            let documented = &spec["paths"][path][method]["responses"][code];
            assert!(documented.is_object(), "{method} {path} lacks {code}");
        }
    }
    // Every schema reference resolves.
    let text = spec.to_string();
    let schemas = spec["components"]["schemas"].as_object().unwrap();
    for part in text.split("\"#/components/schemas/").skip(1) {
        let name = &part[..part.find('"').unwrap()];
        assert!(schemas.contains_key(name), "dangling $ref {name}");
    }
}

#[tokio::test]
async fn every_documented_operation_is_routed() {
    let app = spawn_app().await;
    let spec: Value = app.get("/openapi.json").await.json().await.unwrap();

    for (method, path) in operations(&spec) {
        let concrete = path
            .replace("{name}", "docs")
            .replace("{id}", "x")
            .replace("{asset}", "init.js");
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let r = app.request(method.clone(), &concrete).send().await.unwrap();
        let status = r.status().as_u16();
        let body = r.text().await.unwrap();
        assert_ne!(status, 405, "{method} {path}");
        assert!(
            !(status == 404 && body.contains("no such route")),
            "{method} {path} is documented but not routed"
        );
    }
    // Routes are only ever added through the OpenAPI router, so none can be missed.
    let http = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http");
    for entry in std::fs::read_dir(http).unwrap() {
        let path = entry.unwrap().path();
        let source = std::fs::read_to_string(&path).unwrap();
        assert!(
            !source.contains(".route("),
            "{} routes outside routes!()",
            path.display()
        );
    }
}

#[tokio::test]
async fn the_docs_ui_is_served_offline() {
    let app = spawn_app().await;

    let page = app.get("/docs").await;

    assert_eq!(page.status(), 200);
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(policy.contains("script-src 'self'"), "{policy}");
    let html = page.text().await.unwrap();
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "external resource"
    );
    for asset in [
        "/docs/swagger-ui-bundle.js",
        "/docs/swagger-ui.css",
        "/docs/init.js",
    ] {
        assert!(html.contains(asset));
        let r = app.get(asset).await;
        assert_eq!(r.status(), 200, "{asset}");
        let body = r.text().await.unwrap();
        assert!(!body.is_empty());
    }
    let init = app.get("/docs/init.js").await;
    assert!(init.text().await.unwrap().contains("/openapi.json"));
}
