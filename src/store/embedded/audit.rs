//! Embedded [`AuditLog`] on `redb` (`<data_dir>/audit.redb`): records keyed by a
//! sequence number, appended in batches with one fsync each, read newest first, trimmed
//! from the oldest end.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use super::redb_file::{OneFile, Redb};
use super::space::Space;
use crate::domain::audit::{AuditPage, AuditQuery, AuditRecord, MAX_SCAN};
use crate::store::{AuditLog, StoreError, StoreResult, blocking};

const RECORDS: TableDefinition<u64, &[u8]> = TableDefinition::new("records");

#[derive(Clone)]
pub struct EmbeddedAuditLog {
    file: Arc<Redb>,
}

fn db_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::internal(format!("audit log: {e}"))
}

/// Records read per transaction while filtering, so a sparse filter cannot hold one
/// read transaction over the whole trail.
const SCAN: usize = 4096;

impl EmbeddedAuditLog {
    pub async fn open(data_dir: &Path, space: Space) -> StoreResult<Self> {
        let path = data_dir.join("audit.redb");
        let file = blocking(move || {
            Redb::open(path, "audit log", space, |tx| {
                tx.open_table(RECORDS).map_err(db_err)?;
                Ok(())
            })
        })
        .await?;
        Ok(Self {
            file: Arc::new(file),
        })
    }
}

impl OneFile for EmbeddedAuditLog {
    const NAME: &'static str = "audit";

    fn file(&self) -> &Arc<Redb> {
        &self.file
    }
}

#[async_trait]
impl AuditLog for EmbeddedAuditLog {
    async fn append(&self, records: Vec<AuditRecord>) -> StoreResult<()> {
        self.file
            .run(move |db| {
                let tx = db.begin_write().map_err(db_err)?;
                {
                    let mut table = tx.open_table(RECORDS).map_err(db_err)?;
                    let first = table
                        .last()
                        .map_err(db_err)?
                        .map_or(1, |(k, _)| k.value() + 1);
                    for (seq, r) in (first..).zip(&records) {
                        let bytes = serde_json::to_vec(r).map_err(db_err)?;
                        table.insert(seq, bytes.as_slice()).map_err(db_err)?;
                    }
                }
                tx.commit().map_err(db_err)
            })
            .await
    }

    async fn query(&self, query: AuditQuery) -> StoreResult<AuditPage> {
        self.file
            .run(move |db| {
                let mut before = match &query.before {
                    Some(c) => c.parse::<u64>().map_err(|_| {
                        StoreError::invalid("before is not a cursor this server gave")
                    })?,
                    None => u64::MAX,
                };
                let mut records = Vec::new();
                let mut total = 0;
                loop {
                    let tx = db.begin_read().map_err(db_err)?;
                    let table = tx.open_table(RECORDS).map_err(db_err)?;
                    let mut scanned = 0;
                    for row in table.range(..before).map_err(db_err)?.rev().take(SCAN) {
                        let (key, value) = row.map_err(db_err)?;
                        scanned += 1;
                        before = key.value();
                        let mut r: AuditRecord =
                            serde_json::from_slice(value.value()).map_err(db_err)?;
                        if query.since_ms.is_some_and(|s| r.time_ms < s) {
                            // Sequence order is time order: nothing older can match.
                            return Ok(AuditPage {
                                records,
                                next: None,
                            });
                        }
                        if query.matches(&r) {
                            r.id = key.value().to_string();
                            if records.len() == query.limit {
                                let next = records.last().map(|l: &AuditRecord| l.id.clone());
                                return Ok(AuditPage { records, next });
                            }
                            records.push(r);
                        }
                    }
                    if scanned < SCAN {
                        return Ok(AuditPage {
                            records,
                            next: None,
                        });
                    }
                    total += scanned;
                    if total >= MAX_SCAN {
                        let next = Some(before.to_string());
                        return Ok(AuditPage { records, next });
                    }
                }
            })
            .await
    }

    async fn trim(&self, before_ms: u64, max_records: u64) -> StoreResult<()> {
        self.file
            .run(move |db| {
                let tx = db.begin_write().map_err(db_err)?;
                {
                    let mut table = tx.open_table(RECORDS).map_err(db_err)?;
                    let mut excess = table.len().map_err(db_err)?.saturating_sub(max_records);
                    let mut cut = None;
                    for row in table.iter().map_err(db_err)? {
                        let (key, value) = row.map_err(db_err)?;
                        let r: AuditRecord =
                            serde_json::from_slice(value.value()).map_err(db_err)?;
                        if excess == 0 && r.time_ms >= before_ms {
                            break;
                        }
                        excess = excess.saturating_sub(1);
                        cut = Some(key.value());
                    }
                    if let Some(cut) = cut {
                        table.retain_in(..=cut, |_, _| false).map_err(db_err)?;
                    }
                }
                tx.commit().map_err(db_err)
            })
            .await
    }

    async fn ping(&self) -> StoreResult<()> {
        self.file
            .run(move |db| db.begin_read().map(drop).map_err(db_err))
            .await
    }
}
