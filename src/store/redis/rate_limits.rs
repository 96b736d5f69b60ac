//! Rate-limit buckets in Redis, shared by every replica.

use std::time::Duration;

use async_trait::async_trait;

use super::Redis;
use crate::store::StoreResult;
use crate::store::resilient::Retry;

/// Rate-limit buckets in Redis, one key per caller and class, shared by every replica.
pub struct RedisRateLimits {
    redis: Redis,
}

impl RedisRateLimits {
    pub fn new(redis: Redis) -> Self {
        Self { redis }
    }
}

/// GCRA on Redis's own clock (so replicas with skewed clocks agree): `KEYS[1]` holds the
/// theoretical arrival time in microseconds, `ARGV[1]` the interval per request and
/// `ARGV[2]` the burst. Returns {allowed, remaining, reset_us, retry_after_us}. One
/// script, so concurrent checks from every replica never race.
const GCRA_SCRIPT: &str = r"
local now = redis.call('TIME')
now = tonumber(now[1]) * 1000000 + tonumber(now[2])
local interval, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or now), now)
local next_tat = tat + interval
local allow_at = next_tat - interval * burst
if allow_at > now then
  return {0, 0, tat - now, allow_at - now}
end
redis.call('SET', KEYS[1], string.format('%d', next_tat), 'PX', math.ceil((next_tat - now) / 1000) + 1)
return {1, math.floor((now - allow_at) / interval), next_tat - now, 0}
";

#[async_trait]
impl crate::store::RateLimitStore for RedisRateLimits {
    async fn take(
        &self,
        key: &str,
        interval: Duration,
        burst: u32,
    ) -> StoreResult<crate::store::Taken> {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(GCRA_SCRIPT)
            .arg(1)
            .arg(self.redis.key("rl", key))
            .arg(interval.as_micros().max(1) as u64)
            .arg(burst.max(1));
        // Never retried: a retry would take a second request from the bucket.
        let (allowed, remaining, reset, retry_after): (i64, i64, i64, i64) =
            self.redis.query("rate_limit", Retry::Once, &cmd).await?;
        let micros = |us: i64| Duration::from_micros(us.max(0) as u64);
        Ok(crate::store::Taken {
            allowed: allowed == 1,
            remaining: remaining.clamp(0, i64::from(u32::MAX)) as u32,
            reset: micros(reset),
            retry_after: micros(retry_after),
        })
    }
}
