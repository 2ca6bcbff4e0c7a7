//! `runpmctl events` (issue 16, part 1): the lifecycle events of a real daemon, read from
//! `runpmctl events --json` as a script would (through a pipe, one object per line, while
//! it runs), through a start, a crash and its restart, a stop and a start, a reload, an
//! invalid reload and the shutdown that ends the stream.

mod common;

use common::*;
use serde_json::Value;

/// A long-running service that does nothing.
const SLEEPER: &str = r#"shell = "exec sleep 1000""#;

fn is_int(v: &Value) -> bool {
    v.is_i64() || v.is_u64()
}

fn is_names(v: &Value) -> bool {
    v.as_array().is_some_and(|a| a.iter().all(Value::is_string))
}

/// Checks the documented schema of one event: `ts` (RFC 3339, UTC, milliseconds),
/// `service` (a name, or null for daemon-wide events), `event`, and its fields.
fn check_schema(e: &Value) {
    let ts = e["ts"].as_str().unwrap_or_else(|| panic!("no ts: {e}"));
    assert!(
        ts.len() == 24
            && ts.ends_with('Z')
            && ts.as_bytes()[10] == b'T'
            && ts.as_bytes()[19] == b'.',
        "ts is not RFC 3339 with milliseconds: {e}"
    );
    assert!(humantime::parse_rfc3339(ts).is_ok(), "{e}");
    let event = e["event"]
        .as_str()
        .unwrap_or_else(|| panic!("no event: {e}"));
    let daemon_wide = ["reloaded", "config_invalid", "daemon_stopping"].contains(&event);
    if daemon_wide {
        assert!(e["service"].is_null(), "{event} is daemon-wide: {e}");
    } else {
        assert!(e["service"].is_string(), "{event} names its service: {e}");
    }
    let ok = match event {
        "spawned" | "ready" => is_int(&e["pid"]),
        "exited" => {
            is_int(&e["pid"])
                && (is_int(&e["code"]) || e["code"].is_null())
                && (e["signal"].is_string() || e["signal"].is_null())
                && is_int(&e["uptime_ms"])
                && e["reason"].is_string()
        }
        "restarting" => is_int(&e["in_ms"]) && is_int(&e["restarts"]),
        "failed" => e["reason"].is_string(),
        "stopping" => is_int(&e["pid"]) && e["signal"].is_string(),
        "stopped" | "health_recovered" | "daemon_stopping" => true,
        "health_failed" | "config_invalid" => e["message"].is_string(),
        "reloaded" => {
            is_names(&e["added"])
                && is_names(&e["removed"])
                && is_names(&e["changed"])
                && is_int(&e["unchanged"])
        }
        "planned" => e["action"].is_string() && (e["reason"].is_string() || e["reason"].is_null()),
        other => panic!("an event the documentation does not name: {other}: {e}"),
    };
    assert!(ok, "{event} does not have its documented fields: {e}");
}

#[test]
fn events_follow_a_crash_a_restart_a_stop_a_reload_and_the_shutdown_in_order() {
    let p = Project::new(secs(120));
    let config = |x: &str| {
        format!("[services.web]\n{SLEEPER}\nenv = {{ X = \"{x}\" }}\n\n[services.db]\n{SLEEPER}\n")
    };
    p.config(&config("1"));
    let daemon = p.up_detached(&["--no-watch"]);
    let first = p.running_pid("web", secs(10));

    // Replayed from the ring: the start-up, before this reader existed.
    let ev = p.events(&["--json", "--since", "10m"]);
    let spawned = ev.wait_event(0, Some("web"), "spawned");
    assert_eq!(ev.events()[spawned]["pid"], first);
    let ready = ev.wait_event(spawned, Some("web"), "ready");

    // A crash: SIGKILL from outside; on-failure restarts it.
    p.ctl_ok(&["kill", "-s", "KILL", "web"]);
    let exited = ev.wait_event(ready, Some("web"), "exited");
    let e = &ev.events()[exited];
    assert_eq!(e["pid"], first);
    assert_eq!(e["code"], Value::Null);
    assert_eq!(e["signal"], "SIGKILL");
    assert_eq!(e["reason"], "signal");
    let restarting = ev.wait_event(exited, Some("web"), "restarting");
    assert_eq!(ev.events()[restarting]["restarts"], 1);
    let respawned = ev.wait_event(restarting, Some("web"), "spawned");
    let second = p.running_pid("web", secs(10));
    assert_ne!(second, first);
    assert_eq!(ev.events()[respawned]["pid"], second);
    let ready = ev.wait_event(respawned, Some("web"), "ready");

    // An operator's stop and start.
    p.ctl_ok(&["stop", "web"]);
    let planned = ev.wait_event(ready, Some("web"), "planned");
    assert_eq!(ev.events()[planned]["action"], "stopped");
    let stopping = ev.wait_event(planned, Some("web"), "stopping");
    assert_eq!(ev.events()[stopping]["pid"], second);
    assert_eq!(ev.events()[stopping]["signal"], "SIGTERM");
    let stopped = ev.wait_event(stopping, Some("web"), "stopped");
    p.ctl_ok(&["start", "web"]);
    let started = ev.wait_event(stopped, Some("web"), "spawned");

    // A reload that changes web's environment: the plan, then its effect.
    p.config(&config("2"));
    p.ctl_ok(&["reload"]);
    let planned = ev.wait_event(started, Some("web"), "planned");
    assert_eq!(ev.events()[planned]["action"], "restarted");
    assert_eq!(ev.events()[planned]["reason"], "env changed");
    let reloaded = ev.wait_event(planned, None, "reloaded");
    let r = &ev.events()[reloaded];
    assert_eq!(r["changed"], serde_json::json!(["web"]));
    assert_eq!(r["added"], serde_json::json!([]));
    assert_eq!(r["removed"], serde_json::json!([]));
    assert_eq!(r["unchanged"], 1);
    let stopping = ev.wait_event(reloaded, Some("web"), "stopping");
    let stopped = ev.wait_event(stopping, Some("web"), "stopped");
    let spawned = ev.wait_event(stopped, Some("web"), "spawned");

    // An invalid config changes nothing and says so.
    p.config("[services.web]\ncmdd = [\"true\"]\n");
    assert_eq!(p.ctl(&["reload"]).code(), Some(1));
    let invalid = ev.wait_event(spawned, None, "config_invalid");
    let message = ev.events()[invalid]["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains("services.toml") && message.contains("cmdd"),
        "{message}"
    );

    // db was never touched by any of it.
    assert!(
        ev.events()
            .iter()
            .filter(|e| e["service"] == "db")
            .all(|e| e["event"] == "spawned" || e["event"] == "ready"),
        "{}",
        ev.reader.describe()
    );

    // The shutdown: each service stops, then the daemon says it goes; the stream ends.
    p.ctl_ok(&["shutdown", "--yes"]);
    let mut reader = ev.reader;
    let status = reader.wait_exit(secs(20));
    assert_eq!(status.code(), Some(0), "{}", reader.describe());
    assert!(daemon.wait_exit(secs(10)));
    let ev = EventStream { reader };
    let all = ev.events();
    let last = all.last().expect("events");
    assert_eq!(last["event"], "daemon_stopping", "{}", ev.reader.describe());
    for service in ["web", "db"] {
        ev.wait_event(invalid, Some(service), "stopped");
    }
    for e in &all {
        check_schema(e);
    }
    // Time only moves forward.
    let times: Vec<&str> = all.iter().map(|e| e["ts"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
}

#[test]
fn a_crash_loop_ends_in_failed_and_health_checks_report_failing_and_recovering() {
    let p = Project::new(secs(120));
    p.config(
        r#"
[services.crashy]
shell = "exit 3"
restart = "always"
restart_delay = "10ms"
max_restarts = 2

[services.checked]
shell = "exec sleep 1000"
health = { exec = ["test", "-f", "healthy"], interval = "100ms", timeout = "1s", retries = 1000 }
"#,
    );
    p.write("healthy", "");
    let _daemon = p.up_detached_failing(&["--no-watch"]);
    let ev = p.events(&["--json", "--since", "10m"]);
    let failed = ev.wait_event(0, Some("crashy"), "failed");
    let e = &ev.events()[failed];
    assert!(
        e["reason"].as_str().unwrap().starts_with("crash loop"),
        "{e}"
    );
    let exits = ev
        .events()
        .iter()
        .take(failed)
        .filter(|e| e["service"] == "crashy" && e["event"] == "exited")
        .inspect(|e| assert_eq!(e["code"], 3, "{e}"))
        .count();
    assert!(exits >= 2, "{}", ev.reader.describe());

    let start = ev.events().len();
    std::fs::remove_file(p.file("healthy")).unwrap();
    let unhealthy = ev.wait_event(start, Some("checked"), "health_failed");
    assert!(ev.events()[unhealthy]["message"].is_string());
    p.write("healthy", "");
    ev.wait_event(unhealthy, Some("checked"), "health_recovered");
    for e in ev.events() {
        check_schema(&e);
    }
}

#[test]
fn names_filter_the_stream_and_the_human_form_is_one_line_per_event() {
    let p = Project::new(secs(60));
    p.config(&format!(
        "[services.web]\n{SLEEPER}\n\n[services.worker]\n{SLEEPER}\n"
    ));
    let _daemon = p.up_detached(&["--no-watch"]);
    p.running_pid("worker", secs(10));
    let human = Runpm::start(p.program(RUNPMCTL, ["events", "--since", "1h", "web"]));
    human.wait_for_output("web started (pid", secs(10));
    p.ctl_ok(&["restart", "worker"]);
    p.ctl_ok(&["restart", "web"]);
    human.wait_for_output("web restarted (restart requested)", secs(10));
    human.wait_for_output("web stopping (pid", secs(10));
    let out = human.stdout();
    assert!(!out.contains("worker"), "another service's events: {out}");
    for line in out.lines() {
        let mut words = line.split_whitespace();
        let ts = words.next().unwrap();
        assert!(humantime::parse_rfc3339(ts).is_ok(), "{line}");
        assert!(!line.contains('\x1b'), "NO_COLOR is set: {line:?}");
    }
}

#[test]
fn an_unknown_name_is_refused_with_a_hint_and_no_daemon_is_exit_3() {
    let p = Project::new(secs(60));
    p.config(&format!("[services.web]\n{SLEEPER}\n"));
    let none = p.ctl(&["events"]);
    assert_eq!(none.code(), Some(3), "{}", none.describe());
    let _daemon = p.up_detached(&["--no-watch"]);
    let typo = p.ctl(&["events", "wbe"]);
    assert_eq!(typo.code(), Some(1), "{}", typo.describe());
    assert!(
        typo.stderr.contains("no service named `wbe`")
            && typo.stderr.contains("did you mean `web`"),
        "{}",
        typo.describe()
    );
    let json = p.ctl(&["events", "--json", "wbe"]);
    assert_eq!(json.code(), Some(1));
    let error: Value = serde_json::from_str(json.stdout.trim()).unwrap();
    assert_eq!(error["error"]["kind"], "unknown_service");
}

#[test]
fn the_stream_ends_with_exit_0_when_the_daemon_is_stopped_by_a_signal() {
    let p = Project::new(secs(60));
    p.config(&format!("[services.web]\n{SLEEPER}\n"));
    let daemon = p.up_detached(&["--no-watch"]);
    p.running_pid("web", secs(10));
    let ev = p.events(&["--json", "--since", "1m"]);
    ev.wait_event(0, Some("web"), "ready");
    daemon.send_signal(nix::sys::signal::Signal::SIGTERM);
    let mut reader = ev.reader;
    let status = reader.wait_exit(secs(20));
    assert_eq!(status.code(), Some(0), "{}", reader.describe());
    let ev = EventStream { reader };
    let all = ev.events();
    assert_eq!(all.last().unwrap()["event"], "daemon_stopping");
}

#[test]
fn bash_completes_events_and_metrics_and_the_names_events_takes() {
    let p = Project::new(secs(60));
    p.config(&format!(
        "[services.web]\n{SLEEPER}\n\n[services.worker]\n{SLEEPER}\n"
    ));
    let _daemon = p.up_detached(&["--no-watch"]);
    let bash = p.write("completion.bash", &p.ctl_ok(&["completions", "bash"]));
    let complete = |words: &str, cword: usize, current: &str, previous: &str| {
        let drive = format!(
            "source {bash:?}; COMP_WORDS=({words}); COMP_CWORD={cword}; \
             _runpmctl_with_services runpmctl {current} {previous}; \
             printf '%s\\n' \"${{COMPREPLY[@]}}\""
        );
        let out = run_to_end(p.program("bash", ["-c", drive.as_str()]));
        assert_eq!(out.code(), Some(0), "{}", out.describe());
        out.stdout
    };
    assert_eq!(complete("runpmctl ev", 1, "ev", "runpmctl"), "events\n");
    assert_eq!(complete("runpmctl me", 1, "me", "runpmctl"), "metrics\n");
    assert_eq!(
        complete(&format!("{RUNPMCTL:?} events w"), 2, "w", "events"),
        "web\nworker\n"
    );
}

#[test]
fn a_daemon_that_dies_without_stopping_ends_the_stream_with_exit_1() {
    let p = Project::new(secs(60));
    p.config(&format!("[services.web]\n{SLEEPER}\n"));
    let daemon = p.up_detached(&["--no-watch"]);
    p.running_pid("web", secs(10));
    let ev = p.events(&["--json", "--since", "1m"]);
    ev.wait_event(0, Some("web"), "ready");
    daemon.crash_now();
    let mut reader = ev.reader;
    let status = reader.wait_exit(secs(20));
    assert_eq!(status.code(), Some(1), "{}", reader.describe());
    assert!(
        reader.stderr().contains("without stopping"),
        "{}",
        reader.describe()
    );
    // The killed daemon's service is left behind: not for the next test.
    kill_processes_in(p.path());
}
