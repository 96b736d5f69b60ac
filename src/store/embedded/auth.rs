//! Embedded [`AuthStore`] on `redb` (`<data_dir>/auth.redb`): API key records keyed by
//! key id, refresh tokens keyed by token id, and revocations (access-token ids and
//! refresh families) with their expiry; every write is committed durably before a call
//! returns.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, Value};

use super::redb_file::{OneFile, Redb};
use super::space::Space;
use crate::store::{
    ApiKeyRecord, AuthStore, RefreshRecord, StoreError, StoreResult, TokenState, blocking,
};

const API_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("api_keys");
const REFRESH: TableDefinition<&str, &[u8]> = TableDefinition::new("refresh_tokens");
/// Revoked id → seconds since the epoch after which the entry may be forgotten.
const REVOKED: TableDefinition<&str, u64> = TableDefinition::new("revoked");

#[derive(Clone)]
pub struct EmbeddedAuthStore {
    file: Arc<Redb>,
}

fn db_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::internal(format!("auth store: {e}"))
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> StoreResult<T> {
    serde_json::from_slice(bytes).map_err(db_err)
}

type Table<V> = TableDefinition<'static, &'static str, V>;

impl EmbeddedAuthStore {
    pub async fn open(data_dir: &Path, space: Space) -> StoreResult<Self> {
        let path = data_dir.join("auth.redb");
        let file = blocking(move || {
            Redb::open(path, "auth store", space, |tx| {
                tx.open_table(API_KEYS).map_err(db_err)?;
                tx.open_table(REFRESH).map_err(db_err)?;
                tx.open_table(REVOKED).map_err(db_err)?;
                Ok(())
            })
        })
        .await?;
        Ok(Self {
            file: Arc::new(file),
        })
    }

    async fn read<V, T, F>(&self, def: Table<V>, f: F) -> StoreResult<T>
    where
        V: Value + Send + 'static,
        F: FnOnce(&redb::ReadOnlyTable<&'static str, V>) -> StoreResult<T> + Send + 'static,
        T: Send + 'static,
    {
        self.file
            .run(move |db| {
                let tx = db.begin_read().map_err(db_err)?;
                let table = tx.open_table(def).map_err(db_err)?;
                f(&table)
            })
            .await
    }

    async fn write<V, T, F>(&self, def: Table<V>, f: F) -> StoreResult<T>
    where
        V: Value + Send + 'static,
        F: FnOnce(&mut redb::Table<'_, &'static str, V>) -> StoreResult<T> + Send + 'static,
        T: Send + 'static,
    {
        self.file
            .run(move |db| {
                let tx = db.begin_write().map_err(db_err)?;
                let out = {
                    let mut table = tx.open_table(def).map_err(db_err)?;
                    f(&mut table)?
                };
                tx.commit().map_err(db_err)?;
                Ok(out)
            })
            .await
    }
}

impl OneFile for EmbeddedAuthStore {
    const NAME: &'static str = "auth";

    fn file(&self) -> &Arc<Redb> {
        &self.file
    }
}

#[async_trait]
impl AuthStore for EmbeddedAuthStore {
    async fn insert_key(&self, record: ApiKeyRecord) -> StoreResult<()> {
        let bytes = serde_json::to_vec(&record).map_err(db_err)?;
        self.write(API_KEYS, move |t| {
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
        // Every request signed with an API key reads it: on this thread (Redb::read_here).
        self.file
            .read_here(|db| {
                let tx = db.begin_read().map_err(db_err)?;
                let table = tx.open_table(API_KEYS).map_err(db_err)?;
                match table.get(id).map_err(db_err)? {
                    Some(v) => decode(v.value()).map(Some),
                    None => Ok(None),
                }
            })
            .await
    }

    async fn list_keys(&self, tenant: Option<&str>) -> StoreResult<Vec<ApiKeyRecord>> {
        let tenant = tenant.map(str::to_owned);
        self.read(API_KEYS, move |t| {
            let mut out = Vec::new();
            for entry in t.iter().map_err(db_err)? {
                let (_, v) = entry.map_err(db_err)?;
                let record: ApiKeyRecord = decode(v.value())?;
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
        self.write(API_KEYS, move |t| {
            Ok(t.remove(id.as_str()).map_err(db_err)?.is_some())
        })
        .await
    }

    async fn count_keys(&self) -> StoreResult<u64> {
        self.read(API_KEYS, |t| t.len().map_err(db_err)).await
    }

    async fn insert_refresh(&self, record: RefreshRecord) -> StoreResult<()> {
        let bytes = serde_json::to_vec(&record).map_err(db_err)?;
        self.write(REFRESH, move |t| {
            t.insert(record.id.as_str(), bytes.as_slice())
                .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn get_refresh(&self, id: &str) -> StoreResult<Option<RefreshRecord>> {
        let id = id.to_owned();
        self.read(REFRESH, move |t| {
            match t.get(id.as_str()).map_err(db_err)? {
                Some(v) => decode(v.value()).map(Some),
                None => Ok(None),
            }
        })
        .await
    }

    async fn use_refresh(&self, id: &str) -> StoreResult<bool> {
        let id = id.to_owned();
        // One write transaction at a time: of two concurrent exchanges, one sees `used`.
        self.write(REFRESH, move |t| {
            let Some(mut record) = t
                .get(id.as_str())
                .map_err(db_err)?
                .map(|v| decode::<RefreshRecord>(v.value()))
                .transpose()?
            else {
                return Ok(false);
            };
            if record.used {
                return Ok(false);
            }
            record.used = true;
            let bytes = serde_json::to_vec(&record).map_err(db_err)?;
            t.insert(id.as_str(), bytes.as_slice()).map_err(db_err)?;
            Ok(true)
        })
        .await
    }

    async fn revoke(&self, id: &str, until: u64) -> StoreResult<()> {
        let id = id.to_owned();
        self.write(REVOKED, move |t| {
            let until = t
                .get(id.as_str())
                .map_err(db_err)?
                .map_or(until, |v| v.value().max(until));
            t.insert(id.as_str(), until).map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn is_revoked(&self, id: &str) -> StoreResult<bool> {
        let id = id.to_owned();
        self.read(REVOKED, move |t| {
            Ok(t.get(id.as_str()).map_err(db_err)?.is_some())
        })
        .await
    }

    async fn token_state(&self, ids: &[String], key_id: Option<&str>) -> StoreResult<TokenState> {
        // Every request with a bearer token reads it: on this thread (Redb::read_here).
        self.file
            .read_here(move |db| {
                let tx = db.begin_read().map_err(db_err)?;
                let revoked = tx.open_table(REVOKED).map_err(db_err)?;
                for id in ids {
                    if revoked.get(id.as_str()).map_err(db_err)?.is_some() {
                        return Ok(TokenState {
                            revoked: true,
                            key: None,
                        });
                    }
                }
                let key = match key_id {
                    Some(id) => tx
                        .open_table(API_KEYS)
                        .map_err(db_err)?
                        .get(id)
                        .map_err(db_err)?
                        .map(|v| decode(v.value()))
                        .transpose()?,
                    None => None,
                };
                Ok(TokenState {
                    revoked: false,
                    key,
                })
            })
            .await
    }

    async fn purge_expired(&self, now: u64) -> StoreResult<()> {
        self.write(REVOKED, move |t| {
            t.retain(|_, until| until >= now).map_err(db_err)
        })
        .await?;
        self.write(REFRESH, move |t| {
            t.retain(|_, v| decode::<RefreshRecord>(v).is_ok_and(|r| r.expires_at >= now))
                .map_err(db_err)
        })
        .await
    }

    async fn ping(&self) -> StoreResult<()> {
        self.read(API_KEYS, |_| Ok(())).await
    }
}
