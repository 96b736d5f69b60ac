//! Copying the Kafka event log's ingest statuses out of Redis and into it (`ragbrain
//! migrate`): a `SCAN` over the `status:` keys, and the hashes written as they are.

use super::{RedisIngestState, decode, encode};
use crate::domain::ingest::IngestStatus;
use crate::domain::principal::Tenant;
use crate::store::resilient::Retry;
use crate::store::{StoreResult, TenantStatus};

/// `text` with the characters a `SCAN MATCH` pattern gives a meaning escaped.
fn glob_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl RedisIngestState {
    /// One `SCAN` step over the statuses (about `limit` keys); the cursor is Redis's.
    /// A key may come twice across steps (`SCAN`'s guarantee); importing it twice
    /// writes the same status.
    pub async fn export(
        &self,
        cursor: Option<String>,
        limit: usize,
    ) -> StoreResult<(Vec<TenantStatus>, Option<String>)> {
        let prefix = self.status_key_prefix();
        let mut scan = redis::cmd("SCAN");
        scan.arg(cursor.as_deref().unwrap_or("0"))
            .arg("MATCH")
            .arg(format!("{}*", glob_literal(&prefix)))
            .arg("COUNT")
            .arg(limit.max(1));
        let (next, keys): (String, Vec<String>) = self
            .redis
            .query("ingest_export", Retry::Idempotent, &scan)
            .await?;
        let mut out = Vec::with_capacity(keys.len());
        if !keys.is_empty() {
            let mut pipe = redis::pipe();
            for key in &keys {
                pipe.hget(key, "body");
            }
            let bodies: Vec<Option<String>> = self
                .redis
                .pipe("ingest_export", Retry::Idempotent, &pipe)
                .await?;
            for (key, body) in keys.iter().zip(bodies) {
                let tenant = key
                    .strip_prefix(prefix.as_str())
                    .and_then(|rest| rest.split_once(':'))
                    .and_then(|(tenant, _)| Tenant::parse(tenant));
                if let (Some(tenant), Some(body)) = (tenant, body) {
                    let status: IngestStatus = decode("ingest status", &body)?;
                    out.push(TenantStatus { tenant, status });
                }
            }
        }
        Ok((out, (next != "0").then_some(next)))
    }

    /// Writes the statuses as they are, in one atomic pipeline.
    pub async fn import(&self, statuses: Vec<TenantStatus>) -> StoreResult<()> {
        if statuses.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        for s in &statuses {
            pipe.hset_multiple(
                self.status_key(&s.tenant, &s.status.id),
                &[
                    ("seq", s.status.seq.to_string()),
                    ("body", encode(&s.status)?),
                ],
            )
            .ignore();
        }
        self.redis
            .pipe::<()>("ingest_import", Retry::Idempotent, &pipe)
            .await
    }
}
