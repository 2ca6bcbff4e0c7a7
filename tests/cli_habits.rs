//! The command line people bring from docker compose, systemctl and pm2 (issue 12):
//! `status --check` for scripts and container health checks, `--json` where scripts read,
//! `ps`, `kill`, `runpm down`, `logs` without a daemon, `--since`, `-n` per service,
//! lifecycle lines in `logs -f`, and colours that follow NO_COLOR / CLICOLOR_FORCE.

mod common;

use std::time::SystemTime;

use common::*;
use serde_json::Value;

/// A service that prints a numbered line every 50 ms.
const COUNTER: &str = r#"shell = "i=0; while true; do i=$((i+1)); echo line $i; sleep 0.05; done""#;

fn json(out: &Finished) -> Value {
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON: {e}\n{}", out.describe()))
}

fn names(status: &Value) -> Vec<String> {
    status["services"]
        .as_array()
        .expect("a services list")
        .iter()
        .map(|s| s["name"].as_str().expect("a name").to_owned())
        .collect()
}

#[test]
fn status_check_passes_running_services_and_completed_tasks_and_names_the_rest() {
    let p = Project::new(secs(60));
    p.config(&format!(
        r#"
[services.web]
{COUNTER}

[services.task]
shell = "echo done"
restart = "never"

[services.broken]
shell = "echo oops; exit 3"
restart = "never"

[services.optional]
cmd = ["sleep", "1000"]
autostart = false
"#
    ));
    let d = p.up_detached_failing(&[]);
    assert!(
        wait_for(secs(10), || {
            let s = p.statuses();
            s["web"] == "running" && s["task"] == "exited" && s["broken"] == "exited"
        }),
        "{}",
        d.describe()
    );

    // Everything that should run: broken is not well; optional (autostart = false) is not
    // expected to run, so it is not checked.
    let all = p.ctl(&["status", "--check"]);
    assert_eq!(all.code(), Some(1), "{}", all.describe());
    assert_eq!(
        all.stdout,
        "broken: exited (last exit: code 3)\n",
        "{}",
        all.describe()
    );
    assert!(all.stderr.contains("1 of 3 services"), "{}", all.describe());

    // Named: a running service and a completed task pass; `ps` is `status`.
    let good = p.ctl(&["ps", "--check", "web", "task"]);
    assert_eq!(good.code(), Some(0), "{}", good.describe());
    assert_eq!(good.stdout, "ok: 2 services running or completed\n");
    let named = p.ctl(&["status", "--check", "optional"]);
    assert_eq!(named.code(), Some(1), "{}", named.describe());
    assert_eq!(named.stdout, "optional: stopped\n");

    let checked = p.ctl(&["status", "--check", "--json"]);
    assert_eq!(checked.code(), Some(1), "{}", checked.describe());
    let value = json(&checked);
    assert_eq!(value["ok"], Value::Bool(false));
    assert_eq!(names(&value), ["broken", "task", "web"]);

    // What an operator stops is no longer expected to run.
    p.ctl_ok(&["stop", "broken"]);
    let after = p.ctl(&["status", "--check"]);
    assert_eq!(after.code(), Some(0), "{}", after.describe());

    // No daemon: exit 3, as for every runpmctl command.
    p.ctl_ok(&["shutdown", "--yes"]);
    assert_eq!(p.ctl(&["status", "--check"]).code(), Some(3));
}

/// The Dockerfile's HEALTHCHECK command, run as docker would inside the example container
/// (PID namespace, the image's RUNPM_FILE), is healthy once the example's services run.
#[test]
fn the_example_images_healthcheck_reports_healthy() {
    if !need_pid1() {
        return;
    }
    let example = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/container");
    let dockerfile = std::fs::read_to_string(example.join("Dockerfile")).expect("Dockerfile");
    let healthcheck = dockerfile
        .split("HEALTHCHECK")
        .nth(1)
        .and_then(|rest| rest.split("CMD ").nth(1))
        .and_then(|rest| rest.lines().next())
        .expect("a HEALTHCHECK ... CMD [...] in the Dockerfile");
    let argv: Vec<String> = serde_json::from_str(healthcheck.trim()).expect("CMD in exec form");
    assert_eq!(argv[..3], ["runpmctl", "status", "--check"]);

    let p = Project::new(secs(60));
    let state = p.file("state");
    let config = example.join("services.toml");
    let mut unshare = Runpm::start(p.as_pid1([
        "up".as_ref(),
        "-f".as_ref(),
        config.as_os_str(),
        "--state-dir".as_ref(),
        state.as_os_str(),
    ]));
    let check = || {
        let mut cmd = p.program(RUNPMCTL, &argv[1..]);
        cmd.env("RUNPM_FILE", &config)
            .env("RUNPM_STATE_DIR", &state);
        run_to_end(cmd)
    };
    let mut last = None;
    let healthy = wait_for(secs(20), || {
        let out = check();
        let ok = out.code() == Some(0);
        last = Some(out);
        ok
    });
    let last = last.expect("the check ran");
    assert!(healthy, "{}\n{}", last.describe(), unshare.describe());
    assert!(last.stdout.starts_with("ok: "), "{}", last.describe());
    let runpm = unshare.unshared_runpm_pid(secs(5));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(runpm),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("signal runpm");
    unshare.assert_exit_code(secs(10), 0);
}

#[test]
fn json_on_every_command_a_script_reads() {
    let p = Project::new(secs(60));
    p.config(&format!(
        "[services.web]\n{COUNTER}\n\n[services.worker]\n{COUNTER}\n"
    ));
    let d = p.up_detached(&[]);

    let restarted = json(&p.ctl(&["restart", "web", "--json"]));
    assert_eq!(names(&restarted), ["web"]);
    assert_eq!(restarted["services"][0]["status"], "running");
    let stopped = json(&p.ctl(&["stop", "worker", "--json"]));
    assert_eq!(stopped["services"][0]["status"], "stopped");
    assert_eq!(stopped["services"][0]["wanted"], "down");
    let started = json(&p.ctl(&["start", "worker", "--json"]));
    assert_eq!(started["services"][0]["status"], "running");
    assert!(started["services"][0]["pid"].is_i64());

    let saved = json(&p.ctl(&["save", "--json"]));
    let path = saved["path"].as_str().expect("a path");
    assert!(std::path::Path::new(path).is_file(), "{saved}");
    let resurrected = json(&p.ctl(&["resurrect", "--json"]));
    assert_eq!(resurrected["unchanged"], 2, "{resurrected}");

    // An error is JSON too, and still exits 1.
    let unknown = p.ctl(&["restart", "nope", "--json"]);
    assert_eq!(unknown.code(), Some(1), "{}", unknown.describe());
    assert_eq!(json(&unknown)["error"]["kind"], "unknown_service");
    let typo = p.ctl(&["restart", "wrokre"]);
    assert_eq!(typo.code(), Some(1), "{}", typo.describe());
    assert!(
        typo.stderr
            .contains("no service named `wrokre` (did you mean `worker`? services: web, worker)"),
        "{}",
        typo.describe()
    );

    let shutdown = p.ctl(&["shutdown", "--yes", "--json"]);
    assert_eq!(shutdown.code(), Some(0), "{}", shutdown.describe());
    let value = json(&shutdown);
    assert_eq!(value["shut_down"], true);
    assert_eq!(value["daemon_pid"], d.pid());
    assert!(!is_alive(d.pid()));
}

#[test]
fn validate_json_lists_each_error_with_its_position() {
    let p = Project::new(secs(30));
    p.config("[services.web]\ncmd = [\"true\"]\n");
    let ok = p.run(&["validate", "--json"], secs(10));
    assert_eq!(ok.code(), Some(0), "{}", ok.describe());
    let value = json(&ok);
    assert_eq!(value["ok"], true);
    assert_eq!(value["services"], 1);

    // Keys users bring from docker compose get their names here.
    p.config(
        "[services.web]\ncommand = \"python3 app.py\"\n\n[services.db]\ncmd = \"redis-server\"\n",
    );
    let bad = p.run(&["validate", "--json"], secs(10));
    assert_eq!(bad.code(), Some(1), "{}", bad.describe());
    let value = json(&bad);
    assert_eq!(value["ok"], false);
    let errors = value["errors"].as_array().expect("errors");
    let find = |service: &str| {
        errors
            .iter()
            .find(|e| e["service"] == service)
            .unwrap_or_else(|| panic!("no error for {service}: {value}"))
    };
    let web = find("web");
    assert_eq!(
        (web["line"].as_u64(), web["column"].as_u64()),
        (Some(2), Some(1))
    );
    assert!(web["file"].as_str().unwrap().ends_with("services.toml"));
    assert!(
        web["message"].as_str().unwrap().contains("use `cmd = ["),
        "{web}"
    );
    let db = find("db");
    assert_eq!(db["line"].as_u64(), Some(5));
    assert!(
        db["message"].as_str().unwrap().contains("write `shell"),
        "{db}"
    );
}

#[test]
fn kill_signals_the_main_process_or_its_group() {
    let p = Project::new(secs(60));
    p.config(
        r#"
[services.web]
shell = "sleep 1000 & echo $! > child; trap 'echo got >> usr1' USR1; while true; do sleep 0.05; done"

[services.off]
cmd = ["sleep", "1000"]
autostart = false
"#,
    );
    let _d = p.up_detached(&[]);
    let pid = p.running_pid("web", secs(10));
    let child = p.read_pid("child", secs(10));

    // The main process only: its trap runs, its child lives on, nothing restarts.
    let out = p.ctl(&["kill", "-s", "USR1", "web"]);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert_eq!(out.stdout, format!("web: SIGUSR1 sent to pid {pid}\n"));
    p.wait_lines("usr1", 1, secs(10));
    assert!(is_alive(child));
    assert_eq!(p.pids()["web"], Some(pid));

    // The group: the child (no handler) dies of it, the main process traps it again.
    let out = p.ctl(&["kill", "--signal", "sigusr1", "--group", "web"]);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert!(wait_dead(child, secs(10)), "the group's child survived");
    p.wait_lines("usr1", 2, secs(10));
    assert_eq!(p.pids()["web"], Some(pid));

    // Refusals: a typo gets a hint (usage, exit 2), a service without a process exit 1.
    let typo = p.ctl(&["kill", "-s", "HUPP", "web"]);
    assert_eq!(typo.code(), Some(2), "{}", typo.describe());
    assert!(
        typo.stderr.contains("did you mean `HUP`"),
        "{}",
        typo.describe()
    );
    let idle = p.ctl(&["kill", "off"]);
    assert_eq!(idle.code(), Some(1), "{}", idle.describe());
    assert!(
        idle.stderr.contains("no process to signal: off (stopped)"),
        "{}",
        idle.describe()
    );

    // SIGTERM by default: the service ends and its restart policy (always) brings it back.
    p.ctl_ok(&["kill", "web"]);
    let restarted = wait_for(secs(10), || {
        p.pids()["web"].is_some_and(|new| new != pid) && !is_alive(pid)
    });
    assert!(
        restarted,
        "web was not restarted after SIGTERM: {:?}",
        p.pids()
    );
}

#[test]
fn down_stops_the_project_and_succeeds_when_nothing_runs() {
    let p = Project::new(secs(60));
    p.config(&format!("[services.web]\n{COUNTER}\n"));
    let d = p.up_detached(&[]);
    let web = p.running_pid("web", secs(10));

    let down = p.run(&["down"], secs(30));
    assert_eq!(down.code(), Some(0), "{}", down.describe());
    assert!(down.stdout.contains("exited"), "{}", down.describe());
    // It returns once the daemon is gone, with its services.
    assert!(
        !is_alive(d.pid()),
        "the daemon is still alive after `runpm down`"
    );
    assert!(!is_alive(web), "web is still alive after `runpm down`");

    let again = p.run(&["down"], secs(10));
    assert_eq!(again.code(), Some(0), "{}", again.describe());
    assert!(
        again.stdout.contains("nothing is running"),
        "{}",
        again.describe()
    );
}

#[test]
fn logs_count_per_service_keep_one_width_and_read_files_without_a_daemon() {
    let p = Project::new(secs(60));
    p.config(&format!(
        "[services.a]\n{COUNTER}\n\n[services.longer-name]\n{COUNTER}\n\n\
         [services.quiet]\ncmd = [\"sleep\", \"1000\"]\n"
    ));
    let _d = p.up_detached(&[]);
    assert!(wait_for(secs(10), || p.log_file("a").len() >= 5
        && p.log_file("longer-name").len() >= 5));

    let per_service = |out: &str, name: &str| {
        out.lines()
            .filter(|l| l.starts_with(&format!("{name:11} | ")))
            .count()
    };
    let out = p.ctl_ok(&["logs", "-n", "3"]);
    assert_eq!(per_service(&out, "a"), 3, "{out}");
    assert_eq!(per_service(&out, "longer-name"), 3, "{out}");

    // `--since` in the future: nothing yet; a minute ago: more than the default 10.
    assert_eq!(p.ctl_ok(&["logs", "--since", "2999-01-01T00:00:00Z"]), "");
    assert!(wait_for(secs(10), || p.log_file("a").len() >= 12));
    let recent = p.ctl_ok(&["logs", "a", "--since", "1m"]);
    assert!(recent.lines().count() >= 12, "{recent}");
    assert!(recent.lines().all(|l| l.starts_with("a | ")), "{recent}");

    p.ctl_ok(&["shutdown", "--yes"]);
    let last_a = p.log_file("a").last().cloned().expect("a logged");
    let last_text = last_a.split_once(" out ").expect("a record").1.to_owned();
    let offline = p.ctl(&["logs", "-n", "1"]);
    assert_eq!(offline.code(), Some(0), "{}", offline.describe());
    assert_eq!(offline.stdout.lines().count(), 2, "{}", offline.describe());
    assert!(
        offline
            .stdout
            .contains(&format!("a           | {last_text}\n")),
        "{}",
        offline.describe()
    );
    // A service that never printed has no file and no lines; other unknown names are still
    // errors, with the names that have files.
    assert_eq!(p.ctl_ok(&["logs", "quiet"]), "");
    let unknown = p.ctl(&["logs", "nope"]);
    assert_eq!(unknown.code(), Some(1), "{}", unknown.describe());
    assert!(
        unknown.stderr.contains("a, longer-name"),
        "{}",
        unknown.describe()
    );
    let since = humantime::format_rfc3339(SystemTime::now()).to_string();
    assert_eq!(p.ctl_ok(&["logs", "--since", &since]), "");
}

#[test]
fn logs_follow_shows_runpms_lifecycle_lines_of_the_followed_services() {
    let p = Project::new(secs(60));
    let config = |x: &str| {
        format!(
            "[services.worker]\n{COUNTER}\nenv = {{ X = \"{x}\" }}\n\n[services.other]\n{COUNTER}\n"
        )
    };
    p.config(&config("1"));
    let _d = p.up_detached(&["--no-watch"]);
    p.running_pid("worker", secs(10));
    let follow = Runpm::start(p.program(RUNPMCTL, ["logs", "-f", "-n", "0", "worker"]));
    follow.wait_for_output("worker | line", secs(10));

    // The tour's reload, seen where the user is looking.
    p.config(&config("2"));
    p.ctl_ok(&["reload"]);
    follow.wait_for_output("[runpm] worker restarted (env changed)", secs(10));
    follow.wait_for_output("[runpm] worker started (pid", secs(10));
    p.ctl_ok(&["restart", "other"]);
    p.ctl_ok(&["restart", "worker"]);
    follow.wait_for_output("[runpm] worker restarted (restart requested)", secs(10));
    let out = follow.stdout();
    assert!(
        !out.contains("other"),
        "lines about other reached its non-follower: {out}"
    );
}

#[test]
fn colours_follow_clicolor_force_and_no_color() {
    let p = Project::new(secs(60));
    p.config(&format!("[services.web]\n{COUNTER}\n"));
    let _d = p.up_detached(&[]);
    p.running_pid("web", secs(10));
    let status = |env: &[(&str, &str)]| {
        let mut cmd = p.program(RUNPMCTL, ["status"]);
        cmd.env_remove("NO_COLOR");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = run_to_end(cmd);
        assert_eq!(out.code(), Some(0), "{}", out.describe());
        out.stdout
    };
    // Not a terminal: plain, unless forced.
    assert!(!status(&[]).contains('\u{1b}'));
    let forced = status(&[("CLICOLOR_FORCE", "1")]);
    assert!(forced.contains("\u{1b}[32mrunning\u{1b}[0m"), "{forced:?}");
    // An empty NO_COLOR is unset (no-color.org); a set one wins.
    assert!(status(&[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "")]).contains('\u{1b}'));
    assert!(!status(&[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")]).contains('\u{1b}'));
}
