//! Who a signal is for. The sign flip between a process and its process group is easy to
//! get wrong when pids are bare integers, so it happens here and only here.

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// One process.
    Process(i32),
    /// Every process in the group whose id is this (a service leads its own group).
    Group(i32),
    /// Every process in the cgroup of the service that leads this group. Only the daemon's
    /// shell knows the cgroup; signalled here, without one, it is the group.
    Cgroup(i32),
}

impl Target {
    /// Sends `signal`. A target that is already gone is not an error: the reaper reports
    /// its end separately, and racing it here would only produce noise.
    pub fn signal(self, signal: Signal) -> Result<(), Errno> {
        let pid = match self {
            // Refuse 0 and negatives outright: kill(0) or kill(-1) would hit runpm's own
            // group or every process it may signal.
            Target::Process(pid) | Target::Group(pid) | Target::Cgroup(pid) if pid <= 1 => {
                return Err(Errno::EINVAL);
            }
            Target::Process(pid) => Pid::from_raw(pid),
            Target::Group(pgid) | Target::Cgroup(pgid) => Pid::from_raw(-pgid),
        };
        match kill(pid, signal) {
            Ok(()) | Err(Errno::ESRCH) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_targets_that_would_broadcast() {
        assert_eq!(Target::Group(0).signal(Signal::SIGTERM), Err(Errno::EINVAL));
        assert_eq!(
            Target::Process(1).signal(Signal::SIGTERM),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            Target::Group(-5).signal(Signal::SIGTERM),
            Err(Errno::EINVAL)
        );
    }
}
