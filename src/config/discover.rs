//! Finding the configuration when no path is given, the way `git` finds its repository: the
//! project's `services.toml` is found from any subdirectory.

use std::ffi::OsString;

use camino::{Utf8Path, Utf8PathBuf};

/// The file looked for in the current directory and its parents.
pub const DEFAULT_FILE: &str = "services.toml";

#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error("config `{path}` does not exist")]
    Missing { path: Utf8PathBuf },
    #[error("RUNPM_FILE is not valid UTF-8: {value:?}")]
    NotUtf8 { value: OsString },
    #[error(
        "no {DEFAULT_FILE} in `{searched}` or any parent directory (pass -f FILE or set RUNPM_FILE)"
    )]
    NotFound { searched: Utf8PathBuf },
}

/// The config path to use: `explicit` (from `-f`), else `RUNPM_FILE`, else the nearest
/// `services.toml` from `cwd` upwards. Relative paths are taken from `cwd`.
pub fn discover(explicit: Option<&Utf8Path>, cwd: &Utf8Path) -> Result<Utf8PathBuf, DiscoverError> {
    discover_with(explicit, std::env::var_os("RUNPM_FILE"), cwd)
}

/// [`discover`] with the environment passed in, so it can be tested without touching the
/// process's environment.
fn discover_with(
    explicit: Option<&Utf8Path>,
    env_file: Option<OsString>,
    cwd: &Utf8Path,
) -> Result<Utf8PathBuf, DiscoverError> {
    let given =
        match (explicit, env_file.filter(|v| !v.is_empty())) {
            (Some(path), _) => Some(path.to_owned()),
            (None, Some(value)) => Some(Utf8PathBuf::from_path_buf(value.into()).map_err(|p| {
                DiscoverError::NotUtf8 {
                    value: p.into_os_string(),
                }
            })?),
            (None, None) => None,
        };
    if let Some(path) = given {
        let path = cwd.join(path);
        return if path.exists() {
            Ok(path)
        } else {
            Err(DiscoverError::Missing { path })
        };
    }
    cwd.ancestors()
        .map(|dir| dir.join(DEFAULT_FILE))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| DiscoverError::NotFound {
            searched: cwd.to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::tempdir;

    #[test]
    fn explicit_path_wins_and_must_exist() {
        let (_guard, root) = tempdir();
        std::fs::write(root.join("a.toml"), "").unwrap();
        std::fs::write(root.join(DEFAULT_FILE), "").unwrap();
        let found = discover_with(Some("a.toml".into()), Some("b.toml".into()), &root).unwrap();
        assert_eq!(found, root.join("a.toml"));
        let err = discover_with(Some("nope.toml".into()), None, &root).unwrap_err();
        assert!(matches!(err, DiscoverError::Missing { path } if path == root.join("nope.toml")));
    }

    #[test]
    fn runpm_file_comes_next() {
        let (_guard, root) = tempdir();
        std::fs::write(root.join("b.toml"), "").unwrap();
        std::fs::write(root.join(DEFAULT_FILE), "").unwrap();
        assert_eq!(
            discover_with(None, Some("b.toml".into()), &root).unwrap(),
            root.join("b.toml")
        );
        // An empty variable is the same as an unset one.
        assert_eq!(
            discover_with(None, Some("".into()), &root).unwrap(),
            root.join(DEFAULT_FILE)
        );
    }

    #[test]
    fn the_nearest_parent_with_a_services_toml() {
        let (_guard, root) = tempdir();
        let deep = root.join("a/b/c");
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::write(root.join(DEFAULT_FILE), "").unwrap();
        std::fs::write(root.join("a").join(DEFAULT_FILE), "").unwrap();
        assert_eq!(
            discover_with(None, None, &deep).unwrap(),
            root.join("a").join(DEFAULT_FILE)
        );
        assert_eq!(
            discover_with(None, None, &root).unwrap(),
            root.join(DEFAULT_FILE)
        );
    }

    #[test]
    fn nothing_found_says_where_it_looked() {
        let (_guard, root) = tempdir();
        let err = discover_with(None, None, &root).unwrap_err();
        let message = err.to_string();
        assert!(message.contains(root.as_str()), "{message}");
        assert!(message.contains("-f FILE"), "{message}");
    }

    #[test]
    fn the_public_fn_reads_runpm_file() {
        let (_guard, root) = tempdir();
        std::fs::write(root.join("env.toml"), "").unwrap();
        // SAFETY: nextest runs each test in its own process, so no other thread reads the
        // environment concurrently.
        unsafe { std::env::set_var("RUNPM_FILE", root.join("env.toml")) };
        assert_eq!(discover(None, &root).unwrap(), root.join("env.toml"));
    }
}
