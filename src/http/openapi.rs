//! The OpenAPI document (generated from the handlers' `#[utoipa::path]` annotations and
//! the request/response types' schemas) at `GET /openapi.json`, and Swagger UI at
//! `GET /docs`, served from assets compiled into the binary: no CDN, works offline.
//! Also the rate-limit class each operation declares in its annotation.

use axum::Extension;
use axum::body::Bytes;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::OpenApi as Spec;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::domain::quota::Class;
use crate::http::error::{ApiError, Problem};
use crate::http::extract::AppPath;
use crate::http::ratelimit::{CLASS_EXTENSION, RouteClasses};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ragbrain",
        description = "Retrieval-augmented generation over vectors and a knowledge graph. \
            Authenticate with `X-API-Key: <key>` or `Authorization: Bearer <token>` from \
            `POST /auth/token`; each operation's security requirement names the scope it \
            needs (read < write < admin). Errors are RFC 9457 problem documents.",
        license(name = "Apache-2.0")
    ),
    modifiers(&SecuritySchemes),
    components(schemas(Problem)),
    tags(
        (name = "ingest", description = "Events in: chunked, embedded, linked into the graph"),
        (name = "vectors", description = "Collections and points"),
        (name = "graphs", description = "Nodes, relationships, traversal, read-only Cypher"),
        (name = "hybrid", description = "Fused vector + graph retrieval, and generation"),
        (name = "auth", description = "Tokens and API keys"),
        (name = "operations", description = "Health, metrics and this document")
    )
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, spec: &mut Spec) {
        let components = spec.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

/// The router of every documented route, and the document describing them. The
/// document is built from the same `routes!` calls that route, so neither can miss one.
pub fn api() -> OpenApiRouter<crate::http::state::AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(crate::http::vectors::router())
        .merge(crate::http::graphs::router())
        .merge(crate::http::ingest::router())
        .merge(crate::http::hybrid::router())
        .merge(crate::http::auth::router())
        .merge(crate::http::audit::router())
        .merge(crate::http::snapshots::router())
        .merge(crate::http::health::router())
        .merge(crate::http::metrics::router())
        .routes(routes!(docs_page))
        .routes(routes!(docs_asset))
        .routes(routes!(spec))
}

/// The serialised document, built once and shared by every request without copying.
#[derive(Clone)]
pub struct SpecJson(pub Bytes);

/// The OpenAPI 3.1 document of this API.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json")))]
async fn spec(Extension(spec): Extension<SpecJson>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], spec.0).into_response()
}

const DOCS_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'";

const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>ragbrain API</title>
  <link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/swagger-ui-bundle.js"></script>
  <script src="/docs/init.js"></script>
</body>
</html>
"#;

const INIT: &str = "window.ui = SwaggerUIBundle({ url: '/openapi.json', dom_id: '#swagger-ui', \
    deepLinking: true, persistAuthorization: false });\n";

fn asset(body: &'static [u8], content_type: &'static str) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(DOCS_POLICY),
    );
    response
}

/// Interactive API documentation (Swagger UI, bundled in the binary).
#[utoipa::path(get, path = "/docs", tag = "operations",
    responses((status = 200, description = "HTML page", content_type = "text/html")))]
async fn docs_page() -> Response {
    asset(PAGE.as_bytes(), "text/html; charset=utf-8")
}

/// The Swagger UI assets `/docs` loads.
#[utoipa::path(get, path = "/docs/{asset}", tag = "operations",
    params(("asset" = String, Path, description = "swagger-ui-bundle.js, swagger-ui.css or init.js")),
    responses((status = 200, description = "The asset"), (status = 404, description = "No such asset")))]
async fn docs_asset(AppPath(name): AppPath<String>) -> Result<Response, ApiError> {
    match name.as_str() {
        "swagger-ui-bundle.js" => Ok(asset(
            include_bytes!("../../assets/swagger-ui/swagger-ui-bundle.js"),
            "text/javascript; charset=utf-8",
        )),
        "swagger-ui.css" => Ok(asset(
            include_bytes!("../../assets/swagger-ui/swagger-ui.css"),
            "text/css; charset=utf-8",
        )),
        "init.js" => Ok(asset(INIT.as_bytes(), "text/javascript; charset=utf-8")),
        _ => Err(ApiError::NotFound(format!("no docs asset {name:?}"))),
    }
}

/// Every operation's declared rate-limit class (`x-rate-limit-class` in its
/// `#[utoipa::path]`), by method and route template.
pub fn route_classes(spec: &Spec) -> RouteClasses {
    let mut classes = RouteClasses::default();
    for (method, path, op) in operations(spec) {
        if let Some(class) = declared_class(op) {
            classes.insert(method, path, class);
        }
    }
    classes
}

/// Every operation of `spec` with its method and route template.
fn operations(spec: &Spec) -> impl Iterator<Item = (Method, String, &Operation)> {
    spec.paths.paths.iter().flat_map(|(path, item)| {
        [
            (Method::GET, &item.get),
            (Method::POST, &item.post),
            (Method::PUT, &item.put),
            (Method::DELETE, &item.delete),
            (Method::PATCH, &item.patch),
        ]
        .into_iter()
        .filter_map(move |(method, op)| Some((method, path.clone(), op.as_ref()?)))
    })
}

/// The class an operation declares, if it declares a known one.
fn declared_class(op: &Operation) -> Option<Class> {
    let value = op.extensions.as_ref()?.get(CLASS_EXTENSION)?.as_str()?;
    Class::ALL.into_iter().find(|c| c.as_str() == value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_fall_into_the_documented_classes() {
        let classes = route_classes(&api().split_for_parts().1);
        let cases = [
            (Method::POST, "/ingest", Class::Ingest),
            (Method::DELETE, "/ingest/{id}", Class::Ingest),
            (Method::GET, "/ingest/{id}", Class::Read),
            (Method::POST, "/vectors/upsert", Class::VectorWrite),
            (
                Method::PUT,
                "/vectors/collections/{name}",
                Class::VectorWrite,
            ),
            (Method::GET, "/vectors/collections/{name}", Class::Read),
            (Method::POST, "/vectors/search", Class::Search),
            (Method::POST, "/hybrid/search", Class::Search),
            (Method::POST, "/hybrid/generate", Class::Generate),
            (Method::POST, "/graphs/node", Class::GraphWrite),
            (Method::POST, "/graphs/node/find", Class::GraphRead),
            (Method::POST, "/auth/token", Class::Auth),
            (Method::GET, "/auth/api-keys", Class::Admin),
        ];
        for (method, route, class) in cases {
            assert_eq!(classes.get(&method, route), Some(class), "{method} {route}");
        }
    }

    /// A new route cannot miss its class: every operation that takes credentials
    /// declares a known one next to its path.
    #[test]
    fn every_authenticated_operation_declares_its_class() {
        let (_, spec) = api().split_for_parts();
        let mut checked = 0;
        for (method, path, op) in operations(&spec) {
            let authenticated = op.security.as_ref().is_some_and(|s| !s.is_empty());
            if authenticated || path.starts_with("/auth/") {
                assert!(
                    declared_class(op).is_some(),
                    "{method} {path} declares no known {CLASS_EXTENSION}"
                );
                checked += 1;
            }
        }
        assert!(checked >= 29, "only {checked} operations checked");
    }
}
