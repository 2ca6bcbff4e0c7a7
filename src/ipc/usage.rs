//! How a service's usage and the daemon's cgroups read in `runpmctl status`: the MEM and
//! CPU cells of the table (short, so the table keeps within 80 columns), and the note that
//! says why cgroups are not in use.

use super::{CgroupsInfo, ResourceInfo, ServiceInfo};

/// Bytes as `ps` and `top` show them: binary units, one decimal below 10.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "K", "M", "G", "T"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else if value < 10.0 {
        format!("{value:.1}{}", UNITS[unit])
    } else {
        format!("{value:.0}{}", UNITS[unit])
    }
}

/// CPU time: `0.42s`, `12s`, `3m12s`, `5h03m`.
pub fn format_cpu(usec: u64) -> String {
    let secs = usec / 1_000_000;
    match secs {
        0..10 => format!("{:.2}s", usec as f64 / 1e6),
        10..60 => format!("{secs}s"),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
    }
}

/// The MEM and CPU cells of a row (`-` when not known).
pub fn cells(s: &ServiceInfo) -> [String; 2] {
    let dash = || "-".to_owned();
    [
        s.resources.memory_bytes.map_or_else(dash, format_bytes),
        s.resources.cpu_usec.map_or_else(dash, format_cpu),
    ]
}

/// The lines of `runpmctl status NAME` about resources: its cgroup, what it uses, and
/// why its limits do not hold, when they do not.
pub fn detail(r: &ResourceInfo) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if let Some(cgroup) = &r.cgroup {
        out.push(("cgroup", cgroup.clone()));
    }
    if let Some(memory) = r.memory_bytes {
        let peak = r
            .memory_peak_bytes
            .map(|p| format!(" (peak {})", format_bytes(p)))
            .unwrap_or_default();
        out.push(("memory", format!("{}{peak}", format_bytes(memory))));
    }
    if let Some(cpu) = r.cpu_usec {
        out.push(("cpu", format_cpu(cpu)));
    }
    if let Some(tasks) = r.tasks {
        out.push(("tasks", tasks.to_string()));
    }
    if let Some(kills) = r.oom_kills.filter(|&k| k > 0) {
        out.push(("oom kills", kills.to_string()));
    }
    if let Some(why) = &r.limits_reason {
        out.push(("limits", why.clone()));
    }
    out
}

/// A line for below the table when cgroups are not in use: why, and what that costs.
pub fn cgroups_note(info: &CgroupsInfo) -> Option<String> {
    (!info.enabled).then(|| {
        format!(
            "cgroups: not in use ({}); stops reach the process group only",
            info.reason.as_deref().unwrap_or("unknown reason")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_times_are_short() {
        assert_eq!(format_bytes(512), "512B");
        assert_eq!(format_bytes(5 * 1024 * 1024 + 300_000), "5.3M");
        assert_eq!(format_bytes(300 * 1024 * 1024), "300M");
        assert_eq!(format_bytes(3 << 30), "3.0G");
        assert_eq!(format_cpu(420_000), "0.42s");
        assert_eq!(format_cpu(12_000_000), "12s");
        assert_eq!(format_cpu(192_000_000), "3m12s");
        assert_eq!(format_cpu(5 * 3600 * 1_000_000 + 180_000_000), "5h03m");
    }

    #[test]
    fn the_note_says_why_only_when_off() {
        let mut info = CgroupsInfo {
            enabled: true,
            path: Some("/sys/fs/cgroup/runpm-1".into()),
            reason: None,
            controllers: vec![],
        };
        assert_eq!(cgroups_note(&info), None);
        info.enabled = false;
        info.reason = Some("cannot write".into());
        assert!(
            cgroups_note(&info)
                .unwrap()
                .contains("not in use (cannot write)")
        );
    }
}
