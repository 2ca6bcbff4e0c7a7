//! The watcher handle: notify watches on the directories of the config's files, feeding the
//! debounce task.
//!
//! notify calls its handler on a thread of its own. The handler only forwards each raw event
//! into a channel; filtering and timing happen in a tokio task, so the debounce sleeps on a
//! timer instead of polling. Dropping the [`Watcher`] drops the notify watch (which ends its
//! thread and, with it, the sending half of that channel) and aborts the task, which closes
//! the notification channel: the consumer sees `None`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};
use notify::{RecommendedWatcher, RecursiveMode, Watcher as _};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use tokio::task::JoinHandle;

use super::debounce::{Shared, Watched, debounce};
use super::filter::Target;
use super::fingerprint::fingerprint;

/// Quiet time after the last event before a reload: long enough to cover one save's burst,
/// short enough that a save feels instant.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(150);

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("cannot resolve `{path}` against the current directory")]
    CurrentDir {
        path: Utf8PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{path}` has no directory to watch")]
    NoDirectory { path: Utf8PathBuf },
    #[error("cannot start a file watcher")]
    Start(#[source] notify::Error),
    #[error("cannot watch `{}` for changes to `{path}`", dir.display())]
    Watch {
        path: Utf8PathBuf,
        dir: std::path::PathBuf,
        #[source]
        source: notify::Error,
    },
}

/// A running watch on the config and its env files. Dropping it stops the watch.
pub struct Watcher {
    // It owns the inotify descriptor and notify's thread.
    watch: RecommendedWatcher,
    /// The config file or unit directory, absolute.
    source: Utf8PathBuf,
    /// The directories watched now.
    dirs: Vec<PathBuf>,
    watched: Shared,
    task: JoinHandle<()>,
}

impl Watcher {
    /// Watches `source` (a config file, or a directory of unit files) and `env_files`, and
    /// returns the watcher with a receiver that yields one `()` per settled burst of changes.
    /// Must be called inside a tokio runtime: the debounce runs as a task on it.
    pub fn new(
        source: &Utf8Path,
        env_files: &[Utf8PathBuf],
        debounce_window: Duration,
    ) -> Result<(Watcher, UnboundedReceiver<()>), WatchError> {
        let source = absolute(source)?;
        let config = target(&source, &[])?;
        let (raw_tx, raw_rx) = unbounded_channel();
        let mut watch = notify::recommended_watcher(move |event| {
            // A failed send means the task is gone, and with it any interest in events.
            if raw_tx.send(event).is_err() {
                tracing::trace!("config event after the watcher stopped");
            }
        })
        .map_err(WatchError::Start)?;
        // The config's own directory must be watchable; an env file's is done below, with
        // a warning when it is not.
        let dirs = config.dirs();
        for dir in &dirs {
            watch
                .watch(dir, RecursiveMode::NonRecursive)
                .map_err(|err| WatchError::Watch {
                    path: source.clone(),
                    dir: dir.clone(),
                    source: err,
                })?;
        }
        let watched = Arc::new(Mutex::new(Watched::new(config)));
        let (tx, rx) = unbounded_channel();
        let task = tokio::spawn(debounce(raw_rx, watched.clone(), debounce_window, tx));
        let mut watcher = Watcher {
            watch,
            source,
            dirs,
            watched,
            task,
        };
        watcher.update(env_files);
        Ok((watcher, rx))
    }

    /// Watches `env_files` (with the config) from now on, instead of the earlier set: the
    /// services' env files change with a reload. A directory that cannot be watched is
    /// logged and left out.
    pub fn update(&mut self, env_files: &[Utf8PathBuf]) {
        let mut target = match target(&self.source, env_files) {
            Ok(target) => target,
            Err(e) => {
                tracing::warn!("cannot watch the env files for changes: {e}");
                return;
            }
        };
        let wanted = target.dirs();
        for dir in self.dirs.iter().filter(|d| !wanted.contains(d)) {
            // The directory may be gone already, which removed its watch.
            let _ = self.watch.unwatch(dir);
        }
        let mut dirs = Vec::new();
        for dir in wanted {
            if self.dirs.contains(&dir) {
                dirs.push(dir);
                continue;
            }
            match self.watch.watch(&dir, RecursiveMode::NonRecursive) {
                Ok(()) => dirs.push(dir),
                Err(e) => {
                    tracing::warn!(
                        "cannot watch {} for changes to env files: {e}; \
                         reload with runpmctl reload after editing them",
                        dir.display()
                    );
                    target
                        .files
                        .retain(|f| f.parent().is_some_and(|p| p != dir.as_path()));
                }
            }
        }
        self.dirs = dirs;
        let known = fingerprint(&target);
        let mut watched = self.watched.lock().unwrap_or_else(PoisonError::into_inner);
        *watched = Watched { target, known };
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        // Aborting closes the notification channel now, rather than once notify's thread
        // has noticed the shutdown and dropped its sender.
        self.task.abort();
    }
}

fn absolute(path: &Utf8Path) -> Result<Utf8PathBuf, WatchError> {
    if path.is_absolute() {
        return Ok(path.to_path_buf());
    }
    let cwd = std::env::current_dir().map_err(|e| WatchError::CurrentDir {
        path: path.to_path_buf(),
        source: e,
    })?;
    let cwd = Utf8PathBuf::try_from(cwd).map_err(|e| WatchError::CurrentDir {
        path: path.to_path_buf(),
        source: e.into_io_error(),
    })?;
    Ok(cwd.join(path))
}

/// What to watch for `source` and `env_files`. A source that is a directory now is a unit
/// directory; anything else is a config file, watched through its directory even if it
/// does not exist yet (it may be mid-save).
fn target(source: &Utf8Path, env_files: &[Utf8PathBuf]) -> Result<Target, WatchError> {
    let mut target = Target::default();
    if source.is_dir() {
        target.unit_dir = Some(source.to_path_buf().into_std_path_buf());
    } else if source.parent().is_some() && source.file_name().is_some() {
        target.files.push(source.to_path_buf().into_std_path_buf());
    } else {
        return Err(WatchError::NoDirectory {
            path: source.to_path_buf(),
        });
    }
    for file in env_files {
        let file = absolute(file)?.into_std_path_buf();
        if file.parent().is_some() && !target.files.contains(&file) {
            target.files.push(file);
        }
    }
    // A symlinked file (a `.env` linked from a dotfiles repository) is edited where it
    // really is: watch that too. A later swap of the link is seen where the link is, and
    // the reload it causes brings this set up to date.
    let resolved: Vec<PathBuf> = target
        .files
        .iter()
        .filter_map(|f| std::fs::canonicalize(f).ok().filter(|real| real != f))
        .collect();
    for real in resolved {
        if !target.files.contains(&real) {
            target.files.push(real);
        }
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    //! Real files in a temporary directory, real inotify. Every wait has a deadline; the only
    //! waits for "nothing" are bounded by `QUIET`.

    use std::fs;
    use std::path::Path;

    use tokio::time::timeout;

    use super::*;

    const WINDOW: Duration = Duration::from_millis(150);
    /// How long to wait for a notification that must come.
    const DEADLINE: Duration = Duration::from_secs(5);
    /// How long to wait to be confident that none comes: several debounce windows.
    const QUIET: Duration = Duration::from_millis(500);

    struct Fixture {
        dir: tempfile::TempDir,
        watcher: Watcher,
        notes: UnboundedReceiver<()>,
    }

    impl Fixture {
        /// A project directory with a `services.toml`, watched in file form.
        fn file() -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            fs::write(dir.path().join("services.toml"), "[services]\n").unwrap();
            Fixture::watching(dir, "services.toml")
        }

        /// A project directory with a `units/` unit directory, watched in directory form.
        fn units() -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            fs::create_dir(dir.path().join("units")).unwrap();
            fs::write(dir.path().join("units/web.toml"), "cmd = [\"true\"]\n").unwrap();
            Fixture::watching(dir, "units")
        }

        fn watching(dir: tempfile::TempDir, source: &str) -> Fixture {
            let path = Utf8PathBuf::try_from(dir.path().join(source)).unwrap();
            let (watcher, notes) = Watcher::new(&path, &[], WINDOW).unwrap();
            Fixture {
                dir,
                watcher,
                notes,
            }
        }

        fn path(&self, name: &str) -> std::path::PathBuf {
            self.dir.path().join(name)
        }

        async fn notified(&mut self) {
            match timeout(DEADLINE, self.notes.recv()).await {
                Ok(Some(())) => {}
                Ok(None) => panic!("the watcher ended"),
                Err(_) => panic!("no notification within {DEADLINE:?}"),
            }
        }

        async fn quiet(&mut self) {
            if let Ok(note) = timeout(QUIET, self.notes.recv()).await {
                panic!("unexpected notification: {note:?}");
            }
        }
    }

    /// An editor's atomic save: write a temporary file beside the target, rename it over.
    fn atomic_save(path: &Path, text: &str) {
        let tmp = path.with_extension("toml.tmp");
        fs::write(&tmp, text).unwrap();
        fs::rename(&tmp, path).unwrap();
    }

    #[tokio::test]
    async fn a_plain_write_notifies_once() {
        let mut f = Fixture::file();
        fs::write(
            f.path("services.toml"),
            "[services.web]\ncmd = [\"true\"]\n",
        )
        .unwrap();
        f.notified().await;
        f.quiet().await;
    }

    #[tokio::test]
    async fn a_burst_of_atomic_saves_notifies_once_and_the_watch_survives_it() {
        let mut f = Fixture::file();
        for i in 0..5 {
            atomic_save(&f.path("services.toml"), &format!("# save {i}\n"));
        }
        f.notified().await;
        f.quiet().await;
        // A watch on the file itself would be silent now; on the directory it is not.
        atomic_save(&f.path("services.toml"), "# again\n");
        f.notified().await;
    }

    #[tokio::test]
    async fn a_vim_style_save_notifies() {
        let mut f = Fixture::file();
        let path = f.path("services.toml");
        fs::rename(&path, f.path("services.toml~")).unwrap();
        fs::write(&path, "# new\n").unwrap();
        fs::remove_file(f.path("services.toml~")).unwrap();
        f.notified().await;
        f.quiet().await;
    }

    #[tokio::test]
    async fn a_symlink_swap_that_never_names_the_file_notifies() {
        // The Kubernetes ConfigMap layout: services.toml → ..data/services.toml, where
        // ..data is a symlink swapped atomically to a new timestamped directory.
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir(root.join("..v1")).unwrap();
        fs::write(root.join("..v1/services.toml"), "# v1\n").unwrap();
        std::os::unix::fs::symlink("..v1", root.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/services.toml", root.join("services.toml")).unwrap();
        let mut f = Fixture::watching(dir, "services.toml");

        fs::create_dir(f.path("..v2")).unwrap();
        fs::write(f.path("..v2/services.toml"), "# v2\n").unwrap();
        std::os::unix::fs::symlink("..v2", f.path("..data_tmp")).unwrap();
        fs::rename(f.path("..data_tmp"), f.path("..data")).unwrap();
        f.notified().await;
    }

    #[tokio::test]
    async fn a_write_to_an_unrelated_file_does_not_notify() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("services.toml"), "[services]\n").unwrap();
        fs::write(dir.path().join("README"), "hello\n").unwrap();
        let mut f = Fixture::watching(dir, "services.toml");
        fs::write(f.path("README"), "hello again\n").unwrap();
        f.quiet().await;
    }

    #[tokio::test]
    async fn a_new_file_beside_the_config_does_not_notify() {
        // nginx's pid file, a `touch`: created under another name, nothing the config
        // resolves to changed.
        let mut f = Fixture::file();
        fs::write(f.path("nginx.pid"), "42\n").unwrap();
        fs::rename(f.path("nginx.pid"), f.path("nginx.pid.old")).unwrap();
        f.quiet().await;
        fs::write(f.path("services.toml"), "# edited\n").unwrap();
        f.notified().await;
    }

    #[tokio::test]
    async fn a_symlinked_env_file_is_watched_where_it_really_is() {
        let mut f = Fixture::file();
        let elsewhere = tempfile::tempdir().unwrap();
        let real = elsewhere.path().join("app.env");
        fs::write(&real, "A=1\n").unwrap();
        std::os::unix::fs::symlink(&real, f.path(".env")).unwrap();
        let link = Utf8PathBuf::try_from(f.path(".env")).unwrap();
        f.watcher.update(std::slice::from_ref(&link));
        fs::write(&real, "A=2\n").unwrap();
        f.notified().await;
        fs::write(elsewhere.path().join("other"), "x\n").unwrap();
        f.quiet().await;
    }

    #[tokio::test]
    async fn an_env_file_is_watched_and_follows_updates() {
        let mut f = Fixture::file();
        fs::create_dir(f.path("env")).unwrap();
        fs::write(f.path("env/a.env"), "A=1\n").unwrap();
        fs::write(f.path("b.env"), "B=1\n").unwrap();
        let a = Utf8PathBuf::try_from(f.path("env/a.env")).unwrap();
        let b = Utf8PathBuf::try_from(f.path("b.env")).unwrap();
        f.watcher.update(std::slice::from_ref(&a));
        atomic_save(&f.path("env/a.env"), "A=2\n");
        f.notified().await;
        fs::write(f.path("b.env"), "B=2\n").unwrap();
        f.quiet().await;

        // After a reload the services read b.env instead.
        f.watcher.update(std::slice::from_ref(&b));
        fs::write(f.path("env/a.env"), "A=3\n").unwrap();
        f.quiet().await;
        fs::write(f.path("b.env"), "B=3\n").unwrap();
        f.notified().await;
    }

    #[tokio::test]
    async fn reading_the_config_does_not_notify() {
        // The daemon reads the file on every reload: reacting to that would loop.
        let mut f = Fixture::file();
        fs::read_to_string(f.path("services.toml")).unwrap();
        f.quiet().await;
    }

    #[tokio::test]
    async fn runpm_state_directory_does_not_notify() {
        let mut f = Fixture::file();
        fs::create_dir(f.path(".runpm")).unwrap();
        fs::write(f.path(".runpm/state.json"), "{}").unwrap();
        f.quiet().await;
    }

    #[tokio::test]
    async fn a_new_unit_file_notifies() {
        let mut f = Fixture::units();
        fs::write(f.path("units/worker.toml"), "cmd = [\"true\"]\n").unwrap();
        f.notified().await;
    }

    #[tokio::test]
    async fn a_removed_unit_file_notifies() {
        let mut f = Fixture::units();
        fs::remove_file(f.path("units/web.toml")).unwrap();
        f.notified().await;
    }

    #[tokio::test]
    async fn a_config_that_does_not_exist_yet_is_watched_through_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = Fixture::watching(dir, "services.toml");
        fs::write(f.path("services.toml"), "# first\n").unwrap();
        f.notified().await;
    }

    #[tokio::test]
    async fn dropping_the_watcher_ends_the_notifications() {
        let Fixture {
            dir,
            watcher,
            mut notes,
        } = Fixture::file();
        drop(watcher);
        fs::write(dir.path().join("services.toml"), "# after\n").unwrap();
        let end = timeout(DEADLINE, notes.recv()).await;
        assert_eq!(end, Ok(None));
    }

    #[tokio::test]
    async fn a_missing_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = Utf8PathBuf::try_from(dir.path().join("nope/services.toml")).unwrap();
        let err = Watcher::new(&path, &[], WINDOW)
            .err()
            .expect("watching a missing directory");
        assert!(matches!(err, WatchError::Watch { .. }), "{err:?}");
    }
}
