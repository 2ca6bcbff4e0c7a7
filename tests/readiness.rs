//! Readiness, health checks, the watchdog and `failed_cooldown`, from a user's side: the real
//! `runpm up` and `runpmctl` in a temporary project, with real clients nobody here wrote
//! (Debian's `redis-server --supervised systemd` and `systemd-notify`) and small shell
//! services that become ready when the test says so.
//!
//! Services that must stay `starting` for a while wait for a file `go` that the test creates
//! (`while [ ! -f go ]; …`), so "not ready yet" is a fact the test controls, not a race with
//! the clock. Most tests run runpm in the foreground: `runpm up -d` returns only once every
//! service is ready, which would wait for the very file the test has yet to create.
//!
//! The tests that need `redis-server` or `systemd-notify` fail when they are missing, with an
//! install hint, unless `RUNPM_SKIP_SYSTEM_PACKAGES=1` (`bash .ci/run` installs them).

mod common;

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// A shell snippet that waits until the test creates `go`.
const WAIT_FOR_GO: &str = "while [ ! -f go ]; do sleep 0.02; done";

/// Starts `runpm up` in the foreground on the project's `services.toml` and waits until its
/// control socket answers.
fn up(p: &Project) -> Runpm {
    let runpm = p.up(&["--no-watch"]);
    p.wait_socket(secs(10));
    runpm
}

/// Lets the test go on.
fn go(p: &Project) {
    p.write("go", "");
}

fn status(s: &Value) -> &str {
    s["status"].as_str().unwrap_or("?")
}

fn pid_of(s: &Value) -> Option<i32> {
    s["pid"].as_i64().map(|p| p as i32)
}

/// Polls `name`'s status until it is `running`; every observation must be `starting` (or
/// `running`), and when it is `running`, `works()` must already hold. Returns the entry
/// and how many times it was seen `starting`.
fn running_only_when(
    p: &Project,
    name: &str,
    timeout: Duration,
    mut works: impl FnMut() -> bool,
) -> (Value, usize) {
    let mut starting = 0;
    let mut last = None;
    let running = wait_for_some(timeout, || {
        let s = p.try_service(name)?;
        last = Some(s.clone());
        match status(&s) {
            "starting" => {
                starting += 1;
                None
            }
            "running" => {
                assert!(
                    works(),
                    "`{name}` is `running` but does not work yet: {s:#}"
                );
                Some(s)
            }
            other => panic!("`{name}` should be starting, then running; it is {other}: {s:#}"),
        }
    })
    .unwrap_or_else(|| panic!("`{name}` did not become running within {timeout:?}: {last:#?}"));
    (running, starting)
}

// ---------------------------------------------------------------------------------------------
// sd_notify with real clients
// ---------------------------------------------------------------------------------------------

#[test]
fn redis_is_running_only_after_it_reported_ready() {
    if !need_tool("redis-server", "redis-server") {
        return;
    }
    let p = Project::new(secs(60));
    let port = free_port();
    // The shell waits for `go`, then becomes redis (same pid). Until redis sends READY=1,
    // the service must be `starting`, although its process is alive.
    p.config(&format!(
        r#"
[services.redis]
shell = 'echo $$ > redis.pid; {WAIT_FOR_GO}; exec redis-server --supervised systemd --port {port} --bind 127.0.0.1 --save "" --appendonly no'
ready = {{ notify = true }}
ready_timeout = "30s"
"#
    ));
    let runpm = up(&p);
    let pid = p.read_pid("redis.pid", secs(10));

    let s = p.wait_status("redis", "starting", secs(10));
    assert_eq!(pid_of(&s), Some(pid), "{s:#}");
    assert!(is_alive(pid));
    assert!(
        !redis_ping(port),
        "nothing should answer on port {port} yet"
    );

    go(&p);
    let (s, _) = running_only_when(&p, "redis", secs(20), || redis_ping(port));
    assert_eq!(
        pid_of(&s),
        Some(pid),
        "redis runs as the service's pid: {s:#}"
    );
    assert_eq!(comm(pid).as_deref(), Some("redis-server"));
    assert!(redis_ping(port), "redis answers PING once running");
    // redis says so itself, over sd_notify.
    let text = s["status_text"].as_str().unwrap_or_default();
    eprintln!("redis's STATUS=: {text:?}");
    assert!(
        !text.is_empty(),
        "redis sends STATUS= with READY=1; status_text should show it: {s:#}"
    );
    runpm.wait_for_event("redis", "ready after", secs(5));
}

/// A service running as another user cannot enter runpm's private state directory, so it is
/// told an abstract socket; its notifications still count only as its own. Needs root.
#[test]
fn a_service_running_as_another_user_can_notify() {
    if !need_tool("systemd-notify", "systemd") {
        return;
    }
    if !need_root("it runs a service as another user") {
        return;
    }
    let p = Project::new(secs(60));
    p.config(
        r#"
[services.other]
shell = 'echo "socket=$NOTIFY_SOCKET"; systemd-notify --ready --status="as $(id -un)"; echo "notified=$?"; exec sleep 1000000'
user = "nobody"
cwd = "/"
ready = { notify = true }
"#,
    );
    let runpm = up(&p);
    let s = p.wait_status("other", "running", secs(10));
    assert_eq!(s["status_text"], "as nobody", "{s:#}");
    runpm.wait_for_output("notified=0", secs(10));
    let out = runpm.stdout();
    assert!(out.contains("socket=@runpm/"), "an abstract socket: {out}");
}

#[test]
fn systemd_notify_makes_a_shell_service_ready_and_sets_its_status_text() {
    if !need_tool("systemd-notify", "systemd") {
        return;
    }
    let p = Project::new(secs(60));
    p.config(&format!(
        r#"
[services.notifier]
shell = 'echo "$NOTIFY_SOCKET" > notify.env; {WAIT_FOR_GO}; systemd-notify --ready --status="serving 3 clients"; echo $? > notified; exec sleep 1000000'
ready = {{ notify = true }}
"#
    ));
    let runpm = up(&p);
    let env = p.wait_lines("notify.env", 1, secs(10)).remove(0);

    // NOTIFY_SOCKET names the daemon's datagram socket, which any uid may write to (the
    // service may run as another user); who may speak is decided by credentials.
    let socket = p.file(".runpm/notify.sock");
    assert_eq!(env, socket.to_str().unwrap(), "NOTIFY_SOCKET");
    let meta = std::fs::symlink_metadata(&socket).expect("the notify socket exists");
    assert!(meta.file_type().is_socket(), "{socket:?} is a socket");
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o666,
        "{socket:?}'s mode"
    );

    let s = p.wait_status("notifier", "starting", secs(10));
    assert!(s["status_text"].is_null(), "{s:#}");

    let released = Instant::now();
    go(&p);
    let s = p.wait_status("notifier", "running", secs(10));
    assert_eq!(s["status_text"], "serving 3 clients", "{s:#}");
    // systemd-notify ends with a barrier and waits up to 5 s for runpm to close the fd it
    // passed; it returns well before that, successfully.
    let notified = p.wait_lines("notified", 1, secs(10));
    let took = released.elapsed();
    assert_eq!(notified, ["0"], "systemd-notify's exit code");
    assert!(
        took < secs(3),
        "systemd-notify took {took:?}: was the barrier answered?"
    );
    runpm.wait_for_event("notifier", "ready after", secs(5));
}

#[test]
fn a_notify_message_from_outside_the_service_is_ignored() {
    if !need_tool("systemd-notify", "systemd") {
        return;
    }
    let p = Project::new(secs(60));
    p.config(
        r#"
[services.lonely]
shell = 'echo $$ > lonely.pid; exec sleep 1000000'
ready = { notify = true }
ready_timeout = "60s"
"#,
    );
    let runpm = up(&p);
    let pid = p.read_pid("lonely.pid", secs(10));
    p.wait_status("lonely", "starting", secs(10));

    // The test itself is the stranger: it is no process of any service.
    let socket = p.file(".runpm/notify.sock");
    let mut cmd = p.program("systemd-notify", ["--ready", "--status=intruder"]);
    cmd.env("NOTIFY_SOCKET", &socket);
    let out = run_to_end(cmd);
    eprintln!("systemd-notify from the test: {}", out.describe());

    runpm.wait_for_stderr("dropped an sd_notify message", secs(10));
    let warning = runpm
        .stderr()
        .lines()
        .find(|l| l.contains("dropped an sd_notify message"))
        .map(str::to_owned)
        .unwrap();
    eprintln!("{warning}");
    assert!(
        warning.contains("not a process of any service"),
        "{warning}"
    );
    // The message has been handled (and dropped): the service is still waiting.
    let s = p.service("lonely");
    assert_eq!(status(&s), "starting", "{s:#}");
    assert_eq!(pid_of(&s), Some(pid), "{s:#}");
    assert!(
        s["status_text"].is_null(),
        "a stranger's STATUS= is ignored: {s:#}"
    );
    assert!(runpm.events("lonely", "ready after").is_empty());
}

// ---------------------------------------------------------------------------------------------
// The watchdog
// ---------------------------------------------------------------------------------------------

#[test]
fn a_service_that_stops_pinging_the_watchdog_is_restarted() {
    if !need_tool("systemd-notify", "systemd") {
        return;
    }
    let p = Project::new(secs(60));
    p.config(
        r#"
[services.silent]
shell = 'echo $$ > silent.pid; echo "$WATCHDOG_USEC" > usec; systemd-notify --ready; exec sleep 1000000'
ready = { notify = true }
watchdog = "300ms"
restart = "on-failure"
restart_delay = "100ms"
max_restarts = 1000
"#,
    );
    let runpm = up(&p);
    let first = p.read_pid("silent.pid", secs(10));
    assert_eq!(
        p.wait_lines("usec", 1, secs(10)),
        ["300000"],
        "WATCHDOG_USEC"
    );

    let second = p.wait_new_pid("silent.pid", first, secs(10));
    assert!(!is_alive(first), "the silent run ({first}) was stopped");
    runpm.wait_for_event("silent", "watchdog", secs(5));
    runpm.wait_for_event("silent", "restarting in", secs(5));
    let s = p.wait_service("silent", "restarted", secs(10), |s| {
        s["restarts"].as_u64() >= Some(1) && !s["exits"].as_array().unwrap().is_empty()
    });
    let exit = &s["exits"][0];
    assert!(exit["uptime_ms"].as_u64() >= Some(300), "{s:#}");
    assert!(second != first);
}

#[test]
fn a_service_that_pings_the_watchdog_keeps_running() {
    if !need_tool("systemd-notify", "systemd") {
        return;
    }
    let p = Project::new(secs(60));
    // Pings every 100 ms against a 1 s watchdog: a margin that a busy machine (each ping is
    // a fork and exec of systemd-notify) cannot eat, while the run still lasts several
    // watchdog periods.
    p.config(
        r#"
[services.pinger]
shell = 'echo $$ > pinger.pid; systemd-notify --ready; while :; do systemd-notify WATCHDOG=1; echo ping >> pings; sleep 0.1; done'
ready = { notify = true }
watchdog = "1s"
restart = "on-failure"
restart_delay = "100ms"
"#,
    );
    let runpm = up(&p);
    let pid = p.read_pid("pinger.pid", secs(10));
    p.wait_status("pinger", "running", secs(10));
    // Three watchdog periods, and at least twenty pings.
    let s = p.wait_service("pinger", "up for 3 s", secs(30), |s| {
        s["uptime_ms"].as_u64() >= Some(3000)
    });
    p.wait_lines("pings", 20, secs(20));
    assert_eq!(status(&s), "running", "{s:#}");
    assert_eq!(pid_of(&s), Some(pid), "{s:#}");
    assert_eq!(s["restarts"], 0, "{s:#}");
    assert_eq!(s["exits"], Value::Array(vec![]), "{s:#}");
    assert!(
        runpm.events("pinger", "watchdog").is_empty(),
        "{}",
        runpm.describe()
    );
}

// ---------------------------------------------------------------------------------------------
// Readiness probes
// ---------------------------------------------------------------------------------------------

#[test]
fn a_tcp_probe_waits_for_the_port() {
    let p = Project::new(secs(60));
    let port = free_port();
    p.config(&format!(
        r#"
[services.server]
shell = 'echo $$ > server.pid; {WAIT_FOR_GO}; exec python3 -c "import socket, time; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((\"127.0.0.1\", {port})); s.listen(); time.sleep(1000000)"'
ready = {{ tcp = "127.0.0.1:{port}" }}
"#
    ));
    let runpm = up(&p);
    let pid = p.read_pid("server.pid", secs(10));
    let s = p.wait_status("server", "starting", secs(10));
    assert_eq!(pid_of(&s), Some(pid));
    assert!(!port_open(port));

    go(&p);
    let (s, _) = running_only_when(&p, "server", secs(20), || port_open(port));
    assert_eq!(pid_of(&s), Some(pid), "{s:#}");
    runpm.wait_for_event("server", "ready after", secs(5));
}

#[test]
fn an_exec_probe_waits_until_it_succeeds() {
    let p = Project::new(secs(60));
    p.config(&format!(
        r#"
[services.builder]
shell = 'echo $$ > builder.pid; {WAIT_FOR_GO}; sleep 0.2; touch ready.flag; exec sleep 1000000'
ready = {{ exec = ["test", "-f", "ready.flag"] }}
"#
    ));
    let runpm = up(&p);
    let pid = p.read_pid("builder.pid", secs(10));
    p.wait_status("builder", "starting", secs(10));

    go(&p);
    let flag = p.file("ready.flag");
    let (s, _) = running_only_when(&p, "builder", secs(20), || flag.exists());
    assert_eq!(pid_of(&s), Some(pid), "{s:#}");
    runpm.wait_for_event("builder", "ready after", secs(5));
}

#[test]
fn a_log_probe_waits_for_the_line() {
    let p = Project::new(secs(60));
    p.config(&format!(
        r#"
[services.talker]
shell = 'echo $$ > talker.pid; echo "warming up"; echo "listening soon" >&2; {WAIT_FOR_GO}; echo "listening on port 8080"; echo said > said; exec sleep 1000000'
ready = {{ log = "listening on port [0-9]+" }}
"#
    ));
    let runpm = up(&p);
    let pid = p.read_pid("talker.pid", secs(10));
    // Lines that do not match (on either stream) do not make it ready.
    runpm.wait_for_output("talker | warming up", secs(10));
    runpm.wait_for_output("talker | listening soon", secs(10));
    let s = p.wait_status("talker", "starting", secs(10));
    assert_eq!(pid_of(&s), Some(pid), "{s:#}");

    go(&p);
    let said = p.file("said");
    let (s, _) = running_only_when(&p, "talker", secs(20), || said.exists());
    assert_eq!(pid_of(&s), Some(pid), "{s:#}");
    runpm.wait_for_event("talker", "ready after", secs(5));
}

#[test]
fn every_kind_of_readiness_times_out_and_the_service_fails_under_never() {
    let p = Project::new(secs(60));
    let port = free_port();
    let never_ready = |name: &str, ready: &str| {
        format!(
            r#"
[services.{name}]
shell = 'echo $$ > {name}.pid; echo "not yet"; exec sleep 1000000'
ready = {ready}
ready_timeout = "500ms"
restart = "never"
"#
        )
    };
    let config = [
        TICKER.to_string(),
        never_ready("by_tcp", &format!(r#"{{ tcp = "127.0.0.1:{port}" }}"#)),
        never_ready("by_exec", r#"{ exec = ["false"] }"#),
        never_ready("by_log", r#"{ log = "^ready$" }"#),
        never_ready("by_notify", "{ notify = true }"),
    ]
    .concat();
    p.config(&config);
    let runpm = up(&p);
    for name in ["by_tcp", "by_exec", "by_log", "by_notify"] {
        let pid = p.read_pid(&format!("{name}.pid"), secs(10));
        let s = p.wait_status(name, "failed", secs(10));
        let reason = s["reason"].as_str().unwrap_or_default();
        assert!(reason.contains("not ready"), "{name}: {s:#}");
        assert!(reason.contains("500ms"), "{name}: {s:#}");
        assert!(s["pid"].is_null(), "{name}: {s:#}");
        assert!(
            wait_dead(pid, secs(5)),
            "{name}'s process {pid} was stopped"
        );
        // It counts as failed, and says when it will be tried again (failed_cooldown).
        assert!(s["next_start"].is_string(), "{name}: {s:#}");
        let exits = s["exits"].as_array().unwrap();
        assert_eq!(exits.len(), 1, "{name} ran once: {s:#}");
        assert!(exits[0]["uptime_ms"].as_u64() >= Some(500), "{name}: {s:#}");
        runpm.wait_for_event(name, "not ready within 500ms", secs(5));
        assert!(runpm.events(name, "ready after").is_empty(), "{name}");
    }
    assert_eq!(p.lines("by_tcp.pid").len(), 1, "no restart under `never`");
}

#[test]
fn a_readiness_timeout_restarts_under_on_failure() {
    let p = Project::new(secs(60));
    p.config(
        r#"
[services.sluggish]
shell = 'echo $$ >> sluggish.pids; exec sleep 1000000'
ready = { exec = ["false"] }
ready_timeout = "500ms"
restart = "on-failure"
restart_delay = "100ms"
max_restarts = 1000
"#,
    );
    let runpm = up(&p);
    p.wait_lines("sluggish.pids", 2, secs(10));
    let s = p.wait_service("sluggish", "restarted", secs(10), |s| {
        s["restarts"].as_u64() >= Some(1)
    });
    assert_ne!(status(&s), "running", "never ready, never running: {s:#}");
    runpm.wait_for_event("sluggish", "not ready within 500ms", secs(5));
    runpm.wait_for_event("sluggish", "restarting in", secs(5));
    let pids: Vec<i32> = p
        .lines("sluggish.pids")
        .iter()
        .map(|l| l.parse().unwrap())
        .collect();
    assert!(!is_alive(pids[0]), "the first run was stopped");
}

// ---------------------------------------------------------------------------------------------
// Health checks
// ---------------------------------------------------------------------------------------------

#[test]
fn failing_health_checks_restart_the_service_after_retries() {
    let p = Project::new(secs(60));
    p.config(
        r#"
[services.patient]
shell = 'echo $$ > patient.pid; exec sleep 1000000'
health = { exec = ["sh", "-c", "echo check >> checks; test ! -f sick"], interval = "100ms", timeout = "2s", retries = 3 }
restart = "always"
restart_delay = "100ms"
"#,
    );
    let runpm = up(&p);
    let first = p.read_pid("patient.pid", secs(10));
    p.wait_status("patient", "running", secs(10));
    // Passing checks change nothing.
    p.wait_growth("checks", 5, secs(10));
    assert_eq!(p.service("patient")["restarts"], 0);
    assert_eq!(pid_of(&p.service("patient")), Some(first));

    p.write("sick", "");
    let second = p.wait_new_pid("patient.pid", first, secs(10));
    std::fs::remove_file(p.file("sick")).unwrap();
    assert!(!is_alive(first));
    let failures = runpm.events("patient", "health check failed");
    let counted: Vec<&str> = failures
        .iter()
        .map(|l| {
            let i = l.find("health check failed (").unwrap() + "health check failed (".len();
            &l[i..i + 6]
        })
        .take(3)
        .collect();
    assert_eq!(
        counted,
        ["1 of 3", "2 of 3", "3 of 3"],
        "{}",
        runpm.describe()
    );
    // Stopped after the third failure, not before.
    let stderr = runpm.stderr();
    let third = event_index(&stderr, "patient", "(3 of 3)").unwrap();
    let stopping = event_index(&stderr, "patient", "stopping").unwrap();
    assert!(third < stopping, "{stderr}");
    runpm.wait_for_event("patient", "restarting in", secs(5));
    let s = p.wait_status("patient", "running", secs(10));
    assert_eq!(pid_of(&s), Some(second), "{s:#}");
    assert!(s["restarts"].as_u64() >= Some(1), "{s:#}");
}

/// When runpm itself ends a run (watchdog, health checks, readiness timeout), the exit
/// history must say why: "stopped" alone reads like an operator's stop.
#[test]
fn the_exit_history_says_why_runpm_ended_a_run() {
    if !need_tool("systemd-notify", "systemd") {
        return;
    }
    let p = Project::new(secs(60));
    p.config(
        r#"
[services.silent]
shell = 'systemd-notify --ready; exec sleep 1000000'
ready = { notify = true }
watchdog = "300ms"
restart = "on-failure"
restart_delay = "30s"

[services.unhealthy]
shell = 'exec sleep 1000000'
health = { exec = ["false"], interval = "100ms", retries = 2 }
restart = "on-failure"
restart_delay = "30s"

[services.unready]
shell = 'exec sleep 1000000'
ready = { exec = ["false"] }
ready_timeout = "300ms"
restart = "on-failure"
restart_delay = "30s"
"#,
    );
    let _runpm = up(&p);
    for (name, why) in [
        ("silent", "watchdog"),
        ("unhealthy", "health"),
        ("unready", "not ready"),
    ] {
        let s = p.wait_status(name, "backoff", secs(10));
        let exit = &s["exits"][0];
        // runpm ended the run because it failed: `reason` is the kind, `detail` the why.
        assert_eq!(exit["reason"], "failed", "{name}: {s:#}");
        let detail = exit["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains(why),
            "{name}: the exit's detail should say {why:?}, it is {detail:?}: {s:#}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Dependencies wait for readiness
// ---------------------------------------------------------------------------------------------

/// `db` becomes ready only after the test says `go`; `web` depends on it.
fn db_and_web() -> String {
    format!(
        r#"{TICKER}
[services.db]
shell = 'echo $$ > db.pid; {WAIT_FOR_GO}; sleep 0.2; touch db.ready; exec sleep 1000000'
ready = {{ exec = ["test", "-f", "db.ready"] }}

[services.web]
shell = 'echo $$ >> web.pids; exec sleep 1000000'
depends_on = ["db"]
"#
    )
}

#[test]
fn a_dependent_starts_only_once_its_dependency_is_ready() {
    let p = Project::new(secs(60));
    p.config(&db_and_web());
    let runpm = up(&p);
    p.read_pid("db.pid", secs(10));
    p.wait_status("db", "starting", secs(10));
    // A while (measured by the ticker) with db started but not ready: web waits.
    p.wait_growth("ticks", 10, secs(10));
    let web = p.service("web");
    assert_eq!(status(&web), "starting", "web waits: {web:#}");
    assert!(web["pid"].is_null(), "web is not spawned yet: {web:#}");
    assert!(
        !p.file("web.pids").exists(),
        "web must not run before db is ready"
    );

    go(&p);
    let web = p.wait_status("web", "running", secs(20));
    let db = p.service("db");
    assert_eq!(status(&db), "running", "{db:#}");
    let pids = p.wait_lines("web.pids", 1, secs(5));
    assert_eq!(pids.len(), 1, "web started once: {pids:?}");
    assert_eq!(pid_of(&web), pids[0].parse().ok());
    // web was spawned after db's readiness: after db.ready existed, and after the event.
    assert!(mtime(&p.file("web.pids")) >= mtime(&p.file("db.ready")));
    let stderr = runpm.stderr();
    let ready = event_index(&stderr, "db", "ready after").expect("db's ready event");
    let started = event_index(&stderr, "web", "started (pid").expect("web's started event");
    assert!(ready < started, "{stderr}");
}

#[test]
fn stopping_a_dependent_while_it_waits_cancels_its_start() {
    let p = Project::new(secs(60));
    p.config(&db_and_web());
    let runpm = up(&p);
    p.wait_status("db", "starting", secs(10));
    p.wait_status("web", "starting", secs(10));

    let out = p.ctl_ok(&["stop", "web"]);
    assert_eq!(out.trim(), "web: stopped", "{out}");
    assert_eq!(status(&p.service("web")), "stopped");

    go(&p);
    p.wait_status("db", "running", secs(20));
    // A while after db is ready: web stays stopped, it was never spawned.
    p.wait_growth("ticks", 10, secs(10));
    let web = p.service("web");
    assert_eq!(status(&web), "stopped", "{web:#}");
    assert!(
        !p.file("web.pids").exists(),
        "web must not start after its stop"
    );
    assert!(
        runpm.events("web", "started (pid").is_empty(),
        "{}",
        runpm.describe()
    );

    // A start then starts it, once.
    let out = p.ctl_ok(&["start", "web"]);
    assert!(out.starts_with("web: running (pid "), "{out}");
    p.wait_growth("ticks", 5, secs(10));
    assert_eq!(p.lines("web.pids").len(), 1, "{:?}", p.lines("web.pids"));
    assert_eq!(
        runpm.events("web", "started (pid").len(),
        1,
        "{}",
        runpm.describe()
    );
}

#[test]
fn restarting_a_dependent_while_it_waits_starts_it_once() {
    let p = Project::new(secs(60));
    p.config(&db_and_web());
    let runpm = up(&p);
    p.wait_status("db", "starting", secs(10));
    p.wait_status("web", "starting", secs(10));

    // Two restarts while web waits; each waits until web runs.
    let mut first = p.ctl_spawn(&["restart", "web"]);
    let mut second = p.ctl_spawn(&["restart", "web"]);
    p.wait_growth("ticks", 5, secs(10));
    assert!(
        first.is_running() && second.is_running(),
        "restart waits for web"
    );
    assert!(!p.file("web.pids").exists(), "web waits for db");

    go(&p);
    first.assert_exit_code(secs(20), 0);
    second.assert_exit_code(secs(20), 0);
    let pid = p.read_pid("web.pids", secs(5));
    for out in [first.stdout(), second.stdout()] {
        assert_eq!(out.trim(), format!("web: running (pid {pid})"), "{out}");
    }
    p.wait_growth("ticks", 5, secs(10));
    assert_eq!(p.lines("web.pids").len(), 1, "{:?}", p.lines("web.pids"));
    assert_eq!(
        runpm.events("web", "started (pid").len(),
        1,
        "{}",
        runpm.describe()
    );
    assert_eq!(pid_of(&p.service("web")), Some(pid));
}

// ---------------------------------------------------------------------------------------------
// failed_cooldown
// ---------------------------------------------------------------------------------------------

#[test]
fn a_service_that_could_not_be_spawned_is_tried_again_after_failed_cooldown() {
    let p = Project::new(secs(60));
    let program = p.file("later.sh");
    p.config(&format!(
        r#"{TICKER}
[services.later]
cmd = ["{}"]
failed_cooldown = "1s"
"#,
        program.display()
    ));
    let runpm = up(&p);
    let s = p.wait_status("later", "failed", secs(10));
    let next = parse_time(s["next_start"].as_str().unwrap_or_else(|| panic!("{s:#}")));
    let since = parse_time(s["since"].as_str().unwrap());
    let delay = next.duration_since(since).unwrap_or_default();
    assert!(
        delay >= ms(900) && delay <= ms(1100),
        "next_start is failed_cooldown after it failed: {s:#}"
    );
    assert_eq!(s["exits"][0]["reason"], "spawn-failed", "{s:#}");

    // The program appears; nobody intervenes; the cooldown brings the service back.
    p.write(
        "later.sh",
        "#!/bin/sh\necho $$ > later.pid\nexec sleep 1000000\n",
    );
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    let pid = p.read_pid("later.pid", secs(10));
    let s = p.wait_status("later", "running", secs(10));
    assert_eq!(pid_of(&s), Some(pid), "{s:#}");
    assert!(s["next_start"].is_null(), "{s:#}");
    runpm.wait_for_event("later", "failed_cooldown", secs(5));
}

#[test]
fn a_service_that_was_never_ready_is_tried_again_after_failed_cooldown() {
    let p = Project::new(secs(60));
    // The first run never gets ready; the second does.
    p.config(&format!(
        r#"{TICKER}
[services.second_try]
shell = 'echo $$ >> runs; if [ $(wc -l < runs) -ge 2 ]; then touch ready.flag; fi; exec sleep 1000000'
ready = {{ exec = ["test", "-f", "ready.flag"] }}
ready_timeout = "500ms"
restart = "never"
failed_cooldown = "1s"
"#
    ));
    let runpm = up(&p);
    let s = p.wait_status("second_try", "failed", secs(10));
    assert!(
        s["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("not ready"),
        "{s:#}"
    );
    assert!(s["next_start"].is_string(), "{s:#}");

    let s = p.wait_status("second_try", "running", secs(10));
    assert_eq!(p.lines("runs").len(), 2);
    assert_eq!(pid_of(&s), p.lines("runs")[1].parse().ok(), "{s:#}");
    assert!(s["reason"].is_null(), "{s:#}");
    runpm.wait_for_event("second_try", "failed_cooldown", secs(5));
}

// ---------------------------------------------------------------------------------------------
// What `runpmctl status` (the table) tells a person
// ---------------------------------------------------------------------------------------------

/// The issue asks for `STATUS=` to be "shown by `runpmctl status`", and for the next start of
/// a failed service to be "shown in status": not only in `--json`.
#[test]
fn plain_status_shows_the_status_text_and_the_next_start() {
    if !need_tool("systemd-notify", "systemd") {
        return;
    }
    let p = Project::new(secs(60));
    p.config(
        r#"
[services.notifier]
shell = 'systemd-notify --ready --status="serving 3 clients"; exec sleep 1000000'
ready = { notify = true }

[services.broken]
cmd = ["/nonexistent/program"]
failed_cooldown = "1h"
"#,
    );
    let _runpm = up(&p);
    p.wait_status("notifier", "running", secs(10));
    p.wait_status("broken", "failed", secs(10));
    let table = p.ctl_ok(&["status"]);
    assert!(table.contains("serving 3 clients"), "{table}");
    let json = p.wait_status("broken", "failed", secs(10));
    let reason = json["reason"].as_str().unwrap_or_default();
    let broken = p.ctl_ok(&["status", "broken"]);
    assert!(
        broken.contains(reason) || broken.to_lowercase().contains("next"),
        "why it failed ({reason:?}), or when it is tried again ({}): {broken}",
        json["next_start"]
    );
}
