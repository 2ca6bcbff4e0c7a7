//! A probe that hangs, from a user's side: the core's deadline for the probe in flight
//! (not a timer task beside it) ends it. The hung probe's process is killed, and the
//! failure reads as a timed-out probe in the run's exit.

mod common;

use common::*;

/// Whether process `pid` is gone (killed and reaped by runpm).
fn gone(pid: i32) -> bool {
    !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn a_health_check_that_hangs_is_killed_at_its_timeout_and_fails_the_run() {
    let p = Project::new(secs(60));
    p.config(
        r#"
[services.app]
shell = 'exec sleep 1000000'
health = { exec = ["sh", "-c", "echo $$ > probe.pid; exec sleep 1000000"], interval = "100ms", timeout = "300ms", retries = 1 }
restart = "on-failure"
restart_delay = "30s"
"#,
    );
    let _runpm = p.up(&["--no-watch"]);
    p.wait_socket(secs(10));
    let probe = p.read_pid("probe.pid", secs(10));
    let s = p.wait_status("app", "backoff", secs(10));
    let exit = &s["exits"][0];
    assert_eq!(exit["reason"], "failed", "{s:#}");
    let detail = exit["detail"].as_str().unwrap_or_default();
    assert_eq!(
        detail, "health check failed 1 times in a row: probe timed out after 300ms",
        "{s:#}"
    );
    assert!(
        wait_for(secs(5), || gone(probe)),
        "the hung probe {probe} still runs"
    );
}

#[test]
fn a_readiness_probe_that_hangs_is_killed_and_tried_again() {
    let p = Project::new(secs(60));
    // The first probe hangs; the ones after it succeed. Readiness comes only if the first
    // one was ended at its deadline and another one started.
    p.config(
        r#"
[services.app]
shell = 'exec sleep 1000000'
ready = { exec = ["sh", "-c", "if [ -f tried ]; then exit 0; fi; touch tried; echo $$ > probe.pid; exec sleep 1000000"] }
ready_timeout = "30s"
"#,
    );
    let _runpm = p.up(&["--no-watch"]);
    p.wait_socket(secs(10));
    let probe = p.read_pid("probe.pid", secs(10));
    // A readiness probe may take at most 5 s, whatever `ready_timeout` says.
    p.wait_status("app", "running", secs(20));
    assert!(
        wait_for(secs(5), || gone(probe)),
        "the hung probe {probe} still runs"
    );
}
