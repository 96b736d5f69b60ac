//! Rate limits: one GCRA limiter per route class, keyed by principal (or by client IP for
//! anonymous callers and for credential checks), with per-class quotas from
//! `[rate_limit]`. Buckets live in this server's memory (`governor`), or in a
//! [`RateLimitStore`] every replica shares; when that store fails, the server falls
//! back to its own buckets (counted in `rate_limit_fallback_total`), so a Redis outage
//! neither lifts the limits nor refuses every request. Decisions carry what the
//! `RateLimit-*` headers report.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use crate::config::RateLimitSettings;
pub use crate::domain::quota::{Class, Decision};
use crate::metrics::Metrics;
use crate::store::{RateLimitStore, Taken};

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
    /// Buckets shared by every replica, when configured.
    shared: Option<Arc<dyn RateLimitStore>>,
    metrics: Arc<Metrics>,
    /// Milliseconds since `started` of the last fallback warning (one per 10 s).
    warned_ms: AtomicU64,
    started: std::time::Instant,
}

/// Keys idle long enough to be full again are forgotten every this many checks, so
/// memory stays bounded by the callers active in the last minutes.
const SWEEP_EVERY: u64 = 4096;

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl RateLimits {
    /// `None` when rate limiting is disabled.
    pub fn new(
        settings: &RateLimitSettings,
        shared: Option<Arc<dyn RateLimitStore>>,
        metrics: Arc<Metrics>,
    ) -> Option<Self> {
        if !settings.enabled {
            return None;
        }
        let limiters = Class::ALL
            .iter()
            .map(|&class| {
                let q = settings.quotas.get(class);
                let quota = Quota::per_minute(q.per_minute).allow_burst(q.burst);
                Limiter {
                    class,
                    keyed: RateLimiter::dashmap(quota).with_middleware(),
                    burst: q.burst.get(),
                    interval: quota.replenish_interval(),
                }
            })
            .collect();
        Some(Self {
            limiters,
            clock: DefaultClock::default(),
            checks: AtomicU64::new(0),
            shared,
            metrics,
            warned_ms: AtomicU64::new(0),
            started: std::time::Instant::now(),
        })
    }

    fn limiter(&self, class: Class) -> &Limiter {
        self.limiters
            .iter()
            .find(|l| l.class == class)
            .expect("a limiter for every class")
    }

    /// Takes one request from `key`'s quota in `class`: from the shared bucket when
    /// there is one and it answers, else from this server's.
    pub async fn check(&self, class: Class, key: &str) -> Decision {
        if let Some(shared) = &self.shared {
            let limiter = self.limiter(class);
            let bucket = format!("{}:{key}", class.as_str());
            match shared.take(&bucket, limiter.interval, limiter.burst).await {
                Ok(taken) => return decision(class, limiter.burst, taken),
                Err(e) => self.fell_back(class, &e),
            }
        }
        self.check_local(class, key)
    }

    fn fell_back(&self, class: Class, e: &crate::store::StoreError) {
        self.metrics
            .rate_limit_fallback_total
            .with_label_values(&[class.as_str()])
            .inc();
        let now = self.started.elapsed().as_millis() as u64;
        let last = self.warned_ms.load(Ordering::Relaxed);
        if (last == 0 || now.saturating_sub(last) >= 10_000)
            && self
                .warned_ms
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(error = %e, "shared rate limits unavailable; this server counts alone");
        }
    }

    /// Takes one request from this server's own bucket.
    fn check_local(&self, class: Class, key: &str) -> Decision {
        let limiter = self.limiter(class);
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

fn decision(class: Class, limit: u32, taken: Taken) -> Decision {
    Decision {
        class,
        limit,
        remaining: taken.remaining.min(limit),
        reset_secs: ceil_secs(taken.reset),
        retry_after_secs: (!taken.allowed).then(|| ceil_secs(taken.retry_after).max(1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroU32;

    use crate::config::{QuotaSettings, Quotas};

    fn settings(per_minute: u32, burst: u32) -> RateLimitSettings {
        let nonzero = |n| NonZeroU32::new(n).expect("a test quota is not 0");
        RateLimitSettings {
            enabled: true,
            backend: crate::config::RateLimitBackend::Memory,
            trust_forwarded_for: false,
            quotas: Quotas::all(QuotaSettings {
                per_minute: nonzero(per_minute),
                burst: nonzero(burst),
            }),
        }
    }

    fn local(settings: &RateLimitSettings) -> Option<RateLimits> {
        RateLimits::new(settings, None, Arc::new(Metrics::new()))
    }

    #[test]
    fn the_burst_is_spent_then_refused_with_a_wait() {
        let limits = local(&settings(6, 3)).unwrap();
        let remaining: Vec<u32> = (0..3)
            .map(|_| limits.check_local(Class::Ingest, "k").remaining)
            .collect();
        assert_eq!(remaining, [2, 1, 0]);
        let refused = limits.check_local(Class::Ingest, "k");
        let wait = refused.retry_after_secs.expect("refused");
        assert!((1..=10).contains(&wait), "one cell per 10 s, waited {wait}");
        assert_eq!(refused.reset_secs, 30);
        // Other keys and other classes have their own buckets.
        assert_eq!(limits.check_local(Class::Ingest, "other").remaining, 2);
        assert_eq!(limits.check_local(Class::Search, "k").remaining, 2);
    }

    #[test]
    fn disabled_limits_build_nothing() {
        let mut s = settings(1, 1);
        s.enabled = false;
        assert!(local(&s).is_none());
    }
}
