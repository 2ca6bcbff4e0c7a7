//! The supervisor's decisions: one synchronous handler from events to effects.
//!
//! Every input (a reaped child, the answer to a spawn, a signal, a timer) becomes an
//! [`Event`]; [`Supervisor::handle`] updates the per-service state and returns the
//! [`Effect`]s to carry out. Nothing here touches the kernel or the clock, so every
//! decision is tested without processes or a runtime. After each event, `drive` moves every
//! service one step toward what is wanted of it, in dependency order, and checks whether
//! runpm itself should end.
//!
//! Timers are not tasks: [`Supervisor::next_deadline`] computes the earliest moment that
//! state asks to be woken for (a backoff expiry, a kill deadline, the shutdown budget), and
//! the runtime sleeps until then or until another event arrives. An idle supervisor has no
//! deadline and no wake-ups.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal as NixSignal;

use std::collections::BTreeSet;

use crate::config::{Config, ExitWhen, KillMode, Settings, Signal, dependency_order};
use crate::process::ExitStatus;
use crate::reconcile::Desired;
use crate::state::{Resume, ServiceRecord, Survivor};

use super::deps;
use super::event::{Effect, Event, NotifyRoute, Now};
use super::exit::{exit_when_fired, stuck};
use super::policy::{self, Decision, Jitter};
use super::service::{AfterStop, Kill, Phase, Run, Service, Stopping, Want};
use super::status::EndReason;
use crate::report::{Kind, Report};

/// A shutdown under way. What only a shutdown has lives here, so that none of it can be
/// set while runpm still serves.
struct Shutdown {
    /// When the signal or request that began it was handled: a repeat within
    /// [`stop::SAME_SIGNAL`] is the same request arriving twice.
    began: Instant,
    deadline: Instant,
    escalated: bool,
    exit_sent: bool,
    /// The state file's records as they were when it began: what was running then is what
    /// the next start brings back.
    frozen: Vec<Snapshot>,
    /// runpm's exit code as decided so far: set by `exit_when`, or by the first stop that
    /// was not clean. Failed services are consulted when it is unset.
    exit_code: Option<u8>,
}

pub struct Supervisor {
    services: BTreeMap<String, Service>,
    /// Names with every service after its dependencies.
    order: Vec<String>,
    /// Per service, the services that name it in `depends_on` (kept with `order`).
    dependents: HashMap<String, Vec<String>>,
    by_pid: HashMap<i32, String>,
    settings: Settings,
    /// `settings.exit_when`, or the mode's default when the config does not say.
    exit_when: Option<ExitWhen>,
    /// Where the config was loaded from, for reload replies.
    source: String,
    shutdown: Option<Shutdown>,
    /// Operator requests that reply once their services got where they were sent.
    waiters: Vec<Waiter>,
    /// Set while running the last-known-good specs because the config is invalid: why.
    last_known_good: Option<String>,
    jitter: Jitter,
    /// runpm's own service manager, when one listens.
    parent: Option<parent::Parent>,
    /// What happened during the turn being handled, in order; handed out as
    /// `Effect::Report`s ahead of the turn's other effects (see [`report`]).
    reports: Vec<Report>,
    /// The services with `replicas`, as written, by group: what `scale` expands.
    replicated: BTreeMap<String, crate::config::Replicated>,
    /// `runpmctl scale` overrides in force, by group (persisted in the state file).
    scaled: BTreeMap<String, crate::config::Scaled>,
    /// What `runpm up` selected (profiles, named services): carried across a re-exec.
    selection: crate::config::Selection,
    /// Whether each service runs in a cgroup of its own (see `contain`).
    cgroups: bool,
    /// The pid whose exit comes next and was the OOM killer's doing (`Event::OomKilled`).
    oom_killed: Option<i32>,
}

const SIGKILL: Signal = Signal(NixSignal::SIGKILL);

impl Supervisor {
    /// A supervisor with no services yet; [`Supervisor::boot`] brings the config in.
    /// `exit_when_default` applies when the config sets no `exit_when`.
    pub fn new(config: &Config, exit_when_default: Option<ExitWhen>, jitter: Jitter) -> Supervisor {
        Supervisor {
            services: BTreeMap::new(),
            order: Vec::new(),
            dependents: HashMap::new(),
            by_pid: HashMap::new(),
            exit_when: config.settings.exit_when.clone().or(exit_when_default),
            settings: config.settings.clone(),
            source: config.source.to_string(),
            shutdown: None,
            waiters: Vec::new(),
            last_known_good: None,
            jitter,
            parent: None,
            reports: Vec::new(),
            replicated: config.replicated.clone(),
            scaled: BTreeMap::new(),
            selection: config.selection.clone(),
            cgroups: false,
            oom_killed: None,
        }
    }

    /// Brings `config` in through the planner. What starts: `only` (with what they depend
    /// on) when given; else what the snapshot in `resume` says was running, plus services
    /// new since the snapshot that are `autostart`; else every `autostart` service.
    /// Processes that survived the previous daemon are stopped first, then replaced.
    #[must_use = "the effects must be carried out"]
    pub fn boot(
        &mut self,
        config: &Config,
        only: Option<&[String]>,
        resume: Option<&Resume>,
        now: Now,
    ) -> Vec<Effect> {
        let scaled;
        let config = match resume {
            Some(resume) if !resume.scaled.is_empty() => {
                scaled = self.with_overrides(config, &resume.scaled, true);
                &scaled
            }
            _ => config,
        };
        let autostart: Vec<String> = config
            .services
            .values()
            .filter(|s| s.autostart && resume.is_none_or(|r| !r.known.contains(&s.name)))
            .map(|s| s.name.clone())
            .collect();
        let mut roots = autostart;
        if let Some(resume) = resume {
            roots.extend(
                resume
                    .wanted_up
                    .iter()
                    .filter(|n| config.services.contains_key(*n))
                    .cloned(),
            );
        }
        let up: BTreeSet<&str> = match only {
            Some(names) => config.closure(names),
            None => config.closure(&roots),
        };
        let desired = config
            .services
            .iter()
            .map(|(name, spec)| {
                let d = Desired {
                    spec: Arc::new(spec.clone()),
                    up: up.contains(name.as_str()),
                };
                (name.clone(), d)
            })
            .collect();
        let mut fx = Vec::new();
        self.apply_plan(&desired, &BTreeSet::new(), now);
        if let Some(resume) = resume {
            for (name, svc) in self.services.iter_mut() {
                svc.restarts = resume.restarts.get(name).copied().unwrap_or(0);
                if only.is_none() && resume.stopped_by_operator.contains(name) && svc.want.is_down()
                {
                    svc.want = Want::Down { by_operator: true };
                }
                // A task that completed before the daemon died is done: its dependents go
                // on from it, and it is not run again unless its definition changed.
                if resume
                    .completed
                    .get(name)
                    .is_some_and(|spec| *spec == *svc.spec)
                {
                    let code = svc.spec.success_exit_codes.first().copied().unwrap_or(0);
                    svc.set_phase(
                        Phase::Exited {
                            status: ExitStatus::Code(code),
                        },
                        now.wall,
                    );
                }
            }
            // Scheduled services learn when they last ran: a run missed while runpm was
            // down is caught up once with `catch_up`.
            for (name, svc) in self.services.iter_mut() {
                if let Some(schedule) = svc.spec.schedule.as_ref()
                    && svc.want.is_up()
                {
                    let last = resume.last_runs.get(name).copied();
                    svc.clock = Some(scheduled::new_clock(name, schedule, last, true, now));
                }
            }
            for survivor in &resume.survivors {
                self.replace_survivor(survivor, now, &mut fx);
            }
            // Survivors of services no longer in the config joined the table.
            self.reorder();
        }
        self.drive(now, &mut fx);
        self.tell_parent(false, now, &mut fx);
        self.hand_out_reports(&mut fx);
        fx
    }

    /// A process the previous daemon started is still running: it is stopped (and then
    /// started afresh if it should run). Adopting it instead would keep a process whose
    /// output pipes died with the old daemon: its next write would kill it with SIGPIPE.
    fn replace_survivor(&mut self, s: &Survivor, now: Now, fx: &mut Vec<Effect>) {
        let svc = self.services.entry(s.name.clone()).or_insert_with(|| {
            // No longer in the config: stop it, then forget it.
            let mut svc = Service::new(Arc::new(s.spec.clone()), now.wall);
            svc.want = Want::Remove;
            svc
        });
        let mut run = Run::new(s.pid, now.at, now.wall);
        run.start_time = Some(s.start_time);
        let then = if svc.want.is_up() {
            AfterStop::Start
        } else {
            AfterStop::Stay
        };
        let signal = svc.spec.stop_signal;
        tracing::info!(
            "{}: pid {} of the previous runpm is still running; stopping it ({}) before {}",
            s.name,
            s.pid,
            signal.name(),
            if then == AfterStop::Start {
                "starting a fresh one"
            } else {
                "leaving it stopped"
            }
        );
        let mode = contain::effective(svc.spec.kill_mode, self.cgroups);
        stop::push_stop_signal(&s.name, run.target(mode), signal, fx);
        self.reports.push(Report::about(
            &s.name,
            now.wall,
            Kind::Stopping {
                pid: s.pid,
                signal: signal.name().to_owned(),
            },
        ));
        let deadline = now.after(svc.spec.kill_timeout);
        let stopping = Stopping {
            orphaned: true,
            ..Stopping::new(run, deadline, then)
        };
        svc.set_phase(Phase::Stopping(stopping), now.wall);
        self.by_pid.insert(s.pid, s.name.clone());
    }

    /// What the state file records: per service, what it is doing and what proves its
    /// process is ours. Once runpm shuts down, the snapshot taken as it began stands: what
    /// was running then is what the next start brings back.
    pub fn records(&self) -> Vec<ServiceRecord> {
        let now;
        let snapshot = match &self.shutdown {
            Some(shutdown) => &shutdown.frozen,
            None => {
                now = self.snapshot();
                &now
            }
        };
        snapshot
            .iter()
            .map(|s| ServiceRecord {
                name: s.name.clone(),
                status: s.status.as_str().to_string(),
                pid: s.pid,
                pid_start_time: s.start_time,
                restarts: s.restarts,
                stopped_by_operator: s.stopped_by_operator,
                completed: s.completed,
                spec: s.spec.as_ref().clone(),
                last_run: s
                    .last_run
                    .map(|t| humantime::format_rfc3339_millis(t).to_string()),
                cgroup: crate::cgroup::service_path(&s.name),
            })
            .collect()
    }

    /// What [`Supervisor::records`] is made from, with the specs shared rather than copied:
    /// taken when a shutdown begins, before its signals go out.
    pub(super) fn snapshot(&self) -> Vec<Snapshot> {
        self.services
            .iter()
            .filter(|(_, s)| s.want != Want::Remove)
            .map(|(name, s)| {
                let run = s.live_run();
                Snapshot {
                    name: name.clone(),
                    status: s.status(),
                    pid: run.map(|r| r.pid),
                    start_time: run.and_then(|r| r.start_time),
                    restarts: s.restarts,
                    stopped_by_operator: s.want.by_operator(),
                    completed: s.completed(),
                    spec: s.spec.clone(),
                    last_run: s.clock.as_ref().and_then(|c| c.last_run),
                }
            })
            .collect()
    }

    /// A cheap fingerprint of what [`Supervisor::records`] would say, to know when the state
    /// file is out of date without building it; and whether a process appeared or went,
    /// which makes the write urgent (the window in which a crash would lose a pid).
    pub fn fingerprint(&self) -> (u64, u64) {
        use std::hash::{Hash, Hasher};
        let (mut all, mut pids) = (
            std::collections::hash_map::DefaultHasher::new(),
            std::collections::hash_map::DefaultHasher::new(),
        );
        self.shutdown.is_some().hash(&mut all);
        for (name, s) in &self.services {
            name.hash(&mut all);
            s.status().hash(&mut all);
            s.pid().hash(&mut all);
            s.pid().hash(&mut pids);
            s.restarts.hash(&mut all);
            s.want.by_operator().hash(&mut all);
            s.completed().hash(&mut all);
            (s.want == Want::Remove).hash(&mut all);
            Arc::as_ptr(&s.spec).hash(&mut all);
        }
        (all.finish(), pids.finish())
    }

    /// The config file or directory in force.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Running the snapshot's specs because the config could not be loaded: why.
    pub fn set_last_known_good(&mut self, reason: Option<String>) {
        self.last_known_good = reason;
    }

    pub fn services(&self) -> impl Iterator<Item = (&String, &Service)> {
        self.services.iter()
    }

    /// The `[runpm]` settings of the config last applied.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.get(name)
    }

    /// Whether a service that should run has not got going yet (waiting for its
    /// dependencies, or being spawned).
    pub fn is_starting(&self) -> bool {
        // A service waiting for a dependency that ended badly is not starting: it is stuck
        // until someone intervenes, and `up -d` must not wait for it.
        self.services.iter().any(|(name, s)| {
            s.want.is_up()
                && match s.phase {
                    Phase::Spawning => true,
                    Phase::Running(run) => !run.is_ready(),
                    Phase::Waiting => !stuck(name, &self.services) && !s.between_runs(),
                    _ => false,
                }
        })
    }

    /// The processes an sd_notify message may come from: per service, its main pid and its
    /// process group (which is the pid it was started with).
    pub fn notify_targets(&self) -> Vec<(String, i32, i32)> {
        self.services
            .iter()
            .filter_map(|(name, s)| match &s.phase {
                Phase::Running(run) => Some((name.clone(), run.pid, run.pgid)),
                Phase::Stopping(st) => Some((name.clone(), st.run.pid, st.run.pgid)),
                _ => None,
            })
            .collect()
    }

    /// Whether `name` waits for a dependency that ended badly, and will not start by itself.
    /// For a service that waits for a dependency that cannot get there by itself (failed,
    /// ended badly, stopped): what it waits for, in words.
    pub fn blocked_by(&self, name: &str) -> Option<String> {
        let svc = self.services.get(name)?;
        if svc.phase != Phase::Waiting {
            return None;
        }
        deps::each(&self.services, svc).find_map(|(dep, wait)| {
            matches!(wait, deps::Wait::Blocked { .. }).then(|| deps::describe(dep, &wait))
        })
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutdown.is_some()
    }

    /// The session ended by runpm's own decision (a shutdown that completed): the state
    /// file says so, and the next start begins from the config.
    pub fn ended_cleanly(&self) -> bool {
        self.shutdown.as_ref().is_some_and(|s| s.exit_sent)
    }

    #[must_use = "the effects must be carried out"]
    pub fn handle(&mut self, event: Event, now: Now) -> Vec<Effect> {
        self.handle_all(std::iter::once(event), now)
    }

    /// Several events, then one look at the whole table: the answers to a turn's spawns
    /// come back together, and a thousand of them need not each walk a thousand services.
    #[must_use = "the effects must be carried out"]
    pub fn handle_all(&mut self, events: impl IntoIterator<Item = Event>, now: Now) -> Vec<Effect> {
        let mut fx = Vec::new();
        let mut reload_done = false;
        for event in events {
            reload_done |= parent::ends_reload(&event);
            self.apply_event(event, now, &mut fx);
        }
        self.drive(now, &mut fx);
        self.tell_parent(reload_done, now, &mut fx);
        self.hand_out_reports(&mut fx);
        fx
    }

    fn apply_event(&mut self, event: Event, now: Now, fx: &mut Vec<Effect>) {
        match event {
            Event::ChildExited { pid, status } => self.on_exit(pid, status, now, fx),
            Event::Spawned {
                service,
                pid,
                start_time,
            } => {
                if let Some(svc) = self.services.get_mut(&service)
                    && svc.phase == Phase::Spawning
                {
                    let mut run = readiness::first_run(&svc.spec, pid, now);
                    run.start_time = start_time;
                    if run.is_ready() {
                        tracing::info!("{service}: started (pid {pid})");
                    } else {
                        tracing::info!("{service}: started (pid {pid}), waiting until it is ready");
                    }
                    svc.status_text = None;
                    self.reports
                        .push(Report::about(&service, now.wall, Kind::Spawned { pid }));
                    if run.is_ready() {
                        self.reports
                            .push(Report::about(&service, now.wall, Kind::Ready { pid }));
                    }
                    self.by_pid.insert(pid, service);
                    svc.set_phase(Phase::Running(run), now.wall);
                }
            }
            Event::SpawnFailed { service, error } => {
                if let Some(svc) = self.services.get_mut(&service)
                    && svc.phase == Phase::Spawning
                {
                    tracing::error!("{service}: failed to start: {error}");
                    // What a shell would report: 127 not found, 126 otherwise.
                    let code = error.exit_code();
                    let error = error.to_string();
                    let status = ExitStatus::Code(code);
                    svc.record_exit(
                        0,
                        status,
                        now.wall,
                        Duration::ZERO,
                        EndReason::SpawnFailed,
                        Some(error.clone()),
                    );
                    self.fail(&service, error, code as u8, now);
                }
            }
            Event::GroupEmpty { service, pgid } => {
                let done = self.services.get(&service).is_some_and(|svc| {
                    matches!(&svc.phase, Phase::Stopping(s) if s.run.pgid == pgid && s.main_exit.is_some())
                });
                if done {
                    self.finish_stop(&service, now);
                }
            }
            Event::Tick => self.on_tick(now, fx),
            Event::Terminate { signal } => self.on_terminate(signal, now, fx),
            Event::Reexec => self.reexec(None, now, fx),
            Event::Hangup => {
                tracing::info!("received SIGHUP: reloading the configuration");
                fx.push(Effect::LoadConfig {
                    token: None,
                    dry_run: false,
                });
            }
            Event::ConfigChanged => {
                if self.settings.watch && self.shutdown.is_none() {
                    tracing::info!("the configuration changed on disk: reloading");
                    fx.push(Effect::LoadConfig {
                        token: None,
                        dry_run: false,
                    });
                }
            }
            Event::ConfigLoaded {
                token,
                dry_run,
                result,
            } => self.on_config(token, dry_run, result, now, fx),
            Event::Request { token, request } => self.on_request(token, request, now, fx),
            Event::SnapshotLoaded { token, wanted_up } => {
                self.on_snapshot(token, wanted_up, now, fx)
            }
            Event::ProbeDone {
                service,
                pid,
                purpose,
                outcome,
            } => self.on_probe(&service, pid, purpose, outcome, now, fx),
            Event::Notified {
                service,
                sender,
                notifications,
            } => self.on_notified(&service, sender, notifications, now, fx),
            Event::LogReady { service, pid } => self.on_log_ready(&service, pid, now),
            Event::OutputClosed {
                service,
                pid,
                last_lines,
            } => {
                if let Some(svc) = self.services.get_mut(&service) {
                    match svc.exits.iter_mut().rev().find(|e| e.pid == pid) {
                        Some(record) => record.last_lines = last_lines,
                        // The pipes closed before the exit was reaped: keep the lines for it.
                        None => svc.early_output = Some((pid, last_lines)),
                    }
                }
            }
            Event::MemoryExceeded { service, pid } => {
                self.on_memory_exceeded(&service, pid, now, fx)
            }
            Event::OomKilled { pid } => self.oom_killed = Some(pid),
        }
    }

    /// The earliest moment at which time alone changes something.
    pub fn next_deadline(&self) -> Option<Instant> {
        let per_service = self.services.values().filter_map(|s| match &s.phase {
            Phase::Backoff { until } => Some(*until),
            Phase::Stopping(st) => st.kill_deadline(),
            Phase::Failed { rearm_at, .. } => *rearm_at,
            Phase::Running(run) => [
                run.ready_deadline(),
                run.probe.deadline(),
                run.watchdog_deadline,
            ]
            .into_iter()
            .flatten()
            .min(),
            _ => None,
        });
        let shutdown = self
            .shutdown
            .as_ref()
            .filter(|s| !s.escalated)
            .map(|s| s.deadline);
        let schedule = self
            .shutdown
            .is_none()
            .then(|| self.schedule_deadline())
            .flatten();
        per_service
            .chain(shutdown)
            .chain(self.parent_deadline())
            .chain(schedule)
            .min()
    }

    fn on_exit(&mut self, pid: i32, status: ExitStatus, now: Now, fx: &mut Vec<Effect>) {
        let Some(name) = self.by_pid.remove(&pid) else {
            tracing::debug!("reaped orphan {pid}: {status}");
            // As subreaper or PID 1, an orphan's end may be what empties a stopping
            // service's group.
            for (name, svc) in &self.services {
                if let Phase::Stopping(s) = &svc.phase
                    && s.main_exit.is_some()
                {
                    fx.push(Effect::CheckGroup {
                        service: name.clone(),
                        pgid: s.run.pgid,
                    });
                }
            }
            return;
        };
        let cgroups = self.cgroups;
        let oom = self.oom_killed.take() == Some(pid);
        let Some(svc) = self.services.get_mut(&name) else {
            return;
        };
        let mode = contain::effective(svc.spec.kill_mode, cgroups);
        match &mut svc.phase {
            Phase::Running(run) => {
                Supervisor::end_probe(&name, run, fx);
                let run = *run;
                let uptime = now.at.saturating_duration_since(run.started);
                tracing::info!(
                    "{name}: {status} after {}",
                    humantime::format_duration(round_ms(uptime))
                );
                let reason = contain::end_reason(mode, status, oom);
                svc.record_exit(run.pid, status, now.wall, uptime, reason, None);
                let oom = reason == EndReason::OomKilled;
                self.reports
                    .push(report::exited(&name, run.pid, status, uptime, oom, now));
                if mode.reaches_group() {
                    // Whatever the main process left behind in its group goes with it, so a
                    // restart never runs beside leftovers of the previous run. The group id
                    // cannot have been reused yet: its members, if any, still hold it.
                    fx.push(Effect::Signal {
                        service: name.clone(),
                        target: run.target(mode),
                        signal: SIGKILL,
                    });
                }
                if svc.want.is_down() || self.shutdown.is_some() {
                    svc.set_phase(Phase::Exited { status }, now.wall);
                    return;
                }
                let success = policy::is_success(&svc.spec, status);
                self.after_run(&name, status, uptime, success, None, now);
            }
            Phase::Stopping(stop) => {
                stop.main_exit = Some(status);
                if mode.reaches_group() && stop.orphaned {
                    fx.push(Effect::Signal {
                        service: name.clone(),
                        target: stop.run.target(mode),
                        signal: SIGKILL,
                    });
                    self.finish_stop(&name, now);
                } else if mode == KillMode::Cgroup
                    || (mode == KillMode::Group && stop.kill != Kill::Forced)
                {
                    // A cgroup's stop is done when the cgroup is empty, forced or not: its
                    // emptiness is an event, so no process of it can outlive the stop.
                    fx.push(Effect::CheckGroup {
                        service: name.clone(),
                        pgid: stop.run.pgid,
                    });
                } else {
                    self.finish_stop(&name, now);
                }
            }
            _ => {}
        }
    }

    /// What follows a run that ended (or that runpm ended because it failed while running:
    /// then `why` says how, and the run counts as failed): the restart policy decides.
    fn after_run(
        &mut self,
        name: &str,
        status: ExitStatus,
        uptime: Duration,
        success: bool,
        why: Option<String>,
        now: Now,
    ) {
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        let decision = policy::decide_run(
            &svc.spec,
            &mut svc.history,
            success,
            uptime,
            now.at,
            self.jitter.sample(),
        );
        match decision {
            Decision::Restart { delay } => {
                tracing::info!(
                    "{name}: restarting in {} (restart {})",
                    humantime::format_duration(round_ms(delay)),
                    svc.restarts + 1
                );
                self.reports.push(Report::about(
                    name,
                    now.wall,
                    Kind::Restarting {
                        in_ms: delay.as_millis().try_into().unwrap_or(u64::MAX),
                        restarts: svc.restarts + 1,
                    },
                ));
                // With no delay the restart is due now: it spawns in this same turn, without
                // a trip through the timer.
                if delay.is_zero() {
                    svc.restarts += 1;
                    svc.set_phase(Phase::Waiting, now.wall);
                } else {
                    svc.set_phase(
                        Phase::Backoff {
                            until: now.after(delay),
                        },
                        now.wall,
                    );
                }
            }
            Decision::Stay => match why {
                // A run that never worked is a failure, even under `never`.
                Some(reason) => self.fail(name, reason, status.as_exit_code(), now),
                None => svc.set_phase(Phase::Exited { status }, now.wall),
            },
            Decision::CrashLoop { failures, window } => {
                let mut reason = format!(
                    "crash loop: {failures} failed runs within {}",
                    humantime::format_duration(window)
                );
                if let Some(why) = why {
                    reason = format!("{reason}; last: {why}");
                }
                tracing::error!("{name}: failed: {reason}; last run {status}");
                self.fail(name, reason, status.as_exit_code(), now);
            }
        }
    }

    /// The `failed` status, re-armed after `failed_cooldown` unless that is zero.
    fn fail(&mut self, name: &str, reason: String, code: u8, now: Now) {
        let Some(svc) = self.services.get_mut(name) else {
            return;
        };
        let cooldown = svc.spec.failed_cooldown;
        let rearm_at = (!cooldown.is_zero()).then(|| now.after(cooldown));
        self.reports.push(Report::about(
            name,
            now.wall,
            Kind::Failed {
                reason: reason.clone(),
            },
        ));
        svc.set_phase(
            Phase::Failed {
                reason,
                code,
                rearm_at,
            },
            now.wall,
        );
    }

    fn on_tick(&mut self, now: Now, fx: &mut Vec<Effect>) {
        let mut overdue = Vec::new();
        let mut running = Vec::new();
        for (name, svc) in self.services.iter_mut() {
            match &svc.phase {
                Phase::Backoff { until } if *until <= now.at => {
                    svc.restarts += 1;
                    svc.set_phase(Phase::Waiting, now.wall);
                }
                Phase::Failed {
                    rearm_at: Some(at), ..
                } if *at <= now.at => {
                    tracing::info!(
                        "{name}: failed_cooldown ({}) is over: starting it again",
                        humantime::format_duration(svc.spec.failed_cooldown)
                    );
                    svc.rearm();
                    let next = if svc.want.is_up() {
                        Phase::Waiting
                    } else {
                        Phase::Stopped
                    };
                    svc.set_phase(next, now.wall);
                }
                Phase::Running(_) => running.push(name.clone()),
                Phase::Stopping(st) if st.kill_deadline().is_some_and(|d| d <= now.at) => {
                    overdue.push(name.clone())
                }
                _ => {}
            }
        }
        for name in running {
            self.tick_run(&name, now, fx);
        }
        if self.shutdown.is_none() {
            self.tick_schedules(now, fx);
        }
        for name in overdue {
            if let Some(svc) = self.services.get(&name) {
                tracing::warn!(
                    "{name}: still running {} after {}: sending SIGKILL",
                    humantime::format_duration(svc.spec.kill_timeout),
                    svc.spec.stop_signal.name()
                );
            }
            self.kill_now(&name, now, fx);
        }
        if let Some(s) = &self.shutdown
            && !s.escalated
            && s.deadline <= now.at
        {
            tracing::warn!(
                "shutdown_timeout ({}) reached: killing what is left",
                humantime::format_duration(self.settings.shutdown_timeout)
            );
            self.escalate_all(now, fx);
        }
    }

    /// Whether a service that is going down (or restarting) must first wait for a dependent
    /// of it that is going down too: stops run in reverse dependency order, through the
    /// whole graph. A dependent of a dependent counts even when the one between them is not
    /// running (a one-shot that finished): `app → migrate → db` stops app before db.
    fn has_active_dependent_going_down(&self, name: &str) -> bool {
        let mut seen = BTreeSet::new();
        let mut todo = vec![name];
        while let Some(next) = todo.pop() {
            for dependent in self.dependents.get(next).into_iter().flatten() {
                if !seen.insert(dependent.as_str()) {
                    continue;
                }
                if let Some(s) = self.services.get(dependent)
                    && s.is_active()
                    && (s.want != Want::Up || matches!(s.phase, Phase::Stopping(_)))
                {
                    return true;
                }
                todo.push(dependent);
            }
        }
        false
    }

    /// Moves every service one step toward what is wanted of it.
    fn drive(&mut self, now: Now, fx: &mut Vec<Effect>) {
        // drive runs on every event, and the table can hold thousands of services: one pass
        // over it (no lookups by name) finds the few that need something, which are then
        // handled in dependency order. Walking the whole order with a lookup per name made
        // stopping a thousand services quadratic.
        self.sync_clocks(now);
        let mut to_start: Vec<(usize, String)> = Vec::new();
        let mut to_stop: Vec<(usize, String)> = Vec::new();
        for (name, svc) in &self.services {
            if self.shutdown.is_none() && svc.want.is_up() && svc.phase == Phase::Waiting {
                to_start.push((svc.rank, name.clone()));
            }
            let stoppable = matches!(
                svc.phase,
                Phase::Waiting | Phase::Backoff { .. } | Phase::Running(_)
            );
            if svc.want == Want::Restart || (svc.want.is_down() && stoppable) {
                to_stop.push((svc.rank, name.clone()));
            }
        }
        // Dependents first.
        to_stop.sort_unstable_by(|a, b| b.cmp(a));
        for (_, name) in to_stop {
            let svc = &self.services[&name];
            let waits = matches!(svc.phase, Phase::Running(_))
                && self.has_active_dependent_going_down(&name);
            fn svc_mut<'a>(sup: &'a mut Supervisor, name: &str) -> &'a mut Service {
                sup.services
                    .get_mut(name)
                    .expect("name comes from the table")
            }
            match (svc.want, &svc.phase) {
                (Want::Down { .. } | Want::Remove, Phase::Waiting | Phase::Backoff { .. }) => {
                    svc_mut(self, &name).set_phase(Phase::Stopped, now.wall);
                    self.reports
                        .push(Report::about(&name, now.wall, Kind::Stopped {}));
                }
                (Want::Down { .. } | Want::Remove, Phase::Running(_)) if !waits => {
                    self.begin_stop(&name, AfterStop::Stay, now, fx)
                }
                (Want::Restart, _) => match &svc.phase {
                    Phase::Running(_) if !waits => {
                        svc_mut(self, &name).want = Want::Up;
                        self.begin_stop(&name, AfterStop::Start, now, fx);
                    }
                    Phase::Running(_) | Phase::Spawning => {}
                    Phase::Stopping(_) => {
                        let svc = svc_mut(self, &name);
                        svc.want = Want::Up;
                        if let Phase::Stopping(st) = &mut svc.phase {
                            st.then = AfterStop::Start;
                        }
                    }
                    Phase::Waiting
                    | Phase::Backoff { .. }
                    | Phase::Stopped
                    | Phase::Exited { .. }
                    | Phase::Failed { .. } => {
                        let svc = svc_mut(self, &name);
                        svc.want = Want::Up;
                        svc.history = Default::default();
                        svc.set_phase(Phase::Waiting, now.wall);
                        to_start.push((svc.rank, name));
                    }
                },
                _ => {}
            }
        }
        // After the stops: a restart of a service that was not running put it back to
        // waiting just now, and it may spawn in this same turn.
        to_start.sort_unstable();
        to_start.dedup();
        for (_, name) in to_start {
            let svc = &self.services[&name];
            let ready = self.shutdown.is_none()
                && svc.want.is_up()
                && svc.phase == Phase::Waiting
                // A scheduled service starts only when a run is due.
                && svc.clock.as_ref().is_none_or(|c| c.due)
                && deps::own_dependencies(&self.services, svc).is_met();
            if ready {
                self.run_starts(&name, now);
                let svc = self
                    .services
                    .get_mut(&name)
                    .expect("name comes from the table");
                svc.set_phase(Phase::Spawning, now.wall);
                fx.push(Effect::Spawn {
                    notify: NotifyRoute::of(&svc.spec),
                    spec: svc.spec.clone(),
                    service: name,
                });
            }
        }
        // Services removed from the config leave the table once nothing of them runs.
        let gone: Vec<String> = self
            .services
            .iter()
            .filter(|(_, s)| s.want == Want::Remove && !s.is_active())
            .map(|(n, _)| n.clone())
            .collect();
        if !gone.is_empty() {
            for name in &gone {
                self.services.remove(name);
            }
            self.reorder();
        }
        self.check_waiters(now, fx);
        self.check_exit(now, fx);
    }

    fn check_exit(&mut self, now: Now, fx: &mut Vec<Effect>) {
        if self.shutdown.is_none() {
            let Some(when) = &self.exit_when else { return };
            let Some(code) = exit_when_fired(when, &self.services) else {
                return;
            };
            tracing::info!("exit_when is met: stopping");
            self.begin_shutdown((code != 0).then_some(code), now, fx);
            // Stop whatever still runs, in order, before the exit below can be reached.
            self.drive(now, fx);
            return;
        }
        let Some(shutdown) = &mut self.shutdown else {
            return;
        };
        if shutdown.exit_sent || self.services.values().any(Service::is_active) {
            return;
        }
        shutdown.exit_sent = true;
        let code = shutdown
            .exit_code
            .or_else(|| {
                self.services.values().find_map(|s| match s.phase {
                    Phase::Failed { code, .. } => Some(code),
                    _ => None,
                })
            })
            .unwrap_or(0);
        self.reports
            .push(Report::daemon(now.wall, Kind::DaemonStopping {}));
        fx.push(Effect::Exit { code });
    }
}

/// One service in a snapshot for the state file.
pub(super) struct Snapshot {
    name: String,
    status: crate::supervisor::Status,
    pid: Option<i32>,
    start_time: Option<u64>,
    restarts: u32,
    stopped_by_operator: bool,
    completed: bool,
    spec: Arc<crate::config::ServiceSpec>,
    last_run: Option<std::time::SystemTime>,
}

impl Supervisor {
    fn reorder(&mut self) {
        self.order = dependency_order(self.services.values().map(|s| s.spec.as_ref()))
            .into_iter()
            .map(String::from)
            .collect();
        self.dependents.clear();
        for (name, svc) in &self.services {
            for dep in &svc.spec.depends_on {
                self.dependents
                    .entry(dep.clone())
                    .or_default()
                    .push(name.clone());
            }
        }
        for (rank, name) in self.order.iter().enumerate() {
            if let Some(svc) = self.services.get_mut(name) {
                svc.rank = rank;
            }
        }
    }
}

fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}

mod apply;
pub(crate) mod carry;
mod contain;
mod operator;
mod parent;
mod readiness;
mod report;
mod scale;
mod scheduled;
mod stop;
#[cfg(test)]
mod tests;

use operator::Waiter;
