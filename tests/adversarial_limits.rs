//! Values at and beyond the documented limits (issue 11): what `validate` accepts, the real
//! daemon runs, stops and shuts down; what would overflow a deadline (`kill_timeout =
//! "18446744073709551615s"`) is refused at load, with its position, before anything starts.

mod common;

use common::*;

/// Every duration and count at the largest value that loads.
const AT_THE_LIMITS: &str = r#"
[runpm]
shutdown_timeout = "1year"

[services.steady]
shell = "echo up; exec sleep 1000"
ready = { log = "up" }
ready_timeout = "1year"
restart = "always"
restart_delay = "1year"
restart_delay_max = "1year"
min_uptime = "1year"
restart_window = "1year"
max_restarts = 4294967295
kill_timeout = "1year"
failed_cooldown = "1year"
health = { exec = ["true"], interval = "1year", timeout = "1year", retries = 4294967295 }
log_keep = 1000
log_max_size = "1TB"

[services.crashy]
shell = "exit 3"
restart = "on-failure"
restart_delay = "1year"
restart_delay_max = "1year"
kill_timeout = "1year"
"#;

#[test]
fn the_daemon_runs_stops_and_shuts_down_with_every_value_at_its_limit() {
    let p = Project::new(secs(60));
    p.config(AT_THE_LIMITS);
    let out = p.run(&["validate", "-f", "services.toml"], secs(5));
    assert_eq!(out.code(), Some(0), "{out:#?}");

    let daemon = p.up_detached_failing(&["--no-watch"]);
    p.wait_status("steady", "running", secs(10));
    // The next start of crashy is a year away (in a later calendar year), and said so.
    let crashy = p.wait_status("crashy", "backoff", secs(10));
    let next: i64 = crashy["next_start"]
        .as_str()
        .and_then(|t| t.get(..4))
        .and_then(|year| year.parse().ok())
        .unwrap_or_else(|| panic!("no next_start: {crashy:#}"));
    let this_year: i64 = humantime::format_rfc3339(std::time::SystemTime::now()).to_string()[..4]
        .parse()
        .unwrap();
    assert!(next > this_year, "{crashy:#}");

    p.ctl_ok(&["stop", "steady"]);
    assert_eq!(p.service("steady")["status"], "stopped");
    p.ctl_ok(&["start", "steady"]);
    p.ctl_ok(&["restart", "steady"]);
    assert_eq!(p.service("steady")["status"], "running");
    p.ctl_ok(&["restart", "crashy"]);

    p.ctl_ok(&["shutdown", "--yes"]);
    assert!(daemon.wait_exit(secs(10)), "{}", daemon.describe());
    assert!(
        wait_for(secs(5), || processes_in(p.path()).is_empty()),
        "services outlived the daemon: {:?}",
        processes_in(p.path())
    );
    let log = daemon.log();
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn values_that_would_overflow_a_deadline_are_refused_where_they_are_written() {
    let p = Project::new(secs(30));
    p.config(
        r#"[runpm]
shutdown_timeout = "18446744073709551615s"

[services.web]
cmd = ["sleep", "1000"]
kill_timeout = "18446744073709551615s"
ready = { notify = true }
watchdog = "2years"
health = { exec = ["true"], interval = "18446744073709551615s" }
log_keep = 4294967295
"#,
    );
    let out = p.run(&["validate", "-f", "services.toml"], secs(5));
    assert_eq!(out.code(), Some(1), "{out:#?}");
    for (line, what) in [
        (
            2,
            "duration `18446744073709551615s` is too long: at most `1year`",
        ),
        (
            6,
            "duration `18446744073709551615s` is too long: at most `1year`",
        ),
        (8, "duration `2years` is too long"),
        (9, "duration `18446744073709551615s` is too long"),
        (10, "at most 1000 rotated files"),
    ] {
        let at = format!("services.toml:{line}:");
        assert!(
            out.stderr
                .lines()
                .any(|l| l.contains(&at) && l.contains(what)),
            "no `{what}` at line {line}\n{}",
            out.stderr
        );
    }
    // `up` refuses the same config and starts nothing.
    let mut up = p.up(&["--no-watch"]);
    up.assert_exit_code(secs(10), 1);
    assert!(processes_in(p.path()).is_empty());
}
