//! The EventLog contract: embedded (redb) and Kafka (tansu here) with statuses in Redis.

use std::sync::Arc;
use std::time::Duration;

use ragbrain::domain::ingest::{
    Event, IngestState, IngestStatus, LogEntry, Operation, OperationKind, Outcome,
};
use ragbrain::domain::principal::Tenant;
use ragbrain::domain::vector::CollectionName;
use ragbrain::store::embedded::events::EmbeddedEventLog;
use ragbrain::store::embedded::space::Space;
use ragbrain::store::kafka::KafkaEventLog;
use ragbrain::store::redis::RedisIngestState;
use ragbrain::store::{EventLog, TenantStatus};

use super::{doc_id, tenant};
use crate::backends;

fn event(tenant: &Tenant, id: &str, operation: Operation) -> Event {
    Event {
        tenant: tenant.clone(),
        id: doc_id(id),
        collection: CollectionName::parse("documents").unwrap(),
        operation,
        correlation_id: Some(format!("corr-{id}")),
        received_at: 0,
    }
}

fn upsert(text: &str) -> Operation {
    Operation::Upsert {
        text: text.into(),
        metadata: Default::default(),
    }
}

/// The entry's event; the contract only reads events it appended.
fn read(entry: &LogEntry) -> &Event {
    entry
        .event
        .as_ref()
        .expect("an event this version wrote decodes")
}

fn done(entry: &LogEntry, state: IngestState) -> Outcome {
    let event = read(entry);
    Outcome::Done {
        tenant: event.tenant.clone(),
        status: IngestStatus {
            id: event.id.clone(),
            status: state,
            operation: OperationKind::Upsert,
            collection: event.collection.to_string(),
            chunks: Some(1),
            entities: Some(0),
            error: None,
            updated_at: 0,
            seq: entry.seq,
        },
    }
}

/// Reads until `n` entries arrive (a Kafka consumer first joins its group).
async fn read_n(log: &dyn EventLog, n: usize) -> Vec<LogEntry> {
    read_bounded(log, n, usize::MAX).await
}

/// [`read_n`], taking no more entries once they hold `max_bytes`.
async fn read_bounded(log: &dyn EventLog, n: usize, max_bytes: usize) -> Vec<LogEntry> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let entries = log.read(100, max_bytes).await.unwrap();
        if entries.len() >= n || tokio::time::Instant::now() > deadline {
            return entries;
        }
        log.wait(Duration::from_millis(500)).await;
    }
}

async fn contract(log: Arc<dyn EventLog>) {
    let t = tenant("ev");
    let tn = &t;
    let seqs = log
        .append(vec![
            event(tn, "a", upsert("first")),
            event(tn, "b", upsert("second")),
            event(tn, "a", upsert("third")),
        ])
        .await
        .unwrap();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let a = log.status(&t, &doc_id("a")).await.unwrap().unwrap();
    assert_eq!((a.status, a.seq), (IngestState::Pending, seqs[2]));
    assert_eq!(log.pending().await.unwrap(), 3);

    let entries = read_n(log.as_ref(), 3).await;
    assert_eq!(entries.iter().map(|e| e.seq).collect::<Vec<_>>(), seqs);
    assert_eq!(read(&entries[1]).id.as_str(), "b");
    assert_eq!(read(&entries[0]).correlation_id.as_deref(), Some("corr-a"));
    // Not completed: the same batch is handed out again.
    let again = log.read(100, usize::MAX).await.unwrap();
    assert_eq!(again.iter().map(|e| e.seq).collect::<Vec<_>>(), seqs);

    // The stale outcome for the first "a" must not overwrite the newer event's status.
    let outcomes = vec![
        done(&entries[0], IngestState::Failed),
        done(&entries[1], IngestState::Processed),
        done(&entries[2], IngestState::Processed),
    ];
    log.complete(outcomes, seqs[2]).await.unwrap();
    let a = log.status(&t, &doc_id("a")).await.unwrap().unwrap();
    assert_eq!((a.status, a.seq), (IngestState::Processed, seqs[2]));
    assert_eq!(
        log.status(&t, &doc_id("b")).await.unwrap().unwrap().status,
        IngestState::Processed
    );
    assert_eq!(log.pending().await.unwrap(), 0);
    log.wait(Duration::from_millis(300)).await;
    assert!(log.read(100, usize::MAX).await.unwrap().is_empty());

    let del = log
        .append(vec![event(tn, "b", Operation::Delete)])
        .await
        .unwrap();
    let entries = read_n(log.as_ref(), 1).await;
    assert_eq!(entries.iter().map(|e| e.seq).collect::<Vec<_>>(), del);
    let deleted = Outcome::Deleted {
        tenant: t.clone(),
        id: doc_id("b"),
        seq: del[0],
    };
    log.complete(vec![deleted], del[0]).await.unwrap();
    assert!(log.status(&t, &doc_id("b")).await.unwrap().is_none());
    assert!(
        log.status(&tenant("other"), &doc_id("a"))
            .await
            .unwrap()
            .is_none()
    );
    statuses(log.as_ref(), &t).await;
    byte_bound(log.as_ref()).await;
    log.ping().await.unwrap();
}

/// Statuses page out of one log (each once, whatever the page size) and into another
/// tenant's keys as they are.
async fn statuses(log: &dyn EventLog, t: &Tenant) {
    let (mut mine, mut cursor) = (Vec::new(), None);
    loop {
        let (page, next) = log.export_statuses(cursor, 1).await.unwrap();
        mine.extend(page.into_iter().filter(|s| &s.tenant == t));
        match next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    mine.dedup_by(|x, y| x.status.id == y.status.id);
    assert_eq!(mine.len(), 1, "{mine:?}");
    let a = &mine[0];
    assert_eq!(
        (a.status.id.as_str(), a.status.status),
        ("a", IngestState::Processed)
    );
    let copy = tenant("copy");
    let imported = TenantStatus {
        tenant: copy.clone(),
        status: a.status.clone(),
    };
    log.import_statuses(vec![imported]).await.unwrap();
    assert_eq!(
        log.status(&copy, &doc_id("a")).await.unwrap(),
        Some(a.status.clone())
    );
}

/// A read takes no more entries once those it holds reach `max_bytes`, and always
/// takes one: with a bound of one byte, each of three large events comes alone.
async fn byte_bound(log: &dyn EventLog) {
    let t = tenant("ev");
    let large = upsert(&"x".repeat(4096));
    let seqs = log
        .append(
            (0..3)
                .map(|i| event(&t, &format!("large-{i}"), large.clone()))
                .collect(),
        )
        .await
        .unwrap();
    let mut seen = Vec::new();
    for _ in 0..3 {
        let one = read_bounded(log, 1, 1).await;
        assert_eq!(one.len(), 1, "{one:?}");
        log.complete(vec![done(&one[0], IngestState::Processed)], one[0].seq)
            .await
            .unwrap();
        seen.push(one[0].seq);
    }
    seen.sort_unstable();
    assert_eq!(seen, seqs);
    // Unbounded but for the count, the next read finds nothing left.
    log.wait(Duration::from_millis(300)).await;
    assert!(log.read(100, usize::MAX).await.unwrap().is_empty());
}

#[tokio::test]
async fn embedded_event_log_meets_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    contract(Arc::new(
        EmbeddedEventLog::open(dir.path(), Space::new(dir.path(), 0))
            .await
            .unwrap(),
    ))
    .await;
}

/// A Kafka log on its own topics (3 partitions) and consumer group.
async fn kafka_log() -> Option<KafkaEventLog> {
    let (Some(redis), Some(brokers)) = (backends::redis(), backends::kafka_brokers()) else {
        return None;
    };
    let id = uuid::Uuid::new_v4().simple().to_string();
    let settings = backends::kafka(brokers, &format!("contract-{id}"));
    let log = KafkaEventLog::connect(
        &settings,
        RedisIngestState::new(redis),
        backends::guard("kafka"),
        Duration::from_secs(10),
        ragbrain::store::kafka::largest_message(1 << 20, 16 << 10),
    )
    .await
    .unwrap();
    Some(log)
}

#[tokio::test]
async fn kafka_event_log_meets_the_contract() {
    if let Some(log) = kafka_log().await {
        contract(Arc::new(log)).await;
    }
}

/// A batch handed out and not completed comes back whole, in sequence order, with what
/// arrived since — however the first read split it across partitions — and again on
/// every read until completed. Repeated, while the rest of the suite loads the broker.
#[tokio::test]
async fn kafka_redelivery_returns_every_uncommitted_event_in_order() {
    let Some(log) = kafka_log().await else {
        return;
    };
    let t = tenant("redeliver");
    let tn = &t;
    // The consumer joins its group on the first read.
    let first = log
        .append(vec![event(tn, "warm", upsert("x"))])
        .await
        .unwrap();
    let warm = read_n(&log, 1).await;
    log.complete(Vec::new(), warm.last().unwrap().seq)
        .await
        .unwrap();
    assert_eq!(warm.iter().map(|e| e.seq).collect::<Vec<_>>(), first);
    for round in 0..25 {
        let doc = |i: usize| format!("r{round}-d{i}");
        let mut seqs = log
            .append((0..3).map(|i| event(tn, &doc(i), upsert("a"))).collect())
            .await
            .unwrap();
        // Handed out (at least one event, perhaps not all), not completed; then more
        // arrives.
        let partial = read_n(&log, 1).await;
        assert!(
            partial.windows(2).all(|w| w[0].seq < w[1].seq),
            "{partial:?}"
        );
        seqs.extend(
            log.append((3..6).map(|i| event(tn, &doc(i), upsert("b"))).collect())
                .await
                .unwrap(),
        );
        let all = read_n(&log, seqs.len()).await;
        let got: Vec<u64> = all.iter().map(|e| e.seq).collect();
        assert_eq!(got, seqs, "round {round}: first read had {partial:?}");
        for again in 0..3 {
            let replay: Vec<u64> = log
                .read(100, usize::MAX)
                .await
                .unwrap()
                .iter()
                .map(|e| e.seq)
                .collect();
            assert_eq!(replay, seqs, "round {round}, re-read {again}");
        }
        log.complete(Vec::new(), *seqs.last().unwrap())
            .await
            .unwrap();
    }
    log.wait(Duration::from_millis(300)).await;
    assert!(log.read(100, usize::MAX).await.unwrap().is_empty());
}
