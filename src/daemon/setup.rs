//! What the loop listens on besides signals and the control socket: runpm's sd_notify
//! sockets, and the watcher of the config and its env files (which a reload may start, move
//! or stop).

use camino::{Utf8Path, Utf8PathBuf};
use tokio::sync::mpsc;

use crate::config::ServiceSpec;
use crate::notify::{self, NotifySocket};
use crate::watch::{DEFAULT_DEBOUNCE, Watcher};

use super::runtime::Control;

/// The sd_notify socket in the state directory, and the abstract one for services of other
/// users; either may be missing (no state directory, not root, or binding failed, which is
/// logged: only `ready.notify` and `watchdog` lose).
pub(super) fn notify_sockets(
    control: Option<&Control>,
) -> (Option<NotifySocket>, Option<NotifySocket>) {
    // sd_notify: one datagram socket for the daemon; services that asked for it get its
    // path in NOTIFY_SOCKET.
    let notify = match control {
        Some(control) => {
            let path = notify::socket_path(&control.state.dir);
            match NotifySocket::bind(&path) {
                Ok(socket) => Some(socket),
                Err(e) => {
                    tracing::warn!(
                        "cannot create the sd_notify socket {path}: {e}; ready.notify cannot work"
                    );
                    None
                }
            }
        }
        None => None,
    };
    // A service that runs as another user cannot reach that socket inside the private
    // state directory; it gets an abstract one. Only root can switch users, so only a root
    // daemon opens it. The name is unique per daemon.
    let notify_others = match control {
        Some(control) if notify.is_some() && nix::unistd::Uid::effective().is_root() => {
            let name = format!("runpm/{}/{}", std::process::id(), control.state.dir);
            let name: String = name.chars().take(100).collect();
            match NotifySocket::bind_abstract(&name) {
                Ok(socket) => Some(socket),
                Err(e) => {
                    tracing::warn!(
                        "cannot create the sd_notify socket for services with `user`: {e}; \
                         their ready.notify cannot work"
                    );
                    None
                }
            }
        }
        _ => None,
    };
    (notify, notify_others)
}

/// The env files that `specs` read, each once.
pub(super) fn env_files<'a>(specs: impl Iterator<Item = &'a ServiceSpec>) -> Vec<Utf8PathBuf> {
    let mut files: Vec<Utf8PathBuf> = specs
        .filter_map(|s| s.env_file.as_ref().map(|f| f.path.clone()))
        .collect();
    files.sort();
    files.dedup();
    files
}

/// Starts, updates or stops the watcher so that it watches `source` and `env_files` exactly
/// when `wanted`. Without a watch no watcher exists at all: no inotify descriptor, no
/// thread.
pub(super) fn sync_watcher(
    watching: &mut Option<(Watcher, mpsc::UnboundedReceiver<()>)>,
    wanted: bool,
    source: &Utf8Path,
    env_files: &[Utf8PathBuf],
) {
    match (wanted, watching.as_mut()) {
        (false, _) => *watching = None,
        (true, Some((watcher, _))) => watcher.update(env_files),
        (true, None) => match Watcher::new(source, env_files, DEFAULT_DEBOUNCE) {
            Ok(started) => *watching = Some(started),
            Err(e) => tracing::warn!(
                "cannot watch {source} for changes: {e}; reload with runpmctl reload or SIGHUP"
            ),
        },
    }
}

/// Hands the pages that start-up used and freed (parsing the config, the first state
/// write) back to the kernel. glibc keeps freed memory inside the heap for reuse; a daemon
/// that then idles for months would hold it for nothing.
pub(super) fn release_free_memory() {
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe { libc::malloc_trim(0) };
}
