//! `runpmctl scale NAME N`, and what a change in the number of replicas does to the rest.
//!
//! Scaling goes through the planner like every other change: the group's replicas are
//! expanded again for the new count ([`crate::config::replicas::rescale`]), and the plan
//! starts the new ones and stops the ones beyond it; the others keep their spec, so the
//! planner leaves them, and their pids, alone. The override is recorded (and persisted in
//! the state file) with the count the config asked for at the time: a reload that finds the
//! same `replicas` keeps it, one that finds another count drops it (the config wins).
//!
//! A service that depends on the whole group names every replica; a new count changes that
//! list. Such a service is not restarted for it ([`spare_dependents`]): its new spec is
//! adopted in place, and a new replica that is not ready yet does not stop what already
//! runs (as systemd does not restart a unit whose `After=` gains a unit).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::config::replicas::{MAX_REPLICAS, rescale};
use crate::config::{Config, Scaled, ServiceSpec};
use crate::ipc::{ErrorKind, ProtocolError, Response, ScaleResult};
use crate::reconcile::{self, Action, Desired, Reason};
use crate::supervisor::event::{Effect, Now};
use crate::supervisor::service::Want;

use super::Supervisor;
use super::operator::{Op, Waiter, describe_action};

impl Supervisor {
    /// The `scale` overrides in force, for the state file.
    pub fn scaled(&self) -> &BTreeMap<String, Scaled> {
        &self.scaled
    }

    /// `config` with the overrides that still apply (the config's count is the one they
    /// were made against); with `commit`, those become the overrides in force and the
    /// config's groups the ones `scale` knows.
    pub(super) fn with_overrides(
        &mut self,
        config: &Config,
        overrides: &BTreeMap<String, Scaled>,
        commit: bool,
    ) -> Config {
        let mut out = config.clone();
        let mut kept = BTreeMap::new();
        for (group, scaled) in overrides {
            match config.replicated.get(group) {
                Some(r) if r.count == scaled.config => {
                    if let Some(rescaled) = rescale(&out, group, scaled.count) {
                        out = rescaled;
                        kept.insert(group.clone(), *scaled);
                    }
                }
                Some(r) => tracing::info!(
                    "{group}: the config now asks for {} replicas: `scale {group} {}` no longer \
                     applies",
                    r.count,
                    scaled.count
                ),
                None => {}
            }
        }
        if commit {
            self.scaled = kept;
            self.replicated = config.replicated.clone();
        }
        out
    }

    /// The config in force, as `rescale` needs it: the specs of the table and the groups.
    fn current_config(&self) -> Config {
        Config {
            source: self.source.clone().into(),
            base_dir: Default::default(),
            settings: self.settings.clone(),
            services: self
                .services
                .iter()
                .filter(|(_, s)| s.want != Want::Remove)
                .map(|(n, s)| (n.clone(), s.spec.as_ref().clone()))
                .collect(),
            replicated: self.replicated.clone(),
            selection: Default::default(),
        }
    }

    pub(super) fn scale(
        &mut self,
        token: u64,
        group: &str,
        count: u32,
        now: Now,
        fx: &mut Vec<Effect>,
    ) {
        let reply = |fx: &mut Vec<Effect>, reply| fx.push(Effect::Reply { token, reply });
        if self.shutdown.is_some() {
            return reply(fx, Err(ProtocolError::shutting_down()));
        }
        if count > MAX_REPLICAS {
            let message = format!("at most {MAX_REPLICAS} replicas");
            return reply(fx, Err(ProtocolError::new(ErrorKind::BadRequest, message)));
        }
        let Some(config_count) = self.replicated.get(group).map(|r| r.count) else {
            let groups: Vec<&str> = self.replicated.keys().map(String::as_str).collect();
            let message = if groups.is_empty() {
                format!("`{group}` has no `replicas`, and no service of this config has")
            } else {
                format!(
                    "`{group}` has no `replicas` (services with replicas: {})",
                    groups.join(", ")
                )
            };
            return reply(
                fx,
                Err(ProtocolError::new(ErrorKind::UnknownService, message)),
            );
        };
        let Some(config) = rescale(&self.current_config(), group, count) else {
            return;
        };
        let desired: BTreeMap<String, Desired> = config
            .services
            .iter()
            .map(|(name, spec)| {
                // The group's new replicas run: the operator asked for them.
                let up = self.services.get(name).is_none_or(|s| s.want.is_up());
                let d = Desired {
                    spec: Arc::new(spec.clone()),
                    up,
                };
                (name.clone(), d)
            })
            .collect();
        let plan = reconcile::plan(&desired, &self.observed(), &BTreeSet::new());
        let plan = spare_dependents(plan, &self.specs(), &desired);
        let mut started = Vec::new();
        let mut stopped = Vec::new();
        for action in &plan {
            tracing::info!("scale {group} {count}: {}", describe_action(action));
            match action {
                Action::Start { name } => started.push(name.clone()),
                Action::Stop { name } | Action::Remove { name } if !stopped.contains(name) => {
                    stopped.push(name.clone())
                }
                _ => {}
            }
        }
        started.sort();
        stopped.sort();
        if count == config_count {
            self.scaled.remove(group);
        } else {
            self.scaled.insert(
                group.to_owned(),
                Scaled {
                    config: config_count,
                    count,
                },
            );
        }
        let targets = started
            .iter()
            .map(|n| (n.clone(), Op::Start))
            .chain(stopped.iter().map(|n| (n.clone(), Op::Stop)))
            .collect();
        self.apply(plan, &desired, now);
        let scaled = Response::Scaled(ScaleResult {
            service: group.to_owned(),
            replicas: count,
            config_replicas: config_count,
            started,
            stopped,
        });
        self.waiters
            .push(Waiter::new(token, targets, now.wall, Some(scaled)));
    }

    /// Every service's spec in force.
    pub(super) fn specs(&self) -> BTreeMap<String, Arc<ServiceSpec>> {
        self.services
            .iter()
            .map(|(n, s)| (n.clone(), Arc::clone(&s.spec)))
            .collect()
    }
}

/// `plan` without the restarts that a new replica count alone would cause: a service whose
/// only change is which replicas its dependencies name adopts its new spec in place
/// (`Update`), and whoever would restart only because it did keeps running too.
pub(super) fn spare_dependents(
    plan: Vec<Action>,
    current: &BTreeMap<String, Arc<ServiceSpec>>,
    desired: &BTreeMap<String, Desired>,
) -> Vec<Action> {
    let is_replica = |name: &str| {
        current
            .get(name)
            .map(|s| s.replica_of.is_some())
            .or_else(|| desired.get(name).map(|d| d.spec.replica_of.is_some()))
            .unwrap_or(false)
    };
    let without_replicas = |spec: &ServiceSpec| {
        let deps: Vec<&String> = spec.depends_on.iter().filter(|d| !is_replica(d)).collect();
        let conditions: Vec<(&String, _)> = spec
            .conditions
            .iter()
            .filter(|(d, _)| !is_replica(d))
            .collect();
        format!("{deps:?}{conditions:?}")
    };
    let mut spared: BTreeSet<String> = BTreeSet::new();
    for action in &plan {
        if let Action::Restart {
            name,
            reason: Reason::Changed(fields),
        } = action
            && fields.len() == 1
            && fields[0] == "depends_on"
            && let (Some(old), Some(new)) = (current.get(name), desired.get(name))
            && without_replicas(old) == without_replicas(&new.spec)
        {
            spared.insert(name.clone());
        }
    }
    // Restarts that cascade from a spared one fall away too.
    let mut cascaded: BTreeSet<String> = BTreeSet::new();
    loop {
        let before = cascaded.len();
        for action in &plan {
            if let Action::Restart {
                name,
                reason: Reason::Dependency(dep),
            } = action
                && (spared.contains(dep) || cascaded.contains(dep))
            {
                cascaded.insert(name.clone());
            }
        }
        if cascaded.len() == before {
            break;
        }
    }
    plan.into_iter()
        .filter_map(|action| match &action {
            Action::Restart { name, .. } if spared.contains(name) => Some(Action::Update {
                name: name.clone(),
                changed: vec!["depends_on".into()],
            }),
            Action::Restart { name, .. } if cascaded.contains(name) => None,
            _ => Some(action),
        })
        .collect()
}
