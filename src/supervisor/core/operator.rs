//! Control requests: status, start, stop, restart, reload and shutdown.
//!
//! Start, stop and restart change what is wanted and go through the planner like a reload
//! does; the reply waits (a [`Waiter`]) until the services got where they were sent, or
//! failed on the way, so `runpmctl restart worker` can print the new pid.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::SystemTime;

use crate::ipc::{
    DependencyInfo, ErrorKind, ExitInfo, ProtocolError, Request, Response, ServiceInfo,
    StatusResult,
};
use crate::reconcile::{self, Desired};
use crate::supervisor::deps::{self, Wait};
use crate::supervisor::event::{Effect, Now};
use crate::supervisor::service::{Phase, Service, Want};
use crate::supervisor::status::{EndReason, Status};

use super::Supervisor;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    Start,
    Stop,
    Restart,
}

/// A request whose reply waits until each service got where the request sent it.
#[derive(Debug, Clone)]
pub(super) struct Waiter {
    pub token: u64,
    targets: Vec<(String, Op)>,
    since: SystemTime,
    /// What to reply on success; `None`: the status of the targets.
    payload: Option<Response>,
}

impl Waiter {
    pub(super) fn new(
        token: u64,
        targets: Vec<(String, Op)>,
        since: SystemTime,
        payload: Option<Response>,
    ) -> Waiter {
        Waiter {
            token,
            targets,
            since,
            payload,
        }
    }
}

/// How long an operator command waits for a dependency in backoff before it replies
/// with the reason instead.
const PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

fn signal_name(sig: i32) -> String {
    nix::sys::signal::Signal::try_from(sig)
        .map_or_else(|_| format!("signal {sig}"), |s| s.as_str().to_string())
}

/// Where each of `svc`'s dependencies stands, and the names of those it still waits for
/// (only while it waits to be spawned).
fn dependency_info(
    services: &BTreeMap<String, Service>,
    svc: &Service,
) -> (Vec<String>, Vec<DependencyInfo>) {
    let mut waiting_for = Vec::new();
    let mut all = Vec::new();
    for (dep, wait) in deps::each(services, svc) {
        let condition = svc.spec.condition(dep);
        if !wait.is_met() && svc.phase == Phase::Waiting {
            waiting_for.push(dep.to_owned());
        }
        all.push(DependencyInfo {
            name: dep.to_owned(),
            condition: condition.as_str().into(),
            status: services
                .get(dep)
                .map_or_else(|| "unknown".into(), |d| d.status().as_str().into()),
            met: wait.is_met(),
            why: matches!(wait, Wait::Blocked { .. } | Wait::Backoff { .. })
                .then(|| deps::describe(dep, &wait)),
        });
    }
    (waiting_for, all)
}

pub(crate) fn service_info(svc: &Service, now: Now) -> ServiceInfo {
    let uptime_ms = svc
        .live_run()
        .map(|run| now.at.saturating_duration_since(run.started).as_millis() as u64);
    let next_start = match svc.phase {
        Phase::Backoff { until }
        | Phase::Failed {
            rearm_at: Some(until),
            ..
        } => Some(rfc3339(
            now.wall_after(until.saturating_duration_since(now.at)),
        )),
        _ => None,
    };
    let reason = match &svc.phase {
        Phase::Failed { reason, .. } => Some(reason.clone()),
        _ => None,
    };
    let exits = svc
        .exits
        .iter()
        .map(|e| ExitInfo {
            code: e.status.code(),
            signal: e.status.signal().map(signal_name),
            at: rfc3339(e.at),
            uptime_ms: e.uptime.as_millis() as u64,
            reason: match e.reason {
                EndReason::Exited => "exited",
                EndReason::Stopped => "stopped",
                EndReason::SpawnFailed => "spawn-failed",
                EndReason::Failed => "failed",
                EndReason::OomKilled => "oom-killed",
            }
            .into(),
            detail: e.detail.clone(),
            last_lines: e.last_lines.clone(),
        })
        .collect();
    ServiceInfo {
        name: svc.spec.name.clone(),
        status: svc.status().as_str().into(),
        pid: svc.pid(),
        restarts: svc.restarts,
        since: rfc3339(svc.since),
        uptime_ms,
        stopped_by_operator: svc.want.by_operator(),
        wanted: match svc.want {
            Want::Up | Want::Restart => "up",
            Want::Down { .. } | Want::Remove => "down",
        }
        .into(),
        completed: svc.completed(),
        reason,
        next_start,
        status_text: svc.status_text.clone(),
        waiting_for: Vec::new(),
        dependencies: Vec::new(),
        not_ready: svc.not_ready.clone(),
        exits,
        replica_of: svc.spec.replica_of.clone(),
        next_run: svc
            .clock
            .as_ref()
            .filter(|_| svc.want.is_up())
            .and_then(|c| c.next)
            .map(|(wall, _)| rfc3339(wall)),
        last_run: svc.clock.as_ref().and_then(|c| c.last_run).map(rfc3339),
        resources: Default::default(),
    }
}

impl Supervisor {
    pub(super) fn on_request(
        &mut self,
        token: u64,
        request: Request,
        now: Now,
        fx: &mut Vec<Effect>,
    ) {
        let reply = |fx: &mut Vec<Effect>, reply| fx.push(Effect::Reply { token, reply });
        match request {
            Request::Hello { .. } => reply(
                fx,
                Ok(Response::Hello {
                    version: crate::ipc::PROTOCOL_VERSION,
                }),
            ),
            Request::Status { services } => match self.resolve(&services, services.is_empty()) {
                Ok(names) => reply(fx, Ok(self.status_of(&names, now))),
                Err(e) => reply(fx, Err(e)),
            },
            Request::Shutdown => {
                match &self.shutdown {
                    None => {
                        tracing::info!("shutdown requested: stopping all services");
                        self.begin_shutdown(None, now, fx);
                    }
                    // As a second Ctrl-C: whoever asks again does not want to wait.
                    Some(s) if !s.escalated => {
                        tracing::warn!("shutdown requested again: killing all services now");
                        self.escalate_all(now, fx);
                    }
                    Some(_) => {}
                }
                reply(fx, Ok(Response::ShuttingDown));
            }
            Request::Reload { dry_run } => {
                if self.shutdown.is_some() {
                    reply(fx, Err(shutting_down()));
                } else {
                    fx.push(Effect::LoadConfig {
                        token: Some(token),
                        dry_run,
                    });
                }
            }
            Request::Resurrect => fx.push(Effect::LoadSnapshot { token }),
            Request::Logs {
                services,
                lines,
                follow,
                since,
            } => match self.resolve(&services, false) {
                Ok(services) => fx.push(Effect::ServeLogs {
                    token,
                    services,
                    lines,
                    since,
                    follow,
                }),
                Err(e) => reply(fx, Err(e)),
            },
            Request::Save => fx.push(Effect::SaveState { token }),
            Request::Reexec => self.reexec(Some(token), now, fx),
            Request::Start { services, all } => {
                self.operate(token, Op::Start, &services, all, now, fx)
            }
            Request::Stop { services, all } => {
                self.operate(token, Op::Stop, &services, all, now, fx)
            }
            Request::Restart { services, all } => {
                self.operate(token, Op::Restart, &services, all, now, fx)
            }
            Request::Kill {
                services,
                signal,
                group,
            } => {
                let reply_with = self.kill(&services, &signal, group, now, fx);
                reply(fx, reply_with);
            }
            Request::Events { services, since } => match self.resolve(&services, false) {
                Ok(services) => fx.push(Effect::ServeEvents {
                    token,
                    services,
                    since,
                }),
                Err(e) => reply(fx, Err(e)),
            },
            Request::Scale { service, replicas } => self.scale(token, &service, replicas, now, fx),
        }
    }

    /// `runpmctl kill`: the signal goes to each named service's main process (or its whole
    /// group), and what happens next is up to the service and its restart policy, as with
    /// `systemctl kill`. Nothing is sent unless every named service has a process, so a
    /// typo or a stopped service cannot leave half of the request done.
    fn kill(
        &mut self,
        services: &[String],
        signal: &str,
        group: bool,
        now: Now,
        fx: &mut Vec<Effect>,
    ) -> Result<Response, ProtocolError> {
        let Some(parsed) = crate::config::Signal::parse(signal) else {
            let message = format!("unknown signal `{signal}` (use a name such as HUP or SIGTERM)");
            return Err(ProtocolError::new(ErrorKind::BadRequest, message));
        };
        let names = self.resolve(services, false)?;
        if names.is_empty() {
            let message = "name at least one service to signal";
            return Err(ProtocolError::new(ErrorKind::BadRequest, message));
        }
        let mut targets = Vec::new();
        let mut idle = Vec::new();
        for name in &names {
            let svc = &self.services[name];
            let run = match &svc.phase {
                Phase::Running(run) => Some(run),
                Phase::Stopping(st) if st.main_exit.is_none() => Some(&st.run),
                _ => None,
            };
            match run {
                Some(run) if group => targets.push((name, crate::process::Target::Group(run.pgid))),
                Some(run) => targets.push((name, crate::process::Target::Process(run.pid))),
                None => idle.push(format!("{name} ({})", svc.status())),
            }
        }
        if !idle.is_empty() {
            let message = format!(
                "no process to signal: {}; nothing was sent (start it first)",
                idle.join(", ")
            );
            return Err(ProtocolError::new(ErrorKind::Failed, message));
        }
        for (name, target) in targets {
            tracing::info!("{name}: signalled with {} (runpmctl kill)", parsed.name());
            fx.push(Effect::Signal {
                service: name.clone(),
                target,
                signal: parsed,
            });
        }
        Ok(self.status_of(&names, now))
    }

    fn operate(
        &mut self,
        token: u64,
        op: Op,
        services: &[String],
        all: bool,
        now: Now,
        fx: &mut Vec<Effect>,
    ) {
        if self.shutdown.is_some() {
            fx.push(Effect::Reply {
                token,
                reply: Err(shutting_down()),
            });
            return;
        }
        let names = match self.resolve(services, all) {
            Ok(names) if names.is_empty() => {
                let error =
                    ProtocolError::new(ErrorKind::BadRequest, "name at least one service, or all");
                fx.push(Effect::Reply {
                    token,
                    reply: Err(error),
                });
                return;
            }
            Ok(names) => names,
            Err(e) => {
                fx.push(Effect::Reply {
                    token,
                    reply: Err(e),
                });
                return;
            }
        };
        let mut desired = self.desired_now();
        let mut restart = BTreeSet::new();
        match op {
            Op::Start | Op::Restart => {
                // What a started service depends on comes up with it.
                want_up_with_dependencies(&mut desired, &names);
                for name in &names {
                    let settled = matches!(
                        self.services[name].phase,
                        Phase::Exited { .. } | Phase::Failed { .. }
                    );
                    if op == Op::Restart || settled {
                        restart.insert(name.clone());
                    }
                }
                for name in &names {
                    if let Some(svc) = self.services.get_mut(name) {
                        svc.want = svc.want.forget_operator_stop();
                        // `start` runs a scheduled service now.
                        if let Some(clock) = &mut svc.clock {
                            clock.due = true;
                        }
                    }
                }
            }
            Op::Stop => {
                for name in &names {
                    if let Some(d) = desired.get_mut(name) {
                        d.up = false;
                    }
                    // A second stop while the first still waits for the process: SIGKILL now,
                    // as a second Ctrl-C does.
                    let svc = &self.services[name];
                    if svc.want.is_down() && matches!(svc.phase, Phase::Stopping(_)) {
                        tracing::warn!("{name}: stop requested again: sending SIGKILL");
                        self.kill_now(name, now, fx);
                    }
                }
            }
        }
        let plan = reconcile::plan(&desired, &self.observed(), &restart);
        for action in &plan {
            tracing::info!("{}", describe_action(action));
            self.reports.push(super::report::planned(action, now));
        }
        self.apply(plan, &desired, now);
        if op == Op::Stop {
            for name in &names {
                if let Some(svc) = self.services.get_mut(name) {
                    if svc.want != Want::Remove {
                        svc.want = Want::Down { by_operator: true };
                    }
                    if matches!(svc.phase, Phase::Exited { .. } | Phase::Failed { .. }) {
                        svc.set_phase(Phase::Stopped, now.wall);
                        self.reports.push(crate::report::Report::about(
                            name,
                            now.wall,
                            crate::report::Kind::Stopped {},
                        ));
                    }
                }
            }
        }
        let targets = names.into_iter().map(|n| (n, op)).collect();
        self.waiters
            .push(Waiter::new(token, targets, now.wall, None));
    }

    /// Named services (all of them with `all`), or an error naming those that do not exist.
    fn resolve(&self, names: &[String], all: bool) -> Result<Vec<String>, ProtocolError> {
        if all {
            return Ok(self.order.clone());
        }
        let unknown: Vec<&str> = names
            .iter()
            .filter(|n| !self.services.contains_key(n.as_str()))
            .map(String::as_str)
            .collect();
        if !unknown.is_empty() {
            let known: Vec<&str> = self.services.keys().map(String::as_str).collect();
            let hint = match unknown.as_slice() {
                [one] => crate::config::did_you_mean(one, known.iter().copied())
                    .map(|near| format!("did you mean `{near}`? ")),
                _ => None,
            };
            let message = format!(
                "no service named `{}` ({}services: {})",
                unknown.join("`, `"),
                hint.unwrap_or_default(),
                known.join(", ")
            );
            return Err(ProtocolError::new(ErrorKind::UnknownService, message));
        }
        let mut out: Vec<String> = Vec::new();
        for n in names {
            if !out.contains(n) {
                out.push(n.clone());
            }
        }
        Ok(out)
    }

    /// The `status` answer for `names`: each with where its dependencies stand.
    pub(super) fn status_of(&self, names: &[String], now: Now) -> Response {
        let services = names
            .iter()
            .filter_map(|n| self.services.get(n))
            .map(|s| {
                let mut info = service_info(s, now);
                (info.waiting_for, info.dependencies) = dependency_info(&self.services, s);
                info
            })
            .collect();
        let running_from_snapshot = self.last_known_good.clone();
        // What the services use is read by the shell as it sends the answer (see
        // `Hands::account`): the core reads no files.
        Response::Status(StatusResult {
            services,
            running_from_snapshot,
            cgroups: None,
        })
    }

    /// Replies to every waiter whose services got where they were sent.
    pub(super) fn check_waiters(&mut self, now: Now, fx: &mut Vec<Effect>) {
        let mut still = Vec::new();
        for w in std::mem::take(&mut self.waiters) {
            match self.waiter_outcome(&w, now) {
                None => still.push(w),
                Some(Ok(())) => {
                    let reply = match w.payload.clone() {
                        Some(value) => Ok(value),
                        None => {
                            let names: Vec<String> =
                                w.targets.iter().map(|(n, _)| n.clone()).collect();
                            Ok(self.status_of(&names, now))
                        }
                    };
                    fx.push(Effect::Reply {
                        token: w.token,
                        reply,
                    });
                }
                Some(Err(message)) => {
                    let error = ProtocolError::new(ErrorKind::Failed, message);
                    fx.push(Effect::Reply {
                        token: w.token,
                        reply: Err(error),
                    });
                }
            }
        }
        self.waiters = still;
    }

    /// `None` while any service is still on its way. A service that waits for a dependency
    /// that cannot get there by itself (failed, ended badly, stopped, or in a backoff longer
    /// than [`PATIENCE`]) is a failure now, with the reason: the operator is not left
    /// waiting for a client timeout.
    fn waiter_outcome(&self, w: &Waiter, now: Now) -> Option<Result<(), String>> {
        let mut failures = Vec::new();
        for (name, op) in &w.targets {
            // A service that left the table (removed by a reload) has stopped for good.
            let Some(svc) = self.services.get(name) else {
                continue;
            };
            let fresh = svc.since >= w.since;
            if *op != Op::Stop && svc.want.is_up() && svc.phase == Phase::Waiting {
                let hopeless = deps::each(&self.services, svc)
                    .find(|(_, wait)| wait.hopeless(now.at, PATIENCE));
                if let Some((dep, wait)) = hopeless {
                    let advice = wait.advice().map(|a| format!("; {a}")).unwrap_or_default();
                    let what = deps::describe(dep, &wait);
                    failures.push(format!("{name}: waiting for {what}{advice}"));
                    continue;
                }
            }
            match (op, svc.status()) {
                (Op::Stop, _) if svc.is_active() => return None,
                (Op::Stop, _) => {}
                // A scheduled run is a task: `start` replies once it has ended and the
                // service waits for its next time, as `systemctl start` does for a oneshot.
                (Op::Start, Status::Running)
                    if svc.want != Want::Restart && svc.clock.is_none() => {}
                (Op::Start | Op::Restart, Status::Waiting) if fresh => {}
                (Op::Restart, Status::Running)
                    if fresh && svc.want != Want::Restart && svc.clock.is_none() => {}
                (_, Status::Failed | Status::Exited | Status::Backoff | Status::Stopped)
                    if fresh =>
                {
                    let last = svc.exits.back().map(|e| e.status.to_string());
                    let detail = match &svc.phase {
                        Phase::Failed { reason, .. } => reason.clone(),
                        _ => last.unwrap_or_else(|| svc.status().to_string()),
                    };
                    failures.push(format!("{name}: {} ({detail})", svc.status()));
                }
                _ => return None,
            }
        }
        Some(if failures.is_empty() {
            Ok(())
        } else {
            Err(failures.join("; "))
        })
    }

    /// What is wanted now, per service: its current spec, up or down as it stands.
    pub(super) fn desired_now(&self) -> BTreeMap<String, Desired> {
        self.services
            .iter()
            .filter(|(_, s)| s.want != Want::Remove)
            .map(|(n, s)| {
                (
                    n.clone(),
                    Desired {
                        spec: Arc::clone(&s.spec),
                        up: s.want.is_up(),
                    },
                )
            })
            .collect()
    }
}

/// Marks `names` up in `desired`, and everything they depend on, transitively: a service
/// that is started comes up with what it needs.
pub(super) fn want_up_with_dependencies(desired: &mut BTreeMap<String, Desired>, names: &[String]) {
    let mut seen = BTreeSet::new();
    let mut todo: Vec<String> = names.to_vec();
    while let Some(name) = todo.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        if let Some(d) = desired.get_mut(&name) {
            d.up = true;
            todo.extend(d.spec.depends_on.iter().cloned());
        }
    }
}

fn shutting_down() -> ProtocolError {
    ProtocolError::shutting_down()
}

pub(super) fn describe_action(action: &reconcile::Action) -> String {
    use reconcile::{Action, Reason};
    match action {
        Action::Start { name } => format!("+ {name} started"),
        Action::Stop { name } => format!("- {name} stopped"),
        Action::Remove { name } => format!("- {name} removed"),
        Action::Update { name, changed } => {
            format!("~ {name} updated ({} changed)", changed.join(", "))
        }
        Action::Live { name, changed } => {
            format!(
                "~ {name} limits changed (applied live: {})",
                changed.join(", ")
            )
        }
        Action::Restart { name, reason } => match reason {
            Reason::Changed(fields) => {
                format!("~ {name} restarted ({} changed)", fields.join(", "))
            }
            Reason::Dependency(dep) => format!("~ {name} restarted (dependency {dep} restarted)"),
            Reason::Requested => format!("~ {name} restarted (restart requested)"),
        },
    }
}
