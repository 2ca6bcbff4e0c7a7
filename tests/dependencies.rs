//! Dependency semantics that hold on real stacks (issue 11, items 7–10, 12–14): stops and
//! starts through the whole graph, `depends_on` conditions, operator commands that answer
//! behind a failed dependency, what a waiting service shows, the fresh-up rule, the crash
//! window after a reload, and stops that always work.
//!
//! The database in the stop-order test is a real redis with an append-only file: the client's
//! last write, made while it stops, must be in that file.

mod common;

use std::time::Instant;

use common::*;
use nix::sys::signal::Signal;
use serde_json::Value;

/// A free TCP port on loopback (bound and released; the tests use it at once).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn up_d(p: &Project) -> std::process::Command {
    let file = p.file("services.toml");
    p.command(["up", "-f", file.to_str().expect("UTF-8"), "-d"])
}

fn service<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["services"]
        .as_array()
        .expect("a services list")
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {status}"))
}

#[test]
fn shutdown_stops_the_client_before_redis_through_a_finished_migration() {
    assert!(
        on_path("redis-server") && on_path("redis-cli"),
        "redis-server and redis-cli are needed (.ci/run installs Debian's redis-server)"
    );
    let p = Project::new(secs(60));
    let port = free_port();
    // app writes its last record while it stops: that write must reach redis, which is
    // signalled only once app has exited, although migrate (between them) ended long ago.
    p.config(&format!(
        r#"
[services.db]
cmd = ["redis-server", "--port", "{port}", "--bind", "127.0.0.1", "--save", "",
       "--appendonly", "yes", "--appendfsync", "always", "--dir", "."]
ready = {{ tcp = "127.0.0.1:{port}" }}

[services.migrate]
shell = "redis-cli -p {port} set schema 1 > migrate.out"
restart = "never"
depends_on = ["db"]

[services.app]
shell = '''
trap 'sleep 0.3; redis-cli -p {port} set last-write done > last.out; exit 0' TERM
echo $$ > app.pid
while :; do sleep 1; done
'''
depends_on = {{ migrate = "completed" }}
"#
    ));
    let daemon = p.up_detached(&[]);
    p.running_pid("app", secs(20));
    let statuses = p.statuses();
    assert_eq!(statuses["migrate"], "exited", "{statuses:?}");
    assert_eq!(p.read("migrate.out").trim(), "OK");

    p.ctl_ok(&["shutdown", "--yes"]);
    assert!(daemon.wait_exit(secs(20)), "{}", daemon.describe());
    assert_eq!(
        p.read("last.out").trim(),
        "OK",
        "app's last write was refused: redis went down before app had stopped\n{}",
        daemon.log()
    );
    let aof = std::fs::read_dir(p.file("appendonlydir"))
        .map(|entries| {
            entries
                .flatten()
                .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                .collect::<String>()
        })
        .or_else(|_| std::fs::read_to_string(p.file("appendonly.aof")))
        .unwrap_or_default();
    assert!(
        aof.contains("last-write"),
        "the last write is not in redis's append-only file"
    );
}

#[test]
fn completed_and_started_conditions_and_what_a_waiting_service_shows() {
    let p = Project::new(secs(60));
    p.config(
        r#"
[services.migrate]
shell = "test -e go || exit 3; touch migrated"
restart = "never"

[services.app]
shell = "test -e migrated && echo $$ > app.pid && exec sleep 1000000"
depends_on = { migrate = "completed" }

# slow is ready only once early runs: with `started`, early does not wait for that.
[services.slow]
shell = "echo $$ > slow.pid; exec sleep 1000000"
ready = { exec = ["test", "-e", "early.pid"] }
ready_timeout = "1h"

[services.early]
shell = "echo $$ > early.pid; exec sleep 1000000"
depends_on = { slow = "started" }
"#,
    );
    // migrate fails, so app gives up: `up -d` says so (exit 1), and the daemon runs on.
    let _daemon = p.up_detached_expecting(up_d(&p), &p.file(".runpm"), Some(1));
    p.running_pid("early", secs(10));
    p.running_pid("slow", secs(10));

    // `completed` with a failed task: app does not start, and says why.
    let status = wait_for_some(secs(10), || {
        let status = p.status_json();
        (service(&status, "migrate")["status"] == "exited").then_some(status)
    })
    .expect("migrate exits");
    let app = service(&status, "app");
    assert_eq!(app["status"], "starting");
    assert_eq!(app["pid"], Value::Null);
    assert_eq!(app["waiting_for"], serde_json::json!(["migrate"]));
    let dep = &app["dependencies"][0];
    assert_eq!(
        (&dep["name"], &dep["condition"], &dep["status"], &dep["met"]),
        (
            &Value::from("migrate"),
            &Value::from("completed"),
            &Value::from("exited"),
            &Value::from(false)
        ),
        "{status}"
    );
    let table = p.ctl_ok(&["status"]);
    let row = table
        .lines()
        .find(|l| l.starts_with("app "))
        .unwrap_or_else(|| panic!("no app row in\n{table}"));
    assert!(
        row.contains("waiting for migrate, which exited with code 3"),
        "{table}"
    );

    // An operator start of app answers at once with the reason, exit 1.
    let started = Instant::now();
    let out = p.ctl(&["start", "app"]);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(
        out.stderr
            .contains("app: waiting for migrate, which exited with code 3"),
        "{}",
        out.describe()
    );
    assert!(
        started.elapsed() < COMMAND_LIMIT,
        "the reply must not wait for a client timeout"
    );

    // Once the task succeeds, app follows.
    p.write("go", "");
    p.ctl_ok(&["restart", "migrate"]);
    p.running_pid("app", secs(10));
    assert!(p.file("migrated").exists());
}

#[test]
fn restart_and_reload_behind_a_crash_looping_dependency_answer_at_once() {
    let p = Project::new(secs(60));
    p.config(
        r#"
[services.worker]
shell = "exit 1"
restart = "always"
restart_delay = "10ms"
max_restarts = 2

[services.app]
shell = "exec sleep 1000000"
depends_on = ["worker"]
"#,
    );
    let _daemon = p.up_detached_failing(&[]);
    wait_for(secs(10), || p.statuses()["worker"] == "failed");
    for args in [&["restart", "app"][..], &["start", "app"]] {
        let out = p.ctl(args);
        assert_eq!(out.code(), Some(1), "{}", out.describe());
        assert!(
            out.stderr
                .contains("app: waiting for worker, which failed (crash loop"),
            "{}",
            out.describe()
        );
        assert!(
            out.stderr.contains("runpmctl restart worker to try again"),
            "{}",
            out.describe()
        );
    }
    // A reload that restarts app answers the same way.
    let text = p
        .read("services.toml")
        .replace("exec sleep 1000000", "exec sleep 1000001");
    p.config(&text);
    let out = p.ctl(&["reload"]);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(
        out.stderr.contains("waiting for worker"),
        "{}",
        out.describe()
    );
}

#[test]
fn a_fresh_up_after_a_clean_shutdown_runs_every_task_again_a_crash_does_not() {
    let p = Project::new(secs(60));
    p.config(
        r#"
[services.migrate]
shell = "echo run >> migrations.log"
restart = "never"

[services.web]
shell = "echo $$ > web.pid; exec sleep 1000000"
depends_on = { migrate = "completed" }
"#,
    );
    let daemon = p.up_detached(&[]);
    p.running_pid("web", secs(10));
    assert_eq!(p.lines("migrations.log").len(), 1);
    p.ctl_ok(&["stop", "web"]);
    p.ctl_ok(&["shutdown", "--yes"]);
    assert!(daemon.wait_exit(secs(20)));
    let state: Value = serde_json::from_str(&p.read(".runpm/state.json")).unwrap();
    assert_eq!(state["clean_shutdown"], true);

    // A clean stop ended the session: the next up starts from the config, web included.
    let daemon = p.up_detached(&[]);
    p.running_pid("web", secs(10));
    assert_eq!(p.lines("migrations.log").len(), 2, "the task runs again");

    // A crash of the daemon: the snapshot is restored; the completed task is not run again.
    let _strays = p.stray_guard();
    daemon.crash();
    let _daemon = p.up_detached(&[]);
    let status = wait_for_some(secs(10), || {
        let status = p.status_json();
        (service(&status, "web")["status"] == "running").then_some(status)
    })
    .expect("web runs again");
    assert_eq!(service(&status, "migrate")["status"], "exited");
    assert_eq!(
        p.lines("migrations.log").len(),
        2,
        "a task that completed before the crash is not run again"
    );
}

#[test]
fn a_project_whose_only_service_is_a_task_ends_and_runs_it_again_next_time() {
    let p = Project::new(secs(30));
    p.config(
        r#"
[services.task]
shell = "echo done >> task.log"
restart = "never"
"#,
    );
    for round in 1..=2 {
        let mut up = p.up(&[]);
        up.assert_exit_code(secs(10), 0);
        assert_eq!(p.lines("task.log").len(), round, "{}", up.describe());
    }
}

#[test]
fn a_reloaded_worker_gets_a_fresh_crash_window() {
    let p = Project::new(secs(60));
    // Crashes after a short run, three times allowed; each definition gets its own budget.
    p.config(
        r#"
[services.worker]
shell = "echo $$ >> runs.log; sleep 0.2; exit 1"
restart = "always"
restart_delay = "10ms"
min_uptime = "0s"
max_restarts = 3
env = { VERSION = "1" }
"#,
    );
    let _daemon = p.up_detached_failing(&["--no-watch"]);
    p.wait_lines("runs.log", 3, secs(20));
    let text = p.read("services.toml").replace("\"1\"", "\"2\"");
    p.config(&text);
    p.ctl_ok(&["reload"]);
    let after_reload = p.lines("runs.log").len();
    // The new definition runs four times (the first start and three restarts) before the
    // crash loop, whatever the old one did.
    p.wait_lines("runs.log", after_reload + 3, secs(20));
    assert_ne!(
        p.statuses()["worker"],
        "failed",
        "old crashes counted against the new definition"
    );
}

#[test]
fn a_stopped_process_is_continued_and_a_second_stop_kills_at_once() {
    let p = Project::new(secs(60));
    p.config(
        r#"
[services.frozen]
shell = "echo $$ > frozen.pid; exec sleep 1000000"
kill_timeout = "1h"

[services.stubborn]
shell = "trap '' TERM; echo $$ > stubborn.pid; while :; do sleep 1; done"
kill_timeout = "1h"
"#,
    );
    let _daemon = p.up_detached(&[]);
    let frozen = p.running_pid("frozen", secs(10));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(frozen), Signal::SIGSTOP).unwrap();
    wait_for(secs(5), || proc_state(frozen) == Some('T'));
    // SIGTERM alone would wait for a SIGCONT for the whole hour of kill_timeout.
    let out = p.ctl(&["stop", "frozen"]);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert!(wait_dead(frozen, secs(5)));

    let stubborn = p.running_pid("stubborn", secs(10));
    let mut first = Runpm::start(p.program(RUNPMCTL, ["stop", "stubborn"]));
    wait_for(secs(10), || p.statuses()["stubborn"] == "stopping");
    let second = p.ctl(&["stop", "stubborn"]);
    assert_eq!(second.code(), Some(0), "{}", second.describe());
    assert!(
        wait_dead(stubborn, secs(5)),
        "the second stop sends SIGKILL"
    );
    first.assert_exit_code(secs(10), 0);
}
