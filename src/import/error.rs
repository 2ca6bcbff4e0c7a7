//! Why an import failed. Each variant names the file and, for bad input, the position, in
//! the `file:line:column: message` form editors jump to.

use std::fmt;

use camino::Utf8PathBuf;

/// A 1-based line and column in an input file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: Utf8PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not well-formed (YAML, JSON, unit file or Procfile syntax).
    #[error("{file}:{at}: {message}")]
    Syntax {
        file: String,
        at: Position,
        message: String,
    },
    /// Well-formed, but a value cannot be imported (wrong type, unknown value).
    #[error("{file}:{at}: {message}")]
    Invalid {
        file: String,
        at: Position,
        message: String,
    },
    #[error(
        "cannot tell what {file} is: name it compose.yaml, process-compose.yaml, Procfile, \
         ecosystem.config.json (pm2) or NAME.service (systemd), or give it the usual content"
    )]
    UnknownFormat { file: String },
    #[error(
        "{file} is JavaScript, which runpm does not run: print it as JSON with\n  {one_liner}\n\
         and import ecosystem.json"
    )]
    JavaScript { file: String, one_liner: String },
    #[error("{file} defines no services")]
    Empty { file: String },
    #[error(
        "service `{name}` comes from both {first} and {second}: rename one of them before \
         importing both"
    )]
    Duplicate {
        name: String,
        first: String,
        second: String,
    },
    #[error("{path} exists: pass --force to overwrite it")]
    Exists { path: Utf8PathBuf },
    #[error("cannot write {path}: {source}")]
    Write {
        path: Utf8PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ImportError {
    pub fn invalid(file: &str, at: Position, message: impl Into<String>) -> ImportError {
        ImportError::Invalid {
            file: file.to_owned(),
            at,
            message: message.into(),
        }
    }
}
