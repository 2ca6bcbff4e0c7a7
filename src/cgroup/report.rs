//! What `status` says about cgroups: the daemon's (`cgroups`) and each service's usage
//! and limits. Computed when a status is asked for, from the files of that moment.

use crate::config::ServiceSpec;
use crate::ipc::{CgroupsInfo, ResourceInfo};

use super::{Cgroups, accounting, limits};

/// The daemon-level `cgroups` object.
pub fn info(cgroups: &Cgroups) -> CgroupsInfo {
    match cgroups {
        Cgroups::Enabled(tree) => CgroupsInfo {
            enabled: true,
            path: Some(tree.root.display().to_string()),
            reason: None,
            controllers: tree.controllers.clone(),
        },
        Cgroups::Disabled { reason } => CgroupsInfo {
            enabled: false,
            path: None,
            reason: Some(reason.clone()),
            controllers: Vec::new(),
        },
    }
}

/// Why `spec`'s limits are not (all) enforced under `cgroups`; `None` when they are.
pub fn unenforced(spec: &ServiceSpec, cgroups: &Cgroups) -> Option<String> {
    match cgroups {
        Cgroups::Enabled(tree) => limits::unenforceable(&spec.limits, Some(&tree.controllers), ""),
        Cgroups::Disabled { reason } => {
            limits::unenforceable(&spec.limits, None, &format!("no cgroup: {reason}"))
        }
    }
}

/// One service's resources: from its cgroup, or from its process group `pgid` in `/proc`
/// (`groups`, read for every service at once with [`accounting::of_groups`]; none when it
/// has no process).
pub fn resources(
    spec: &ServiceSpec,
    pgid: Option<i32>,
    cgroups: &Cgroups,
    groups: &std::collections::HashMap<i32, accounting::Usage>,
) -> ResourceInfo {
    let (cgroup, usage) = match cgroups {
        Cgroups::Enabled(tree) => {
            let dir = tree.service_dir(&spec.name);
            let usage = dir.is_dir().then(|| accounting::of_cgroup(&dir));
            (Some(dir.display().to_string()), usage)
        }
        Cgroups::Disabled { .. } => (None, pgid.and_then(|pgid| groups.get(&pgid).copied())),
    };
    let usage = usage.unwrap_or_default();
    let reason = unenforced(spec, cgroups);
    ResourceInfo {
        cgroup,
        memory_bytes: usage.memory_bytes,
        memory_peak_bytes: usage.memory_peak_bytes,
        cpu_usec: usage.cpu_usec,
        tasks: usage.tasks,
        oom_kills: usage.oom_kills,
        limits_enforced: reason.is_none(),
        limits_reason: reason,
    }
}

/// `runpm validate`: the limits this machine would not enforce, one line per service
/// (`web: memory_max (needs the memory controller) …`). Looks, but takes nothing: the
/// controllers are those runpm's own cgroup could pass on to its services.
pub fn validate_warnings(config: &crate::config::Config) -> Vec<String> {
    if config.services.values().all(|s| s.limits.is_empty()) {
        return Vec::new();
    }
    let reason;
    let available: Option<Vec<String>> = if !config.settings.cgroups {
        reason = "turned off by `[runpm] cgroups = false`".to_owned();
        None
    } else {
        match super::discover::discover() {
            super::discover::Found::Available { own } => {
                reason = String::new();
                Some(
                    std::fs::read_to_string(own.join("cgroup.controllers"))
                        .unwrap_or_default()
                        .split_whitespace()
                        .map(String::from)
                        .collect(),
                )
            }
            super::discover::Found::Unavailable { reason: why } => {
                reason = why;
                None
            }
        }
    };
    config
        .services
        .values()
        .filter_map(|spec| {
            let why = limits::unenforceable(
                &spec.limits,
                available.as_deref(),
                &format!("no cgroup: {reason}"),
            )?;
            Some(format!("{}: {why}", spec.name))
        })
        .collect()
}
