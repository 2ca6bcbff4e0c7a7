//! `runpm up -d`: running the supervisor in the background.
//!
//! `runpm up -d` forks once it has loaded the config and taken the instance lock, before
//! it has started a thread or a runtime (forking a process with threads is not safe, so this
//! is checked). The child starts a new session, sends its output to the daemon log and
//! becomes the daemon with the config, state directory and lock already in hand; nothing is
//! executed or parsed twice. It writes `ready` on a pipe once the control socket listens and
//! the services it was asked to start have started (or settled), then closes it. The parent
//! blocks on the read end: `ready` means return 0; end-of-file without it means the daemon
//! died, and the parent shows the end of the log. No polling either way.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};
use nix::fcntl::OFlag;
use nix::unistd::{ForkResult, Pid};

/// How long the parent waits for the daemon to get ready before it gives up waiting (the
/// daemon keeps running; the parent says where to look).
pub const READY_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum DetachError {
    #[error("cannot open the daemon log `{path}`")]
    Log {
        path: Utf8PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Untrusted(crate::owner::Untrusted),
    #[error("cannot start the daemon")]
    Spawn(#[source] std::io::Error),
    #[error(
        "cannot start the daemon: runpm already runs {0} threads, and only a single-threaded process may fork (a bug in runpm; please report it)"
    )]
    Threads(usize),
    #[error("the daemon (pid {pid}) exited before it was ready; the end of {log}:\n{tail}")]
    Died {
        pid: u32,
        log: Utf8PathBuf,
        tail: String,
    },
    #[error("the daemon (pid {pid}) is not ready after {}s; see {log}", READY_TIMEOUT.as_secs())]
    NotReady { pid: u32, log: Utf8PathBuf },
}

/// Which side of the fork we are on.
pub enum Forked {
    /// The command the user ran: wait for the daemon with [`Parent::wait_ready`].
    Parent(Parent),
    /// The daemon: its stdio now go to the log; report readiness with [`signal_ready`].
    Daemon(File),
}

pub struct Parent {
    pid: Pid,
    ready: OwnedFd,
    log: Utf8PathBuf,
}

/// Forks the daemon off this process; see the module documentation.
pub fn fork_daemon(log: &Utf8Path) -> Result<Forked, DetachError> {
    let threads = thread_count();
    if threads != 1 {
        return Err(DetachError::Threads(threads));
    }
    // Never through a planted symlink, never a file another user owns or may write.
    let log_file = crate::owner::open_append(log).map_err(|e| match e {
        crate::owner::OpenError::Io(source) => DetachError::Log {
            path: log.to_owned(),
            source,
        },
        crate::owner::OpenError::Untrusted(e) => DetachError::Untrusted(e),
    })?;
    let spawn = |e: nix::errno::Errno| DetachError::Spawn(e.into());
    let (read_end, write_end) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(spawn)?;
    // SAFETY: the process has one thread (checked above), so the child is a complete copy
    // and may go on as a normal process.
    match unsafe { nix::unistd::fork() }.map_err(spawn)? {
        ForkResult::Parent { child } => Ok(Forked::Parent(Parent {
            pid: child,
            ready: read_end,
            log: log.to_owned(),
        })),
        ForkResult::Child => {
            drop(read_end);
            become_daemon(log_file).map_err(DetachError::Spawn)?;
            Ok(Forked::Daemon(File::from(write_end)))
        }
    }
}

/// In the child: a session of its own (no controlling terminal, no signals from the
/// user's shell), stdin from /dev/null, stdout and stderr appended to the daemon log. Until
/// this is done the child holds the caller's stdout, which `$(runpm up -d)` waits on.
fn become_daemon(log: File) -> std::io::Result<()> {
    nix::unistd::setsid()?;
    nix::unistd::dup2_stdin(File::open("/dev/null")?)?;
    nix::unistd::dup2_stdout(&log)?;
    nix::unistd::dup2_stderr(&log)?;
    Ok(())
}

/// The number of threads of this process, from /proc/self/status.
fn thread_count() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(0)
}

impl Parent {
    /// Waits until the daemon reports ready; returns its pid.
    pub fn wait_ready(self) -> Result<u32, DetachError> {
        let pid = self.pid.as_raw() as u32;
        let mut answer = Vec::new();
        let ready = read_with_timeout(self.ready, &mut answer, READY_TIMEOUT);
        if answer.starts_with(b"ready") {
            return Ok(pid);
        }
        if !ready {
            return Err(DetachError::NotReady { pid, log: self.log });
        }
        // End of file without `ready`: the daemon is gone (or going); collect it.
        let _ = nix::sys::wait::waitpid(self.pid, None);
        Err(DetachError::Died {
            pid,
            tail: tail(&self.log, 20),
            log: self.log,
        })
    }
}

/// Reads until end-of-file or `timeout`; false when the time ran out.
fn read_with_timeout(fd: OwnedFd, out: &mut Vec<u8>, timeout: Duration) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let deadline = std::time::Instant::now() + timeout;
    let mut file = File::from(fd);
    let mut buf = [0u8; 64];
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return false;
        }
        let ms = PollTimeout::try_from(left.as_millis().min(i32::MAX as u128) as i32)
            .unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(
            std::os::fd::AsFd::as_fd(&file),
            PollFlags::POLLIN,
        )];
        match poll(&mut fds, ms) {
            Ok(0) => return false,
            Ok(_) => match file.read(&mut buf) {
                Ok(0) => return true,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return true,
            },
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return true,
        }
    }
}

/// The last `n` lines of a file, for an error message.
fn tail(path: &Utf8Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Tells the waiting parent that the daemon is ready, and lets it go.
pub fn signal_ready(mut pipe: File) {
    let _ = pipe.write_all(b"ready\n");
}
