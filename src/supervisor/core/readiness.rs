//! Readiness, health checks and the watchdog: whether a running process works.
//!
//! A spawned service is `starting` until it is ready: at once when no `ready` is
//! configured; on `READY=1` over sd_notify; when a line of its output matches `ready.log`;
//! or when a `ready.tcp`/`ready.exec` probe succeeds. Probes are timers in the run's state
//! ([`ProbeClock`]), retried with a growing interval until `ready_timeout`. A probe in flight
//! has a deadline of its own: when it passes, the core counts the probe as timed out and has
//! the shell kill it ([`Effect::KillProbe`]); so does a run that ends with a probe in flight,
//! whose answer could only be stale. A missed deadline,
//! `retries` failed health checks in a row, or a missed `WATCHDOG=1` make runpm stop the
//! process and hand the run to the restart policy as a failed one. Dependents wait for
//! readiness, not for the spawn.

use std::time::Duration;

use crate::config::{Probe, Ready, ServiceSpec};
use crate::notify::Notification;
use crate::report::{Kind, Report};
use crate::supervisor::event::{Effect, Now, ProbeFailure, Purpose};
use crate::supervisor::service::{AfterStop, Phase, ProbeClock, Readiness, Run};

use super::Supervisor;

/// The longest a single readiness probe may take, however long `ready_timeout` is.
const READY_PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The state of a run just spawned.
pub(super) fn first_run(spec: &ServiceSpec, pid: i32, now: Now) -> Run {
    let mut run = Run::new(pid, now.at, now.wall);
    match &spec.ready {
        None => run.probe = ProbeClock::due(spec.health.as_ref().map(|h| now.after(h.interval))),
        Some(ready) => {
            run.readiness = Readiness::Pending {
                deadline: now.after(spec.ready_timeout),
            };
            if matches!(ready, Ready::Tcp(_) | Ready::Exec(_) | Ready::Http(_)) {
                run.probe = ProbeClock::Due(now.at);
            }
        }
    }
    run.watchdog_deadline = spec.watchdog.map(|w| now.after(w));
    run
}

/// The wait before readiness probe number `attempt + 1`: quick at first, for services that
/// come up in milliseconds, then at most a second apart.
fn retry_interval(attempt: u32) -> Duration {
    Duration::from_millis(50u64.saturating_mul(1 << attempt.min(5))).min(Duration::from_secs(1))
}

/// How a probe that ran out of time is reported: as a connect that timed out for a TCP
/// probe, as a probe that timed out for a command.
fn timed_out(spec: &ServiceSpec, purpose: Purpose, after: Duration) -> ProbeFailure {
    let probe = match purpose {
        Purpose::Ready => spec.ready.as_ref().and_then(ready_probe),
        Purpose::Health => spec.health.as_ref().map(|h| h.probe.clone()),
    };
    match probe {
        Some(Probe::Tcp(addr)) => ProbeFailure::ConnectTimedOut { addr, after },
        _ => ProbeFailure::TimedOut { after },
    }
}

fn ready_probe(ready: &Ready) -> Option<Probe> {
    match ready {
        Ready::Tcp(addr) => Some(Probe::Tcp(addr.clone())),
        Ready::Exec(argv) => Some(Probe::Exec(argv.clone())),
        Ready::Http(check) => Some(Probe::Http(check.clone())),
        Ready::Notify | Ready::Log(_) => None,
    }
}

impl Supervisor {
    /// The running process of `name`, if `pid` is it.
    fn run_mut(&mut self, name: &str, pid: i32) -> Option<&mut Run> {
        match &mut self.services.get_mut(name)?.phase {
            Phase::Running(run) if run.pid == pid => Some(run),
            _ => None,
        }
    }

    /// Deadlines of a running service that have come.
    pub(super) fn tick_run(&mut self, name: &str, now: Now, fx: &mut Vec<Effect>) {
        let Some(svc) = self.services.get(name) else {
            return;
        };
        let Phase::Running(run) = svc.phase else {
            return;
        };
        let spec = svc.spec.clone();
        if run.ready_deadline().is_some_and(|d| d <= now.at) {
            let last = svc.not_ready.as_ref().map(|d| format!(": {d}"));
            let why = format!(
                "not ready within {}{}",
                humantime::format_duration(spec.ready_timeout),
                last.unwrap_or_default()
            );
            return self.fail_run(name, why, now, fx);
        }
        if run.watchdog_deadline.is_some_and(|d| d <= now.at) {
            let every = spec.watchdog.map(humantime::format_duration);
            let why = format!(
                "watchdog: no WATCHDOG=1 within {}",
                every.map(|e| e.to_string()).unwrap_or_default()
            );
            return self.fail_run(name, why, now, fx);
        }
        match run.probe {
            ProbeClock::InFlight {
                purpose,
                deadline,
                timeout,
            } if deadline <= now.at => {
                fx.push(Effect::KillProbe {
                    service: name.to_string(),
                });
                let failure = timed_out(&spec, purpose, timeout);
                self.on_probe(name, run.pid, purpose, Err(failure), now, fx);
            }
            ProbeClock::Due(at) if at <= now.at => self.start_probe(name, run, now, fx),
            _ => {}
        }
    }

    /// Starts the probe that is due for `run`, a readiness probe until it is ready and a
    /// health check after.
    fn start_probe(&mut self, name: &str, run: Run, now: Now, fx: &mut Vec<Effect>) {
        let Some(spec) = self.services.get(name).map(|s| s.spec.clone()) else {
            return;
        };
        let next = if run.is_ready() {
            spec.health
                .as_ref()
                .map(|health| (Purpose::Health, health.probe.clone(), health.timeout))
        } else {
            spec.ready.as_ref().and_then(ready_probe).map(|probe| {
                let left = run
                    .ready_deadline()
                    .map_or(READY_PROBE_TIMEOUT, |d| d.saturating_duration_since(now.at));
                // An HTTP check may say how long one GET may take.
                let most = match &probe {
                    Probe::Http(check) => check.timeout.unwrap_or(READY_PROBE_TIMEOUT),
                    _ => READY_PROBE_TIMEOUT,
                };
                let timeout = left.min(most).max(Duration::from_millis(100));
                (Purpose::Ready, probe, timeout)
            })
        };
        let Some(this) = self.run_mut(name, run.pid) else {
            return;
        };
        let Some((purpose, probe, timeout)) = next else {
            // Nothing to probe (the spec has none for this stage): a due time left in the
            // past would wake the loop at once, again and again.
            this.probe = ProbeClock::Idle;
            return;
        };
        // The next one is scheduled when this one answers or runs out of time.
        this.probe = ProbeClock::InFlight {
            purpose,
            deadline: now.after(timeout),
            timeout,
        };
        fx.push(Effect::Probe {
            service: name.to_string(),
            pid: run.pid,
            purpose,
            probe,
            timeout,
        });
    }

    /// A run that ends with a probe in flight: its answer could only be stale, so the probe
    /// goes now rather than at its deadline.
    pub(super) fn end_probe(name: &str, run: &mut Run, fx: &mut Vec<Effect>) {
        if let ProbeClock::InFlight { .. } = run.probe {
            fx.push(Effect::KillProbe {
                service: name.to_string(),
            });
        }
        run.probe = ProbeClock::Idle;
    }

    pub(super) fn on_probe(
        &mut self,
        name: &str,
        pid: i32,
        purpose: Purpose,
        outcome: Result<(), ProbeFailure>,
        now: Now,
        fx: &mut Vec<Effect>,
    ) {
        let ok = outcome.is_ok();
        let detail = outcome.err().map(|e| e.to_string()).unwrap_or_default();
        let Some(spec) = self.services.get(name).map(|s| s.spec.clone()) else {
            return;
        };
        // A probe of a process that has since ended, or been replaced, is stale; so is one
        // that was declared timed out already.
        let Some(run) = self.run_mut(name, pid) else {
            return;
        };
        match run.probe {
            ProbeClock::InFlight { purpose: p, .. } if p == purpose => run.probe = ProbeClock::Idle,
            _ => return,
        }
        match (purpose, ok) {
            (Purpose::Ready, true) => {
                if !run.is_ready() {
                    self.mark_ready(name, pid, now);
                }
            }
            (Purpose::Ready, false) => {
                run.probe = ProbeClock::Due(now.after(retry_interval(run.probe_attempts)));
                run.probe_attempts = run.probe_attempts.saturating_add(1);
                tracing::debug!("{name}: not ready yet: {detail}");
                if let Some(svc) = self.services.get_mut(name) {
                    svc.not_ready = Some(detail);
                }
            }
            (Purpose::Health, true) => {
                let recovered = run.health_failures > 0;
                run.health_failures = 0;
                run.probe = ProbeClock::due(spec.health.as_ref().map(|h| now.after(h.interval)));
                if recovered {
                    self.reports
                        .push(Report::about(name, now.wall, Kind::HealthRecovered {}));
                }
            }
            (Purpose::Health, false) => {
                run.health_failures = run.health_failures.saturating_add(1);
                let failures = run.health_failures;
                let Some(health) = &spec.health else { return };
                tracing::warn!(
                    "{name}: health check failed ({failures} of {}): {detail}",
                    health.retries
                );
                // Due again unless this failure was the last straw (the stop then
                // clears it).
                run.probe = ProbeClock::Due(now.after(health.interval));
                self.reports.push(Report::about(
                    name,
                    now.wall,
                    Kind::HealthFailed {
                        message: detail.clone(),
                    },
                ));
                if failures >= health.retries {
                    let why = format!("health check failed {failures} times in a row: {detail}");
                    self.fail_run(name, why, now, fx);
                }
            }
        }
    }

    /// A line of `name`'s output (from process `pid`) matched `ready.log`.
    pub(super) fn on_log_ready(&mut self, name: &str, pid: i32, now: Now) {
        if self.run_mut(name, pid).is_some_and(|run| !run.is_ready()) {
            self.mark_ready(name, pid, now);
        }
    }

    fn mark_ready(&mut self, name: &str, pid: i32, now: Now) {
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        let health = svc.spec.health.as_ref().map(|h| h.interval);
        let Phase::Running(run) = &mut svc.phase else {
            return;
        };
        if run.pid != pid {
            return;
        }
        run.readiness = Readiness::Ready;
        svc.not_ready = None;
        run.probe = ProbeClock::due(health.map(|interval| now.after(interval)));
        let took = now.at.saturating_duration_since(run.started);
        svc.since = now.wall;
        self.reports
            .push(Report::about(name, now.wall, Kind::Ready { pid }));
        tracing::info!(
            "{name}: ready after {}",
            humantime::format_duration(Duration::from_millis(took.as_millis() as u64))
        );
    }

    /// sd_notify messages from a process of `name` (`sender`).
    pub(super) fn on_notified(
        &mut self,
        name: &str,
        sender: i32,
        notifications: Vec<Notification>,
        now: Now,
        fx: &mut Vec<Effect>,
    ) {
        let Some(svc) = self.services.get(name) else {
            return;
        };
        let Phase::Running(mut run) = svc.phase else {
            tracing::debug!("{name}: sd_notify message from {sender} while not running; ignored");
            return;
        };
        let wants_notify = matches!(svc.spec.ready, Some(Ready::Notify));
        let watchdog = svc.spec.watchdog;
        for note in notifications {
            match note {
                Notification::Ready if wants_notify => {
                    if let Some(svc) = self.services.get_mut(name) {
                        svc.status_text = svc.status_text.take().filter(|t| t != "reloading");
                    }
                    if self.run_mut(name, run.pid).is_some_and(|r| !r.is_ready()) {
                        self.mark_ready(name, run.pid, now);
                    }
                }
                Notification::Ready => {
                    tracing::debug!("{name}: READY=1 without ready.notify; ignored")
                }
                Notification::Status(text) => {
                    if let Some(svc) = self.services.get_mut(name) {
                        svc.status_text = Some(text);
                    }
                }
                Notification::Reloading => tracing::info!("{name}: reloading (sd_notify)"),
                Notification::Stopping => tracing::info!("{name}: stopping on its own (sd_notify)"),
                Notification::Watchdog => {
                    if let (Some(every), Some(run)) = (watchdog, self.run_mut(name, run.pid)) {
                        run.watchdog_deadline = Some(now.after(every));
                    }
                }
                Notification::WatchdogTrigger => {
                    return self.fail_run(
                        name,
                        "watchdog triggered by the service".into(),
                        now,
                        fx,
                    );
                }
                Notification::MainPid(pid) if pid > 1 && pid != run.pid => {
                    // The service says its main process is now another one (a daemon that
                    // forked). Track that one; the old pid's exit no longer ends the run.
                    tracing::info!("{name}: main process is now {pid} (MAINPID)");
                    self.by_pid.remove(&run.pid);
                    self.by_pid.insert(pid, name.to_string());
                    if let Some(r) = self.run_mut(name, run.pid) {
                        r.pid = pid;
                    }
                    // Later assignments of this datagram speak of the new main process.
                    run.pid = pid;
                }
                Notification::Errno(errno) => {
                    tracing::warn!("{name}: reports errno {errno} (sd_notify)")
                }
                _ => {}
            }
        }
    }

    /// Stops a run that failed while running; the restart policy takes it from there.
    pub(super) fn fail_run(&mut self, name: &str, why: String, now: Now, fx: &mut Vec<Effect>) {
        tracing::warn!("{name}: {why}: stopping it");
        self.begin_stop(name, AfterStop::Policy { reason: why }, now, fx);
    }
}
