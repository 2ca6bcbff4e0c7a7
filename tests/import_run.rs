//! `runpm import` run for real: the compose and process-compose fixtures
//! (tests/fixtures/import/run) start under runpm, become ready in dependency order and stop;
//! and `runpmctl export systemd` followed by `runpm import` gives back a config that means the
//! same (the resolved specs, loaded through the library, are equal).

mod common;

use std::path::Path;

use common::*;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/import/run");

fn import_ok(p: &Project, args: &[&str]) -> Finished {
    let mut all = vec!["import"];
    all.extend(args);
    let out = p.run(&all, COMMAND_LIMIT);
    assert_eq!(
        out.code(),
        Some(0),
        "runpm {}\n{}",
        all.join(" "),
        out.describe()
    );
    out
}

/// Imports `fixture` into services.toml, runs it with `up -d`, and returns the daemon once
/// every service runs or completed.
fn import_and_start(p: &Project, fixture: &str) -> Daemon {
    std::fs::copy(Path::new(FIXTURES).join(fixture), p.file(fixture)).unwrap();
    import_ok(p, &[fixture, "-o", "services.toml"]);
    let validate = p.run(&["validate", "-f", "services.toml"], COMMAND_LIMIT);
    assert_eq!(validate.code(), Some(0), "{}", validate.describe());
    p.up_detached(&[])
}

fn stop(p: &Project, daemon: &Daemon) {
    p.ctl_ok(&["shutdown", "--yes"]);
    assert!(
        daemon.wait_exit(secs(20)),
        "runpm did not stop\n{}",
        daemon.describe()
    );
}

#[test]
fn an_imported_compose_file_runs_in_dependency_order() {
    if !need_tool("python3", "python3") {
        return;
    }
    let p = Project::new(secs(90));
    let daemon = import_and_start(&p, "compose.yaml");
    let statuses = p.statuses();
    assert_eq!(statuses["db"], "running", "{statuses:?}");
    assert_eq!(statuses["web"], "running", "{statuses:?}");
    assert_eq!(statuses["migrate"], "exited", "{statuses:?}");
    // web checked, as it started, that db answered and that migrate had written its file
    // (web has no readiness check of its own: it counts as running once spawned).
    let expected = "db was healthy and migrate had completed\n";
    assert!(
        wait_for(secs(10), || p.read("web-saw-deps.txt") == expected),
        "web did not see its dependencies: {:?}\n{}",
        p.read("web-saw-deps.txt"),
        daemon.describe()
    );
    assert_eq!(p.read("migrated.txt"), "migrated\n");
    // Had it started before db was healthy, or before migrate completed, it would have said
    // so here (and been restarted until it could).
    assert_eq!(p.read("web-too-early.txt"), "");
    stop(&p, &daemon);
}

#[test]
fn an_imported_process_compose_file_runs_in_dependency_order() {
    if !need_tool("python3", "python3") {
        return;
    }
    let p = Project::new(secs(90));
    let daemon = import_and_start(&p, "process-compose.yaml");
    let statuses = p.statuses();
    assert_eq!(statuses["api"], "running", "{statuses:?}");
    // Ready by its log line, after api's readiness probe passed.
    assert_eq!(statuses["worker"], "running", "{statuses:?}");
    assert_eq!(statuses["setup"], "exited", "{statuses:?}");
    // `disabled: true`: defined, not started.
    assert_eq!(statuses["later"], "stopped", "{statuses:?}");
    assert_eq!(
        p.read("worker-saw-deps.txt"),
        "api was ready and setup had completed\n"
    );
    assert_eq!(p.read("worker-too-early.txt"), "");
    stop(&p, &daemon);
}

/// A config that uses everything `runpmctl export systemd` can say. Programs are absolute,
/// since the export makes them so.
const ROUND_TRIP: &str = r#"
[services.db]
cmd = ["/bin/sleep", "1000"]
cwd = "data"
env = { GREETING = "hello \"world\"", PERCENT = "100%", DOLLAR = "$HOME", SPACES = "a  b" }
env_file = "db.env"
ready = { notify = true }
ready_timeout = "45s"
watchdog = "20s"
restart = "always"
restart_delay = "200ms"
restart_delay_max = "10s"
max_restarts = 7
restart_window = "2m"
stop_signal = "SIGINT"
kill_timeout = "3s"
kill_mode = "process"
user = "root"

[services.migrate]
shell = "echo \"migrating $HOME\" > /dev/null; exit 0"
restart = "on-failure"
restart_delay = "1s"
restart_delay_max = "1s"

[services.seed]
cmd = ["/bin/echo", "100%", "$HOME", "it's"]
restart = "never"

[services.web]
cmd = ["/usr/bin/python3", "-m", "http.server", "--bind", "127.0.0.1", "8000"]
depends_on = { db = "ready", migrate = "completed", seed = "ready" }
ready = { exec = ["/bin/sh", "-c", "test -e /proc/self"] }
success_exit_codes = [0, 3]
autostart = false
"#;

#[test]
fn export_systemd_then_import_keeps_the_meaning() {
    let p = Project::new(secs(60));
    p.config(ROUND_TRIP);
    p.write("db.env", "TOKEN=abc\n");
    std::fs::create_dir_all(p.file("data")).unwrap();
    let export = p.ctl(&[
        "-f",
        "services.toml",
        "export",
        "systemd",
        "--out",
        "units",
        "--prefix",
        "",
        "--no-target",
        "--systemd-version",
        "254",
    ]);
    assert_eq!(export.code(), Some(0), "{}", export.describe());
    let mut units: Vec<String> = std::fs::read_dir(p.file("units"))
        .unwrap()
        .map(|e| format!("units/{}", e.unwrap().file_name().to_string_lossy()))
        .collect();
    units.sort();
    let mut args: Vec<&str> = units.iter().map(String::as_str).collect();
    args.extend(["-o", "back.toml"]);
    import_ok(&p, &args);

    let load = |file: &str| {
        let path = camino::Utf8PathBuf::from_path_buf(p.file(file)).unwrap();
        runpm::config::load(&path).unwrap_or_else(|e| panic!("{file}: {e}\n{}", p.read(file)))
    };
    let original = load("services.toml");
    let imported = load("back.toml");
    assert_eq!(
        original.services.keys().collect::<Vec<_>>(),
        imported.services.keys().collect::<Vec<_>>()
    );
    for (name, spec) in &original.services {
        assert_eq!(
            spec,
            &imported.services[name],
            "service `{name}` changed meaning through export and import\n{}",
            p.read("back.toml")
        );
    }
}
