//! The OpenAPI document (generated from the handlers' `#[utoipa::path]` annotations and
//! the request/response types' schemas) at `GET /openapi.json`, and Swagger UI at
//! `GET /docs`, served from assets compiled into the binary: no CDN, works offline.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::OpenApi as Spec;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::error::{ApiError, Problem};

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
async fn docs_asset(Path(name): Path<String>) -> Result<Response, ApiError> {
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
