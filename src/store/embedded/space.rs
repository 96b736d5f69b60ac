//! Free space under the data directory. The embedded vector engine writes through
//! memory maps of sparse files, and a write to a mapped page the filesystem has no room
//! for kills the whole process (SIGBUS), not just the request. So the embedded stores
//! refuse writes that take space while the filesystem holding the data directory has
//! less than a reserve free ([`ErrorKind::Full`]); the reserve is what background work
//! (index builds, checkpoints, log rewrites) and deletes, never refused, still use.

use std::path::{Path, PathBuf};

use crate::store::{ErrorKind, StoreError, StoreResult};

/// The free-space check of one data directory.
#[derive(Debug, Clone)]
pub struct Space {
    dir: PathBuf,
    reserve: u64,
}

impl Space {
    /// Writes to stores under `dir` are refused once less than `reserve` bytes are free
    /// on its filesystem; 0 never refuses.
    pub fn new(dir: &Path, reserve: u64) -> Self {
        Self {
            dir: dir.to_owned(),
            reserve,
        }
    }

    /// Bytes free to this process on the data directory's filesystem, when it can tell.
    pub fn available(&self) -> Option<u64> {
        fs4::available_space(&self.dir).ok()
    }

    /// Refuses a write that takes space while less than the reserve is free.
    pub fn check(&self) -> StoreResult<()> {
        self.check_for(0)
    }

    /// Refuses work that must run (a replay at start) unless `need` bytes are free; the
    /// reserve does not apply, since reads are served on a nearly full disk. Never
    /// refuses while the check is off (a reserve of 0).
    pub fn room_for(&self, what: &str, need: u64) -> StoreResult<()> {
        match self.available() {
            Some(free) if self.reserve > 0 && free < need => Err(StoreError::new(
                ErrorKind::Full,
                format!(
                    "{what} needs about {need} bytes free on the data directory's \
                     filesystem, which has {free}: free space on it and start again"
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Refuses work that writes up to `need` bytes unless that much is free beyond the
    /// reserve. When the free space cannot be read, the write goes ahead and reports
    /// its own failure, if any.
    pub fn check_for(&self, need: u64) -> StoreResult<()> {
        if self.reserve == 0 && need == 0 {
            return Ok(());
        }
        match self.available() {
            Some(free) if free < self.reserve.saturating_add(need) => Err(StoreError::new(
                ErrorKind::Full,
                format!(
                    "the data directory's filesystem has {free} bytes free: under the \
                     {} bytes of server.disk_reserve_bytes{}; writes are refused until \
                     space is freed",
                    self.reserve,
                    if need > 0 {
                        format!(" plus the {need} this needs")
                    } else {
                        String::new()
                    }
                ),
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_below_the_reserve_and_passes_above_it() {
        let dir = tempfile::tempdir().unwrap();
        let free = Space::new(dir.path(), 0).available().unwrap();
        assert!(Space::new(dir.path(), 0).check().is_ok());
        assert!(Space::new(dir.path(), 1).check().is_ok());
        let full = Space::new(dir.path(), free + (1 << 40));
        assert_eq!(full.check().unwrap_err().kind, ErrorKind::Full);
        let e = Space::new(dir.path(), 1)
            .check_for(free + (1 << 40))
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Full);
        assert!(e.message.contains("plus the"), "{}", e.message);
        let e = Space::new(dir.path(), 1).room_for("a replay", free + (1 << 40));
        assert!(e.unwrap_err().message.starts_with("a replay needs about"));
        assert!(
            Space::new(dir.path(), 0)
                .room_for("a replay", u64::MAX)
                .is_ok()
        );
        assert!(
            Space::new(dir.path(), 1 << 60)
                .room_for("a replay", 1)
                .is_ok()
        );
    }
}
