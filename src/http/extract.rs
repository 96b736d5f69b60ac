//! Extractors: `AppJson`, `AppPath` and `AppQuery` (bodies, path segments and query
//! strings whose rejections become problem responses) and the scope-checking principal
//! extractors `Reader`, `Writer` and `Admin`; and the `HeldJson` answer, which keeps its
//! room in the read budget until it has been sent.

use axum::body::{Body, Bytes};
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::domain::principal::{Principal, Scope};
use crate::http::error::ApiError;
use crate::http::ratelimit;
use crate::http::state::AppState;
use crate::services::auth::ANONYMOUS;
use crate::services::budget::Reserved;

/// `Json` with problem+json rejections: 400 bad syntax, 413 too large, 415 wrong content
/// type, 422 wrong shape.
pub struct AppJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for AppJson<T> {
    type Rejection = ApiError;

    /// A well-formed body is parsed once by plain `serde_json`; only a bad one goes
    /// through `axum::Json`, whose parser tracks the path to every value for the error
    /// message ("points[3].vector[7]: ..."). That tracking cost about a fifth of the
    /// server's CPU for a 10 x 384 upsert.
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !json_content_type(req.headers()) {
            return Err(json_rejection(JsonRejection::MissingJsonContentType(
                Default::default(),
            )));
        }
        if let Some(coding) = content_coding(req.headers()) {
            return Err(ApiError::UnsupportedMediaType(format!(
                "Content-Encoding {coding:?} is not supported; send the body uncompressed"
            )));
        }
        let body = Bytes::from_request(req, state)
            .await
            .map_err(|e| json_rejection(JsonRejection::BytesRejection(e)))?;
        match serde_json::from_slice(&body) {
            Ok(value) => Ok(AppJson(value)),
            Err(_) => match axum::Json::<T>::from_bytes(&body) {
                Ok(axum::Json(value)) => Ok(AppJson(value)),
                Err(rejection) => Err(json_rejection(rejection)),
            },
        }
    }
}

/// The body's `Content-Encoding`, unless absent or `identity`: bodies are read as
/// they arrive, so a compressed one would only fail to parse as JSON.
fn content_coding(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(axum::http::header::CONTENT_ENCODING)?;
    let coding = String::from_utf8_lossy(value.as_bytes()).trim().to_owned();
    (!coding.eq_ignore_ascii_case("identity")).then_some(coding)
}

/// `application/json`, or any `application/*+json`, parameters allowed: what
/// `axum::Json` accepts.
fn json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json")
            || subtype.len() > 5
                && subtype
                    .get(subtype.len() - 5..)
                    .is_some_and(|suffix| suffix.eq_ignore_ascii_case("+json")))
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    let text = rejection.body_text();
    match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::PayloadTooLarge("request body is too large".into())
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ApiError::UnsupportedMediaType("expected Content-Type: application/json".into())
        }
        StatusCode::UNPROCESSABLE_ENTITY => ApiError::Unprocessable(text),
        _ => ApiError::BadRequest(text),
    }
}

/// `Path` with problem+json rejections: a segment that is not valid UTF-8 after
/// percent-decoding, or does not parse as `T`, is 400.
pub struct AppPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for AppPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(AppPath(value)),
            Err(rejection) if rejection.status().is_server_error() => {
                Err(ApiError::Internal(rejection.body_text()))
            }
            Err(rejection) => Err(ApiError::BadRequest(rejection.body_text())),
        }
    }
}

/// `Query` with problem+json rejections: a query string that does not parse as `T`
/// (a wrong type, an unknown or repeated parameter) is 400.
pub struct AppQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for AppQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| AppQuery(value))
            .map_err(|rejection| ApiError::BadRequest(rejection.body_text()))
    }
}

impl<T: Serialize> IntoResponse for AppJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// A JSON answer that reserved room in the read budget (`services::budget`): the room
/// is given back once the body has been sent, or dropped with its connection, so a
/// client that reads slowly keeps its answer's memory counted.
pub struct HeldJson<T>(pub Reserved<T>);

impl<T: Serialize> IntoResponse for HeldJson<T> {
    fn into_response(self) -> Response {
        /// Sent a copied slice at a time: hyper asks for the next once the client has
        /// taken enough of the last, and the answer and its room go with the last slice
        /// (slices sharing the answer's allocation would keep all of it alive in hyper's
        /// queue after the room was given back).
        const SLICE: usize = 64 << 10;
        let Reserved { value, reservation } = self.0;
        if !reservation.is_held() {
            return AppJson(value).into_response();
        }
        let bytes = match serde_json::to_vec(&value) {
            Ok(bytes) => bytes,
            Err(e) => {
                return ApiError::Internal(format!("encoding an answer: {e}")).into_response();
            }
        };
        drop(value);
        let slices = futures_util::stream::unfold(
            (bytes, 0, reservation),
            |(answer, sent, held)| async move {
                if sent == answer.len() {
                    return None;
                }
                let end = answer.len().min(sent + SLICE);
                let slice = Bytes::copy_from_slice(&answer[sent..end]);
                Some((
                    Ok::<_, std::convert::Infallible>(slice),
                    (answer, end, held),
                ))
            },
        );
        let body = Body::from_stream(slices);
        ([(CONTENT_TYPE, "application/json")], body).into_response()
    }
}

/// Finds the caller from `Authorization: Bearer …` or `X-API-Key`, or the anonymous
/// principal when enabled and no credentials were sent.
async fn authenticate(parts: &Parts, state: &AppState) -> Result<Principal, ApiError> {
    let headers = &parts.headers;
    let bearer = headers.get(axum::http::header::AUTHORIZATION);
    let api_key = headers.get("x-api-key");
    let principal = match (bearer, api_key) {
        (Some(_), Some(_)) => {
            return Err(ApiError::BadRequest(
                "send either a bearer token or an API key, not both".into(),
            ));
        }
        (Some(value), None) => {
            let value = value
                .to_str()
                .map_err(|_| ApiError::Unauthorized("malformed Authorization header".into()))?;
            let token = value.strip_prefix("Bearer ").ok_or_else(|| {
                ApiError::Unauthorized("Authorization must use the Bearer scheme".into())
            })?;
            state.auth.authenticate_token(token.trim()).await?
        }
        (None, Some(value)) => {
            let key = value
                .to_str()
                .map_err(|_| ApiError::Unauthorized("malformed X-API-Key header".into()))?;
            state.auth.authenticate_key(key.trim()).await?
        }
        (None, None) => state.auth.anonymous().ok_or_else(|| {
            auth_failed(state, "missing_credentials");
            ApiError::Unauthorized("credentials required: a bearer token or X-API-Key".into())
        })?,
    };
    crate::context::record_principal(&principal.subject, principal.tenant.as_str());
    Ok(principal)
}

fn auth_failed(state: &AppState, reason: &str) {
    state
        .metrics
        .auth_failures_total
        .with_label_values(&[reason])
        .inc();
}

/// Authenticates, rate-limits and checks the scope, in that order. A failed
/// authentication also spends the client IP's `auth` quota, so guessing credentials on
/// any route is throttled like `POST /auth/token`.
async fn require(parts: &Parts, state: &AppState, scope: Scope) -> Result<Principal, ApiError> {
    let principal = match authenticate(parts, state).await {
        Ok(p) => p,
        Err(e) => {
            if matches!(e, ApiError::Unauthorized(_)) {
                ratelimit::enforce_credential_check(parts, state).await?;
            }
            return Err(e);
        }
    };
    ratelimit::enforce_for(
        parts,
        state,
        &principal.subject,
        principal.subject == ANONYMOUS,
    )
    .await?;
    if principal.allows(scope) {
        return Ok(principal);
    }
    auth_failed(state, "insufficient_scope");
    if principal.subject == ANONYMOUS {
        Err(ApiError::Unauthorized(format!(
            "this operation needs credentials with the {scope} scope"
        )))
    } else {
        Err(ApiError::Forbidden(format!(
            "this operation needs the {scope} scope"
        )))
    }
}

/// The raw bearer token of a request (for logout), after the IP-based credential limit.
pub struct BearerToken(pub String);

impl FromRequestParts<AppState> for BearerToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| t.trim().to_owned());
        match token {
            Some(t) if !t.is_empty() => Ok(BearerToken(t)),
            _ => {
                ratelimit::enforce_credential_check(parts, state).await?;
                auth_failed(state, "missing_credentials");
                Err(ApiError::Unauthorized(
                    "this operation needs a bearer token".into(),
                ))
            }
        }
    }
}

macro_rules! scoped_principal {
    ($(#[$doc:meta])* $name:ident, $scope:expr) => {
        $(#[$doc])*
        pub struct $name(pub Principal);

        impl FromRequestParts<AppState> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
                require(parts, state, $scope).await.map($name)
            }
        }
    };
}

scoped_principal!(
    /// A caller holding at least the `read` scope.
    Reader,
    Scope::Read
);
scoped_principal!(
    /// A caller holding at least the `write` scope.
    Writer,
    Scope::Write
);
scoped_principal!(
    /// A caller holding the `admin` scope.
    Admin,
    Scope::Admin
);

#[cfg(test)]
mod tests {
    use super::*;

    fn with(content_type: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            axum::http::header::CONTENT_TYPE,
            content_type.parse().unwrap(),
        );
        headers
    }

    #[test]
    fn json_content_types_are_those_axum_accepts() {
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "application/json;charset=utf-8",
            "Application/JSON",
            "application/cloudevents+json",
        ] {
            assert!(json_content_type(&with(ok)), "{ok}");
        }
        for bad in [
            "text/json",
            "application/jsonx",
            "application/+json",
            "json",
            "",
        ] {
            assert!(!json_content_type(&with(bad)), "{bad}");
        }
        assert!(!json_content_type(&HeaderMap::new()));
    }
}
