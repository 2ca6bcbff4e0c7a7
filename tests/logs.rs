//! Logs and crash reports from a user's side: the files under `.runpm/logs/`, their
//! rotation, `runpmctl logs` (with `-n` and `-f`), output that is not nice text, the exit
//! history with the last lines of a crashed run, and runpm's own events in the daemon log.
//!
//! Services print what the test asks for, when the test says so (they wait for a file `go`),
//! so a line "printed after the follower started" really is.

mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime};

use common::*;
use nix::sys::signal::Signal;
use serde_json::Value;

/// A shell snippet that waits until the test creates `go`.
const WAIT_FOR_GO: &str = "while [ ! -f go ]; do sleep 0.02; done";

/// The longest line runpm keeps whole; longer ones arrive in pieces of this size.
const MAX_LINE: usize = 16 * 1024;

/// Starts `runpm up` in the foreground and waits until its control socket answers.
fn up(p: &Project) -> Runpm {
    let runpm = p.up(&["--no-watch"]);
    p.wait_socket(secs(10));
    runpm
}

/// Waits until `.runpm/logs/NAME.log` has a record whose line is `line`; returns the
/// file's lines.
fn wait_logged(p: &Project, name: &str, line: &str, timeout: Duration) -> Vec<String> {
    let mut records = Vec::new();
    let found = wait_for(timeout, || {
        records = p.log_file(name);
        records
            .iter()
            .any(|r| parse_record(r).is_some_and(|(_, _, l)| l == line))
    });
    assert!(
        found,
        "{name}.log did not get {line:?} within {timeout:?}: {records:#?}"
    );
    records
}

/// `runpmctl logs ARGS…`, which must answer at once and succeed; returns its stdout.
fn logs_ok(p: &Project, args: &[&str]) -> String {
    let mut all = vec!["logs"];
    all.extend_from_slice(args);
    let out = p.ctl_within(&all, secs(5));
    assert_eq!(
        out.code(),
        Some(0),
        "`runpmctl {}` should succeed\n{}",
        all.join(" "),
        out.describe()
    );
    out.stdout
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {path:?}: {e}"))
        .permissions()
        .mode()
        & 0o777
}

// ---------------------------------------------------------------------------------------------
// Log files
// ---------------------------------------------------------------------------------------------

#[test]
fn each_line_goes_to_the_log_file_with_its_time_and_stream() {
    let p = Project::new(secs(30));
    p.config(
        r#"
[services.writer]
shell = 'echo "to stdout"; echo "to stderr" >&2; echo "  spaced  out "; exec sleep 1000000'
"#,
    );
    let before = SystemTime::now() - secs(1);
    let runpm = up(&p);
    let records = wait_logged(&p, "writer", "  spaced  out ", secs(10));
    let after = SystemTime::now() + secs(1);
    wait_logged(&p, "writer", "to stderr", secs(10));
    let records = if records.len() < 3 {
        p.log_file("writer")
    } else {
        records
    };

    let mut seen = BTreeSet::new();
    for record in &records {
        // `2026-11-22T03:45:12.345Z out LINE`
        let stamp = record.split(' ').next().unwrap();
        assert_eq!(stamp.len(), 24, "an RFC 3339 time in ms, UTC: {record:?}");
        assert!(stamp.ends_with('Z'), "{record:?}");
        let (at, marker, line) =
            parse_record(record).unwrap_or_else(|| panic!("not `TIME out|err LINE`: {record:?}"));
        assert!(
            at >= before && at <= after,
            "the time is now-ish: {record:?}"
        );
        seen.insert((marker.to_owned(), line.to_owned()));
    }
    let expected: BTreeSet<(String, String)> = [
        ("out", "to stdout"),
        ("err", "to stderr"),
        ("out", "  spaced  out "),
    ]
    .into_iter()
    .map(|(m, l)| (m.to_owned(), l.to_owned()))
    .collect();
    assert_eq!(seen, expected, "{records:#?}");

    // Private, like the rest of the state directory.
    assert_eq!(mode(&p.file(".runpm/logs")), 0o700);
    assert_eq!(
        mode(&p.file(".runpm/logs/writer.log")) & 0o077,
        0,
        "the log file is not readable by others"
    );
    // The console of `runpm up` shows them too.
    runpm.wait_for_output("writer | to stdout", secs(5));
    runpm.wait_for_output("writer | to stderr", secs(5));
}

#[test]
fn rotation_keeps_the_configured_number_of_files() {
    let p = Project::new(secs(30));
    p.config(
        r#"
[services.spammer]
shell = 'i=0; while [ $i -lt 300 ]; do i=$((i+1)); echo "line $i of the spammer, padded to be a bit longer"; done; echo finished; exec sleep 1000000'
log_max_size = "1KB"
log_keep = 2
"#,
    );
    let _runpm = up(&p);
    wait_logged(&p, "spammer", "finished", secs(10));

    let names: BTreeSet<String> = std::fs::read_dir(p.file(".runpm/logs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let expected: BTreeSet<String> = ["spammer.log", "spammer.log.1", "spammer.log.2"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(
        names, expected,
        "the current file and log_keep = 2 old ones"
    );

    // Each file stays within log_max_size, and together, oldest first, they are the end of
    // the output without a gap.
    let mut all = Vec::new();
    for file in ["spammer.log.2", "spammer.log.1", "spammer.log"] {
        let path = p.file(&format!(".runpm/logs/{file}"));
        let size = std::fs::metadata(&path).unwrap().len();
        assert!(size <= 1000, "{file} is {size} bytes, over log_max_size");
        let text = std::fs::read_to_string(&path).unwrap();
        for record in text.lines() {
            let (_, marker, line) =
                parse_record(record).unwrap_or_else(|| panic!("{file}: {record:?}"));
            assert_eq!(marker, "out");
            all.push(line.to_owned());
        }
        if file != "spammer.log" {
            assert!(size > 900, "{file} was rotated when full, at {size} bytes");
        }
    }
    assert_eq!(all.last().map(String::as_str), Some("finished"));
    let numbers: Vec<u32> = all[..all.len() - 1]
        .iter()
        .map(|l| {
            l.strip_prefix("line ")
                .and_then(|r| r.split(' ').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("unexpected line {l:?}"))
        })
        .collect();
    let first = numbers[0];
    let expected: Vec<u32> = (first..=300).collect();
    assert_eq!(numbers, expected, "consecutive lines up to the last one");
}

// ---------------------------------------------------------------------------------------------
// runpmctl logs
// ---------------------------------------------------------------------------------------------

#[test]
fn logs_n_prints_the_last_lines_of_the_named_services() {
    let p = Project::new(secs(30));
    p.config(
        r#"
[services.counter]
shell = 'for i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo "count $i"; done; exec sleep 1000000'

[services.other]
shell = 'echo "not mine"; exec sleep 1000000'
"#,
    );
    let _runpm = up(&p);
    wait_logged(&p, "counter", "count 12", secs(10));
    wait_logged(&p, "other", "not mine", secs(10));

    let out = logs_ok(&p, &["counter", "-n", "5"]);
    let expected: Vec<String> = (8..=12).map(|i| format!("counter | count {i}")).collect();
    assert_eq!(out.lines().collect::<Vec<_>>(), expected, "{out}");

    // Several services: merged, each line prefixed with its service's padded name.
    let out = logs_ok(&p, &["counter", "other", "-n", "100"]);
    assert!(out.contains("other   | not mine\n"), "{out}");
    assert!(out.contains("counter | count 1\n"), "{out}");
    assert_eq!(out.lines().count(), 13, "{out}");

    // With -t, each line says when it was printed.
    let out = logs_ok(&p, &["counter", "-n", "1", "-t"]);
    let (stamp, rest) = out.trim_end().split_once(' ').unwrap();
    parse_time(stamp);
    assert_eq!(rest, "counter | count 12", "{out}");
}

#[test]
fn logs_follow_receives_lines_printed_after_it_started_and_stops_on_sigint() {
    let p = Project::new(secs(30));
    p.config(&format!(
        r#"
[services.chatty]
shell = 'echo "before the follower"; {WAIT_FOR_GO}; echo "after the follower started"; echo "and to stderr" >&2; exec sleep 1000000'

[services.quiet]
shell = 'echo "quiet line"; {WAIT_FOR_GO}; echo "quiet again"; exec sleep 1000000'
"#
    ));
    let runpm = up(&p);
    wait_logged(&p, "chatty", "before the follower", secs(10));
    wait_logged(&p, "quiet", "quiet line", secs(10));

    let mut follower = p.ctl_spawn(&["logs", "-f", "chatty"]);
    follower.wait_for_output("chatty | before the follower\n", secs(10));

    p.write("go", "");
    follower.wait_for_output("chatty | after the follower started\n", secs(10));
    follower.wait_for_output("chatty | and to stderr\n", secs(10));
    wait_logged(&p, "quiet", "quiet again", secs(10));
    follower.assert_running("it follows until interrupted");
    assert!(
        !follower.stdout().contains("quiet"),
        "only the named service: {}",
        follower.stdout()
    );

    follower.send_signal(Signal::SIGINT);
    let status = follower.wait_exit(secs(5));
    use std::os::unix::process::ExitStatusExt;
    assert!(
        matches!(status.code(), Some(0 | 130)) || status.signal() == Some(Signal::SIGINT as i32),
        "Ctrl-C ends `logs -f` like any command: {status}"
    );
    assert_eq!(follower.stderr(), "", "no error on Ctrl-C");

    // The daemon is unharmed and serves the next follower.
    let next = p.ctl_spawn(&["logs", "-f", "-n", "1", "chatty"]);
    next.wait_for_output("chatty | and to stderr\n", secs(10));
    assert_eq!(next.stdout(), "chatty | and to stderr\n");
    assert!(!runpm.stderr().contains("panic"), "{}", runpm.describe());
}

#[test]
fn a_huge_line_and_binary_output_do_not_break_the_stream() {
    let p = Project::new(secs(30));
    // 100 KiB without a newline, then bytes that are not UTF-8 (and a NUL), then text.
    p.config(&format!(
        r#"
[services.noisy]
shell = 'echo "first"; {WAIT_FOR_GO}; head -c 102400 /dev/zero | tr "\0" x; printf "\n"; printf "\377\376\000\001bin\n"; echo "after the noise"; exec sleep 1000000'
"#
    ));
    let runpm = up(&p);
    wait_logged(&p, "noisy", "first", secs(10));
    let mut follower = p.ctl_spawn(&["logs", "-f", "noisy"]);
    follower.wait_for_output("noisy | first\n", secs(10));

    p.write("go", "");
    follower.wait_for_output("noisy | after the noise\n", secs(10));
    follower.assert_running("still following");
    runpm.wait_for_output("noisy | after the noise", secs(10));
    let records = wait_logged(&p, "noisy", "after the noise", secs(10));

    // The long line arrives in bounded pieces, nothing lost.
    let pieces = |lines: Vec<String>| -> Vec<usize> {
        lines
            .iter()
            .filter(|l| !l.is_empty() && l.bytes().all(|b| b == b'x'))
            .map(String::len)
            .collect()
    };
    let streamed: Vec<String> = follower
        .stdout()
        .lines()
        .filter_map(|l| l.strip_prefix("noisy | ").map(str::to_owned))
        .collect();
    let filed: Vec<String> = records
        .iter()
        .filter_map(|r| parse_record(r).map(|(_, _, l)| l.to_owned()))
        .collect();
    for (what, lines) in [("logs -f", streamed.clone()), ("noisy.log", filed.clone())] {
        let sizes = pieces(lines.clone());
        assert_eq!(sizes.iter().sum::<usize>(), 102_400, "{what}: {sizes:?}");
        assert!(sizes.iter().all(|&n| n <= MAX_LINE), "{what}: {sizes:?}");
        // The binary line is there, its bad bytes replaced, the rest kept.
        assert!(
            lines
                .iter()
                .any(|l| l.contains('\u{fffd}') && l.ends_with("bin")),
            "{what}: no line with the replaced binary bytes"
        );
    }
    assert_eq!(filed.last().map(String::as_str), Some("after the noise"));
    // A new follower's history ends with it, too.
    let next = p.ctl_spawn(&["logs", "-f", "-n", "1", "noisy"]);
    next.wait_for_output("noisy | after the noise\n", secs(10));
    assert_eq!(next.stdout(), "noisy | after the noise\n");
}

#[test]
fn a_log_name_cannot_escape_the_log_directory() {
    let p = Project::new(secs(30));
    for name in ["../x", "..", "a/b", "../../etc/passwd", ".hidden"] {
        p.config(&format!(
            "[services.\"{name}\"]\nshell = 'echo escaped; exec sleep 1000000'\n"
        ));
        let out = p.run(&["validate", "-f", "services.toml"], secs(10));
        assert_eq!(out.code(), Some(1), "`{name}` must be refused\n{out:?}");
        assert!(
            out.stderr.contains("invalid service name"),
            "`{name}`: {}",
            out.stderr
        );
        // `up` refuses it the same way, before anything runs.
        let out = p.run(&["up", "-f", "services.toml", "--no-watch"], secs(10));
        assert_eq!(out.code(), Some(1), "`{name}`\n{out:?}");
        assert!(!p.file("x.log").exists() && !p.file(".runpm/x.log").exists());
    }

    // Asking a running daemon for such a name reads nothing from disk.
    p.config("[services.fine]\nshell = 'echo fine; exec sleep 1000000'\n");
    let _runpm = up(&p);
    for name in ["../x", "../../../../etc/passwd"] {
        let out = p.ctl_within(&["logs", name, "-n", "5"], secs(5));
        assert!(out.stdout.is_empty(), "{}", out.describe());
    }
}

#[test]
fn logs_of_an_unknown_service_is_an_error() {
    let p = Project::new(secs(30));
    p.config("[services.fine]\nshell = 'echo fine; exec sleep 1000000'\n");
    let _runpm = up(&p);
    for args in [
        &["logs", "nosuch"][..],
        &["logs", "-n", "5", "fine", "nosuch"],
        &["logs", "-f", "nosuch"],
    ] {
        let out = p.ctl_within(args, secs(5));
        assert_eq!(
            out.code(),
            Some(1),
            "`runpmctl {}` exits 1, as for other commands\n{}",
            args.join(" "),
            out.describe()
        );
        assert!(out.stdout.is_empty(), "{}", out.describe());
        assert!(
            out.stderr.contains("no service named `nosuch`"),
            "{}",
            out.describe()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Exit history and crash reports
// ---------------------------------------------------------------------------------------------

#[test]
fn the_crash_report_holds_the_last_lines_of_a_crashed_run() {
    let p = Project::new(secs(30));
    p.config(&format!(
        r#"{TICKER}
[services.crashy]
shell = 'for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14; do echo "step $i"; done; echo "fatal: disk on fire"; sleep 0.5; exit 3'
restart = "never"
"#
    ));
    let before = SystemTime::now() - secs(1);
    let runpm = up(&p);
    runpm.wait_for_event("crashy", "exited with code 3", secs(10));
    // The last lines arrive when the run's pipes close, which may be after the exit.
    let s = p.wait_service("crashy", "exited with its last lines", secs(10), |s| {
        s["status"] == "exited"
            && s["exits"][0]["last_lines"]
                .as_array()
                .is_some_and(|l| !l.is_empty())
    });
    let exits = s["exits"].as_array().unwrap();
    assert_eq!(exits.len(), 1, "{s:#}");
    let exit = &exits[0];
    assert_eq!(exit["code"], 3, "{s:#}");
    assert!(exit["signal"].is_null(), "{s:#}");
    assert_eq!(exit["reason"], "exited", "{s:#}");
    let uptime = exit["uptime_ms"].as_u64().expect("uptime_ms");
    // The run slept 0.5 s. runpm times a run from when its spawn returned, which on a busy
    // machine (a debug build, tests in parallel on two CPUs) can be 100 ms after the shell
    // began: allow for that, but not for nonsense.
    assert!((250..10_000).contains(&uptime), "uptime {uptime} ms: {s:#}");
    let at = parse_time(exit["at"].as_str().unwrap());
    assert!(at >= before && at <= SystemTime::now(), "{s:#}");
    let mut expected: Vec<Value> = (6..=14).map(|i| format!("step {i}").into()).collect();
    expected.push("fatal: disk on fire".into());
    assert_eq!(
        exit["last_lines"],
        Value::Array(expected),
        "the last 10 lines: {s:#}"
    );

    // The table says how it ended, and the detail view shows the crash report.
    let table = p.ctl_ok(&["status"]);
    let row = table
        .lines()
        .find(|l| l.starts_with("crashy "))
        .unwrap_or_default();
    assert!(row.split_whitespace().nth(1) == Some("exited"), "{table}");
    assert!(row.ends_with("code 3"), "{table}");
    let detail = p.ctl_ok(&["status", "crashy"]);
    assert!(detail.contains("code 3 after"), "{detail}");
    assert!(detail.contains("| fatal: disk on fire"), "{detail}");
}

#[test]
fn each_restart_adds_to_the_exit_history() {
    let p = Project::new(secs(30));
    p.config(
        r#"
[services.flaky]
shell = 'echo $$ >> runs; echo "run $(wc -l < runs) says goodbye"; exit 2'
restart = "on-failure"
restart_delay = "50ms"
max_restarts = 3
restart_window = "1h"
failed_cooldown = "1h"
"#,
    );
    let _runpm = up(&p);
    let s = p.wait_service("flaky", "failed with four exits", secs(20), |s| {
        s["status"] == "failed"
            && s["exits"].as_array().is_some_and(|e| {
                e.len() == 4
                    && e.iter()
                        .all(|x| !x["last_lines"].as_array().unwrap().is_empty())
            })
    });
    assert!(
        s["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("crash loop"),
        "{s:#}"
    );
    assert!(
        s["next_start"].is_string(),
        "failed_cooldown re-arms it: {s:#}"
    );
    for (i, exit) in s["exits"].as_array().unwrap().iter().enumerate() {
        assert_eq!(exit["code"], 2, "{s:#}");
        assert_eq!(
            exit["last_lines"],
            serde_json::json!([format!("run {} says goodbye", i + 1)]),
            "most recent last: {s:#}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// runpm's own events
// ---------------------------------------------------------------------------------------------

#[test]
fn the_daemon_log_records_starts_exits_restarts_readiness_and_probe_failures() {
    let p = Project::new(secs(30));
    p.config(
        r#"
[services.steady]
shell = 'echo "steady is up"; exec sleep 1000000'
ready = { log = "is up" }

[services.flappy]
shell = 'sleep 0.1; exit 1'
restart = "on-failure"
restart_delay = "200ms"
max_restarts = 1000

[services.sickly]
shell = 'exec sleep 1000000'
health = { exec = ["false"], interval = "100ms", retries = 2 }
restart = "on-failure"
restart_delay = "200ms"
max_restarts = 1000

[services.unready]
shell = 'exec sleep 1000000'
ready = { tcp = "127.0.0.1:1" }
ready_timeout = "300ms"
restart = "never"
"#,
    );
    // `unready` fails and `flappy` flaps: `up -d` may exit 1 (tests/edges_up_detach.rs).
    let daemon = p.up_detached_failing(&["--no-watch"]);
    for needle in [
        "steady: started (pid ",
        "steady: ready after",
        "flappy: exited with code 1 after",
        "flappy: restarting in",
        "sickly: health check failed (1 of 2)",
        "sickly: health check failed 2 times in a row",
        "sickly: restarting in",
        "unready: not ready within 300ms",
    ] {
        daemon.wait_for_log(needle, secs(10));
    }
    // Each event line says when.
    let log = daemon.log();
    for line in log.lines().filter(|l| l.contains("[runpm]")) {
        let stamp = line.split(' ').next().unwrap();
        assert!(
            humantime::parse_rfc3339(stamp).is_ok(),
            "an event line without a time: {line:?}"
        );
    }
}
