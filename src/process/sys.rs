//! Process-wide kernel settings and queries.

use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;

pub fn is_pid1() -> bool {
    std::process::id() == 1
}

/// Makes orphaned descendants re-parent to runpm instead of to init, so the reaper sees
/// (and collects) them, as it would as PID 1.
pub fn become_subreaper() -> std::io::Result<()> {
    rustix::process::set_child_subreaper(Some(rustix::process::getpid()))?;
    Ok(())
}

/// Whether no process is left in the group `pgid`. Zombies still count as members, so the
/// answer turns true only once they are reaped (by us as subreaper, or by init).
pub fn group_is_empty(pgid: i32) -> bool {
    if pgid <= 1 {
        return true;
    }
    // EPERM means a member exists that we may not signal: not empty.
    matches!(kill(Pid::from_raw(-pgid), None), Err(Errno::ESRCH))
}

/// Whether `pid` is a child of this process that has not been reaped (running, or a zombie
/// waiting for us). Nothing is collected: `WNOWAIT` leaves a zombie for the reaper.
pub fn is_child(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: waitid writes only into `info`, which lives across the call.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        ) == 0
    }
}

/// Raises the soft limit of open files to the hard limit. Every service holds two pipes
/// (and a log file); the common default soft limit of 1024 would stop a few hundred
/// services from starting. Returns the limit in force.
pub fn raise_open_files_limit() -> std::io::Result<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    }
    Ok(hard)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_is_one_until_it_is_reaped() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        assert!(is_child(pid));
        child.wait().unwrap();
        assert!(!is_child(pid));
        assert!(!is_child(1), "init is nobody's child here");
    }
}
