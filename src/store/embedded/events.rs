//! Embedded [`EventLog`] on `redb` (`<data_dir>/events.redb`): events keyed by sequence
//! number, document statuses keyed by tenant and id, and the consumer offset, each
//! change committed with an fsync before the call returns. Committed entries are
//! deleted with the offset move, so the file holds only the backlog.

use std::ops::Bound::{Excluded, Unbounded};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use tokio::sync::Notify;

use super::redb_file::{OneFile, Redb};
use super::space::Space;
use crate::domain::ingest::{DocId, Event, IngestStatus, LogEntry, Operation, Outcome, Unreadable};
use crate::domain::principal::Tenant;
use crate::domain::unix_now;
use crate::store::{EventLog, StoreError, StoreResult, TenantStatus, blocking};

const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
const STATUS: TableDefinition<&str, &[u8]> = TableDefinition::new("status");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Sequence number the next appended event gets (starts at 1).
const NEXT: &str = "next";
/// Highest sequence number processed; reading resumes after it.
const COMMITTED: &str = "committed";

#[derive(Clone)]
pub struct EmbeddedEventLog {
    /// Its space check is made before events other than deletes are accepted;
    /// statuses and completions always go through.
    file: Arc<Redb>,
    appended: Arc<Notify>,
}

fn db_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::internal(format!("event log: {e}"))
}

fn status_key(tenant: &Tenant, id: &str) -> String {
    format!("{tenant}\u{0}{id}")
}

fn meta(tx: &WriteTransaction, key: &str) -> StoreResult<u64> {
    let table = tx.open_table(META).map_err(db_err)?;
    Ok(table.get(key).map_err(db_err)?.map_or(0, |v| v.value()))
}

impl EmbeddedEventLog {
    pub async fn open(data_dir: &Path, space: Space) -> StoreResult<Self> {
        let path = data_dir.join("events.redb");
        let file = blocking(move || {
            Redb::open(path, "event log", space, |tx| {
                tx.open_table(EVENTS).map_err(db_err)?;
                tx.open_table(STATUS).map_err(db_err)?;
                tx.open_table(META).map_err(db_err)?;
                Ok(())
            })
        })
        .await?;
        Ok(Self {
            file: Arc::new(file),
            appended: Arc::new(Notify::new()),
        })
    }

    async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        F: FnOnce(&WriteTransaction) -> StoreResult<T> + Send + 'static,
        T: Send + 'static,
    {
        self.file
            .run(move |db| {
                let tx = db.begin_write().map_err(db_err)?;
                let out = f(&tx)?;
                tx.commit().map_err(db_err)?;
                Ok(out)
            })
            .await
    }
}

pub(crate) fn pending_status(event: &Event, seq: u64) -> IngestStatus {
    IngestStatus {
        updated_at: unix_now(),
        ..event.status(seq, crate::domain::ingest::IngestState::Pending)
    }
}

/// Whether the stored status for `key` belongs to event `seq` (a newer event owns it
/// otherwise, and its outcome must not be overwritten).
fn owned_by(table: &redb::Table<'_, &str, &[u8]>, key: &str, seq: u64) -> StoreResult<bool> {
    Ok(match table.get(key).map_err(db_err)? {
        Some(v) => {
            let stored: IngestStatus = serde_json::from_slice(v.value()).map_err(db_err)?;
            stored.seq == seq
        }
        None => false,
    })
}

/// Names the document of an unreadable record that cannot name it itself, from the
/// status its append wrote (the one keyed to its sequence number), so the status can
/// end `failed` instead of staying `pending`. Scans the statuses: unreadable records are
/// rare, and this runs only for them.
fn name_from_status(tx: &redb::ReadTransaction, seq: u64, u: &mut Unreadable) -> StoreResult<()> {
    let table = tx.open_table(STATUS).map_err(db_err)?;
    for row in table.iter().map_err(db_err)? {
        let (key, value) = row.map_err(db_err)?;
        let Ok(status) = serde_json::from_slice::<IngestStatus>(value.value()) else {
            continue;
        };
        if status.seq == seq
            && let Some((tenant, id)) = key.value().split_once('\u{0}')
        {
            u.tenant = Tenant::parse(tenant);
            u.id = DocId::parse(id);
            u.collection = status.collection;
            return Ok(());
        }
    }
    Ok(())
}

impl OneFile for EmbeddedEventLog {
    const NAME: &'static str = "events";

    fn file(&self) -> &Arc<Redb> {
        &self.file
    }
}

#[async_trait]
impl EventLog for EmbeddedEventLog {
    async fn append(&self, events: Vec<Event>) -> StoreResult<Vec<u64>> {
        // Deletes are how space is freed: they are accepted on a full disk.
        if events
            .iter()
            .any(|e| !matches!(e.operation, Operation::Delete))
        {
            self.file.space().check()?;
        }
        let seqs = self
            .write(move |tx| {
                let first = meta(tx, NEXT)?.max(1);
                let mut log = tx.open_table(EVENTS).map_err(db_err)?;
                let mut status = tx.open_table(STATUS).map_err(db_err)?;
                let mut seqs = Vec::with_capacity(events.len());
                for (i, event) in events.iter().enumerate() {
                    let seq = first + i as u64;
                    let bytes = serde_json::to_vec(event).map_err(db_err)?;
                    log.insert(seq, bytes.as_slice()).map_err(db_err)?;
                    let pending =
                        serde_json::to_vec(&pending_status(event, seq)).map_err(db_err)?;
                    status
                        .insert(
                            status_key(&event.tenant, &event.id).as_str(),
                            pending.as_slice(),
                        )
                        .map_err(db_err)?;
                    seqs.push(seq);
                }
                let mut meta = tx.open_table(META).map_err(db_err)?;
                meta.insert(NEXT, first + events.len() as u64)
                    .map_err(db_err)?;
                Ok(seqs)
            })
            .await?;
        self.appended.notify_one();
        Ok(seqs)
    }

    async fn read(&self, max: usize, max_bytes: usize) -> StoreResult<Vec<LogEntry>> {
        self.file
            .run(move |db| {
                let tx = db.begin_read().map_err(db_err)?;
                let committed = tx
                    .open_table(META)
                    .map_err(db_err)?
                    .get(COMMITTED)
                    .map_err(db_err)?
                    .map_or(0, |v| v.value());
                let log = tx.open_table(EVENTS).map_err(db_err)?;
                let mut out = Vec::new();
                let mut held = 0;
                for entry in log.range(committed + 1..).map_err(db_err)?.take(max) {
                    if held >= max_bytes {
                        break;
                    }
                    let (seq, bytes) = entry.map_err(db_err)?;
                    held += bytes.value().len();
                    let (seq, mut event) = (seq.value(), Event::decode(bytes.value()));
                    if let Err(u) = &mut event {
                        tracing::warn!(seq, reason = %u.reason, "unreadable ingest event");
                        if u.tenant.is_none() || u.id.is_none() {
                            name_from_status(&tx, seq, u)?;
                        }
                    }
                    out.push(LogEntry { seq, event });
                }
                Ok(out)
            })
            .await
    }

    async fn wait(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.appended.notified()).await;
    }

    async fn complete(&self, outcomes: Vec<Outcome>, upto: u64) -> StoreResult<()> {
        self.write(move |tx| {
            let mut status = tx.open_table(STATUS).map_err(db_err)?;
            for outcome in outcomes {
                match outcome {
                    Outcome::Done {
                        tenant,
                        status: mut done,
                    } => {
                        let key = status_key(&tenant, &done.id);
                        if owned_by(&status, &key, done.seq)? {
                            done.updated_at = unix_now();
                            let bytes = serde_json::to_vec(&done).map_err(db_err)?;
                            status
                                .insert(key.as_str(), bytes.as_slice())
                                .map_err(db_err)?;
                        }
                    }
                    Outcome::Deleted { tenant, id, seq } => {
                        let key = status_key(&tenant, &id);
                        if owned_by(&status, &key, seq)? {
                            status.remove(key.as_str()).map_err(db_err)?;
                        }
                    }
                }
            }
            drop(status);
            let mut log = tx.open_table(EVENTS).map_err(db_err)?;
            log.retain_in(..=upto, |_, _| false).map_err(db_err)?;
            let mut meta = tx.open_table(META).map_err(db_err)?;
            let committed = meta
                .get(COMMITTED)
                .map_err(db_err)?
                .map_or(0, |v| v.value());
            meta.insert(COMMITTED, committed.max(upto))
                .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn status(&self, tenant: &Tenant, id: &DocId) -> StoreResult<Option<IngestStatus>> {
        let key = status_key(tenant, id);
        self.file
            .run(move |db| {
                let tx = db.begin_read().map_err(db_err)?;
                let table = tx.open_table(STATUS).map_err(db_err)?;
                match table.get(key.as_str()).map_err(db_err)? {
                    Some(v) => Ok(Some(serde_json::from_slice(v.value()).map_err(db_err)?)),
                    None => Ok(None),
                }
            })
            .await
    }

    async fn pending(&self) -> StoreResult<u64> {
        self.file
            .run(move |db| {
                let tx = db.begin_read().map_err(db_err)?;
                let meta = tx.open_table(META).map_err(db_err)?;
                let get = |k| -> StoreResult<u64> {
                    Ok(meta.get(k).map_err(db_err)?.map_or(0, |v| v.value()))
                };
                let next = get(NEXT)?.max(1);
                Ok(next.saturating_sub(get(COMMITTED)? + 1))
            })
            .await
    }

    /// The cursor is the last key read: statuses come in key order.
    async fn export_statuses(
        &self,
        cursor: Option<String>,
        limit: usize,
    ) -> StoreResult<(Vec<TenantStatus>, Option<String>)> {
        self.file
            .run(move |db| {
                let tx = db.begin_read().map_err(db_err)?;
                let table = tx.open_table(STATUS).map_err(db_err)?;
                let rows = match &cursor {
                    Some(after) => table.range::<&str>((Excluded(after.as_str()), Unbounded)),
                    None => table.range::<&str>(..),
                };
                let limit = limit.max(1);
                let (mut out, mut last, mut read) = (Vec::new(), None, 0);
                for row in rows.map_err(db_err)?.take(limit) {
                    let (key, value) = row.map_err(db_err)?;
                    let key = key.value();
                    read += 1;
                    last = Some(key.to_owned());
                    let tenant = key.split_once('\u{0}').and_then(|(t, _)| Tenant::parse(t));
                    let status = serde_json::from_slice::<IngestStatus>(value.value());
                    if let (Some(tenant), Ok(status)) = (tenant, status) {
                        out.push(TenantStatus { tenant, status });
                    }
                }
                // A short page was the last one.
                Ok((out, last.filter(|_| read == limit)))
            })
            .await
    }

    async fn import_statuses(&self, statuses: Vec<TenantStatus>) -> StoreResult<()> {
        let mut rows = Vec::with_capacity(statuses.len());
        for s in statuses {
            let key = status_key(&s.tenant, &s.status.id);
            rows.push((key, serde_json::to_vec(&s.status).map_err(db_err)?));
        }
        self.write(move |tx| {
            let mut table = tx.open_table(STATUS).map_err(db_err)?;
            for (key, value) in &rows {
                table
                    .insert(key.as_str(), value.as_slice())
                    .map_err(db_err)?;
            }
            Ok(())
        })
        .await
    }

    async fn ping(&self) -> StoreResult<()> {
        self.file
            .run(move |db| db.begin_read().map(drop).map_err(db_err))
            .await
    }
}
