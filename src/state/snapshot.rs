//! What `runpmctl resurrect` reads back: the services the state file says were meant to
//! run, or a typed reason why it cannot say.

use std::sync::Arc;

use camino::{Utf8Path, Utf8PathBuf};

use super::{LoadOutcome, StateError, load, wanted_up};

#[derive(Debug, Clone, thiserror::Error)]
pub enum SnapshotError {
    #[error("there is no state file at {path}")]
    Missing { path: Utf8PathBuf },
    #[error("the state file {path} cannot be used ({error}){}", moved_aside(moved_to.as_deref()))]
    Bad {
        path: Utf8PathBuf,
        #[source]
        error: Arc<StateError>,
        moved_to: Option<Utf8PathBuf>,
    },
    #[error("this runpm keeps no state file")]
    NoStateFile,
}

fn moved_aside(to: Option<&Utf8Path>) -> String {
    to.map(|to| format!("; it was moved aside to {to}"))
        .unwrap_or_default()
}

/// The services the state file at `path` (none: this runpm keeps none) says were running.
pub fn wanted_up_in(path: Option<&Utf8Path>) -> Result<Vec<String>, SnapshotError> {
    let path = path.ok_or(SnapshotError::NoStateFile)?;
    match load(path) {
        LoadOutcome::Loaded(file) => Ok(file
            .services
            .iter()
            .filter(|r| wanted_up(r))
            .map(|r| r.name.clone())
            .collect()),
        LoadOutcome::Missing => Err(SnapshotError::Missing {
            path: path.to_owned(),
        }),
        LoadOutcome::Bad {
            error, moved_to, ..
        } => Err(SnapshotError::Bad {
            path: path.to_owned(),
            error: Arc::new(error),
            moved_to,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reason_reads_as_before() {
        let dir = tempfile::tempdir().unwrap();
        let path = Utf8PathBuf::from_path_buf(dir.path().join("state.json")).unwrap();
        let missing = wanted_up_in(Some(&path)).unwrap_err();
        assert_eq!(
            missing.to_string(),
            format!("there is no state file at {path}")
        );
        assert_eq!(
            wanted_up_in(None).unwrap_err().to_string(),
            "this runpm keeps no state file"
        );
        std::fs::write(&path, "not json").unwrap();
        let bad = wanted_up_in(Some(&path)).unwrap_err();
        let text = bad.to_string();
        assert!(
            text.starts_with(&format!("the state file {path} cannot be used (")),
            "{text}"
        );
        assert!(matches!(bad, SnapshotError::Bad { .. }));
    }
}
