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

/// Bytes the files under `dir` take on disk (their allocated blocks: what [`copy_tree`]
/// writes, since it keeps holes), leaving out the tree under `skip`. It walks the live
/// data directory while the stores work in it, so a file or directory deleted meanwhile
/// (a dropped collection, a log segment a checkpoint let go) counts nothing rather than
/// failing the walk.
pub(crate) fn tree_bytes(dir: &Path, skip: &Path) -> std::io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0u64;
    let Some(entries) = unless_gone(std::fs::read_dir(dir))? else {
        return Ok(0);
    };
    for entry in entries {
        let Some(entry) = unless_gone(entry)? else {
            continue;
        };
        let path = entry.path();
        if path == skip {
            continue;
        }
        let Some(meta) = unless_gone(entry.metadata())? else {
            continue;
        };
        total += if meta.is_dir() {
            tree_bytes(&path, skip)?
        } else {
            meta.len().min(meta.blocks().saturating_mul(512))
        };
    }
    Ok(total)
}

/// `None` for what is no longer there.
fn unless_gone<T>(found: std::io::Result<T>) -> std::io::Result<Option<T>> {
    match found {
        Ok(found) => Ok(Some(found)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Copies the tree under `from` to `to` (created), file by file, keeping holes.
///
/// The vector engine sizes its memory-mapped files and its own WAL files ahead (32 MiB
/// each, a few per collection) and writes into them as it goes, so an empty collection
/// is about 200 MB long but takes about 2 MB. A plain copy writes the holes out as
/// zeros: a snapshot of a hundred small collections wrote gigabytes into its staging
/// copy and asked for that much free space. The packed snapshot keeps the holes too
/// (tar's sparse entries), and so does a restore.
pub(crate) fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            copy_sparse(&entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Copies the file `from` to `to`, writing only its data: the holes stay holes.
fn copy_sparse(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let source = std::fs::File::open(from)?;
    let len = source.metadata()?.len();
    let target = std::fs::File::create(to)?;
    target.set_len(len)?;
    let mut buffer = vec![0u8; 1 << 20];
    let mut at = 0;
    while at < len {
        let Some(data) = seek(&source, at, libc::SEEK_DATA)? else {
            break;
        };
        let hole = seek(&source, data, libc::SEEK_HOLE)?
            .unwrap_or(len)
            .min(len);
        let mut offset = data;
        while offset < hole {
            let want = buffer.len().min((hole - offset) as usize);
            let read = source.read_at(&mut buffer[..want], offset)?;
            if read == 0 {
                // Truncated while copied: the rest is read as a hole.
                break;
            }
            target.write_all_at(&buffer[..read], offset)?;
            offset += read as u64;
        }
        at = hole.max(offset).max(data + 1);
    }
    Ok(())
}

/// `lseek(file, from, whence)` for `SEEK_DATA` / `SEEK_HOLE`: the offset found, or
/// `None` past the last data (`ENXIO`).
fn seek(file: &std::fs::File, from: u64, whence: libc::c_int) -> std::io::Result<Option<u64>> {
    use std::os::fd::AsRawFd;
    let from = libc::off_t::try_from(from).map_err(std::io::Error::other)?;
    // SAFETY: lseek on an open descriptor; it only moves this descriptor's offset,
    // which nothing else uses (reads and writes here give their own offsets).
    let at = unsafe { libc::lseek(file.as_raw_fd(), from, whence) };
    if at >= 0 {
        return Ok(Some(at as u64));
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::ENXIO) => Ok(None),
        _ => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{FileExt, MetadataExt};

    use super::*;

    #[test]
    fn a_copy_keeps_the_data_and_the_holes() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (dir.path().join("from"), dir.path().join("to"));
        std::fs::create_dir_all(from.join("segment")).unwrap();
        let sparse = std::fs::File::create(from.join("segment/chunk.mmap")).unwrap();
        sparse.set_len(64 << 20).unwrap();
        sparse.write_all_at(b"middle", 5 << 20).unwrap();
        sparse.write_all_at(b"end", (64 << 20) - 3).unwrap();
        std::fs::write(from.join("dense"), vec![7u8; 3 << 20]).unwrap();
        std::fs::write(from.join("empty"), b"").unwrap();
        let sparse_taken = sparse.metadata().unwrap().blocks() * 512;

        copy_tree(&from, &to).unwrap();

        let copy = std::fs::File::open(to.join("segment/chunk.mmap")).unwrap();
        assert_eq!(copy.metadata().unwrap().len(), 64 << 20);
        let mut got = [0u8; 6];
        copy.read_exact_at(&mut got, 5 << 20).unwrap();
        assert_eq!(&got, b"middle");
        copy.read_exact_at(&mut got[..3], (64 << 20) - 3).unwrap();
        assert_eq!(&got[..3], b"end");
        copy.read_exact_at(&mut got, 1 << 20).unwrap();
        assert_eq!(got, [0; 6]);
        assert_eq!(std::fs::read(to.join("dense")).unwrap(), vec![7u8; 3 << 20]);
        assert_eq!(std::fs::read(to.join("empty")).unwrap(), b"");
        if sparse_taken < 1 << 20 {
            // The filesystem keeps holes: so must the copy.
            let taken = copy.metadata().unwrap().blocks() * 512;
            assert!(taken < 1 << 20, "the copy takes {taken} bytes");
            let counted = tree_bytes(&to, Path::new("/nowhere")).unwrap();
            assert!(counted < (4 << 20) + (1 << 20), "{counted} counted");
        }
    }

    #[test]
    fn files_deleted_during_the_walk_count_nothing() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_owned();
        assert_eq!(
            tree_bytes(&root.join("gone"), Path::new("/nowhere")).unwrap(),
            0
        );
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        // A store at work: directories of files made and deleted without pause.
        let churn = {
            let (root, stop) = (root.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    for d in 0..4 {
                        let sub = root.join(format!("segment-{d}"));
                        std::fs::create_dir_all(&sub).unwrap();
                        for f in 0..8 {
                            std::fs::write(sub.join(format!("{f}")), b"data").unwrap();
                        }
                    }
                    for d in 0..4 {
                        std::fs::remove_dir_all(root.join(format!("segment-{d}"))).unwrap();
                    }
                }
            })
        };
        let walked =
            (0..3_000).try_for_each(|_| tree_bytes(&root, Path::new("/nowhere")).map(drop));
        stop.store(true, Ordering::Relaxed);
        churn.join().unwrap();
        walked.unwrap();
    }
}
