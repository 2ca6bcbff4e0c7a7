//! The daemon's side of a re-exec (see [`crate::reexec`]): gathering the descriptors that
//! must live on into the carried state, and taking them back in the new image.

use std::collections::HashMap;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex};

use camino::Utf8PathBuf;

use crate::config::{ExitWhen, Listen};
use crate::reexec::{CarriedFds, CarriedPipe, ReexecState, STATE_VERSION};
use crate::supervisor::CarriedTable;

use super::shell::Shell;

/// The read ends of the output pipes of the runs being read, by pid: what a re-exec hands
/// on. A reader removes its entry when it ends (both pipes closed), before the numbers can
/// be reused.
pub(super) type LivePipes = Arc<Mutex<HashMap<i32, CarriedPipe>>>;

/// What a re-executed daemon takes back, by descriptor.
#[derive(Debug, Default)]
pub struct Resumed {
    pub table: Option<CarriedTable>,
    pub control: Option<OwnedFd>,
    pub notify: Option<(OwnedFd, String)>,
    pub notify_others: Option<(OwnedFd, String)>,
    pub pipes: Vec<(CarriedPipe, OwnedFd, OwnedFd)>,
    pub sockets: Vec<(String, Listen, OwnedFd)>,
    pub store: Vec<(String, String, OwnedFd)>,
    pub panics: Vec<u64>,
}

/// What the daemon knows about itself that a re-exec carries besides the table.
pub(super) struct Carrying<'a> {
    pub state_dir: Utf8PathBuf,
    pub exit_when_default: Option<ExitWhen>,
    pub watch: bool,
    pub console: bool,
    pub control: Option<RawFd>,
    pub lock: Option<RawFd>,
    pub notify: Option<(RawFd, String)>,
    pub notify_others: Option<(RawFd, String)>,
    pub shell: &'a Shell,
    pub panics: Vec<u64>,
}

impl Carrying<'_> {
    pub fn state(self, table: CarriedTable) -> Option<ReexecState> {
        let binary = crate::reexec::binary()?.to_owned();
        let pipes = match self.shell.pipes.lock() {
            Ok(pipes) => pipes.values().cloned().collect(),
            Err(_) => return None,
        };
        Some(ReexecState {
            version: STATE_VERSION,
            binary,
            table,
            state_dir: self.state_dir,
            exit_when_default: self.exit_when_default,
            watch: self.watch,
            console: self.console,
            panics: self.panics,
            fds: CarriedFds {
                control: self.control,
                lock: self.lock,
                notify: self.notify,
                notify_others: self.notify_others,
                pipes,
                sockets: self.shell.sockets.export(),
                store: self.shell.fd_store.export(),
            },
        })
    }
}

/// Takes ownership of the descriptors `fds` names (once each), for the new image.
///
/// After a panic the state is the one saved with the last `state.json`, and a descriptor it
/// names may have been closed since (a service that restarted got new pipes, which did not
/// survive the exec): such a number is left alone rather than owned, so that nothing closes
/// it twice.
///
/// # Safety
///
/// Every number in `fds` that is open must be a descriptor this process owns and nothing
/// else does: the previous image passed them on purpose, and nothing has touched them yet.
pub unsafe fn adopt(state: ReexecState) -> (Resumed, crate::reexec::ReexecState) {
    // SAFETY: only the descriptor's flags are read.
    let open = |fd: RawFd| unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0;
    // SAFETY: the caller's promise, for each open number taken once.
    let own = |fd: RawFd| open(fd).then(|| unsafe { OwnedFd::from_raw_fd(fd) });
    let set_cloexec = |fd: RawFd| {
        // SAFETY: only the descriptor's flags change.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    };
    for fd in state.fds.all() {
        set_cloexec(fd);
    }
    let fds = state.fds.clone();
    let resumed = Resumed {
        table: Some(state.table.clone()),
        control: fds.control.and_then(own),
        notify: fds.notify.and_then(|(fd, a)| Some((own(fd)?, a))),
        notify_others: fds.notify_others.and_then(|(fd, a)| Some((own(fd)?, a))),
        pipes: fds
            .pipes
            .into_iter()
            .filter_map(|p| {
                let (out, err) = (own(p.stdout)?, own(p.stderr)?);
                Some((p, out, err))
            })
            .collect(),
        sockets: fds
            .sockets
            .into_iter()
            .filter_map(|(s, l, fd)| Some((s, l, own(fd)?)))
            .collect(),
        store: fds
            .store
            .into_iter()
            .filter_map(|(s, n, fd)| Some((s, n, own(fd)?)))
            .collect(),
        panics: state.panics.clone(),
    };
    (resumed, state)
}
