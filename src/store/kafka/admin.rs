//! The Kafka adapter's dealings with the cluster outside the event flow: creating the
//! topics at start-up, and sorting librdkafka's errors into the store's error kinds.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::config::KafkaSettings;
use crate::store::{ErrorKind, StoreError, StoreResult};

/// A count as librdkafka takes it; one past its range is passed as the largest, which
/// the cluster refuses with its own message.
fn positive(count: std::num::NonZeroU32) -> i32 {
    i32::try_from(count.get()).unwrap_or(i32::MAX)
}

/// Creates the event and dead-letter topics; ones that exist already are left as
/// they are.
pub(super) async fn create_topics(
    base: &ClientConfig,
    settings: &KafkaSettings,
    timeout: Duration,
    max_message_bytes: usize,
) -> StoreResult<()> {
    let admin: AdminClient<DefaultClientContext> = base.create().map_err(kafka_err)?;
    let max_message_bytes = max_message_bytes.to_string();
    let topics: Vec<NewTopic<'_>> = [settings.topic.as_str(), settings.dead_letter_topic.as_str()]
        .into_iter()
        .map(|t| {
            NewTopic::new(
                t,
                positive(settings.partitions),
                TopicReplication::Fixed(positive(settings.replication)),
            )
            .set("max.message.bytes", &max_message_bytes)
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(timeout));
    let created = admin
        .create_topics(&topics, &options)
        .await
        .map_err(kafka_err)?;
    for result in created {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(StoreError::unavailable(format!(
                    "kafka: creating topic {topic}: {code}"
                )));
            }
        }
    }
    Ok(())
}

pub(super) fn kafka_err(e: KafkaError) -> StoreError {
    let kind = match e.rdkafka_error_code() {
        Some(
            RDKafkaErrorCode::MessageTimedOut
            | RDKafkaErrorCode::RequestTimedOut
            | RDKafkaErrorCode::OperationTimedOut,
        ) => ErrorKind::Timeout,
        Some(
            RDKafkaErrorCode::BrokerTransportFailure
            | RDKafkaErrorCode::AllBrokersDown
            | RDKafkaErrorCode::NotCoordinator
            | RDKafkaErrorCode::CoordinatorNotAvailable
            | RDKafkaErrorCode::LeaderNotAvailable
            | RDKafkaErrorCode::NotLeaderForPartition
            | RDKafkaErrorCode::QueueFull,
        ) => ErrorKind::Unavailable,
        _ => ErrorKind::Upstream,
    };
    StoreError::new(kind, format!("kafka: {e}"))
}

/// A consumer's report that a broker connection went down: librdkafka reconnects by
/// itself, and one such event is queued per failed attempt. Failing the worker's read
/// on each (it backs off after every failure) left it seconds behind per event once a
/// broker came back: ingest stalled for minutes after a 4 s outage.
pub(super) fn connection_event(e: &KafkaError) -> bool {
    let connection = matches!(
        e.rdkafka_error_code(),
        Some(RDKafkaErrorCode::AllBrokersDown | RDKafkaErrorCode::BrokerTransportFailure)
    );
    if connection {
        tracing::debug!(error = %e, "kafka consumer lost a broker connection");
    }
    connection
}
