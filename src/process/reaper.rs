//! The only place in runpm that waits for children.
//!
//! On every SIGCHLD the runtime calls [`reap_all`], which loops `waitpid(-1, WNOHANG)` until
//! nothing is left: SIGCHLDs coalesce, so one wake-up may stand for many exits, and there is
//! no cap per turn. Every status is handed back; the supervisor maps pids to services and
//! drops the rest (orphans re-parented to us as PID 1 or subreaper).

use nix::errno::Errno;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

/// How a process ended: an exit code and a terminating signal are kept apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitStatus {
    Code(i32),
    Signal(i32),
    /// It ended, but it was not runpm's child (a survivor of an earlier daemon, watched
    /// through a pidfd), so its status cannot be known.
    Unknown,
}

impl ExitStatus {
    /// The conventional shell encoding, used for runpm's own exit code:
    ///
    /// ```
    /// use runpm::process::ExitStatus;
    /// assert_eq!(ExitStatus::Code(3).as_exit_code(), 3);
    /// assert_eq!(ExitStatus::Signal(9).as_exit_code(), 128 + 9);
    /// ```
    pub fn as_exit_code(self) -> u8 {
        match self {
            ExitStatus::Code(c) => (c & 0xff) as u8,
            ExitStatus::Signal(s) => (128 + s).clamp(0, 255) as u8,
            ExitStatus::Unknown => 0,
        }
    }

    pub fn code(self) -> Option<i32> {
        match self {
            ExitStatus::Code(c) => Some(c),
            ExitStatus::Signal(_) | ExitStatus::Unknown => None,
        }
    }

    pub fn signal(self) -> Option<i32> {
        match self {
            ExitStatus::Signal(s) => Some(s),
            ExitStatus::Code(_) | ExitStatus::Unknown => None,
        }
    }
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            ExitStatus::Code(c) => write!(f, "exited with code {c}"),
            ExitStatus::Signal(s) => match nix::sys::signal::Signal::try_from(s) {
                Ok(sig) => write!(f, "killed by {}", sig.as_str()),
                Err(_) => write!(f, "killed by signal {s}"),
            },
            ExitStatus::Unknown => write!(f, "ended (status unknown: not runpm's child)"),
        }
    }
}

/// Collects every child that has ended, without blocking.
pub fn reap_all() -> Vec<(i32, ExitStatus)> {
    let mut out = Vec::new();
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => out.push((pid.as_raw(), ExitStatus::Code(code))),
            Ok(WaitStatus::Signaled(pid, sig, _core)) => {
                out.push((pid.as_raw(), ExitStatus::Signal(sig as i32)))
            }
            // Stops and continues are not ends; without WUNTRACED they are not reported.
            Ok(WaitStatus::StillAlive) => break,
            Ok(_) => continue,
            Err(Errno::EINTR) => continue,
            // ECHILD: no children at all.
            Err(_) => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_shell_convention() {
        assert_eq!(ExitStatus::Code(3).as_exit_code(), 3);
        assert_eq!(ExitStatus::Signal(9).as_exit_code(), 137);
        assert_eq!(ExitStatus::Signal(15).to_string(), "killed by SIGTERM");
        assert_eq!(ExitStatus::Code(1).to_string(), "exited with code 1");
    }

    #[test]
    // The children are waited for: by reap_all, which is what is under test.
    #[allow(clippy::zombie_processes)]
    fn reaps_every_exited_child_with_code_and_signal_apart() {
        let a = std::process::Command::new("sh")
            .args(["-c", "exit 7"])
            .spawn()
            .unwrap();
        let b = std::process::Command::new("sh")
            .args(["-c", "kill -KILL $$"])
            .spawn()
            .unwrap();
        let want = [
            (a.id() as i32, ExitStatus::Code(7)),
            (b.id() as i32, ExitStatus::Signal(9)),
        ];
        // Wait until both have ended without collecting them, so reap_all has work to do.
        for (pid, _) in want {
            nix::sys::wait::waitid(
                nix::sys::wait::Id::Pid(Pid::from_raw(pid)),
                WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT,
            )
            .unwrap();
        }
        let mut got = reap_all();
        got.sort();
        let mut want = want.to_vec();
        want.sort();
        assert_eq!(got, want);
    }
}
