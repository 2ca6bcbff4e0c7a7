//! From a service's [`Limits`] to the cgroup files that enforce them, and which of them
//! this subtree cannot enforce (its controller is not delegated). Pure, except [`apply`].
//!
//! Every file is written on every apply, unset limits at the kernel's default (`max`,
//! weight 100): a reload that removes a limit must lift it from the running cgroup.

use std::path::Path;

use crate::config::{CPU_PERIOD_USEC, Limits};

/// One cgroup file to write, and the controller it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub controller: &'static str,
    pub file: &'static str,
    pub value: String,
}

fn or_max(value: Option<u64>) -> String {
    value.map_or_else(|| "max".to_owned(), |n| n.to_string())
}

/// The files that put `limits` in force (and lift the unset ones).
///
/// `memory_restart` without a `memory_high` sets `memory.high` to the restart value: the
/// kernel then counts a `high` event in `memory.events` when the service goes above it,
/// which is what wakes runpm (no polling).
pub fn writes(limits: &Limits) -> Vec<Write> {
    let w = |controller, file, value| Write {
        controller,
        file,
        value,
    };
    vec![
        w("memory", "memory.max", or_max(limits.memory_max)),
        w(
            "memory",
            "memory.high",
            or_max(limits.memory_high.or(limits.memory_restart)),
        ),
        w(
            "cpu",
            "cpu.max",
            match limits.cpu_max {
                Some(c) => format!("{} {}", c.quota_usec, c.period_usec),
                None => format!("max {CPU_PERIOD_USEC}"),
            },
        ),
        w(
            "cpu",
            "cpu.weight",
            limits.cpu_weight.unwrap_or(100).to_string(),
        ),
        w("pids", "pids.max", or_max(limits.pids_max)),
        w(
            "io",
            "io.weight",
            format!("default {}", limits.io_weight.unwrap_or(100)),
        ),
    ]
}

/// The controller each limit key needs.
pub fn controller_of(key: &str) -> &'static str {
    match key {
        "memory_max" | "memory_high" | "memory_restart" => "memory",
        "cpu_max" | "cpu_weight" => "cpu",
        "pids_max" => "pids",
        _ => "io",
    }
}

/// Why the limits that are set cannot all be enforced with `controllers` delegated (`None`:
/// no cgroup at all, with its reason in `no_cgroup`); `None` when they can.
pub fn unenforceable(
    limits: &Limits,
    controllers: Option<&[String]>,
    no_cgroup: &str,
) -> Option<String> {
    let keys = limits.keys();
    if keys.is_empty() {
        return None;
    }
    let Some(controllers) = controllers else {
        return Some(format!("{} not enforced: {no_cgroup}", keys.join(", ")));
    };
    let missing: Vec<String> = keys
        .iter()
        .filter(|k| !controllers.iter().any(|c| c == controller_of(k)))
        .map(|k| format!("{k} (needs the {} controller)", controller_of(k)))
        .collect();
    if missing.is_empty() {
        return None;
    }
    let have = if controllers.is_empty() {
        "none".to_owned()
    } else {
        controllers.join(" ")
    };
    Some(format!(
        "not enforced: {}; controllers delegated to runpm: {have}",
        missing.join(", ")
    ))
}

/// Writes the limits whose controller is in `controllers` to the cgroup `dir`. Every
/// failure is reported; the others are still written.
pub fn apply(dir: &Path, limits: &Limits, controllers: &[String]) -> Result<(), String> {
    let mut errors = Vec::new();
    for write in writes(limits) {
        if !controllers.iter().any(|c| c == write.controller) {
            continue;
        }
        let path = dir.join(write.file);
        if let Err(e) = std::fs::write(&path, &write.value) {
            errors.push(format!(
                "cannot write `{}` to {}: {e}",
                write.value,
                path.display()
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CpuMax;

    fn limits() -> Limits {
        Limits {
            memory_max: Some(512_000_000),
            cpu_max: Some(CpuMax::parse("50%").unwrap()),
            pids_max: Some(256),
            ..Limits::default()
        }
    }

    fn value(writes: &[Write], file: &str) -> String {
        writes
            .iter()
            .find(|w| w.file == file)
            .unwrap()
            .value
            .clone()
    }

    #[test]
    fn limits_become_cgroup_file_values() {
        let w = writes(&limits());
        assert_eq!(value(&w, "memory.max"), "512000000");
        assert_eq!(value(&w, "memory.high"), "max");
        assert_eq!(value(&w, "cpu.max"), "50000 100000");
        assert_eq!(value(&w, "pids.max"), "256");
        assert_eq!(value(&w, "cpu.weight"), "100");
        assert_eq!(value(&w, "io.weight"), "default 100");
        let lifted = writes(&Limits::default());
        assert_eq!(value(&lifted, "cpu.max"), "max 100000");
        assert_eq!(value(&lifted, "memory.max"), "max");
    }

    #[test]
    fn memory_restart_watches_through_memory_high() {
        let restart = Limits {
            memory_restart: Some(500_000_000),
            ..Limits::default()
        };
        assert_eq!(value(&writes(&restart), "memory.high"), "500000000");
        let both = Limits {
            memory_high: Some(400),
            ..restart
        };
        assert_eq!(value(&writes(&both), "memory.high"), "400");
    }

    #[test]
    fn reports_what_cannot_be_enforced() {
        let l = limits();
        assert_eq!(unenforceable(&Limits::default(), None, "x"), None);
        assert_eq!(
            unenforceable(&l, None, "no cgroup").unwrap(),
            "memory_max, cpu_max, pids_max not enforced: no cgroup"
        );
        let hugetlb = ["hugetlb".to_owned()];
        let why = unenforceable(&l, Some(&hugetlb), "").unwrap();
        assert!(
            why.contains("memory_max (needs the memory controller)"),
            "{why}"
        );
        assert!(why.contains("delegated to runpm: hugetlb"), "{why}");
        let all = ["memory", "cpu", "pids"].map(String::from);
        assert_eq!(unenforceable(&l, Some(&all), ""), None);
    }

    #[test]
    fn writes_only_delegated_controllers_to_a_fake_cgroupfs() {
        let dir = tempfile::tempdir().unwrap();
        let delegated = ["cpu".to_owned(), "pids".to_owned()];
        for file in ["cpu.max", "cpu.weight", "pids.max"] {
            std::fs::write(dir.path().join(file), "").unwrap();
        }
        apply(dir.path(), &limits(), &delegated).unwrap();
        let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap();
        assert_eq!(read("cpu.max"), "50000 100000");
        assert_eq!(read("pids.max"), "256");
        assert!(!dir.path().join("memory.max").exists());
        // A controller the directory does not have fails loudly, naming the file.
        let e = apply(dir.path().join("gone").as_path(), &limits(), &delegated).unwrap_err();
        assert!(e.contains("cpu.max"), "{e}");
    }
}
