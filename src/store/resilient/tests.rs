//! The breaker's state machine and the retry policy, on paused tokio time.

use std::sync::atomic::{AtomicU32, Ordering};

use super::*;

fn policy() -> Policy {
    Policy {
        timeout: Duration::from_millis(100),
        max_attempts: 3,
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_millis(50),
        failure_threshold: 2,
        open_for: Duration::from_secs(5),
    }
}

fn down() -> StoreResult<u32> {
    Err(StoreError::unavailable("connection refused"))
}

#[tokio::test(start_paused = true)]
async fn breaker_opens_probes_half_open_and_closes() {
    let metrics = Metrics::new();
    let r = Resilience::new("redis", policy(), &metrics);
    // Two consecutive failed calls (one attempt each) open the breaker.
    for _ in 0..2 {
        let e = r.run("get", Retry::Once, || async { down() }).await;
        assert_eq!(e.unwrap_err().kind, ErrorKind::Unavailable);
    }
    assert_eq!(r.state(), BreakerState::Open);
    // While open, calls are refused without reaching the backend.
    let calls = AtomicU32::new(0);
    let e = r
        .run("get", Retry::Idempotent, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok(1)
        })
        .await
        .unwrap_err();
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert_eq!(e.retry_after, Some(Duration::from_secs(5)));
    // After the cool-down one probe is let through; its failure re-opens.
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(r.state(), BreakerState::HalfOpen);
    assert!(
        r.run("get", Retry::Once, || async { down() })
            .await
            .is_err()
    );
    assert_eq!(r.state(), BreakerState::Open);
    // The next probe succeeds and closes it.
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(
        r.run("get", Retry::Once, || async { Ok(7) }).await.unwrap(),
        7
    );
    assert_eq!(r.state(), BreakerState::Closed);
    let text = metrics.render();
    assert!(
        text.contains(r#"backend_requests_total{backend="redis",op="get",outcome="rejected"} 1"#)
    );
    assert!(
        text.contains(
            r#"backend_requests_total{backend="redis",op="get",outcome="unavailable"} 3"#
        )
    );
    assert!(text.contains(r#"circuit_breaker_state{backend="redis"} 0"#));
}

#[tokio::test(start_paused = true)]
async fn only_one_probe_goes_through_while_half_open() {
    let metrics = Metrics::new();
    let r = Resilience::new("neo4j", policy(), &metrics);
    for _ in 0..2 {
        let _ = r.run("q", Retry::Once, || async { down() }).await;
    }
    tokio::time::advance(Duration::from_secs(5)).await;
    let go = tokio::sync::Notify::new();
    let probe = r.run("q", Retry::Once, || async {
        go.notified().await;
        Ok(1)
    });
    let second = async {
        tokio::task::yield_now().await;
        let e = r.run("q", Retry::Once, || async { Ok(2) }).await;
        go.notify_one();
        e
    };
    let (probe, second) = tokio::join!(probe, second);
    assert_eq!(probe.unwrap(), 1);
    assert_eq!(second.unwrap_err().kind, ErrorKind::Unavailable);
    assert_eq!(r.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_probe_hands_the_probe_back() {
    let metrics = Metrics::new();
    let r = Resilience::new("redis", policy(), &metrics);
    for _ in 0..2 {
        let _ = r.run("get", Retry::Once, || async { down() }).await;
    }
    tokio::time::advance(Duration::from_secs(5)).await;
    // The probe hangs and its caller gives up first (a client that went away, a
    // request deadline): the future is dropped with no outcome.
    let probe = r.run("get", Retry::Once, || async {
        std::future::pending::<StoreResult<u32>>().await
    });
    assert!(
        tokio::time::timeout(Duration::from_millis(10), probe)
            .await
            .is_err()
    );
    assert_eq!(r.state(), BreakerState::HalfOpen);
    // The next call is the new probe; its success closes the breaker.
    assert_eq!(
        r.run("get", Retry::Once, || async { Ok(5) }).await.unwrap(),
        5
    );
    assert_eq!(r.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_call_from_before_the_breaker_opened_does_not_decide_the_probe() {
    let metrics = Metrics::new();
    let policy = Policy {
        timeout: Duration::from_secs(60),
        ..policy()
    };
    let r = Resilience::new("neo4j", policy, &metrics);
    let go = tokio::sync::Notify::new();
    // Let through while closed, answers long after the breaker opened.
    let old = r.run("q", Retry::Once, || async {
        go.notified().await;
        Ok(1)
    });
    let rest = async {
        tokio::task::yield_now().await;
        for _ in 0..2 {
            let _ = r.run("q", Retry::Once, || async { down() }).await;
        }
        tokio::time::advance(Duration::from_secs(5)).await;
        let hold = tokio::sync::Notify::new();
        let probe = r.run("q", Retry::Once, || async {
            hold.notified().await;
            down()
        });
        let finish_old = async {
            tokio::task::yield_now().await;
            go.notify_one();
            tokio::task::yield_now().await;
            tokio::task::yield_now().await;
            // The old call's success must not close the breaker under the probe.
            let state = r.state();
            hold.notify_one();
            state
        };
        let (probe, state) = tokio::join!(probe, finish_old);
        (probe, state)
    };
    let (old, (probe, during)) = tokio::join!(old, rest);
    assert_eq!(old.unwrap(), 1);
    assert_eq!(during, BreakerState::HalfOpen);
    assert!(probe.is_err());
    assert_eq!(r.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn idempotent_calls_retry_transient_failures_with_bounded_backoff() {
    let metrics = Metrics::new();
    let r = Resilience::new(
        "qdrant",
        Policy {
            failure_threshold: 10,
            ..policy()
        },
        &metrics,
    );
    let calls = AtomicU32::new(0);
    let started = Instant::now();
    let out = r
        .run("search", Retry::Idempotent, || async {
            if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                down()
            } else {
                Ok(3)
            }
        })
        .await;
    assert_eq!(out.unwrap(), 3);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    // Two sleeps, each at most its capped exponential delay (10 ms, 20 ms).
    assert!(started.elapsed() <= Duration::from_millis(30));
    assert!(
        metrics
            .render()
            .contains(r#"backend_retries_total{backend="qdrant",op="search"} 2"#)
    );
    // Attempts are bounded; non-transient errors and `Once` calls are not retried.
    calls.store(0, Ordering::SeqCst);
    let _ = r
        .run("search", Retry::Idempotent, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            down()
        })
        .await;
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    // Lost races do not spend the outages' budget: two, then three outages, then done.
    let tries = AtomicU32::new(0);
    let e = r
        .run("search", Retry::Idempotent, || async {
            match tries.fetch_add(1, Ordering::SeqCst) {
                0 | 1 => Err::<u32, _>(StoreError::busy("deadlock detected")),
                _ => down(),
            }
        })
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unavailable);
    assert_eq!(tries.load(Ordering::SeqCst), 5);
    calls.store(0, Ordering::SeqCst);
    let _ = r
        .run("search", Retry::Idempotent, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<u32, _>(StoreError::invalid("bad filter"))
        })
        .await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    calls.store(0, Ordering::SeqCst);
    let _ = r
        .run("append", Retry::Once, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            down()
        })
        .await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_slow_backend_times_out_and_counts_as_a_failure() {
    let metrics = Metrics::new();
    let r = Resilience::new(
        "kafka",
        Policy {
            max_attempts: 1,
            ..policy()
        },
        &metrics,
    );
    let e = r
        .run("append", Retry::Once, || async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(1)
        })
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Timeout);
    // Not-found answers are healthy: they never open the breaker.
    for _ in 0..5 {
        let _ = r
            .run("get", Retry::Once, || async {
                Err::<u32, _>(StoreError::not_found("no such key"))
            })
            .await;
    }
    assert_eq!(r.state(), BreakerState::Closed);
    let _ = r
        .run("append", Retry::Once, || async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(1)
        })
        .await;
    let _ = r
        .run("append", Retry::Once, || async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(1)
        })
        .await;
    assert_eq!(r.state(), BreakerState::Open);
}

/// A deadlock between concurrent writers is retried, more patiently than an outage, and
/// a healthy server reporting one never opens the breaker for every other caller.
#[tokio::test(start_paused = true)]
async fn busy_is_retried_and_never_opens_the_breaker() {
    let metrics = Metrics::new();
    let r = Resilience::new("neo4j", policy(), &metrics);
    let calls = AtomicU32::new(0);
    for _ in 0..5 {
        let e = r
            .run("upsert_relationship", Retry::Idempotent, || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err::<u32, _>(StoreError::busy("deadlock detected"))
            })
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Busy);
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        5 * LOST_RACE_ATTEMPTS,
        "lost races have a budget of their own, beyond max_attempts (3)"
    );
    assert_eq!(r.state(), BreakerState::Closed);
    // A busy attempt followed by a success is one call that succeeded.
    let tries = AtomicU32::new(0);
    let ok = r
        .run("upsert_relationship", Retry::Idempotent, || async {
            match tries.fetch_add(1, Ordering::SeqCst) {
                0 => Err(StoreError::busy("deadlock detected")),
                _ => Ok(3),
            }
        })
        .await;
    assert_eq!(ok.unwrap(), 3);
    let text = metrics.render();
    assert!(text.contains(
        r#"backend_requests_total{backend="neo4j",op="upsert_relationship",outcome="busy"} 51"#
    ));
}

/// A write that must not run twice is still retried after a lost race (the backend
/// rolled it back), and only then.
#[tokio::test(start_paused = true)]
async fn lost_races_only_retries_busy() {
    let metrics = Metrics::new();
    let r = Resilience::new("neo4j", policy(), &metrics);
    let tries = AtomicU32::new(0);
    let ok = r
        .run("delete_node", Retry::LostRaces, || async {
            match tries.fetch_add(1, Ordering::SeqCst) {
                0 | 1 => Err(StoreError::busy("deadlock detected")),
                _ => Ok(7),
            }
        })
        .await;
    assert_eq!((ok.unwrap(), tries.load(Ordering::SeqCst)), (7, 3));

    let tries = AtomicU32::new(0);
    let e = r
        .run("delete_node", Retry::LostRaces, || async {
            tries.fetch_add(1, Ordering::SeqCst);
            down()
        })
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unavailable);
    assert_eq!(
        tries.load(Ordering::SeqCst),
        1,
        "an outage may have taken effect"
    );
}
