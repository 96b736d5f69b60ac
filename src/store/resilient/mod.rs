//! The one resilience layer every production adapter call goes through: a timeout per
//! attempt, retries with exponential backoff and full jitter (idempotent operations
//! only), and a circuit breaker per backend (closed → open after N consecutive failures
//! → one half-open probe after a cool-down). Each call is counted in the `backend_*`
//! metrics and the breaker's state in `circuit_breaker_state`.
//!
//! Only infrastructure failures (timeouts, unreachable or unavailable backends) count
//! against the breaker and are retried; a backend that answers "not found" or "invalid"
//! is healthy. A write that lost a race with another (a deadlock the server reports) is
//! retried too, with a budget of its own: see [`LOST_RACE_ATTEMPTS`]. Time is
//! `tokio::time`, so the state machine is tested with paused time.

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder, Retryable};
use prometheus::{HistogramVec, IntCounterVec, IntGauge};
use tokio::time::Instant;
use tracing::Instrument;

use crate::config::ResilienceSettings;
use crate::metrics::Metrics;
use crate::store::{ErrorKind, StoreError, StoreResult};

/// Attempts an idempotent call gets while the backend keeps answering that it lost a race
/// with another writer ([`ErrorKind::Busy`]: a deadlock, a lock conflict), whatever
/// `max_attempts` says. A healthy server under write contention answers so often: with
/// three attempts, one of sixteen writers linking nodes to one hub on the Bolt test
/// server once lost three races in a row and failed a request that a later attempt
/// would have written. Neo4j's own drivers retry these errors for up to 30 s; here the
/// ten attempts (at the defaults at most 5.6 s of backoff, 2.8 s on average) and the
/// request deadline bound the wait. Outages still get only `max_attempts`.
pub const LOST_RACE_ATTEMPTS: u32 = 10;

/// Whether an operation may run twice with the same effect as once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    Idempotent,
    /// Not idempotent (a second run after a first that took effect answers otherwise),
    /// but retried after a lost race ([`ErrorKind::Busy`]): the backend rolled that
    /// attempt's transaction back, so it took no effect.
    LostRaces,
    Once,
}

/// What the breaker reports, as exported in `circuit_breaker_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed = 0,
    Open = 1,
    HalfOpen = 2,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half-open",
        }
    }
}

#[derive(Debug)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

/// Why a call may not go to the backend now.
struct Rejected {
    retry_after: Duration,
}

#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub timeout: Duration,
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub failure_threshold: u32,
    pub open_for: Duration,
}

impl From<&ResilienceSettings> for Policy {
    fn from(s: &ResilienceSettings) -> Self {
        Self {
            timeout: s.timeout_ms.get(),
            max_attempts: s.max_attempts.get(),
            backoff_base: s.backoff_base_ms.get(),
            backoff_max: Duration::from_millis(s.backoff_max_ms),
            failure_threshold: s.failure_threshold.get(),
            open_for: s.open_ms.get(),
        }
    }
}

/// One backend's guard; cheap to share (`Arc`) between an adapter's clones.
pub struct Resilience {
    backend: &'static str,
    policy: Policy,
    state: Mutex<State>,
    requests: IntCounterVec,
    duration: HistogramVec,
    retries: IntCounterVec,
    state_gauge: IntGauge,
}

impl Resilience {
    pub fn new(backend: &'static str, policy: Policy, metrics: &Metrics) -> Arc<Self> {
        let state_gauge = metrics.circuit_breaker_state.with_label_values(&[backend]);
        state_gauge.set(BreakerState::Closed as i64);
        Arc::new(Self {
            backend,
            policy,
            state: Mutex::new(State::Closed { failures: 0 }),
            requests: metrics.backend_requests_total.clone(),
            duration: metrics.backend_request_duration_seconds.clone(),
            retries: metrics.backend_retries_total.clone(),
            state_gauge,
        })
    }

    pub fn backend(&self) -> &'static str {
        self.backend
    }

    pub fn state(&self) -> BreakerState {
        match *self.lock() {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { until } if Instant::now() >= until => BreakerState::HalfOpen,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Runs `call`, retrying transient failures when `retry` allows; `call` builds a
    /// fresh future for each attempt.
    pub async fn run<T, F, Fut>(&self, op: &'static str, retry: Retry, call: F) -> StoreResult<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = StoreResult<T>>,
    {
        let started = Instant::now();
        // One span per call (a trace shows where a request's time went), with the
        // outcome and the retries it took.
        let span = tracing::info_span!(
            "backend",
            backend = self.backend,
            op,
            outcome = tracing::field::Empty,
            retries = tracing::field::Empty,
        );
        let retries = AtomicU32::new(0);
        let result = match retry {
            Retry::Once => {
                let mut call = call;
                self.attempt(op, call()).instrument(span.clone()).await
            }
            Retry::Idempotent | Retry::LostRaces => {
                let mut call = call;
                let backoff = full_jitter(&self.policy);
                let mut outages = 0;
                let races_only = retry == Retry::LostRaces;
                (|| self.attempt(op, call()))
                    .retry(backoff)
                    .sleep(tokio::time::sleep)
                    .when(|e| retryable(e) && (!races_only || e.kind == ErrorKind::Busy))
                    .adjust(|e, delay| {
                        // Lost races spend the backoff's own (larger) budget.
                        if e.kind != ErrorKind::Busy {
                            outages += 1;
                        }
                        delay.filter(|_| outages < self.policy.max_attempts)
                    })
                    .notify(|_, _| {
                        retries.fetch_add(1, Ordering::Relaxed);
                        self.retries.with_label_values(&[self.backend, op]).inc()
                    })
                    .instrument(span.clone())
                    .await
            }
        };
        span.record("outcome", outcome(&result));
        span.record("retries", retries.load(Ordering::Relaxed));
        self.duration
            .with_label_values(&[self.backend, op])
            .observe(started.elapsed().as_secs_f64());
        result
    }

    /// One attempt: admitted by the breaker, bounded by the timeout, recorded.
    async fn attempt<T>(
        &self,
        op: &'static str,
        call: impl Future<Output = StoreResult<T>>,
    ) -> StoreResult<T> {
        let admission = match self.admit() {
            Ok(admission) => admission,
            Err(rejected) => {
                self.count(op, "rejected");
                let mut e = StoreError::unavailable(format!(
                    "{} circuit breaker is open after repeated failures",
                    self.backend
                ));
                e.retry_after = Some(rejected.retry_after);
                return Err(e);
            }
        };
        let result = match tokio::time::timeout(self.policy.timeout, call).await {
            Ok(r) => r,
            Err(_) => Err(StoreError::timeout(format!(
                "{} did not answer {op} within {} ms",
                self.backend,
                self.policy.timeout.as_millis()
            ))),
        };
        self.count(op, outcome(&result));
        admission.settle(result.as_ref().err().is_some_and(is_failure));
        result
    }

    fn count(&self, op: &'static str, outcome: &'static str) {
        self.requests
            .with_label_values(&[self.backend, op, outcome])
            .inc();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn admit(&self) -> Result<Admission<'_>, Rejected> {
        let mut state = self.lock();
        let probe = match *state {
            State::Closed { .. } => false,
            State::Open { until } => {
                let now = Instant::now();
                if now >= until {
                    *state = State::HalfOpen { probing: true };
                    self.publish(BreakerState::HalfOpen);
                    true
                } else {
                    return Err(Rejected {
                        retry_after: until - now,
                    });
                }
            }
            State::HalfOpen { probing: false } => {
                *state = State::HalfOpen { probing: true };
                true
            }
            State::HalfOpen { probing: true } => {
                return Err(Rejected {
                    retry_after: self.policy.open_for,
                });
            }
        };
        Ok(Admission {
            breaker: self,
            probe,
            settled: false,
        })
    }

    /// Records a finished call. Only the probe decides a half-open breaker: a call let
    /// through before the breaker opened says nothing about the backend now.
    fn record(&self, failed: bool, probe: bool) {
        let mut state = self.lock();
        let next = match (&*state, failed) {
            (State::HalfOpen { probing }, _) if !probe => State::HalfOpen { probing: *probing },
            (State::Closed { .. }, false) => State::Closed { failures: 0 },
            (State::Closed { failures }, true) if failures + 1 < self.policy.failure_threshold => {
                State::Closed {
                    failures: failures + 1,
                }
            }
            (State::HalfOpen { .. }, false) => State::Closed { failures: 0 },
            // A call admitted before the breaker opened may finish after; it changes
            // nothing.
            (State::Open { until }, _) => State::Open { until: *until },
            (_, true) => {
                tracing::warn!(
                    backend = self.backend,
                    open_ms = self.policy.open_for.as_millis() as u64,
                    "circuit breaker opened"
                );
                State::Open {
                    until: Instant::now() + self.policy.open_for,
                }
            }
        };
        let published = match next {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen { .. } => BreakerState::HalfOpen,
        };
        if matches!(*state, State::HalfOpen { .. }) && published == BreakerState::Closed {
            tracing::info!(backend = self.backend, "circuit breaker closed again");
        }
        *state = next;
        drop(state);
        self.publish(published);
    }

    /// A probe ended without an outcome: let the next call probe instead.
    fn release_probe(&self) {
        let mut state = self.lock();
        if matches!(*state, State::HalfOpen { probing: true }) {
            *state = State::HalfOpen { probing: false };
            tracing::debug!(
                backend = self.backend,
                "half-open probe cancelled; the next call probes"
            );
        }
    }

    fn publish(&self, state: BreakerState) {
        self.state_gauge.set(state as i64);
    }
}

/// A call the breaker let through, until its outcome is recorded. The half-open probe
/// is the only call that may close or re-open the breaker, so if its future is dropped
/// first (the client went away, the request deadline fired) the guard hands the probe
/// back: without it the breaker would stay half-open with a probe that never ends and
/// refuse every call until the process restarts.
struct Admission<'a> {
    breaker: &'a Resilience,
    probe: bool,
    settled: bool,
}

impl Admission<'_> {
    fn settle(mut self, failed: bool) {
        self.settled = true;
        self.breaker.record(failed, self.probe);
    }
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        if self.probe && !self.settled {
            self.breaker.release_probe();
        }
    }
}

/// Exponential delays capped at `backoff_max`, each drawn uniformly from zero to the
/// delay ("full jitter"), enough of them for [`LOST_RACE_ATTEMPTS`] or `max_attempts`
/// attempts, whichever is more; [`Resilience::run`] stops outages at `max_attempts`.
fn full_jitter(policy: &Policy) -> impl backon::Backoff {
    let attempts = policy.max_attempts.max(LOST_RACE_ATTEMPTS);
    ExponentialBuilder::default()
        .with_min_delay(policy.backoff_base)
        .with_max_delay(policy.backoff_max)
        .with_max_times(attempts.saturating_sub(1) as usize)
        .build()
        .map(|d| d.mul_f64(rand::random::<f64>()))
}

/// A call's `outcome` label: `ok`, or what kind of failure.
fn outcome<T>(result: &StoreResult<T>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(e) if e.retry_after.is_some() => "rejected",
        Err(e) => match e.kind {
            ErrorKind::Timeout => "timeout",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Busy => "busy",
            ErrorKind::Full => "full",
            _ => "error",
        },
    }
}

/// Failures that say the backend is unhealthy (and not that the request was wrong, or
/// lost a race with another writer: a healthy server reports deadlocks under write
/// contention, and counting them would open the breaker on every caller).
fn is_failure(e: &StoreError) -> bool {
    matches!(e.kind, ErrorKind::Timeout | ErrorKind::Unavailable)
}

/// Transient failures worth another attempt; a breaker rejection is not one.
fn retryable(e: &StoreError) -> bool {
    (is_failure(e) || e.kind == ErrorKind::Busy) && e.retry_after.is_none()
}

#[cfg(test)]
mod tests;
