//! When runpm itself should end, and with which code.
//!
//! A container orchestrator reads runpm's exit code as the container's result, so it must
//! tell the truth: 0 only when everything ended or stopped cleanly, otherwise the code of the
//! service that failed (128 + signal for a signal, as shells report it).

use std::collections::BTreeMap;

use crate::config::ExitWhen;

use super::deps::{Wait, own_dependencies};
use super::policy::is_success;
use super::service::{Phase, Service};

/// The code a service's final state contributes: `None` when it ended well.
pub fn failure_code(service: &Service) -> Option<u8> {
    match &service.phase {
        Phase::Failed { code, .. } => Some(*code),
        Phase::Exited { status } if !is_success(&service.spec, *status) => {
            Some(status.as_exit_code())
        }
        _ => None,
    }
}

/// A service that will not run again by itself: it ended, or it waits for a dependency
/// that has ended without success. A failed service that `failed_cooldown` will re-arm has
/// not ended for good.
pub(super) fn settled(name: &str, services: &BTreeMap<String, Service>) -> bool {
    ended(name, services, false)
}

/// A service that is not getting anywhere now: as [`settled`], but a failed service counts
/// even if its cool-down will re-arm it later.
pub(super) fn stuck(name: &str, services: &BTreeMap<String, Service>) -> bool {
    ended(name, services, true)
}

fn ended(name: &str, services: &BTreeMap<String, Service>, rearmable_too: bool) -> bool {
    let Some(s) = services.get(name) else {
        return true;
    };
    // A scheduled service runs again at its next time, whatever its last run did.
    if s.clock.is_some() && s.want.is_up() {
        return false;
    }
    match &s.phase {
        Phase::Exited { .. } => true,
        Phase::Failed { rearm_at, .. } => rearmable_too || rearm_at.is_none(),
        // Waiting for a dependency that cannot get there by itself (through the whole
        // graph: see `deps`).
        Phase::Waiting => match own_dependencies(services, s) {
            Wait::Blocked { rearm_at, .. } => rearmable_too || rearm_at.is_none(),
            _ => false,
        },
        _ => false,
    }
}

/// Whether `exit_when` asks runpm to end now, and with which code (before the remaining
/// services are stopped). Services that nobody asked to run do not count.
pub fn exit_when_fired(when: &ExitWhen, services: &BTreeMap<String, Service>) -> Option<u8> {
    let wanted = || services.iter().filter(|(_, s)| s.want.is_up());
    match when {
        ExitWhen::AllExited => {
            let mut any = false;
            for (name, _) in wanted() {
                any = true;
                if !settled(name, services) {
                    return None;
                }
            }
            any.then(|| wanted().find_map(|(_, s)| failure_code(s)).unwrap_or(0))
        }
        ExitWhen::AnyFailed => wanted().find_map(|(_, s)| failure_code(s)),
        ExitWhen::Services(names) => names.iter().find_map(|n| {
            let s = services.get(n)?;
            (s.want.is_up() && settled(n, services)).then(|| failure_code(s).unwrap_or(0))
        }),
    }
}
