//! Embeddings from any OpenAI-compatible `/v1/embeddings` endpoint (OpenAI, TEI,
//! Ollama, vLLM): inputs go in batches of `embedder.batch_size`, each request has a
//! timeout, and timeouts, connection errors, 429 and 5xx are retried with backoff.

use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::Embedder;
use crate::config::OpenAiEmbedderSettings;
use crate::store::{ErrorKind, StoreError, StoreResult};

pub struct OpenAiEmbedder {
    client: reqwest::Client,
    url: String,
    model: String,
    api_key: SecretString,
    dim: usize,
    batch_size: usize,
    max_retries: u32,
}

#[derive(Deserialize)]
struct EmbeddingResponse {
    data: Vec<EmbeddingItem>,
}

#[derive(Deserialize)]
struct EmbeddingItem {
    index: usize,
    embedding: Vec<f32>,
}

/// Maps a transport failure to the store error kinds that decide retry and status.
pub(crate) fn transport_error(what: &str, e: &reqwest::Error) -> StoreError {
    let kind = if e.is_timeout() {
        ErrorKind::Timeout
    } else if e.is_connect() {
        ErrorKind::Unavailable
    } else {
        ErrorKind::Upstream
    };
    StoreError::new(kind, format!("{what}: {e}"))
}

/// Which non-success statuses of an upstream API mean "not now" (`Unavailable`: retried,
/// and never the caller's fault) rather than "not this request" (`Upstream`).
#[derive(Clone, Copy)]
pub(crate) enum Outage {
    /// 429 and 503 only: a chat endpoint's other errors answer this request.
    Busy,
    /// 429 and every 5xx: an embedding endpoint that fails so is down, and ingest waits
    /// for it rather than failing the documents it was embedding.
    ServerErrors,
}

/// Maps a non-success HTTP status from an upstream API to a store error.
fn status_error(what: &str, status: reqwest::StatusCode, body: &str, outage: Outage) -> StoreError {
    let down = status == reqwest::StatusCode::TOO_MANY_REQUESTS
        || match outage {
            Outage::Busy => status == reqwest::StatusCode::SERVICE_UNAVAILABLE,
            Outage::ServerErrors => status.is_server_error(),
        };
    let kind = if down {
        ErrorKind::Unavailable
    } else {
        ErrorKind::Upstream
    };
    let body: String = body.chars().take(300).collect();
    StoreError::new(kind, format!("{what} answered {status}: {body}"))
}

/// POSTs `body` as JSON to an OpenAI-compatible endpoint (bearer key if non-empty);
/// transport failures and non-2xx answers become store errors naming `what`.
pub(crate) async fn post_json(
    client: &reqwest::Client,
    url: &str,
    api_key: &SecretString,
    body: &serde_json::Value,
    what: &str,
    outage: Outage,
) -> StoreResult<reqwest::Response> {
    let mut headers = reqwest::header::HeaderMap::new();
    crate::telemetry::inject_headers(&mut headers);
    let mut request = client.post(url).headers(headers).json(body);
    let key = api_key.expose_secret();
    if !key.is_empty() {
        request = request.bearer_auth(key);
    }
    let response = request
        .send()
        .await
        .map_err(|e| transport_error(what, &e))?;
    let status = response.status();
    if !status.is_success() {
        // Only its start goes into the error: read no more than that.
        let body = read_capped(response, 4096, what)
            .await
            .unwrap_or_else(|e| e.message.into_bytes());
        let body = String::from_utf8_lossy(&body);
        return Err(status_error(what, status, &body, outage));
    }
    Ok(response)
}

/// The response body, refused (an upstream error) once past `max` bytes: an endpoint
/// that misbehaves (or a base URL that points at something else) must not make the
/// server hold whatever it sends. A body cut short by `max` reads as the error.
pub(crate) async fn read_capped(
    mut response: reqwest::Response,
    max: usize,
    what: &str,
) -> StoreResult<Vec<u8>> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| transport_error(what, &e))?
    {
        if body.len() + chunk.len() > max {
            return Err(StoreError::new(
                ErrorKind::Upstream,
                format!("{what} sent a body of more than {max} bytes"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

pub(crate) fn http_client(timeout: Duration) -> StoreResult<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .build()
        .map_err(|e| StoreError::internal(format!("building the HTTP client: {e}")))
}

impl OpenAiEmbedder {
    pub fn new(settings: &OpenAiEmbedderSettings) -> StoreResult<Self> {
        Ok(Self {
            client: http_client(settings.timeout_ms.get())?,
            url: format!("{}/embeddings", settings.base_url.trim_end_matches('/')),
            model: settings.model.to_string(),
            api_key: settings.api_key.clone(),
            dim: settings.dim.get(),
            batch_size: settings.batch_size.get(),
            max_retries: settings.max_retries,
        })
    }

    async fn request(&self, batch: &[String]) -> StoreResult<Vec<Vec<f32>>> {
        let body = serde_json::json!({"model": self.model, "input": batch});
        let response = post_json(
            &self.client,
            &self.url,
            &self.api_key,
            &body,
            "embedding endpoint",
            Outage::ServerErrors,
        )
        .await?;
        // A float takes at most 24 bytes of JSON, with its comma.
        let max = batch.len() * self.dim * 24 + (64 << 10);
        let body = read_capped(response, max, "embedding endpoint").await?;
        let parsed: EmbeddingResponse = serde_json::from_slice(&body).map_err(|e| {
            StoreError::new(
                ErrorKind::Upstream,
                format!("embedding endpoint sent an unreadable body: {e}"),
            )
        })?;
        let vectors = in_order(parsed.data, batch.len())?;
        if let Some(bad) = vectors.iter().find(|v| v.len() != self.dim) {
            return Err(StoreError::new(
                ErrorKind::Upstream,
                format!(
                    "embedding endpoint returned {} dimensions; embedder.dim is {}",
                    bad.len(),
                    self.dim
                ),
            ));
        }
        vectors
            .into_iter()
            .map(normalized)
            .collect::<Option<_>>()
            .ok_or_else(|| {
                StoreError::new(
                    ErrorKind::Upstream,
                    "embedding endpoint returned a vector with a non-finite number",
                )
            })
    }

    async fn request_with_retry(&self, batch: &[String]) -> StoreResult<Vec<Vec<f32>>> {
        let mut attempt = 0;
        loop {
            match self.request(batch).await {
                Err(e)
                    if attempt < self.max_retries
                        && matches!(e.kind, ErrorKind::Timeout | ErrorKind::Unavailable) =>
                {
                    attempt += 1;
                    let cap = 100u64 << attempt.min(6);
                    let delay = rand::random_range(0..=cap);
                    tracing::warn!(error = %e, attempt, delay_ms = delay, "retrying embeddings");
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                }
                other => return other,
            }
        }
    }
}

/// The vectors in input order: the items sorted by `index`, which must be each of
/// `0..inputs` once (an endpoint may answer out of order, but a duplicate or a gap
/// would give some input another's vector).
fn in_order(mut items: Vec<EmbeddingItem>, inputs: usize) -> StoreResult<Vec<Vec<f32>>> {
    items.sort_by_key(|item| item.index);
    let complete =
        items.len() == inputs && items.iter().enumerate().all(|(i, item)| item.index == i);
    if !complete {
        let indexes: Vec<usize> = items.iter().map(|item| item.index).take(8).collect();
        return Err(StoreError::new(
            ErrorKind::Upstream,
            format!(
                "embedding endpoint returned {} vectors (indexes {indexes:?}…) for {inputs} inputs",
                items.len()
            ),
        ));
    }
    Ok(items.into_iter().map(|item| item.embedding).collect())
}

/// Scales to unit length, in `f64` so that no length overflows, so cosine and dot
/// products agree whatever the endpoint does; `None` for a vector with a component that
/// is not finite.
fn normalized(mut v: Vec<f32>) -> Option<Vec<f32>> {
    let norm = crate::domain::vector::squared_length(&v).sqrt();
    if !norm.is_finite() {
        return None;
    }
    if norm > 0.0 {
        v.iter_mut()
            .for_each(|x| *x = (f64::from(*x) / norm) as f32);
    }
    Some(v)
}

#[async_trait]
impl Embedder for OpenAiEmbedder {
    fn dim(&self) -> usize {
        self.dim
    }

    fn model(&self) -> &str {
        &self.model
    }

    async fn embed(&self, texts: Vec<String>) -> StoreResult<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(texts.len());
        for batch in texts.chunks(self.batch_size) {
            out.extend(self.request_with_retry(batch).await?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::{EmbeddingItem, in_order, normalized, read_capped};

    #[test]
    fn vectors_come_in_input_order_each_index_once() {
        let items = |indexes: &[usize]| -> Vec<EmbeddingItem> {
            let item = |&index: &usize| EmbeddingItem {
                index,
                embedding: vec![index as f32],
            };
            indexes.iter().map(item).collect()
        };
        assert_eq!(
            in_order(items(&[1, 0, 2]), 3).unwrap(),
            [[0.0], [1.0], [2.0]]
        );
        for bad in [&[0, 0][..], &[0, 2], &[0], &[0, 1, 2]] {
            assert!(in_order(items(bad), 2).is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn bodies_past_their_cap_are_refused() {
        let response = |n: usize| reqwest::Response::from(axum::http::Response::new(vec![b'x'; n]));
        assert_eq!(
            read_capped(response(100), 100, "t").await.unwrap().len(),
            100
        );
        let e = read_capped(response(101), 100, "t").await.unwrap_err();
        assert!(e.message.contains("more than 100 bytes"), "{e}");
    }

    #[test]
    fn vectors_are_scaled_to_unit_length_in_f64_and_non_finite_ones_refused() {
        assert_eq!(normalized(vec![3.0, 4.0]), Some(vec![0.6, 0.8]));
        assert_eq!(normalized(vec![0.0, 0.0]), Some(vec![0.0, 0.0]));
        // Squared in f32 these would overflow to inf and scale to zeros.
        assert_eq!(
            normalized(vec![3e38, 3e38]),
            Some(vec![0.70710677, 0.70710677])
        );
        assert_eq!(normalized(vec![f32::INFINITY, 1.0]), None);
        assert_eq!(normalized(vec![f32::NAN, 1.0]), None);
    }
}
