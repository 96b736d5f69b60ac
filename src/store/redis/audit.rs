//! The audit trail in Redis: one capped stream shared by every replica.

use async_trait::async_trait;

use super::{Redis, decode, encode};
use crate::domain::audit::{AuditPage, AuditQuery, AuditRecord, MAX_SCAN};
use crate::store::resilient::Retry;
use crate::store::{StoreError, StoreResult};

/// The audit trail as one Redis stream (`<prefix>audit`): `XADD` with an approximate
/// length cap, read newest first with `XREVRANGE`, trimmed by age with `XTRIM MINID`.
/// Stream ids are time-ordered, so they are the paging cursor.
pub struct RedisAuditLog {
    redis: Redis,
    max_records: u64,
}

impl RedisAuditLog {
    pub fn new(redis: Redis, max_records: u64) -> Self {
        Self { redis, max_records }
    }

    fn stream(&self) -> String {
        format!("{}audit", self.redis.prefix)
    }
}

/// Stream entries read per round trip while filtering.
const AUDIT_PAGE: usize = 256;
/// How far a record's stream id may be from its `time_ms` (the audit queue's delay).
const ID_MARGIN_MS: u64 = 60_000;

#[async_trait]
impl crate::store::AuditLog for RedisAuditLog {
    async fn append(&self, records: Vec<AuditRecord>) -> StoreResult<()> {
        let mut pipe = redis::pipe();
        for r in &records {
            pipe.cmd("XADD")
                .arg(self.stream())
                .arg("MAXLEN")
                .arg("~")
                .arg(self.max_records)
                .arg("*")
                .arg("r")
                .arg(encode(r)?)
                .ignore();
        }
        // Not retried: a retry after a lost answer would write the records twice.
        self.redis.pipe("audit_append", Retry::Once, &pipe).await
    }

    async fn query(&self, query: AuditQuery) -> StoreResult<AuditPage> {
        // Stream ids carry the time Redis added the record, a little after its
        // `time_ms`: the id range is widened by a margin and the times filtered exactly.
        let start = query.since_ms.map_or_else(
            || "-".to_owned(),
            |s| format!("{}-0", s.saturating_sub(ID_MARGIN_MS)),
        );
        let mut end = match (&query.before, query.until_ms) {
            (Some(cursor), _) => format!("({}", stream_id(cursor)?),
            (None, Some(u)) => format!("{}-18446744073709551615", u.saturating_add(ID_MARGIN_MS)),
            (None, None) => "+".to_owned(),
        };
        let mut records = Vec::new();
        let mut scanned = 0;
        loop {
            let cmd = redis::cmd("XREVRANGE")
                .arg(self.stream())
                .arg(&end)
                .arg(&start)
                .arg("COUNT")
                .arg(AUDIT_PAGE)
                .clone();
            let rows: Vec<(String, Vec<(String, String)>)> = self
                .redis
                .query("audit_query", Retry::Idempotent, &cmd)
                .await?;
            let full = rows.len() == AUDIT_PAGE;
            scanned += rows.len();
            let mut last = None;
            for (id, fields) in rows {
                end = format!("({id}");
                last = Some(id.clone());
                let Some((_, body)) = fields.into_iter().find(|(k, _)| k == "r") else {
                    continue;
                };
                let mut r: AuditRecord = decode("audit record", &body)?;
                if query.matches(&r) {
                    r.id = id;
                    if records.len() == query.limit {
                        let next = records.last().map(|l: &AuditRecord| l.id.clone());
                        return Ok(AuditPage { records, next });
                    }
                    records.push(r);
                }
            }
            if !full {
                return Ok(AuditPage {
                    records,
                    next: None,
                });
            }
            if scanned >= MAX_SCAN {
                return Ok(AuditPage {
                    records,
                    next: last,
                });
            }
        }
    }

    async fn trim(&self, before_ms: u64, max_records: u64) -> StoreResult<()> {
        let mut pipe = redis::pipe();
        pipe.cmd("XTRIM")
            .arg(self.stream())
            .arg("MINID")
            .arg(format!("{before_ms}-0"))
            .ignore()
            .cmd("XTRIM")
            .arg(self.stream())
            .arg("MAXLEN")
            .arg(max_records)
            .ignore();
        self.redis
            .pipe("audit_trim", Retry::Idempotent, &pipe)
            .await
    }

    async fn ping(&self) -> StoreResult<()> {
        self.redis.ping().await
    }
}

/// `cursor` if it is a stream id (`<ms>-<seq>`), as this store's cursors are; anything
/// else is the caller's mistake, not Redis's to refuse.
fn stream_id(cursor: &str) -> StoreResult<&str> {
    let number = |n: &str| {
        !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && n.parse::<u64>().is_ok()
    };
    match cursor.split_once('-') {
        Some((ms, seq)) if number(ms) && number(seq) => Ok(cursor),
        _ => Err(StoreError::invalid(
            "before is not a cursor this server gave",
        )),
    }
}
