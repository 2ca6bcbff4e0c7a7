//! `runpm up -d` tells the truth: it returns once every service runs, completed, failed or
//! gave up, exits 1 naming those that failed or gave up (the daemon keeps running, as
//! `docker compose up --wait` leaves its containers), and shows progress on a terminal.

mod common;

use common::*;

/// One of each way to fail, and one service that works.
const MIXED: &str = r#"
# Crash loop: every run fails at once; the third failure gives up.
[services.crashy]
shell = 'exit 1'
restart = "on-failure"
restart_delay = "10ms"
max_restarts = 2

# Never ready: readiness times out.
[services.sluggish]
cmd = ["sleep", "1000"]
ready = { exec = ["false"] }
ready_timeout = "500ms"
restart = "never"
kill_timeout = "1s"

# Waits for a dependency that failed (it never became ready).
[services.dependent]
cmd = ["sleep", "1000"]
depends_on = ["sluggish"]

[services.fine]
shell = 'echo $$ > fine.pid; exec sleep 1000'
"#;

fn up_d(p: &Project) -> std::process::Command {
    p.up_command(&["-d"])
}

#[test]
fn all_running_or_completed_exits_zero() {
    let p = Project::new(secs(30));
    p.config(
        r#"
[services.web]
cmd = ["sleep", "1000"]
ready = { exec = ["true"] }

[services.migrate]
shell = 'echo migrated > migrated.out'
restart = "never"

[services.app]
cmd = ["sleep", "1000"]
depends_on = ["web"]
"#,
    );
    let daemon = p.up_detached(&[]);
    assert!(
        daemon.up.stdout.contains("running in the background"),
        "{}",
        daemon.describe()
    );
    assert!(
        !daemon.up.stderr.contains("did not start"),
        "{}",
        daemon.describe()
    );
    assert_eq!(p.read("migrated.out").trim(), "migrated");
    let statuses = p.statuses();
    assert_eq!(statuses["web"], "running");
    assert_eq!(statuses["app"], "running");
    assert_eq!(statuses["migrate"], "exited");
}

#[test]
fn failed_and_stuck_services_make_it_exit_one_naming_them() {
    let p = Project::new(secs(60));
    let _strays = p.stray_guard();
    p.config(MIXED);
    let up = run_to_end(up_d(&p));
    assert_eq!(up.code(), Some(1), "{}", up.describe());
    // The daemon runs on, and says how to reach it.
    assert!(
        up.stdout.contains("running in the background"),
        "{}",
        up.describe()
    );
    let summary = up
        .stderr
        .lines()
        .find(|l| l.contains("did not start"))
        .unwrap_or_else(|| panic!("no summary\n{}", up.describe()));
    assert!(summary.contains("3 of 4 services"), "{summary}");
    assert!(summary.contains("crashy (failed:"), "{summary}");
    assert!(
        summary.contains("sluggish (failed: not ready within 500ms"),
        "{summary}"
    );
    assert!(
        summary.contains(
            "dependent (gave up: waiting for sluggish, which failed (not ready within 500ms"
        ),
        "{summary}"
    );
    assert!(!summary.contains("fine"), "{summary}");
    // Not a terminal: the summary only, no progress lines.
    assert!(!up.stderr.contains("  fine: running"), "{}", up.describe());

    // What it reported is what status says.
    let statuses = p.statuses();
    assert_eq!(statuses["fine"], "running");
    assert_eq!(statuses["crashy"], "failed");
    assert_eq!(statuses["sluggish"], "failed");
    assert_eq!(statuses["dependent"], "starting");
    p.ctl_ok(&["shutdown", "--yes"]);
}

#[test]
fn progress_shows_on_a_terminal() {
    if !on_path("script") {
        panic!("`script` (Debian's bsdutils) is needed to give runpm a terminal");
    }
    let p = Project::new(secs(60));
    let _strays = p.stray_guard();
    p.config(MIXED);
    let file = p.file("services.toml");
    // `script` runs the command on a pseudo-terminal and copies what it prints; its exit
    // status is the command's (-e).
    let line = format!("{RUNPM} up -f '{}' -d", file.display());
    let up = run_to_end(p.program("script", ["-qec", &line, "/dev/null"]));
    assert_eq!(up.code(), Some(1), "{}", up.describe());
    for progress in [
        "fine: running",
        "crashy: failed",
        "sluggish: failed: not ready within 500ms",
        "dependent: gave up",
    ] {
        assert!(
            up.stdout.contains(progress),
            "{progress}\n{}",
            up.describe()
        );
    }
    p.ctl_ok(&["shutdown", "--yes"]);
}
