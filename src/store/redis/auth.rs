//! API keys, refresh tokens and revocations in Redis, shared by every replica (the key
//! layout is in the parent module's comment).

use async_trait::async_trait;
use redis::Cmd;

use super::{Redis, decode, encode, redis_err};
use crate::domain::unix_now;
use crate::store::resilient::Retry;
use crate::store::{ApiKeyRecord, AuthStore, RefreshRecord, StoreResult, TokenState};

/// API keys, refresh tokens and revocations, shared by every replica.
pub struct RedisAuthStore {
    redis: Redis,
}

impl RedisAuthStore {
    pub fn new(redis: Redis) -> Self {
        Self { redis }
    }
}

#[async_trait]
impl AuthStore for RedisAuthStore {
    async fn insert_key(&self, record: ApiKeyRecord) -> StoreResult<()> {
        let r = &self.redis;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .set(r.key("key", &record.id), encode(&record)?)
            .sadd(format!("{}keys", r.prefix), &record.id);
        r.pipe("insert_key", Retry::Idempotent, &pipe).await
    }

    async fn get_key(&self, id: &str) -> StoreResult<Option<ApiKeyRecord>> {
        let r = &self.redis;
        let raw: Option<String> = r
            .query("get_key", Retry::Idempotent, &Cmd::get(r.key("key", id)))
            .await?;
        raw.map(|s| decode("API key", &s)).transpose()
    }

    async fn list_keys(&self, tenant: Option<&str>) -> StoreResult<Vec<ApiKeyRecord>> {
        let r = &self.redis;
        let ids: Vec<String> = r
            .query(
                "list_keys",
                Retry::Idempotent,
                &Cmd::smembers(format!("{}keys", r.prefix)),
            )
            .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| r.key("key", id)).collect();
        let raw: Vec<Option<String>> = r
            .query("list_keys", Retry::Idempotent, &Cmd::mget(keys))
            .await?;
        let mut records = raw
            .into_iter()
            .flatten()
            .map(|s| decode::<ApiKeyRecord>("API key", &s))
            .filter(|k| !matches!((k, tenant), (Ok(k), Some(t)) if k.tenant != t))
            .collect::<StoreResult<Vec<_>>>()?;
        records.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(records)
    }

    async fn delete_key(&self, id: &str) -> StoreResult<bool> {
        let r = &self.redis;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .del(r.key("key", id))
            .srem(format!("{}keys", r.prefix), id);
        let (deleted, _): (u32, u32) = r.pipe("delete_key", Retry::Once, &pipe).await?;
        Ok(deleted > 0)
    }

    async fn count_keys(&self) -> StoreResult<u64> {
        let r = &self.redis;
        r.query(
            "count_keys",
            Retry::Idempotent,
            &Cmd::scard(format!("{}keys", r.prefix)),
        )
        .await
    }

    async fn insert_refresh(&self, record: RefreshRecord) -> StoreResult<()> {
        // One hash per token (`record`, and `used` once spent), expiring with the token,
        // so the spent mark lives exactly as long as the token could be replayed.
        let r = &self.redis;
        let key = r.key("refresh", &record.id);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hset(&key, "record", encode(&record)?)
            .ignore()
            .expire_at(&key, record.expires_at.max(unix_now() + 1) as i64)
            .ignore();
        r.pipe("insert_refresh", Retry::Idempotent, &pipe).await
    }

    async fn get_refresh(&self, id: &str) -> StoreResult<Option<RefreshRecord>> {
        let r = &self.redis;
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(r.key("refresh", id)).arg("record").arg("used");
        let (raw, used): (Option<String>, Option<String>) =
            r.query("get_refresh", Retry::Idempotent, &cmd).await?;
        let Some(raw) = raw else { return Ok(None) };
        let mut record: RefreshRecord = decode("refresh token", &raw)?;
        record.used |= used.is_some();
        Ok(Some(record))
    }

    async fn use_refresh(&self, id: &str) -> StoreResult<bool> {
        // The atomic test-and-set, only on a token that still exists; never retried,
        // since a second attempt would see its own mark and report a replay.
        let r = &self.redis;
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(USE_REFRESH_SCRIPT).arg(1).arg(r.key("refresh", id));
        let first: i64 = r.query("use_refresh", Retry::Once, &cmd).await?;
        Ok(first == 1)
    }

    async fn revoke(&self, id: &str, until: u64) -> StoreResult<()> {
        let r = &self.redis;
        let mut cmd = Cmd::set(r.key("revoked", id), 1);
        cmd.arg("EXAT").arg(until.max(unix_now() + 1));
        r.query("revoke", Retry::Idempotent, &cmd).await
    }

    async fn is_revoked(&self, id: &str) -> StoreResult<bool> {
        let r = &self.redis;
        r.query(
            "is_revoked",
            Retry::Idempotent,
            &Cmd::exists(r.key("revoked", id)),
        )
        .await
    }

    async fn token_state(&self, ids: &[String], key_id: Option<&str>) -> StoreResult<TokenState> {
        if ids.is_empty() && key_id.is_none() {
            return Ok(TokenState {
                revoked: false,
                key: None,
            });
        }
        let r = &self.redis;
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.exists(r.key("revoked", id));
        }
        if let Some(id) = key_id {
            pipe.get(r.key("key", id));
        }
        let mut replies: Vec<redis::Value> =
            r.pipe("token_state", Retry::Idempotent, &pipe).await?;
        let key_reply = key_id.and_then(|_| replies.pop());
        let parsed = |e: redis::ParsingError| redis_err(e.into());
        for reply in replies {
            if redis::from_redis_value::<bool>(reply).map_err(parsed)? {
                return Ok(TokenState {
                    revoked: true,
                    key: None,
                });
            }
        }
        let raw: Option<String> = match key_reply {
            Some(reply) => redis::from_redis_value(reply).map_err(parsed)?,
            None => None,
        };
        let key = raw.map(|raw| decode("API key", &raw)).transpose()?;
        Ok(TokenState {
            revoked: false,
            key,
        })
    }

    async fn purge_expired(&self, _now: u64) -> StoreResult<()> {
        // Every refresh token and revocation carries its own expiry in Redis.
        Ok(())
    }

    async fn ping(&self) -> StoreResult<()> {
        self.redis.ping().await
    }
}

/// Marks a refresh token spent: 1 the first time, 0 when it already was (or is gone).
const USE_REFRESH_SCRIPT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
return redis.call('HSETNX', KEYS[1], 'used', 1)
";
