//! What cgroups change in the core's decisions: which kill mode is in force, how a run
//! that the kernel's OOM killer ended is recorded, and the restart `memory_restart` asks
//! for.
//!
//! The core reads nothing itself: whether the OOM killer ended a run is told by the shell
//! (`Event::OomKilled`, just before that run's exit), which reads the cgroup's
//! `memory.events` only for runs that SIGKILL ended.

use crate::config::KillMode;
use crate::process::ExitStatus;
use crate::supervisor::event::{Effect, Now};
use crate::supervisor::service::{AfterStop, Phase};
use crate::supervisor::status::EndReason;

use super::Supervisor;

/// The kill mode in force: `cgroup` acts as `group` where runpm has no cgroups.
pub(super) fn effective(mode: KillMode, cgroups: bool) -> KillMode {
    match mode {
        KillMode::Cgroup if !cgroups => KillMode::Group,
        mode => mode,
    }
}

/// How a run that ended by itself is recorded: `oom-killed` when SIGKILL ended it and the
/// shell saw its cgroup's `oom_kill` count grow (`oom`).
pub(super) fn end_reason(mode: KillMode, status: ExitStatus, oom: bool) -> EndReason {
    let killed = status == ExitStatus::Signal(nix::sys::signal::Signal::SIGKILL as i32);
    if killed && mode == KillMode::Cgroup && oom {
        EndReason::OomKilled
    } else {
        EndReason::Exited
    }
}

impl Supervisor {
    /// Whether services run in cgroups of their own: set once at start-up, from what the
    /// daemon found (see `crate::cgroup::discover`).
    pub fn set_cgroups(&mut self, enabled: bool) {
        self.cgroups = enabled;
    }

    pub fn cgroups(&self) -> bool {
        self.cgroups
    }

    /// `memory_restart`: the service's memory went above the limit; restart the run that
    /// caused it (a later run is not to blame for an earlier notification).
    pub(super) fn on_memory_exceeded(
        &mut self,
        service: &str,
        pid: i32,
        now: Now,
        fx: &mut Vec<Effect>,
    ) {
        let Some(svc) = self.services.get(service) else {
            return;
        };
        let Phase::Running(run) = &svc.phase else {
            return;
        };
        if run.pid != pid || self.shutdown.is_some() || svc.want.is_down() {
            return;
        }
        tracing::warn!(
            "{service}: memory above memory_restart ({} bytes): restarting",
            svc.spec.limits.memory_restart.unwrap_or_default()
        );
        self.begin_stop(service, AfterStop::Start, now, fx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_kills_fall_back_to_the_group_without_cgroups() {
        assert_eq!(effective(KillMode::Cgroup, false), KillMode::Group);
        assert_eq!(effective(KillMode::Cgroup, true), KillMode::Cgroup);
        assert_eq!(effective(KillMode::Process, true), KillMode::Process);
        assert_eq!(effective(KillMode::Group, true), KillMode::Group);
    }
}
