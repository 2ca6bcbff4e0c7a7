//! The exporters' contact with the file system: finding programs on `PATH` and writing the
//! generated files without clobbering anything by surprise.

use std::io;
use std::os::unix::fs::PermissionsExt;

use camino::{Utf8Path, Utf8PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("`{path}` already exists (pass --force to overwrite)")]
    Exists { path: Utf8PathBuf },
    #[error("cannot create directory `{path}`")]
    CreateDir {
        path: Utf8PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write `{path}`")]
    Write {
        path: Utf8PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The first executable `program` in the directories of `path` (a `PATH` value), as `execvp`
/// would find it.
pub fn which(program: &str, path: &str) -> Option<Utf8PathBuf> {
    path.split(':')
        .filter(|dir| !dir.is_empty())
        .map(|dir| Utf8Path::new(dir).join(program))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Writes `files` (name, text) into `dir`, creating it. Unless `force`, nothing is written
/// when any of the files already exists, so a refused export leaves no half-written set.
pub fn write_all(
    dir: &Utf8Path,
    files: &[(String, String)],
    force: bool,
) -> Result<Vec<Utf8PathBuf>, WriteError> {
    if !force && let Some((name, _)) = files.iter().find(|(name, _)| dir.join(name).exists()) {
        return Err(WriteError::Exists {
            path: dir.join(name),
        });
    }
    std::fs::create_dir_all(dir).map_err(|source| WriteError::CreateDir {
        path: dir.to_owned(),
        source,
    })?;
    let mut written = Vec::with_capacity(files.len());
    for (name, text) in files {
        let path = dir.join(name);
        write_one(&path, text, true)?;
        written.push(path);
    }
    Ok(written)
}

/// Writes one file, refusing to replace an existing one unless `force`.
pub fn write_one(path: &Utf8Path, text: &str, force: bool) -> Result<(), WriteError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let result = options
        .open(path)
        .and_then(|mut file| io::Write::write_all(&mut file, text.as_bytes()));
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(WriteError::Exists {
            path: path.to_owned(),
        }),
        Err(source) => Err(WriteError::Write {
            path: path.to_owned(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_finds_executables_only() {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(dir.path()).unwrap();
        std::fs::write(root.join("plain"), "").unwrap();
        std::fs::write(root.join("tool"), "").unwrap();
        std::fs::set_permissions(root.join("tool"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        let path = format!("/nonexistent::{root}");
        assert_eq!(which("tool", &path), Some(root.join("tool")));
        assert_eq!(which("plain", &path), None);
        assert_eq!(which("missing", &path), None);
    }

    #[test]
    fn existing_files_are_kept_unless_forced() {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(dir.path()).unwrap().join("units");
        let files = vec![
            ("a.service".to_string(), "A".to_string()),
            ("b.service".to_string(), "B".to_string()),
        ];
        write_all(&root, &files[1..], false).unwrap();
        let err = write_all(&root, &files, false).unwrap_err();
        assert!(matches!(err, WriteError::Exists { ref path } if path.ends_with("b.service")));
        assert!(
            !root.join("a.service").exists(),
            "nothing written on refusal"
        );
        write_all(&root, &files, true).unwrap();
        assert_eq!(
            std::fs::read_to_string(root.join("a.service")).unwrap(),
            "A"
        );
    }
}
