//! What can go wrong with the state file, said so an operator knows what happened and what
//! runpm did about it.

use std::io;

use camino::Utf8PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    // What `parse` finds wrong with the bytes. These carry no path: `load` wraps them in
    // `Invalid`, which names the file.
    #[error("the file is empty")]
    Empty,
    #[error("the JSON ends early at line {line} column {column} (truncated)")]
    Truncated { line: usize, column: usize },
    #[error("not JSON at line {line} column {column}")]
    NotJson {
        line: usize,
        column: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "unsupported version {found} (this runpm reads version {})",
        super::STATE_VERSION
    )]
    UnsupportedVersion { found: u64 },
    #[error("field {path}: {problem}")]
    Field { path: String, problem: String },

    // What `load` finds wrong with the file.
    #[error("state file `{path}` is unusable; runpm starts from the config")]
    Invalid {
        path: Utf8PathBuf,
        #[source]
        reason: Box<StateError>,
    },
    #[error(
        "state file `{path}` is a symlink; runpm never follows one there (something other than runpm put it there)"
    )]
    Symlink { path: Utf8PathBuf },
    #[error(transparent)]
    Untrusted(#[from] crate::owner::Untrusted),
    #[error("state file `{path}` is not a regular file")]
    NotAFile { path: Utf8PathBuf },
    #[error("state file `{path}` is larger than {limit} bytes; runpm refuses to read it")]
    TooLarge { path: Utf8PathBuf, limit: u64 },
    #[error("cannot inspect state file `{path}`")]
    Inspect {
        path: Utf8PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read state file `{path}`")]
    Read {
        path: Utf8PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot move `{path}` aside (it is left in place)")]
    MoveAside {
        path: Utf8PathBuf,
        #[source]
        source: io::Error,
    },

    // What `write_atomic` can meet: each names the step, so "disk full" and "read-only" are
    // told apart from the operating system's message in the source.
    #[error("cannot serialize the state")]
    Serialize {
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot write state file `{path}` ({step})")]
    Write {
        path: Utf8PathBuf,
        step: WriteStep,
        #[source]
        source: io::Error,
    },
    #[error("cannot clean up temporary state files in `{dir}`")]
    Sweep {
        dir: Utf8PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The step of an atomic write that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteStep {
    CreateTemp,
    WriteTemp,
    SyncTemp,
    Rename,
    SyncDir,
}

impl std::fmt::Display for WriteStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WriteStep::CreateTemp => "creating the temporary file",
            WriteStep::WriteTemp => "writing the temporary file",
            WriteStep::SyncTemp => "fsync of the temporary file",
            WriteStep::Rename => "renaming the temporary file over it",
            WriteStep::SyncDir => "fsync of its directory",
        })
    }
}

impl StateError {
    /// The parse error inside an [`StateError::Invalid`], or the error itself.
    pub fn reason(&self) -> &StateError {
        match self {
            StateError::Invalid { reason, .. } => reason,
            other => other,
        }
    }
}
