//! Where an import goes: stdout, one `services.toml`, or a unit directory. Existing files
//! are never overwritten without `--force`.

use camino::{Utf8Path, Utf8PathBuf};

use super::error::ImportError;
use super::model::Imported;
use super::writer;

#[derive(Debug, Clone)]
pub enum Target {
    Stdout,
    File(Utf8PathBuf),
    /// A directory of `NAME.toml` unit files (created when missing).
    Units(Utf8PathBuf),
}

impl Target {
    /// The directory the config will live in: relative paths are written from there.
    pub fn dir(&self) -> Utf8PathBuf {
        match self {
            Target::Stdout => Utf8PathBuf::from("."),
            Target::File(path) => path
                .parent()
                .filter(|p| !p.as_str().is_empty())
                .map_or_else(|| Utf8PathBuf::from("."), Utf8Path::to_owned),
            Target::Units(dir) => dir.clone(),
        }
    }
}

/// Writes the import; returns what goes to stdout (the whole config, or nothing).
pub fn deliver(
    imported: &Imported,
    sources: &[String],
    target: &Target,
    force: bool,
) -> Result<String, ImportError> {
    match target {
        Target::Stdout => Ok(writer::services_toml(imported, sources)),
        Target::File(path) => {
            refuse_existing(path, force)?;
            write(path, &writer::services_toml(imported, sources))?;
            Ok(String::new())
        }
        Target::Units(dir) => {
            let files: Vec<(Utf8PathBuf, String)> = imported
                .services
                .iter()
                .map(|s| (dir.join(format!("{}.toml", s.name)), writer::unit_file(s)))
                .collect();
            // Check every file before writing any, so a refusal leaves nothing half-done.
            for (path, _) in &files {
                refuse_existing(path, force)?;
            }
            std::fs::create_dir_all(dir).map_err(|source| ImportError::Write {
                path: dir.clone(),
                source,
            })?;
            for (path, text) in &files {
                write(path, text)?;
            }
            Ok(String::new())
        }
    }
}

fn refuse_existing(path: &Utf8Path, force: bool) -> Result<(), ImportError> {
    if !force && path.symlink_metadata().is_ok() {
        return Err(ImportError::Exists {
            path: path.to_owned(),
        });
    }
    Ok(())
}

fn write(path: &Utf8Path, text: &str) -> Result<(), ImportError> {
    std::fs::write(path, text).map_err(|source| ImportError::Write {
        path: path.to_owned(),
        source,
    })
}
