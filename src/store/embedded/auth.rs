//! Embedded [`AuthStore`] on `redb` (`<data_dir>/auth.redb`): API key records keyed by
//! key id, committed durably before a call returns.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::store::{ApiKeyRecord, AuthStore, StoreError, StoreResult, blocking};

const API_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("api_keys");

#[derive(Clone)]
pub struct EmbeddedAuthStore {
    db: Arc<Database>,
}

fn db_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::internal(format!("auth store: {e}"))
}

fn decode(bytes: &[u8]) -> StoreResult<ApiKeyRecord> {
    serde_json::from_slice(bytes).map_err(db_err)
}

impl EmbeddedAuthStore {
    pub async fn open(data_dir: &Path) -> StoreResult<Self> {
        let path = data_dir.join("auth.redb");
        let db = blocking(move || {
            let db = Database::create(&path).map_err(db_err)?;
            let tx = db.begin_write().map_err(db_err)?;
            tx.open_table(API_KEYS).map_err(db_err)?;
            tx.commit().map_err(db_err)?;
            Ok(db)
        })
        .await?;
        Ok(Self { db: Arc::new(db) })
    }

    async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        F: FnOnce(&redb::ReadOnlyTable<&'static str, &'static [u8]>) -> StoreResult<T>
            + Send
            + 'static,
        T: Send + 'static,
    {
        let db = self.db.clone();
        blocking(move || {
            let tx = db.begin_read().map_err(db_err)?;
            let table = tx.open_table(API_KEYS).map_err(db_err)?;
            f(&table)
        })
        .await
    }

    async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        F: FnOnce(&mut redb::Table<'_, &'static str, &'static [u8]>) -> StoreResult<T>
            + Send
            + 'static,
        T: Send + 'static,
    {
        let db = self.db.clone();
        blocking(move || {
            let tx = db.begin_write().map_err(db_err)?;
            let out = {
                let mut table = tx.open_table(API_KEYS).map_err(db_err)?;
                f(&mut table)?
            };
            tx.commit().map_err(db_err)?;
            Ok(out)
        })
        .await
    }
}

#[async_trait]
impl AuthStore for EmbeddedAuthStore {
    async fn insert_key(&self, record: ApiKeyRecord) -> StoreResult<()> {
        let bytes = serde_json::to_vec(&record).map_err(db_err)?;
        self.write(move |t| {
            if t.get(record.id.as_str()).map_err(db_err)?.is_some() {
                return Err(StoreError::conflict("API key id already exists"));
            }
            t.insert(record.id.as_str(), bytes.as_slice())
                .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn get_key(&self, id: &str) -> StoreResult<Option<ApiKeyRecord>> {
        let id = id.to_owned();
        self.read(move |t| match t.get(id.as_str()).map_err(db_err)? {
            Some(v) => decode(v.value()).map(Some),
            None => Ok(None),
        })
        .await
    }

    async fn list_keys(&self, tenant: Option<&str>) -> StoreResult<Vec<ApiKeyRecord>> {
        let tenant = tenant.map(str::to_owned);
        self.read(move |t| {
            let mut out = Vec::new();
            for entry in t.iter().map_err(db_err)? {
                let (_, v) = entry.map_err(db_err)?;
                let record = decode(v.value())?;
                if tenant.as_deref().is_none_or(|t| t == record.tenant) {
                    out.push(record);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn delete_key(&self, id: &str) -> StoreResult<bool> {
        let id = id.to_owned();
        self.write(move |t| Ok(t.remove(id.as_str()).map_err(db_err)?.is_some()))
            .await
    }

    async fn count_keys(&self) -> StoreResult<u64> {
        self.read(|t| t.len().map_err(db_err)).await
    }

    async fn ping(&self) -> StoreResult<()> {
        self.read(|_| Ok(())).await
    }
}
