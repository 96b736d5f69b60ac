//! Where the embedded graph lives under the data directory: its generations (`graph`
//! is the first, then `graph.1`, `graph.2`, and so on, one per WAL rewrite,
//! [`super::graph_wal`]), the file that names the live one, and recovery from a rewrite
//! a crash interrupted.
//!
//! Crash safety rests on the names: `graph.current` names the live generation (no such
//! file: `graph`); it is replaced by writing `graph.current.tmp`, syncing it and renaming
//! it. Anything else named like a generation or a copy is left over from an interrupted
//! rewrite, and [`recover`] removes it before the engine opens. A data directory last
//! written by the earlier scheme (which swapped `graph.compact` and `graph` by rename)
//! is finished or undone first.

use std::path::{Path, PathBuf};

use super::{fs_err, sync_dir};
use crate::store::backup::with_suffix;
use crate::store::{ErrorKind, StoreError, StoreResult};

/// The first generation's directory, and the prefix of the others'.
pub(super) const FIRST: &str = "graph";
/// The file that names the live generation.
const CURRENT: &str = "graph.current";
/// Where a copy is written before it is complete.
pub(super) const COPYING: &str = "graph.compact.tmp";
/// Where a rewrite reads the live log's newest records from ([`super::graph_tail`]).
pub(super) const TAIL: &str = "graph.tail";

/// The directory after `live`'s: `graph` → `graph.1`, `graph.N` → `graph.N+1`.
pub(super) fn next_generation(live: &Path) -> PathBuf {
    let n = live
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(generation)
        .unwrap_or(0);
    live.with_file_name(format!("{FIRST}.{}", n + 1))
}

/// `name`'s generation if it names one: `graph` is 0, `graph.N` is N.
fn generation(name: &str) -> Option<u64> {
    if name == FIRST {
        return Some(0);
    }
    let n = name.strip_prefix(FIRST)?.strip_prefix('.')?;
    (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .then(|| n.parse().ok())
        .flatten()
}

/// Makes `graph.current` name `dir`. An error means it still names the old one; once
/// the rename is done the new name stands (a failed sync of the directory after it is
/// only logged: a crash then leaves either name, and both generations are complete).
pub(super) fn name_live(root: &Path, dir: &Path) -> StoreResult<()> {
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or(FIRST);
    let tmp = with_suffix(&root.join(CURRENT), ".tmp");
    std::fs::write(&tmp, name)
        .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
        .and_then(|()| std::fs::rename(&tmp, root.join(CURRENT)))
        .map_err(fs_err)?;
    if let Err(e) = sync_dir(root) {
        tracing::warn!(error = %e.message, "could not sync the data directory after naming a graph generation");
    }
    Ok(())
}

/// The live generation's directory, after removing whatever an interrupted compaction
/// left beside it.
pub(super) fn recover(root: &Path) -> StoreResult<PathBuf> {
    let live = match std::fs::read_to_string(root.join(CURRENT)) {
        Ok(name) => {
            let name = name.trim();
            let dir = root.join(name);
            if generation(name).is_none() || !dir.is_dir() {
                return Err(StoreError::new(
                    ErrorKind::Internal,
                    format!("{CURRENT} names {name:?}, which is not a graph generation here"),
                ));
            }
            dir
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let first = root.join(FIRST);
            recover_earlier(&first)?;
            // `graph` goes only once `graph.current` names a later generation.
            if !first.exists() && has_generations(root)? {
                return Err(StoreError::new(
                    ErrorKind::Internal,
                    format!(
                        "{CURRENT} is missing but graph generations are there; \
                         restore it, naming the newest complete one"
                    ),
                ));
            }
            first
        }
        Err(e) => return Err(fs_err(e)),
    };
    for entry in std::fs::read_dir(root).map_err(fs_err)? {
        let entry = entry.map_err(fs_err)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let leftover = generation(name).is_some()
            || [
                COPYING,
                TAIL,
                "graph.compact",
                "graph.old",
                "graph.current.tmp",
            ]
            .contains(&name);
        let path = entry.path();
        if !leftover || path == live {
            continue;
        }
        if path.is_dir() {
            std::fs::remove_dir_all(&path).map_err(fs_err)?;
        } else {
            std::fs::remove_file(&path).map_err(fs_err)?;
        }
    }
    sync_dir(root)?;
    Ok(live)
}

/// Whether `root` holds a generation directory after the first.
fn has_generations(root: &Path) -> StoreResult<bool> {
    for entry in std::fs::read_dir(root).map_err(fs_err)? {
        let name = entry.map_err(fs_err)?.file_name();
        if name.to_str().and_then(generation).is_some_and(|n| n > 0) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Finishes or undoes a compaction of the earlier scheme that a crash interrupted: an
/// unfinished copy is dropped; a finished one replaces a missing `graph` (the crash
/// fell inside the swap) and is dropped next to a present one (it fell before: both
/// hold the same graph).
fn recover_earlier(dir: &Path) -> StoreResult<()> {
    let (tmp, copy, old) = (
        with_suffix(dir, ".compact.tmp"),
        with_suffix(dir, ".compact"),
        with_suffix(dir, ".old"),
    );
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(fs_err)?;
    }
    if copy.exists() {
        if dir.exists() {
            std::fs::remove_dir_all(&copy).map_err(fs_err)?;
        } else {
            std::fs::rename(&copy, dir).map_err(fs_err)?;
            sync_dir(parent(dir))?;
        }
    }
    if old.exists() && dir.exists() {
        std::fs::remove_dir_all(&old).map_err(fs_err)?;
    }
    Ok(())
}

pub(super) fn parent(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn make(dir: &Path, marker: &str) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("marker"), marker).unwrap();
    }

    fn marker(dir: &Path) -> String {
        std::fs::read_to_string(dir.join("marker")).unwrap()
    }

    #[test]
    fn recovery_finishes_or_undoes_every_step_of_the_earlier_scheme() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        let dir = root.join("graph");
        let (tmp, copy, old) = (
            root.join("graph.compact.tmp"),
            root.join("graph.compact"),
            root.join("graph.old"),
        );

        // Crash while writing the copy: the copy is dropped, the log kept.
        make(&dir, "log");
        make(&tmp, "partial");
        assert_eq!(recover(root).unwrap(), dir);
        assert_eq!(marker(&dir), "log");
        assert!(!tmp.exists());

        // Crash after the copy was finished, before the swap: either holds the graph.
        make(&copy, "copy");
        recover(root).unwrap();
        assert_eq!(marker(&dir), "log");
        assert!(!copy.exists());

        // Crash between the two renames of the swap: the copy takes the place.
        std::fs::rename(&dir, &old).unwrap();
        make(&copy, "copy");
        recover(root).unwrap();
        assert_eq!(marker(&dir), "copy");
        assert!(!copy.exists() && !old.exists());

        // Crash before the old log was removed.
        make(&old, "log");
        recover(root).unwrap();
        assert_eq!(marker(&dir), "copy");
        assert!(!old.exists());
    }

    #[test]
    fn recovery_keeps_the_generation_graph_current_names_and_nothing_else_of_the_graph() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        // A crash after the copy was made and opened, while it caught up with the
        // live log, before it was named live.
        make(&root.join("graph"), "live");
        make(&root.join("graph.1"), "copy");
        make(&root.join("graph.tail"), "links to the live log");
        make(&root.join("vectors"), "other store");
        assert_eq!(recover(root).unwrap(), root.join("graph"));
        assert!(!root.join("graph.1").exists());
        assert!(!root.join("graph.tail").exists());
        assert_eq!(marker(&root.join("vectors")), "other store");

        // A crash after graph.2 was named live, before graph.1 was removed; and one
        // while graph.3 was written, and one while the name was.
        make(&root.join("graph.1"), "old");
        make(&root.join("graph.2"), "live");
        make(&root.join("graph.compact.tmp"), "partial");
        std::fs::write(root.join("graph.current.tmp"), "graph.3").unwrap();
        std::fs::write(root.join("graph.current"), "graph.2").unwrap();
        assert_eq!(recover(root).unwrap(), root.join("graph.2"));
        for gone in ["graph", "graph.1", "graph.compact.tmp", "graph.current.tmp"] {
            assert!(!root.join(gone).exists(), "{gone} is left");
        }
        assert_eq!(marker(&root.join("graph.2")), "live");
        assert_eq!(marker(&root.join("vectors")), "other store");

        // Without the name file, generations are not guessed at either.
        std::fs::remove_file(root.join("graph.current")).unwrap();
        assert!(recover(root).is_err());
        assert_eq!(marker(&root.join("graph.2")), "live");

        // A name that is not a generation here is refused, not guessed at.
        std::fs::write(root.join("graph.current"), "graph.7").unwrap();
        assert!(recover(root).is_err());
        std::fs::write(root.join("graph.current"), "../vectors").unwrap();
        assert!(recover(root).is_err());
    }

    #[test]
    fn generations_count_up_from_graph() {
        assert_eq!(generation("graph"), Some(0));
        assert_eq!(generation("graph.12"), Some(12));
        for other in [
            "graph.",
            "graph.x",
            "graph.1x",
            "graph.compact",
            "graphs",
            "graph.current",
        ] {
            assert_eq!(generation(other), None, "{other}");
        }
        let root = Path::new("/data");
        assert_eq!(next_generation(&root.join("graph")), root.join("graph.1"));
        assert_eq!(
            next_generation(&root.join("graph.9")),
            root.join("graph.10")
        );
    }
}
