//! `runpm up -d`: running the supervisor in the background.
//!
//! The parent re-executes runpm (forking a process that may already hold threads and a
//! runtime is not safe) in a new session, with its output appended to the daemon log, and
//! hands it the write end of a pipe. The daemon writes `ready` on it once the control socket
//! listens and the services it was asked to start have started (or settled), then closes
//! it. The parent blocks on the read end: `ready` means return 0; end-of-file without it
//! means the daemon died, and the parent shows the end of the log. No polling either way.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};
use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl};

/// The environment variable through which the daemon learns its readiness pipe's fd.
pub const READY_FD_ENV: &str = "RUNPM_READY_FD";

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
    #[error("cannot start the daemon")]
    Spawn(#[source] std::io::Error),
    #[error("the daemon (pid {pid}) exited before it was ready; the end of {log}:\n{tail}")]
    Died {
        pid: u32,
        log: Utf8PathBuf,
        tail: String,
    },
    #[error("the daemon (pid {pid}) is not ready after {}s; see {log}", READY_TIMEOUT.as_secs())]
    NotReady { pid: u32, log: Utf8PathBuf },
}

/// Starts `runpm ARGS` in the background and waits until it reports ready. Returns its pid.
pub fn spawn_detached(args: &[OsString], log: &Utf8Path) -> Result<u32, DetachError> {
    let log_file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(log)
        .map_err(|source| DetachError::Log {
            path: log.to_owned(),
            source,
        })?;
    let (read_end, write_end) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| DetachError::Spawn(e.into()))?;
    let exe = std::env::current_exe().map_err(DetachError::Spawn)?;
    let stderr = log_file.try_clone().map_err(DetachError::Spawn)?;
    let write_fd = write_end.as_raw_fd();
    let mut cmd = Command::new(exe);
    cmd.args(args)
        .env(READY_FD_ENV, write_fd.to_string())
        .stdin(Stdio::null())
        .stdout(log_file)
        .stderr(stderr);
    // SAFETY: only async-signal-safe calls (setsid, fcntl) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            nix::unistd::setsid()?;
            // The pipe is close-on-exec so that nothing else inherits it; only this one
            // child keeps it across exec, under the same number.
            let fd = std::os::fd::BorrowedFd::borrow_raw(write_fd);
            fcntl(fd, FcntlArg::F_SETFD(FdFlag::empty()))?;
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(DetachError::Spawn)?;
    drop(write_end);
    let pid = child.id();
    let mut answer = Vec::new();
    let ready = read_with_timeout(read_end, &mut answer, READY_TIMEOUT);
    if answer.starts_with(b"ready") {
        return Ok(pid);
    }
    if !ready {
        return Err(DetachError::NotReady {
            pid,
            log: log.to_owned(),
        });
    }
    // End of file without `ready`: the daemon is gone (or going); collect it.
    let _ = child.wait();
    Err(DetachError::Died {
        pid,
        log: log.to_owned(),
        tail: tail(log, 20),
    })
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

/// In the daemon: the readiness pipe handed over by `runpm up -d`, if this is such a daemon.
/// The variable is removed from what services inherit (see `process::spawn`), and the fd
/// is made close-on-exec so no service holds the parent's wait open.
pub fn take_ready_pipe() -> Option<File> {
    let fd: RawFd = std::env::var(READY_FD_ENV).ok()?.parse().ok()?;
    // Only a pipe can be ours: a stale variable must not make us take over another file.
    let meta = nix::sys::stat::fstat(unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }).ok()?;
    if meta.st_mode & libc_s_ifmt() != libc_s_ififo() {
        return None;
    }
    // SAFETY: the parent placed the pipe at this number for us alone, and nothing else in
    // this process owns it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    fcntl(&owned, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).ok()?;
    Some(File::from(owned))
}

/// Tells the waiting parent that the daemon is ready, and lets it go.
pub fn signal_ready(mut pipe: File) {
    let _ = pipe.write_all(b"ready\n");
}

fn libc_s_ifmt() -> u32 {
    nix::sys::stat::SFlag::S_IFMT.bits()
}

fn libc_s_ififo() -> u32 {
    nix::sys::stat::SFlag::S_IFIFO.bits()
}
