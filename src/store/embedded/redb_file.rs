//! One redb file of an embedded store (events, API keys, audit), opened again after an
//! I/O failure. After one failed write (a full disk) redb refuses every later
//! transaction ("previous I/O error: close and re-open the database"), so without this
//! a moment of full disk would leave logins, the audit trail or the ingest log failing
//! until a restart, however much space came back. A snapshot copies the file whole
//! ([`OneFile`]).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use redb::{Database, StorageError, TransactionError, WriteTransaction};

use super::space::Space;
use crate::store::backup::{Backup, io_err};
use crate::store::{ErrorKind, StoreError, StoreResult};

pub(crate) struct Redb {
    path: PathBuf,
    /// The store, as errors name it.
    name: &'static str,
    /// `None` once a failure left the file refusing: the next call opens it again.
    db: RwLock<Option<Arc<Database>>>,
    space: Space,
}

impl Redb {
    /// Opens (or creates) the file and runs `init` in its first transaction (creating
    /// the store's tables).
    pub(crate) fn open(
        path: PathBuf,
        name: &'static str,
        space: Space,
        init: impl FnOnce(&WriteTransaction) -> StoreResult<()>,
    ) -> StoreResult<Self> {
        // Opened at start: a failure here stops the server with the reason.
        let err = |e: redb::Error| StoreError::internal(format!("{name}: {e}"));
        let db = Database::create(&path).map_err(|e| err(e.into()))?;
        let tx = db.begin_write().map_err(|e| err(e.into()))?;
        init(&tx)?;
        tx.commit().map_err(|e| err(e.into()))?;
        Ok(Self {
            path,
            name,
            db: RwLock::new(Some(Arc::new(db))),
            space,
        })
    }

    /// Copies the file into `into` while holding its write transaction (begun, never
    /// committed): no commit can land meanwhile, and every one before it is whole on
    /// disk (the stores commit durably), so the copy opens like the file after a clean
    /// stop.
    fn copy_into(&self, into: &Path) -> StoreResult<()> {
        let failed = |e: &dyn std::fmt::Display| {
            StoreError::internal(format!("backup of {}: {e}", self.path.display()))
        };
        let tx = self.db()?.begin_write().map_err(|e| failed(&e))?;
        let name = self.path.file_name().unwrap_or_default();
        let copied = std::fs::copy(&self.path, into.join(name)).map(drop);
        tx.abort().map_err(|e| failed(&e))?;
        copied.map_err(io_err("copying a database file"))
    }

    /// The free-space check this store's writes make.
    pub(crate) fn space(&self) -> &Space {
        &self.space
    }

    /// The database, if it is open (no failure has let it go).
    fn opened(&self) -> Option<Arc<Database>> {
        self.db.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The database, opened again first when the last failure let it go. Opening fails
    /// (503) while a transaction on the old one is still running, or while redb cannot
    /// repair the file yet; a later call tries again.
    pub(crate) fn db(&self) -> StoreResult<Arc<Database>> {
        if let Some(db) = self.opened() {
            return Ok(db);
        }
        let mut slot = self.db.write().unwrap_or_else(|p| p.into_inner());
        if let Some(db) = slot.as_ref() {
            return Ok(db.clone());
        }
        let db = Arc::new(Database::create(&self.path).map_err(|e| {
            StoreError::unavailable(format!("{}: opening the file again: {e}", self.name))
        })?);
        tracing::warn!(
            store = self.name,
            "opened the store's file again after an I/O failure"
        );
        *slot = Some(db.clone());
        Ok(db)
    }

    /// What the caller is told of `e`, a failed call on `db`. When the file now refuses
    /// every transaction, it is let go (to be opened again by a later call) and the
    /// error is 507 if the disk is short of space, else 503; other errors pass as they
    /// are.
    pub(crate) fn failed(&self, db: Arc<Database>, e: StoreError) -> StoreError {
        // The stores report redb's failures as internal; a refusal or a missing key is
        // the caller's, not the file's.
        if e.kind != ErrorKind::Internal {
            return e;
        }
        let refusing = matches!(
            db.begin_write(),
            Err(TransactionError::Storage(StorageError::PreviousIo))
        );
        if !refusing {
            return e;
        }
        {
            let mut slot = self.db.write().unwrap_or_else(|p| p.into_inner());
            if slot.as_ref().is_some_and(|d| Arc::ptr_eq(d, &db)) {
                *slot = None;
            }
        }
        let kind = match self.space.check() {
            Err(_) => ErrorKind::Full,
            Ok(()) => ErrorKind::Unavailable,
        };
        StoreError::new(kind, e.message)
    }

    /// Like [`Redb::run`], but on the calling thread: for a small read-only lookup made
    /// on every request, where the hop to a blocking thread costs more than the read
    /// (redb serves it from its page cache). Opening the file again and handling a
    /// failure go to a blocking thread: a reopen may repair the file, and telling whether
    /// it now refuses writes may wait for a writer.
    pub(crate) async fn read_here<T, F>(self: &Arc<Self>, f: F) -> StoreResult<T>
    where
        F: FnOnce(&Database) -> StoreResult<T>,
        T: Send + 'static,
    {
        let db = match self.opened() {
            Some(db) => db,
            None => {
                let file = self.clone();
                crate::store::blocking(move || file.db()).await?
            }
        };
        match f(&db) {
            Ok(out) => Ok(out),
            Err(e) => {
                let file = self.clone();
                crate::store::blocking(move || Err(file.failed(db, e))).await
            }
        }
    }

    /// Runs `f` on the database off the async runtime, turning a failure of the file
    /// into [`Redb::failed`]'s error.
    pub(crate) async fn run<T, F>(self: &Arc<Self>, f: F) -> StoreResult<T>
    where
        F: FnOnce(&Database) -> StoreResult<T> + Send + 'static,
        T: Send + 'static,
    {
        let file = self.clone();
        crate::store::blocking(move || {
            let db = file.db()?;
            f(&db).map_err(|e| file.failed(db, e))
        })
        .await
    }
}

/// An embedded store that is one [`Redb`] file: its [`Backup`] is a copy of the file.
pub(crate) trait OneFile: Send + Sync {
    /// The store, as the snapshot's manifest names it.
    const NAME: &'static str;
    fn file(&self) -> &Arc<Redb>;
}

#[async_trait]
impl<T: OneFile> Backup for T {
    fn name(&self) -> &'static str {
        T::NAME
    }

    async fn backup(&self, into: &Path) -> StoreResult<()> {
        let file = self.file().clone();
        let into = into.to_owned();
        crate::store::blocking(move || file.copy_into(&into)).await
    }
}
