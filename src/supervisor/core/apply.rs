//! Carrying out the planner's actions on the service table, and reload.
//!
//! The planner decides what changes; applying only records intent (want up or down, a new
//! spec, a pending restart). The processes themselves are started and stopped by `drive`,
//! in dependency order, like every other change.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::config::Config;
use crate::ipc::{ErrorKind, ProtocolError, Response};
use crate::reconcile::{self, Action, Desired, Observed, Reason, RunState};
use crate::report::{Kind, Report};
use crate::supervisor::event::{Effect, Now};
use crate::supervisor::service::{Phase, Service, Want};

use super::Supervisor;
use super::operator::{Op, Waiter, describe_action, want_up_with_dependencies};
use super::report;

impl Supervisor {
    /// The running table as the planner sees it.
    pub(super) fn observed(&self) -> BTreeMap<String, Observed> {
        self.services
            .iter()
            .map(|(name, svc)| {
                let run = match svc.phase {
                    Phase::Stopped => RunState::Stopped,
                    Phase::Exited { .. } | Phase::Failed { .. } => RunState::Settled,
                    _ if svc.want == Want::Remove || svc.want.is_down() && !svc.is_active() => {
                        RunState::Stopped
                    }
                    _ => RunState::Active,
                };
                (
                    name.clone(),
                    Observed {
                        spec: Arc::clone(&svc.spec),
                        run,
                    },
                )
            })
            .collect()
    }

    /// Plans from the current table to `desired` and applies it.
    pub(super) fn apply_plan(
        &mut self,
        desired: &BTreeMap<String, Desired>,
        restart: &BTreeSet<String>,
        now: Now,
    ) {
        let plan = reconcile::plan(desired, &self.observed(), restart);
        self.apply(plan, desired, now);
    }

    pub(super) fn apply(
        &mut self,
        plan: Vec<Action>,
        desired: &BTreeMap<String, Desired>,
        now: Now,
    ) {
        for action in plan {
            match action {
                Action::Start { name } => {
                    let Some(svc) = self.adopt(&name, desired, now) else {
                        continue;
                    };
                    svc.want = svc.want.up();
                    if matches!(
                        svc.phase,
                        Phase::Stopped | Phase::Exited { .. } | Phase::Failed { .. }
                    ) {
                        svc.rearm();
                        svc.set_phase(Phase::Waiting, now.wall);
                    }
                }
                Action::Stop { name } => {
                    if let Some(svc) = self.services.get_mut(&name) {
                        svc.want = svc.want.down();
                    }
                }
                Action::Restart { name, reason } => {
                    let Some(svc) = self.adopt(&name, desired, now) else {
                        continue;
                    };
                    svc.want = Want::Restart;
                    // A new definition, or an operator's restart, starts a fresh crash
                    // window: old failures of another definition must not count. A restart
                    // caused by a dependency is neither, and keeps the count.
                    if !matches!(reason, Reason::Dependency(_)) {
                        svc.rearm();
                    }
                }
                Action::Update { name, .. } => {
                    let up = desired.get(&name).is_some_and(|d| d.up);
                    let Some(svc) = self.adopt(&name, desired, now) else {
                        continue;
                    };
                    if svc.phase == Phase::Stopped {
                        svc.want = if up { svc.want.up() } else { svc.want.down() };
                    }
                }
                Action::Remove { name } => {
                    if let Some(svc) = self.services.get_mut(&name) {
                        svc.want = Want::Remove;
                    }
                }
                // The limits are written by the `ApplyLimits` effect the reload pushed.
                Action::Live { name, .. } => {
                    self.adopt(&name, desired, now);
                }
            }
        }
        self.reorder();
    }

    /// The table entry for `name` carrying its desired spec, created if new. `None` only
    /// if the plan named a service that is neither desired nor known, which the planner
    /// never does.
    fn adopt(
        &mut self,
        name: &str,
        desired: &BTreeMap<String, Desired>,
        now: Now,
    ) -> Option<&mut Service> {
        let spec = desired.get(name).map(|d| Arc::clone(&d.spec));
        let svc = match (self.services.contains_key(name), spec.clone()) {
            (true, _) => self.services.get_mut(name)?,
            (false, Some(spec)) => self
                .services
                .entry(name.to_string())
                .or_insert(Service::new(spec, now.wall)),
            (false, None) => return None,
        };
        if let Some(spec) = spec {
            svc.spec = spec;
        }
        // Back in the config: it stays, down until an action of this plan says otherwise.
        if svc.want == Want::Remove {
            svc.want = Want::Down { by_operator: false };
        }
        Some(svc)
    }

    /// A reload: `result` is the freshly loaded config, or why it could not be loaded.
    pub(super) fn on_config(
        &mut self,
        token: Option<u64>,
        dry_run: bool,
        result: Result<Config, crate::config::ConfigErrors>,
        now: Now,
        fx: &mut Vec<Effect>,
    ) {
        let reply = |fx: &mut Vec<Effect>, reply| {
            if let Some(token) = token {
                fx.push(Effect::Reply { token, reply });
            }
        };
        if self.shutdown.is_some() {
            reply(fx, Err(ProtocolError::shutting_down()));
            return;
        }
        let config = match result {
            Ok(config) => config,
            Err(errors) => {
                let message = errors.to_string();
                tracing::error!(
                    "reload: the configuration is invalid; nothing was changed:\n{message}"
                );
                if !dry_run {
                    self.reports.push(Report::daemon(
                        now.wall,
                        Kind::ConfigInvalid {
                            message: message.clone(),
                        },
                    ));
                }
                reply(
                    fx,
                    Err(ProtocolError::new(ErrorKind::InvalidConfig, message)),
                );
                return;
            }
        };
        // `scale` overrides hold while the config's `replicas` stays what it was.
        let overrides = self.scaled.clone();
        let config = self.with_overrides(&config, &overrides, !dry_run);
        let desired: BTreeMap<String, Desired> = config
            .services
            .iter()
            .map(|(name, spec)| {
                // Operator intent survives a reload: a service stopped by hand stays
                // stopped, one started by hand stays up; new services follow autostart.
                let up = self
                    .services
                    .get(name)
                    .map_or(spec.autostart, |s| s.want.is_up());
                (
                    name.clone(),
                    Desired {
                        spec: Arc::new(spec.clone()),
                        up,
                    },
                )
            })
            .collect();
        let plan = reconcile::plan(&desired, &self.observed(), &BTreeSet::new());
        let plan = super::scale::spare_dependents(plan, &self.specs(), &desired);
        let unchanged = reconcile::unchanged(&desired, &plan);
        let result = reconcile::describe(&plan, unchanged, dry_run, config.source.as_str());
        let verb = if dry_run {
            "reload (dry run)"
        } else {
            "reload"
        };
        if plan.is_empty() {
            tracing::info!("{verb}: nothing changed ({unchanged} unchanged)");
        }
        for action in &plan {
            tracing::info!("{verb}: {}", describe_action(action));
        }
        let value = Response::Plan(result);
        if dry_run {
            return reply(fx, Ok(value));
        }
        if self.last_known_good.take().is_some() {
            tracing::info!("the config is valid again: leaving the last-known-good snapshot");
        }
        self.settings = config.settings.clone();
        if let Some(when) = config.settings.exit_when.clone() {
            self.exit_when = Some(when);
        }
        self.source = config.source.to_string();
        self.report_reload(&plan, unchanged, now);
        for action in &plan {
            if let reconcile::Action::Live { name, .. } = action
                && let Some(want) = desired.get(name)
            {
                fx.push(Effect::ApplyLimits {
                    service: name.clone(),
                    spec: want.spec.clone(),
                });
            }
        }
        // The reply waits until the plan is carried out, so `runpmctl reload && curl …`
        // talks to the new version.
        let targets: Vec<(String, Op)> = plan
            .iter()
            .filter_map(|a| match a {
                Action::Start { name } => Some((name.clone(), Op::Start)),
                Action::Restart { name, .. } => Some((name.clone(), Op::Restart)),
                Action::Stop { name } | Action::Remove { name } => Some((name.clone(), Op::Stop)),
                Action::Update { .. } | Action::Live { .. } => None,
            })
            .collect();
        self.apply(plan, &desired, now);
        if let Some(token) = token {
            self.waiters
                .push(Waiter::new(token, targets, now.wall, Some(value)));
        }
    }
}

impl Supervisor {
    /// `resurrect`: what the snapshot says was meant to run is started, through the planner,
    /// so a second resurrect changes nothing. The reply waits as a reload's does.
    pub(super) fn on_snapshot(
        &mut self,
        token: u64,
        wanted_up: Result<Vec<String>, crate::state::SnapshotError>,
        now: Now,
        fx: &mut Vec<Effect>,
    ) {
        let wanted = match wanted_up {
            Ok(wanted) => wanted,
            Err(error) => {
                fx.push(Effect::Reply {
                    token,
                    reply: Err(ProtocolError::new(ErrorKind::Failed, error.to_string())),
                });
                return;
            }
        };
        let mut desired = self.desired_now();
        let known: Vec<String> = wanted
            .into_iter()
            .filter(|n| desired.contains_key(n))
            .collect();
        want_up_with_dependencies(&mut desired, &known);
        let plan = reconcile::plan(&desired, &self.observed(), &BTreeSet::new());
        let unchanged = reconcile::unchanged(&desired, &plan);
        let result = reconcile::describe(&plan, unchanged, false, &self.source);
        for action in &plan {
            tracing::info!("resurrect: {}", describe_action(action));
            self.reports.push(report::planned(action, now));
        }
        let targets: Vec<(String, Op)> = plan
            .iter()
            .filter_map(|a| match a {
                Action::Start { name } => Some((name.clone(), Op::Start)),
                Action::Restart { name, .. } => Some((name.clone(), Op::Restart)),
                _ => None,
            })
            .collect();
        for (name, _) in &targets {
            if let Some(svc) = self.services.get_mut(name) {
                svc.want = svc.want.forget_operator_stop();
            }
        }
        self.apply(plan, &desired, now);
        self.waiters.push(Waiter::new(
            token,
            targets,
            now.wall,
            Some(Response::Plan(result)),
        ));
    }
}

impl Supervisor {
    /// A reload's plan, applied: `planned` per service, then `reloaded` with the names added
    /// (new in the config), removed, and changed (restarted or updated for a changed
    /// definition). Called before the plan is applied, while the table still tells what is
    /// new.
    fn report_reload(&mut self, plan: &[Action], unchanged: usize, now: Now) {
        let (mut added, mut removed, mut changed) = (Vec::new(), Vec::new(), Vec::new());
        for action in plan {
            self.reports.push(report::planned(action, now));
            match action {
                Action::Start { name } if !self.services.contains_key(name) => {
                    added.push(name.clone())
                }
                Action::Remove { name } => removed.push(name.clone()),
                Action::Restart {
                    name,
                    reason: Reason::Changed(_),
                }
                | Action::Update { name, .. } => changed.push(name.clone()),
                _ => {}
            }
        }
        self.reports.push(Report::daemon(
            now.wall,
            Kind::Reloaded {
                added,
                removed,
                changed,
                unchanged,
            },
        ));
    }
}
