//! Client for an OpenAI-compatible chat endpoint (`POST <base_url>/chat/completions`),
//! used by `/hybrid/generate`: one answer, or a stream of text deltas parsed from the
//! endpoint's server-sent events.

use std::pin::Pin;

use futures_util::{Stream, StreamExt};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::config::LlmSettings;
use crate::embed::openai::{Outage, http_client, post_json, read_capped, transport_error};
use crate::store::{ErrorKind, StoreError, StoreResult};

pub struct ChatClient {
    client: reqwest::Client,
    url: String,
    model: String,
    api_key: SecretString,
    max_tokens: u32,
    temperature: f32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Message {
    pub role: &'static str,
    pub content: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Answer {
    pub text: String,
    pub model: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Completion {
    #[serde(default)]
    model: Option<String>,
    choices: Vec<Choice>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    message: Option<ChoiceMessage>,
    #[serde(default)]
    delta: Option<ChoiceMessage>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ChoiceMessage {
    #[serde(default)]
    content: Option<String>,
}

/// A piece of a streamed answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Delta {
    Text(String),
    Finished(Option<String>),
}

pub type DeltaStream = Pin<Box<dyn Stream<Item = StoreResult<Delta>> + Send>>;

const WHAT: &str = "LLM endpoint";

impl ChatClient {
    /// `None` when no endpoint is configured.
    pub fn from_settings(settings: &LlmSettings) -> StoreResult<Option<Self>> {
        if settings.base_url.is_empty() {
            return Ok(None);
        }
        Ok(Some(Self {
            client: http_client(settings.timeout_ms.get())?,
            url: format!(
                "{}/chat/completions",
                settings.base_url.trim_end_matches('/')
            ),
            model: settings.model.clone(),
            api_key: settings.api_key.clone(),
            max_tokens: settings.max_tokens,
            temperature: settings.temperature,
        }))
    }

    /// The most an answer may take, whole or streamed (bytes of the endpoint's JSON or
    /// events): 1 KiB a token (a streamed token's event takes a few hundred bytes) plus
    /// 1 MiB, so a bound on what a misbehaving endpoint can make the server hold, and
    /// never on an answer within `max_tokens`.
    fn max_answer_bytes(&self) -> usize {
        (1 << 20) + self.max_tokens as usize * 1024
    }

    async fn send(&self, messages: &[Message], stream: bool) -> StoreResult<reqwest::Response> {
        let body = serde_json::json!({
            "model": self.model,
            "messages": messages,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "stream": stream,
        });
        post_json(
            &self.client,
            &self.url,
            &self.api_key,
            &body,
            WHAT,
            Outage::Busy,
        )
        .await
    }

    pub async fn complete(&self, messages: &[Message]) -> StoreResult<Answer> {
        let response = self.send(messages, false).await?;
        let body = read_capped(response, self.max_answer_bytes(), WHAT).await?;
        let parsed: Completion = serde_json::from_slice(&body).map_err(|e| unreadable(&e))?;
        let choice = parsed.choices.into_iter().next();
        Ok(Answer {
            text: choice
                .as_ref()
                .and_then(|c| c.message.as_ref())
                .and_then(|m| m.content.clone())
                .unwrap_or_default(),
            finish_reason: choice.and_then(|c| c.finish_reason),
            model: parsed.model.unwrap_or_else(|| self.model.clone()),
        })
    }

    /// The answer as it is generated. Ends with [`Delta::Finished`].
    pub async fn stream(&self, messages: &[Message]) -> StoreResult<DeltaStream> {
        let response = self.send(messages, true).await?;
        let bytes = response.bytes_stream();
        let max = self.max_answer_bytes();
        let state = (bytes, String::new(), false, 0usize);
        Ok(Box::pin(futures_util::stream::unfold(
            state,
            move |(mut bytes, mut buffer, done, mut read)| async move {
                if done {
                    return None;
                }
                loop {
                    if let Some(pos) = buffer.find('\n') {
                        let line: String = buffer.drain(..=pos).collect();
                        match parse_line(line.trim_end()) {
                            Some(Ok(Delta::Finished(reason))) => {
                                let done = (bytes, buffer, true, read);
                                return Some((Ok(Delta::Finished(reason)), done));
                            }
                            Some(item) => return Some((item, (bytes, buffer, false, read))),
                            None => continue,
                        }
                    }
                    match bytes.next().await {
                        Some(Ok(chunk)) if read + chunk.len() > max => {
                            let e = StoreError::new(
                                ErrorKind::Upstream,
                                format!("{WHAT} streamed more than {max} bytes"),
                            );
                            return Some((Err(e), (bytes, buffer, true, read)));
                        }
                        Some(Ok(chunk)) => {
                            read += chunk.len();
                            buffer.push_str(&String::from_utf8_lossy(&chunk));
                        }
                        Some(Err(e)) => {
                            let e = transport_error(WHAT, &e);
                            return Some((Err(e), (bytes, buffer, true, read)));
                        }
                        None => {
                            return Some((Ok(Delta::Finished(None)), (bytes, buffer, true, read)));
                        }
                    }
                }
            },
        )))
    }
}

fn unreadable(e: &serde_json::Error) -> StoreError {
    StoreError::new(
        ErrorKind::Upstream,
        format!("{WHAT} sent an unreadable body: {e}"),
    )
}

/// One SSE line: `data: {json}` carries a delta, `data: [DONE]` ends; others are skipped.
fn parse_line(line: &str) -> Option<StoreResult<Delta>> {
    let data = line.strip_prefix("data:")?.trim_start();
    if data == "[DONE]" {
        return Some(Ok(Delta::Finished(None)));
    }
    let parsed: Completion = match serde_json::from_str(data) {
        Ok(p) => p,
        Err(e) => {
            return Some(Err(StoreError::new(
                ErrorKind::Upstream,
                format!("{WHAT} streamed an unreadable event: {e}"),
            )));
        }
    };
    let choice = parsed.choices.into_iter().next()?;
    if let Some(text) = choice
        .delta
        .and_then(|d| d.content)
        .filter(|t| !t.is_empty())
    {
        return Some(Ok(Delta::Text(text)));
    }
    choice.finish_reason.map(|r| Ok(Delta::Finished(Some(r))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_lines_become_deltas() {
        let text = r#"data: {"choices":[{"delta":{"content":"Hi"}}]}"#;
        assert_eq!(parse_line(text).unwrap().unwrap(), Delta::Text("Hi".into()));
        let stop = r#"data: {"choices":[{"delta":{},"finish_reason":"stop"}]}"#;
        assert_eq!(
            parse_line(stop).unwrap().unwrap(),
            Delta::Finished(Some("stop".into()))
        );
        assert_eq!(
            parse_line("data: [DONE]").unwrap().unwrap(),
            Delta::Finished(None)
        );
        assert!(parse_line(": keep-alive").is_none());
        assert!(parse_line("data: {oops").unwrap().is_err());
    }
}
