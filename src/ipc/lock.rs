//! The single-instance lock: one daemon per state directory.
//!
//! An exclusive `flock` on `<state dir>/lock`, taken without waiting. The kernel drops it
//! when the process dies, however it dies, so a crashed daemon never leaves a stale lock
//! behind (unlike a pid file alone). The pid written into the file only serves the message a
//! second daemon prints. The descriptor is close-on-exec, so services never inherit it.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;

use camino::{Utf8Path, Utf8PathBuf};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use super::statedir::StateDir;

/// Held for as long as the daemon runs; dropping it releases the lock.
#[derive(Debug)]
pub struct InstanceLock {
    file: Flock<File>,
    path: Utf8PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("runpm is already running for {dir} ({})", pid.map_or_else(|| "pid unknown".to_owned(), |p| format!("pid {p}")))]
    AlreadyRunning { pid: Option<u32>, dir: Utf8PathBuf },
    #[error("cannot open the lock file `{path}`")]
    Open {
        path: Utf8PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot lock `{path}`")]
    Lock {
        path: Utf8PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write our pid to `{path}`")]
    WritePid {
        path: Utf8PathBuf,
        #[source]
        source: io::Error,
    },
}

impl StateDir {
    /// Takes the single-instance lock, or says which pid holds it. The directory must exist
    /// ([`StateDir::create`]).
    pub fn lock(&self) -> Result<InstanceLock, LockError> {
        lock_file(&self.lock_file, &self.dir)
    }
}

fn lock_file(path: &Utf8Path, dir: &Utf8Path) -> Result<InstanceLock, LockError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        // A symlink planted at the lock path must not make us truncate its target.
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .map_err(|source| LockError::Open {
            path: path.to_owned(),
            source,
        })?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(file) => {
            let mut lock = InstanceLock {
                file,
                path: path.to_owned(),
            };
            lock.write_pid()?;
            Ok(lock)
        }
        Err((mut file, Errno::EWOULDBLOCK)) => Err(LockError::AlreadyRunning {
            pid: read_pid(&mut file),
            dir: dir.to_owned(),
        }),
        Err((_, errno)) => Err(LockError::Lock {
            path: path.to_owned(),
            source: errno.into(),
        }),
    }
}

/// The holder writes its pid right after locking; a reader that comes in between sees an
/// empty file, hence the `Option`.
fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

impl InstanceLock {
    /// Writes the current pid into the lock file. Called on locking, and again by a daemon
    /// that forked after taking the lock (the lock belongs to the open file, so the child
    /// keeps it), so that the file names the process that actually runs.
    pub fn write_pid(&mut self) -> Result<(), LockError> {
        let pid = std::process::id();
        let result = (|| {
            self.file.set_len(0)?;
            self.file.rewind()?;
            writeln!(&*self.file, "{pid}")
        })();
        result.map_err(|source| LockError::WritePid {
            path: self.path.clone(),
            source,
        })
    }

    /// In the parent after a fork: lets go of this copy without unlocking, because the lock
    /// belongs to the open file the child shares and the child goes on holding it.
    pub fn leave_to_child(self) {
        std::mem::forget(self);
    }

    pub fn path(&self) -> &Utf8Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> (tempfile::TempDir, StateDir) {
        let dir = tempfile::tempdir().unwrap();
        let path = Utf8PathBuf::try_from(dir.path().canonicalize().unwrap()).unwrap();
        let state = StateDir::at(path.join(".runpm"));
        state.create().unwrap();
        (dir, state)
    }

    #[test]
    fn a_second_lock_is_refused_with_the_pid() {
        let (_guard, state) = state();
        let first = state.lock().unwrap();
        let text = std::fs::read_to_string(&state.lock_file).unwrap();
        assert_eq!(text, format!("{}\n", std::process::id()));
        // flock locks belong to the open file description, so a second open in the same
        // process conflicts just as another process would.
        let err = state.lock().unwrap_err();
        assert!(
            matches!(&err, LockError::AlreadyRunning { pid: Some(p), .. } if *p == std::process::id())
        );
        assert_eq!(
            err.to_string(),
            format!(
                "runpm is already running for {} (pid {})",
                state.dir,
                std::process::id()
            )
        );
        drop(first);
        state.lock().unwrap();
    }

    #[test]
    fn a_stale_pid_is_overwritten() {
        let (_guard, state) = state();
        std::fs::write(&state.lock_file, "99999999999\nleftover\n").unwrap();
        let _lock = state.lock().unwrap();
        let text = std::fs::read_to_string(&state.lock_file).unwrap();
        assert_eq!(text, format!("{}\n", std::process::id()));
    }

    #[test]
    fn a_symlink_is_not_followed() {
        let (_guard, state) = state();
        let target = state.dir.join("target");
        std::fs::write(&target, "keep").unwrap();
        std::os::unix::fs::symlink(&target, &state.lock_file).unwrap();
        let err = state.lock().unwrap_err();
        assert!(matches!(err, LockError::Open { .. }), "{err}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
    }
}
