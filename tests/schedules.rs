//! Scheduled services (`interval`, `schedule`) with real processes: each run appends a line
//! (`start` / `end` and a timestamp) to a file, and the tests wait for lines, never for time.
//! Overlap policies are told apart by the shape of those lines; catch-up after a restart of
//! the daemon by the last run's time in state.json.

mod common;

use std::time::{Duration, SystemTime};

use common::*;

/// A run that appends `start NS`, sleeps `secs`, then appends `end NS`.
fn job(file: &str, secs: f64) -> String {
    format!(
        "echo \\\"start $(date +%s%N)\\\" >> {file}; sleep {secs}; echo \\\"end $(date +%s%N)\\\" >> {file}"
    )
}

fn starts(p: &Project, file: &str) -> Vec<u128> {
    p.lines(file)
        .iter()
        .filter_map(|l| l.strip_prefix("start ")?.trim().parse().ok())
        .collect()
}

/// Whether every `start` is followed by its `end` before the next `start`: no two runs at
/// once.
fn alternates(lines: &[String]) -> bool {
    let mut open = false;
    for line in lines {
        if line.starts_with("start") {
            if open {
                return false;
            }
            open = true;
        } else if line.starts_with("end") {
            open = false;
        }
    }
    true
}

#[test]
fn an_interval_service_runs_every_interval_and_waits_in_between() {
    let p = Project::new(Duration::from_secs(60));
    p.config(&format!(
        "[services.tick]\nshell = \"{}\"\ninterval = \"400ms\"\n",
        job("runs", 0.0)
    ));
    let up_at = SystemTime::now();
    let _d = p.up_detached(&[]);
    // `up -d` does not wait for a scheduled service's first run; it waits between runs.
    let s = p.wait_status("tick", "waiting", secs(10));
    assert!(s["next_run"].is_string(), "{s}");
    p.wait_lines("runs", 8, secs(20));
    let starts = starts(&p, "runs");
    assert!(starts.len() >= 4, "{starts:?}");
    // Never more often than the interval (run_on_start is off: the first one too).
    let first_after = starts[0]
        - up_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
    assert!(
        first_after >= 350_000_000,
        "first run {first_after}ns after up"
    );
    for pair in starts.windows(2) {
        assert!(
            pair[1] - pair[0] >= 350_000_000,
            "runs {}ms apart: {starts:?}",
            (pair[1] - pair[0]) / 1_000_000
        );
    }
    // Between runs, with good runs behind it, it passes `status --check`.
    p.ctl_ok(&["status", "--check"]);
    let table = p.ctl_ok(&["status"]);
    assert!(
        table.contains("tick") && table.contains("waiting") && table.contains("next run in"),
        "{table}"
    );
}

#[test]
fn skip_leaves_out_runs_while_one_is_going() {
    let p = Project::new(Duration::from_secs(60));
    p.config(&format!(
        "[services.slow]\nshell = \"{}\"\ninterval = \"100ms\"\n",
        job("runs", 0.5)
    ));
    let _d = p.up_detached(&[]);
    let lines = p.wait_lines("runs", 6, secs(20));
    assert!(alternates(&lines), "two runs at once: {lines:?}");
}

#[test]
fn queue_runs_the_waiting_run_when_the_previous_one_ends() {
    let p = Project::new(Duration::from_secs(60));
    p.config(&format!(
        "[services.slow]\nshell = \"{}\"\ninterval = \"100ms\"\noverlap = \"queue\"\n",
        job("runs", 0.5)
    ));
    let d = p.up_detached(&[]);
    let lines = p.wait_lines("runs", 6, secs(20));
    assert!(alternates(&lines), "two runs at once: {lines:?}");
    d.wait_for_log("waits for the previous one to end", secs(10));
    d.wait_for_log("running the queued one", secs(10));
}

#[test]
fn kill_stops_the_previous_run_for_the_next() {
    let p = Project::new(Duration::from_secs(60));
    p.config(&format!(
        "[services.slow]\nshell = \"{}\"\ninterval = \"300ms\"\noverlap = \"kill\"\nkill_timeout = \"1s\"\n",
        job("runs", 30.0)
    ));
    let _d = p.up_detached(&[]);
    assert!(
        wait_for(secs(20), || starts(&p, "runs").len() >= 3),
        "{:?}",
        p.lines("runs")
    );
    let lines = p.lines("runs");
    // Every run was stopped before it could end on its own.
    assert!(lines.iter().all(|l| l.starts_with("start")), "{lines:?}");
    let exits = p.service("slow")["exits"].clone();
    assert!(exits.to_string().contains("stopped"), "{exits}");
}

#[test]
fn start_runs_it_now_and_catch_up_runs_a_missed_run_after_a_restart() {
    let p = Project::new(Duration::from_secs(90));
    let config = format!(
        "[services.nightly]\nshell = \"{}\"\nschedule = \"0 3 * * *\"\ntimezone = \"UTC\"\ncatch_up = true\n\n\
         [services.plain]\nshell = \"{}\"\nschedule = \"0 3 * * *\"\ntimezone = \"UTC\"\n",
        job("nightly", 0.0),
        job("plain", 0.0)
    );
    p.config(&config);
    let first = p.up_detached(&[]);
    p.wait_status("nightly", "waiting", secs(10));
    assert!(!p.file("nightly").exists(), "no run before its time");
    // `start` runs it now, and replies once the run is done.
    p.ctl_ok(&["start", "nightly", "plain"]);
    assert_eq!(starts(&p, "nightly").len(), 1);
    assert_eq!(starts(&p, "plain").len(), 1);
    assert_eq!(p.service("nightly")["status"], "waiting");
    p.ctl_ok(&["shutdown", "--yes"]);
    assert!(first.wait_exit(secs(20)), "the daemon ends");

    // Pretend the last runs were two days ago: 03:00 came while runpm was down.
    let path = p.file(".runpm/state.json");
    let mut state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let two_days_ago = SystemTime::now() - Duration::from_secs(2 * 24 * 3600);
    let stamp = humantime::format_rfc3339_millis(two_days_ago).to_string();
    for record in state["services"].as_array_mut().unwrap() {
        assert!(
            record["last_run"].is_string(),
            "last_run recorded: {record}"
        );
        record["last_run"] = serde_json::Value::String(stamp.clone());
    }
    std::fs::write(&path, serde_json::to_string_pretty(&state).unwrap()).unwrap();

    let d = p.up_detached(&[]);
    p.wait_lines("nightly", 4, secs(20));
    assert_eq!(starts(&p, "nightly").len(), 2, "the missed run ran once");
    d.wait_for_log("was missed while runpm was down", secs(10));
    p.wait_status("nightly", "waiting", secs(10));
    // Without catch_up the missed run is not made up.
    assert_eq!(starts(&p, "plain").len(), 1);
}

#[test]
fn a_bad_schedule_is_a_config_error_with_its_position() {
    let p = Project::new(Duration::from_secs(30));
    p.config(
        "[services.a]\ncmd = [\"true\"]\nschedule = \"*/5 * *\"\n\n\
         [services.b]\ncmd = [\"true\"]\ninterval = \"1m\"\ntimezone = \"Mars/Olympus\"\n\n\
         [services.c]\ncmd = [\"true\"]\nschedule = \"0 9 * * *\"\ntimezone = \"Mars/Olympus\"\n\n\
         [services.d]\ncmd = [\"true\"]\ninterval = \"1m\"\nrestart = \"always\"\n",
    );
    let out = p.run(&["validate", "-f", "services.toml"], secs(10));
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    for needle in [
        "services.toml:3:1: service `a`: `*/5 * *` has 3 fields",
        "services.toml:8:1: service `b`: `timezone` goes with `schedule`",
        "services.toml:13:1: service `c`: unknown time zone `Mars/Olympus`",
        "services.toml:18:1: service `d`: `restart = \"always\"` would run",
    ] {
        assert!(out.stderr.contains(needle), "{needle}\n{}", out.describe());
    }
}
