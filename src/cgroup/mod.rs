//! cgroups: a cgroup v2 per service, where one is delegated to runpm.
//!
//! [`discover`] finds runpm's own cgroup and whether it may write there; [`tree`] takes the
//! project's subtree (runpm in a `supervisor/` leaf, one cgroup per service) and signals,
//! kills and empties it; [`limits`] turns `memory_max`, `cpu_max`… into cgroup files;
//! [`events`] waits for a cgroup to empty and for `memory.events`; [`accounting`] reads
//! what a service uses, on request only; [`report`] says all of it in `status`.
//!
//! Where no cgroup is writable runpm still runs: stops use process groups, limits are
//! reported as not enforced, and `status` says why.

pub mod accounting;
pub mod discover;
pub mod events;
pub mod limits;
pub mod report;
pub mod tree;

use std::sync::{Arc, Mutex};

pub use tree::Tree;

/// Whether this daemon's services run in cgroups, and if not why.
#[derive(Clone)]
pub enum Cgroups {
    Enabled(Arc<Tree>),
    Disabled { reason: String },
}

impl Cgroups {
    pub fn tree(&self) -> Option<&Arc<Tree>> {
        match self {
            Cgroups::Enabled(tree) => Some(tree),
            Cgroups::Disabled { .. } => None,
        }
    }
}

/// The daemon's cgroups, for the readers that are not handed them (status, the OOM
/// check); unset outside a daemon.
static CURRENT: Mutex<Option<Cgroups>> = Mutex::new(None);

pub fn set_current(cgroups: Option<Cgroups>) {
    *CURRENT.lock().unwrap_or_else(|e| e.into_inner()) = cgroups;
}

pub fn current() -> Option<Cgroups> {
    CURRENT.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// At daemon start-up, before the first spawn: cgroups found and taken, or why not.
/// `instance` names the project (its state directory).
pub fn set_up(allowed: bool, instance: &str) -> Cgroups {
    if !allowed {
        return Cgroups::Disabled {
            reason: "turned off by `[runpm] cgroups = false`".into(),
        };
    }
    if std::env::var(discover::OFF_VAR).is_ok_and(|v| matches!(v.trim(), "0" | "false" | "no")) {
        return Cgroups::Disabled {
            reason: format!("turned off by {}=0", discover::OFF_VAR),
        };
    }
    match discover::discover() {
        discover::Found::Available { own } => match Tree::take(&own, instance) {
            Ok(tree) => Cgroups::Enabled(Arc::new(tree)),
            Err(e) => Cgroups::Disabled {
                reason: crate::errors::error_chain(&e),
            },
        },
        discover::Found::Unavailable { reason } => Cgroups::Disabled { reason },
    }
}

/// Whether the kernel's OOM killer killed in `service`'s cgroup since its run started.
pub fn oom_killed(service: &str) -> bool {
    current()
        .as_ref()
        .and_then(Cgroups::tree)
        .is_some_and(|tree| tree.oom_killed(service))
}

/// The cgroup directory of `service` in this daemon, for the state file.
pub fn service_path(service: &str) -> Option<String> {
    let current = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
    match current.as_ref()? {
        Cgroups::Enabled(tree) => Some(tree.service_dir(service).display().to_string()),
        Cgroups::Disabled { .. } => None,
    }
}
