//! Stopping: the kill policy and runpm's own shutdown.
//!
//! A stop sends `stop_signal` to the process group (or the main process, per `kill_mode`)
//! and sets a deadline `kill_timeout` away; the stop is complete when the main process has
//! ended and its group is empty, or at the deadline with SIGKILL. A shutdown stops every
//! service in reverse dependency order within `shutdown_timeout`, and a second request
//! (or that deadline) escalates to SIGKILL at once. Only the stops of a shutdown speak for
//! runpm's exit code.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal as NixSignal;

use crate::ipc::ProtocolError;
use crate::process::ExitStatus;
use crate::report::{Kind, Report};
use crate::supervisor::event::{Effect, Now};
use crate::supervisor::policy;
use crate::supervisor::service::{AfterStop, Kill, Phase, Stopping};
use crate::supervisor::status::EndReason;

use super::{SIGKILL, Shutdown, Supervisor};

/// The stop signal, then SIGCONT: a stopped (SIGSTOP, Ctrl-Z) process would not act on
/// the stop signal until continued, and would wait out the whole `kill_timeout`.
pub(super) fn push_stop_signal(
    service: &str,
    target: crate::process::Target,
    signal: crate::config::Signal,
    fx: &mut Vec<Effect>,
) {
    fx.push(Effect::Signal {
        service: service.into(),
        target,
        signal,
    });
    if ![NixSignal::SIGCONT, NixSignal::SIGKILL].contains(&signal.0) {
        fx.push(Effect::Signal {
            service: service.into(),
            target,
            signal: SIGCONT,
        });
    }
}

const SIGCONT: crate::config::Signal = crate::config::Signal(NixSignal::SIGCONT);

/// Terminating signals closer together than this are one request. A single Ctrl-C under
/// `timeout 600 runpm up` reaches runpm twice within microseconds (from the terminal, and
/// forwarded by `timeout`), and must not read as the "second Ctrl-C" that kills everything;
/// a person pressing Ctrl-C again takes longer than this.
pub(crate) const SAME_SIGNAL: Duration = Duration::from_millis(200);

/// What a terminating signal (SIGTERM, SIGINT, SIGQUIT, SIGPWR) asks for, given the
/// shutdown already under way, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OnTerminate {
    /// The first: stop every service in order.
    Begin,
    /// The same request delivered again (within [`SAME_SIGNAL`] of the first).
    Repeat,
    /// A second request: kill what is left now.
    Escalate,
    /// Everything is being killed already.
    Nothing,
}

pub(super) fn on_terminate(shutdown: Option<&Shutdown>, now: Instant) -> OnTerminate {
    match shutdown {
        None => OnTerminate::Begin,
        Some(s) if s.escalated => OnTerminate::Nothing,
        Some(s) if now.saturating_duration_since(s.began) < SAME_SIGNAL => OnTerminate::Repeat,
        Some(_) => OnTerminate::Escalate,
    }
}

impl Supervisor {
    pub(super) fn on_terminate(&mut self, signal: &str, now: Now, fx: &mut Vec<Effect>) {
        match on_terminate(self.shutdown.as_ref(), now.at) {
            OnTerminate::Begin => {
                tracing::info!("received {signal}: stopping all services");
                self.begin_shutdown(None, now, fx);
            }
            OnTerminate::Repeat => tracing::debug!(
                "received {signal} again within {}ms: the same request",
                SAME_SIGNAL.as_millis()
            ),
            OnTerminate::Escalate => {
                tracing::warn!("received {signal} again: killing all services now");
                self.escalate_all(now, fx);
            }
            OnTerminate::Nothing => {}
        }
    }

    /// Begins the shutdown; `exit_code`: runpm's exit code when `exit_when` already decided
    /// it (the first unclean stop decides it otherwise).
    pub(super) fn begin_shutdown(&mut self, exit_code: Option<u8>, now: Now, fx: &mut Vec<Effect>) {
        let frozen = self.snapshot();
        for w in std::mem::take(&mut self.waiters) {
            fx.push(Effect::Reply {
                token: w.token,
                reply: Err(ProtocolError::shutting_down()),
            });
        }
        self.shutdown = Some(Shutdown {
            began: now.at,
            deadline: now.after(self.settings.shutdown_timeout),
            escalated: false,
            exit_sent: false,
            frozen,
            exit_code,
        });
        for svc in self.services.values_mut() {
            svc.want = svc.want.down();
        }
    }

    pub(super) fn escalate_all(&mut self, now: Now, fx: &mut Vec<Effect>) {
        if let Some(s) = &mut self.shutdown {
            s.escalated = true;
        }
        let names: Vec<String> = self.services.keys().cloned().collect();
        for name in names {
            self.kill_now(&name, now, fx);
        }
    }

    /// SIGKILL, at once, for a service that is running or stopping.
    pub(super) fn kill_now(&mut self, name: &str, now: Now, fx: &mut Vec<Effect>) {
        let cgroups = self.cgroups;
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        let mode = super::contain::effective(svc.spec.kill_mode, cgroups);
        match &mut svc.phase {
            Phase::Running(run) => {
                Supervisor::end_probe(name, run, fx);
                let run = *run;
                fx.push(Effect::Signal {
                    service: name.into(),
                    target: run.target(mode),
                    signal: SIGKILL,
                });
                let stopping = Stopping {
                    kill: Kill::Forced,
                    ..Stopping::new(run, now.at, AfterStop::Stay)
                };
                svc.set_phase(Phase::Stopping(stopping), now.wall);
                self.reports.push(sigkill(name, run.pid, now));
            }
            Phase::Stopping(st) if st.kill != Kill::Forced => {
                st.kill = Kill::Forced;
                self.reports.push(sigkill(name, st.run.pid, now));
                fx.push(Effect::Signal {
                    service: name.into(),
                    target: st.run.target(mode),
                    signal: SIGKILL,
                });
                if st.main_exit.is_some() && mode == crate::config::KillMode::Cgroup {
                    // Done when the cgroup says it is empty.
                    fx.push(Effect::CheckGroup {
                        service: name.into(),
                        pgid: st.run.pgid,
                    });
                } else if st.main_exit.is_some() {
                    self.finish_stop(name, now);
                }
            }
            _ => {}
        }
    }

    pub(super) fn begin_stop(
        &mut self,
        name: &str,
        then: AfterStop,
        now: Now,
        fx: &mut Vec<Effect>,
    ) {
        let cgroups = self.cgroups;
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        let Phase::Running(mut run) = svc.phase else {
            return;
        };
        Supervisor::end_probe(name, &mut run, fx);
        let signal = svc.spec.stop_signal;
        let target = run.target(super::contain::effective(svc.spec.kill_mode, cgroups));
        tracing::info!("{name}: stopping ({})", signal.name());
        push_stop_signal(name, target, signal, fx);
        self.reports.push(Report::about(
            name,
            now.wall,
            Kind::Stopping {
                pid: run.pid,
                signal: signal.name().to_owned(),
            },
        ));
        let stop = Stopping::new(run, now.after(svc.spec.kill_timeout), then);
        svc.set_phase(Phase::Stopping(stop), now.wall);
    }

    pub(super) fn finish_stop(&mut self, name: &str, now: Now) {
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        let Phase::Stopping(stop) = &svc.phase else {
            return;
        };
        let stop = stop.clone();
        let status = stop
            .main_exit
            .unwrap_or(ExitStatus::Signal(NixSignal::SIGKILL as i32));
        let uptime = now.at.saturating_duration_since(stop.run.started);
        let (reason, detail) = match &stop.then {
            AfterStop::Policy { reason } => (EndReason::Failed, Some(reason.clone())),
            _ => (EndReason::Stopped, None),
        };
        svc.record_exit(stop.run.pid, status, now.wall, uptime, reason, detail); // A survivor of an earlier daemon ends with a status nobody can know: it ended after
        // the stop signal, which is all a clean stop asks.
        let clean = stop.kill != Kill::Forced
            && (policy::is_success(&svc.spec, status)
                || status == ExitStatus::Signal(svc.spec.stop_signal.number())
                || stop.orphaned && status == ExitStatus::Unknown);
        if clean {
            tracing::info!("{name}: stopped");
        } else {
            tracing::warn!("{name}: stopped uncleanly: {status}");
            // Only the stops of runpm's own shutdown speak for its exit code; a restart
            // that needed SIGKILL an hour ago does not.
            if let Some(shutdown) = &mut self.shutdown {
                shutdown.exit_code.get_or_insert(status.as_exit_code());
            }
        }
        self.reports
            .push(Report::about(name, now.wall, Kind::Stopped {}));
        match stop.then {
            AfterStop::Stay => svc.set_phase(Phase::Stopped, now.wall),
            AfterStop::Start => svc.set_phase(Phase::Waiting, now.wall),
            AfterStop::Policy { reason } => {
                if self.shutdown.is_some() || svc.want.is_down() {
                    svc.set_phase(Phase::Stopped, now.wall);
                } else {
                    self.after_run(name, status, uptime, false, Some(reason), now);
                }
            }
        }
    }
}

/// `stopping` with SIGKILL: a stop escalated, or a stop that does not wait.
fn sigkill(name: &str, pid: i32, now: Now) -> Report {
    Report::about(
        name,
        now.wall,
        Kind::Stopping {
            pid,
            signal: SIGKILL.name().to_owned(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shutdown(began: Instant, escalated: bool) -> Shutdown {
        Shutdown {
            began,
            deadline: began + Duration::from_secs(30),
            escalated,
            exit_sent: false,
            frozen: Vec::new(),
            exit_code: None,
        }
    }

    #[test]
    fn the_first_signal_begins_the_shutdown() {
        assert_eq!(on_terminate(None, Instant::now()), OnTerminate::Begin);
    }

    #[test]
    fn a_repeat_within_the_window_is_the_same_request() {
        let t0 = Instant::now();
        let s = shutdown(t0, false);
        for after in [Duration::ZERO, Duration::from_millis(1), SAME_SIGNAL / 2] {
            assert_eq!(on_terminate(Some(&s), t0 + after), OnTerminate::Repeat);
        }
        let just_before = SAME_SIGNAL - Duration::from_nanos(1);
        assert_eq!(
            on_terminate(Some(&s), t0 + just_before),
            OnTerminate::Repeat
        );
    }

    #[test]
    fn a_signal_after_the_window_escalates() {
        let t0 = Instant::now();
        let s = shutdown(t0, false);
        assert_eq!(
            on_terminate(Some(&s), t0 + SAME_SIGNAL),
            OnTerminate::Escalate
        );
        let later = t0 + Duration::from_secs(5);
        assert_eq!(on_terminate(Some(&s), later), OnTerminate::Escalate);
    }

    #[test]
    fn nothing_is_left_to_do_once_escalated() {
        let t0 = Instant::now();
        let s = shutdown(t0, true);
        assert_eq!(on_terminate(Some(&s), t0), OnTerminate::Nothing);
        assert_eq!(
            on_terminate(Some(&s), t0 + SAME_SIGNAL * 10),
            OnTerminate::Nothing
        );
    }
}
