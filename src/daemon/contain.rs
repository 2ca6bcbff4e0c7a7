//! The shell's side of cgroups: each spawn placed in its service's cgroup with its limits,
//! `kill_mode = "cgroup"` signals carried out on the cgroup, emptiness and `memory.events`
//! watched and fed back as events, leftovers of an earlier daemon killed at start-up.
//!
//! Without cgroups every method here answers "not mine" and the shell does what it did
//! before: signals go to the process group, and emptiness is the group's.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use tokio::sync::mpsc::UnboundedSender;

use crate::cgroup::events::{Events, Notice};
use crate::cgroup::tree::Placement;
use crate::cgroup::{Cgroups, discover, report};
use crate::config::{KillMode, ServiceSpec, Signal};
use crate::process::Target;
use crate::supervisor::Event;

pub(super) struct Containment {
    pub cgroups: Cgroups,
    events: Option<Events>,
    /// The service each started process group belongs to (its leader's pid).
    by_pgid: HashMap<i32, String>,
}

impl Containment {
    /// Takes what [`crate::cgroup::set_up`] found; the watcher's notices become events on
    /// `internal`.
    pub fn new(cgroups: Cgroups, internal: UnboundedSender<Event>) -> Containment {
        let events = cgroups.tree().and_then(|_| {
            let watcher = Events::new(move |notice| {
                let event = match notice {
                    Notice::Empty { service, pgid } => Event::GroupEmpty { service, pgid },
                    Notice::MemoryHigh { service, pid } => Event::MemoryExceeded { service, pid },
                };
                let _ = internal.send(event);
            });
            match watcher {
                Ok(watcher) => Some(watcher),
                Err(e) => {
                    tracing::warn!(
                        "cannot watch cgroup events: {e}; a stop then ends at the main \
                         process's exit and memory_restart cannot work"
                    );
                    None
                }
            }
        });
        Containment {
            cgroups,
            events,
            by_pgid: HashMap::new(),
        }
    }

    /// Says at start-up what runpm found, and which limits of `specs` will not hold.
    pub fn announce<'a>(&self, specs: impl Iterator<Item = &'a ServiceSpec>) {
        match &self.cgroups {
            Cgroups::Enabled(tree) => tracing::info!(
                "cgroups: services run in {} (controllers: {})",
                tree.root.display(),
                if tree.controllers.is_empty() {
                    "none".to_owned()
                } else {
                    tree.controllers.join(" ")
                }
            ),
            Cgroups::Disabled { reason } => tracing::info!(
                "cgroups not in use: {reason}; services stop by process group, which a \
                 process that calls setsid escapes"
            ),
        }
        for spec in specs {
            if let Some(why) = report::unenforced(spec, &self.cgroups) {
                tracing::warn!("{}: {why}", spec.name);
            }
        }
    }

    /// Kills what an earlier daemon left in service cgroups, unless it is one of the
    /// `survivors` (pids the state file proves ours), which the supervisor stops itself.
    pub fn clean_leftovers(&self, survivors: &BTreeSet<i32>) {
        let Some(tree) = self.cgroups.tree() else {
            return;
        };
        for (service, procs) in tree.leftovers() {
            if procs.iter().any(|pid| survivors.contains(pid)) {
                continue;
            }
            tracing::warn!(
                "{service}: {} process(es) of an earlier runpm left in its cgroup: killing them",
                procs.len()
            );
            if let Err(e) = tree.signal(&service, nix::sys::signal::Signal::SIGKILL) {
                tracing::warn!("{service}: cannot kill what is left in its cgroup: {e}");
            }
        }
    }

    /// The service's cgroup, ready for a spawn: its `cgroup.procs` for the child to join.
    /// On failure the service starts outside any cgroup, which is logged.
    pub fn prepare(&self, service: &str, spec: &ServiceSpec) -> Option<Placement> {
        let tree = self.cgroups.tree()?;
        match tree.prepare(service, &spec.limits) {
            Ok(fd) => Some(fd),
            Err(e) => {
                tracing::warn!(
                    "{service}: {}; starting it outside a cgroup",
                    crate::errors::error_chain(&e)
                );
                None
            }
        }
    }

    /// After a spawn: remember whose group `pid` leads, and watch `memory_restart`.
    pub fn spawned(&mut self, service: &str, spec: &Arc<ServiceSpec>, pid: i32) {
        let Some(tree) = self.cgroups.tree() else {
            return;
        };
        // Only a `cgroup` stop is carried out on the cgroup and waits for it to empty; the
        // other modes keep their meaning (an explicit `group` ends at the group's end).
        if spec.kill_mode == KillMode::Cgroup {
            self.by_pgid.insert(pid, service.to_owned());
        }
        if let (Some(restart), Some(events)) = (spec.limits.memory_restart, &self.events)
            && tree.controllers.iter().any(|c| c == "memory")
            && let Err(e) = events.memory(&tree.service_dir(service), service, pid, restart)
        {
            tracing::warn!("{service}: cannot watch memory.events for memory_restart: {e}");
        }
    }

    /// The service whose group `pgid` leads: known from its spawn, else (a process of an
    /// earlier daemon) from its own `/proc/PID/cgroup`.
    fn service_of(&self, pgid: i32) -> Option<String> {
        if let Some(name) = self.by_pgid.get(&pgid) {
            return Some(name.clone());
        }
        let tree = self.cgroups.tree()?;
        let text = std::fs::read_to_string(format!("/proc/{pgid}/cgroup")).ok()?;
        let path = discover::own_path(&text)?;
        let name = path.rsplit('/').next()?.strip_suffix(".service")?;
        tree.service_dir(name).is_dir().then(|| name.to_owned())
    }

    /// Whether the kernel's OOM killer ended `pid`, a service's main process that `status`
    /// says SIGKILL ended: its cgroup counted a kill since the run started.
    pub fn oom_killed(&self, pid: i32, status: crate::process::ExitStatus) -> bool {
        if status != crate::process::ExitStatus::Signal(libc::SIGKILL) {
            return false;
        }
        self.by_pgid
            .get(&pid)
            .is_some_and(|service| crate::cgroup::oom_killed(service))
    }

    /// Carries out a signal to a [`Target::Cgroup`]; `None` for any other target, or when
    /// the cgroup is unknown (the caller then signals the group).
    pub fn signal(&self, target: Target, signal: Signal) -> Option<Result<(), String>> {
        let Target::Cgroup(pgid) = target else {
            return None;
        };
        let tree = self.cgroups.tree()?;
        let service = self.service_of(pgid)?;
        Some(tree.signal(&service, signal.0).map_err(|e| e.to_string()))
    }

    /// Whether the cgroup of the group `pgid` is empty; when it is not yet, a
    /// `GroupEmpty` event follows once it is. `None`: not a `cgroup` stop of this daemon's
    /// (the caller asks the process group).
    pub fn is_empty(&mut self, pgid: i32) -> Option<bool> {
        let tree = self.cgroups.tree()?;
        let name = self.by_pgid.get(&pgid)?.clone();
        let dir = tree.service_dir(&name);
        let empty = match &self.events {
            Some(events) => events.until_empty(&dir, &name, pgid),
            None => tree.populated(&name).map(|p| !p),
        };
        match empty {
            Ok(true) => {
                self.by_pgid.remove(&pgid);
                Some(true)
            }
            Ok(false) => Some(false),
            // The cgroup is gone: nothing can be left in it.
            Err(_) => Some(true),
        }
    }

    /// A reload changed only the service's limits: write them to its running cgroup.
    pub fn apply_limits(&self, service: &str, spec: &ServiceSpec) {
        if let Some(tree) = self.cgroups.tree() {
            tree.apply(service, &spec.limits, true);
            tracing::info!("{service}: limits applied to its running cgroup");
        }
    }

    /// On the way out: empty cgroups removed, runpm back where it came from.
    pub fn release(&self) {
        if let Some(tree) = self.cgroups.tree() {
            tree.release();
        }
    }
}
