//! The audit trail: records are handed to a bounded queue (one in-memory enqueue on the
//! request path; a full queue drops the record and counts it in
//! `audit_dropped_total`), written in batches by one background task, trimmed by age and
//! count every minute, and read by admins, each within their tenant (operators of the
//! bootstrap tenant read every tenant's).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::AuditSettings;
use crate::domain::audit::{AuditPage, AuditQuery, AuditRecord, unix_now_ms};
use crate::domain::principal::{Principal, Scope};
use crate::metrics::Metrics;
use crate::services::error::{Result, ServiceError};
use crate::store::AuditLog;

/// Records written per store call.
const BATCH: usize = 512;
/// How often retention runs.
const TRIM_EVERY: Duration = Duration::from_secs(60);
/// The largest page a reader may ask for.
pub const MAX_PAGE: usize = 1000;

enum Message {
    Record(AuditRecord),
    /// Write what came before, then stop.
    Close,
}

#[derive(Clone)]
pub struct AuditService {
    queue: Option<mpsc::Sender<Message>>,
    store: Option<Arc<dyn AuditLog>>,
    metrics: Arc<Metrics>,
    bootstrap_tenant: String,
    writer: Arc<Mutex<Option<JoinHandle<()>>>>,
}

/// What an admin asks of the trail.
#[derive(Debug, Clone, Default)]
pub struct AuditRequest {
    pub tenant: Option<String>,
    pub query: AuditQuery,
}

impl AuditService {
    /// Starts the writer; with `store` `None` (auditing off) records are discarded.
    pub fn start(
        settings: &AuditSettings,
        store: Option<Arc<dyn AuditLog>>,
        metrics: Arc<Metrics>,
        bootstrap_tenant: String,
    ) -> Self {
        let (queue, writer) = match &store {
            Some(store) => {
                let (tx, rx) = mpsc::channel(settings.queue_capacity.max(1));
                let task =
                    tokio::spawn(write(rx, store.clone(), settings.clone(), metrics.clone()));
                (Some(tx), Some(task))
            }
            None => (None, None),
        };
        Self {
            queue,
            store,
            metrics,
            bootstrap_tenant,
            writer: Arc::new(Mutex::new(writer)),
        }
    }

    /// Queues a record without waiting; a full queue drops it, counted.
    pub fn record(&self, record: AuditRecord) {
        if let Some(queue) = &self.queue
            && queue.try_send(Message::Record(record)).is_err()
        {
            self.metrics.audit_dropped_total.inc();
        }
    }

    /// Writes what is queued and stops the writer; records after this are dropped.
    pub async fn close(&self) {
        let task = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let (Some(task), Some(queue)) = (task, &self.queue) {
            let _ = queue.send(Message::Close).await;
            let _ = task.await;
        }
    }

    /// A page of the trail for `who`: an operator may read any tenant (or all); another
    /// admin only their own.
    pub async fn read(&self, who: &Principal, mut request: AuditRequest) -> Result<AuditPage> {
        let Some(store) = &self.store else {
            return Err(ServiceError::NotConfigured(
                "the audit trail is off (audit.enabled = false)".into(),
            ));
        };
        let operator = who.tenant.as_str() == self.bootstrap_tenant && who.allows(Scope::Admin);
        request.query.tenant = match request.tenant {
            Some(t) if operator || t == who.tenant.as_str() => Some(t),
            Some(_) => {
                return Err(ServiceError::Forbidden(
                    "only operators may read other tenants' audit records".into(),
                ));
            }
            None if operator => None,
            None => Some(who.tenant.as_str().to_owned()),
        };
        if request.query.limit == 0 || request.query.limit > MAX_PAGE {
            return Err(ServiceError::Invalid(format!(
                "limit must be between 1 and {MAX_PAGE}"
            )));
        }
        Ok(store.query(request.query).await?)
    }
}

async fn write(
    mut rx: mpsc::Receiver<Message>,
    store: Arc<dyn AuditLog>,
    settings: AuditSettings,
    metrics: Arc<Metrics>,
) {
    let mut trim = tokio::time::interval(TRIM_EVERY);
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            n = rx.recv_many(&mut batch, BATCH) => {
                let closing = n == 0 || batch.iter().any(|m| matches!(m, Message::Close));
                let records: Vec<AuditRecord> = batch
                    .drain(..)
                    .filter_map(|m| match m {
                        Message::Record(r) => Some(r),
                        Message::Close => None,
                    })
                    .collect();
                if !records.is_empty() {
                    let n = records.len() as u64;
                    if let Err(e) = store.append(records).await {
                        metrics.audit_dropped_total.inc_by(n);
                        tracing::error!(error = %e, records = n, "audit records could not be written");
                    }
                }
                if closing {
                    return;
                }
            }
            _ = trim.tick() => {
                let days = Duration::from_secs(settings.retention_days.saturating_mul(86_400));
                let before = unix_now_ms().saturating_sub(days.as_millis() as u64);
                if let Err(e) = store.trim(before, settings.max_records).await {
                    tracing::warn!(error = %e, "audit trail retention failed; will retry");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;

    use super::*;
    use crate::config::AuditBackend;
    use crate::domain::audit::AuditAction;
    use crate::store::StoreResult;

    /// A store whose writes never finish: the fault a real store cannot produce on cue.
    struct Stuck;

    #[async_trait]
    impl AuditLog for Stuck {
        async fn append(&self, _: Vec<AuditRecord>) -> StoreResult<()> {
            std::future::pending().await
        }
        async fn query(&self, _: AuditQuery) -> StoreResult<AuditPage> {
            Ok(AuditPage {
                records: Vec::new(),
                next: None,
            })
        }
        async fn trim(&self, _: u64, _: u64) -> StoreResult<()> {
            Ok(())
        }
        async fn ping(&self) -> StoreResult<()> {
            Ok(())
        }
    }

    fn record() -> AuditRecord {
        AuditRecord {
            id: String::new(),
            time_ms: 1,
            correlation_id: "c".into(),
            principal: None,
            tenant: None,
            client_ip: "127.0.0.1".into(),
            user_agent: None,
            action: AuditAction::AuthenticationFailed,
            resource: None,
            status: 401,
            success: false,
        }
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let settings = AuditSettings {
            enabled: true,
            backend: AuditBackend::Embedded,
            queue_capacity: 1,
            retention_days: 1,
            max_records: 10,
        };
        let metrics = Arc::new(Metrics::new());
        let audit = AuditService::start(
            &settings,
            Some(Arc::new(Stuck)),
            metrics.clone(),
            "default".into(),
        );
        // The writer takes the first and hangs in the store.
        audit.record(record());
        tokio::time::sleep(Duration::from_millis(20)).await;
        // The second waits in the queue; the third finds it full and is counted.
        audit.record(record());
        audit.record(record());
        assert_eq!(metrics.audit_dropped_total.get(), 1);
    }
}
