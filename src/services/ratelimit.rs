//! Rate limits: one GCRA limiter (`governor`) per route class, keyed by principal (or by
//! client IP for anonymous callers and for credential checks), with per-class quotas
//! from `[rate_limit]`. Decisions carry what the `RateLimit-*` headers report.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use crate::config::RateLimitSettings;
pub use crate::domain::quota::{Class, Decision};

type Keyed =
    RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

struct Limiter {
    class: Class,
    keyed: Keyed,
    burst: u32,
    interval: Duration,
}

pub struct RateLimits {
    limiters: Vec<Limiter>,
    clock: DefaultClock,
    checks: AtomicU64,
}

/// Keys idle long enough to be full again are forgotten every this many checks, so
/// memory stays bounded by the callers active in the last minutes.
const SWEEP_EVERY: u64 = 4096;

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl RateLimits {
    /// `None` when rate limiting is disabled.
    pub fn new(settings: &RateLimitSettings) -> Option<Self> {
        if !settings.enabled {
            return None;
        }
        let limiters = Class::ALL
            .iter()
            .map(|&class| {
                let q = settings.quota(class);
                let per_minute = NonZeroU32::new(q.per_minute).unwrap_or(NonZeroU32::MIN);
                let burst = NonZeroU32::new(q.burst).unwrap_or(NonZeroU32::MIN);
                let quota = Quota::per_minute(per_minute).allow_burst(burst);
                Limiter {
                    class,
                    keyed: RateLimiter::dashmap(quota).with_middleware(),
                    burst: burst.get(),
                    interval: quota.replenish_interval(),
                }
            })
            .collect();
        Some(Self {
            limiters,
            clock: DefaultClock::default(),
            checks: AtomicU64::new(0),
        })
    }

    /// Takes one request from `key`'s quota in `class`.
    pub fn check(&self, class: Class, key: &str) -> Decision {
        let limiter = self
            .limiters
            .iter()
            .find(|l| l.class == class)
            .expect("a limiter for every class");
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            for l in &self.limiters {
                l.keyed.retain_recent();
                l.keyed.shrink_to_fit();
            }
        }
        let missing =
            |remaining: u32| limiter.interval * (limiter.burst - remaining.min(limiter.burst));
        match limiter.keyed.check_key(&key.to_owned()) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                Decision {
                    class,
                    limit: limiter.burst,
                    remaining,
                    reset_secs: ceil_secs(missing(remaining)),
                    retry_after_secs: None,
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                Decision {
                    class,
                    limit: limiter.burst,
                    remaining: 0,
                    reset_secs: ceil_secs(missing(0)),
                    retry_after_secs: Some(ceil_secs(wait).max(1)),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::QuotaSettings;

    fn settings(per_minute: u32, burst: u32) -> RateLimitSettings {
        let q = QuotaSettings { per_minute, burst };
        RateLimitSettings {
            enabled: true,
            trust_forwarded_for: false,
            ingest: q,
            vector_write: q,
            graph_write: q,
            generate: q,
            search: q,
            graph_read: q,
            read: q,
            admin: q,
            auth: q,
        }
    }

    #[test]
    fn the_burst_is_spent_then_refused_with_a_wait() {
        let limits = RateLimits::new(&settings(6, 3)).unwrap();
        let remaining: Vec<u32> = (0..3)
            .map(|_| limits.check(Class::Ingest, "k").remaining)
            .collect();
        assert_eq!(remaining, [2, 1, 0]);
        let refused = limits.check(Class::Ingest, "k");
        let wait = refused.retry_after_secs.expect("refused");
        assert!((1..=10).contains(&wait), "one cell per 10 s, waited {wait}");
        assert_eq!(refused.reset_secs, 30);
        // Other keys and other classes have their own buckets.
        assert_eq!(limits.check(Class::Ingest, "other").remaining, 2);
        assert_eq!(limits.check(Class::Search, "k").remaining, 2);
    }

    #[test]
    fn disabled_limits_build_nothing() {
        let mut s = settings(1, 1);
        s.enabled = false;
        assert!(RateLimits::new(&s).is_none());
    }
}
