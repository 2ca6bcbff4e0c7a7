//! Stopping: the kill policy and runpm's own shutdown.
//!
//! A stop sends `stop_signal` to the process group (or the main process, per `kill_mode`)
//! and sets a deadline `kill_timeout` away; the stop is complete when the main process has
//! ended and its group is empty, or at the deadline with SIGKILL. A shutdown stops every
//! service in reverse dependency order within `shutdown_timeout`, and a second request
//! (or that deadline) escalates to SIGKILL at once. Only the stops of a shutdown speak for
//! runpm's exit code.

use nix::sys::signal::Signal as NixSignal;

use crate::ipc::{ErrorKind, ProtocolError};
use crate::process::ExitStatus;
use crate::supervisor::event::{Effect, Now};
use crate::supervisor::policy;
use crate::supervisor::service::{AfterStop, Phase, Stopping, Want};
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

impl Supervisor {
    pub(super) fn begin_shutdown(&mut self, now: Now, fx: &mut Vec<Effect>) {
        self.frozen = Some(self.snapshot());
        for w in std::mem::take(&mut self.waiters) {
            let error = ProtocolError::new(ErrorKind::ShuttingDown, "runpm is shutting down");
            fx.push(Effect::Reply {
                token: w.token,
                reply: Err(error),
            });
        }
        self.shutdown = Some(Shutdown {
            deadline: now.after(self.settings.shutdown_timeout),
            escalated: false,
            exit_sent: false,
        });
        for svc in self.services.values_mut() {
            svc.want = Want::Down;
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
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        let mode = svc.spec.kill_mode;
        match &mut svc.phase {
            Phase::Running(run) => {
                let run = *run;
                fx.push(Effect::Signal {
                    service: name.into(),
                    target: run.target(mode),
                    signal: SIGKILL,
                });
                svc.set_phase(
                    Phase::Stopping(Stopping {
                        run,
                        deadline: now.at,
                        forced: true,
                        main_exit: None,
                        then: AfterStop::Stay,
                        orphaned: false,
                    }),
                    now.wall,
                );
            }
            Phase::Stopping(st) if !st.forced => {
                st.forced = true;
                fx.push(Effect::Signal {
                    service: name.into(),
                    target: st.run.target(mode),
                    signal: SIGKILL,
                });
                if st.main_exit.is_some() {
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
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        let Phase::Running(run) = svc.phase else {
            return;
        };
        let signal = svc.spec.stop_signal;
        let target = run.target(svc.spec.kill_mode);
        tracing::info!("{name}: stopping ({})", signal.name());
        push_stop_signal(name, target, signal, fx);
        let stop = Stopping {
            run,
            deadline: now.after(svc.spec.kill_timeout),
            forced: false,
            main_exit: None,
            then,
            orphaned: false,
        };
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
        let clean = !stop.forced
            && (policy::is_success(&svc.spec, status)
                || status == ExitStatus::Signal(svc.spec.stop_signal.number())
                || stop.orphaned && status == ExitStatus::Unknown);
        if clean {
            tracing::info!("{name}: stopped");
        } else {
            tracing::warn!("{name}: stopped uncleanly: {status}");
            // Only the stops of runpm's own shutdown speak for its exit code; a restart
            // that needed SIGKILL an hour ago does not.
            if self.shutdown.is_some() {
                self.exit_code.get_or_insert(status.as_exit_code());
            }
        }
        match stop.then {
            AfterStop::Stay => svc.set_phase(Phase::Stopped, now.wall),
            AfterStop::Start => svc.set_phase(Phase::Waiting, now.wall),
            AfterStop::Policy { reason } => {
                if self.shutdown.is_some() || svc.want == Want::Down {
                    svc.set_phase(Phase::Stopped, now.wall);
                } else {
                    self.after_run(name, status, uptime, false, Some(reason), now);
                }
            }
        }
    }
}
