//! The control plane end to end: `runpm up -d`, `runpmctl` and reloads, with the real
//! binaries over the real socket. Each test checks what a user would check: exit codes and
//! messages, which processes run (their pids, alive or gone), what `status` says, and the
//! daemon's log.
//!
//! Most tests run the daemon detached; the [`Daemon`] guard kills it and its services when
//! the test ends, however it ends. Reload tests use `--no-watch` so that the explicit
//! `runpmctl reload` is the only reload (the watcher would otherwise race it for the same
//! edit); the watcher has its own tests.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::Path;

use common::*;
use nix::sys::signal::Signal;
use serde_json::Value;

/// Three quiet services; `web` depends on `db`. Each writes its pid to `NAME.pid` and then
/// becomes `sleep` (same pid), so the pid file, `status` and `/proc` agree.
const BASE: &str = r#"
[services.db]
shell = 'echo $$ > db.pid; exec sleep 1000000'

[services.web]
shell = 'echo $$ > web.pid; exec sleep 1000000'
depends_on = ["db"]

[services.worker]
shell = 'echo $$ > worker.pid; exec sleep 1000000'
"#;

/// `BASE` with `worker`'s command changed.
fn worker_changed(text: &str) -> String {
    let changed = text.replace(
        "'echo $$ > worker.pid; exec sleep 1000000'",
        "'echo $$ > worker.pid; exec sleep 1000001'",
    );
    assert_ne!(changed, text, "the edit should change the config");
    changed
}

/// Starts the daemon on the project's `services.toml` and waits until every service runs;
/// returns the guard and the pids.
fn start(p: &Project, extra: &[&str]) -> (Daemon, BTreeMap<String, i32>) {
    let daemon = p.up_detached(extra);
    let names: Vec<String> = p.services().into_keys().collect();
    let pids = names
        .iter()
        .map(|name| (name.clone(), p.running_pid(name, secs(10))))
        .collect();
    (daemon, pids)
}

/// Like [`start`], waiting only for `names` to run (others may exit on their own).
fn start_some(p: &Project, names: &[&str]) -> (Daemon, BTreeMap<String, i32>) {
    let daemon = p.up_detached(&[]);
    let pids = names
        .iter()
        .map(|name| (name.to_string(), p.running_pid(name, secs(10))))
        .collect();
    (daemon, pids)
}

/// The running services' pids, as `status --json` gives them.
fn running_pids(p: &Project) -> BTreeMap<String, i32> {
    p.pids()
        .into_iter()
        .filter_map(|(name, pid)| Some((name, pid?)))
        .collect()
}

fn assert_pids_unchanged(p: &Project, before: &BTreeMap<String, i32>, context: &str) {
    let after = running_pids(p);
    assert_eq!(&after, before, "{context}: every pid should stay the same");
    for (name, pid) in before {
        assert!(
            is_alive(*pid),
            "{context}: {name} (pid {pid}) should still run"
        );
    }
}

/// The pid in a `NAME: running (pid N)` line of start/restart.
fn pid_in_line(stdout: &str, name: &str) -> i32 {
    let prefix = format!("{name}: running (pid ");
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(&prefix)?.strip_suffix(')')?.parse().ok())
        .unwrap_or_else(|| panic!("no `{prefix}N)` line in {stdout:?}"))
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("stat {path:?}: {e}"))
        .permissions()
        .mode()
        & 0o7777
}

// ---------------------------------------------------------------------------------------------
// Daemon mode
// ---------------------------------------------------------------------------------------------

#[test]
fn up_detached_serves_a_private_socket_and_leaves_the_terminal() {
    let p = Project::new(secs(30));
    p.config(BASE);
    let (daemon, pids) = start(&p, &[]);

    // What `up -d` told the user.
    let printed = format!("(pid {})", daemon.pid());
    assert!(
        daemon.up.stdout.contains(&printed),
        "`up -d` should print the daemon's pid {printed}\n{}",
        daemon.describe()
    );

    // The state directory and the socket are private.
    let state = p.file(".runpm");
    assert_eq!(mode(&state), 0o700, "the state directory's mode");
    let socket = p.file(".runpm/runpm.sock");
    let meta = std::fs::symlink_metadata(&socket).expect("the socket exists");
    assert!(
        meta.file_type().is_socket(),
        "{socket:?} should be a socket"
    );
    assert_eq!(mode(&socket), 0o600, "the socket's mode");
    assert_eq!(daemon.socket(), socket, "the socket `up -d` announced");

    // The table lists every service as running, with pids that are alive and are the ones
    // the services wrote themselves.
    let table = p.ctl_ok(&["status"]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "STATUS",
            "PID",
            "UPTIME",
            "RESTARTS",
            "MEM",
            "CPU",
            "LAST-EXIT"
        ],
        "{table}"
    );
    let rows: BTreeMap<&str, Vec<&str>> = lines
        .map(|l| {
            let cells: Vec<&str> = l.split_whitespace().collect();
            (cells[0], cells)
        })
        .collect();
    assert_eq!(
        rows.keys().copied().collect::<Vec<_>>(),
        ["db", "web", "worker"],
        "{table}"
    );
    for (name, cells) in &rows {
        assert_eq!(cells[1], "running", "{table}");
        let pid: i32 = cells[2].parse().expect("a pid");
        assert!(is_alive(pid), "{name}'s pid {pid} should be alive");
        assert_eq!(pid, pids[*name], "{table}");
        assert_eq!(pid, p.read_pid(&format!("{name}.pid"), secs(5)));
        assert_eq!(cells[4], "0", "no restarts yet: {table}");
        assert_eq!(cells[7], "-", "no exits yet: {table}");
    }

    // The JSON has the documented fields.
    let json = p.status_json();
    for s in json["services"].as_array().expect("a services list") {
        let name = s["name"].as_str().expect("name is a string");
        assert_eq!(s["status"], "running", "{s}");
        assert_eq!(s["pid"].as_i64(), Some(i64::from(pids[name])), "{s}");
        assert_eq!(s["restarts"], 0, "{s}");
        assert_eq!(s["exits"], Value::Array(vec![]), "{s}");
        assert!(s["since"].is_string(), "{s}");
        assert!(s["uptime_ms"].is_u64(), "{s}");
        assert_eq!(s["stopped_by_operator"], false, "{s}");
    }

    // The daemon has left the test's session (a closing terminal does not reach it), its
    // stdin is /dev/null and its output goes to the log.
    assert_ne!(sid(daemon.pid()), sid(std::process::id() as i32));
    assert_eq!(
        sid(daemon.pid()),
        Some(daemon.pid()),
        "it leads its own session"
    );
    let fd = |n: u32| std::fs::read_link(format!("/proc/{}/fd/{n}", daemon.pid())).ok();
    assert_eq!(fd(0).as_deref(), Some(Path::new("/dev/null")));
    assert_eq!(fd(1), Some(p.file(".runpm/runpm.log")));
    assert_eq!(fd(2), Some(p.file(".runpm/runpm.log")));
    let log = daemon.wait_for_log("worker: started", secs(5));
    assert!(log.contains("db: started"), "{log}");
}

#[test]
fn a_second_up_is_refused_and_names_the_running_pid() {
    let p = Project::new(secs(30));
    p.config(BASE);
    let (daemon, pids) = start(&p, &[]);
    let pid = daemon.pid().to_string();

    for extra in [&[][..], &["-d"][..]] {
        let file = p.file("services.toml");
        let mut args = vec!["up", "-f", file.to_str().unwrap()];
        args.extend(extra);
        let second = p.run(&args, secs(10));
        assert_eq!(
            second.code(),
            Some(1),
            "`runpm {}` should be refused\n{}",
            args.join(" "),
            second.describe()
        );
        assert!(
            second.stderr.contains("already running") && second.stderr.contains(&pid),
            "the refusal should name the running daemon's pid {pid}\n{}",
            second.describe()
        );
    }
    assert!(daemon.is_alive(), "the first daemon keeps running");
    assert_pids_unchanged(&p, &pids, "after the refused second `up`");
}

#[test]
fn a_stale_socket_of_a_killed_daemon_is_replaced() {
    let p = Project::new(secs(30));
    p.config(BASE);
    let first = p.up_detached(&["--no-watch"]);
    let first_pid = first.pid();
    // The daemon dies without cleaning up: the socket file stays, nothing listens on it.
    drop(first);
    assert!(wait_dead(first_pid, secs(5)));
    assert!(
        p.file(".runpm/runpm.sock").exists(),
        "the stale socket is left"
    );

    let (second, _) = start(&p, &["--no-watch"]);
    assert_ne!(second.pid(), first_pid);
    let log = second.wait_for_log("stale", secs(5));
    assert!(log.contains("removing the stale control socket"), "{log}");
    assert_eq!(p.statuses().len(), 3);
}

/// Found while writing these tests: the daemon's log is a file, yet tracing's structured
/// fields are written with terminal colour codes (`ESC[3mpath ESC[0m ESC[2m= ESC[0m…`).
#[test]
fn the_daemon_log_is_plain_text() {
    let p = Project::new(secs(30));
    p.config(BASE);
    // Leave a stale socket behind so the next daemon logs an event with a structured field.
    // As a user starts it: NO_COLOR unset (the harness sets it for everything else).
    let file = p.file("services.toml");
    let up = || {
        let mut cmd = p.command(["up", "-d", "--no-watch", "-f", file.to_str().unwrap()]);
        cmd.env_remove("NO_COLOR");
        p.up_detached_with(cmd, &p.file(".runpm"))
    };
    drop(up());
    let second = up();
    let log = second.wait_for_log("stale", secs(5));
    assert!(
        !log.contains('\u{1b}'),
        "the daemon's log (a file) should contain no terminal escape codes:\n{}",
        log.escape_debug()
    );
}

// ---------------------------------------------------------------------------------------------
// runpmctl commands and exit codes
// ---------------------------------------------------------------------------------------------

#[test]
fn every_command_has_its_exit_code() {
    let p = Project::new(secs(60));
    p.config(BASE);
    let (daemon, pids) = start(&p, &[]);

    let expect = |args: &[&str], code: i32, needle: &str| {
        let out = p.ctl(args);
        assert_eq!(
            out.code(),
            Some(code),
            "`runpmctl {}` should exit {code}\n{}",
            args.join(" "),
            out.describe()
        );
        assert!(
            out.stderr.contains(needle) || out.stdout.contains(needle),
            "`runpmctl {}` should say {needle:?}\n{}",
            args.join(" "),
            out.describe()
        );
        out
    };
    expect(&["status"], 0, "worker");
    expect(&["status", "web"], 0, "web");
    expect(&["status", "nope"], 1, "nope");
    expect(&["start", "nope"], 1, "nope");
    expect(&["stop", "nope"], 1, "nope");
    expect(&["restart", "nope"], 1, "nope");
    expect(&["stop", "--all"], 2, "--yes");
    expect(&["shutdown"], 2, "--yes");
    expect(&["status", "--bogus"], 2, "--bogus");
    expect(&["--bogus", "status"], 2, "--bogus");
    expect(&["frobnicate"], 2, "frobnicate");
    expect(&["restart"], 2, "NAME");
    // Refused and failed commands changed nothing.
    assert!(daemon.is_alive());
    assert_pids_unchanged(&p, &pids, "after refused commands");
}

#[test]
fn no_daemon_is_exit_3_with_a_clear_message() {
    let p = Project::new(secs(30));
    p.config(BASE);
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["restart", "web"],
        &["reload"],
        &["shutdown", "--yes"],
    ] {
        let out = p.ctl(args);
        assert_eq!(
            out.code(),
            Some(3),
            "`runpmctl {}`\n{}",
            args.join(" "),
            out.describe()
        );
        assert!(out.stderr.contains("no runpm daemon"), "{}", out.describe());
    }
    // Without any config there is no project, so no daemon either.
    let empty = tempfile::tempdir().unwrap();
    let out = p.ctl_in(empty.path(), &["status"]);
    assert_eq!(out.code(), Some(3), "{}", out.describe());
    // An explicit socket where nothing listens.
    let out = p.ctl(&["--socket", "/nonexistent/runpm.sock", "status"]);
    assert_eq!(out.code(), Some(3), "{}", out.describe());
    assert!(out.stderr.contains("no runpm daemon"), "{}", out.describe());
}

#[test]
fn restart_stop_and_start() {
    let p = Project::new(secs(30));
    p.config(BASE);
    let (_daemon, pids) = start(&p, &[]);

    // restart: a new process, the old one gone, the others untouched.
    let out = p.ctl_ok(&["restart", "worker"]);
    let new = pid_in_line(&out, "worker");
    assert_ne!(new, pids["worker"], "restart should print a new pid: {out}");
    assert!(is_alive(new), "the new worker (pid {new}) should run");
    assert!(
        wait_dead(pids["worker"], secs(5)),
        "the old worker should be gone"
    );
    assert_eq!(p.wait_new_pid("worker.pid", pids["worker"], secs(5)), new);
    let now = running_pids(&p);
    assert_eq!(now["worker"], new);
    assert_eq!(now["db"], pids["db"]);
    assert_eq!(now["web"], pids["web"]);

    // stop: the process is gone and status says stopped.
    let out = p.ctl_ok(&["stop", "web"]);
    assert_eq!(out.trim(), "web: stopped");
    assert!(
        wait_dead(pids["web"], secs(5)),
        "web's process should be gone"
    );
    let web = p.services().remove("web").unwrap();
    assert_eq!(web["status"], "stopped", "{web}");
    assert_eq!(web["pid"], Value::Null, "{web}");
    assert_eq!(web["stopped_by_operator"], true, "{web}");
    // A stop is not a failure: the table shows it, with no automatic restart.
    let table = p.ctl_ok(&["status", "web"]);
    assert!(table.contains("stopped"), "{table}");

    // start: running again.
    let out = p.ctl_ok(&["start", "web"]);
    let web = pid_in_line(&out, "web");
    assert!(is_alive(web));
    assert_eq!(p.running_pid("web", secs(5)), web);
    assert_eq!(p.services()["web"]["stopped_by_operator"], false);
    assert_eq!(running_pids(&p)["db"], pids["db"], "db is left alone");
}

#[test]
fn start_brings_up_dependencies_and_leaves_running_services_alone() {
    let p = Project::new(secs(30));
    p.config(BASE);
    let (_daemon, pids) = start(&p, &[]);
    // Starting what runs is a no-op.
    let out = p.ctl_ok(&["start", "web"]);
    assert_eq!(pid_in_line(&out, "web"), pids["web"], "{out}");
    assert_pids_unchanged(&p, &pids, "after starting a running service");

    p.ctl_ok(&["stop", "web"]);
    p.ctl_ok(&["stop", "db"]);
    assert!(wait_dead(pids["db"], secs(5)) && wait_dead(pids["web"], secs(5)));
    // web needs db: starting web starts db first.
    p.ctl_ok(&["start", "web"]);
    let db = p.running_pid("db", secs(5));
    let web = p.running_pid("web", secs(5));
    assert_ne!(db, pids["db"]);
    assert!(is_alive(db) && is_alive(web));
    assert_eq!(running_pids(&p)["worker"], pids["worker"]);

    // restart of a stopped service starts it.
    p.ctl_ok(&["stop", "worker"]);
    let out = p.ctl_ok(&["restart", "worker"]);
    let worker = pid_in_line(&out, "worker");
    assert!(is_alive(worker) && worker != pids["worker"]);

    // restart --all: every service gets a new process.
    let before = running_pids(&p);
    let out = p.ctl_ok(&["restart", "--all"]);
    for (name, old) in &before {
        let new = pid_in_line(&out, name);
        assert_ne!(new, *old, "{name}: {out}");
        assert!(is_alive(new), "{name}: {out}");
    }
}

#[test]
fn stop_all_and_start_all() {
    let p = Project::new(secs(30));
    p.config(BASE);
    let (_daemon, pids) = start(&p, &[]);
    let out = p.ctl_ok(&["stop", "--all", "--yes"]);
    for (name, pid) in &pids {
        assert!(out.contains(&format!("{name}: stopped")), "{out}");
        assert!(wait_dead(*pid, secs(5)), "{name} should be gone");
    }
    assert!(
        p.statuses().values().all(|s| s == "stopped"),
        "{:?}",
        p.statuses()
    );
    let out = p.ctl_ok(&["start", "--all"]);
    for name in pids.keys() {
        let pid = pid_in_line(&out, name);
        assert!(is_alive(pid), "{name} should run again");
    }
}

// ---------------------------------------------------------------------------------------------
// Reload
// ---------------------------------------------------------------------------------------------

#[test]
fn operator_stop_is_remembered_across_reloads() {
    let p = Project::new(secs(30));
    p.config(BASE);
    let (_daemon, pids) = start(&p, &["--no-watch"]);
    p.ctl_ok(&["stop", "web"]);
    assert!(wait_dead(pids["web"], secs(5)));

    // Another service's edit is applied; web stays down.
    p.config(&worker_changed(BASE));
    let out = p.ctl_ok(&["reload"]);
    assert!(out.contains("~ worker restarted (shell changed)"), "{out}");
    assert!(
        !mentions_service(&out, "web"),
        "web is not in the plan: {out}"
    );
    let web = p.services().remove("web").unwrap();
    assert_eq!(web["status"], "stopped", "{web}");
    assert_eq!(web["pid"], Value::Null, "{web}");
    // Nothing else started web behind the operator's back either.
    assert_eq!(p.read_pid("web.pid", secs(1)), pids["web"]);

    // An edit of web itself still does not start it.
    p.config(
        &worker_changed(BASE).replace("web.pid; exec sleep 1000000", "web.pid; exec sleep 1000002"),
    );
    let out = p.ctl_ok(&["reload"]);
    assert_eq!(p.statuses()["web"], "stopped", "after editing web: {out}");

    let out = p.ctl_ok(&["start", "web"]);
    let pid = pid_in_line(&out, "web");
    assert!(is_alive(pid));
    assert_eq!(p.wait_new_pid("web.pid", pids["web"], secs(5)), pid);
    // It runs the definition of the last reload.
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    assert!(
        String::from_utf8_lossy(&cmdline).contains("1000002"),
        "web should run its edited command: {:?}",
        String::from_utf8_lossy(&cmdline)
    );
}

fn mentions_service(text: &str, name: &str) -> bool {
    text.lines().any(|l| mentions(l, name))
}

#[test]
fn reload_starts_an_added_service() {
    let p = Project::new(secs(30));
    p.config(BASE);
    let (_daemon, pids) = start(&p, &["--no-watch"]);
    p.config(&format!(
        "{BASE}\n[services.extra]\nshell = 'echo $$ > extra.pid; exec sleep 1000000'\n"
    ));
    let out = p.ctl_ok(&["reload"]);
    assert_eq!(out, "+ extra started\n= 3 unchanged\n");
    let pid = p.read_pid("extra.pid", secs(5));
    assert!(is_alive(pid));
    assert_eq!(p.running_pid("extra", secs(5)), pid);
    let mut expected = pids.clone();
    expected.insert("extra".into(), pid);
    assert_pids_unchanged(&p, &expected, "after adding a service");
}

#[test]
fn reload_stops_a_removed_service() {
    let p = Project::new(secs(30));
    p.config(BASE);
    let (_daemon, mut pids) = start(&p, &["--no-watch"]);
    let without_worker = BASE.replace(
        "[services.worker]\nshell = 'echo $$ > worker.pid; exec sleep 1000000'\n",
        "",
    );
    assert_ne!(without_worker, BASE);
    p.config(&without_worker);
    let out = p.ctl_ok(&["reload"]);
    assert_eq!(out, "- worker stopped\n= 2 unchanged\n");
    let worker = pids.remove("worker").unwrap();
    assert!(
        wait_dead(worker, secs(5)),
        "the removed service's process is gone"
    );
    assert!(!p.services().contains_key("worker"), "{:?}", p.services());
    assert!(p.ctl(&["status", "worker"]).code() == Some(1));
    assert_pids_unchanged(&p, &pids, "after removing a service");
}

#[test]
fn reload_restarts_a_service_whose_shell_or_cmd_changed() {
    let p = Project::new(secs(30));
    let config = format!(
        "{BASE}\n[services.argv]\ncmd = ['sh', '-c', 'echo $$ > argv.pid; exec sleep 1000000']\n"
    );
    p.config(&config);
    let (_daemon, pids) = start(&p, &["--no-watch"]);

    p.config(&worker_changed(&config));
    let out = p.ctl_ok(&["reload"]);
    assert_eq!(out, "~ worker restarted (shell changed)\n= 3 unchanged\n");
    let worker = p.wait_new_pid("worker.pid", pids["worker"], secs(5));
    assert!(wait_dead(pids["worker"], secs(5)));
    let mut expected = pids.clone();
    expected.insert("worker".into(), worker);
    assert_eq!(p.running_pid("worker", secs(5)), worker);
    assert_pids_unchanged(&p, &expected, "after changing worker's shell");

    let edited = worker_changed(&config).replace(
        "'echo $$ > argv.pid; exec sleep 1000000'",
        "'echo $$ > argv.pid; exec sleep 1000003'",
    );
    p.config(&edited);
    let out = p.ctl_ok(&["reload"]);
    assert_eq!(out, "~ argv restarted (cmd changed)\n= 3 unchanged\n");
    let argv = p.wait_new_pid("argv.pid", pids["argv"], secs(5));
    expected.insert("argv".into(), argv);
    assert_eq!(p.running_pid("argv", secs(5)), argv);
    assert_pids_unchanged(&p, &expected, "after changing argv's cmd");
}

#[test]
fn reload_restarts_a_service_whose_env_changed() {
    let p = Project::new(secs(30));
    let config = |greeting: &str| {
        format!(
            r#"{BASE}
[services.greeter]
shell = 'echo $$ > greeter.pid; echo "GREETING=$GREETING" > greeter.out; exec sleep 1000000'
env = {{ GREETING = "{greeting}" }}
"#
        )
    };
    p.config(&config("hello"));
    let (_daemon, pids) = start(&p, &["--no-watch"]);
    assert_eq!(p.wait_lines("greeter.out", 1, secs(5)), ["GREETING=hello"]);

    p.config(&config("bonjour"));
    let out = p.ctl_ok(&["reload"]);
    assert_eq!(out, "~ greeter restarted (env changed)\n= 3 unchanged\n");
    let greeter = p.wait_new_pid("greeter.pid", pids["greeter"], secs(5));
    assert!(
        wait_for(secs(5), || p.lines("greeter.out") == ["GREETING=bonjour"]),
        "the new environment should reach the service: {:?}",
        p.read("greeter.out")
    );
    let mut expected = pids.clone();
    expected.insert("greeter".into(), greeter);
    assert_eq!(p.running_pid("greeter", secs(5)), greeter);
    assert_pids_unchanged(&p, &expected, "after changing greeter's env");
}

#[test]
fn edits_that_change_nothing_restart_nothing() {
    let p = Project::new(secs(30));
    p.config(BASE);
    let (_daemon, pids) = start(&p, &["--no-watch"]);
    let identities: BTreeMap<&String, Option<u64>> =
        pids.iter().map(|(n, &pid)| (n, start_time(pid))).collect();

    let same = [
        // A comment.
        format!("# the services of this project\n{BASE}"),
        // Keys in another order, tables in another order.
        r#"
[services.worker]
shell = 'echo $$ > worker.pid; exec sleep 1000000'

[services.web]
depends_on = ["db"]
shell = 'echo $$ > web.pid; exec sleep 1000000'

[services.db]
shell = 'echo $$ > db.pid; exec sleep 1000000'
"#
        .to_owned(),
        // Whitespace, and other spellings of the same values.
        r#"


[services.db]
shell   =   "echo $$ > db.pid; exec sleep 1000000"
[services.web]
  shell = 'echo $$ > web.pid; exec sleep 1000000'
  depends_on = [ "db", ]
[services.worker]
	shell = 'echo $$ > worker.pid; exec sleep 1000000'     # trailing comment
"#
        .to_owned(),
        // A default written out.
        BASE.replace(
            "depends_on = [\"db\"]",
            "depends_on = [\"db\"]\nrestart = \"on-failure\"",
        ),
    ];
    for text in &same {
        p.config(text);
        let out = p.ctl_ok(&["reload"]);
        assert_eq!(out, "= 3 unchanged\n", "for the config:\n{text}");
        assert_pids_unchanged(&p, &pids, "after a no-op edit");
        for (name, &pid) in &pids {
            assert_eq!(
                start_time(pid),
                identities[name],
                "{name} is the same process"
            );
        }
    }
}

#[test]
fn an_invalid_edit_changes_nothing_and_names_the_line() {
    let p = Project::new(secs(30));
    p.config(BASE);
    let (daemon, pids) = start(&p, &["--no-watch"]);
    let status_before = p.statuses();

    // An unknown key, and a TOML syntax error, each with a change to worker that must not
    // be applied.
    let edits = [
        (
            worker_changed(BASE).replace("depends_on = [\"db\"]", "depends_onn = [\"db\"]"),
            "depends_onn",
        ),
        (
            worker_changed(BASE).replace("depends_on = [\"db\"]", "depends_on = = [\"db\"]"),
            "depends_on",
        ),
    ];
    for (text, key) in &edits {
        p.config(text);
        let line = text
            .lines()
            .position(|l| l.starts_with(key))
            .expect("the edited line")
            + 1;
        let out = p.ctl(&["reload"]);
        assert_eq!(out.code(), Some(1), "{}", out.describe());
        let at = format!("services.toml:{line}:");
        assert!(
            out.stderr.contains(&at),
            "the error should name {at}COL\n{}",
            out.describe()
        );
        assert!(
            out.stdout.is_empty(),
            "no plan is printed\n{}",
            out.describe()
        );
        assert_pids_unchanged(&p, &pids, "after an invalid edit");
        assert_eq!(p.statuses(), status_before);
        // The daemon logs it as well.
        daemon.wait_for_log(&at, secs(5));
    }
    // A dry run reports the same error.
    let out = p.ctl(&["reload", "--dry-run"]);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    // With the config broken on disk, runpmctl still finds the daemon.
    let table = p.ctl_ok(&["status"]);
    assert!(table.contains("worker"), "{table}");

    // Fixed: the pending change applies.
    p.config(&worker_changed(BASE));
    let out = p.ctl_ok(&["reload"]);
    assert_eq!(out, "~ worker restarted (shell changed)\n= 2 unchanged\n");
}

#[test]
fn reload_dry_run_prints_the_plan_and_changes_nothing() {
    let p = Project::new(secs(30));
    p.config(BASE);
    let (_daemon, pids) = start(&p, &["--no-watch"]);
    let edited = format!(
        "{}\n[services.extra]\nshell = 'exec sleep 1000000'\n",
        worker_changed(BASE).replace(
            "[services.db]\nshell = 'echo $$ > db.pid; exec sleep 1000000'\n",
            ""
        )
    );
    // web depends on db; keep the config valid without db.
    let edited = edited.replace("depends_on = [\"db\"]\n", "");
    p.config(&edited);

    let out = p.ctl_ok(&["reload", "--dry-run"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines.first(),
        Some(&"dry run: nothing was changed"),
        "{out}"
    );
    for expected in [
        "+ extra started",
        "~ worker restarted (shell changed)",
        "- db stopped",
    ] {
        assert!(lines.contains(&expected), "{expected:?} in {out}");
    }
    assert_eq!(lines.last(), Some(&"= 0 unchanged"), "{out}");
    assert_pids_unchanged(&p, &pids, "after a dry run");
    assert!(!p.services().contains_key("extra"));

    let out = p.ctl_ok(&["reload", "--dry-run", "--json"]);
    let plan: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(plan["dry_run"], true, "{plan}");
    assert_eq!(
        plan["config"].as_str(),
        p.file("services.toml").to_str(),
        "{plan}"
    );
    let changes: BTreeMap<&str, (&str, Vec<&str>)> = plan["changes"]
        .as_array()
        .expect("a changes list")
        .iter()
        .map(|c| {
            let changed = c["changed"]
                .as_array()
                .expect("changed is a list")
                .iter()
                .map(|f| f.as_str().expect("a string"))
                .collect();
            (
                c["name"].as_str().expect("a name"),
                (c["action"].as_str().expect("an action"), changed),
            )
        })
        .collect();
    assert_eq!(changes["worker"].0, "restarted", "{plan}");
    assert_eq!(changes["worker"].1, ["shell"], "{plan}");
    assert_eq!(changes["extra"].0, "started", "{plan}");
    assert_eq!(changes["db"].0, "stopped", "{plan}");
    // web lost its dependency: that is a change too, applied by restarting it.
    assert_eq!(changes["web"].0, "restarted", "{plan}");
    assert_eq!(changes["web"].1, ["depends_on"], "{plan}");
    assert_eq!(plan["unchanged"], 0, "{plan}");
    assert_pids_unchanged(&p, &pids, "after a JSON dry run");

    // The real reload then applies exactly that plan.
    let out = p.ctl_ok(&["reload", "--json"]);
    let applied: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(applied["dry_run"], false);
    assert_eq!(applied["changes"], plan["changes"]);
    assert!(wait_dead(pids["db"], secs(5)));
    p.running_pid("extra", secs(5));
}

#[test]
fn a_dependency_restart_restarts_its_dependents_only() {
    let p = Project::new(secs(30));
    p.config(BASE);
    let (_daemon, pids) = start(&p, &["--no-watch"]);
    p.config(&BASE.replace(
        "'echo $$ > db.pid; exec sleep 1000000'",
        "'echo $$ > db.pid; exec sleep 1000004'",
    ));
    let out = p.ctl_ok(&["reload"]);
    assert_eq!(
        out,
        "~ db restarted (shell changed)\n~ web restarted (dependency db restarted)\n= 1 unchanged\n"
    );
    let db = p.wait_new_pid("db.pid", pids["db"], secs(5));
    let web = p.wait_new_pid("web.pid", pids["web"], secs(5));
    assert!(wait_dead(pids["db"], secs(5)) && wait_dead(pids["web"], secs(5)));
    let now = running_pids(&p);
    assert_eq!(now["db"], db);
    assert_eq!(now["web"], web);
    assert_eq!(
        now["worker"], pids["worker"],
        "worker does not depend on db"
    );

    // A change to the dependent alone leaves the dependency alone.
    p.config(
        &BASE
            .replace("db.pid; exec sleep 1000000", "db.pid; exec sleep 1000004")
            .replace("web.pid; exec sleep 1000000", "web.pid; exec sleep 1000005"),
    );
    let out = p.ctl_ok(&["reload"]);
    assert_eq!(out, "~ web restarted (shell changed)\n= 2 unchanged\n");
    p.wait_new_pid("web.pid", web, secs(5));
    assert_eq!(running_pids(&p)["db"], db);
}

// ---------------------------------------------------------------------------------------------
// The watcher and SIGHUP
// ---------------------------------------------------------------------------------------------

#[test]
fn the_watcher_applies_an_atomic_save() {
    let p = Project::new(secs(30));
    p.config(BASE);
    let (daemon, pids) = start(&p, &[]);
    p.save_atomically("services.toml", &worker_changed(BASE));
    let worker = p.wait_new_pid("worker.pid", pids["worker"], secs(10));
    assert_eq!(p.running_pid("worker", secs(5)), worker);
    assert!(wait_dead(pids["worker"], secs(5)));
    assert_eq!(running_pids(&p)["db"], pids["db"]);
    assert_eq!(running_pids(&p)["web"], pids["web"]);
    daemon.wait_for_log("~ worker restarted (shell changed)", secs(5));

    // A second save is watched as well (the rename replaced the watched inode).
    let text = worker_changed(BASE).replace("1000001", "1000009");
    p.save_atomically("services.toml", &text);
    let again = p.wait_new_pid("worker.pid", worker, secs(10));
    assert_eq!(p.running_pid("worker", secs(5)), again);

    // An invalid save changes nothing; the log names the line.
    p.save_atomically(
        "services.toml",
        &format!("{text}\n[services.broken]\nshel = 'x'\n"),
    );
    let log = daemon.wait_for_log("services.toml:", secs(10));
    assert!(log.contains("invalid"), "{log}");
    assert_eq!(running_pids(&p)["worker"], again);
}

#[test]
fn the_watcher_sees_unit_files_added_and_removed() {
    let p = Project::new(secs(30));
    let unit = |name: &str| format!("shell = 'echo $$ > ../{name}.pid; exec sleep 1000000'\n");
    p.write("units/alpha.toml", &unit("alpha"));
    p.write("units/beta.toml", &unit("beta"));
    let units = p.file("units");
    let up = p.command(["up", "-d", "-f", units.to_str().unwrap()]);
    let daemon = p.up_detached_with(up, &units.join(".runpm"));
    let status = || {
        // Discovery only looks for services.toml: a unit directory is named with -f.
        let out = p.ctl(&["-f", units.to_str().unwrap(), "status", "--json"]);
        assert_eq!(out.code(), Some(0), "{}", out.describe());
        services_by_name(&serde_json::from_str(&out.stdout).unwrap())
    };
    let alpha = p.read_pid("alpha.pid", secs(5));
    let beta = p.read_pid("beta.pid", secs(5));

    // A new unit file starts a service.
    p.write("units/gamma.toml", &unit("gamma"));
    let gamma = p.read_pid("gamma.pid", secs(10));
    assert!(is_alive(gamma));
    assert!(
        wait_for(secs(5), || status()
            .get("gamma")
            .is_some_and(|s| s["status"] == "running")),
        "{:?}",
        status()
    );
    // A removed one stops it.
    std::fs::remove_file(p.file("units/beta.toml")).unwrap();
    assert!(
        wait_dead(beta, secs(10)),
        "beta should stop when its unit file is removed\n{}",
        daemon.describe()
    );
    assert!(
        wait_for(secs(5), || !status().contains_key("beta")),
        "{:?}",
        status()
    );
    // An atomic save of one unit restarts only that service.
    let tmp = p.write(
        "units/alpha.toml.tmp~",
        &unit("alpha").replace("1000000", "1000001"),
    );
    std::fs::rename(tmp, p.file("units/alpha.toml")).unwrap();
    p.wait_new_pid("alpha.pid", alpha, secs(10));
    assert_eq!(status()["gamma"]["pid"].as_i64(), Some(i64::from(gamma)));
}

#[test]
fn no_watch_ignores_saves_until_reload() {
    let p = Project::new(secs(30));
    let config = format!("{BASE}{TICKER}");
    p.config(&config);
    let (_daemon, pids) = start(&p, &["--no-watch"]);
    p.save_atomically("services.toml", &worker_changed(&config));
    // Far longer than the watcher's debounce: 20 ticks of 50 ms.
    p.wait_growth("ticks", 20, secs(10));
    assert_pids_unchanged(&p, &pids, "a save with --no-watch");

    let out = p.ctl_ok(&["reload"]);
    assert!(out.contains("~ worker restarted (shell changed)"), "{out}");
    p.wait_new_pid("worker.pid", pids["worker"], secs(5));
}

#[test]
fn watch_false_in_the_config_turns_the_watcher_off() {
    let p = Project::new(secs(30));
    let config = format!("[runpm]\nwatch = false\n{BASE}{TICKER}");
    p.config(&config);
    let (_daemon, pids) = start(&p, &[]);
    p.save_atomically("services.toml", &worker_changed(&config));
    p.wait_growth("ticks", 20, secs(10));
    assert_pids_unchanged(&p, &pids, "a save with watch = false");
    p.ctl_ok(&["reload"]);
    p.wait_new_pid("worker.pid", pids["worker"], secs(5));
}

#[test]
fn sighup_reloads() {
    let p = Project::new(secs(30));
    p.config(BASE);
    let (daemon, pids) = start(&p, &["--no-watch"]);
    p.config(&worker_changed(BASE));
    daemon.send_signal(Signal::SIGHUP);
    let worker = p.wait_new_pid("worker.pid", pids["worker"], secs(10));
    assert_eq!(p.running_pid("worker", secs(5)), worker);
    assert!(daemon.is_alive(), "SIGHUP does not end the daemon");
    assert_eq!(running_pids(&p)["db"], pids["db"]);
    assert_eq!(running_pids(&p)["web"], pids["web"]);
    daemon.wait_for_log("SIGHUP", secs(5));
}

// ---------------------------------------------------------------------------------------------
// Security
// ---------------------------------------------------------------------------------------------

#[test]
fn a_symlink_at_the_socket_path_is_refused() {
    let p = Project::new(secs(30));
    p.config(BASE);
    let state = p.file(".runpm");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    let target = p.write("target", "keep me\n");
    std::os::unix::fs::symlink(&target, state.join("runpm.sock")).unwrap();

    let file = p.file("services.toml");
    for extra in [&[][..], &["-d"][..]] {
        let mut args = vec!["up", "-f", file.to_str().unwrap()];
        args.extend(extra);
        let out = p.run(&args, secs(10));
        // Whatever happened, no daemon may survive the test.
        let _guard = lock_holder(&p);
        assert_eq!(
            out.code(),
            Some(1),
            "`runpm {}`\n{}",
            args.join(" "),
            out.describe()
        );
        assert!(
            out.stderr.contains("symlink"),
            "the refusal should mention the symlink\n{}",
            out.describe()
        );
    }
    assert!(
        std::fs::symlink_metadata(state.join("runpm.sock"))
            .unwrap()
            .file_type()
            .is_symlink(),
        "the symlink is left as it was"
    );
    assert_eq!(p.read("target"), "keep me\n");
    assert!(processes_in(p.path()).is_empty(), "no service was started");
}

/// Kills whatever daemon holds the project's lock, when the guard drops.
fn lock_holder(p: &Project) -> Option<KillOnDrop> {
    let pid: i32 = p.read(".runpm/lock").trim().parse().ok()?;
    Some(KillOnDrop(pid))
}

struct KillOnDrop(i32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if is_alive(self.0) && comm(self.0).as_deref() == Some("runpm") {
            kill_tree(self.0);
        }
    }
}

#[test]
fn a_client_of_another_uid_is_refused() {
    if !need_root("it runs runpmctl as uid 65534 with setpriv")
        || !need_tool("setpriv", "util-linux")
    {
        return;
    }
    let p = Project::new(secs(30));
    p.config(BASE);
    // The other user must be able to run the client and reach the project directory (a
    // temporary directory is 0700); the state directory keeps its own protection.
    std::fs::set_permissions(p.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let client = p.file("bin/runpmctl");
    std::fs::create_dir_all(client.parent().unwrap()).unwrap();
    std::fs::copy(RUNPMCTL, &client).unwrap();
    std::fs::set_permissions(&client, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (daemon, pids) = start(&p, &[]);
    let socket = p.file(".runpm/runpm.sock");
    let as_nobody = || {
        run_to_end(p.program(
            "setpriv",
            [
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                client.to_str().unwrap(),
                "--socket",
                socket.to_str().unwrap(),
                "status",
            ],
        ))
    };

    // 1. The private directory and socket keep it out.
    let out = as_nobody();
    assert_ne!(out.code(), Some(0), "{}", out.describe());
    assert!(
        out.stdout.is_empty(),
        "no status for another user\n{}",
        out.describe()
    );

    // 2. With the file permissions loosened (a mistake, or a shared directory), the daemon
    //    still refuses the connection by its peer credentials, and logs the refusal.
    std::fs::set_permissions(p.file(".runpm"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = as_nobody();
    assert_ne!(out.code(), Some(0), "{}", out.describe());
    assert!(
        out.stdout.is_empty(),
        "no status for another user\n{}",
        out.describe()
    );
    assert!(
        out.stderr.contains("refused") && out.stderr.contains("65534"),
        "the client should say it was refused\n{}",
        out.describe()
    );
    let log = daemon.wait_for_log("refused a control connection", secs(5));
    let line = log
        .lines()
        .find(|l| l.contains("refused a control connection"))
        .unwrap();
    assert!(line.contains("65534"), "the log names the uid: {line}");

    // The owner is still served, and nothing changed.
    assert!(p.ctl_ok(&["status"]).contains("running"));
    assert_pids_unchanged(&p, &pids, "after a refused client");
}

/// Sends `bytes` on a fresh connection and returns the first reply line, parsed.
fn raw_exchange(socket: &Path, bytes: &[u8]) -> Value {
    let mut stream = UnixStream::connect(socket).expect("connect to the socket");
    stream.set_read_timeout(Some(secs(10))).unwrap();
    stream.set_write_timeout(Some(secs(10))).unwrap();
    // The daemon may close the connection before taking all of an oversized request: a
    // failed write is fine, the reply is what counts.
    let _ = stream.write_all(bytes);
    let mut line = String::new();
    BufReader::new(&stream)
        .read_line(&mut line)
        .expect("read a reply line");
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("the reply is not JSON ({e}): {line:?}"))
}

#[test]
fn hostile_input_gets_error_replies_and_the_daemon_keeps_serving() {
    let p = Project::new(secs(60));
    p.config(BASE);
    let (daemon, pids) = start(&p, &["--no-watch"]);
    let socket = p.file(".runpm/runpm.sock");

    // An idle connection that never says anything does not block anyone else.
    let _idle = UnixStream::connect(&socket).unwrap();

    let garbage: &[&[u8]] = &[
        b"garbage\n",
        b"\xff\xfe\x00\x01 binary\n",
        b"[1, 2, 3]\n",
        b"{\"id\": 1}\n",
        b"{\"id\": \"x\", \"cmd\": \"status\"}\n",
        b"{\"id\": 2, \"cmd\": \"frobnicate\"}\n",
        b"{\"id\": 3, \"cmd\": \"hello\", \"version\": 999}\n",
        b"{\"id\": 4, \"cmd\": \"status\"}\n",
        b"{\"id\": 5, \"cmd\": \"hello\", \"version\": 1, \"extra\": true}\n",
        b"{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{\n",
    ];
    for bytes in garbage {
        let reply = raw_exchange(&socket, bytes);
        assert_eq!(
            reply["ok"],
            false,
            "for {:?}: {reply}",
            String::from_utf8_lossy(bytes)
        );
        assert!(reply["error"]["message"].is_string(), "{reply}");
    }
    // The id of a well-formed but refused request is echoed.
    let reply = raw_exchange(&socket, b"{\"id\": 4, \"cmd\": \"status\"}\n");
    assert_eq!(reply["id"], 4, "{reply}");

    // After a good hello, a bad request gets an error with its id, on the same connection.
    let mut stream = UnixStream::connect(&socket).unwrap();
    stream.set_read_timeout(Some(secs(10))).unwrap();
    stream
        .write_all(b"{\"id\":1,\"cmd\":\"hello\",\"version\":1}\n{\"id\":7,\"cmd\":\"stop\",\"services\":\"web\"}\n{\"id\":8,\"cmd\":\"status\",\"services\":[\"web\"]}\n")
        .unwrap();
    let mut reader = BufReader::new(&stream);
    let mut replies = Vec::new();
    for _ in 0..3 {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        replies.push(serde_json::from_str::<Value>(&line).unwrap());
    }
    assert_eq!(replies[0]["ok"], true, "{replies:?}");
    assert_eq!(
        replies[0]["result"]["daemon_pid"],
        daemon.pid(),
        "{replies:?}"
    );
    assert_eq!(
        (replies[1]["id"].clone(), replies[1]["ok"].clone()),
        (Value::from(7), Value::from(false)),
        "{replies:?}"
    );
    assert_eq!(replies[2]["id"], 8, "{replies:?}");
    assert_eq!(
        replies[2]["result"]["services"][0]["name"], "web",
        "{replies:?}"
    );
    drop(reader);
    drop(stream);

    // Oversized: more than 64 KiB on one line, with and without its newline.
    let mut big = vec![b'a'; 70 * 1024];
    let reply = raw_exchange(&socket, &big);
    assert_eq!(reply["ok"], false, "{reply}");
    big.push(b'\n');
    let reply = raw_exchange(&socket, &big);
    assert_eq!(reply["ok"], false, "{reply}");
    let mut huge = b"{\"id\":1,\"cmd\":\"hello\",\"version\":1,\"pad\":\"".to_vec();
    huge.extend(std::iter::repeat_n(b'x', 1024 * 1024));
    let reply = raw_exchange(&socket, &huge);
    assert_eq!(reply["ok"], false, "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("65536"),
        "{reply}"
    );

    // A client that hangs up in the middle of a line.
    {
        let mut s = UnixStream::connect(&socket).unwrap();
        s.write_all(b"{\"id\":1,\"cmd\":\"hel").unwrap();
    }

    assert!(
        daemon.is_alive(),
        "the daemon survives hostile input\n{}",
        daemon.describe()
    );
    assert!(p.ctl_ok(&["status"]).contains("running"));
    assert_pids_unchanged(&p, &pids, "after hostile input");
}

// ---------------------------------------------------------------------------------------------
// Shutdown, discovery, places
// ---------------------------------------------------------------------------------------------

#[test]
fn shutdown_stops_everything_and_removes_the_socket() {
    let p = Project::new(secs(30));
    p.config(BASE);
    let (daemon, pids) = start(&p, &[]);
    let out = p.ctl_ok(&["shutdown", "--yes"]);
    assert!(
        out.contains(&format!("runpm (pid {}) shut down", daemon.pid())),
        "{out}"
    );
    for (name, pid) in &pids {
        assert!(
            wait_dead(*pid, secs(5)),
            "{name} (pid {pid}) should be stopped"
        );
    }
    assert!(
        daemon.wait_exit(secs(10)),
        "the daemon exits\n{}",
        daemon.describe()
    );
    assert!(
        std::fs::symlink_metadata(p.file(".runpm/runpm.sock")).is_err(),
        "the socket file is removed"
    );
    assert!(
        processes_in(p.path()).is_empty(),
        "{:?}",
        processes_in(p.path())
    );
    let log = daemon.log();
    for name in pids.keys() {
        assert!(log.contains(&format!("{name}: stopped")), "{log}");
    }
    let out = p.ctl(&["status"]);
    assert_eq!(out.code(), Some(3), "{}", out.describe());
    // The lock is free again: a new daemon can start.
    let (_again, _) = start(&p, &[]);
}

/// Found while writing these tests: when no service is running (all stopped by the
/// operator, or all exited), the daemon exits before its reply to `shutdown` is written, and
/// runpmctl reports "the daemon closed the connection before replying" with exit 1.
#[test]
fn shutdown_with_nothing_running_still_replies() {
    let p = Project::new(secs(30));
    p.config(&format!(
        "{BASE}\n[services.oneshot]\nshell = 'exit 0'\nrestart = 'never'\n"
    ));
    let (daemon, pids) = start_some(&p, &["db", "web", "worker"]);
    // One service ended on its own, the operator stopped the others.
    assert!(
        wait_for(secs(5), || p.statuses()["oneshot"] == "exited"),
        "{:?}",
        p.statuses()
    );
    p.ctl_ok(&["stop", "--all", "--yes"]);
    for pid in pids.values() {
        assert!(wait_dead(*pid, secs(5)));
    }
    assert!(
        p.pids().values().all(Option::is_none),
        "nothing runs: {:?}",
        p.statuses()
    );
    let out = p.ctl(&["shutdown", "--yes"]);
    assert!(
        daemon.wait_exit(secs(10)),
        "the daemon exits\n{}",
        daemon.describe()
    );
    assert_eq!(
        out.code(),
        Some(0),
        "`runpmctl shutdown --yes` with nothing running should succeed\n{}",
        out.describe()
    );
    assert!(out.stdout.contains("shut down"), "{}", out.describe());
}

#[test]
fn sigterm_stops_a_daemon_like_shutdown() {
    let p = Project::new(secs(30));
    p.config(&format!(
        "{BASE}\n[services.chatty]\nshell = 'echo hello from chatty; exec sleep 1000000'\n"
    ));
    let (daemon, pids) = start(&p, &[]);
    // A detached daemon's services write to their own log files, not to the daemon's.
    let line = wait_for_some(secs(5), || {
        let log = std::fs::read_to_string(p.file(".runpm/logs/chatty.log")).ok()?;
        log.lines()
            .find(|l| l.ends_with(" out hello from chatty"))
            .map(String::from)
    });
    assert!(
        line.is_some(),
        "chatty's log file has its line\n{}",
        daemon.describe()
    );
    assert!(
        !daemon.log().contains("hello from chatty"),
        "{}",
        daemon.log()
    );
    daemon.send_signal(Signal::SIGTERM);
    for (name, pid) in &pids {
        assert!(
            wait_dead(*pid, secs(5)),
            "{name} (pid {pid}) should be stopped"
        );
    }
    assert!(
        daemon.wait_exit(secs(10)),
        "the daemon exits\n{}",
        daemon.describe()
    );
    assert!(std::fs::symlink_metadata(p.file(".runpm/runpm.sock")).is_err());
    let log = daemon.log();
    assert!(log.contains("received SIGTERM"), "{log}");
    assert_eq!(p.ctl(&["status"]).code(), Some(3));
}

#[test]
fn runpmctl_finds_the_daemon_from_a_subdirectory_or_by_socket() {
    let p = Project::new(secs(30));
    p.config(BASE);
    let (_daemon, _pids) = start(&p, &[]);
    let deep = p.file("src/deeper");
    std::fs::create_dir_all(&deep).unwrap();

    let out = p.ctl_in(&deep, &["status"]);
    assert_eq!(
        out.code(),
        Some(0),
        "from a subdirectory\n{}",
        out.describe()
    );
    assert!(out.stdout.contains("worker"), "{}", out.describe());

    let elsewhere = tempfile::tempdir().unwrap();
    let socket = p.file(".runpm/runpm.sock");
    let out = p.ctl_in(
        elsewhere.path(),
        &["--socket", socket.to_str().unwrap(), "status"],
    );
    assert_eq!(out.code(), Some(0), "--socket\n{}", out.describe());
    assert!(out.stdout.contains("worker"), "{}", out.describe());

    let file = p.file("services.toml");
    let out = p.ctl_in(elsewhere.path(), &["-f", file.to_str().unwrap(), "status"]);
    assert_eq!(out.code(), Some(0), "-f\n{}", out.describe());

    let mut cmd = p.program(RUNPMCTL, ["status"]);
    cmd.current_dir(elsewhere.path())
        .env("RUNPM_SOCKET", &socket);
    let out = run_to_end(cmd);
    assert_eq!(out.code(), Some(0), "RUNPM_SOCKET\n{}", out.describe());
}

#[test]
fn a_long_state_dir_falls_back_to_a_short_socket_path() {
    let p = Project::new(secs(30));
    p.config(BASE);
    let long = p.file(&format!(
        "{}/state",
        "a-rather-long-directory-name/".repeat(4)
    ));
    assert!(long.join("runpm.sock").as_os_str().len() > 108);
    let long_str = long.to_str().unwrap();
    // (Not `start`: its status calls would look in `.runpm`.)
    let daemon = p.up_detached(&["--state-dir", long_str]);

    let socket = daemon.socket().to_owned();
    assert!(!socket.starts_with(&long), "{socket:?}");
    assert!(socket.as_os_str().len() <= 107, "{socket:?}");
    let meta = std::fs::symlink_metadata(&socket).expect("the fallback socket exists");
    assert!(meta.file_type().is_socket());
    assert_eq!(mode(&socket), 0o600);
    assert_eq!(mode(&long), 0o700);
    assert!(long.join("lock").exists() && long.join("runpm.log").exists());

    let out = p.ctl(&["--state-dir", long_str, "status"]);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert!(out.stdout.contains("worker"), "{}", out.describe());
    let mut cmd = p.program(RUNPMCTL, ["status"]);
    cmd.env("RUNPM_STATE_DIR", long_str);
    let out = run_to_end(cmd);
    assert_eq!(out.code(), Some(0), "RUNPM_STATE_DIR\n{}", out.describe());

    p.ctl_ok(&["--state-dir", long_str, "shutdown", "--yes"]);
    assert!(daemon.wait_exit(secs(10)));
    assert!(
        std::fs::symlink_metadata(&socket).is_err(),
        "the fallback socket is removed on shutdown"
    );
}

#[test]
fn a_state_dir_from_the_config_is_used_by_both() {
    let p = Project::new(secs(30));
    p.config(&format!("[runpm]\nstate_dir = \"run/state\"\n{BASE}"));
    let file = p.file("services.toml");
    let up = p.command(["up", "-d", "--no-watch", "-f", file.to_str().unwrap()]);
    let daemon = p.up_detached_with(up, &p.file("run/state"));
    assert_eq!(daemon.socket(), p.file("run/state/runpm.sock"));
    assert_eq!(mode(&p.file("run/state")), 0o700);
    assert!(!p.file(".runpm").exists());
    assert!(p.ctl_ok(&["status"]).contains("worker"));
}

#[test]
fn up_detached_reports_a_daemon_that_dies_before_it_is_ready() {
    let p = Project::new(secs(30));
    p.config(BASE);
    // Something that is not a socket where the socket goes: the daemon refuses to start.
    std::fs::create_dir_all(p.file(".runpm/runpm.sock")).unwrap();
    let done = p.run(&["up", "-d", "--no-watch"], secs(20));
    assert_eq!(done.code(), Some(1), "{done:?}");
    assert!(
        done.stderr.contains("exited before it was ready")
            && done.stderr.contains("is not a socket"),
        "the error and the end of the daemon log: {done:?}"
    );
    assert!(!p.file("db.pid").exists(), "no service started: {done:?}");
    // The lock died with the daemon: once the path is cleared, the next `up -d` runs.
    std::fs::remove_dir(p.file(".runpm/runpm.sock")).unwrap();
    let (_daemon, pids) = start(&p, &[]);
    assert_eq!(pids.len(), 3);
}
