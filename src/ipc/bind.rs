//! Binding the control socket safely, and removing it on exit only if it is still ours.
//!
//! The path is checked with `lstat` first: a symlink is refused (binding through it would
//! create the socket wherever it points), anything that is not a socket is refused (it is not
//! ours to delete), and a socket is replaced only when nothing answers on it. That last step
//! is safe only because the caller holds the single-instance lock, which the `&InstanceLock`
//! parameter asks for as proof: no other runpm for this state directory can be binding now.

use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

use camino::{Utf8Path, Utf8PathBuf};
use tokio::net::UnixListener;

use crate::state::InstanceLock;

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("socket path `{path}` is a symlink; runpm refuses to bind through it (remove it)")]
    Symlink { path: Utf8PathBuf },
    #[error(
        "`{path}` exists and is not a socket; runpm will not replace it (remove it or choose another state_dir)"
    )]
    NotASocket { path: Utf8PathBuf },
    #[error("another daemon listens on `{path}`")]
    AlreadyListening { path: Utf8PathBuf },
    #[error("cannot inspect `{path}`")]
    Inspect {
        path: Utf8PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot remove the stale socket `{path}`")]
    RemoveStale {
        path: Utf8PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot bind the control socket `{path}`")]
    Bind {
        path: Utf8PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot make the control socket `{path}` private (chmod 0600)")]
    Chmod {
        path: Utf8PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Removes the socket file when dropped, unless something else has replaced it since (a
/// second daemon started by hand with the lock deleted, say): its `(dev, ino)` must still be
/// the one we bound.
#[derive(Debug)]
pub struct SocketGuard {
    path: Utf8PathBuf,
    dev: u64,
    ino: u64,
}

impl SocketGuard {
    /// Guards the socket just bound at `path`, remembering its identity. Shared with the
    /// notify socket, which needs the same care on exit.
    pub fn of(path: &Utf8Path) -> io::Result<SocketGuard> {
        let meta = std::fs::symlink_metadata(path)?;
        Ok(SocketGuard {
            path: path.to_owned(),
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }

    pub fn path(&self) -> &Utf8Path {
        &self.path
    }
}

impl Drop for SocketGuard {
    fn drop(&mut self) {
        match std::fs::symlink_metadata(&self.path) {
            Ok(meta) if meta.dev() == self.dev && meta.ino() == self.ino => {
                if let Err(e) = std::fs::remove_file(&self.path) {
                    tracing::warn!(path = %self.path, error = %e, "cannot remove the socket");
                }
            }
            Ok(_) => {
                tracing::debug!(path = %self.path, "the socket was replaced; leaving it");
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %self.path, error = %e, "cannot inspect the socket");
            }
        }
    }
}

/// Binds the control socket at `socket` (mode 0600). Must be called within a tokio runtime.
/// Keep the guard for as long as the daemon serves; dropping it removes the socket.
pub fn bind(
    socket: &Utf8Path,
    _lock: &InstanceLock,
) -> Result<(UnixListener, SocketGuard), BindError> {
    clear_the_way(socket)?;
    let bind_err = |source| BindError::Bind {
        path: socket.to_owned(),
        source,
    };
    let std_listener = std::os::unix::net::UnixListener::bind(socket).map_err(bind_err)?;
    // chmod right after bind rather than a umask around it: umask is process-wide and would
    // race with files other threads create. The 0700 directory closes the short window.
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600)).map_err(|source| {
        BindError::Chmod {
            path: socket.to_owned(),
            source,
        }
    })?;
    let guard = SocketGuard::of(socket).map_err(|source| BindError::Inspect {
        path: socket.to_owned(),
        source,
    })?;
    std_listener.set_nonblocking(true).map_err(bind_err)?;
    let listener = UnixListener::from_std(std_listener).map_err(bind_err)?;
    Ok((listener, guard))
}

/// Makes sure `socket` can be bound: nothing there, or a stale socket that is removed.
fn clear_the_way(socket: &Utf8Path) -> Result<(), BindError> {
    let meta = match std::fs::symlink_metadata(socket) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(BindError::Inspect {
                path: socket.to_owned(),
                source,
            });
        }
    };
    let path = socket.to_owned();
    if meta.file_type().is_symlink() {
        return Err(BindError::Symlink { path });
    }
    if !meta.file_type().is_socket() {
        return Err(BindError::NotASocket { path });
    }
    match std::os::unix::net::UnixStream::connect(socket) {
        Ok(_) => Err(BindError::AlreadyListening { path }),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            tracing::info!(path = %socket, "removing the stale control socket of a previous run");
            std::fs::remove_file(socket).map_err(|source| BindError::RemoveStale { path, source })
        }
        Err(source) => Err(BindError::Inspect { path, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipc::StateDir;

    fn state() -> (tempfile::TempDir, StateDir, InstanceLock) {
        let dir = tempfile::tempdir().unwrap();
        let path = Utf8PathBuf::try_from(dir.path().canonicalize().unwrap()).unwrap();
        let state = StateDir::at(path.join(".runpm"));
        state.create().unwrap();
        let lock = state.lock().unwrap();
        (dir, state, lock)
    }

    #[tokio::test]
    async fn binds_0600_and_removes_on_drop() {
        let (_tmp, state, lock) = state();
        let (listener, guard) = bind(&state.socket, &lock).unwrap();
        let meta = std::fs::symlink_metadata(&state.socket).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.mode() & 0o777, 0o600);
        drop(listener);
        drop(guard);
        assert!(!state.socket.exists());
    }

    #[tokio::test]
    async fn a_stale_socket_is_replaced() {
        let (_tmp, state, lock) = state();
        // A socket file with nobody listening, as a killed daemon leaves it.
        drop(std::os::unix::net::UnixListener::bind(&state.socket).unwrap());
        assert!(state.socket.exists());
        let (_listener, _guard) = bind(&state.socket, &lock).unwrap();
    }

    #[tokio::test]
    async fn a_live_socket_is_not_replaced() {
        let (_tmp, state, lock) = state();
        let _other = std::os::unix::net::UnixListener::bind(&state.socket).unwrap();
        let err = bind(&state.socket, &lock).unwrap_err();
        assert!(matches!(err, BindError::AlreadyListening { .. }), "{err}");
        assert!(state.socket.exists());
    }

    #[tokio::test]
    async fn symlinks_and_files_are_refused() {
        let (_tmp, state, lock) = state();
        let target = state.dir.join("elsewhere.sock");
        std::os::unix::fs::symlink(&target, &state.socket).unwrap();
        let err = bind(&state.socket, &lock).unwrap_err();
        assert!(matches!(err, BindError::Symlink { .. }), "{err}");
        assert!(err.to_string().contains("symlink"));
        assert!(!target.exists());
        std::fs::remove_file(&state.socket).unwrap();
        std::fs::write(&state.socket, "data").unwrap();
        let err = bind(&state.socket, &lock).unwrap_err();
        assert!(matches!(err, BindError::NotASocket { .. }), "{err}");
        assert_eq!(std::fs::read_to_string(&state.socket).unwrap(), "data");
    }

    #[tokio::test]
    async fn the_guard_leaves_a_replaced_socket_alone() {
        let (_tmp, state, lock) = state();
        let (listener, guard) = bind(&state.socket, &lock).unwrap();
        drop(listener);
        // Moved away rather than removed, so that the new socket cannot reuse its inode.
        std::fs::rename(&state.socket, state.dir.join("moved.sock")).unwrap();
        let _theirs = std::os::unix::net::UnixListener::bind(&state.socket).unwrap();
        drop(guard);
        assert!(state.socket.exists());
    }
}
