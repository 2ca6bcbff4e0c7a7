//! The pre-flight check of the candidate binary, and the exec itself.

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use super::state::{ReexecState, STATE_VERSION, write_state};

/// How long the candidate may take to say whether it can read the state.
const PREFLIGHT_LIMIT: Duration = Duration::from_secs(10);

static BINARY: OnceLock<PathBuf> = OnceLock::new();

/// Keeps the path runpm was started from, before anything can replace the file: a package
/// upgrade renames a new file over it, after which `/proc/self/exe` names the old, deleted
/// inode, while the path names the new binary that a re-exec must run. `carried`: the path
/// a re-executed runpm was given by its predecessor.
pub fn remember_binary(carried: Option<PathBuf>) {
    let path = carried.or_else(|| std::env::current_exe().ok());
    if let Some(path) = path {
        let _ = BINARY.set(path);
    }
}

/// The path to re-execute.
pub fn binary() -> Option<&'static Path> {
    BINARY.get().map(PathBuf::as_path)
}

#[derive(Debug, thiserror::Error)]
pub enum ReexecError {
    #[error("runpm does not know the path it was started from")]
    NoBinary,
    #[error("cannot run `{binary}`")]
    Start {
        binary: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{binary}` cannot take over (state version {STATE_VERSION}): {why}")]
    Refused { binary: String, why: String },
    #[error("cannot pass the state to `{binary}`")]
    State {
        binary: String,
        #[source]
        source: std::io::Error,
    },
    #[error("execve of `{binary}` failed")]
    Exec {
        binary: String,
        #[source]
        source: std::io::Error,
    },
}

/// Runs `binary __reexec-check --state-version V`: it must exit 0 in time. Its stderr
/// (the first lines) says why not.
pub fn preflight(binary: &Path) -> Result<(), ReexecError> {
    let name = binary.display().to_string();
    let mut child = Command::new(binary)
        .args([
            "__reexec-check",
            "--state-version",
            &STATE_VERSION.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| ReexecError::Start {
            binary: name.clone(),
            source,
        })?;
    // Waited for through a pidfd with a time limit: a candidate that hangs must not hang
    // the supervisor. The runtime is single-threaded, so the reaper cannot take this
    // child's status before `wait` below does.
    let pid = rustix::process::Pid::from_raw(child.id() as i32);
    let done = pid
        .and_then(|p| rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok())
        .map(|pidfd| {
            use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
            let timeout = PollTimeout::try_from(PREFLIGHT_LIMIT).unwrap_or(PollTimeout::MAX);
            let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
            matches!(poll(&mut fds, timeout), Ok(n) if n > 0)
        })
        .unwrap_or(true);
    if !done {
        let _ = child.kill();
    }
    let status = child.wait().map_err(|source| ReexecError::Start {
        binary: name.clone(),
        source,
    })?;
    let mut said = String::new();
    if let Some(mut err) = child.stderr.take() {
        let _ = err.by_ref().take(4096).read_to_string(&mut said);
    }
    let said: String = said.lines().take(3).collect::<Vec<_>>().join("; ");
    if !done {
        return Err(ReexecError::Refused {
            binary: name,
            why: format!("it did not answer within {}s", PREFLIGHT_LIMIT.as_secs()),
        });
    }
    if status.success() {
        return Ok(());
    }
    let how = match status.code() {
        Some(code) => format!("it exited with code {code}"),
        None => "it was killed by a signal".to_owned(),
    };
    Err(ReexecError::Refused {
        binary: name,
        why: if said.is_empty() {
            how
        } else {
            format!("{how}: {said}")
        },
    })
}

/// Signals that would end or steer runpm, held back from the exec until the new image has
/// its handlers (a blocked signal stays pending across `execve`): a SIGTERM in between
/// must stop the services in order, not kill runpm; a SIGCHLD must still be reaped.
const HELD: [i32; 8] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGHUP,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGPWR,
    libc::SIGCHLD,
];

fn held() -> libc::sigset_t {
    // SAFETY: an empty set filled with valid signal numbers.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in HELD {
            libc::sigaddset(&mut set, sig);
        }
        set
    }
}

/// Holds back the signals [`exec`] holds, from the moment a re-exec is decided: those that
/// arrive meanwhile stay pending in the kernel for the new image (or for this one, should
/// the exec fail: [`release_signals`]).
pub fn hold_signals() {
    let set = held();
    // SAFETY: changes only this thread's mask (the runtime's only thread).
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
}

/// Unblocks what [`exec`] held back: called by the new image once its handlers are in.
pub fn release_signals() {
    let set = held();
    // SAFETY: changes only this thread's mask (the runtime's only thread).
    unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
}

fn set_cloexec(fd: RawFd, on: bool) {
    // SAFETY: F_GETFD/F_SETFD only change the descriptor's flags.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags >= 0 {
            let flags = if on {
                flags | libc::FD_CLOEXEC
            } else {
                flags & !libc::FD_CLOEXEC
            };
            libc::fcntl(fd, libc::F_SETFD, flags);
        }
    }
}

/// Executes `state.binary` with `state`; returns only when that failed, with everything as
/// it was (the old image goes on).
pub fn exec(state: &ReexecState) -> ReexecError {
    let name = state.binary.display().to_string();
    let memfd = match write_state(state) {
        Ok(fd) => fd,
        Err(source) => {
            return ReexecError::State {
                binary: name,
                source,
            };
        }
    };
    let mut keep = state.fds.all();
    keep.push(memfd.as_raw_fd());
    for &fd in &keep {
        set_cloexec(fd, false);
    }
    let set = held();
    // SAFETY: blocks signals on this thread only; undone below if the exec fails.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    let source = Command::new(&state.binary)
        .args(["__reexec", "--state-fd", &memfd.as_raw_fd().to_string()])
        .exec();
    release_signals();
    for &fd in &keep {
        set_cloexec(fd, true);
    }
    ReexecError::Exec {
        binary: name,
        source,
    }
}
