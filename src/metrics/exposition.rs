//! The text exposition format: per metric family a `# HELP` and a `# TYPE` line, then one
//! line per series, `name{label="value"} number`. Label values escape `\`, `"` and newlines.

use std::fmt::Write;

/// What is known of one service.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    /// starting, running, stopping, stopped, exited, backoff, failed.
    pub status: String,
    pub restarts: u32,
    /// The last run's exit code (128 + N when signal N ended it), if it ended.
    pub last_exit_code: Option<i32>,
    /// Resident memory of its processes, while it has any.
    pub memory_bytes: Option<u64>,
    /// CPU time of its processes (user + system), while it has any.
    pub cpu_seconds: Option<f64>,
}

/// Every status a service can have, so that `runpm_services` always has all of them.
const STATES: [&str; 7] = [
    "starting", "running", "stopping", "stopped", "exited", "backoff", "failed",
];

/// The whole exposition for `services`.
pub fn render(services: &[Sample]) -> String {
    let mut out = String::new();
    family(
        &mut out,
        "runpm_service_up",
        "Whether the service is running (1) or not (0).",
        "gauge",
        services,
        |s| Some(f64::from(u8::from(s.status == "running"))),
    );
    family(
        &mut out,
        "runpm_service_restarts_total",
        "Automatic restarts since the daemon started or the service was re-armed.",
        "counter",
        services,
        |s| Some(f64::from(s.restarts)),
    );
    family(
        &mut out,
        "runpm_service_last_exit_code",
        "Exit code of the service's last run (128+N when signal N ended it).",
        "gauge",
        services,
        |s| s.last_exit_code.map(f64::from),
    );
    family(
        &mut out,
        "runpm_service_memory_bytes",
        "Resident memory of the service's processes.",
        "gauge",
        services,
        |s| s.memory_bytes.map(|b| b as f64),
    );
    family(
        &mut out,
        "runpm_service_cpu_seconds_total",
        "CPU time (user and system) used by the service's processes.",
        "counter",
        services,
        |s| s.cpu_seconds,
    );
    let _ = writeln!(out, "# HELP runpm_services Services by state.");
    let _ = writeln!(out, "# TYPE runpm_services gauge");
    for state in STATES {
        let n = services.iter().filter(|s| s.status == state).count();
        let _ = writeln!(out, "runpm_services{{state=\"{state}\"}} {n}");
    }
    out
}

fn family(
    out: &mut String,
    name: &str,
    help: &str,
    kind: &str,
    services: &[Sample],
    value: impl Fn(&Sample) -> Option<f64>,
) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for s in services {
        if let Some(v) = value(s) {
            let _ = writeln!(
                out,
                "{name}{{service=\"{}\"}} {}",
                escape_label(&s.name),
                number(v)
            );
        }
    }
}

/// A sample value as the format writes it (Go's float syntax: integers plain).
fn number(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// A label value: backslash, double quote and line feed escaped.
pub fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str, status: &str) -> Sample {
        Sample {
            name: name.into(),
            status: status.into(),
            restarts: 0,
            last_exit_code: None,
            memory_bytes: None,
            cpu_seconds: None,
        }
    }

    #[test]
    fn each_family_has_help_type_and_one_line_per_service_that_has_a_value() {
        let mut web = sample("web", "running");
        web.memory_bytes = Some(4096);
        web.cpu_seconds = Some(0.25);
        let mut worker = sample("worker", "backoff");
        worker.restarts = 3;
        worker.last_exit_code = Some(1);
        let text = render(&[web, worker]);
        for family in [
            "runpm_service_up gauge",
            "runpm_service_restarts_total counter",
            "runpm_service_last_exit_code gauge",
            "runpm_service_memory_bytes gauge",
            "runpm_service_cpu_seconds_total counter",
            "runpm_services gauge",
        ] {
            assert!(
                text.contains(&format!("# TYPE {family}\n")),
                "{family}: {text}"
            );
        }
        for line in [
            "runpm_service_up{service=\"web\"} 1",
            "runpm_service_up{service=\"worker\"} 0",
            "runpm_service_restarts_total{service=\"worker\"} 3",
            "runpm_service_last_exit_code{service=\"worker\"} 1",
            "runpm_service_memory_bytes{service=\"web\"} 4096",
            "runpm_service_cpu_seconds_total{service=\"web\"} 0.25",
            "runpm_services{state=\"running\"} 1",
            "runpm_services{state=\"backoff\"} 1",
            "runpm_services{state=\"failed\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line}: {text}");
        }
        assert!(!text.contains("runpm_service_last_exit_code{service=\"web\"}"));
        assert!(!text.contains("runpm_service_memory_bytes{service=\"worker\"}"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape_label("x\ny"), "x\\ny");
        assert_eq!(escape_label("web.1@host"), "web.1@host");
    }
}
