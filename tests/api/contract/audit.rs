//! The AuditLog contract: embedded (redb) and Redis (a stream).

use std::sync::Arc;

use ragbrain::domain::audit::{AuditAction, AuditQuery, AuditRecord, unix_now_ms};
use ragbrain::store::embedded::audit::EmbeddedAuditLog;
use ragbrain::store::embedded::space::Space;
use ragbrain::store::redis::RedisAuditLog;
use ragbrain::store::{AuditLog, ErrorKind};

use crate::backends;

fn record(time_ms: u64, tenant: &str, action: AuditAction) -> AuditRecord {
    AuditRecord {
        id: String::new(),
        time_ms,
        correlation_id: format!("c{time_ms}"),
        principal: Some(format!("p-{tenant}")),
        tenant: Some(tenant.into()),
        client_ip: "10.0.0.1".into(),
        user_agent: None,
        action,
        resource: None,
        status: 200,
        success: true,
    }
}

fn query(limit: usize) -> AuditQuery {
    AuditQuery {
        limit,
        ..Default::default()
    }
}

async fn contract(log: Arc<dyn AuditLog>) {
    // Appended one by one at real times, a few milliseconds apart (the Redis stream
    // orders and trims by its own clock).
    let mut times = Vec::new();
    for i in 0..7u64 {
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
        let (tenant, action) = if i % 2 == 0 {
            ("a", AuditAction::KeyCreated)
        } else {
            ("b", AuditAction::TokenIssued)
        };
        let t = unix_now_ms();
        log.append(vec![record(t, tenant, action)]).await.unwrap();
        times.push(t);
    }
    let newest_first: Vec<u64> = times.iter().rev().copied().collect();

    let all = log.query(query(100)).await.unwrap();
    let got: Vec<u64> = all.records.iter().map(|r| r.time_ms).collect();
    assert_eq!(got, newest_first);
    assert!(all.next.is_none());
    assert!(all.records.iter().all(|r| !r.id.is_empty()));

    // Pages of 3 cover everything once, newest first.
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = log
            .query(AuditQuery {
                before: before.clone(),
                ..query(3)
            })
            .await
            .unwrap();
        assert!(page.records.len() <= 3);
        seen.extend(page.records.iter().map(|r| r.time_ms));
        match page.next {
            Some(n) => before = Some(n),
            None => break,
        }
    }
    assert_eq!(seen, newest_first);
    // A cursor this store never gave is the caller's mistake.
    for bad in [
        "",
        "-",
        "+",
        "x",
        "1-",
        "-1",
        "+1-0",
        "1-0-0",
        "99999999999999999999-0",
    ] {
        let refused = log
            .query(AuditQuery {
                before: Some(bad.into()),
                ..query(3)
            })
            .await
            .unwrap_err();
        assert_eq!(
            refused.kind,
            ErrorKind::Invalid,
            "cursor {bad:?}: {refused}"
        );
    }

    let tenant_b = log
        .query(AuditQuery {
            tenant: Some("b".into()),
            ..query(100)
        })
        .await
        .unwrap();
    assert_eq!(tenant_b.records.len(), 3);
    assert!(
        tenant_b
            .records
            .iter()
            .all(|r| r.action == AuditAction::TokenIssued)
    );
    let window = log
        .query(AuditQuery {
            action: Some(AuditAction::KeyCreated),
            since_ms: Some(times[2]),
            until_ms: Some(times[4]),
            ..query(100)
        })
        .await
        .unwrap();
    let window: Vec<u64> = window.records.iter().map(|r| r.time_ms).collect();
    assert_eq!(window, [times[4], times[2]]);

    // Retention: by age, then by count.
    log.trim(times[2], 100).await.unwrap();
    assert_eq!(log.query(query(100)).await.unwrap().records.len(), 5);
    log.trim(0, 2).await.unwrap();
    let kept: Vec<u64> = log
        .query(query(100))
        .await
        .unwrap()
        .records
        .iter()
        .map(|r| r.time_ms)
        .collect();
    assert_eq!(kept, [times[6], times[5]]);
    log.ping().await.unwrap();
}

#[tokio::test]
async fn embedded_audit_log_meets_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    contract(Arc::new(
        EmbeddedAuditLog::open(dir.path(), Space::new(dir.path(), 0))
            .await
            .unwrap(),
    ))
    .await;
}

#[tokio::test]
async fn redis_audit_log_meets_the_contract() {
    let Some(redis) = backends::redis() else {
        return;
    };
    contract(Arc::new(RedisAuditLog::new(redis, 1000))).await;
}
