//! `runpm up -d`: running the supervisor in the background.
//!
//! `runpm up -d` forks once it has loaded the config and taken the instance lock, before
//! it has started a thread or a runtime (forking a process with threads is not safe, so this
//! is checked). The child starts a new session, sends its output to the daemon log and
//! becomes the daemon with the config, state directory and lock already in hand; nothing is
//! executed or parsed twice. On a pipe it reports how the start goes: a `progress` line per
//! service that runs, completed, failed or gave up; once none is still on its way, a `result`
//! line per service and `ready`; then it closes the pipe. The parent blocks on the read end,
//! shows the progress on a terminal, and returns 0 when every service runs or completed, 1
//! naming those that failed or gave up (the daemon keeps running either way, as `docker
//! compose up --wait` leaves its containers). End-of-file without `ready` means the daemon
//! died, and the parent shows the end of the log. No polling either way.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};
use nix::fcntl::OFlag;
use nix::unistd::{ForkResult, Pid};

use crate::supervisor::{News, Outcome};

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
    /// The daemon: its stdio now go to the log; report the start with a [`Reporter`].
    Daemon(Reporter),
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
            Ok(Forked::Daemon(Reporter {
                pipe: File::from(write_end),
            }))
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

/// One service's outcome as the daemon reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reported {
    pub service: String,
    /// `running`, `completed`, `failed: WHY`, `gave up: WHY`.
    pub outcome: String,
    /// Failed or gave up.
    pub bad: bool,
}

impl Reported {
    fn line(kind: &str, service: &str, outcome: &Outcome) -> String {
        // One line per record: a reason may hold anything, the service name cannot.
        let text: String = outcome
            .to_string()
            .chars()
            .map(|c| if c == '\t' || c == '\n' { ' ' } else { c })
            .collect();
        let bad = if outcome.is_bad() { "bad" } else { "ok" };
        format!("{kind}\t{service}\t{bad}\t{text}\n")
    }

    fn parse(line: &str) -> Option<(&str, Reported)> {
        let mut fields = line.splitn(4, '\t');
        let kind = fields.next()?;
        let service = fields.next()?.to_owned();
        let bad = fields.next()? == "bad";
        let outcome = fields.next()?.to_owned();
        Some((
            kind,
            Reported {
                service,
                outcome,
                bad,
            },
        ))
    }
}

impl std::fmt::Display for Reported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.service, self.outcome)
    }
}

/// The daemon's end of the pipe.
pub struct Reporter {
    pipe: File,
}

impl Reporter {
    /// Tells the waiting parent how the start goes; the news with the result ends it, and
    /// dropping the reporter afterwards closes the pipe, which lets the parent go.
    pub fn send(&mut self, news: News) {
        let mut text = String::new();
        for (service, outcome) in &news.progress {
            text.push_str(&Reported::line("progress", service, outcome));
        }
        if let Some(result) = &news.result {
            for (service, outcome) in result {
                text.push_str(&Reported::line("result", service, outcome));
            }
            text.push_str("ready\n");
        }
        // The parent may be gone (killed while waiting); the daemon goes on regardless.
        let _ = self.pipe.write_all(text.as_bytes());
    }
}

impl Parent {
    /// Waits until the daemon reports that the start is over, calling `progress` for each
    /// service as it settles; returns the daemon's pid and every service's outcome.
    pub fn wait_ready(
        self,
        mut progress: impl FnMut(&Reported),
    ) -> Result<(u32, Vec<Reported>), DetachError> {
        let pid = self.pid.as_raw() as u32;
        let mut result = Vec::new();
        let mut ready = false;
        let ended = read_lines(self.ready, READY_TIMEOUT, |line| {
            match Reported::parse(line) {
                Some(("progress", r)) => progress(&r),
                Some(("result", r)) => result.push(r),
                _ if line == "ready" => ready = true,
                _ => {}
            }
        });
        if ready {
            return Ok((pid, result));
        }
        if !ended {
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

/// Calls `each` with every complete line (without its newline) until end-of-file or
/// `timeout`; false when the time ran out.
fn read_lines(fd: OwnedFd, timeout: Duration, mut each: impl FnMut(&str)) -> bool {
    let mut pending = Vec::new();
    read_with_timeout(fd, timeout, |chunk| {
        pending.extend_from_slice(chunk);
        while let Some(at) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=at).collect();
            each(String::from_utf8_lossy(&line[..at]).as_ref());
        }
    })
}

/// Reads until end-of-file or `timeout`, handing each chunk to `out`; false when the time
/// ran out.
fn read_with_timeout(fd: OwnedFd, timeout: Duration, mut out: impl FnMut(&[u8])) -> bool {
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
                Ok(n) => out(&buf[..n]),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_one_line_and_reads_back() {
        let why = Outcome::Failed("spawn failed:\tno such file\nor directory".into());
        let line = Reported::line("result", "web", &why);
        assert_eq!(line.matches('\n').count(), 1);
        assert!(line.ends_with('\n'));
        let (kind, r) = Reported::parse(line.trim_end_matches('\n')).unwrap();
        assert_eq!(kind, "result");
        assert_eq!(r.service, "web");
        assert!(r.bad);
        assert_eq!(r.outcome, "failed: spawn failed: no such file or directory");

        let line = Reported::line("progress", "db", &Outcome::Running);
        let (_, r) = Reported::parse(line.trim_end_matches('\n')).unwrap();
        assert!(!r.bad);
        assert_eq!(r.to_string(), "db: running");
    }

    #[test]
    fn lines_are_handed_over_whole_across_reads() {
        let (read_end, write_end) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
        let mut w = File::from(write_end);
        w.write_all(b"progress\ta\tok\trunning\nprogr").unwrap();
        w.write_all(b"ess\tb\tbad\tgave up: x\nready\n").unwrap();
        drop(w);
        let mut lines = Vec::new();
        assert!(read_lines(read_end, Duration::from_secs(5), |l| {
            lines.push(l.to_owned())
        }));
        assert_eq!(
            lines,
            [
                "progress\ta\tok\trunning",
                "progress\tb\tbad\tgave up: x",
                "ready"
            ]
        );
    }
}
