//! The migration's progress on disk: which steps are finished and where each unfinished
//! one resumes, rewritten (atomically) after every page, so an interrupted run carries
//! on from its last page instead of the start.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::services::error::ServiceError;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Saved {
    /// The pair of configurations (and tenant) the progress belongs to.
    fingerprint: String,
    done: BTreeSet<String>,
    cursors: BTreeMap<String, String>,
}

pub(super) struct State {
    path: PathBuf,
    saved: Saved,
    /// Whether the file held progress of an earlier run of the same migration.
    pub(super) resumed: bool,
}

fn io(path: &Path, e: impl std::fmt::Display) -> ServiceError {
    ServiceError::Internal(format!("migration state {}: {e}", path.display()))
}

impl State {
    /// The progress in `path` when it belongs to `fingerprint`; a fresh start otherwise
    /// (a file of another migration is an error, not overwritten).
    pub(super) fn load(path: &Path, fingerprint: &str) -> Result<Self, ServiceError> {
        let fresh = || Saved {
            fingerprint: fingerprint.to_owned(),
            ..Saved::default()
        };
        let saved = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice::<Saved>(&bytes).map_err(|e| io(path, e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => fresh(),
            Err(e) => return Err(io(path, e)),
        };
        if saved.fingerprint != fingerprint {
            return Err(ServiceError::Conflict(format!(
                "{} holds the progress of another migration ({}); delete it or give \
                 another --state file",
                path.display(),
                saved.fingerprint
            )));
        }
        Ok(Self {
            resumed: !saved.done.is_empty() || !saved.cursors.is_empty(),
            path: path.to_owned(),
            saved,
        })
    }

    pub(super) fn is_done(&self, step: &str) -> bool {
        self.saved.done.contains(step)
    }

    pub(super) fn cursor(&self, step: &str) -> Option<&str> {
        self.saved.cursors.get(step).map(String::as_str)
    }

    pub(super) fn advance(&mut self, step: &str, cursor: String) -> Result<(), ServiceError> {
        self.saved.cursors.insert(step.to_owned(), cursor);
        self.save()
    }

    pub(super) fn finish(&mut self, step: &str) -> Result<(), ServiceError> {
        self.saved.cursors.remove(step);
        self.saved.done.insert(step.to_owned());
        self.save()
    }

    /// Every step is done: the file goes, so a later run copies again from the start.
    pub(super) fn remove(self) -> Result<(), ServiceError> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(&self.path, e)),
        }
    }

    fn save(&self) -> Result<(), ServiceError> {
        let bytes = serde_json::to_vec_pretty(&self.saved).map_err(|e| io(&self.path, e))?;
        let staging = self.path.with_extension("tmp");
        std::fs::write(&staging, bytes).map_err(|e| io(&staging, e))?;
        std::fs::rename(&staging, &self.path).map_err(|e| io(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_survives_a_restart_and_belongs_to_one_migration() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let mut state = State::load(&path, "a -> b").unwrap();
        assert!(!state.resumed);
        state.finish("api keys").unwrap();
        state.advance("points t/docs", "256".into()).unwrap();

        let state = State::load(&path, "a -> b").unwrap();
        assert!(state.resumed);
        assert!(state.is_done("api keys"));
        assert!(!state.is_done("points t/docs"));
        assert_eq!(state.cursor("points t/docs"), Some("256"));
        assert!(matches!(
            State::load(&path, "a -> c"),
            Err(ServiceError::Conflict(_))
        ));

        state.remove().unwrap();
        assert!(!path.exists());
        assert!(!State::load(&path, "a -> c").unwrap().resumed);
    }
}
