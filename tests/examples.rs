//! The shipped examples and unit files, run the way their comments and the README say:
//! `examples/quickstart` (the README's first command), `examples/stack` (redis with sd_notify
//! readiness, a web app, a worker and a one-shot task) in both its forms, `units/runpm.service`
//! (checked with `systemd-analyze verify`), and `runpm validate` on every example and unit
//! directory.
//!
//! The examples listen on fixed ports (8000, 8090, 6390). The tests that run them take a
//! machine-wide lock (`flock` on a file in the temp directory), so that they never race each
//! other, also across test processes and checkouts; when a port is taken by something else,
//! the test runs a temporary copy of the example with free ports instead.
//!
//! The stack needs `redis-server`, `redis-cli` (Debian's redis-server package) and `python3`;
//! the unit check needs `systemd-analyze` (Debian's systemd package). `.ci/run` installs them.
//! When they are missing the tests fail with a message saying so, unless
//! `RUNPM_SKIP_SYSTEM_PACKAGES=1` asks to skip them: no silent skips.

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::Value;

/// The repository root.
fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Holds the machine-wide lock of the tests that use the examples' fixed ports.
fn ports_lock() -> Flock<File> {
    let path = std::env::temp_dir().join("runpm-example-ports.lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("open {path:?}: {e}"));
    Flock::lock(file, FlockArg::LockExclusive)
        .unwrap_or_else(|(_, e)| panic!("flock {path:?}: {e}"))
}

fn port_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local address").port()
}

/// Copies the directory `rel` of the repository to the same relative place under `dest`,
/// replacing every `(from, to)` in the text of each file.
fn copy_example(rel: &str, dest: &Path, replace: &[(String, String)]) {
    fn copy(src: &Path, dst: &Path, replace: &[(String, String)]) {
        std::fs::create_dir_all(dst).unwrap_or_else(|e| panic!("mkdir {dst:?}: {e}"));
        for entry in std::fs::read_dir(src).unwrap_or_else(|e| panic!("read {src:?}: {e}")) {
            let entry = entry.expect("directory entry");
            let (from, to) = (entry.path(), dst.join(entry.file_name()));
            if entry.file_type().expect("file type").is_dir() {
                copy(&from, &to, replace);
                continue;
            }
            let mut text =
                std::fs::read_to_string(&from).unwrap_or_else(|e| panic!("read {from:?}: {e}"));
            for (a, b) in replace {
                text = text.replace(a.as_str(), b);
            }
            std::fs::write(&to, text).unwrap_or_else(|e| panic!("write {to:?}: {e}"));
        }
    }
    copy(&repo().join(rel), &dest.join(rel), replace);
}

/// Where to run an example: in place when its `ports` are free, else a copy under the
/// project (same relative layout, so unit directories still find `../../examples/…`) with
/// each busy port replaced by a free one. Returns the root to resolve `rel` paths against and
/// the port map (each of `ports` to the one in use).
fn placement(p: &Project, dirs: &[&str], ports: &[u16]) -> (PathBuf, Vec<(u16, u16)>) {
    if ports.iter().all(|&port| port_free(port)) {
        return (repo(), ports.iter().map(|&port| (port, port)).collect());
    }
    let map: Vec<(u16, u16)> = ports.iter().map(|&port| (port, free_port())).collect();
    eprintln!("ports {ports:?} are busy: running a copy of {dirs:?} with ports {map:?}");
    let replace: Vec<(String, String)> = map
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    for dir in dirs {
        copy_example(dir, p.path(), &replace);
    }
    (p.path().to_owned(), map)
}

/// `GET path` on 127.0.0.1:`port` (HTTP/1.0, one connection); the status code and the body.
fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(secs(5)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    Ok((code, body))
}

/// Retries `GET path` until it answers 200 (the server may still be starting).
fn http_get_ok(port: u16, path: &str, timeout: Duration) -> String {
    let mut last = None;
    let body = wait_for_some(timeout, || match http_get(port, path) {
        Ok((200, body)) => Some(body),
        other => {
            last = Some(other);
            None
        }
    });
    body.unwrap_or_else(|| panic!("GET :{port}{path} did not answer 200 in {timeout:?}: {last:?}"))
}

/// `runpmctl -f CONFIG --state-dir STATE ARGS…`, run to completion.
fn ctl(p: &Project, config: &Path, state: &Path, args: &[&str]) -> Finished {
    let mut all = vec![
        "-f".to_owned(),
        config.display().to_string(),
        "--state-dir".to_owned(),
        state.display().to_string(),
    ];
    all.extend(args.iter().map(|a| a.to_string()));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    p.ctl(&all)
}

/// `status --json` of the daemon for `config`, by service name.
fn statuses(p: &Project, config: &Path, state: &Path) -> std::collections::BTreeMap<String, Value> {
    let out = ctl(p, config, state, &["status", "--json"]);
    assert_eq!(out.code(), Some(0), "status --json\n{}", out.describe());
    let json: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("status --json is not JSON ({e}): {}", out.stdout));
    services_by_name(&json)
}

/// Waits until every service is in the wanted status; returns the last `status --json`.
fn wait_statuses(
    p: &Project,
    config: &Path,
    state: &Path,
    want: &[(&str, &str)],
    daemon: &Daemon,
) -> std::collections::BTreeMap<String, Value> {
    let mut last = Default::default();
    let ok = wait_for(secs(20), || {
        last = statuses(p, config, state);
        want.iter()
            .all(|(name, status)| last.get(*name).is_some_and(|s| s["status"] == *status))
    });
    assert!(
        ok,
        "expected {want:?}, have {:?}\n{}",
        last.iter()
            .map(|(n, s)| format!("{n}: {}", s["status"]))
            .collect::<Vec<_>>(),
        daemon.describe()
    );
    last
}

/// The position of the first line of `log` that contains `needle`.
fn line_of(log: &str, needle: &str) -> usize {
    log.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{log}"))
}

// ---------------------------------------------------------------------------------------------
// runpm validate on everything shipped
// ---------------------------------------------------------------------------------------------

#[test]
fn every_example_and_unit_directory_validates() {
    let p = Project::new(secs(30));
    let mut configs: Vec<PathBuf> = Vec::new();
    for entry in std::fs::read_dir(repo().join("examples")).expect("examples/") {
        let dir = entry.expect("entry").path();
        if dir.join("services.toml").is_file() {
            configs.push(dir.join("services.toml"));
        }
    }
    for entry in std::fs::read_dir(repo().join("units")).expect("units/") {
        let dir = entry.expect("entry").path();
        if dir.is_dir() {
            configs.push(dir);
        }
    }
    configs.sort();
    let names: Vec<String> = configs
        .iter()
        .map(|c| {
            c.strip_prefix(repo())
                .expect("in the repository")
                .display()
                .to_string()
        })
        .collect();
    for expected in [
        "examples/container/services.toml",
        "examples/quickstart/services.toml",
        "examples/stack/services.toml",
        "units/quickstart",
        "units/stack",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} is missing from {names:?}"
        );
    }
    for (config, name) in configs.iter().zip(&names) {
        let out = p.run(
            &["validate", "-f", config.to_str().expect("UTF-8 path")],
            secs(10),
        );
        assert_eq!(
            out.code(),
            Some(0),
            "`runpm validate -f {name}` should pass\n{out:?}"
        );
        assert!(out.stdout.starts_with("ok: "), "{name}: {out:?}");
    }
}

/// The file and directory forms of the stack describe the same services.
#[test]
fn stack_unit_directory_has_the_same_services_as_the_file() {
    let mut units: Vec<String> = std::fs::read_dir(repo().join("units/stack"))
        .expect("units/stack")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter_map(|n| n.strip_suffix(".toml").map(str::to_owned))
        .filter(|n| n != "runpm")
        .collect();
    units.sort();
    let text = std::fs::read_to_string(repo().join("examples/stack/services.toml"))
        .expect("examples/stack/services.toml");
    let table: toml::Table = text.parse().expect("examples/stack/services.toml is TOML");
    let services: Vec<String> = table["services"]
        .as_table()
        .expect("[services]")
        .keys()
        .cloned()
        .collect();
    assert_eq!(units, services);
    for name in &services {
        let unit: toml::Table =
            std::fs::read_to_string(repo().join(format!("units/stack/{name}.toml")))
                .expect("unit file")
                .parse()
                .expect("unit file is TOML");
        let mut service = table["services"][name.as_str()]
            .as_table()
            .expect("service table")
            .clone();
        // The unit directory runs the example's scripts from their directory.
        let mut unit = unit;
        if unit.remove("cwd").is_some() {
            assert!(!service.contains_key("cwd"));
        }
        service.remove("cwd");
        assert_eq!(
            unit, service,
            "units/stack/{name}.toml differs from the file form"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// examples/quickstart: the README's first command
// ---------------------------------------------------------------------------------------------

#[test]
fn quickstart_serves_http_and_stops_on_ctrl_c() {
    if !need_tools(&["python3"], "python3") {
        return;
    }
    let p = Project::new(secs(60));
    let _lock = ports_lock();
    let (root, ports) = placement(&p, &["examples/quickstart"], &[8000]);
    let port = ports[0].1;
    let config = root.join("examples/quickstart/services.toml");
    let state = p.file("state");
    let mut runpm = Runpm::start(p.command([
        "up".as_ref(),
        "-f".as_ref(),
        config.as_os_str(),
        "--state-dir".as_ref(),
        state.as_os_str(),
    ]));

    runpm.wait_for_event("migrate", "exited with code 0", secs(10));
    runpm.wait_for_event("web", "started", secs(10));
    let page = http_get_ok(port, "/", secs(15));
    assert!(
        page.contains("Hello from runpm"),
        "the quickstart site is served from examples/quickstart/site: {page}"
    );
    runpm.wait_for_output("processing job 1 from queue default", secs(10));
    runpm.wait_for_output("database is up to date", secs(1));

    // Ctrl-C in a terminal: SIGINT to the foreground process group (runpm's; its services
    // run in their own sessions and do not get it).
    killpg(Pid::from_raw(runpm.pid()), Signal::SIGINT).expect("SIGINT to runpm's group");
    runpm.assert_exit_code(secs(15), 0);
    let err = runpm.stderr();
    let at = |name: &str, word: &str| {
        event_index(&err, name, word)
            .unwrap_or_else(|| panic!("no `{name}` event with {word:?}\n{err}"))
    };
    assert!(
        at("worker", "stopped") < at("web", "stopping"),
        "worker (which depends on web) is stopped before web\n{err}"
    );
    assert!(port_free(port), "the web server is gone after Ctrl-C");
}

// ---------------------------------------------------------------------------------------------
// examples/stack and units/stack: redis (sd_notify) + web + worker + seed
// ---------------------------------------------------------------------------------------------

const STACK_PROGRAMS: &[&str] = &["redis-server", "redis-cli", "python3"];

/// Runs the stack at `config` (`examples/stack/services.toml` or `units/stack`) detached and
/// checks it as a user would; `root` and `ports` come from [`placement`].
fn run_stack(p: &Project, config: &Path, ports: &[(u16, u16)]) {
    let redis_port = ports[0].1;
    let web_port = ports[1].1;
    let state = p.file("state");
    let up = p.command([
        "up".as_ref(),
        "-d".as_ref(),
        "-f".as_ref(),
        config.as_os_str(),
        "--state-dir".as_ref(),
        state.as_os_str(),
    ]);
    let daemon = p.up_detached_with(up, &state);

    let status = wait_statuses(
        p,
        config,
        &state,
        &[
            ("redis", "running"),
            ("web", "running"),
            ("worker", "running"),
            ("seed", "exited"),
        ],
        &daemon,
    );
    let seed_exit = &status["seed"]["exits"][0];
    assert_eq!(seed_exit["code"], 0, "seed succeeded: {seed_exit}");

    // redis is `running` only through READY=1: its readiness is `notify`, and the STATUS=
    // it sent with READY=1 is what status shows.
    assert_eq!(
        status["redis"]["status_text"],
        "Ready to accept connections",
        "redis's sd_notify STATUS= reached runpm\n{}",
        daemon.describe()
    );
    let log = daemon.log();
    assert!(
        log.contains("redis: started") && log.contains("waiting until it is ready"),
        "redis waits for readiness\n{log}"
    );
    // Start order: web and seed only after redis is ready; worker only after web is ready.
    let redis_ready = line_of(&log, "redis: ready after");
    assert!(line_of(&log, "web: started") > redis_ready, "{log}");
    assert!(line_of(&log, "seed: started") > redis_ready, "{log}");
    assert!(
        line_of(&log, "worker: started") > line_of(&log, "web: ready after"),
        "{log}"
    );

    // The web app counts visits in redis.
    let hits = |body: &str| -> u64 {
        body.trim()
            .strip_prefix("hits: ")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unexpected answer {body:?}"))
    };
    let first = hits(&http_get_ok(web_port, "/", secs(5)));
    let second = hits(&http_get_ok(web_port, "/", secs(5)));
    assert_eq!(second, first + 1, "each GET / increments the counter");
    let (code, body) = http_get(web_port, "/enqueue?job=from-the-test").expect("GET /enqueue");
    assert_eq!(code, 202, "{body}");

    // The worker processes the seeded jobs and the one just queued: `runpmctl logs -f worker`.
    let mut args: Vec<String> = vec![
        "-f".into(),
        config.display().to_string(),
        "--state-dir".into(),
        state.display().to_string(),
    ];
    args.extend(["logs", "-f", "-n", "100", "worker"].map(String::from));
    let logs = Runpm::start(p.program(RUNPMCTL, &args));
    for job in [
        "resize-avatar",
        "send-welcome-email",
        "build-report",
        "from-the-test",
    ] {
        logs.wait_for_output(&format!("worker | processed job {job}"), secs(10));
    }
    drop(logs);

    // The counters live in redis on the example's port.
    let out = Command::new("redis-cli")
        .args(["-p", &redis_port.to_string(), "GET", "processed"])
        .output()
        .expect("redis-cli");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "4");

    // Shut down: worker first, redis last, and nothing left listening.
    let out = ctl(p, config, &state, &["shutdown", "--yes"]);
    assert_eq!(out.code(), Some(0), "shutdown\n{}", out.describe());
    assert!(
        daemon.wait_exit(secs(10)),
        "the daemon is gone after shutdown"
    );
    let log = daemon.log();
    let worker = line_of(&log, "worker: stopped");
    let web = line_of(&log, "web: stopped");
    let redis = line_of(&log, "redis: stopped");
    assert!(
        worker < web && web < redis,
        "stopped in reverse order\n{log}"
    );
    assert!(
        wait_for(secs(5), || port_free(web_port) && port_free(redis_port)),
        "web and redis are gone"
    );
}

#[test]
fn stack_runs_with_notify_readiness_and_shuts_down() {
    if !need_tools(STACK_PROGRAMS, "redis-server python3") {
        return;
    }
    let p = Project::new(secs(90));
    let _lock = ports_lock();
    let (root, ports) = placement(&p, &["examples/stack"], &[6390, 8090]);
    run_stack(&p, &root.join("examples/stack/services.toml"), &ports);
    let stray = root.join("examples/stack/__pycache__");
    assert!(!stray.exists(), "the example leaves no {stray:?} behind");
}

#[test]
fn stack_unit_directory_runs_from_its_own_directory() {
    if !need_tools(STACK_PROGRAMS, "redis-server python3") {
        return;
    }
    let p = Project::new(secs(90));
    let _lock = ports_lock();
    let (root, ports) = placement(&p, &["units/stack", "examples/stack"], &[6390, 8090]);
    // Run from elsewhere: the units' `cwd = "../../examples/stack"` resolves against the unit
    // directory, not against runpm's working directory.
    run_stack(&p, &root.join("units/stack"), &ports);
}

// ---------------------------------------------------------------------------------------------
// units/runpm.service
// ---------------------------------------------------------------------------------------------

#[test]
fn runpm_service_passes_systemd_analyze_verify() {
    if !need_tools(&["systemd-analyze"], "systemd") {
        return;
    }
    let p = Project::new(secs(60));
    let unit =
        std::fs::read_to_string(repo().join("units/runpm.service")).expect("units/runpm.service");
    for line in [
        "Type=notify",
        "NotifyAccess=main",
        "ExecStart=/usr/local/bin/runpm up -f /etc/runpm/services.toml",
        // Synchronous: `systemctl reload` fails on an invalid config (issue 12).
        "ExecReload=/usr/local/bin/runpmctl -f /etc/runpm/services.toml reload",
        "StateDirectory=runpm",
        "LogsDirectory=runpm",
        "KillMode=mixed",
        "Restart=on-failure",
    ] {
        assert!(
            unit.lines().any(|l| l.trim() == line),
            "units/runpm.service should have `{line}`"
        );
    }
    // systemd's stop timeout is above runpm's default shutdown_timeout (30 s).
    let stop: u64 = unit
        .lines()
        .find_map(|l| l.trim().strip_prefix("TimeoutStopSec="))
        .and_then(|v| v.trim_end_matches('s').parse().ok())
        .expect("TimeoutStopSec=Ns");
    assert!(stop > 30, "TimeoutStopSec={stop}s should exceed 30 s");

    // verify checks that ExecStart's binary exists: point it at the one under test.
    let copy = unit.replace("/usr/local/bin/runpm", RUNPM);
    let path = p.write("runpm.service", &copy);
    let out = run_to_end({
        let mut cmd = p.program("systemd-analyze", ["verify", "--man=no"]);
        cmd.arg(&path);
        cmd
    });
    let complaints: Vec<&str> = out
        .stdout
        .lines()
        .chain(out.stderr.lines())
        .filter(|l| l.contains("runpm.service"))
        .collect();
    assert!(
        out.code() == Some(0) && complaints.is_empty(),
        "systemd-analyze verify found problems in units/runpm.service:\n{}",
        out.describe()
    );
}

/// What `Type=notify` in units/runpm.service relies on: started with `NOTIFY_SOCKET` (as
/// systemd starts it), runpm sends `READY=1` once its services are up, and `STOPPING=1` when
/// SIGTERM (`systemctl stop`) begins its shutdown; then it exits 0.
#[test]
fn runpm_tells_its_service_manager_ready_and_stopping() {
    use std::os::unix::net::UnixDatagram;

    let p = Project::new(secs(30));
    p.config(
        r#"
[services.slow]
shell = 'exec sleep 1000000'
ready = { exec = ["test", "-f", "go"] }

[services.after]
shell = 'exec sleep 1000000'
depends_on = ["slow"]
"#,
    );
    let socket_path = p.file("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind the manager's socket");
    socket
        .set_read_timeout(Some(ms(200)))
        .expect("read timeout");
    let received = std::cell::RefCell::new(Vec::<String>::new());
    let drain = || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = socket.recv(&mut buf) {
            received
                .borrow_mut()
                .push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    };
    let said = |what: &str| {
        received
            .borrow()
            .iter()
            .any(|m| m.lines().any(|l| l == what))
    };

    let file = p.file("services.toml");
    let mut cmd = p.command(["up".as_ref(), "-f".as_ref(), file.as_os_str()]);
    cmd.env("NOTIFY_SOCKET", &socket_path);
    let mut runpm = Runpm::start(cmd);

    // Not ready while a service is still starting.
    runpm.wait_for_event("slow", "started", secs(10));
    drain();
    assert!(
        !said("READY=1"),
        "READY=1 before the services are up: {:?}",
        received.borrow()
    );
    p.write("go", "");
    runpm.wait_for_event("after", "started", secs(10));
    assert!(
        wait_for(secs(10), || {
            drain();
            said("READY=1")
        }),
        "no READY=1 once the services were up: {:?}\n{}",
        received.borrow(),
        runpm.describe()
    );

    runpm.send_signal(Signal::SIGTERM);
    runpm.assert_exit_code(secs(10), 0);
    drain();
    assert!(
        said("STOPPING=1"),
        "no STOPPING=1 on SIGTERM: {:?}",
        received.borrow()
    );
}

// ---------------------------------------------------------------------------------------------
// Bugs found while writing the examples
// ---------------------------------------------------------------------------------------------

/// `runpmctl logs NAME` (without -f) should print the recent lines and exit. It prints them,
/// then waits until the daemon closes the idle connection (60 s): the client keeps reading
/// replies after the one a non-following request gets.
#[test]
fn runpmctl_logs_without_follow_exits_after_printing() {
    let p = Project::new(secs(60));
    p.config(
        r#"
[services.chatty]
shell = 'echo first line; echo second line; exec sleep 1000'
"#,
    );
    let _daemon = p.up_detached(&[]);
    p.running_pid("chatty", secs(10));
    let started = Instant::now();
    let mut logs = Runpm::start(p.program(RUNPMCTL, ["logs", "chatty"]));
    logs.wait_for_output("chatty | second line", secs(10));
    let exited = wait_for(secs(10), || !logs.is_running());
    assert!(
        exited,
        "`runpmctl logs chatty` printed the lines but had not exited after {:?}\n{}",
        started.elapsed(),
        logs.describe()
    );
    assert_eq!(
        logs.wait_exit(secs(1)).code(),
        Some(0),
        "{}",
        logs.describe()
    );
}

// ---------------------------------------------------------------------------------------------
// The README
// ---------------------------------------------------------------------------------------------

/// Every relative link of the README (`[text](path)`) names a file or directory of the
/// repository. The manual pages are written on their own; their links are checked once
/// `man/` exists.
#[test]
fn readme_links_point_at_files_that_exist() {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    let mut checked = 0;
    for (i, _) in readme.match_indices("](") {
        let rest = &readme[i + 2..];
        let Some(end) = rest.find(')') else { continue };
        let target = &rest[..end];
        if target.starts_with("http") || target.starts_with('#') || target.contains(' ') {
            continue;
        }
        let path = target.split('#').next().unwrap_or(target);
        if path.starts_with("man/") && !repo().join("man").exists() {
            continue;
        }
        assert!(
            repo().join(path).exists(),
            "README.md links to {target}, which does not exist"
        );
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} relative links found");
    for example in [
        "examples/stack/",
        "examples/container/",
        "units/runpm.service",
    ] {
        assert!(
            readme.contains(example),
            "README.md should mention {example}"
        );
    }
}
