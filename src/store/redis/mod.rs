//! Redis adapters: the [`AuthStore`](crate::store::AuthStore) (API keys, refresh tokens, revocations), the shared
//! [`SearchCache`], and the ingest statuses and counters the Kafka event log keeps here.
//! One [`Redis`] client (a `ConnectionManager` that reconnects by itself) serves them
//! all, every command through the backend's resilience guard.
//!
//! Keys (all under `redis.key_prefix`): `key:{id}` (JSON) and the set `keys`;
//! `refresh:{id}` (hash: `record`, `used`), expiring with the token; `revoked:{id}`,
//! expiring when the revocation may end; `status:{tenant}:{id}` (hash: `seq`, `body`);
//! `ingest:seq`, `ingest:pending`; `gen:{tenant}:{collection}` and `search:…` entries with
//! the cache TTL. Nothing on the request path scans keys.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, FromRedisValue, Pipeline};
use secrecy::{ExposeSecret, SecretString};

use crate::domain::ingest::{Event, IngestStatus, Outcome};
use crate::domain::principal::Tenant;
use crate::domain::unix_now;
use crate::store::cache::SearchCache;
use crate::store::resilient::{Resilience, Retry};
use crate::store::{ErrorKind, StoreError, StoreResult};

mod audit;
mod auth;
mod rate_limits;
mod statuses;

pub use audit::RedisAuditLog;
pub use auth::RedisAuthStore;
pub use rate_limits::RedisRateLimits;

/// A connection to one Redis server (or proxy), shared by every Redis-backed store.
#[derive(Clone)]
pub struct Redis {
    conn: ConnectionManager,
    guard: Arc<Resilience>,
    prefix: Arc<str>,
}

fn redis_err(e: redis::RedisError) -> StoreError {
    let kind = if e.is_timeout() {
        ErrorKind::Timeout
    } else if e.is_io_error()
        || e.is_connection_refusal()
        || e.is_connection_dropped()
        || e.is_unrecoverable_error()
    {
        ErrorKind::Unavailable
    } else {
        ErrorKind::Upstream
    };
    StoreError::new(kind, format!("redis: {e}"))
}

fn decode<T: serde::de::DeserializeOwned>(what: &str, bytes: &str) -> StoreResult<T> {
    serde_json::from_str(bytes)
        .map_err(|e| StoreError::internal(format!("redis: unreadable {what}: {e}")))
}

fn encode<T: serde::Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::internal(format!("redis: {e}")))
}

impl Redis {
    /// Connects lazily: the first command opens the connection, and a lost connection
    /// is reopened on the next one.
    pub fn connect(
        url: &SecretString,
        prefix: &str,
        guard: Arc<Resilience>,
        timeout: Duration,
    ) -> StoreResult<Self> {
        let client = redis::Client::open(url.expose_secret())
            .map_err(|e| StoreError::invalid(format!("redis.url: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            // Reconnection is retried by our own guard, with its backoff and breaker.
            .set_number_of_retries(1);
        let conn = ConnectionManager::new_lazy_with_config(client, config).map_err(redis_err)?;
        Ok(Self {
            conn,
            guard,
            prefix: prefix.into(),
        })
    }

    pub fn guard(&self) -> &Arc<Resilience> {
        &self.guard
    }

    fn key(&self, kind: &str, id: &str) -> String {
        format!("{}{kind}:{id}", self.prefix)
    }

    async fn query<T: FromRedisValue>(
        &self,
        op: &'static str,
        retry: Retry,
        cmd: &Cmd,
    ) -> StoreResult<T> {
        self.guard
            .run(op, retry, || {
                let mut conn = self.conn.clone();
                async move { cmd.query_async(&mut conn).await.map_err(redis_err) }
            })
            .await
    }

    async fn pipe<T: FromRedisValue>(
        &self,
        op: &'static str,
        retry: Retry,
        pipe: &Pipeline,
    ) -> StoreResult<T> {
        self.guard
            .run(op, retry, || {
                let mut conn = self.conn.clone();
                async move { pipe.query_async(&mut conn).await.map_err(redis_err) }
            })
            .await
    }

    pub async fn ping(&self) -> StoreResult<()> {
        let pong: String = self
            .query("ping", Retry::Idempotent, &redis::cmd("PING"))
            .await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(StoreError::upstream(format!(
                "redis: PING answered {pong:?}"
            )))
        }
    }
}

/// Search results shared by every replica.
pub struct RedisSearchCache {
    redis: Redis,
    ttl_secs: u64,
}

impl RedisSearchCache {
    pub fn new(redis: Redis, ttl: Duration) -> Self {
        Self {
            redis,
            ttl_secs: ttl.as_secs().max(1),
        }
    }

    fn generation_key(&self, tenant: &Tenant, collection: &str) -> String {
        self.redis.key("gen", &format!("{tenant}:{collection}"))
    }
}

#[async_trait]
impl SearchCache for RedisSearchCache {
    async fn generation(&self, tenant: &Tenant, collection: &str) -> StoreResult<u64> {
        let generation: Option<u64> = self
            .redis
            .query(
                "cache_generation",
                Retry::Idempotent,
                &Cmd::get(self.generation_key(tenant, collection)),
            )
            .await?;
        Ok(generation.unwrap_or(0))
    }

    async fn bump(&self, tenant: &Tenant, collection: &str) -> StoreResult<()> {
        // Retried: a lost reply may bump twice, which only skips a generation.
        let _: u64 = self
            .redis
            .query(
                "cache_bump",
                Retry::Idempotent,
                &Cmd::incr(self.generation_key(tenant, collection), 1),
            )
            .await?;
        Ok(())
    }

    async fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        let r = &self.redis;
        r.query(
            "cache_get",
            Retry::Once,
            &Cmd::get(format!("{}{key}", r.prefix)),
        )
        .await
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> StoreResult<()> {
        let r = &self.redis;
        r.query(
            "cache_put",
            Retry::Once,
            &Cmd::set_ex(format!("{}{key}", r.prefix), value, self.ttl_secs),
        )
        .await
    }

    async fn ping(&self) -> StoreResult<()> {
        self.redis.ping().await
    }
}

/// Applies outcomes only where the stored status still belongs to the outcome's event,
/// and lowers the pending count: `KEYS[1]` the count, `ARGV[1]` by how much; for each
/// status hash `KEYS[i]` (i ≥ 2), `ARGV[2i-2]` its event's seq and `ARGV[2i-1]` the new
/// body (empty: delete).
const COMPLETE_SCRIPT: &str = r"
for i = 2, #KEYS do
  local seq, body = ARGV[2 * i - 2], ARGV[2 * i - 1]
  if redis.call('HGET', KEYS[i], 'seq') == seq then
    if body == '' then
      redis.call('DEL', KEYS[i])
    else
      redis.call('HSET', KEYS[i], 'body', body)
    end
  end
end
return redis.call('DECRBY', KEYS[1], ARGV[1])
";

/// The ingest statuses and counters of the Kafka event log.
pub struct RedisIngestState {
    redis: Redis,
}

impl RedisIngestState {
    pub fn new(redis: Redis) -> Self {
        Self { redis }
    }

    pub fn redis(&self) -> &Redis {
        &self.redis
    }

    fn status_key(&self, tenant: &Tenant, id: &str) -> String {
        format!("{}{tenant}:{id}", self.status_key_prefix())
    }

    fn status_key_prefix(&self) -> String {
        self.redis.key("status", "")
    }

    fn pending_key(&self) -> String {
        format!("{}ingest:pending", self.redis.prefix)
    }

    /// Reserves `n` consecutive sequence numbers; returns the first.
    pub async fn reserve(&self, n: usize) -> StoreResult<u64> {
        let key = format!("{}ingest:seq", self.redis.prefix);
        let last: u64 = self
            .redis
            .query("ingest_reserve", Retry::Once, &Cmd::incr(key, n as u64))
            .await?;
        Ok(last + 1 - n as u64)
    }

    /// Marks each event's document pending under its sequence number.
    pub async fn mark_pending(&self, statuses: &[(&Event, IngestStatus)]) -> StoreResult<()> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (event, status) in statuses {
            pipe.hset_multiple(
                self.status_key(&event.tenant, &event.id),
                &[("seq", status.seq.to_string()), ("body", encode(status)?)],
            );
        }
        pipe.incr(self.pending_key(), statuses.len() as u64)
            .ignore();
        self.redis
            .pipe("ingest_mark_pending", Retry::Idempotent, &pipe)
            .await
    }

    /// Records a failure to enqueue: the events' statuses say so instead of `pending`.
    pub async fn unmark(&self, statuses: &[(&Event, IngestStatus)]) -> StoreResult<()> {
        let outcomes: Vec<Outcome> = statuses
            .iter()
            .map(|(event, status)| Outcome::Done {
                tenant: event.tenant.clone(),
                status: IngestStatus {
                    status: crate::domain::ingest::IngestState::Failed,
                    error: Some("the event could not be enqueued".into()),
                    ..status.clone()
                },
            })
            .collect();
        self.complete(outcomes, statuses.len()).await
    }

    /// Applies the outcomes atomically and lowers the pending count by `done`.
    pub async fn complete(&self, outcomes: Vec<Outcome>, done: usize) -> StoreResult<()> {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(COMPLETE_SCRIPT)
            .arg(outcomes.len() + 1)
            .arg(self.pending_key());
        let mut args = Vec::with_capacity(outcomes.len() * 2 + 1);
        args.push(done.to_string());
        for outcome in outcomes {
            match outcome {
                Outcome::Done { tenant, mut status } => {
                    cmd.arg(self.status_key(&tenant, &status.id));
                    status.updated_at = unix_now();
                    args.push(status.seq.to_string());
                    args.push(encode(&status)?);
                }
                Outcome::Deleted { tenant, id, seq } => {
                    cmd.arg(self.status_key(&tenant, &id));
                    args.push(seq.to_string());
                    args.push(String::new());
                }
            }
        }
        cmd.arg(args);
        let _: i64 = self
            .redis
            .query("ingest_complete", Retry::Once, &cmd)
            .await?;
        Ok(())
    }

    pub async fn status(&self, tenant: &Tenant, id: &str) -> StoreResult<Option<IngestStatus>> {
        let raw: Option<String> = self
            .redis
            .query(
                "ingest_status",
                Retry::Idempotent,
                &Cmd::hget(self.status_key(tenant, id), "body"),
            )
            .await?;
        raw.map(|s| decode("ingest status", &s)).transpose()
    }

    pub async fn pending(&self) -> StoreResult<u64> {
        let n: Option<i64> = self
            .redis
            .query(
                "ingest_pending",
                Retry::Idempotent,
                &Cmd::get(self.pending_key()),
            )
            .await?;
        Ok(n.unwrap_or(0).max(0) as u64)
    }
}
