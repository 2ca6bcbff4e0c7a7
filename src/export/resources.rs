//! Limits and rlimits in the exports: systemd's resource-control keys (`MemoryMax=`,
//! `CPUQuota=`, `TasksMax=`, `LimitNOFILE=`…) and Kubernetes' `resources` (memory and CPU;
//! the rest is reported as not carried over).

use serde_json::{Map, Value, json};

use crate::config::ServiceSpec;

/// systemd's name for an rlimit (`nofile` → `LimitNOFILE`).
fn systemd_limit(name: &str) -> String {
    format!("Limit{}", name.to_ascii_uppercase())
}

/// The `[Service]` lines for `spec`'s limits and rlimits.
pub fn systemd(
    spec: &ServiceSpec,
    line: &mut impl FnMut(&str, &str),
    warn: &mut impl FnMut(&'static str, String),
) {
    let l = &spec.limits;
    if let Some(bytes) = l.memory_max {
        line("MemoryMax", &bytes.to_string());
    }
    if let Some(bytes) = l.memory_high {
        line("MemoryHigh", &bytes.to_string());
    }
    if let Some(cpu) = l.cpu_max {
        line("CPUQuota", &format!("{}%", cpu.percent()));
    }
    if let Some(weight) = l.cpu_weight {
        line("CPUWeight", &weight.to_string());
    }
    if let Some(tasks) = l.pids_max {
        line("TasksMax", &tasks.to_string());
    }
    if let Some(weight) = l.io_weight {
        line("IOWeight", &weight.to_string());
    }
    if l.memory_restart.is_some() {
        warn(
            "memory_restart",
            "systemd has no restart on memory use; `MemoryMax=` with `Restart=` restarts \
             the service once the kernel OOM-kills it"
                .into(),
        );
    }
    for (name, limit) in &spec.rlimits {
        line(&systemd_limit(name), &limit.to_string());
    }
}

/// Kubernetes quantities: bytes as a plain integer, CPU in millicores.
pub fn kubernetes(
    spec: &ServiceSpec,
    warn: &mut impl FnMut(&'static str, String),
) -> Option<Value> {
    let l = &spec.limits;
    let mut limits = Map::new();
    let mut requests = Map::new();
    if let Some(bytes) = l.memory_max {
        limits.insert("memory".into(), json!(bytes.to_string()));
    }
    if let Some(bytes) = l.memory_high {
        // The closest Kubernetes has to a soft limit is what the scheduler reserves.
        requests.insert("memory".into(), json!(bytes.to_string()));
    }
    if let Some(cpu) = l.cpu_max {
        limits.insert("cpu".into(), json!(format!("{}m", cpu.millicpus())));
    }
    if let Some(weight) = l.cpu_weight {
        // cpu.weight 100 is a fair share of one CPU: Kubernetes derives weights from
        // requests, which may not exceed the limit.
        let milli = u64::from(weight) * 10;
        let milli = l.cpu_max.map_or(milli, |c| milli.min(c.millicpus()));
        requests.insert("cpu".into(), json!(format!("{milli}m")));
    }
    for (key, set) in [
        ("pids_max", l.pids_max.is_some()),
        ("io_weight", l.io_weight.is_some()),
        ("memory_restart", l.memory_restart.is_some()),
    ] {
        if set {
            warn(
                key,
                format!("Kubernetes has no per-container `{key}`: not carried over"),
            );
        }
    }
    if !spec.rlimits.is_empty() {
        warn(
            "rlimits",
            "Kubernetes sets no rlimits per container: they come from the container runtime \
             (or the image's entrypoint with `ulimit`); not carried over"
                .into(),
        );
    }
    if limits.is_empty() && requests.is_empty() {
        return None;
    }
    let mut resources = Map::new();
    if !limits.is_empty() {
        resources.insert("limits".into(), Value::Object(limits));
    }
    if !requests.is_empty() {
        resources.insert("requests".into(), Value::Object(requests));
    }
    Some(Value::Object(resources))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CpuMax, Rlimit};
    use crate::testing::spec;

    fn limited() -> ServiceSpec {
        let mut s = spec("web");
        s.limits.memory_max = Some(512_000_000);
        s.limits.cpu_max = Some(CpuMax::parse("1.5").unwrap());
        s.limits.pids_max = Some(64);
        s.rlimits.insert(
            "nofile".into(),
            Rlimit {
                soft: Some(1024),
                hard: Some(4096),
            },
        );
        s.rlimits.insert(
            "core".into(),
            Rlimit {
                soft: None,
                hard: None,
            },
        );
        s
    }

    #[test]
    fn systemd_keys() {
        let mut lines = Vec::new();
        let mut warnings = Vec::new();
        systemd(
            &limited(),
            &mut |k, v| lines.push(format!("{k}={v}")),
            &mut |k, _| warnings.push(k),
        );
        assert_eq!(
            lines,
            [
                "MemoryMax=512000000",
                "CPUQuota=150%",
                "TasksMax=64",
                "LimitCORE=infinity",
                "LimitNOFILE=1024:4096"
            ]
        );
        assert!(warnings.is_empty());
    }

    #[test]
    fn kubernetes_resources() {
        let mut warnings = Vec::new();
        let r = kubernetes(&limited(), &mut |k, _| warnings.push(k)).unwrap();
        assert_eq!(r["limits"]["memory"], "512000000");
        assert_eq!(r["limits"]["cpu"], "1500m");
        assert_eq!(warnings, ["pids_max", "rlimits"]);
        assert_eq!(kubernetes(&spec("x"), &mut |_, _| {}), None);
    }
}
