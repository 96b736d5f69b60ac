//! Consistent copies of the embedded stores, taken while they serve: each store copies
//! its files into a directory with the same layout as the data directory, holding its
//! writers off only as long as the copy takes, so a copy holds every write the store
//! acknowledged before it began. Production backends have their own backups and
//! implement none of this.

use std::path::Path;

use async_trait::async_trait;

use crate::store::{ErrorKind, StoreError, StoreResult};

/// One embedded store's part of a snapshot.
#[async_trait]
pub trait Backup: Send + Sync {
    /// The store, as the snapshot's manifest names it.
    fn name(&self) -> &'static str;
    /// Copies the store's files into `into` (a data directory being built), as of a
    /// moment after this call began.
    async fn backup(&self, into: &Path) -> StoreResult<()>;
}

/// An embedded store that is one redb file; [`Backup`] copies it with [`copy_redb`].
pub(crate) trait RedbFile: Send + Sync {
    /// The store, as the snapshot's manifest names it.
    const NAME: &'static str;
    fn database(&self) -> StoreResult<(std::sync::Arc<redb::Database>, std::path::PathBuf)>;
}

#[async_trait]
impl<T: RedbFile> Backup for T {
    fn name(&self) -> &'static str {
        T::NAME
    }

    async fn backup(&self, into: &Path) -> StoreResult<()> {
        let (db, file) = self.database()?;
        let into = into.to_owned();
        crate::store::blocking(move || copy_redb(&db, &file, &into)).await
    }
}

pub(crate) fn io_err(what: &str) -> impl Fn(std::io::Error) -> StoreError + '_ {
    move |e| StoreError::new(ErrorKind::Unavailable, format!("{what}: {e}"))
}

/// Copies a redb file while holding its write transaction (begun, never committed):
/// no commit can land meanwhile, and every one before it is whole on disk (the stores
/// commit durably), so the copy opens like the file after a clean stop.
pub(crate) fn copy_redb(db: &redb::Database, file: &Path, into: &Path) -> StoreResult<()> {
    let tx = db
        .begin_write()
        .map_err(|e| StoreError::internal(format!("backup of {}: {e}", file.display())))?;
    let name = file.file_name().unwrap_or_default();
    let copied = std::fs::copy(file, into.join(name)).map(drop);
    tx.abort()
        .map_err(|e| StoreError::internal(format!("backup of {}: {e}", file.display())))?;
    copied.map_err(io_err("copying a database file"))
}

/// `path` with `suffix` added to its last component (`graph` → `graph.old`), for the
/// temporary and staging names written beside a file or directory.
pub(crate) fn with_suffix(path: &Path, suffix: &str) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    std::path::PathBuf::from(name)
}

/// Bytes of the files under `dir` (their length, holes included: what [`copy_tree`]
/// writes), leaving out the tree under `skip`.
pub(crate) fn tree_bytes(dir: &Path, skip: &Path) -> std::io::Result<u64> {
    let mut total = 0u64;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if path == skip {
            continue;
        }
        total += if entry.file_type()?.is_dir() {
            tree_bytes(&path, skip)?
        } else {
            entry.metadata()?.len()
        };
    }
    Ok(total)
}

/// Copies the tree under `from` to `to` (created), file by file.
pub(crate) fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}
