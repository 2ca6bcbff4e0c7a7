//! Where a project's runtime files live: the state directory and the paths inside it.
//!
//! Both binaries compute the same [`StateDir`] from the same inputs, so `runpmctl` finds the
//! socket of the `runpm` that serves the project without asking anyone. The directory is,
//! in order of precedence: `--state-dir`, `RUNPM_STATE_DIR`, `[runpm] state_dir` from the
//! config, systemd's `$STATE_DIRECTORY` (a unit with `StateDirectory=`), `<config
//! dir>/.runpm`. The service logs go to `logs/` inside it, or to systemd's
//! `$LOGS_DIRECTORY` (`LogsDirectory=`) when that is set. The precedence itself is a pure
//! function ([`choose`]); only [`resolve`] reads the environment.

use std::ffi::OsString;
use std::fs::DirBuilder;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};

use camino::{Utf8Path, Utf8PathBuf};

// `env_path` lives with the socket path, the lower of the two: statedir uses sockpath,
// never the other way round.
use super::sockpath;
pub(crate) use super::sockpath::env_path;
use crate::owner::{self, Trust, Untrusted};

/// The state directory used when nothing else is configured, beside the config.
pub const DEFAULT_DIR: &str = ".runpm";

/// The environment variable that overrides the config's `state_dir`.
pub const STATE_DIR_ENV: &str = "RUNPM_STATE_DIR";

/// A project's runtime files. Every path is absolute when the inputs were (the config's are;
/// relative `--state-dir`/`RUNPM_STATE_DIR` values are taken from the current directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir {
    pub dir: Utf8PathBuf,
    /// `dir/runpm.sock`, or a short fallback path when that one is too long for `sun_path`.
    pub socket: Utf8PathBuf,
    /// A private directory that holds the socket outside `dir` (the `/tmp/runpm-UID`
    /// fallback): created 0700 by the daemon and checked by both sides before use.
    pub socket_dir: Option<Utf8PathBuf>,
    pub state_file: Utf8PathBuf,
    pub logs_dir: Utf8PathBuf,
    pub lock_file: Utf8PathBuf,
    /// The secret that the processes of this directory's daemons carry (`state::Token`).
    pub token_file: Utf8PathBuf,
    /// The daemon's own log when it runs detached.
    pub daemon_log: Utf8PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum StateDirError {
    #[error(
        "state directory `{path}` is a symlink; runpm refuses it (point state_dir at the real directory)"
    )]
    Symlink { path: Utf8PathBuf },
    #[error("`{path}` exists and is not a directory")]
    NotADirectory { path: Utf8PathBuf },
    #[error(
        "`{path}` is owned by uid {owner}, not by us (uid {uid}); remove it or choose another state_dir"
    )]
    NotOurs {
        path: Utf8PathBuf,
        owner: u32,
        uid: u32,
    },
    #[error("`{path}` has mode {mode:o}, not 0700; remove it so runpm can recreate it privately")]
    NotPrivate { path: Utf8PathBuf, mode: u32 },
    #[error(transparent)]
    Untrusted(#[from] Untrusted),
    #[error("cannot create `{path}`")]
    Create {
        path: Utf8PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot inspect `{path}`")]
    Inspect {
        path: Utf8PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot make `{path}` private (chmod 0700)")]
    Chmod {
        path: Utf8PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The state directory for a project whose config lives in `base_dir`, reading
/// `RUNPM_STATE_DIR` and `XDG_RUNTIME_DIR` from the environment.
pub fn resolve(
    base_dir: &Utf8Path,
    from_config: Option<&Utf8Path>,
    cli: Option<&Utf8Path>,
) -> StateDir {
    let systemd = systemd_dir(std::env::var_os("STATE_DIRECTORY"));
    let from_config = from_config.or(systemd.as_deref());
    let dir = choose(base_dir, env_path(STATE_DIR_ENV), from_config, cli);
    let mut state = StateDir::at(absolute(&dir));
    if let Some(logs) = systemd_dir(std::env::var_os("LOGS_DIRECTORY")) {
        state.logs_dir = logs;
    }
    state
}

/// The directory systemd made for the unit (`StateDirectory=`, `LogsDirectory=`): the first
/// of the absolute paths it lists, separated by colons when the unit names several.
/// Anything else (unset, empty, relative, not UTF-8) counts as unset.
fn systemd_dir(value: Option<OsString>) -> Option<Utf8PathBuf> {
    let value = value?.into_string().ok()?;
    let first = value.split(':').next()?;
    let path = Utf8PathBuf::from(first);
    path.is_absolute().then_some(path)
}

/// The precedence, without the environment: `cli` > `env` > `from_config` > `base_dir/.runpm`.
/// An empty value counts as unset, as with `RUNPM_FILE`.
pub fn choose(
    base_dir: &Utf8Path,
    env: Option<Utf8PathBuf>,
    from_config: Option<&Utf8Path>,
    cli: Option<&Utf8Path>,
) -> Utf8PathBuf {
    let nonempty = |p: &&Utf8Path| !p.as_str().is_empty();
    cli.filter(nonempty)
        .map(Utf8Path::to_owned)
        .or(env.filter(|p| !p.as_str().is_empty()))
        .or(from_config.filter(nonempty).map(Utf8Path::to_owned))
        .unwrap_or_else(|| base_dir.join(DEFAULT_DIR))
}

/// `path` made absolute against the current directory (lexically: no symlinks resolved, so
/// both binaries get the same spelling, and with it the same socket hash).
fn absolute(path: &Utf8Path) -> Utf8PathBuf {
    std::path::absolute(path)
        .ok()
        .and_then(|p| Utf8PathBuf::from_path_buf(p).ok())
        .unwrap_or_else(|| path.to_owned())
}

impl StateDir {
    /// The paths inside `dir` (which should be absolute), with the socket fallback decided
    /// from the current environment.
    pub fn at(dir: Utf8PathBuf) -> StateDir {
        let (socket, socket_dir) = sockpath::choose(&dir, &sockpath::Fallbacks::from_env());
        StateDir {
            state_file: dir.join("state.json"),
            logs_dir: dir.join("logs"),
            lock_file: dir.join("lock"),
            token_file: dir.join("token"),
            daemon_log: dir.join("runpm.log"),
            socket,
            socket_dir,
            dir,
        }
    }

    /// Creates the directory (and its parents) and makes it private (0700). A symlink at
    /// `dir` is refused: whoever controls its target would control the socket and the state.
    /// So is a directory of another user, or one that others may write to (see
    /// [`crate::owner`]): it is judged on the opened directory, never tightened blindly.
    pub fn create(&self) -> Result<(), StateDirError> {
        if let Some(parent) = self.dir.parent() {
            std::fs::create_dir_all(parent).map_err(|source| StateDirError::Create {
                path: parent.to_owned(),
                source,
            })?;
        }
        create_private(&self.dir)?;
        let dir = self.open_checked(Trust::Daemon)?;
        let mode = dir
            .metadata()
            .map_err(|source| StateDirError::Inspect {
                path: self.dir.clone(),
                source,
            })?
            .mode();
        // Ours and written by nobody else, but readable by others (0755 from an umask):
        // made private, through the same descriptor that was judged.
        if mode & 0o777 != 0o700 {
            dir.set_permissions(std::fs::Permissions::from_mode(0o700))
                .map_err(|source| StateDirError::Chmod {
                    path: self.dir.clone(),
                    source,
                })?;
        }
        if let Some(socket_dir) = &self.socket_dir {
            create_private(socket_dir)?;
            check_private(socket_dir)?;
        }
        Ok(())
    }

    /// Opens the state directory and judges it (owner, mode), refusing a symlink.
    fn open_checked(&self, trust: Trust) -> Result<std::fs::File, StateDirError> {
        let dir = owner::open_dir(&self.dir).map_err(|source| {
            if owner::is_symlink_error(&source) {
                StateDirError::Symlink {
                    path: self.dir.clone(),
                }
            } else if source.raw_os_error() == Some(nix::libc::ENOTDIR) {
                StateDirError::NotADirectory {
                    path: self.dir.clone(),
                }
            } else {
                StateDirError::Inspect {
                    path: self.dir.clone(),
                    source,
                }
            }
        })?;
        let meta = dir.metadata().map_err(|source| StateDirError::Inspect {
            path: self.dir.clone(),
            source,
        })?;
        owner::check(&meta, &self.dir, trust)?;
        Ok(dir)
    }

    /// Checks, without creating anything, the state directory as a client sees it: when it
    /// exists it must be a real directory of this user (or root's), that nobody else may
    /// write to; whoever else controls it controls the socket found there.
    pub fn check_state_dir(&self) -> Result<(), StateDirError> {
        match std::fs::symlink_metadata(&self.dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            _ => self.open_checked(Trust::Client).map(drop),
        }
    }

    /// Checks, without creating anything, that the socket's fallback directory (if any) is
    /// private and ours; a client calls this before trusting a socket found there.
    pub fn check_socket_dir(&self) -> Result<(), StateDirError> {
        match &self.socket_dir {
            Some(dir) if dir.exists() => check_private(dir),
            _ => Ok(()),
        }
    }
}

/// `mkdir path` with mode 0700; an existing entry is left for the caller to inspect.
fn create_private(path: &Utf8Path) -> Result<(), StateDirError> {
    match DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(StateDirError::Create {
            path: path.to_owned(),
            source,
        }),
    }
}

/// A shared directory such as `/tmp` lets anyone create `runpm-UID` first: accept it only
/// when it is a real directory, owned by us, that nobody else can enter.
fn check_private(path: &Utf8Path) -> Result<(), StateDirError> {
    let meta = lstat(path)?;
    if meta.file_type().is_symlink() {
        return Err(StateDirError::Symlink {
            path: path.to_owned(),
        });
    }
    if !meta.is_dir() {
        return Err(StateDirError::NotADirectory {
            path: path.to_owned(),
        });
    }
    let uid = nix::unistd::geteuid().as_raw();
    if meta.uid() != uid {
        return Err(StateDirError::NotOurs {
            path: path.to_owned(),
            owner: meta.uid(),
            uid,
        });
    }
    if meta.mode() & 0o777 != 0o700 {
        return Err(StateDirError::NotPrivate {
            path: path.to_owned(),
            mode: meta.mode() & 0o7777,
        });
    }
    Ok(())
}

fn lstat(path: &Utf8Path) -> Result<std::fs::Metadata, StateDirError> {
    std::fs::symlink_metadata(path).map_err(|source| StateDirError::Inspect {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::tempdir;

    #[test]
    fn precedence_cli_env_config_default() {
        let base = Utf8Path::new("/srv/app");
        let env = || Some(Utf8PathBuf::from("/env"));
        let cfg = Some(Utf8Path::new("/cfg"));
        let cli = Some(Utf8Path::new("/cli"));
        assert_eq!(choose(base, env(), cfg, cli), "/cli");
        assert_eq!(choose(base, env(), cfg, None), "/env");
        assert_eq!(choose(base, None, cfg, None), "/cfg");
        assert_eq!(choose(base, None, None, None), "/srv/app/.runpm");
        // Empty values are unset.
        assert_eq!(
            choose(base, Some("".into()), None, Some(Utf8Path::new(""))),
            "/srv/app/.runpm"
        );
    }

    #[test]
    fn paths_inside_the_dir() {
        let state = StateDir::at("/srv/app/.runpm".into());
        assert_eq!(state.socket, "/srv/app/.runpm/runpm.sock");
        assert_eq!(state.socket_dir, None);
        assert_eq!(state.state_file, "/srv/app/.runpm/state.json");
        assert_eq!(state.logs_dir, "/srv/app/.runpm/logs");
        assert_eq!(state.lock_file, "/srv/app/.runpm/lock");
        assert_eq!(state.token_file, "/srv/app/.runpm/token");
        assert_eq!(state.daemon_log, "/srv/app/.runpm/runpm.log");
    }

    #[test]
    fn resolve_reads_the_env_and_makes_paths_absolute() {
        // SAFETY: nextest runs each test in its own process; no other thread reads the env.
        unsafe { std::env::set_var(STATE_DIR_ENV, "rel/state") };
        let state = resolve(Utf8Path::new("/srv/app"), Some("/cfg".into()), None);
        let cwd = Utf8PathBuf::try_from(std::env::current_dir().unwrap()).unwrap();
        assert_eq!(state.dir, cwd.join("rel/state"));
        let state = resolve(Utf8Path::new("/srv/app"), None, Some("/cli".into()));
        assert_eq!(state.dir, "/cli");
    }

    #[test]
    fn create_makes_a_private_dir() {
        let (_guard, root) = tempdir();
        let state = StateDir::at(root.join("a/b/.runpm"));
        state.create().unwrap();
        let mode = std::fs::metadata(&state.dir).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);
        // Loosened permissions are tightened again.
        std::fs::set_permissions(&state.dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        state.create().unwrap();
        let mode = std::fs::metadata(&state.dir).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }

    #[test]
    fn create_refuses_a_symlink_and_a_file() {
        let (_guard, root) = tempdir();
        std::fs::create_dir(root.join("real")).unwrap();
        std::os::unix::fs::symlink(root.join("real"), root.join("link")).unwrap();
        let err = StateDir::at(root.join("link")).create().unwrap_err();
        assert!(matches!(err, StateDirError::Symlink { .. }), "{err}");
        std::fs::write(root.join("file"), "").unwrap();
        let err = StateDir::at(root.join("file")).create().unwrap_err();
        assert!(matches!(err, StateDirError::NotADirectory { .. }), "{err}");
    }

    #[test]
    fn create_refuses_a_dir_others_may_write_and_leaves_it_as_it_was() {
        let (_guard, root) = tempdir();
        let state = StateDir::at(root.join(".runpm"));
        std::fs::create_dir(&state.dir).unwrap();
        std::fs::set_permissions(&state.dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = state.create().unwrap_err();
        assert!(
            matches!(
                &err,
                StateDirError::Untrusted(Untrusted {
                    problem: owner::Problem::WritableByOthers { .. },
                    ..
                })
            ),
            "{err}"
        );
        assert!(err.to_string().contains("chmod go-w"), "{err}");
        let mode = std::fs::metadata(&state.dir).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o777, "a refused directory is not touched");
        assert!(state.check_state_dir().is_err());
        std::fs::set_permissions(&state.dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        state.check_state_dir().unwrap();
        state.create().unwrap();
    }

    #[test]
    fn a_missing_state_dir_is_fine_for_a_client() {
        let (_guard, root) = tempdir();
        StateDir::at(root.join("nothing"))
            .check_state_dir()
            .unwrap();
    }

    #[test]
    fn check_private_wants_ours_and_0700() {
        let (_guard, root) = tempdir();
        let dir = root.join("sock");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = check_private(&dir).unwrap_err();
        assert!(matches!(err, StateDirError::NotPrivate { .. }), "{err}");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        check_private(&dir).unwrap();
        std::os::unix::fs::symlink(&dir, root.join("link")).unwrap();
        let err = check_private(&root.join("link")).unwrap_err();
        assert!(matches!(err, StateDirError::Symlink { .. }), "{err}");
    }

    #[test]
    fn systemds_directories_are_the_first_absolute_entry() {
        let dir = |v: &str| systemd_dir(Some(OsString::from(v)));
        assert_eq!(dir("/var/lib/runpm"), Some("/var/lib/runpm".into()));
        assert_eq!(dir("/var/lib/a:/var/lib/b"), Some("/var/lib/a".into()));
        assert_eq!(dir(""), None);
        assert_eq!(dir("relative"), None);
        assert_eq!(systemd_dir(None), None);
    }

    #[test]
    fn under_systemd_state_and_logs_go_to_its_directories() {
        // SAFETY: nextest runs each test in its own process; no other thread reads the env.
        unsafe {
            std::env::remove_var(STATE_DIR_ENV);
            std::env::set_var("STATE_DIRECTORY", "/var/lib/runpm");
            std::env::set_var("LOGS_DIRECTORY", "/var/log/runpm");
        }
        let state = resolve(Utf8Path::new("/etc/runpm"), None, None);
        assert_eq!(state.dir, "/var/lib/runpm");
        assert_eq!(state.state_file, "/var/lib/runpm/state.json");
        assert_eq!(state.logs_dir, "/var/log/runpm");
        // What the config or the operator names still wins.
        let state = resolve(Utf8Path::new("/etc/runpm"), Some("/cfg".into()), None);
        assert_eq!(state.dir, "/cfg");
        let state = resolve(Utf8Path::new("/etc/runpm"), None, Some("/cli".into()));
        assert_eq!(state.dir, "/cli");
    }
}
