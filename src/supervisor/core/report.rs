//! The core's reporter: what happened in a turn, as [`Report`]s.
//!
//! The core does not call out to a reporter object: it collects the turn's reports beside
//! its state (`Supervisor::reports`) and hands them out as `Effect::Report`, ahead of the
//! turn's other effects, as it hands out everything else it decides. So the reports stay
//! data that unit tests read from the effects, the core stays free of I/O and of shared
//! state, and the order is the order of the decisions: a subscriber learns that `web`
//! exited before the reply to the `restart` that brought it back reaches its client. The
//! shell fans them out (`daemon::shell`): to the ring of `runpmctl events` and to the
//! lifecycle lines of `runpmctl logs -f`. The daemon's own log keeps its tracing lines,
//! written where the decision is made, with the wording people and tests know.

use std::time::Duration;

use crate::process::ExitStatus;
use crate::reconcile::{Action, Reason};
use crate::report::{Kind, Report};
use crate::supervisor::event::{Effect, Now};

use super::Supervisor;

impl Supervisor {
    /// Moves the turn's reports to the front of its effects.
    pub(super) fn hand_out_reports(&mut self, fx: &mut Vec<Effect>) {
        if self.reports.is_empty() {
            return;
        }
        let reports = self.reports.drain(..).map(Effect::Report);
        fx.splice(0..0, reports);
    }
}

/// `exited`: the main process of `name` ended on its own (`oom`: by the kernel's OOM
/// killer, as its cgroup counted).
pub(super) fn exited(
    name: &str,
    pid: i32,
    status: ExitStatus,
    uptime: Duration,
    oom: bool,
    now: Now,
) -> Report {
    let signal = status.signal().map(|sig| {
        nix::sys::signal::Signal::try_from(sig)
            .map_or_else(|_| format!("signal {sig}"), |s| s.as_str().to_owned())
    });
    let reason = match status {
        _ if oom => "oom-killed",
        ExitStatus::Signal(_) => "signal",
        ExitStatus::Code(_) | ExitStatus::Unknown => "exited",
    };
    Report::about(
        name,
        now.wall,
        Kind::Exited {
            pid,
            code: status.code(),
            signal,
            uptime_ms: uptime.as_millis().try_into().unwrap_or(u64::MAX),
            reason: reason.to_owned(),
        },
    )
}

/// `planned`: what a plan decided for one service, as `describe_action` says it.
pub(super) fn planned(action: &Action, now: Now) -> Report {
    let (name, verb, reason) = match action {
        Action::Start { name } => (name, "started", None),
        Action::Stop { name } => (name, "stopped", None),
        Action::Remove { name } => (name, "removed", None),
        Action::Update { name, changed } => (
            name,
            "updated",
            Some(format!("{} changed", changed.join(", "))),
        ),
        Action::Live { name, changed } => (
            name,
            "limits changed (applied live)",
            Some(format!("{} changed", changed.join(", "))),
        ),
        Action::Restart { name, reason } => {
            let why = match reason {
                Reason::Changed(fields) => format!("{} changed", fields.join(", ")),
                Reason::Dependency(dep) => format!("dependency {dep} restarted"),
                Reason::Requested => "restart requested".to_owned(),
            };
            (name, "restarted", Some(why))
        }
    };
    Report::about(
        name,
        now.wall,
        Kind::Planned {
            action: verb.to_owned(),
            reason,
        },
    )
}
