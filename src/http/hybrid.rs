//! `/hybrid/*` handlers: fused vector + graph search, and generation over it (JSON, or
//! server-sent events when `stream` is true).

use std::convert::Infallible;

use crate::http::problems::{BodyErrors, GenerateErrors};
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::error::Result;
use crate::http::extract::{AppJson, HeldJson, Reader};
use crate::http::state::AppState;
use crate::llm::Delta;
use crate::services::generate::{self, GenerateRequest, Generated};
use crate::services::hybrid::{HybridRequest, HybridResponse};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(search))
        .routes(routes!(generate))
}

#[utoipa::path(post, path = "/hybrid/search", extensions(("x-rate-limit-class" = json!("search"))), tag = "hybrid", request_body = HybridRequest,
    responses((status = 200, description = "Fused hits with vector and graph provenance",
        body = HybridResponse), BodyErrors),
    security(("bearer" = ["read"]), ("api_key" = ["read"])))]
async fn search(
    State(state): State<AppState>,
    Reader(who): Reader,
    AppJson(req): AppJson<HybridRequest>,
) -> Result<HeldJson<HybridResponse>> {
    Ok(HeldJson(state.hybrid.search(&who, req).await?))
}

#[utoipa::path(post, path = "/hybrid/generate", extensions(("x-rate-limit-class" = json!("generate"))), tag = "hybrid", request_body = GenerateRequest,
    responses((status = 200, description = "The answer with citations; with `stream: true`, \
        server-sent events `citations`, `delta`..., then `done` or `error`",
        body = generate::GenerateResponse), GenerateErrors),
    security(("bearer" = ["read"]), ("api_key" = ["read"])))]
/// Streams as `citations` (once), `delta` (`{"text"}`, repeated), then `done`
/// (`{"finish_reason"}`) or `error` (`{"detail"}`) if the model fails mid-answer.
async fn generate(
    State(state): State<AppState>,
    Reader(who): Reader,
    AppJson(req): AppJson<GenerateRequest>,
) -> Result<Response> {
    match state.generate.generate(&who, req).await? {
        Generated::Whole(answer) => Ok(AppJson(answer).into_response()),
        Generated::Stream { citations, deltas } => {
            let first = Event::default()
                .event("citations")
                .json_data(serde_json::json!({ "citations": citations }));
            let rest = deltas.map(|delta| {
                let event = match delta {
                    Ok(Delta::Text(text)) => Event::default()
                        .event("delta")
                        .json_data(serde_json::json!({ "text": text })),
                    Ok(Delta::Finished(reason)) => Event::default()
                        .event("done")
                        .json_data(serde_json::json!({ "finish_reason": reason })),
                    Err(e) => {
                        tracing::error!(error = %e, "LLM stream failed");
                        Event::default().event("error").json_data(
                            serde_json::json!({ "detail": "the language model failed mid-answer" }),
                        )
                    }
                };
                Ok::<_, Infallible>(event.unwrap_or_default())
            });
            let events = futures_util::stream::once(async move {
                Ok::<_, Infallible>(first.unwrap_or_default())
            })
            .chain(rest);
            Ok(Sse::new(events)
                .keep_alive(KeepAlive::default())
                .into_response())
        }
    }
}
