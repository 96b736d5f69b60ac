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

pub(crate) fn io_err(what: &str) -> impl Fn(std::io::Error) -> StoreError + '_ {
    move |e| StoreError::new(ErrorKind::Unavailable, format!("{what}: {e}"))
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
