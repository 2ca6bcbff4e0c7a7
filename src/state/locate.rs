//! How a client finds the state directory (and so the socket) of a project's daemon.
//!
//! The same discovery as `runpm` (`-f`, `RUNPM_FILE`, the nearest `services.toml`), then the
//! same precedence for the state directory. One difference matters: a client must find the
//! daemon even when the config on disk is currently invalid (the user is halfway through an
//! edit and wants `runpmctl status`, or `runpmctl reload` to see the errors). So when the
//! config does not load, only its `state_dir` setting is read, leniently, and failing that
//! the default `.runpm` beside the config is used.

use camino::{Utf8Path, Utf8PathBuf};

use crate::config::{self, DiscoverError};

use super::statedir::{self, STATE_DIR_ENV, StateDir};

/// The settings file of the directory form (see `config::load`).
const SETTINGS_FILE: &str = "runpm.toml";

#[derive(Debug, thiserror::Error)]
pub enum LocateError {
    #[error("cannot find the project's config to locate its daemon")]
    Discover(#[from] DiscoverError),
}

/// The state directory of the project whose config `file` names (or that is discovered from
/// `cwd`), with `state_dir` from `--state-dir`. `--state-dir` or `RUNPM_STATE_DIR` make the
/// config unnecessary, so it is not even looked for then.
pub fn locate(
    file: Option<&Utf8Path>,
    cwd: &Utf8Path,
    state_dir: Option<&Utf8Path>,
) -> Result<StateDir, LocateError> {
    if state_dir.is_some_and(|d| !d.as_str().is_empty())
        || statedir::env_path(STATE_DIR_ENV).is_some()
    {
        return Ok(statedir::resolve(cwd, None, state_dir));
    }
    let path = config::discover(file, cwd)?;
    // Only `state_dir` is needed, so the config is not loaded and validated whole: that
    // cost more than the rest of a `runpmctl status` of a thousand services, and a config
    // that is broken mid-edit must still lead to its daemon.
    let base_dir = if path.is_dir() {
        path.clone()
    } else {
        path.parent()
            .map_or_else(|| path.clone(), Utf8Path::to_owned)
    };
    let from_config = lenient_state_dir(&path).map(|dir| absolute(&base_dir, &dir));
    Ok(statedir::resolve(
        &base_dir,
        from_config.as_deref(),
        state_dir,
    ))
}

/// `[runpm] state_dir` (or `state_dir` in a directory's `runpm.toml`) from a config that
/// does not validate, if the TOML itself still parses and the value is a string.
fn lenient_state_dir(path: &Utf8Path) -> Option<Utf8PathBuf> {
    let (file, table) = if path.is_dir() {
        (path.join(SETTINGS_FILE), None)
    } else {
        (path.to_owned(), Some("runpm"))
    };
    let text = std::fs::read_to_string(file).ok()?;
    // A file that cannot name the key needs no parsing, which was most of the time of a
    // `runpmctl status` with a thousand services. A key is spelt out, or escaped in a
    // quoted key (`"state\u005fdir"`), so both are looked for.
    if !text.contains("state_dir") && !text.contains("\\u") && !text.contains("\\U") {
        return None;
    }
    let document: toml::Table = toml::from_str(&text).ok()?;
    let settings = match table {
        Some(name) => document.get(name)?.as_table()?,
        None => &document,
    };
    settings
        .get("state_dir")?
        .as_str()
        .filter(|s| !s.is_empty())
        .map(Utf8PathBuf::from)
}

/// As the config's validation does: joined to the config's directory, `.` components
/// dropped, so both sides spell the directory (and hash the socket path) the same way.
fn absolute(base: &Utf8Path, path: &Utf8Path) -> Utf8PathBuf {
    base.join(path)
        .components()
        .filter(|c| !matches!(c, camino::Utf8Component::CurDir))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::tempdir;

    const VALID: &str = "[services.web]\ncmd = [\"true\"]\n";

    #[test]
    fn beside_a_discovered_config() {
        let (_guard, root) = tempdir();
        std::fs::write(root.join("services.toml"), VALID).unwrap();
        std::fs::create_dir(root.join("sub")).unwrap();
        let state = locate(None, &root.join("sub"), None).unwrap();
        assert_eq!(state.dir, root.join(".runpm"));
    }

    #[test]
    fn the_configs_state_dir_valid_or_not() {
        let (_guard, root) = tempdir();
        let file = root.join("services.toml");
        std::fs::write(&file, format!("[runpm]\nstate_dir = \"./run\"\n{VALID}")).unwrap();
        assert_eq!(
            locate(Some(&file), &root, None).unwrap().dir,
            root.join("run")
        );
        // Broken mid-edit: an unknown field in a service. The daemon is still found.
        std::fs::write(
            &file,
            format!("[runpm]\nstate_dir = \"./run\"\n{VALID}bogus = 1\n"),
        )
        .unwrap();
        assert_eq!(
            locate(Some(&file), &root, None).unwrap().dir,
            root.join("run")
        );
        // The key in a quoted, escaped spelling is still found.
        std::fs::write(
            &file,
            format!("[runpm]\n\"state\\u005fdir\" = \"./esc\"\n{VALID}"),
        )
        .unwrap();
        assert_eq!(
            locate(Some(&file), &root, None).unwrap().dir,
            root.join("esc")
        );
        // Not even TOML: the default.
        std::fs::write(&file, "[runpm\n").unwrap();
        assert_eq!(
            locate(Some(&file), &root, None).unwrap().dir,
            root.join(".runpm")
        );
    }

    #[test]
    fn a_unit_directory() {
        let (_guard, root) = tempdir();
        let units = root.join("units");
        std::fs::create_dir(&units).unwrap();
        std::fs::write(units.join("web.toml"), "cmd = 5\n").unwrap();
        assert_eq!(
            locate(Some(&units), &root, None).unwrap().dir,
            units.join(".runpm")
        );
        std::fs::write(units.join("runpm.toml"), "state_dir = \"/st\"\n").unwrap();
        assert_eq!(locate(Some(&units), &root, None).unwrap().dir, "/st");
    }

    #[test]
    fn state_dir_needs_no_config() {
        let (_guard, root) = tempdir();
        let state = locate(None, &root, Some(Utf8Path::new("/somewhere"))).unwrap();
        assert_eq!(state.dir, "/somewhere");
        let err = locate(None, &root, None).unwrap_err();
        assert!(matches!(err, LocateError::Discover(_)));
    }
}
