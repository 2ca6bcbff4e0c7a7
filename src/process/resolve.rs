//! Finding the file a service's command names, as `execvp` would but with the service's own
//! `PATH` and working directory rather than runpm's: a service that sets `PATH` in its `env`
//! expects its command to be found there.

use std::io;
use std::path::{Path, PathBuf};

use nix::unistd::{AccessFlags, access};

/// Used when the service's environment has no `PATH` at all, as glibc's `execvp` does.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug, PartialEq, Eq)]
pub enum Unresolved {
    /// No directory of `PATH` holds a file of that name.
    NotFound,
    /// Files of that name exist, but none is executable.
    NotExecutable(PathBuf),
}

/// The program to exec for `program`. A name with a slash is taken as it is (a relative one
/// is resolved by the kernel against the service's working directory, which the child has
/// changed to); a bare name is looked up in `path`, whose relative entries (and empty ones,
/// meaning ".") are relative to `cwd`.
pub fn resolve(program: &str, path: Option<&str>, cwd: &Path) -> Result<PathBuf, Unresolved> {
    if program.contains('/') {
        return Ok(PathBuf::from(program));
    }
    if program.is_empty() {
        return Err(Unresolved::NotFound);
    }
    let mut denied = None;
    for dir in path.unwrap_or(DEFAULT_PATH).split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate = cwd.join(dir).join(program);
        match executable(&candidate) {
            Ok(true) => return Ok(candidate),
            Ok(false) => {
                denied.get_or_insert(candidate);
            }
            Err(_) => {}
        }
    }
    Err(denied.map_or(Unresolved::NotFound, Unresolved::NotExecutable))
}

/// Whether `path` is a file (after symlinks) that runpm may execute; an error when it is no
/// file at all.
fn executable(path: &Path) -> io::Result<bool> {
    if !std::fs::metadata(path)?.is_file() {
        return Err(io::ErrorKind::NotFound.into());
    }
    Ok(access(path, AccessFlags::X_OK).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn file(path: &Path, mode: u32) {
        std::fs::write(path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn searches_the_services_path_in_order_relative_to_its_cwd() {
        let root = tempfile::tempdir().unwrap();
        let (a, b) = (root.path().join("a"), root.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        file(&b.join("tool"), 0o755);
        let path = format!("{}:{}", a.display(), b.display());
        assert_eq!(
            resolve("tool", Some(&path), Path::new("/")),
            Ok(b.join("tool"))
        );

        // A relative entry is relative to the working directory; an empty one is ".".
        assert_eq!(
            resolve("tool", Some("b"), root.path()),
            Ok(root.path().join("b/tool"))
        );
        let in_b = resolve("tool", Some(""), &b).unwrap();
        assert_eq!(
            std::fs::canonicalize(in_b).unwrap(),
            std::fs::canonicalize(b.join("tool")).unwrap()
        );

        // The first executable match wins over an earlier one that is not executable.
        // (No execute bit stops root too.)
        file(&a.join("tool"), 0o644);
        assert_eq!(
            resolve("tool", Some(&path), Path::new("/")),
            Ok(b.join("tool"))
        );
    }

    #[test]
    fn tells_missing_from_not_executable() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().to_str().unwrap();
        assert_eq!(
            resolve("nope", Some(dir), root.path()),
            Err(Unresolved::NotFound)
        );
        assert_eq!(
            resolve("", Some(dir), root.path()),
            Err(Unresolved::NotFound)
        );
        // A directory of that name is not a command.
        std::fs::create_dir(root.path().join("sub")).unwrap();
        assert_eq!(
            resolve("sub", Some(dir), root.path()),
            Err(Unresolved::NotFound)
        );
        file(&root.path().join("plain"), 0o644);
        assert_eq!(
            resolve("plain", Some(dir), root.path()),
            Err(Unresolved::NotExecutable(root.path().join("plain")))
        );
    }

    #[test]
    fn takes_names_with_a_slash_as_they_are_and_falls_back_to_the_default_path() {
        assert_eq!(
            resolve("./run.sh", Some("/nowhere"), Path::new("/")),
            Ok("./run.sh".into())
        );
        assert_eq!(
            resolve("/bin/sh", None, Path::new("/")),
            Ok("/bin/sh".into())
        );
        let sh = resolve("sh", None, Path::new("/")).unwrap();
        assert!(sh.ends_with("sh") && sh.is_absolute(), "{sh:?}");
    }
}
